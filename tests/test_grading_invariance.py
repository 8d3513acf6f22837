"""The grader's verdicts change only when the work changes (bench/grading_invariance.py's transformations).

Each transformation is applied to the student-style notebooks of tests/student_notebooks.py: those that
change nothing a marker cares about must leave every verdict as it was; those that remove what a marker
looks for must fail it. Other tests check that each transformation really does what it says, so that an
expectation never holds because nothing was changed.
"""
from __future__ import annotations

import json

import nbformat
import pytest
import student_notebooks as students
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from bench import grading_invariance as invariance
from grading import grade_notebook, parse_notebook


@pytest.fixture(scope="module")
def notebooks():
    return {name: json.loads(nbformat.writes(build())) for name, build in students.ALL.items()}


def statuses(nb: dict, name: str) -> dict[str, str]:
    return {v.id: v.status for v in grade_notebook(parse_notebook(json.dumps(nb), name)).criteria}


@pytest.mark.parametrize("transformation", invariance.UNCHANGING, ids=lambda t: t.name)
@pytest.mark.parametrize("name", list(students.ALL))
def test_a_change_no_marker_cares_about_moves_no_verdict(notebooks, name, transformation):
    before = statuses(notebooks[name], name)
    after = statuses(transformation.apply(notebooks[name]), name)
    assert after == before, {cid: (before[cid], after[cid]) for cid in before if before[cid] != after[cid]}


@pytest.mark.parametrize("transformation", invariance.REMOVING, ids=lambda t: t.name)
@pytest.mark.parametrize("name", list(students.ALL))
def test_removing_what_a_marker_looks_for_fails_it(notebooks, name, transformation):
    after = statuses(transformation.apply(notebooks[name]), name)
    assert {cid: after[cid] for cid in transformation.must_fail} == dict.fromkeys(transformation.must_fail, "fail")


@pytest.mark.parametrize("name", list(students.ALL))
def test_a_passing_verdict_falls_with_the_cell_it_cites_unless_another_cell_shows_it(notebooks, name):
    outcomes = [o for o in invariance.check_notebook(notebooks[name], name) if o.transformation.endswith("removed")
                and o.transformation.startswith("cell")]
    assert all(o.held for o in outcomes), [(o.criterion, o.after) for o in outcomes if not o.held]
    for o in outcomes:
        if o.after[0] == "pass":   # passes on another cell, which the bench names
            assert o.note.startswith("still passes on cell"), o.note


def test_an_unused_import_of_a_sampler_is_no_fix():
    """The regression the bench found on four real hand-ins: imports run first made `confusion_fix` pass."""
    nb = students.narrative_without_interpretation()
    before = statuses(json.loads(nbformat.writes(nb)), "Plain.ipynb")["confusion_fix"]
    after = statuses(invariance.add_unused_imports(json.loads(nbformat.writes(nb))), "Plain.ipynb")["confusion_fix"]
    assert before == after == "fail"


# --- each transformation does what it says ------------------------------------------------------

def _nb(*cells, counts=()) -> dict:
    nb = new_notebook(cells=list(cells))
    for cell, count in zip([c for c in nb.cells if c.cell_type == "code"], counts):
        cell.execution_count = count
    return json.loads(nbformat.writes(nb))


def test_the_import_cell_runs_first_and_every_count_moves_up():
    nb = _nb(new_code_cell("x = 1"), new_code_cell("y = 2"), counts=(7, 3))
    out = invariance.add_unused_imports(nb)
    assert out["cells"][0]["source"] == invariance.UNUSED_IMPORTS
    assert [c["execution_count"] for c in out["cells"]] == [3, 8, 4]


def test_a_cell_is_cut_at_a_statement_boundary_but_never_one_that_draws_a_figure():
    nb = _nb(new_code_cell("import os\ndef f():\n    return 1\nprint(f())", outputs=[students.stream("1\n")]),
             new_code_cell("a = 1\nb = 2\nc = 3\nd = 4"),
             new_code_cell("plt.plot([1, 2])\nplt.show()", outputs=[students.figure("curves")]),
             counts=(1, 2, 3))
    out = invariance.cut_cells(nb)
    sources = [c["source"] for c in out["cells"]]
    assert sources == ["import os\ndef f():\n    return 1", "print(f())", "a = 1\nb = 2", "c = 3\nd = 4",
                       "plt.plot([1, 2])\nplt.show()"]
    assert [c["execution_count"] for c in out["cells"]] == [1, 2, 3, 4, 5]
    assert out["cells"][0]["outputs"] == [] and out["cells"][1]["outputs"]   # the output stays with the print


def test_a_trailing_definition_is_cut_off_and_the_output_stays_with_what_printed_it():
    nb = _nb(new_code_cell("print(1)\ndef g():\n    return 2", outputs=[students.stream("1\n")]),
             new_code_cell("x = 1\ny = 2\nx + y", outputs=[students.result("3", 5)]), counts=(4, 5))
    out = invariance.cut_cells(nb)["cells"]
    assert [c["source"] for c in out] == ["print(1)", "def g():\n    return 2", "x = 1", "y = 2\nx + y"]
    assert [bool(c["outputs"]) for c in out] == [True, False, False, True]
    assert [c["execution_count"] for c in out] == [4, 5, 6, 7]


def test_markdown_is_rewrapped_but_headings_and_lists_are_kept():
    text = "# Model 1\n\n" + "The small network confuses normal nuclei with cancer ones " * 3 + "\n\n- one\n- two"
    out = invariance.rewrap_markdown(_nb(new_markdown_cell(text)))["cells"][0]["source"]
    assert out.startswith("# Model 1\n\n") and out.endswith("\n\n- one\n- two")
    assert out != text and " ".join(out.split()) == " ".join(text.split())


def test_metadata_is_dropped_and_cell_ids_added():
    nb = _nb(new_code_cell("x = 1", metadata={"tags": ["parameters"]}))
    nb["metadata"] = {"kaggle": {"accelerator": "gpu"}}
    out = invariance.drop_metadata(nb)
    assert out["metadata"] == {} and out["cells"][0]["metadata"] == {} and out["cells"][0]["id"] == "cell-0"


def test_an_empty_cell_that_never_ran_is_added_at_the_end():
    out = invariance.add_empty_cell(_nb(new_code_cell("x = 1"), counts=(1,)))
    assert out["cells"][-1]["source"] == "" and out["cells"][-1]["execution_count"] is None


def test_renaming_keeps_names_that_mean_something_and_everything_a_rename_could_break():
    code = ("loader = DataLoader(ds, batch_size=batch_size)\nmodel1 = Net()\nresnet = models.resnet50()\n"
            "train_losses = fit(model1, loader)\nfor batch in loader:\n    print(f'{batch}')\n!pip install captum")
    out = invariance.rename_variables(_nb(new_code_cell("batch_size = 32"), new_code_cell(code)))
    first, second = (c["source"] for c in out["cells"])
    assert first == "renamed1 = 32" or "batch_size" in first   # renamed consistently, or kept everywhere
    assert "DataLoader(ds, batch_size=" in second              # a keyword's name is never renamed
    assert "model1 = Net()" in second and "resnet = models.resnet50()" in second and "train_losses" in second
    assert "loader" not in second.replace("DataLoader", "")     # a name that says nothing is renamed...
    assert second.count("renamed") >= 3                         # ...everywhere it is read
    assert "for batch in" in second                             # read in an f-string: kept
    assert "!pip install captum" in second
