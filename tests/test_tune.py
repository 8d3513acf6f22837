"""labkit.tune (with its recipes and report): real, tiny Ray Tune searches on a tiny stub (one Ray instance for
the whole module)."""
import dataclasses
import json

import matplotlib
import numpy as np
import pandas as pd
import pytest
import ray
import torch
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
    assert rows.loc["weight_decay", "distribution"] == "log-uniform"


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
    baseline = recipes.baseline_config("model1", TINY)
    assert result.params == list(space)
    assert set(result.best_config) == set(baseline)  # every setting: the searched ones and the baseline's
    assert json.loads(json.dumps(result.best_config)) == result.best_config
    assert len(result.table) == 2 and not result.failed
    assert set(result.table["status"]) <= {"completed", "stopped early"}
    assert 0.0 <= result.best_score <= 1.0
    assert result.best_score == result.table["best_val_acc"].max()
    assert sorted(result.curves["trial"].unique()) == [0, 1]
    assert (result.curves["epoch"] == 1).all()
    assert result.table["lr"].nunique() == 2  # the two trials sampled different settings
    # the first trial is the hand-picked baseline of chapter 2, so tuning is measured against it
    first = result.table.set_index("trial").loc[0]
    assert first["lr"] == pytest.approx(baseline["lr"]) and first["dropout"] == pytest.approx(baseline["dropout"])
    assert "channels" not in result.table.columns  # not searched: every trial has the baseline's
    # no Ray status tables or logs in the notebook
    lines = printed.strip().splitlines()
    assert len(lines) < 30, "\n".join(lines[:40])

    run = RunDir(tmp_path / "run")
    result.save(run, "model1")
    loaded = tune.SearchResult.load(run, "model1")
    assert loaded.best_config == result.best_config and loaded.params == result.params
    assert loaded.comparison == result.comparison and loaded.checkpoints == result.checkpoints
    assert loaded.table["best_val_acc"].tolist() == pytest.approx(result.table["best_val_acc"].tolist())
    assert run.exists("tuning/model1_trials.csv") and run.exists("tuning/model1_curves.csv")
    assert f"{100 * result.best_score:.1f}%" in tuning_report.describe_search(tuning_report.search_record(loaded))


def test_a_restored_trial_checkpoint_scores_what_the_trial_reported(model1_search, tiny_data):
    result, _ = model1_search
    assert set(result.checkpoints) == {0, 1}  # each trial's kept epoch, read back from the ResultGrid
    choose, _ = tune.search_halves(tiny_data, result.seed)
    for trial, row in result.table.set_index("trial").iterrows():
        correct = tune.trial_correct(result, trial, tiny_data, choose)  # the half trials are scored on
        assert len(correct) == len(choose)
        assert correct.mean() == pytest.approx(row["best_val_acc"])


def test_the_search_halves_split_validation_into_two_disjoint_stratified_parts(tiny_data):
    choose, test = tune.search_halves(tiny_data, seed=0)
    assert set(choose.tolist()).isdisjoint(test.tolist())
    assert sorted(choose.tolist() + test.tolist()) == sorted(tiny_data.val_idx.tolist())
    assert abs(len(choose) - len(test)) <= 4  # one per class at most
    assert torch.equal(tune.search_halves(tiny_data, seed=0)[1], test)  # the comparison redraws the same half


def test_the_best_trial_is_compared_with_the_baseline_on_the_same_patches(model1_search, tiny_data):
    result, _ = model1_search
    if result.winner_is_baseline:
        assert result.comparison is None and not result.retrain
        return
    c = result.comparison
    _, test = tune.search_halves(tiny_data, result.seed)  # not the half that chose the best
    assert (c["best_trial"], c["baseline_trial"]) == (result.best_trial, 0) and c["patches"] == len(test)
    assert c["correct_a"] == tune.trial_correct(result, result.best_trial, tiny_data, test).sum()
    assert c["correct_b"] == tune.trial_correct(result, 0, tiny_data, test).sum()
    assert c["correct_a"] - c["correct_b"] == c["only_a"] - c["only_b"]
    assert result.retrain == (c["only_a"] > c["only_b"] and c["p_value"] < tune.SIGNIFICANCE)
    assert result.retrain == (c["winner"] == "best")


