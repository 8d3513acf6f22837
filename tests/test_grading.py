"""Tests for grading/: notebooks are built here with nbformat, in two styles.

- "records": as build.py makes them: chapters with labkit evidence records, counts restarting per chapter.
- "student": a Kaggle/Colab export with no records, read by the heuristics (helpers defined once and
  called per model, headings "Model 1" / "Model 2 (ResNet50)").
``make_notebook(style, drop=ID)`` leaves out the evidence of one criterion, so each criterion is tested alone.
"""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from grading import CRITERIA, check_paths, grade_notebook, parse_notebook
from grading.__main__ import main
from grading.handin.cells import EVIDENCE_MIME

REPO = Path(__file__).resolve().parents[1]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
STRUCTURAL = ("filename", "executed", "no_errors", "run_order")
CONTENT = tuple(c for c in CRITERIA if c not in STRUCTURAL)


def image():
    return new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure size 640x480 with 2 Axes>"})


def stream(text):
    return new_output("stream", name="stdout", text=text)


def record(criterion, model=None, status=None, **data):
    rec = {"criterion": criterion, "model": model, "summary": f"{criterion} done", "data": data}
    if status:
        rec["status"] = status
    return new_output("display_data", data={EVIDENCE_MIME: rec, "text/plain": f"[evidence] {criterion}"})


NARRATIVE_1 = ("Model 1 reaches a validation accuracy of 89.5% after five epochs. The gap between training and "
               "validation loss stays small, which shows that the small network does not overfit; the curves "
               "flatten after the fourth epoch, so more epochs would likely add little. Most of its errors are "
               "normal nuclei taken for cancer, which is plausible because both are epithelial and differ "
               "mainly in size and texture, and normal cells are a minority of the training data here. We keep this model as "
               "the baseline for everything that follows.")
NARRATIVE_TUNING = ("The search shows that a learning rate of 0.001 gives the best validation accuracy, 0.912; "
                    "larger rates diverge in the first epoch, which is why ASHA stops them early.")
NARRATIVE_2 = ("The ResNet50 reaches 97.1% validation accuracy. Fine-tuning converges in three epochs because the "
               "ImageNet features already separate stain texture well; the validation loss rises slightly in "
               "the last epoch, which suggests mild overfitting that early stopping would catch. Muscle nuclei "
               "are now rarely confused with immune cells, and the remaining mistakes are between normal and "
               "cancer epithelium, as one would expect from their similar shape. Training it on the CPU "
               "took about twenty minutes per epoch.")
NARRATIVE_3 = ("The saliency maps show that the network looks at the nucleus in the centre of the patch and "
               "mostly ignores the surrounding tissue. For cancer nuclei the attribution is spread over the "
               "coarse chromatin, while for immune cells it concentrates on the dark round outline. This "
               "indicates that the features it uses are the ones a pathologist would name, which is reassuring "
               "given the 0.95 macro F1 score on the validation split.")
DISCUSSION = ("Model 2 (the pretrained ResNet50) is clearly better than model 1: 97.1% against 89.5% validation "
              "accuracy, and far fewer normal/cancer confusions. Model 1, however, trains in a fraction of the "
              "time and has 200 times fewer parameters, so it is the better choice on a CPU. Both models agree "
              "on the hardest class, which suggests the limit is the data itself and not the architecture. A "
              "larger input resolution might help the small network more than the pretrained one.")

HELPERS = '''\
def train(model, epochs):
    history = {"train_loss": [], "val_acc": []}
    for epoch in range(epochs):
        history["train_loss"].append(run_epoch(model))
    return history

def plot_curves(history):
    fig, ax = plt.subplots(1, 2)
    ax[0].plot(history["train_loss"]); ax[0].set_title("loss")
    ax[1].plot(history["val_acc"]); ax[1].set_title("accuracy")

def show_confusion(model, loader):
    y_true, y_pred = predict(model, loader)
    cm = confusion_matrix(y_true, y_pred)
    ConfusionMatrixDisplay(cm, display_labels=CLASSES).plot()

def explain(model, images):
    attr = Saliency(model).attribute(images, target=0)
    viz.visualize_image_attr(attr[0], images[0], method="heat_map")

def tune_model(trainable, space):
    tuner = tune.Tuner(trainable, param_space=space, tune_config=tune.TuneConfig(num_samples=4))
    return tuner.fit()
'''

