"""labkit.diagnostics on known predictions and a tiny model (no labkit.data, no labkit.train needed)."""
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from labkit import CLASS_NAMES
from labkit import diagnostics as dg
from labkit.train import Predictions

torch.set_num_threads(1)

# 10 per class; class 2 (muscle) loses 4 to class 0, class 1 loses 2 to class 3: rate 40% vs 20%,
# while the count-largest cell would be the same here, so a second case below separates rate from count.
Y_TRUE = np.repeat([0, 1, 2, 3], 10)
Y_PRED = Y_TRUE.copy()
Y_PRED[20:24] = 0
Y_PRED[10:12] = 3


def preds(labels, predicted):
    probs = np.eye(4)[predicted] * 0.7 + 0.075
    return SimpleNamespace(labels=np.asarray(labels), preds=np.asarray(predicted), probs=probs)


def history(n=5):
    return {"epoch": list(range(1, n + 1)), "train_loss": list(np.linspace(1.2, 0.3, n)),
            "train_acc": list(np.linspace(0.5, 0.9, n)), "val_loss": list(np.linspace(1.1, 0.5, n)),
            "val_acc": list(np.linspace(0.55, 0.85, n)), "lr": [1e-3] * n, "seconds": [1.0] * n}


def test_confusion_counts_and_rates():
    counts, rates = dg.rates_matrix(Y_TRUE, Y_PRED)
    assert counts[2, 0] == 4 and counts[1, 3] == 2 and counts[0, 0] == 10
    assert rates[2, 2] == pytest.approx(0.6)
    np.testing.assert_allclose(rates.sum(axis=1), 1.0)


def test_absent_class_gives_zero_row_not_nan():
    _counts, rates = dg.rates_matrix([0, 0, 1], [0, 1, 1])
    assert not np.isnan(rates).any() and rates[3].sum() == 0


def test_per_class_table_matches_known_predictions():
    table = dg.per_class_table(Y_TRUE, Y_PRED)
    assert list(table.index[:4]) == list(CLASS_NAMES)
    assert {"accuracy", "macro avg"} <= set(table.index)
    assert table.loc["muscle", "recall"] == pytest.approx(0.6)
    assert table.loc["normal epithelial", "precision"] == pytest.approx(10 / 14)
    assert table.loc["accuracy", "f1-score"] == pytest.approx(34 / 40)
    assert table.loc["muscle", "support"] == 10


def test_most_confused_pair_uses_rate_not_count():
    pair = dg.most_confused_pair(Y_TRUE, Y_PRED)
    assert (pair.true_class, pair.predicted_class, pair.count) == (2, 0, 4)
    assert pair.rate == pytest.approx(0.4)
    assert "muscle" in pair.text and "normal epithelial" in pair.text
    # 100 cancer patches lose 10 to immune (count 10, rate 10%); 5 muscle lose 3 to normal (count 3, 60%)
    y_true = np.array([1] * 100 + [2] * 5)
    y_pred = y_true.copy()
    y_pred[:10] = 3
    y_pred[100:103] = 0
    pair = dg.most_confused_pair(y_true, y_pred)
    assert (pair.true_class, pair.predicted_class) == (2, 0)


def test_most_confused_pair_when_all_correct():
    pair = dg.most_confused_pair([0, 1, 2], [0, 1, 2])
    assert pair is None and "No validation patch" in dg.describe_pair(pair)


def test_figures_build_and_close(tmp_path):
    figs = [
        dg.curves_figure(history(), "model1"),
        dg.comparison_figure({"model1": history(6), "model2": history(3)}),
        dg.confusion_figure(Y_TRUE, Y_PRED, "model1"),
        dg.misclassified_gallery(np.random.default_rng(0).integers(0, 255, (40, 3, 100, 100), dtype=np.uint8),
                                 Y_TRUE, Y_PRED, preds(Y_TRUE, Y_PRED).probs),
    ]
    # the confusion figure has two colour bars besides its two matrices
    assert len(figs[2].axes) == 4
    for i, fig in enumerate(figs):
        fig.savefig(tmp_path / f"{i}.png")
        plt.close(fig)
    with pytest.raises(ValueError, match="lacks"):
        dg.curves_figure({"epoch": [1]})