def test_the_same_search_repeats_exactly(model1_search, tiny_data, tmp_path):
    # same seed, same trials: sampled settings, initial weights, batches and so every reported loss
    # (a trial made its model before seeding, so each new worker process gave other weights)
    first, _ = model1_search
    again = tune.run_search("model1", tiny_data, TINY, device="cpu", seed=0, storage_dir=tmp_path / "ray")
    columns = ["trial", "lr", "weight_decay", "dropout", "best_val_loss", "best_val_acc", "epochs_run"]
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
    assert result.params == list(recipes.model2_search_space(TINY)) and "unfrozen_stages" in result.params
    assert set(result.best_config) == set(recipes.baseline_config("model2", TINY))
    assert len(result.table) == 2 and not result.failed
    # the trials trained on prefix features computed once in the driver, kept for the next chapters
    saved = list((tmp_path / "run" / "features").glob("model2-u1-*.pt"))
    assert len(saved) == 1


def test_figures_are_labelled(model1_search, tmp_path):
    result, _ = model1_search
    fig = tuning_report.trials_figure(result)
    ax = fig.axes[0]
    assert "accuracy" in ax.get_ylabel() and ax.get_xlabel() == "epoch"
    legend = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert "best trial" in legend and "baseline's settings" in legend
    assert fig.axes[1].get_ylabel() == "lr (log scale)"  # the curves are coloured by the learning rate
    fig.savefig(tmp_path / "trials.png")
    fig = tuning_report.score_figure(result)
    assert [a.get_xlabel() for a in fig.axes] == ["lr (log scale)", "weight_decay (log scale)", "dropout"]
    assert fig.axes[0].get_xscale() == "log" and fig.axes[2].get_xscale() == "linear"
    assert "after epoch 1" in fig.axes[0].get_ylabel()  # the epoch every trial ran: the same budget for all
    fig.savefig(tmp_path / "scores.png")


# ---------------------------------------------------------------------------------------------------
# Whether a search earns a full-budget run (no Ray needed)
# ---------------------------------------------------------------------------------------------------
def _scored_search(scores, best_trial, baseline_trial=0, comparison=None, statuses=None):
    table = pd.DataFrame({"trial": range(len(scores)), "best_val_acc": scores,
                          "status": statuses or ["completed"] * len(scores), "stopped_early": ["no"] * len(scores)})
    return tune.SearchResult(kind="model1", table=table, best_config={"lr": 1e-3}, curves=pd.DataFrame(),
                             best_trial=best_trial, best_score=scores[best_trial], max_epochs=4,
                             baseline_trial=baseline_trial, seconds=1.0, comparison=comparison)


def _comparison(best_correct, baseline_correct, n=600):
    """The comparison compare_with_baseline makes, for two given per-patch outcomes."""
    test = tune.paired_test(best_correct, baseline_correct, "best", "baseline")
    return {"best_trial": 1, "baseline_trial": 0, **test.as_dict(), "retrain": test.winner == "best"}


def test_mcnemar_counts_the_discordant_patches_and_tests_their_split():
    a = np.array([True] * 90 + [False] * 10)
    b = np.array([True] * 80 + [False] * 20)
    test = tune.paired_test(a, b)
    assert (test.only_a, test.only_b, test.correct_a, test.correct_b) == (10, 0, 90, 80)
    assert test.p_value == pytest.approx(2 * 0.5 ** 10)               # 10 of 10 discordant pairs one way
    assert tune.paired_test(a, a).p_value == 1.0                      # nothing differs
    swapped = np.roll(a, 5)                                           # 5 gained and 5 lost
    assert tune.paired_test(swapped, a).p_value == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same patches"):
        tune.paired_test(a, b[:50])


def test_only_a_significant_lead_at_equal_budget_earns_a_full_run():
    same = np.ones(600, dtype=bool)
    few = same.copy()
    few[:4] = False          # the baseline misses 4 patches the best gets right: p = 0.125
    many = same.copy()
    many[:12] = False        # 12: p < 0.001
    assert not _scored_search([0.90, 0.91], 1, comparison=_comparison(same, few)).retrain
    assert _scored_search([0.90, 0.93], 1, comparison=_comparison(same, many)).retrain
    assert not _scored_search([0.93, 0.90], 1, comparison=_comparison(many, same)).retrain  # the baseline led
    assert not _scored_search([0.90, 0.85], best_trial=0).retrain                            # the baseline won
    assert _scored_search([0.90, 0.91], 1, baseline_trial=None).retrain                      # a caller's own space
    assert _scored_search([float("nan"), 0.85], 1, statuses=["failed", "completed"]).retrain  # the baseline failed