MODEL1 = '''\
class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(128, 4)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))

model1 = SmallCNN()'''


def student_cells(drop=None):
    """(criterion or None, cell) pairs of a complete Kaggle-style student notebook."""
    tuning_out = stream("== Status ==\nNumber of trials: 4/4 (4 TERMINATED)\nBest trial config: {'lr': 0.001}\n"
                        "Best trial final validation accuracy: 0.912\n")
    cells = [
        (None, new_code_cell("!pip install captum", outputs=[stream("Successfully installed captum-0.7.0\n")])),
        (None, new_markdown_cell("# Classifying nuclei\nWe classify nuclei in H&E patches with two ConvNets.")),
        ("data_loader", new_code_cell("class NucleiDataset(Dataset):\n    def __init__(self, df):\n        self.df = df\n"
                                      "    def __getitem__(self, i):\n        return load(self.df.Filename[i])\n")),
        ("validation_split", new_code_cell("train_df, val_df = train_test_split(df, test_size=0.2, stratify=df.Label)")),
        (None, new_code_cell(HELPERS)),
        (None, new_markdown_cell("## Model 1: a small ConvNet")),
        ("model1_small_convnet", new_code_cell(MODEL1)),
        ("tuning_model1", new_code_cell("results1 = tune_model(train_small, space1)", outputs=[tuning_out])),
        ("narrative", new_markdown_cell(NARRATIVE_TUNING)),
        ("curves_model1", new_code_cell("history1 = train(model1, 5)\nplot_curves(history1)", outputs=[image()])),
        ("narrative", new_markdown_cell(NARRATIVE_1)),
        ("confusion_model1", new_code_cell("show_confusion(model1, val_loader)", outputs=[image()])),
        ("captum_model1", new_code_cell("explain(model1, sample_images)", outputs=[image()])),
        (None, new_markdown_cell("## Model 2 (ResNet50)")),
        ("model2_pretrained", new_code_cell("model2 = models.resnet50(weights=models.ResNet50_Weights.IMAGENET1K_V2)\n"
                                            "model2.fc = nn.Linear(2048, 4)")),
        ("tuning_model2", new_code_cell("results2 = tune_model(train_resnet, space2)", outputs=[tuning_out])),
        # a plain `history` under the "Model 2" heading: attributed by the section
        ("curves_model2", new_code_cell("history = train(model2, 3)\nplot_curves(history)", outputs=[image()])),
        ("narrative", new_markdown_cell(NARRATIVE_2)),
        ("confusion_model2", new_code_cell("show_confusion(model2, val_loader)", outputs=[image()])),
        (None, new_markdown_cell("## Fixing the worst confusion\nNormal nuclei are mixed up with cancer.")),
        ("confusion_fix", new_code_cell("w = compute_class_weight('balanced', classes=classes, y=labels)\n"
                                        "loss_fn = nn.CrossEntropyLoss(weight=torch.tensor(w))")),
        ("captum_model2", new_code_cell("explain(model2, sample_images)", outputs=[image()])),
        ("narrative", new_markdown_cell(NARRATIVE_3)),
        ("submission", new_code_cell("sub = pd.DataFrame({'Filename': files, 'Label': preds})\n"
                                     "sub.to_csv('submission.csv', index=False)")),
        ("discussion", new_markdown_cell("## Discussion")),
        ("discussion", new_markdown_cell(DISCUSSION)),
    ]
    return [cell for criterion, cell in cells if criterion is None or criterion != drop]


