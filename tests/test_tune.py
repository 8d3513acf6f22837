"""labkit.tune (with its recipes and report): real, tiny Ray Tune searches on a tiny stub (one Ray instance for
the whole module)."""
import dataclasses
import json

import matplotlib
import pandas as pd
import pytest
import ray
from ray import tune as ray_tune

matplotlib.use("Agg")

from labkit import recipes, tune, tuning_report
from labkit.artifacts import RunDir
from labkit.profiles import get_profile

# a profile small enough for tests: 2 trials of 1 epoch on a 64-image training split; batches of 2 to 8
# give a one-cycle schedule at least 8 steps
TINY = dataclasses.replace(get_profile("quick"), batch_size=4, tune_trials=2, max_epochs=1, tune_subset=1.0)


@pytest.fixture(scope="module")
def ray_cluster():
    tune.init_ray()
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from data_stub import make_stub
    from labkit.data import prepare

    root = tmp_path_factory.mktemp("tune_data")
    stub = make_stub(root / "stub", n_train=80, n_test=4, seed=0)
    return prepare(stub, root / "cache", val_fraction=0.2, seed=0)


_SEARCH = {}  # the one real model1 search that several tests look at (each search costs seconds)


@pytest.fixture
def model1_search(ray_cluster, tiny_data, tmp_path_factory, capfd):
    """(SearchResult, everything the search printed to stdout/stderr, Ray's workers included)."""
    if "result" not in _SEARCH:
        capfd.readouterr()
        _SEARCH["result"] = tune.run_search("model1", tiny_data, TINY, device="cpu", seed=0,
                                            storage_dir=tmp_path_factory.mktemp("ray_store"))
        out, err = capfd.readouterr()
        _SEARCH["printed"] = out + err
    return _SEARCH["result"], _SEARCH["printed"]


def test_search_spaces_are_described_for_the_notebook():
    for space_of in (recipes.model1_search_space, recipes.model2_search_space):
        space = space_of(get_profile("standard"))
        described = tuning_report.describe_space(space)
        assert list(described["hyperparameter"]) == list(space)
        assert list(described.columns) == ["hyperparameter", "distribution", "range / choices"]
    described = tuning_report.describe_space(recipes.model1_search_space(get_profile("standard")))
    rows = described.set_index("hyperparameter")
    assert rows.loc["lr", "distribution"] == "log-uniform"
    assert rows.loc["dropout", "distribution"] == "uniform"
    assert rows.loc["channels", "range / choices"].startswith("16-32-64")


def test_resources_split_cpus_and_share_gpus():
    assert tune.trial_resources("model1", "cpu", cpus=2, gpus=0, trials=6) == ({"cpu": 1}, 2)
    assert tune.trial_resources("model1", "cpu", cpus=16, gpus=0, trials=4) == ({"cpu": 4}, 4)
    assert tune.trial_resources("model2", "cuda", cpus=8, gpus=1, trials=6) == ({"cpu": 4, "gpu": 0.5}, 2)
    assert tune.trial_resources("model1", "cuda", cpus=8, gpus=1, trials=6) == ({"cpu": 2, "gpu": 0.25}, 4)
    with pytest.raises(RuntimeError, match="GPUs"):
        tune.trial_resources("model2", "cuda", cpus=8, gpus=0, trials=2)