def test_sample_weights_favour_the_pair_true_class():
    labels = np.array([0] * 80 + [2] * 20)
    w = dg.pair_sample_weights(labels, true_class=2, boost=2.0)
    share_of_class2 = w[labels == 2].sum() / w.sum()
    assert share_of_class2 == pytest.approx(2 / 3)  # balanced would be 1/2 (two classes present)


def test_the_verdict_quotes_the_pair_and_balanced_accuracy_of_this_fix():
    before = preds(Y_TRUE, Y_PRED)
    fixed = Y_PRED.copy()
    fixed[20:23] = 2  # muscle -> normal drops from 4 to 1
    verdict = dg.judge_fix(dg.FixResult(before, preds(Y_TRUE, fixed), dg.most_confused_pair(Y_TRUE, Y_PRED),
                                        "Test fix."), "model1")
    assert (verdict.pair_count_before, verdict.pair_count_after, verdict.pair_support) == (4, 1, 10)
    assert "'muscle' taken for 'normal epithelial' went from 4 to 1 of 10 patches" in verdict.text
    assert f"from {verdict.balanced_before:.1%} to {verdict.balanced_after:.1%}" in verdict.text
    worse = Y_PRED.copy()
    worse[24:26] = 0
    verdict = dg.judge_fix(dg.FixResult(before, preds(Y_TRUE, worse), dg.most_confused_pair(Y_TRUE, Y_PRED),
                                        "Test fix."), "model1")
    assert not verdict.adopted and "**not adopted**, as the targeted confusion did not fall." in verdict.text


# ---- the fix experiment end to end with a tiny model -------------------------------------------
class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(3, 4)

    def forward(self, x):
        return self.head(x.mean(dim=(2, 3)))


def tiny_fit(model, train_loader, val_loader, *, epochs, lr, class_weights, device, seed):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss(weight=class_weights)
    for _ in range(epochs):
        for x, y in train_loader:
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()


@torch.no_grad()
def tiny_evaluate(model, loader, device="cpu", tta=False):
    model.eval()
    labels, probs = [], []
    for x, y in loader:
        views = [x, x.flip(-1), x.rot90(1, (2, 3))] if tta else [x]
        probs.append(torch.stack([model(v).softmax(1) for v in views]).mean(0))
        labels.append(y)
    probs = torch.cat(probs).numpy()
    return SimpleNamespace(labels=torch.cat(labels).numpy(), preds=probs.argmax(1), probs=probs)


def make_data(n_per_class, seed):
    g = torch.Generator().manual_seed(seed)
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(n_per_class)])
    centres = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0.8, 0.3, 0], [0, 0, 1.0]])  # 0 and 2 overlap
    x = centres[labels][:, :, None, None] + 0.4 * torch.randn(len(labels), 3, 8, 8, generator=g)
    return TensorDataset(x, labels), labels


def test_fix_experiment_runs_and_reports_both_sides(tmp_path):
    train_ds, train_labels = make_data([60, 60, 12, 60], seed=0)
    val_ds, _ = make_data([20, 20, 20, 20], seed=1)
    val_loader = DataLoader(val_ds, batch_size=32)
    torch.manual_seed(0)
    start = TinyNet()
    tiny_fit(start, DataLoader(train_ds, batch_size=32, shuffle=True), None,
             epochs=3, lr=0.05, class_weights=None, device="cpu", seed=0)
    state = {k: v.clone() for k, v in start.state_dict().items()}

    def factory():
        model = TinyNet()
        model.load_state_dict(state)
        return model

    for rebalance in ("sampler", "loss"):
        result = dg.fix_experiment(factory(), train_ds, train_labels, val_loader,
                                   dg.FixSettings(rebalance=rebalance, epochs=2, lr=0.02, seed=0),
                                   fit=tiny_fit, evaluate=tiny_evaluate)
        assert len(result.before.preds) == len(result.after.preds) == 80
        assert result.after_without_tta is not None
        assert result.pair == dg.most_confused_pair(result.before.labels, result.before.preds)
        np.testing.assert_array_equal(result.before.labels, result.after.labels)  # same split
        assert result.pair.true_name in dg.judge_fix(result, "model1").text
        fig = dg.fix_figure(result)
        fig.savefig(tmp_path / f"fix_{rebalance}.png")
        plt.close(fig)
    with pytest.raises(ValueError, match="rebalance"):
        dg.FixSettings(rebalance="oversample")