def prose(words=40):
    """Generated Markdown, as labkit.notebook.say displays it."""
    text = " ".join(["The model reaches 91.2% validation accuracy and the loss still falls"] * (words // 12 + 1))
    return new_output("display_data", data={"text/markdown": text, "text/plain": "<IPython.core.display.Markdown object>"})


def table():
    return new_output("display_data", data={"text/html": "<table><tr><td>train</td><td>800</td></tr></table>",
                                            "text/plain": "       n\ntrain  800\nval    200\n"})


# What each chapter step's cell shows next to its record, as chapters/*.py display it.
BUILT_CELLS = {
    "data_loader": ("train_ds = nuclei.train_dataset(augment=True)\nloader = data.make_loader(train_ds, 64)", [prose()]),
    "validation_split": ("display(exploration.split_table(labels, train_idx, val_idx))", [table()]),
    "model1_small_convnet": ("model1 = models.build_model1(config)\nprint(model1)",
                             [stream("Model1(\n  (features): Sequential(\n    (0): Conv2d(3, 32, kernel_size=(3, 3))\n")]),
    "model2_pretrained": ("model2, weights = models.build_model2()\ndisplay(weights.as_dict())",
                          [new_output("display_data", data={"text/plain": "{'arch': 'resnet18', 'pretrained': True}"})]),
    "tuning_model1": ("result1 = tune.run_search('model1', nuclei, p)\ndisplay(result1.table)", [table(), image()]),
    "tuning_model2": ("result2 = tune.run_search('model2', nuclei, p)\ndisplay(result2.table)", [table(), image()]),
    "submission": ("chosen.write_bytes(best.read_bytes())", [stream("submission_model1.csv: 5041 rows, valid\n")]),
    "discussion": ("display(comparison)", [table(), prose()]),
}
for _cid in ("curves_model1", "curves_model2", "confusion_model1", "confusion_model2", "confusion_fix",
             "captum_model1", "captum_model2"):
    BUILT_CELLS[_cid] = (f"show_figure({_cid}_figure())", [image()])


def records_cells(drop=None):
    """A notebook as build.py assembles it: one chapter per topic, each with its own kernel."""
    chapters = [
        ("01_data", [("data_loader", {}), ("validation_split", {})]),
        ("02_model1", [("model1_small_convnet", {"weight_layers": 4})]),
        ("03_model2", [("model2_pretrained", {"pretrained": True, "verified": True})]),
        ("04_tuning", [("tuning_model1", {}), ("tuning_model2", {})]),
        ("05_diagnostics", [("curves_model1", {}), ("curves_model2", {}), ("confusion_model1", {}),
                            ("confusion_model2", {}), ("confusion_fix", {})]),
        ("06_interpretation", [("captum_model1", {}), ("captum_model2", {})]),
        ("07_submission", [("submission", {}), ("narrative", {}), ("discussion", {})]),
    ]
    cells = []
    for chapter, steps in chapters:
        start = new_markdown_cell(f"# Chapter {chapter}")
        start.metadata["labkit"] = {"chapter": chapter, "chapter_start": True}
        cells.append(start)
        for criterion, data in steps:
            code, outputs = BUILT_CELLS.get(criterion, (f"step({criterion!r})", [prose()]))
            outputs = list(outputs)
            if criterion != drop:
                model = "model2" if criterion.endswith("model2") else "model1" if criterion.endswith("model1") else None
                outputs.append(record(criterion, model, **data))
            cells.append(new_code_cell(code, outputs=outputs))
    return cells


def make_notebook(style="student", drop=None, team="Dogs_Versus_Cats"):
    """(notebook, file name): complete, or with the evidence of criterion ``drop`` taken away."""
    cells = student_cells(drop) if style == "student" else records_cells(drop)
    count = 0
    for cell in cells:
        if cell.cell_type == "code":
            if style == "records" and any(c is cell for c in cells) and _chapter_of(cells, cell):
                count = 0
            count += 1
            cell.execution_count = count
            for output in cell.outputs:
                if output.output_type == "execute_result":
                    output.execution_count = count
    if drop == "executed":
        cells.append(new_code_cell("print('the end')"))
    if drop == "no_errors":
        cells.append(new_code_cell("1 / 0", execution_count=count + 1, outputs=[new_output(
            "error", ename="ZeroDivisionError", evalue="division by zero", traceback=["..."])]))
    if drop == "run_order":
        [c for c in cells if c.cell_type == "code"][-1].execution_count = 1   # re-run by hand at the end
    name = "Dogs Versus Cats (1).ipynb" if drop == "filename" else f"{team}.ipynb"
    return new_notebook(cells=cells), name


def _chapter_of(cells, cell):
    """True for the first code cell after a chapter marker (where build.py's kernel restarted)."""
    index = next(i for i, c in enumerate(cells) if c is cell)
    for previous in reversed(cells[:index]):
        if previous.cell_type == "code":
            return False
        if previous.metadata.get("labkit", {}).get("chapter_start"):
            return True
    return False


def write(tmp_path, nb, name):
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def grade(nb, name="Dogs_Versus_Cats.ipynb", team=None):
    loaded = parse_notebook(nbformat.writes(nb), name)
    return grade_notebook(loaded, team=team)


def statuses(report):
    return {v.id: v.status for v in report.criteria}


# --- complete notebooks and one missing criterion at a time ---------------------------------------

@pytest.mark.parametrize("style", ["student", "records"])
def test_complete_notebook_passes_every_criterion(style):
    report = grade(*make_notebook(style))
    assert statuses(report) == {cid: "pass" for cid in CRITERIA}, [v for v in report.criteria if v.status != "pass"]
    assert report.complete


@pytest.mark.parametrize("style", ["student", "records"])
@pytest.mark.parametrize("criterion", CRITERIA)
def test_missing_one_criterion_fails_exactly_that_one(style, criterion):
    report = grade(*make_notebook(style, drop=criterion))
    expected = {cid: "pass" for cid in CRITERIA}
    expected[criterion] = "warn" if criterion == "run_order" else "fail"   # out-of-order runs are a warning
    assert statuses(report) == expected, [v for v in report.criteria if v.status != "pass"]
    assert report.complete == (criterion == "run_order")


def test_evidence_cites_cells_and_quotes_short_snippets():
    report = grade(*make_notebook("student"))
    evidence = {v.id: v.evidence for v in report.criteria}
    assert 'cell 7 "class SmallCNN(nn.Module):"' in evidence["model1_small_convnet"]
    assert "3 Conv2d + 1 Linear = 4 weight layers" in evidence["model1_small_convnet"]
    assert evidence["curves_model1"].startswith('cell 10 "plot_curves(history1)"')
    # history = train(model2, 3): a result computed from model2 belongs to it
    assert "variables" in evidence["curves_model2"]
    assert "variables" in evidence["captum_model2"]         # explain(model2, ...): model2 holds the ResNet
    for verdict in report.criteria:
        for quote in verdict.evidence.split('"')[1::2]:
            assert len(quote) <= 80


# --- evidence records --------------------------------------------------------------------------------

def _with_record(criterion, **data):
    nb, name = make_notebook("records", drop=criterion)
    cell = next(c for c in nb.cells if c.source == BUILT_CELLS.get(criterion, (f"step({criterion!r})",))[0])
    cell.outputs.append(record(criterion, **data))
    return nb, name, cell


def test_model2_record_with_random_weights_fails():
    nb, name, _ = _with_record("model2_pretrained", pretrained=False, verified=False)
    verdict = {v.id: v for v in grade(nb, name).criteria}["model2_pretrained"]
    assert verdict.status == "fail" and "random" in verdict.evidence


def test_model2_record_pretrained_but_unverified_warns():
    nb, name, _ = _with_record("model2_pretrained", pretrained=True, verified=False)
    assert statuses(grade(nb, name))["model2_pretrained"] == "warn"


def test_record_with_warn_status_warns():
    nb, name, cell = make_notebook("records", drop="confusion_fix") + (None,)
    cell = next(c for c in nb.cells if c.source == BUILT_CELLS["confusion_fix"][0])
    cell.outputs.append(record("confusion_fix", status="warn"))
    assert statuses(grade(nb, name))["confusion_fix"] == "warn"


def test_record_in_a_cell_with_an_error_does_not_count():
    nb, name, cell = _with_record("submission")
    cell.outputs.append(new_output("error", ename="OSError", evalue="disk full", traceback=[]))
    verdicts = {v.id: v for v in grade(nb, name).criteria}
    assert verdicts["submission"].status == "fail"
    assert "ignored" in verdicts["submission"].evidence
    assert verdicts["no_errors"].status == "fail" and "OSError" in verdicts["no_errors"].evidence


def test_built_notebook_missing_a_record_only_warns_on_heuristic_evidence():
    nb, name = make_notebook("records", drop="data_loader")
    nb.cells[1].source = "class NucleiDataset(Dataset):\n    pass\nstep('data_loader')"
    verdict = {v.id: v for v in grade(nb, name).criteria}["data_loader"]
    assert verdict.status == "warn" and "no evidence record" in verdict.evidence


# --- structure: errors, unexecuted cells, run order, file name ---------------------------------------

def test_error_outputs_name_the_cell_and_the_exception():
    nb, name = make_notebook("student")
    nb.cells[7].outputs = [new_output("error", ename="TuneError", evalue="Trials did not complete", traceback=[])]
    verdicts = {v.id: v for v in grade(nb, name).criteria}
    assert verdicts["no_errors"].status == "fail"
    assert "cell 8: TuneError: Trials did not complete" in verdicts["no_errors"].evidence
    # a tuning cell whose output is an error does not count as a tuning run
    assert verdicts["tuning_model1"].status == "fail" and "error" in verdicts["tuning_model1"].evidence


def test_unexecuted_cells_are_listed_and_empty_cells_ignored():
    nb, name = make_notebook("student")
    next(c for c in nb.cells if "to_csv" in c.source).execution_count = None   # never ran, as in real exports
    nb.cells.append(new_code_cell("   \n"))  # an empty cell at the end is no problem
    verdicts = {v.id: v for v in grade(nb, name).criteria}
    assert verdicts["executed"].status == "fail"
    assert "cells 24" in verdicts["executed"].evidence and "sub = pd.DataFrame" in verdicts["executed"].evidence
    assert verdicts["submission"].status == "fail" and "never ran" in verdicts["submission"].evidence


def test_out_of_order_counts_warn_with_cell_numbers():
    nb, name = make_notebook("student")
    nb.cells[9].execution_count = 2
    verdict = {v.id: v for v in grade(nb, name).criteria}["run_order"]
    assert verdict.status == "warn" and "cell 10 (count 2 after 6)" in verdict.evidence


def test_restarts_allowed_only_at_chapter_markers():
    nb, name = make_notebook("records")
    assert "restarts at chapter markers" in {v.id: v for v in grade(nb, name).criteria}["run_order"].evidence
    for cell in nb.cells:
        cell.metadata.pop("labkit", None)
    verdict = {v.id: v for v in grade(nb, name).criteria}["run_order"]
    assert verdict.status == "warn" and "count 1 after 2" in verdict.evidence


def test_kaggle_counts_in_the_thousands_are_in_order():
    nb, name = make_notebook("student")
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.execution_count += 1000 + 7 * cell.execution_count
    assert statuses(grade(nb, name))["run_order"] == "pass"


@pytest.mark.parametrize("filename, team, status, says", [
    ("Dogs_Versus_Cats.ipynb", None, "pass", "valid team name"),
    ("Dogs Versus Cats.ipynb", None, "fail", "Dogs_Versus_Cats.ipynb"),
    ("Dogs_Versus_Cats.ipynb", "Dogs Versus Cats", "pass", "matches"),
    ("dogs_versus_cats.ipynb", "Dogs Versus Cats", "warn", "case"),
    ("Cats.ipynb", "Dogs Versus Cats", "fail", "expected Dogs_Versus_Cats.ipynb"),
    ("Dogs_Versus_Cats.json", None, "fail", ".ipynb"),
])
def test_filename(filename, team, status, says):
    nb, _ = make_notebook("student")
    verdict = {v.id: v for v in grade(nb, filename, team=team).criteria}["filename"]
    assert verdict.status == status and says in verdict.evidence


# --- heuristics on variants of student code -------------------------------------------------------

def _student_with(index, source, outputs=None):
    nb, name = make_notebook("student")
    nb.cells[index].source = source
    if outputs is not None:
        nb.cells[index].outputs = outputs
    return {v.id: v for v in grade(nb, name).criteria}


def test_model1_with_too_many_layers_fails():
    convs = "\n".join("            nn.Conv2d(8, 8, 3)," for _ in range(8))
    source = f"class BigCNN(nn.Module):\n    def __init__(self):\n        super().__init__()\n" \
             f"        self.f = nn.Sequential(\n{convs}\n        )\n        self.fc = nn.Linear(8, 4)\n"
    verdict = _student_with(6, source)["model1_small_convnet"]
    assert verdict.status == "fail" and "9 weight layers; at most 8" in verdict.evidence


def test_model1_blocks_defined_elsewhere_are_expanded():
    source = ("def conv_block(cin, cout):\n    return nn.Sequential(nn.Conv2d(cin, cout, 3), nn.ReLU())\n\n"
              "model1 = nn.Sequential(conv_block(3, 16), conv_block(16, 32), nn.Flatten(), nn.Linear(32, 4))\n"
              "x = nn.Conv2d(1, 1, 1)")
    verdict = _student_with(6, source)["model1_small_convnet"]
    assert verdict.status == "pass" and "2 Conv2d + 1 Linear = 3 weight layers" in verdict.evidence


def test_model2_old_api_passes_and_random_weights_fail():
    assert _student_with(14, "model2 = models.resnet50(pretrained=True)")["model2_pretrained"].status == "pass"
    verdict = _student_with(14, "model2 = models.resnet50(weights=None)")["model2_pretrained"]
    assert verdict.status == "fail" and "random" in verdict.evidence


def test_unattributable_evidence_warns():
    nb, name = make_notebook("student", drop="curves_model2")
    nb.cells[9].source = "history = train(net, 5)\nplot_curves(history)"   # no model name, no heading
    nb.cells.insert(2, new_markdown_cell("## Setup"))
    nb.cells[6 + 1 - 1].source = nb.cells[6].source
    nb.cells = [c for c in nb.cells if c.source != "## Model 1: a small ConvNet"]
    verdicts = {v.id: v for v in grade(nb, name).criteria}
    assert verdicts["curves_model1"].status == "warn" and "which model" in verdicts["curves_model1"].evidence


# --- reading: v3, invalid JSON, zips, huge outputs ---------------------------------------------------

def test_v3_notebook_is_upgraded(tmp_path):
    v3 = {"nbformat": 3, "nbformat_minor": 0, "metadata": {"name": "old"}, "worksheets": [{"cells": [
        {"cell_type": "heading", "level": 1, "source": "Old notebook", "metadata": {}},
        {"cell_type": "code", "language": "python", "input": "x = 1", "prompt_number": 1, "metadata": {},
         "collapsed": False, "outputs": []},
        {"cell_type": "code", "language": "python", "input": "1 / 0", "prompt_number": 2, "metadata": {},
         "collapsed": False, "outputs": [{"output_type": "pyerr", "ename": "ZeroDivisionError",
                                          "evalue": "division by zero", "traceback": []}]},
    ]}]}
    path = tmp_path / "Old_Team.ipynb"
    path.write_text(json.dumps(v3))
    [report] = check_paths([path])
    verdicts = {v.id: v for v in report.criteria}
    assert report.unreadable is None
    assert verdicts["executed"].status == "pass"
    assert verdicts["no_errors"].status == "fail" and "cell 3: ZeroDivisionError" in verdicts["no_errors"].evidence


def test_invalid_json_is_reported_and_the_batch_goes_on(tmp_path, capsys):
    write(tmp_path, *make_notebook("student"))
    text = nbformat.writes(make_notebook("student")[0])
    (tmp_path / "Truncated.ipynb").write_text(text[: len(text) // 2])
    assert main(["check", str(tmp_path), "--format", "json"]) == 2
    out, err = capsys.readouterr()
    reports = {Path(r["notebook"]).name: r for r in json.loads(out)}
    assert reports["Dogs_Versus_Cats.ipynb"]["complete"] is True
    bad = reports["Truncated.ipynb"]
    assert bad["complete"] is False and "invalid JSON" in bad["criteria"][1]["evidence"]
    assert "Truncated.ipynb" in err


def test_zip_of_notebooks(tmp_path, capsys):
    archive = tmp_path / "downloads.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("subs/Dogs_Versus_Cats.ipynb", nbformat.writes(make_notebook("student")[0]))
        zf.writestr("subs/Other_Team.ipynb", nbformat.writes(make_notebook("student", drop="captum_model1")[0]))
        zf.writestr("__MACOSX/subs/._Other_Team.ipynb", "junk")
    assert main(["check", str(archive), "--format", "csv"]) == 1
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0].split(",")[:3] == ["notebook", "team", "complete"] and rows[0].split(",")[3:] == list(CRITERIA)
    assert len(rows) == 3
    assert rows[1].startswith(f"{archive}/subs/Dogs_Versus_Cats.ipynb,Dogs_Versus_Cats,yes,")
    assert rows[2].startswith(f"{archive}/subs/Other_Team.ipynb,Other_Team,no,")


def test_kaggle_export_with_huge_stream_output_is_fast(tmp_path):
    import time
    nb, name = make_notebook("student")
    status = "".join(f"| train_fn_{i:05d} | TERMINATED | 127.0.0.1:{i} | 0.001 | 0.{i % 97:02d} |\n"
                     for i in range(60_000))    # ~4 MB of Ray status table in one stream output
    nb.cells[7].outputs = [stream(status), stream("Best trial: val_acc 0.91\n")]
    path = write(tmp_path, nb, name)
    assert path.stat().st_size > 3_000_000
    start = time.perf_counter()
    [report] = check_paths([path])
    assert time.perf_counter() - start < 2.0
    assert statuses(report)["tuning_model1"] == "pass"


def test_an_introduction_announcing_both_models_is_not_a_discussion():
    nb, name = make_notebook("student", drop="discussion")
    nb.cells.insert(0, new_markdown_cell("We compare model 1, a small ConvNet, with model 2, a pretrained ResNet50, "
                                         "to see whether the larger one is better than the small one. " * 3))
    assert statuses(grade(nb, name))["discussion"] == "fail"


def test_missing_path_is_a_clear_error(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


# --- output formats and exit codes -------------------------------------------------------------------

def test_json_matches_the_design_contract(tmp_path, capsys):
    write(tmp_path, *make_notebook("student"))
    assert main(["check", str(tmp_path / "Dogs_Versus_Cats.ipynb"), "--format", "json"]) == 0
    [report] = json.loads(capsys.readouterr().out)
    assert set(report) == {"notebook", "team", "complete", "criteria"}
    assert isinstance(report["notebook"], str) and report["team"] == "Dogs_Versus_Cats"
    assert [c["id"] for c in report["criteria"]] == list(CRITERIA)
    for criterion in report["criteria"]:
        assert set(criterion) == {"id", "status", "evidence"}
        assert criterion["status"] in ("pass", "fail", "warn") and isinstance(criterion["evidence"], str)


def test_exit_codes_and_text_format(tmp_path, capsys):
    good = write(tmp_path, *make_notebook("student"))
    nb, _ = make_notebook("student", drop="discussion")
    bad = write(tmp_path, nb, "Other_Team.ipynb")
    assert main(["check", str(good)]) == 0
    text = capsys.readouterr().out
    assert "✓ model1_small_convnet" in text and "complete: 20 pass, 0 fail, 0 warn" in text
    assert main(["check", str(good), str(bad)]) == 1
    text = capsys.readouterr().out
    assert "✗ discussion" in text and "INCOMPLETE: 19 pass, 1 fail" in text
    nb, _ = make_notebook("student", drop="run_order")
    assert main(["check", str(write(tmp_path / "..", nb, "Warned.ipynb"))]) == 0   # warnings are not failures
    assert "! run_order" in capsys.readouterr().out


def test_html_escapes_notebook_strings(tmp_path):
    nb, name = make_notebook("student")
    nb.cells.insert(1, new_markdown_cell("<script>alert('md')</script> Hello"))
    submission = next(c for c in nb.cells if "to_csv" in c.source)
    submission.source += "  # <script>alert('code')</script>"
    path = write(tmp_path, nb, name)
    out = tmp_path / "report.html"
    assert main(["check", str(path), "--format", "html", "--out", str(out)]) == 0
    html_text = out.read_text()
    [report] = check_paths([path])
    assert any("<script>" in v.evidence for v in report.criteria)     # the quote really reaches the report
    assert "<script" not in html_text and "&lt;script&gt;alert(&#x27;code&#x27;)" in html_text


def test_custom_rubric_drops_criteria_and_changes_params(tmp_path, capsys):
    rubric = json.loads((REPO / "grading" / "rubric.json").read_text())
    rubric["criteria"] = [c for c in rubric["criteria"] if c["id"] in ("executed", "model1_small_convnet")]
    rubric["criteria"][1]["params"] = {"min_weight_layers": 1, "max_weight_layers": 3}
    (tmp_path / "rubric.json").write_text(json.dumps(rubric))
    path = write(tmp_path, *make_notebook("student"))
    assert main(["check", str(path), "--rubric", str(tmp_path / "rubric.json"), "--format", "json"]) == 1
    [report] = json.loads(capsys.readouterr().out)
    assert [(c["id"], c["status"]) for c in report["criteria"]] == [("executed", "pass"),
                                                                    ("model1_small_convnet", "fail")]
    rubric["criteria"][1]["required"] = False          # reported, but no longer makes the notebook incomplete
    (tmp_path / "rubric.json").write_text(json.dumps(rubric))
    assert main(["check", str(path), "--rubric", str(tmp_path / "rubric.json"), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["criteria"][1]["status"] == "fail"
    rubric["criteria"][0]["id"] = "exectued"
    (tmp_path / "rubric.json").write_text(json.dumps(rubric))
    assert main(["check", str(path), "--rubric", str(tmp_path / "rubric.json")]) == 2
    assert "'exectued' has no detector" in capsys.readouterr().err


def test_grading_imports_neither_torch_nor_labkit(tmp_path):
    path = write(tmp_path, *make_notebook("student"))
    code = ("import sys, grading\n"
            f"reports = list(grading.check_paths([{str(path)!r}]))\n"
            "assert reports[0].complete\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'labkit', 'pandas')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- match and submission ----------------------------------------------------------------------------

def test_match_pairs_teams_and_notebooks(tmp_path, capsys):
    board = tmp_path / "leaderboard.csv"
    board.write_text("Rank,TeamId,TeamName,LastSubmissionDate,Score,SubmissionCount,TeamMemberUserNames\n"
                     "1,11,Dogs Versus Cats,2023-03-01,0.98,3,a\n2,12,the-best team!,2023-03-01,0.97,2,b\n"
                     "3,13,Lonely Wolves,2023-03-01,0.90,1,c\n")
    subs = tmp_path / "subs"
    subs.mkdir()
    for stem in ("Dogs_Versus_Cats", "The_Best_Team", "Lonely_Wolfs_v2", "Stray"):
        (subs / f"{stem}.ipynb").write_text("{}")
    assert main(["match", "--leaderboard", str(board), str(subs), "--format", "json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["pairs"] == [
        {"team": "Dogs Versus Cats", "notebook": "Dogs_Versus_Cats.ipynb", "match": "exact"},
        {"team": "the-best team!", "notebook": "The_Best_Team.ipynb", "match": "normalised"}]
    assert result["teams_without_notebook"] == [{"team": "Lonely Wolves", "closest": "Lonely_Wolfs_v2.ipynb"}]
    assert {n["notebook"] for n in result["notebooks_without_team"]} == {"Lonely_Wolfs_v2.ipynb", "Stray.ipynb"}
    board.write_text("Rank,Score\n1,0.5\n")
    assert main(["match", "--leaderboard", str(board), str(subs)]) == 2
    assert "no TeamName column" in capsys.readouterr().err


def test_submission_validation(tmp_path, capsys):
    example = tmp_path / "example.csv"
    example.write_text("Filename,Label\n" + "".join(f"{n}.png,0\n" for n in range(10001, 10006)))
    good = tmp_path / "submission.csv"
    good.write_text("Filename,Label\n" + "".join(f"{n}.png,{n % 4}\n" for n in range(10001, 10006)))
    assert main(["submission", str(good), "--example", str(example)]) == 0
    assert "valid (5 rows)" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text("Filename,Label\n10001.png,0\n10002.png,7\n10002.png,1\n99.png,1\n")
    assert main(["submission", str(bad), "--example", str(example)]) == 1
    out = capsys.readouterr().out
    assert "line 3: label '7' is not one of 0, 1, 2, 3" in out
    assert "line 4: '10002.png' is listed twice" in out and "line 5: '99.png' is not a test file" in out
    assert "3 test files have no prediction" in out
    (tmp_path / "header.csv").write_text("id,label\n10001.png,0\n")
    assert main(["submission", str(tmp_path / "header.csv"), "--example", str(example)]) == 1
    assert "line 1: header" in capsys.readouterr().out
    assert main(["submission", str(tmp_path / "missing.csv"), "--example", str(example)]) == 2


def test_the_fix_is_cited_from_its_own_section_not_from_a_data_helper_that_can_weight_samples():
    # a loader helper that offers a weighted sampler comes first; the fix proper sits under its own heading
    nb = new_notebook(cells=[
        new_markdown_cell("## Data loading"),
        new_code_cell("def make_loader(ds, weights=None):\n"
                      "    sampler = WeightedRandomSampler(weights, len(ds)) if weights is not None else None\n"
                      "    return DataLoader(ds, sampler=sampler)", execution_count=1),
        new_markdown_cell("## Fixing the worst confusion\n\nNormal patches are confused with cancer ones."),
        new_code_cell("weights = compute_class_weight('balanced', classes=classes, y=labels)\n"
                      "model = fit(model, loss=CrossEntropyLoss(weight=weights))", execution_count=2),
    ])
    verdict = next(v for v in grade(nb).criteria if v.id == "confusion_fix")
    assert verdict.status == "pass" and "cell 4" in verdict.evidence, verdict.evidence