@pytest.mark.parametrize("kind, cpus, gpus, memory, expected", [
    # Kaggle "GPU T4 x2": 4 CPU cores, two 15 GB T4s: two trials on each GPU, one core each
    ("model1", 4, 2, 15.8, ({"cpu": 1, "gpu": 0.5}, 4)),
    ("model2", 4, 2, 15.8, ({"cpu": 1, "gpu": 0.5}, 4)),
    # Kaggle's P100 (or one T4): 4 cores, one GPU
    ("model1", 4, 1, 17.1, ({"cpu": 1, "gpu": 0.25}, 4)),
    ("model2", 4, 1, 17.1, ({"cpu": 2, "gpu": 0.5}, 2)),
    # the lent H200 with a 16-core host: the recipe's caps, not memory, bound it
    ("model1", 16, 1, 150.0, ({"cpu": 4, "gpu": 0.25}, 4)),
    # a small GPU: as many model2 trials as fit in its memory
    ("model2", 8, 1, 6.0, ({"cpu": 8, "gpu": 1.0}, 1)),
    # 3 cores, 2 GPUs: 3 trials, 2 on one GPU and 1 on the other
    ("model1", 3, 2, 15.8, ({"cpu": 1, "gpu": 0.5}, 3)),
])
def test_gpu_trials_are_spread_over_every_gpu_within_cores_and_memory(kind, cpus, gpus, memory, expected):
    per_trial, concurrent = tune.trial_resources(kind, "cuda", cpus=cpus, gpus=gpus, trials=16, gpu_memory_gb=memory)
    assert (per_trial, concurrent) == expected
    # Ray puts a fractional trial on one GPU with that share free: all the concurrent trials fit at once
    free, placed = [1.0] * gpus, []
    for _ in range(concurrent):
        gpu = next(g for g, f in enumerate(free) if f >= per_trial["gpu"] - 1e-9)
        free[gpu] -= per_trial["gpu"]
        placed.append(gpu)
    assert len(placed) == concurrent and (gpus == 1 or concurrent < 2 or set(placed) == set(range(gpus)))
    assert concurrent * per_trial["cpu"] <= cpus


RAY_PLACEMENT = """
import json, os, sys, time
import ray
from ray import tune
from labkit import tune as labkit_tune

ray.init(num_cpus=4, num_gpus=2, include_dashboard=False, log_to_driver=False)
per_trial, concurrent = labkit_tune.trial_resources("model2", "cuda", cpus=4, gpus=2, trials=4, gpu_memory_gb=15.8)

def trial(config):
    start = time.time()
    time.sleep(2)
    tune.report({"gpus": ",".join(map(str, ray.get_gpu_ids())), "start": start, "end": time.time()})

grid = tune.Tuner(tune.with_resources(trial, per_trial), param_space={"i": tune.grid_search([0, 1, 2, 3])},
                  tune_config=tune.TuneConfig(max_concurrent_trials=concurrent),
                  run_config=tune.RunConfig(storage_path=sys.argv[1], verbose=0)).fit()
rows = [{"gpus": r.metrics["gpus"], "start": r.metrics["start"], "end": r.metrics["end"]} for r in grid]
print("RESULT" + json.dumps(rows))
ray.shutdown()
"""


def test_ray_places_the_trials_on_both_gpus_of_a_t4_x2(tmp_path):
    """A real Ray instance told it has 2 GPUs (Ray hands out GPU ids without touching a GPU): the four
    model2 trials labkit asks for run at once, two on each GPU."""
    import os
    import subprocess
    import sys

    script = tmp_path / "placement.py"
    script.write_text(RAY_PLACEMENT)
    env = {**os.environ, "RAY_AIR_NEW_OUTPUT": "0", "PYTHONPATH": os.getcwd()}
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "store")], check=False, capture_output=True,
                          text=True, timeout=240, env=env)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT")), None)
    assert line, done.stdout[-2000:] + done.stderr[-2000:]
    rows = json.loads(line[len("RESULT"):])
    assert sorted(r["gpus"] for r in rows) == ["0", "0", "1", "1"]
    assert max(r["start"] for r in rows) < min(r["end"] for r in rows)  # all four ran at the same time