def test_fix_experiment_with_labkit_train_fit_and_evaluate():
    train = pytest.importorskip("labkit.train")
    train_ds, train_labels = make_data([40, 40, 8, 40], seed=2)
    val_ds, _ = make_data([10, 10, 10, 10], seed=3)
    val_loader = DataLoader(val_ds, batch_size=20)
    result = dg.fix_experiment(TinyNet(), train_ds, train_labels, val_loader,
                               dg.FixSettings(epochs=1, lr=0.01, batch_size=32, seed=0), fit_kwargs={"log": None})
    assert isinstance(result.after, train.Predictions) and len(result.after.preds) == 40
    assert result.settings["rebalance"] == "sampler" and "test-time augmentation" in result.description
    assert result.pair.true_name in dg.judge_fix(result, "model1").text


def _fix_result(labels, before, after):
    from labkit.diagnostics import FixResult, most_confused_pair

    p = lambda preds: SimpleNamespace(labels=np.asarray(labels), preds=np.asarray(preds))
    return FixResult(p(before), p(after), most_confused_pair(labels, before), "test fix")


def _labels_and_before(n=100):
    """n patches per class; class 0 taken for class 1 in 40% of its patches, everything else right."""
    labels = np.repeat(np.arange(4), n)
    before = labels.copy()
    before[:int(0.4 * n)] = 1
    return labels, before


def test_a_fix_that_clearly_removes_the_pair_is_adopted():
    from labkit.diagnostics import judge_fix

    labels, before = _labels_and_before()
    verdict = judge_fix(_fix_result(labels, before, labels), "model1")
    assert verdict.pair == [0, 1] and verdict.pair_rate_before == pytest.approx(0.4) and verdict.pair_rate_after == 0
    assert verdict.balanced_low > 0 and verdict.adopted and not verdict.collapsed
    assert verdict.text.startswith("**model1**:") and verdict.text.endswith("**adopted**.")


def test_a_fix_within_the_noise_band_is_not_adopted():
    from labkit.diagnostics import judge_fix

    labels, before = _labels_and_before()
    after = before.copy()
    after[0] = 0  # one patch of the pair fixed: the change is far inside a bootstrap's band
    verdict = judge_fix(_fix_result(labels, before, after), "model1")
    assert verdict.pair_rate_after < verdict.pair_rate_before
    assert verdict.balanced_low <= 0 < verdict.balanced_high and not verdict.adopted
    assert verdict.text.endswith("**not adopted**, as its interval includes zero.")


def test_a_collapsed_class_is_named_and_blocks_adoption():
    from labkit.diagnostics import judge_fix

    labels, before = _labels_and_before()
    after = labels.copy()          # the pair is gone ...
    after[np.flatnonzero(labels == 3)[:30]] = 2  # ... but 30% of class 3 now go to class 2
    verdict = judge_fix(_fix_result(labels, before, after), "model2")
    assert verdict.collapsed == [CLASS_NAMES[3]] and not verdict.adopted
    assert f"**not adopted**, as recall collapsed for '{CLASS_NAMES[3]}' (100.0% to 70.0%)." in verdict.text


def test_fix_text_names_a_class_whose_recall_the_fix_took():
    labels = np.repeat([1, 3], 30)
    before = Predictions(labels, np.where(np.arange(60) < 10, 3, labels), np.full((60, 4), 0.25))  # 1 taken for 3
    after = Predictions(labels, np.where(np.arange(60) >= 45, 1, labels), np.full((60, 4), 0.25))  # 3 taken for 1
    verdict = dg.judge_fix(SimpleNamespace(before=before, after=after, pair=dg.most_confused_pair(labels, before.preds),
                                           after_without_tta=None), "model1")
    assert verdict.collapsed == ["immune"] and not verdict.adopted
    assert "**not adopted**, as recall collapsed for 'immune' (100.0% to 50.0%)." in verdict.text


