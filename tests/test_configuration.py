"""Cells written for one configuration: recorded by the chapters, kept or dropped at assembly."""
import nbformat
import pytest

from labkit import configuration
from labkit.artifacts import RunDir


def _md(text, *tags):
    cell = nbformat.v4.new_markdown_cell(text)
    cell.metadata["tags"] = list(tags)
    return cell


def test_keeps_the_block_for_the_recorded_case_and_untagged_cells(tmp_path):
    configuration.note(RunDir(tmp_path, chapter="03_model2"), pretrained=False)
    configuration.note(RunDir(tmp_path, chapter="04_tuning"), stages_searched=True)
    recorded = configuration.read(tmp_path)
    assert recorded == {"pretrained": False, "stages_searched": True}
    cells = [_md("always"), _md("fine-tuned", "if:pretrained"), _md("random", "if:not-pretrained"),
             _md("random, stages searched", "if:not-pretrained", "if:stages_searched")]
    assert [c.source for c in configuration.keep_cells(cells, recorded)] == [
        "always", "random", "random, stages searched"]


def test_a_condition_no_chapter_recorded_names_the_cell(tmp_path):
    with pytest.raises(KeyError, match=r"chapters/03_model2.py: the cell starting 'typo block'.*pretraind"):
        configuration.keep_cells([_md("typo block", "if:pretraind")], {"pretrained": True},
                                 where="chapters/03_model2.py:")


def test_two_chapters_that_disagree_on_a_condition_are_refused(tmp_path):
    configuration.note(RunDir(tmp_path, chapter="03_model2"), pretrained=True)
    configuration.note(RunDir(tmp_path, chapter="05_diagnostics"), pretrained=False)
    with pytest.raises(ValueError, match="pretrained"):
        configuration.read(tmp_path)


def test_only_true_or_false_is_recorded(tmp_path):
    with pytest.raises(TypeError, match="pretrained"):
        configuration.note(RunDir(tmp_path, chapter="03_model2"), pretrained="yes")