def test_tiny_search_reaches_a_best_config(model1_search, tmp_path):
    result, printed = model1_search
    space = recipes.model1_search_space(TINY)
    assert set(result.best_config) == set(space)
    assert json.loads(json.dumps(result.best_config)) == result.best_config
    assert len(result.table) == 2 and not result.failed
    assert set(result.table["status"]) <= {"completed", "stopped early"}
    assert 0.0 <= result.best_score <= 1.0
    assert result.best_score == result.table["best_val_acc"].max()
    assert sorted(result.curves["trial"].unique()) == [0, 1]
    assert (result.curves["epoch"] == 1).all()
    assert result.table["lr"].nunique() == 2  # the two trials sampled different settings
    # the first trial is the hand-picked baseline of chapter 2, so tuning is measured against it
    baseline = recipes.baseline_config("model1", TINY)
    first = result.table.set_index("trial").loc[0]
    assert first["lr"] == pytest.approx(baseline["lr"]) and first["channels"] == baseline["channels"]
    # no Ray status tables or logs in the notebook
    lines = printed.strip().splitlines()
    assert len(lines) < 30, "\n".join(lines[:40])

    run = RunDir(tmp_path / "run")
    result.save(run, "model1")
    loaded = tune.SearchResult.load(run, "model1")
    assert loaded.best_config == result.best_config
    assert loaded.table["best_val_acc"].tolist() == pytest.approx(result.table["best_val_acc"].tolist())
    assert run.exists("tuning/model1_trials.csv") and run.exists("tuning/model1_curves.csv")
    assert f"{100 * result.best_score:.1f}%" in tuning_report.describe_result(loaded)


def test_the_same_search_repeats_exactly(model1_search, tiny_data, tmp_path):
    # same seed, same trials: sampled settings, initial weights, batches and so every reported loss
    # (a trial made its model before seeding, so each new worker process gave other weights)
    first, _ = model1_search
    again = tune.run_search("model1", tiny_data, TINY, device="cpu", seed=0, storage_dir=tmp_path / "ray")
    columns = ["trial", "lr", "batch_size", "best_val_loss", "best_val_acc", "epochs_run"]
    assert (again.table[columns].sort_values("trial").reset_index(drop=True)
            .equals(first.table[columns].sort_values("trial").reset_index(drop=True)))


def _layer_limit_space(channel_grid):
    # too many conv blocks make build_model1 raise LayerLimitError: a real, deterministic trial failure
    space = recipes.model1_search_space(TINY)
    space["channels"] = ray_tune.grid_search(channel_grid)
    return space


def test_failing_trial_is_reported_and_the_search_goes_on(ray_cluster, tiny_data, tmp_path):
    said = []
    result = tune.run_search("model1", tiny_data, TINY, device="cpu", seed=0, storage_dir=tmp_path,
                             space=_layer_limit_space([[8, 16], [8] * 8]), trials=1, log=said.append)
    assert len(result.failed) == 1
    assert "weight layers" in result.failed[0]["error"]
    assert result.failed[0]["config"]["channels"] == [8] * 8
    assert result.best_config["channels"] == [8, 16]
    assert list(result.table["status"]).count("failed") == 1
    assert any("failed" in line and "goes on" in line for line in said)


def test_every_trial_failing_is_a_clear_error(ray_cluster, tiny_data, tmp_path):
    with pytest.raises(tune.SearchError, match="every one of the 2 model1 trials failed.*weight layers"):
        tune.run_search("model1", tiny_data, TINY, device="cpu", seed=0, storage_dir=tmp_path,
                        space=_layer_limit_space([[8] * 8, [8] * 9]), trials=1, log=lambda line: None)


@pytest.mark.slow
def test_model2_search_runs(ray_cluster, tiny_data, tmp_path, monkeypatch):
    from labkit.models import build_model2

    monkeypatch.setenv("LABKIT_OFFLINE", "1")  # no download attempt; random weights are fine here
    with pytest.warns(UserWarning):
        base, _ = build_model2("resnet18", cache_dir=tmp_path / "no_weights", allow_random=True)
    result = tune.run_search("model2", tiny_data, TINY, device="cpu", seed=0, storage_dir=tmp_path,
                             base_model2=base, run_dir=tmp_path / "run", log=lambda line: None)
    assert set(result.best_config) == set(recipes.model2_search_space(TINY))
    assert len(result.table) == 2 and not result.failed
    # the trials trained on prefix features computed once in the driver, kept for the next chapters
    saved = list((tmp_path / "run" / "features").glob("model2-u1-*.pt"))
    assert len(saved) == 1