def test_the_fixs_balanced_sampler_is_a_weighted_draw_made_on_the_device():
    """The fix's training loader draws whole batches of indices in proportion to pair_sample_weights
    (no per-item sampler), so the rare class of the pair is drawn about as often as the others, x boost."""
    from labkit.data import BatchIndices, NucleiDataset

    labels = torch.tensor([0] * 200 + [1] * 200 + [2] * 20 + [3] * 200)
    dataset = NucleiDataset(torch.zeros(len(labels), 3, 100, 100, dtype=torch.uint8), labels,
                            mean=[0.5] * 3, std=[0.2] * 3, augment=True)
    before = SimpleNamespace(labels=np.array([0, 1, 2, 2, 3]), preds=np.array([0, 1, 0, 0, 3]),
                             probs=np.full((5, 4), 0.25))
    seen = []

    def recording_fit(model, train_loader, val_loader, **kwargs):
        assert isinstance(train_loader.batch_sampler, BatchIndices)
        seen.extend(torch.cat([y for _ in range(10) for _, y in train_loader]).tolist())

    dg.fix_experiment(TinyNet(), dataset, labels, None, dg.FixSettings(epochs=1, tta=False, boost=2.0, seed=0),
                      before=before, fit=recording_fit, evaluate=lambda *a, **k: before)
    shares = np.bincount(seen, minlength=4) / len(seen)
    np.testing.assert_allclose(shares, [0.2, 0.2, 0.4, 0.2], atol=0.03)  # class 2 (taken for 0) x2


def test_share_label_never_rounds_to_a_whole_class_unless_exact():
    assert dg.share_label(284 / 285) == "99.6%"
    assert dg.share_label(9999 / 10000) == "99.9%"   # would round to 100.0%
    assert dg.share_label(1 / 10000) == "0.1%"       # would round to 0.0%
    assert dg.share_label(1.0) == "100.0%" and dg.share_label(0.0) == "0.0%"


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_rates_panels_show_284_of_285_as_99_6_percent():
    y_true = np.array([0] * 285 + [1] * 5 + [2] * 5 + [3] * 5)
    y_pred = y_true.copy()
    y_pred[0] = 3
    fig = dg.confusion_figure(y_true, y_pred)
    assert "99.6%" in _texts(fig) and "100%" not in _texts(fig)
    plt.close(fig)


def test_fix_figure_recall_axis_ends_at_100_percent():
    fixed = Y_PRED.copy()
    fixed[20:23] = 2
    result = dg.FixResult(preds(Y_TRUE, Y_PRED), preds(Y_TRUE, fixed), dg.most_confused_pair(Y_TRUE, Y_PRED), "x")
    fig = dg.fix_figure(result, model="model1")
    recall_axis = next(ax for ax in fig.axes if ax.get_ylabel() == "recall")
    assert recall_axis.get_ylim() == (0.0, 100.0)
    plt.close(fig)


def test_curves_share_one_accuracy_axis_and_plot_loss_on_a_log_scale():
    steep = history(4)
    steep["val_loss"] = [8.96, 0.6, 0.5, 0.45]  # a random start's first epoch
    figs = [dg.curves_figure(history(5), "a"), dg.curves_figure(steep, "b")]
    for fig, log in zip(figs, (False, True)):
        loss, acc = fig.axes[:2]
        # log only where the losses span more than a factor of 5 (here 0.3..1.2 does not; 0.45..8.96 does)
        assert (loss.get_yscale() == "log") is log and ("log scale" in loss.get_ylabel()) is log
        assert acc.get_ylim() == (0.0, 100.0)
        plt.close(fig)


def test_a_single_epoch_gets_whole_epoch_ticks():
    fig = dg.curves_figure(history(1), "one epoch")
    ticks = fig.axes[0].get_xticks()
    assert all(float(t).is_integer() for t in ticks) and 1 in ticks
    plt.close(fig)
