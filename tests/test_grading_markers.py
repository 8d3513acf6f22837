"""grading.handin.marker: a Marker skips text that holds none of its words, so every match must hold one.
Checked here from each pattern's syntax tree, for every Marker the grader defines."""
import re
import re._parser as sre_parse
from re._constants import AT, BRANCH, LITERAL, MAX_REPEAT, MIN_REPEAT, SUBPATTERN

import pytest

from grading.handin import detect, flow
from grading.handin.marker import Marker


def _every_match_holds(items, words) -> bool:
    """Whether every string the parsed sequence matches contains one of ``words``."""
    run = ""   # the literal characters matched one after another so far
    for op, arg in items:
        if op is LITERAL:
            run += chr(arg)
            if any(word in run for word in words):
                return True
            continue
        if op is AT:        # \b, ^, $ match no characters: the run goes on
            continue
        run = ""
        if op is SUBPATTERN and _every_match_holds(arg[-1], words):
            return True
        if op is BRANCH and all(_every_match_holds(branch, words) for branch in arg[1]):
            return True
        if op in (MAX_REPEAT, MIN_REPEAT) and arg[0] >= 1 and _every_match_holds(arg[2], words):
            return True
    return False


def holds_a_word(marker: Marker) -> bool:
    return _every_match_holds(sre_parse.parse(marker.pattern), marker.words)


MARKERS = {f"{module.__name__}.{name}": value for module in (detect, flow)
           for name, value in vars(module).items() if isinstance(value, Marker)}


def test_the_grader_defines_markers():
    assert {"grading.handin.detect._TUNE", "grading.handin.detect._CAPTUM", "grading.handin.flow.ARCH_CALL"} <= set(MARKERS)


@pytest.mark.parametrize("name", sorted(MARKERS))
def test_every_match_of_a_marker_holds_one_of_its_words(name):
    assert holds_a_word(MARKERS[name]), f"{name}: a match can hold none of {MARKERS[name].words}"


def test_the_check_itself_catches_a_missing_word():
    assert not holds_a_word(Marker(r"\bplt\.plot\(|\bsns\.lineplot\(", ("plt.plot",)))
    assert not holds_a_word(Marker(r"(?:foo)?bar", ("foo",)))
    assert holds_a_word(Marker(r"\b(?:foo|foobar)\s*\(", ("foo",)))


def test_an_extended_marker_still_holds_a_word_and_finds_both():
    tuner = detect._TUNE.or_(r"\b(?:my_tuner)\.fit\s*\(", ("my_tuner.fit",))
    assert holds_a_word(tuner)
    assert tuner.search("results = my_tuner.fit()") and tuner.search("tune.run(train, config=c)")


def test_a_marker_finds_what_its_regex_finds():
    code = "sns.heatmap(confusion_matrix(y, p))\nplt.show()\nprint(x)"
    assert [m.group(0) for m in detect._CONFUSION.finditer(code)] == \
        [m.group(0) for m in re.finditer(detect._CONFUSION.pattern, code)]
    assert detect._CAPTUM.search("plt.plot(loss)") is None
    assert detect._CAPTUM.findall("x") == [] and list(detect._CAPTUM.finditer("x")) == []


def test_a_case_insensitive_marker_is_refused():
    with pytest.raises(ValueError, match="case-sensitively"):
        Marker("loss", ("loss",), re.IGNORECASE)
