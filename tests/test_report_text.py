"""The tables and sentences the notebook shows around tuning, per-class scores and the model comparison:
rounded, without NaN, and worded from the numbers (no Ray needed: a SearchResult is built by hand)."""
import math

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest

from labkit import diagnostics, results, tuning_report
from labkit.artifacts import RunDir
from labkit.train import History
from labkit.tune import SearchResult


def _search(scores, seconds=(43.620908, 12.5, 30.0)):
    rows = []
    for trial, (score, secs) in enumerate(zip(scores, seconds)):
        failed = score is None
        rows.append({"trial": trial, "lr": 0.00123456, "channels": "16-32-64", "best_val_acc": math.nan if failed
                     else score, "best_val_loss": math.nan if failed else 1.23456, "best_epoch": 0 if failed else 2,
                     "epochs_run": 0 if failed else 2, "stopped_early": "no",
                     "status": "failed" if failed else "completed", "seconds": secs})
    best = max((r for r in rows if r["status"] != "failed"), key=lambda r: r["best_val_acc"])
    return SearchResult(kind="model1", table=pd.DataFrame(rows),
                        best_config={"lr": 0.00123456, "channels": "16-32-64"},
                        curves=pd.DataFrame(columns=["trial", "epoch", "val_acc", "val_loss"]),
                        best_trial=best["trial"], best_score=best["best_val_acc"], max_epochs=4, seconds=90.0)


def test_trials_table_is_rounded_and_narrow():
    table = tuning_report.trials_table(_search([0.8, None, 0.7]))
    assert list(table.columns) == ["lr", "channels", "val. acc.", "val. loss", "epochs", "seconds"]
    assert table.loc[0, "seconds"] == "44" and table.loc[0, "lr"] == "0.00123" and table.loc[0, "val. acc."] == "80.0%"
    assert table.loc[1, "val. acc."] == "failed" and table.loc[0, "epochs"] == "2 of 4"
    assert "nan" not in table.to_string().lower() and "43.62" not in table.to_string()


def test_a_search_below_the_majority_rate_does_not_say_the_settings_matter():
    text = tuning_report.describe_result(_search([0.40, 0.35, 0.30]), majority_rate=0.45,
                                         majority_class="cancer epithelial", n_val=80)
    assert "no better than always predicting 'cancer epithelial' (45.0%" in text
    assert "the settings matter" not in text and "no trial beat that trivial answer" in text


def test_some_trials_below_the_majority_rate_are_counted():
    text = tuning_report.describe_result(_search([0.80, 0.40, 0.70]), majority_rate=0.45,
                                         majority_class="cancer epithelial", n_val=80)
    assert "1 of the 3 trials scored no better than always predicting" in text and "40.0%" in text
    assert "the best beat it by 35.0 points" in text


def test_a_spread_within_noise_says_the_settings_make_no_difference():
    text = tuning_report.describe_result(_search([0.80, 0.79, 0.795]), majority_rate=0.45, n_val=80)
    assert "no measurable difference" in text and "the settings matter" not in text


def test_a_real_spread_is_quoted_in_points():
    text = tuning_report.describe_result(_search([0.80, 0.60, 0.70]), majority_rate=0.45, n_val=80)
    assert "range from 60.0% to 80.0%" in text and "20.0 points" in text and "no measurable" not in text


def test_per_class_display_has_percentages_and_no_nan():
    y_true = np.array([0, 0, 1, 1, 2, 2])      # no immune patch at all
    y_pred = np.array([0, 1, 1, 1, 2, 0])
    shown = diagnostics.per_class_display(diagnostics.per_class_table(y_true, y_pred))
    text = shown.to_string()
    assert "nan" not in text.lower() and "0.666667" not in text
    assert shown.loc["normal epithelial", "recall"] == "50%" and shown.loc["cancer epithelial", "precision"] == "66.7%"
    assert shown.loc["accuracy", "precision"] == "—" and shown.loc["accuracy", "F1"] == "66.7%"
    assert shown.loc["immune", "recall"] == "no patches" and shown.loc["immune", "patches"] == "0"


def _history(acc):
    return History(epoch=[1, 2], train_loss=[1.0, 0.8], train_acc=[0.5, 0.6], val_loss=[1.0, 0.9],
                   val_acc=[acc - 0.05, acc], lr=[1e-3] * 2, seconds=[1.0, 2.0])


@pytest.mark.parametrize("weights, start, wording, absent", [
    ({"arch": "resnet18", "pretrained": True, "verified": True}, "ImageNet (verified)", "ImageNet features",
     "random weights"),
    ({"arch": "resnet18", "pretrained": True, "verified": False}, "unverified weights file",
     "could not be verified", "ImageNet features"),
    ({"arch": "resnet18", "pretrained": False, "verified": False}, "random", "Both models started from random",
     "ImageNet features"),
])
def test_the_comparison_follows_the_weights(tmp_path, weights, start, wording, absent):
    from labkit import models

    run = RunDir(tmp_path / "run")
    run.save_json("model2/weights.json", weights)
    for name, model, acc in (("model1", models.build_model1({"channels": "8-16"}), 0.8),
                             ("model2", models.model2_architecture("resnet18"), 0.9)):
        run.save_checkpoint(f"{name}/final.pt", model, config={"channels": "8-16"}, arch="resnet18")
        run.save_json(f"{name}/final_history.json", _history(acc).to_dict())
        labels = [0, 1, 2, 3] * 5   # chapter 5's predictions: the accuracy its confusion matrix shows
        run.save_json(f"diagnostics/{name}_val_predictions.json",
                      {"labels": labels, "preds": [y if i < round(20 * acc) else (y + 1) % 4 for i, y in enumerate(labels)]})
    table = results.comparison_table(run)
    assert table.loc["model2", "start"] == start and table.loc["model1", "start"] == "random"
    assert table.loc["model2", "validation accuracy (%)"] == 90.0
    text = results.describe_comparison(table, is_stub=False)
    assert wording in text and absent not in text and "90.0% for model2" in text
