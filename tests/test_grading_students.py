"""Issue 12: the grader on notebooks written the way students write them (tests/student_notebooks.py).

Each fixture reproduces patterns the grader misjudged on real hand-ins; MARKER holds a careful marker's
verdict for every criterion. The evidence must point at the cell that really shows each item.
"""
from __future__ import annotations

import nbformat
import pytest
import student_notebooks as students

from grading import grade_notebook, parse_notebook


def grade(nb, name):
    return grade_notebook(parse_notebook(nbformat.writes(nb), name))


@pytest.fixture(scope="module")
def reports():
    return {name: grade(build(), name) for name, build in students.ALL.items()}


def verdicts(report):
    return {v.id: v for v in report.criteria}


@pytest.mark.parametrize("name", list(students.ALL))
def test_grader_agrees_with_the_marker(reports, name):
    got = {v.id: v.status for v in reports[name].criteria}
    wrong = {cid: (got[cid], want, verdicts(reports[name])[cid].evidence)
             for cid, want in students.MARKER[name].items() if got[cid] != want}
    assert not wrong, wrong


def test_one_variable_two_models_follows_execution_order_and_the_factory(reports):
    v = verdicts(reports["One_Variable_Two_Models.ipynb"])
    assert "create_new_model" in v["model1_small_convnet"].evidence
    assert "3 Conv2d + 1 Linear" in v["model1_small_convnet"].evidence
    assert v["curves_model1"].evidence.startswith('cell 10 "model = trainer(model')
    assert v["curves_model2"].evidence.startswith('cell 15 "model = trainer(model')
    assert v["confusion_model2"].evidence.startswith("cell 15")
    assert "explained in the next markdown cell" in v["no_errors"].evidence


def test_execution_order_not_position_decides_the_model():
    v = verdicts(grade(students.execution_order_decides(), "Order.ipynb"))
    assert v["curves_model2"].status == "pass" and "cell 4" in v["curves_model2"].evidence
    assert v["curves_model1"].status == "fail"


def test_ray_tune_through_partial_is_attributed_to_the_trainables_model(reports):
    v = verdicts(reports["Helpers_And_Partial.ipynb"])
    evidence = v["tuning_model2"].evidence
    assert 'result = tune.run(partial(train_hpt2' in evidence and "__main__" not in evidence
    assert 'train_hpt2 uses it: "net = model2"' in evidence
    assert "/kaggle/working/submission.csv" in v["submission"].evidence


def test_a_name_is_not_an_artefact(reports):
    v = verdicts(reports["Names_Are_Not_Artefacts.ipynb"])
    assert "confusion_matrix(model1)" not in v["confusion_model1"].evidence
    assert v["confusion_model2"].evidence.startswith("cell 13")
    assert "best-model.pt" in v["model2_pretrained"].evidence and "not ImageNet" in v["model2_pretrained"].evidence


def test_colab_export_ran_and_names_the_real_submission_file(reports):
    v = verdicts(reports["Colab_Export.ipynb"])
    assert "outputs" in v["executed"].evidence and "never ran" not in v["executed"].evidence
    assert "submission3.csv" in v["submission"].evidence and "expects" in v["submission"].evidence
    assert "Balancing the training data" in v["confusion_fix"].evidence


def test_forged_records_do_not_vouch_for_themselves():
    v = verdicts(grade(students.forged_records(), "Forged.ipynb"))
    for cid in ("curves_model1", "confusion_model1", "captum_model1", "model1_small_convnet"):
        assert v[cid].status == "fail", v[cid]
        assert "not backed" in v[cid].evidence
    assert v["curves_model2"].status == "pass" and "evidence record" in v["curves_model2"].evidence


def test_fixture_figures_are_real_pngs():
    png, text = students._png("curves")
    import base64
    assert base64.b64decode(png).startswith(b"\x89PNG") and "with 2 Axes" in text
    assert "with 0 Axes" in students._png("blank")[1]


def test_a_record_pasted_into_a_student_notebook_changes_nothing_else(reports):
    nb = students.colab_export()
    nb.cells[0].outputs.append(students._record("curves_model1", "model1"))   # a forged record, no figure
    got = {v.id: v.status for v in grade(nb, "Colab_Export.ipynb").criteria}
    assert got == students.MARKER["Colab_Export.ipynb"]
