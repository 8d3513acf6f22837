"""Evidence rests on use: a sampler, class weights or a Tuner count where the code that ran uses them (called,
passed or fitted), never where they are only imported, named in a comment or defined."""
from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from grading import grade_notebook, parse_notebook

FIX_SECTION = new_markdown_cell("## Fixing the worst confusion\n\nNormal nuclei are confused with cancer ones.")


def verdict(cells, criterion):
    nb = new_notebook(cells=cells)
    for count, cell in enumerate((c for c in nb.cells if c.cell_type == "code"), start=1):
        cell.execution_count = count
    report = grade_notebook(parse_notebook(nbformat.writes(nb), "Team.ipynb"))
    return next(v for v in report.criteria if v.id == criterion)


def test_a_sampler_imported_named_in_a_comment_or_defined_in_a_helper_nobody_calls_is_no_fix():
    fix = verdict([
        new_code_cell("from torch.utils.data import WeightedRandomSampler\n"
                      "from sklearn.utils.class_weight import compute_class_weight"),
        FIX_SECTION,
        new_code_cell("# sampler = WeightedRandomSampler(weights, len(weights))\n"
                      "def balanced_loader(ds, weights):\n"
                      "    return DataLoader(ds, sampler=WeightedRandomSampler(weights, len(weights)))\n"
                      "class_weights = None\nprint('WeightedRandomSampler')"),
        new_code_cell("loss_fn = nn.CrossEntropyLoss(weight=None)"),
    ], "confusion_fix")
    assert fix.status == "fail", fix.evidence


def test_a_sampler_called_counts_and_the_evidence_shows_where_it_is_handed_on():
    fix = verdict([
        new_code_cell("from torch.utils.data import WeightedRandomSampler"),
        FIX_SECTION,
        new_code_cell("sampler = WeightedRandomSampler(sample_weights, len(sample_weights))"),
        new_code_cell("train_loader = DataLoader(train_ds, batch_size=64, sampler=sampler)"),
        new_code_cell("history = fit(model, train_loader, epochs=5)"),
    ], "confusion_fix")
    assert fix.status == "pass", fix.evidence
    assert fix.evidence.startswith('cell 3 "sampler = WeightedRandomSampler('), fix.evidence
    assert 'calls WeightedRandomSampler → cell 4 "train_loader = DataLoader(train_ds, batch_size=64, sampler=' \
           'sampler)" → cell 5 "history = fit(model, train_loader, epochs=5)"' in fix.evidence, fix.evidence


def test_class_weights_count_when_passed_to_the_loss_or_into_a_helper_that_uses_them():
    passed = verdict([
        FIX_SECTION,
        new_code_cell("class_weights = torch.tensor([2.0, 1.0, 2.0, 1.0])"),
        new_code_cell("criterion = nn.CrossEntropyLoss(class_weights.to(device))"),
    ], "confusion_fix")
    assert passed.status == "pass" and passed.evidence.startswith("cell 3 "), passed.evidence
    in_helper = verdict([
        new_code_cell("def train(model, epochs):\n    loss_fn = nn.CrossEntropyLoss(weight=w)\n    ..."),
        FIX_SECTION,
        new_code_cell("train(model, 5)"),
    ], "confusion_fix")
    assert in_helper.status == "pass" and in_helper.evidence.startswith('cell 3 "train(model, 5)"'), in_helper.evidence
    assert "CrossEntropyLoss is given class weights" in in_helper.evidence


def test_augmentation_imported_but_never_built_is_no_augmentation():
    fix = verdict([
        new_code_cell("from torchvision.transforms import RandomHorizontalFlip, ColorJitter"),
        FIX_SECTION,
        new_code_cell("model = fit(model, train_loader)"),
    ], "confusion_fix")
    assert fix.status == "fail" and fix.evidence.startswith("no class weights"), fix.evidence


def _tuning(cells):
    return verdict([new_markdown_cell("## Model 1: own CNN"), new_code_cell("model1 = Net()"), *cells],
                   "tuning_model1")


def test_a_tuner_built_but_never_fitted_searched_nothing():
    built = _tuning([new_code_cell("tuner = tune.Tuner(tune.with_parameters(train, model=model1), "
                                   "param_space=space)\nprint('ready')",
                                   outputs=[nbformat.v4.new_output("stream", name="stdout", text="ready\n")])])
    assert built.status == "fail", built.evidence


def test_a_tuner_counts_where_it_is_fitted():
    fitted = _tuning([new_code_cell("tuner = tune.Tuner(tune.with_parameters(train, model=model1), "
                                    "param_space=space)"),
                      new_code_cell("results = tuner.fit()",
                                    outputs=[nbformat.v4.new_output("stream", name="stdout",
                                                                    text="Trial status: 10 TERMINATED\n")])])
    assert fitted.status == "pass" and fitted.evidence.startswith(
        'cell 4 "results = tuner.fit()" (tuner ← cell 3 "tuner = tune.Tuner(tune.with_parameters('), fitted.evidence
    chained = _tuning([new_code_cell("results = tune.Tuner(train_model1, param_space=space).fit()",
                                     outputs=[nbformat.v4.new_output("stream", name="stdout",
                                                                     text="Trial status: 10 TERMINATED\n")])])
    assert chained.status == "pass", chained.evidence


def test_a_captum_method_named_only_in_a_plot_title_is_no_attribution():
    figure = nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=",
                                                          "text/plain": "<Figure size 640x480 with 1 Axes>"})
    named = verdict([new_markdown_cell("## Model 1: own CNN"), new_code_cell("model1 = Net()"),
                     new_code_cell("plt.imshow(images[0])\nplt.title('Saliency(model1) would go here')\nplt.show()",
                                   outputs=[figure])], "captum_model1")
    assert named.status == "fail", named.evidence
    called = verdict([new_markdown_cell("## Model 1: own CNN"), new_code_cell("model1 = Net()"),
                      new_code_cell("attr = Saliency(model1).attribute(images, target=labels)\n"
                                    "plt.imshow(attr[0].sum(0))\nplt.show()", outputs=[figure])], "captum_model1")
    assert called.status == "pass", called.evidence