def test_figures_are_labelled(model1_search, tmp_path):
    result, _ = model1_search
    fig = tuning_report.trials_figure(result)
    ax = fig.axes[0]
    assert "accuracy" in ax.get_ylabel() and ax.get_xlabel() == "epoch"
    assert len(ax.get_legend().get_texts()) == 2
    fig.savefig(tmp_path / "trials.png")
    fig = tuning_report.score_figure(result)
    assert fig.axes[0].get_xscale() == "log"  # learning rate first, on a log axis
    fig.savefig(tmp_path / "scores.png")


# ---------------------------------------------------------------------------------------------------
# Whether a search earns a full-budget run (no Ray needed)
# ---------------------------------------------------------------------------------------------------
def _scored_search(scores, best_trial, baseline_trial=0):
    table = pd.DataFrame({"trial": range(len(scores)), "best_val_acc": scores,
                          "status": ["completed"] * len(scores), "stopped_early": ["no"] * len(scores)})
    return tune.SearchResult(kind="model1", table=table, best_config={"lr": 1e-3}, curves=pd.DataFrame(),
                             best_trial=best_trial, best_score=scores[best_trial], max_epochs=4,
                             baseline_trial=baseline_trial, seconds=1.0)


def test_accuracy_noise_is_a_binomial_standard_error_of_at_least_two_patches():
    assert tune.accuracy_noise(0.9, 100) == pytest.approx(0.03)
    assert tune.accuracy_noise(1.0, 600) == pytest.approx(2 / 600)   # a perfect score is not exact either
    with pytest.raises(ValueError, match="n_val"):
        tune.accuracy_noise(0.9, 0)


def test_only_a_lead_beyond_the_noise_earns_a_full_run():
    # baseline 90% on 600 patches: one standard error is 1.2 points
    assert not _scored_search([0.90, 0.91, 0.80], best_trial=1).beats_baseline(600)
    assert _scored_search([0.90, 0.93, 0.80], best_trial=1).beats_baseline(600)
    assert not _scored_search([0.90, 0.85], best_trial=0).beats_baseline(600)           # the baseline won
    assert _scored_search([float("nan"), 0.85], best_trial=1).beats_baseline(600)       # the baseline failed
    assert _scored_search([0.90, 0.91], best_trial=1, baseline_trial=None).beats_baseline(600)  # own space


def test_the_reason_for_no_full_run_quotes_this_search():
    close = tuning_report.why_not_retrained(_scored_search([0.90, 0.91, 0.80], best_trial=1), 600)
    assert "trial 1 (91.0%)" in close and "trial 0, 90.0%" in close and "1.0 points" in close
    assert "one standard error of an accuracy on 600 validation patches (1.2 points)" in close
    assert tuning_report.why_not_retrained(_scored_search([0.90, 0.85], best_trial=0), 600) == (
        "the search's best settings are the baseline's own")
    assert tuning_report.why_not_retrained(_scored_search([0.90, 0.93], best_trial=1), 600) is None


def test_a_tie_or_a_better_stopped_baseline_is_not_called_a_lead():
    # the best trial won the tie on validation loss; or ASHA stopped a baseline trial that scored higher
    for scores in ([0.356, 0.356], [0.75, 0.70]):
        reason = tuning_report.why_not_retrained(_scored_search(scores, best_trial=1), 135)
        assert "scored no higher than the baseline's settings (trial 0" in reason and "led" not in reason


def test_each_trial_reports_setup_seconds_per_epoch_and_images_per_second(model1_search):
    result, _ = model1_search
    t = result.timings
    ran = t[t["epochs"] > 0]
    assert len(ran) and (ran["setup_seconds"] >= 0).all() and (ran["seconds_per_epoch"] > 0).all()
    assert (ran["images_per_second"] > 0).all()
    # images/s is the epochs' training images over their seconds: a whole number of batches per epoch
    assert (ran["images_per_second"] * ran["train_seconds"] / ran["epochs"]).round().mod(2).eq(0).all()
