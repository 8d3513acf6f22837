"""Budgets instead of epochs, one accuracy everywhere, and the real-data path on the real-image proxy."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from labkit import data as labdata
from labkit import tuning_report
from labkit.profiles import PROFILES, budget_epochs, get_profile
from labkit.train import History, describe_stop, fit, kept_index, kept_val_acc

proxy_data = pytest.importorskip("bench.proxy_data", reason="scikit-image (the test extra) is not installed")


# ---------------------------------------------------------------------------------------------------
# budget -> epochs
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("steps, per_epoch, cap, floor, expected", [
    (220, 32, 40, 2, 7),     # the standard stub: 2,000 images of 64 -> 32 steps an epoch -> 7 epochs
    (300, 7, 40, 2, 40),     # 432 images: 43 epochs wanted, capped at 40 (was 8 epochs = 56 steps)
    (300, 133, 40, 2, 3),    # 8,500 images: ceil(2.3) = 3
    (300, 1000, 40, 2, 2),   # a huge set still gets the minimum
    (1, 5, 40, 1, 1),
])
def test_budget_epochs(steps, per_epoch, cap, floor, expected):
    assert budget_epochs(steps, per_epoch, cap, floor) == expected


def test_budget_epochs_refuses_an_empty_training_split():
    with pytest.raises(ValueError, match="steps_per_epoch"):
        budget_epochs(100, 0, 10)


def test_stub_profiles_keep_their_cost_and_small_sets_get_more_epochs():
    standard = get_profile("standard")
    n_train = round(standard.stub_train * (1 - standard.val_fraction))
    assert (standard.epochs_for("model1", n_train), standard.epochs_for("model2", n_train)) == (7, 3)
    quick = get_profile("quick")
    n_quick = round(quick.stub_train * (1 - quick.val_fraction))
    assert (quick.epochs_for("model1", n_quick), quick.epochs_for("model2", n_quick)) == (2, 1)
    # a small real set (432 training images) gets model1's whole budget of optimizer steps
    assert standard.epochs_for("model1", 432) * math.ceil(432 / standard.batch_size) >= standard.model1_steps
    for profile in PROFILES.values():  # a trial never gets more than a final run
        assert profile.trial_epochs("model1", 432) <= profile.epochs_for("model1", 432)


def _loaders(n_train=48, n_val=24, batch=8):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n_train + n_val, 3, 16, 16, generator=generator)
    y = (x[:, 0].mean((1, 2)) > 0).long()  # learnable: the sign of the red channel's mean
    x[:, 0] += y[:, None, None] * 0.5
    train = torch.utils.data.TensorDataset(x[:n_train], y[:n_train])
    val = torch.utils.data.TensorDataset(x[n_train:], y[n_train:])
    return (torch.utils.data.DataLoader(train, batch_size=batch, shuffle=True),
            torch.utils.data.DataLoader(val, batch_size=batch))


def _tiny_model():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(4, 2))


def test_fit_turns_a_step_budget_into_epochs_and_schedules_over_them():
    train_loader, val_loader = _loaders()  # 6 batches an epoch
    result = fit(_tiny_model(), train_loader, val_loader, max_steps=20, epochs=10, schedule="cosine", lr=1e-2,
                 log=None, amp=False, channels_last=False)
    assert result.planned_epochs == len(result.history) == 4  # ceil(20 / 6)
    # the cosine schedule spans exactly the planned steps: the rate has decayed to ~0 at the last one
    assert result.history.lr[-1] < 1e-6 < result.history.lr[0]
    capped = fit(_tiny_model(), train_loader, val_loader, max_steps=600, epochs=3, log=None, amp=False,
                 channels_last=False)
    assert capped.planned_epochs == 3


def test_early_stopping_can_end_a_budget_sooner():
    train_loader, val_loader = _loaders()
    # a learning rate this high makes validation loss bounce: with patience 1 the run stops well before 30
    result = fit(_tiny_model(), train_loader, val_loader, max_steps=6 * 30, patience=1, lr=0.5,
                 optimizer="sgd", schedule="none", log=None, amp=False, channels_last=False)
    assert result.planned_epochs == 30
    assert len(result.history) == result.best_epoch + 1 < 30
    assert result.best_val_acc == kept_val_acc(result.history)
    # the steps it took, not the budget's round number: 6 batches an epoch
    assert describe_stop(result, 6) == (f"it ran {len(result.history)} of its 30 epochs, {6 * len(result.history)} "
                                        "optimizer steps of 6 batches an epoch: early stopping ended it 1 epoch "
                                        "after the lowest validation loss")


def test_kept_accuracy_is_the_lowest_loss_epoch_not_the_highest_accuracy():
    h = History(epoch=[1, 2, 3], train_loss=[1, 0.8, 0.6], train_acc=[0.5, 0.7, 0.9],
                val_loss=[0.9, 0.5, 0.7], val_acc=[0.6, 0.8, 0.85], lr=[1e-3] * 3, seconds=[1.0] * 3)
    assert kept_index(h) == kept_index(h.to_dict()) == 1
    assert kept_val_acc(h) == kept_val_acc(h.to_dict()) == 0.8  # not max(val_acc) = 0.85


def test_curves_figure_marks_the_kept_epoch_and_its_accuracy():
    from labkit.diagnostics import curves_figure

    h = {"epoch": [1, 2, 3], "train_loss": [1, 0.8, 0.6], "train_acc": [0.5, 0.7, 0.9],
         "val_loss": [0.9, 0.5, 0.7], "val_acc": [0.6, 0.8, 0.85], "lr": [1e-3] * 3, "seconds": [1.0] * 3}
    fig = curves_figure(h, "t")
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "kept epoch 2: val 80.0%" in texts
    assert not any("85.0" in t for t in texts)


def test_submission_choice_uses_the_kept_checkpoint(tmp_path):
    from labkit.artifacts import RunDir
    from labkit.results import final_val_acc

    run = RunDir(tmp_path)
    # model2 once touched 0.9 but kept an epoch at 0.7; model1 kept 0.8
    run.save_json("model1/final_history.json", {"val_loss": [0.6, 0.4], "val_acc": [0.7, 0.8]})
    run.save_json("model2/final_history.json", {"val_loss": [0.5, 0.9], "val_acc": [0.7, 0.9]})
    accs = {name: final_val_acc(run, name) for name in ("model1", "model2")}
    assert accs == {"model1": 0.8, "model2": 0.7}


# ---------------------------------------------------------------------------------------------------
# tuning results: the baseline and the spread
# ---------------------------------------------------------------------------------------------------
def _search_result(best_trial, statuses, scores):
    tune = pytest.importorskip("labkit.tune")
    table = pd.DataFrame({"trial": range(len(scores)), "best_val_acc": scores, "status": statuses,
                          "stopped_early": ["yes" if s == "stopped early" else "no" for s in statuses]})
    return tune.SearchResult(kind="model1", table=table, best_config={"lr": 1e-3}, curves=pd.DataFrame(),
                             best_trial=best_trial, best_score=scores[best_trial], max_epochs=4,
                             baseline_trial=0, seconds=1.0)


def test_search_result_says_when_the_baseline_wins_and_shows_the_spread():
    result = _search_result(0, ["completed", "completed", "stopped early", "completed"], [0.9, 0.7, 0.95, 0.8])
    assert result.winner_is_baseline
    assert result.spread == {"completed": 3, "ran": 4, "best": 0.9, "median": 0.8, "worst": 0.7,
                             "worst_of_all": 0.7}
    text = tuning_report.describe_search(tuning_report.search_record(result))
    # 95% came from a stopped trial: the best is chosen among those that ran every epoch
    assert "The best, at 90.0%, is the baseline's own settings: model1's baseline stays final" in text
    assert "ASHA stopped 1 after 2 epochs" in text
    assert not _search_result(3, ["completed"] * 4, [0.9, 0.7, 0.8, 0.95]).winner_is_baseline


def test_a_search_in_which_asha_stopped_nothing_does_not_mention_stops():
    result = _search_result(0, ["completed"] * 4, [0.9, 0.7, 0.8, 0.85])
    text = tuning_report.describe_search(tuning_report.search_record(result))
    assert text.startswith("4 trials of up to 4 epochs.") and "ASHA" not in text


@pytest.mark.parametrize("epochs, grace", [(1, 1), (2, 2), (4, 2), (8, 2), (19, 6)])
def test_asha_never_judges_a_setting_on_one_epoch_when_it_could_wait(epochs, grace):
    tune = pytest.importorskip("labkit.tune")
    assert tune.asha_grace_period(epochs) == grace


# ---------------------------------------------------------------------------------------------------
# the real-image proxy and the real-data path
# ---------------------------------------------------------------------------------------------------
def test_proxy_is_in_the_kaggle_layout_and_deterministic(tmp_path):
    a = proxy_data.make_proxy(tmp_path / "a", n_train=20, n_test=6, seed=3)
    b = proxy_data.make_proxy(tmp_path / "b", n_train=20, n_test=6, seed=3)
    train = pd.read_csv(a / "train.csv")
    example = pd.read_csv(a / "example.csv")
    answers = pd.read_csv(a / proxy_data.ANSWERS)
    assert list(train.columns) == ["Filename", "Label"] and len(train) == 20
    assert example.Filename.tolist() == [f"{10001 + i}.png" for i in range(6)] == answers.Filename.tolist()
    assert (example.Label == 0).all() and answers.Label.between(0, 3).all()
    assert np.bincount(train.Label, minlength=4).tolist() == proxy_data.class_counts(20, balanced=False)
    for name in ("train.csv", "example.csv", "train/1.png", "test/10006.png"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    c = proxy_data.make_proxy(tmp_path / "c", n_train=20, n_test=6, seed=4)
    assert (a / "train/1.png").read_bytes() != (c / "train/1.png").read_bytes()


def test_proxy_class_mix_follows_the_competition():
    assert proxy_data.class_counts(1000, balanced=False) == [98, 458, 88, 356]
    assert proxy_data.class_counts(10, balanced=True) == [3, 3, 2, 2]


def test_proxy_colour_does_not_give_the_class_away(tmp_path):
    # same colour and brightness distributions for every class: the per-class mean colours are close
    out = proxy_data.make_proxy(tmp_path / "p", n_train=80, n_test=4, seed=0, balanced=True)
    data = labdata.prepare(out, tmp_path / "cache", val_fraction=0.25, seed=0)
    means = torch.stack([data.train_images[data.train_labels == c].float().mean((0, 2, 3)) for c in range(4)])
    assert (means.max(0).values - means.min(0).values).max() < 20  # of 255


@pytest.mark.slow
def test_model1_learns_the_real_image_proxy_beyond_the_majority_class(tmp_path):
    from labkit.data import make_loader
    from labkit.models import build_model1
    from labkit.recipes import baseline_config

    out = proxy_data.make_proxy(tmp_path / "proxy", n_train=240, n_test=4, seed=0)
    data = labdata.prepare(out, tmp_path / "cache", val_fraction=0.25, seed=0)  # the path a real build takes
    assert data.train_images.shape[1:] == (3, 100, 100)
    val_labels = data.train_labels[data.val_idx]
    majority = val_labels.bincount().max().item() / len(val_labels)
    config = baseline_config("model1", get_profile("standard"))
    torch.manual_seed(0)
    model = build_model1(config)
    train_loader = make_loader(data.train_dataset(augment=True, seed=0), 32, shuffle=True)
    val_loader = make_loader(data.val_dataset(), 32, shuffle=False)
    result = fit(model, train_loader, val_loader, max_steps=80, epochs=20, patience=6, lr=config["lr"],
                 weight_decay=config["weight_decay"], log=None, seed=0)
    assert result.planned_epochs == math.ceil(80 / len(train_loader))
    print(f"model1 on the proxy: {result.best_val_acc:.1%} validation accuracy, majority class {majority:.1%}")
    assert result.best_val_acc > majority + 0.15, (result.best_val_acc, majority)
