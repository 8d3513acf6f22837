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


# --- issue 25: patterns only real notebooks showed ------------------------------------------------------

def test_a_call_runs_the_definition_in_force_when_its_cell_ran(reports):
    """Cell 9 calls main() for the ConvNet; cell 23 later defines another main (ResNet) and never calls it."""
    v = verdicts(reports["Redefined_Main_And_Tuples.ipynb"])
    assert v["tuning_model1"].status == "pass"
    assert v["tuning_model1"].evidence.startswith('cell 9 "main(num_samples=3')
    assert "main as defined in cell 9, in force when cell 9 ran (also defined in cell 22)" in v["tuning_model1"].evidence
    assert v["tuning_model2"].status == "fail" and "cell 9" not in v["tuning_model2"].evidence


def test_a_helper_rerun_after_its_call_still_resolves():
    v = verdicts(grade(students.helper_rerun_after_its_call(), "Rerun.ipynb"))
    assert v["curves_model2"].status == "pass" and v["curves_model2"].evidence.startswith('cell 3 "train_and_plot(3)"')
    assert "train_and_plot builds it" in v["curves_model2"].evidence


def test_a_tuple_return_hands_the_model_and_its_results_on_with_the_chain(reports):
    v = verdicts(reports["Redefined_Main_And_Tuples.ipynb"])
    curves = v["curves_model1"].evidence
    # the data flow beats the heading "(Resnet)" above the plot, and the evidence shows the chain
    assert curves.startswith("cell 13 ") and "(Resnet)" not in curves
    assert 'train_loss ← cell 11 "..., train_loss, ... = train_Conv_model(...)"' in curves
    assert 'cell 10 train_Conv_model builds "net = ConvNet(' in curves and curves.endswith("model 1)")
    assert v["confusion_model1"].evidence.startswith('cell 15 "plot_confusion(Conv_model, validation_loader)"')
    assert 'Conv_model ← cell 11 "Conv_model, ... = train_Conv_model(...)"' in v["confusion_model1"].evidence
    assert v["captum_model1"].evidence.startswith('cell 18 "show_attribution(Conv_model)"')
    assert v["curves_model2"].evidence.startswith("cell 26 ") and "train_Resnet_model" in v["curves_model2"].evidence
    assert v["captum_model2"].evidence.startswith('cell 28 "show_attribution(Resnet_model)"')


def test_a_returned_argument_keeps_its_model_and_a_plot_label_is_not_a_variable(reports):
    """``losses, accs, model = train_model(model, ...)``; ``plt.plot(losses_ft['train'], label='Finetuned model')``."""
    v = verdicts(reports["Augmented_Against_Overfitting.ipynb"])
    assert "losses_ft['train']" in v["curves_model2"].evidence and "model 2)" in v["curves_model2"].evidence
    assert "losses['train']" in v["curves_model1"].evidence and "model 1)" in v["curves_model1"].evidence
    assert v["captum_model1"].evidence.startswith('cell 17 "occlusion = Occlusion(model)"')


def test_one_model_owns_its_curves_matrix_and_attributions(reports):
    v = verdicts(reports["One_Model_Oversampled.ipynb"])
    for stem in ("curves", "confusion", "captum"):
        assert v[f"{stem}_model1"].status == "pass", v[f"{stem}_model1"]
        assert "builds only this model" in v[f"{stem}_model1"].evidence
        assert 'class cnNetwork(nn.Module):' in v[f"{stem}_model1"].evidence
        assert v[f"{stem}_model2"].status == "fail"


def test_what_a_fix_is(reports):
    oversampled = verdicts(reports["One_Model_Oversampled.ipynb"])["confusion_fix"]
    assert oversampled.status == "pass" and "train_df.loc[len(train_df.index)]" in oversampled.evidence
    assert "Balancing the Training data" in oversampled.evidence
    augmented = verdicts(reports["Augmented_Against_Overfitting.ipynb"])["confusion_fix"]
    assert augmented.status == "fail" and "RandomResizedCrop" in augmented.evidence
    assert "overfitting" in augmented.evidence


def test_a_comparison_compares_and_its_sentence_is_quoted(reports):
    in_passing = verdicts(reports["Augmented_Against_Overfitting.ipynb"])["discussion"]
    assert in_passing.status == "warn"
    assert 'cell 18 "The ResNet18 model outperformed the from-scratch model by a long shot."' in in_passing.evidence
    assert "only in passing" in in_passing.evidence and "Test and Submit the Best Model" in in_passing.evidence
    remark = verdicts(reports["Redefined_Main_And_Tuples.ipynb"])["discussion"]
    assert remark.status == "warn" and 'cell 25 "The same situation is happening in the Resnet model too' in remark.evidence
    assert "hardware" not in remark.evidence and "cell 21" not in remark.evidence   # the apology


def test_the_flow_model_stands_below_the_detectors():
    """grading.handin.flow and grading.handin.discussion import no detector: the detectors are built on them."""
    import ast
    from pathlib import Path

    import grading.handin
    root = Path(grading.handin.__file__).parent
    for module in ("flow", "discussion", "sections", "cells", "codeparse"):
        tree = ast.parse((root / f"{module}.py").read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                    for alias in node.names} | {node.module or "" for node in ast.walk(tree)
                                                 if isinstance(node, ast.ImportFrom)}
        assert "detect" not in imported, module