def test_the_search_statement_gives_the_paired_test_and_its_decision():
    same = np.ones(600, dtype=bool)
    few = same.copy()
    few[:4] = False
    close = _scored_search([0.90, 0.91], 1, comparison=_comparison(same, few))
    assert "p = 0.12" in tuning_report.why_not_retrained(close)
    text = tuning_report.describe_search(tuning_report.search_record(close))
    assert "differ on 4 of 600 patches, 4 to 0 (McNemar's p = 0.12)" in text
    assert "cannot be told apart, so model1's baseline stays final" in text
    assert tuning_report.why_not_retrained(_scored_search([0.90, 0.85], best_trial=0)) == (
        "the search's best settings are the baseline's own")
    many = same.copy()
    many[:12] = False
    search = _scored_search([0.90, 0.93], 1, comparison=_comparison(same, many))
    assert tuning_report.why_not_retrained(search) is None
    assert "trial 1's settings earn a full-budget run" in tuning_report.describe_search(tuning_report.search_record(search))
    behind = _scored_search([0.93, 0.90], 1, comparison=_comparison(many, same))
    assert "the baseline's settings do better" in tuning_report.describe_search(tuning_report.search_record(behind))


def test_the_baseline_trial_is_never_stopped_before_the_last_epoch():
    from ray.tune.schedulers import TrialScheduler

    class Trial:  # what the scheduler reads of a trial
        def __init__(self, index):
            self.trial_id = f"abcde_{index:05d}"
            self.config = {}

    scheduler = tune.asha_scheduler(8, keep=[0])
    scheduler.set_search_properties(metric="val_loss", mode="min", config={})
    trials = [Trial(i) for i in range(6)]
    for trial in trials:
        scheduler.on_trial_add(None, trial)
    # five trials far better than the baseline's at ASHA's first rung (epoch 2)
    decisions = {}
    for epoch in (1, 2):
        for trial in trials:
            loss = 5.0 if trial.trial_id.endswith("0") else 0.1 * int(trial.trial_id[-1])
            decisions[trial.trial_id] = scheduler.on_trial_result(
                None, trial, {"training_iteration": epoch, "val_loss": loss})
    assert decisions["abcde_00000"] == TrialScheduler.CONTINUE
    assert TrialScheduler.STOP in decisions.values()  # plain ASHA's rule still stops other trials
    assert scheduler.on_trial_result(None, trials[0], {"training_iteration": 8, "val_loss": 5.0}) == TrialScheduler.STOP


def test_each_trial_reports_setup_seconds_per_epoch_and_images_per_second(model1_search):
    result, _ = model1_search
    t = result.timings
    ran = t[t["epochs"] > 0]
    assert len(ran) and (ran["setup_seconds"] >= 0).all() and (ran["seconds_per_epoch"] > 0).all()
    assert (ran["images_per_second"] > 0).all()
    # images/s is the epochs' training images over their seconds: a whole number of batches per epoch
    assert (ran["images_per_second"] * ran["train_seconds"] / ran["epochs"]).round().mod(2).eq(0).all()


def test_a_retrained_winner_is_compared_with_its_baseline_on_the_same_patches(tiny_data, tmp_path):
    # two model1s, the baseline's weights and a differently seeded "retrained" one: no Ray, no training
    from labkit.train import seed_everything

    run = RunDir(tmp_path / "run", chapter="04_tuning")
    config = recipes.baseline_config("model1", TINY)
    models = []
    for seed in (0, 1):
        seed_everything(seed)
        models.append(recipes.recipe("model1").make_model(config, None))
    run.save_checkpoint("model1/baseline.pt", models[0], config=config)
    final = tune.FinalRun(model=models[1], fit=None, config=config)
    test = tuning_report.retrained_against_baseline(run, "model1", final, tiny_data)
    correct = [tune.val_correct("model1", m, config, tiny_data) for m in models]
    expected = tune.paired_test(*reversed(correct))
    assert (test.name_a, test.name_b, test.patches) == ("retrained", "baseline", len(tiny_data.val_idx))
    assert (test.only_a, test.only_b, test.p_value) == (expected.only_a, expected.only_b, expected.p_value)
