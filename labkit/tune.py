"""Hyperparameter search for both models with Ray Tune.

Each trial trains one model with the baseline's settings, except those sampled from its recipe's search space
(``labkit.recipes``), and reports validation loss and accuracy after every epoch, with a checkpoint of its
weights whenever the validation loss is the lowest so far (the epoch ``fit`` keeps). Trials are scored on one
half of the validation split (``search_halves``), so the other half can test the choice they made. The ASHA
scheduler stops trials that are behind at early rungs, except the baseline's own trial: it always runs every
epoch, so the search's best is compared with it at the same budget (``compare_with_baseline``: both trials'
checkpoints restored, McNemar's exact test on the other half's patches). Only a significant lead earns a
full-budget run of the winner (``train_final``). The images go into Ray's object store once
(``tune.with_parameters``) as uint8 tensors; trials only index them, never decode a PNG. The tables, figures
and sentences about a search are in ``labkit.tuning_report``.

Notebook output stays short: Ray's status tables and per-trial tracebacks are switched off while a search
runs; a failed trial gives one line, and its error is kept in ``SearchResult.failed``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from ray import tune
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search import BasicVariantGenerator

from labkit import conclusions, features, progress

# Starting, joining (with Ray's token authentication) and checking a cluster live in labkit.cluster;
# chapters call them as tune.init_ray / tune.shutdown_ray.
from labkit.cluster import init_ray, shutdown_ray  # noqa: F401
from labkit.data import NucleiDataset, make_loader, stratified_split
from labkit.profiles import asha_grace_period
from labkit.recipes import (
    baseline_config,
    is_log_scale,
    is_pretrained,
    recipe,
    train_model,
)
from labkit.train import evaluate, fit, seed_everything

METRIC_FOR_ASHA = "val_loss"   # smoother than accuracy after one epoch on a few hundred images
SIGNIFICANCE = conclusions.ALPHA  # McNemar's exact test: a lead over the baseline's trial with p below this earns a run
CHECKPOINT_FILE = "model.pt"   # a trial checkpoint's weights (a state_dict), in Ray Tune's checkpoint folder
# A trial reuses a finished trial's worker process (torch already imported): bench/tune.py measures it.
REUSE_ACTORS = True
QUIET_LOGGERS = ("ray", "ray.tune", "ray.train", "ray.air", "ray.data")


class SearchError(tune.TuneError):
    """Every trial of a search failed; the message quotes the first trial's error."""


def trial_resources(kind: str, device, cpus: float, gpus: float, trials: int,
                    gpu_memory_gb: float | None = None) -> tuple[dict, int]:
    """(resources per trial, how many trials run at once) for ``trials`` trials on a cluster's CPUs/GPUs.

    CPU: the CPUs are split between concurrent trials (one thread each on a 2-core machine).
    GPU: every GPU gets the same number of trials, so all of them work (Kaggle's "T4 x2": both). A GPU
    takes at most the recipe's ``trials_per_gpu`` (small models leave a GPU idle between kernels; several
    trials fill those gaps) and as many as fit in ``gpu_memory_gb`` at the recipe's ``trial_gpu_gb`` each;
    each trial needs a CPU core of its own to launch its kernels (a Kaggle GPU session has 4). Each trial then
    asks for 1 / (trials per GPU) of a GPU, and Ray puts that many on each GPU.
    """
    kind_recipe = recipe(kind)
    if str(device).startswith("cuda"):
        n_gpus = int(gpus)
        if n_gpus < 1:
            raise RuntimeError(f"device {device} asked for, but the Ray cluster has {gpus:g} GPUs; "
                               "use --device cpu or join a cluster with GPUs (--ray-address)")
        per_gpu = kind_recipe.trials_per_gpu
        if gpu_memory_gb:  # leave a tenth for the CUDA context and the allocator's slack
            per_gpu = min(per_gpu, max(1, int(0.9 * gpu_memory_gb // kind_recipe.trial_gpu_gb)))
        concurrent = max(1, min(trials, int(cpus), n_gpus * per_gpu))
        per_gpu = -(-concurrent // n_gpus)  # spread evenly: 4 trials on 2 GPUs are 2 per GPU
        per_trial = {"cpu": max(1, int(cpus) // concurrent), "gpu": 1 / per_gpu}
    else:
        concurrent = max(1, min(trials, int(cpus)))
        per_trial = {"cpu": max(1, int(cpus) // concurrent)}
    return per_trial, concurrent


def gpu_memory_gb() -> float | None:
    """Memory of this machine's first GPU in GB, or None without one (then memory sets no limit)."""
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(0).total_memory / 1e9


# ---------------------------------------------------------------------------------------------------
# One trial (runs in a Ray worker)
# ---------------------------------------------------------------------------------------------------
def trial_seed(seed: int, index: int) -> int:
    """Each trial's own seed: different trials differ, the same search repeats exactly."""
    return seed * 1000 + index


def trial_index(trial_id: str) -> int:
    """A trial's creation index: Tune's trial ids end in it ("59dc9_00003" -> 3)."""
    return int(trial_id.rsplit("_", 1)[-1])


def _run_trial(config: dict, *, kind: str, fixed: dict, arrays: dict, base, epochs: int, device: str,
               seed: int, threads: int) -> None:
    """Train one model with the ``fixed`` settings and the sampled ``config`` and report validation metrics to
    Tune after every epoch, with a checkpoint at each new lowest validation loss (runs in a Ray worker)."""
    entered = time.perf_counter()
    torch.set_num_threads(threads)
    index = trial_index(tune.get_context().get_trial_id())
    kind_recipe = recipe(kind)
    config = {**fixed, **config}
    # seeded before the model is made: a new worker process's generator would give other initial weights
    # in every run, and the same search would not repeat
    seed_everything(trial_seed(seed, index))
    model = kind_recipe.make_model(config, base)
    settings = kind_recipe.fit_settings(model, config)
    batch = int(config["batch_size"])
    cached = arrays.get("features")  # model2's prefix features (features.FeatureCache), shared by all trials
    if cached is None:
        mean, std = arrays["mean"], arrays["std"]
        train_set = NucleiDataset(arrays["train_images"], arrays["train_labels"], mean=mean, std=std, augment=True)
        val_set = NucleiDataset(arrays["val_images"], arrays["val_labels"], mean=mean, std=std, augment=False)
        # the trial's images go to its GPU once, here; every batch is then made there
        train_loader = make_loader(train_set, batch, shuffle=True, device=device)
        val_loader = make_loader(val_set, batch, shuffle=False, device=device)
        images_per_epoch = len(train_loader) * batch
    else:
        images_per_epoch = (len(arrays["train_rows"]) // batch) * batch
    # wall and CPU time per epoch: on a shared machine the CPU time says what an idle one would take
    last = {"t": time.perf_counter(), "cpu": time.process_time(), "lowest_loss": math.inf}
    setup_seconds = last["t"] - entered

    def report(epoch, metrics):
        now, cpu = time.perf_counter(), time.process_time()
        row = {"epoch": int(epoch), "val_loss": float(metrics["val_loss"]), "val_acc": float(metrics["val_acc"]),
               "trial_index": index, "epoch_seconds": now - last["t"], "epoch_cpu_seconds": cpu - last["cpu"],
               "setup_seconds": setup_seconds, "epoch_images": images_per_epoch}
        with tempfile.TemporaryDirectory() as folder:
            checkpoint = None
            if row["val_loss"] < last["lowest_loss"]:  # the epoch fit keeps: its weights are the trial's result
                last["lowest_loss"] = row["val_loss"]
                torch.save(model.state_dict(), Path(folder) / CHECKPOINT_FILE)
                checkpoint = tune.Checkpoint.from_directory(folder)
            tune.report(row, checkpoint=checkpoint)
        last["t"], last["cpu"] = time.perf_counter(), time.process_time()

    common = dict(epochs=epochs, device=device, seed=trial_seed(seed, index), report=report, log=None,
                  name=f"{kind} trial {index}", **settings)
    if cached is None:
        fit(model, train_loader, val_loader, **common)
    else:
        features.fit_on_features(model, cached, arrays["train_rows"], arrays["val_rows"], batch_size=batch, **common)


# ---------------------------------------------------------------------------------------------------
# The search
# ---------------------------------------------------------------------------------------------------
def search_halves(data, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The validation split in two stratified halves, (choose, test): trials are scored on the first, which
    picks the best trial, and the best is tested against the baseline's trial on the second, so the test is
    not biased by the choice (a best-of-8 score on the patches that chose it flatters it)."""
    val_idx = torch.as_tensor(data.val_idx, dtype=torch.int64)
    if len(val_idx) < 4:
        return val_idx, val_idx  # too few patches to halve: the comparison reuses them
    choose, test = stratified_split(data.train_labels[val_idx], 0.5, seed)
    return val_idx[choose], val_idx[test]


def _trial_arrays(data, subset: float, seed: int) -> dict:
    """The uint8 tensors every trial shares through the object store (copies, so no view drags the cache)."""
    train_idx = data.train_subset_idx(subset, seed)
    choose, _ = search_halves(data, seed)
    return {"train_images": data.train_images[train_idx].clone(),
            "train_labels": data.train_labels[train_idx].clone(),
            "val_images": data.train_images[choose].clone(),
            "val_labels": data.train_labels[choose].clone(),
            "mean": data.mean, "std": data.std}


def _trial_features(data, base, subset: float, seed: int, epochs: int, run_dir, device, log) -> dict:
    """model2's trials share the frozen prefix's features instead of the images: the driver makes sure each
    subset image has ``epochs`` computed views (chapter 3's baseline computed most of them already; a trial
    draws among them, each epoch's view still uniform over the 8) and each validation image its identity
    view (the half trials are scored on, ``search_halves``), and Ray's object store carries only those rows. A
    worker cannot add views (it would compute them in its own copy), so the driver fills everything a trial
    may draw. The cache is read from and saved to the run folder."""
    cache = features.build_cache(base, data, features.CACHE_STAGES, run_dir=run_dir, device=device, log=log)
    train_rows = data.train_subset_idx(subset, seed)
    val_rows, _ = search_halves(data, seed)
    cache.fill_at_least(train_rows, epochs, seed=seed)
    cache.fill(val_rows, torch.zeros(len(val_rows), dtype=torch.int64))
    if run_dir is not None:
        features.save_cache(cache, run_dir)
    n = len(train_rows)
    return {"features": cache.subset(torch.cat([train_rows, val_rows])), "train_rows": torch.arange(n),
            "val_rows": torch.arange(n, n + len(val_rows)), "train_labels": data.train_labels[train_rows]}


def _space_stages(space: dict) -> list[int]:
    """The unfrozen_stages values a model2 search space can sample (a tune.choice or a grid_search)."""
    domain = space.get("unfrozen_stages", 0)
    if isinstance(domain, dict) and "grid_search" in domain:
        return [int(v) for v in domain["grid_search"]]
    return [int(v) for v in getattr(domain, "categories", [domain])]


def _last_line(error) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else repr(error)


class _TrialLog(tune.Callback):
    """Times each trial as the driver sees it, and says in one line when a trial fails."""

    def __init__(self, kind: str, log):
        self.kind, self.log = kind, log
        self.started, self.ended = {}, {}  # trial index -> time.perf_counter()

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started[trial_index(trial.trial_id)] = time.perf_counter()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.ended[trial_index(trial.trial_id)] = time.perf_counter()

    def on_trial_error(self, iteration, trials, trial, **info):
        index = trial_index(trial.trial_id)
        self.ended[index] = time.perf_counter()
        error_file = trial.error_file  # written on this machine just before this call
        error = Path(error_file).read_text() if error_file and Path(error_file).exists() else trial.path
        self.log(f"{self.kind} trial {index} failed: {_last_line(error)} (the search goes on)")


class _TrialCount(tune.Callback):
    """Finished trials, for the live progress line of the chapter that runs the search."""

    def __init__(self, kind: str, total: int):
        self.kind, self.total, self.done = kind, total, 0
        progress.step(kind, "trial", 0, total, running=False)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.done += 1
        progress.step(self.kind, "trial", self.done, self.total, running=False)

    on_trial_error = on_trial_complete


@contextlib.contextmanager
def _quiet_ray():
    """No status tables, result tables or tracebacks from Ray while a search runs (errors are collected)."""
    old_env = os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # the classic reporter honours verbose=0 completely
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    old_levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, old_levels):
            lg.setLevel(level)
        if old_env is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = old_env


class BaselineKeepingASHA(ASHAScheduler):
    """ASHA that never stops the trials in ``keep`` (the baseline's settings) before ``max_t``, so the search's
    best is compared with the baseline after the same number of epochs. Their results still fill ASHA's rungs,
    so every other trial is judged exactly as plain ASHA would judge it."""

    def __init__(self, *, keep=(), max_t: int, **kwargs):
        super().__init__(max_t=max_t, **kwargs)
        self.keep, self.keep_until = set(keep), max_t

    def on_trial_result(self, tune_controller, trial, result):
        action = super().on_trial_result(tune_controller, trial, result)
        if (action == TrialScheduler.STOP and trial_index(trial.trial_id) in self.keep
                and result.get("training_iteration", self.keep_until) < self.keep_until):
            return TrialScheduler.CONTINUE
        return action


def asha_scheduler(epochs: int, keep=()) -> ASHAScheduler:
    """ASHA with rungs at the grace period and then every reduction factor of it (2, 4 for 4 epochs); the
    trials in ``keep`` run every epoch."""
    return BaselineKeepingASHA(keep=keep, time_attr="training_iteration", max_t=max(1, epochs),
                               grace_period=asha_grace_period(epochs), reduction_factor=2 if epochs <= 6 else 3)


def run_search(kind: str, data, profile, *, device="cpu", seed: int = 0, ray_address: str | None = None,
               storage_dir=None, space: dict | None = None, trials: int | None = None,
               epochs: int | None = None, weights_file=None, allow_random: bool = True,
               base_model2=None, run_dir=None, log=print) -> SearchResult:
    """Search ``kind``'s hyperparameters with Ray Tune and ASHA; returns a SearchResult.

    ``data`` is a NucleiData; trials train on ``profile.tune_subset`` of its training split (stratified) for
    at most ``profile.trial_epochs`` epochs (the final runs' budget rule, with a trial's own steps) and are
    scored on the first of ``search_halves`` of the validation split by the accuracy of the epoch with the
    lowest validation loss, the one a final run would keep. ``space``,
    ``trials`` and ``epochs`` override the profile's (each ``tune.grid_search`` value in ``space``
    multiplies the trials). model2 trials start from ``base_model2`` or, if None, from the recipe's
    ``load_base(weights_file, allow_random)``, built once here. ``storage_dir`` holds Ray's trial
    folders (on a cluster it must be storage every node can reach). Failed trials are listed in
    ``result.failed``; if every trial fails, SearchError. model2 trials whose unfrozen stages are all
    within ``features.CACHE_STAGES`` train on cached prefix features (``_trial_features``), kept in
    ``run_dir`` when given. Settings the space does not name are the baseline's. A default search then
    compares its best trial with the baseline's trial (``compare_with_baseline``: ``result.comparison``).
    """
    kind_recipe = recipe(kind)
    started = time.perf_counter()
    default_space = space is None
    base = base_model2 if base_model2 is not None else kind_recipe.load_base(weights_file, allow_random)
    pretrained = is_pretrained(base)  # model2 from random weights: every stage trains (recipes)
    space = space if space is not None else kind_recipe.search_space(profile, pretrained=pretrained)
    baseline = baseline_config(kind, profile, pretrained=pretrained)
    trials = trials or profile.tune_trials
    n_subset = len(data.train_subset_idx(profile.tune_subset, seed))
    epochs = epochs or profile.trial_epochs(kind, n_subset)
    device = str(device)
    if base is not None and all(features.uses_cache(base, n, device) for n in _space_stages({**baseline, **space})):
        arrays = _trial_features(data, base, profile.tune_subset, seed, epochs, run_dir, device, log)
    else:
        arrays = _trial_arrays(data, profile.tune_subset, seed)

    # the default search starts from the baseline's settings; a caller's own space is searched as given
    first_points = [{k: v for k, v in baseline.items() if k in space}] if default_space else []
    resources = init_ray(ray_address)
    grid_size = math.prod(len(d["grid_search"]) for d in space.values()
                          if isinstance(d, dict) and "grid_search" in d)
    per_trial, concurrent = trial_resources(kind, device, resources.get("CPU", 1), resources.get("GPU", 0),
                                            trials * grid_size, gpu_memory_gb())
    trainable = tune.with_parameters(   # puts the tensors and the model into the object store once
        _run_trial, kind=kind, fixed=baseline, arrays=arrays, base=base,
        epochs=epochs, device="cuda" if device.startswith("cuda") else device, seed=seed,
        threads=int(per_trial["cpu"]))
    trial_log = _TrialLog(kind, log)
    tuner = tune.Tuner(
        tune.with_resources(trainable, per_trial),
        param_space=space,
        tune_config=tune.TuneConfig(
            metric=METRIC_FOR_ASHA, mode="min", num_samples=trials,
            # the baseline's trial (the first) runs every epoch: the best is compared with it at equal budget
            scheduler=asha_scheduler(epochs, keep=[0] if first_points else []),
            # same seed, same sampled configs; the baseline's settings are the first trial
            search_alg=BasicVariantGenerator(random_state=seed, points_to_evaluate=first_points),
            max_concurrent_trials=concurrent, reuse_actors=REUSE_ACTORS),
        run_config=tune.RunConfig(
            name=f"{kind}_seed{seed}_{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(Path(storage_dir).resolve()) if storage_dir else None,
            verbose=0, callbacks=[trial_log, _TrialCount(kind, trials * grid_size)],
            failure_config=tune.FailureConfig(max_failures=0),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))  # each trial's kept epoch, nothing older
    with _quiet_ray():
        grid = tuner.fit()
    result = _collect(kind, grid, space, baseline, epochs, trial_log, time.perf_counter() - started)
    result.seed = seed  # which halves of the validation split chose and test (search_halves)
    # points_to_evaluate makes the baseline's settings trial 0 of a default search
    result.baseline_trial = 0 if first_points else None
    if result.baseline_trial is not None and not result.winner_is_baseline and result.baseline_completed:
        result.comparison = compare_with_baseline(result, data, base=base, device=device, run_dir=run_dir, log=log)
    return result


def _collect(kind, grid, space, baseline, epochs, trial_log, seconds) -> SearchResult:
    params = list(space)
    rows, curves, failed, timings, checkpoints = [], [], [], [], {}
    for index, result in enumerate(grid):  # the grid lists trials in creation order
        config = {k: result.config.get(k) for k in params}
        history = result.metrics_dataframe
        if history is not None and len(history):
            index = int(history["trial_index"].iloc[0])
            for _, r in history.iterrows():
                curves.append({"trial": index, "epoch": int(r["epoch"]), "val_acc": float(r["val_acc"]),
                               "val_loss": float(r["val_loss"])})
        wall = trial_log.ended.get(index, math.nan) - trial_log.started.get(index, math.nan)
        # a list value (channels [16, 32] from a caller's grid) is written as "16-32", as in the spaces
        row = {"trial": index, **{k: "-".join(map(str, v)) if isinstance(v, (list, tuple)) else v
                                  for k, v in config.items()}}
        if result.error is not None:
            failed.append({"trial": index, "config": _jsonable(config), "error": _last_line(result.error)})
            row.update(best_val_acc=math.nan, best_val_loss=math.nan, best_epoch=0, epochs_run=0,
                       stopped_early="no", status="failed", seconds=wall)
            timings.append({"trial": index, "setup_seconds": math.nan, "train_seconds": 0.0,
                            "train_cpu_seconds": 0.0, "wall_seconds": wall, "epochs": 0,
                            "seconds_per_epoch": math.nan, "images_per_second": math.nan})
        else:
            # the epoch with the lowest validation loss: the one fit would keep, so its accuracy is the score
            best = history.loc[history["val_loss"].idxmin()]
            ran = int(history["epoch"].max())
            row.update(best_val_acc=float(best["val_acc"]), best_val_loss=float(best["val_loss"]),
                       best_epoch=int(best["epoch"]), epochs_run=ran,
                       stopped_early="yes" if ran < epochs else "no",
                       status="stopped early" if ran < epochs else "completed", seconds=wall)
            timings.append(_trial_timing(index, history, wall))
            row["_config"] = {**baseline, **config}
            if result.checkpoint is not None:  # num_to_keep=1: the last one saved, at the lowest validation loss
                checkpoints[index] = result.checkpoint.path
        rows.append(row)
    table = pd.DataFrame(rows)
    ok = table[table["status"] != "failed"]
    if ok.empty:
        first = failed[0] if failed else {"trial": "?", "error": "no trial ran"}
        raise SearchError(f"every one of the {len(table)} {kind} trials failed; trial {first['trial']}: "
                          f"{first['error']}. Fix that error (the trial folders under the storage "
                          f"directory hold the full tracebacks) and run the search again.")
    # best = highest validation accuracy (at the lowest-loss epoch); a lower validation loss breaks ties. Only
    # trials that ran all their epochs compete when any did: ASHA stopped the others as behind, an early
    # epoch's lucky accuracy should not outrank a finished trial, and the best is then compared with the
    # baseline's trial at the same budget
    completed = ok[ok["status"] == "completed"]
    candidates = completed if len(completed) else ok
    best_row = candidates.sort_values(["best_val_acc", "best_val_loss"], ascending=[False, True]).iloc[0]
    table = (table.drop(columns="_config")
             .sort_values(["best_val_acc", "best_val_loss"], ascending=[False, True], na_position="last")
             .reset_index(drop=True))
    curves = pd.DataFrame(curves, columns=["trial", "epoch", "val_acc", "val_loss"])
    return SearchResult(kind=kind, table=table, best_config=_jsonable(best_row["_config"]),
                        curves=curves, failed=failed, best_trial=int(best_row["trial"]),
                        best_score=float(best_row["best_val_acc"]), max_epochs=epochs,
                        log_params=[name for name, d in space.items() if is_log_scale(d)], seconds=seconds,
                        timings=pd.DataFrame(timings).sort_values("trial").reset_index(drop=True),
                        searched=params, checkpoints=checkpoints)


def _trial_timing(index: int, history: pd.DataFrame, wall: float) -> dict:
    """One trial's cost: setup (model, data to the device), seconds per epoch, training images per second."""
    train = float(history["epoch_seconds"].sum())
    images = float(history["epoch_images"].sum()) if "epoch_images" in history else math.nan
    return {"trial": index, "setup_seconds": float(history["setup_seconds"].iloc[0]), "train_seconds": train,
            "train_cpu_seconds": float(history["epoch_cpu_seconds"].sum()), "wall_seconds": wall,
            "epochs": len(history), "seconds_per_epoch": train / len(history),
            "images_per_second": images / train if train > 0 else math.nan}


def _jsonable(config: dict) -> dict:
    """Plain Python values (no numpy scalars, lists not tuples) so the config round-trips through JSON."""
    return json.loads(json.dumps(config, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


# ---------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------
@dataclass
class SearchResult:
    kind: str
    table: pd.DataFrame        # one row per trial, best first: config, scores, epochs run, status
    best_config: dict          # JSON-serialisable, every setting (the searched ones and the baseline's); what
    #                            train_final takes
    curves: pd.DataFrame       # trial, epoch, val_acc, val_loss
    failed: list = field(default_factory=list)  # {"trial", "config", "error" (last line)}
    best_trial: int = -1
    best_score: float = math.nan  # the best trial's validation accuracy at its lowest-loss epoch
    max_epochs: int = 0
    log_params: list = field(default_factory=list)  # hyperparameters sampled on a log scale
    seconds: float = math.nan     # the whole search, as the driver saw it
    # per trial: setup (model, data to the device), training seconds, seconds per epoch, training images/s,
    # wall time from start to end
    timings: pd.DataFrame | None = None
    baseline_trial: int | None = None  # the trial that ran the baseline's settings (0), None if none did
    searched: list | None = None       # the hyperparameters the space varied (None: every key of best_config)
    checkpoints: dict = field(default_factory=dict)  # trial -> folder of its Ray Tune checkpoint (kept epoch)
    comparison: dict | None = None     # compare_with_baseline's numbers; None where there was nothing to compare
    seed: int = 0                      # the search's seed, which also drew search_halves

    @property
    def params(self) -> list[str]:
        return list(self.searched) if self.searched is not None else list(self.best_config)

    @property
    def winner_is_baseline(self) -> bool:
        """True when no sampled setting beat the hand-picked baseline: the search found nothing better."""
        return self.baseline_trial is not None and self.best_trial == self.baseline_trial

    @property
    def baseline_score(self) -> float:
        """The baseline trial's validation accuracy (at its lowest-loss epoch); NaN without one."""
        if self.baseline_trial is None:
            return math.nan
        score = self.table.loc[self.table["trial"] == self.baseline_trial, "best_val_acc"]
        return float(score.iloc[0]) if len(score) else math.nan

    @property
    def baseline_completed(self) -> bool:
        """Whether the baseline's trial ran every epoch (it failed otherwise: ASHA never stops it)."""
        status = self.table.loc[self.table["trial"] == self.baseline_trial, "status"]
        return bool(len(status)) and status.iloc[0] == "completed"

    @property
    def retrain(self) -> bool:
        """Whether the search earned a full-budget run of its best settings: the best trial beat the baseline's
        trial, at the same budget, on the half of the validation split that did not choose it, with McNemar's p
        below ``SIGNIFICANCE``.
        True also when there was no baseline trial to compare with (a caller's own space; a failed baseline)."""
        if self.winner_is_baseline:
            return False
        if self.comparison is None:
            return self.baseline_trial is None or not self.baseline_completed
        return bool(self.comparison["retrain"])

    @property
    def spread(self) -> dict:
        """Best, median and worst score of the trials that ran all their epochs (ASHA's survivors are
        compared on equal terms), and of every trial that ran; fractions 0..1, NaN where there are none."""
        ran = self.table[self.table["status"] != "failed"]
        completed = ran[ran["status"] == "completed"]["best_val_acc"]
        nan = math.nan
        return {"completed": len(completed), "ran": len(ran),
                "best": float(completed.max()) if len(completed) else nan,
                "median": float(completed.median()) if len(completed) else nan,
                "worst": float(completed.min()) if len(completed) else nan,
                "worst_of_all": float(ran["best_val_acc"].min()) if len(ran) else nan}

    def save(self, run_dir, kind: str | None = None) -> None:
        """tuning/<kind>_trials.csv, tuning/<kind>_curves.csv and tuning/<kind>_best.json in the run folder."""
        kind = kind or self.kind
        run_dir.save_frame(f"tuning/{kind}_trials.csv", self.table)
        run_dir.save_frame(f"tuning/{kind}_curves.csv", self.curves)
        run_dir.save_json(f"tuning/{kind}_best.json", {
            "kind": kind, "config": self.best_config, "trial": self.best_trial, "val_acc": self.best_score,
            "max_epochs": self.max_epochs, "log_params": self.log_params, "failed": self.failed,
            "seconds": self.seconds, "baseline_trial": self.baseline_trial, "searched": self.params,
            "checkpoints": {str(k): str(v) for k, v in self.checkpoints.items()}, "comparison": self.comparison,
            "seed": self.seed})

    @classmethod
    def load(cls, run_dir, kind: str) -> SearchResult:
        best = run_dir.load_json(f"tuning/{kind}_best.json")
        return cls(kind=kind, table=run_dir.load_frame(f"tuning/{kind}_trials.csv"),
                   best_config=best["config"], curves=run_dir.load_frame(f"tuning/{kind}_curves.csv"),
                   failed=best["failed"], best_trial=best["trial"], best_score=best["val_acc"],
                   max_epochs=best["max_epochs"], log_params=best["log_params"], seconds=best["seconds"],
                   baseline_trial=best.get("baseline_trial"), searched=best.get("searched"),
                   checkpoints={int(k): v for k, v in best.get("checkpoints", {}).items()},
                   comparison=best.get("comparison"), seed=best.get("seed", 0))


def trial_config(result: SearchResult, trial: int) -> dict:
    """Every setting trial ``trial`` trained with (the baseline's, with the searched ones it sampled)."""
    row = result.table.set_index("trial").loc[trial]
    config = dict(result.best_config)
    for name in result.params:
        value = row[name]
        config[name] = value.item() if hasattr(value, "item") else value
    return config


def restore_trial(result: SearchResult, trial: int, base=None) -> torch.nn.Module:
    """Trial ``trial``'s model with the weights of its Ray Tune checkpoint (its lowest-loss epoch)."""
    if trial not in result.checkpoints:
        raise KeyError(f"{result.kind} trial {trial} left no checkpoint (it failed, or the search ran before "
                       "trials saved them): run chapter 4 again")
    kind_recipe = recipe(result.kind)
    model = kind_recipe.make_model(trial_config(result, trial), base)
    checkpoint = tune.Checkpoint.from_directory(result.checkpoints[trial])
    with checkpoint.as_directory() as folder:
        model.load_state_dict(torch.load(Path(folder) / CHECKPOINT_FILE, map_location="cpu"))
    return model.eval()


def val_correct(kind: str, model: torch.nn.Module, config: dict, data, idx=None, *, device="cpu", run_dir=None,
                log=print):
    """Whether ``model`` (trained with ``config``) classifies each validation patch ``idx`` (default: the whole
    validation split) correctly, a bool array in that order, scored as its training scored it: model2 on
    cached prefix features where it trained on them, so the count matches the validation accuracy its run
    reported."""
    idx = torch.as_tensor(data.val_idx if idx is None else idx, dtype=torch.int64)
    batch = int(config.get("batch_size", 64))
    if kind == "model2" and features.uses_cache(model, int(config["unfrozen_stages"]), device):
        cache = features.build_cache(model, data, features.CACHE_STAGES, run_dir=run_dir, device=device, log=log)
        predictions = features.evaluate_on_features(model, cache, idx, batch_size=batch, device=device)
    else:
        patches = NucleiDataset(data.train_images[idx], data.train_labels[idx], mean=data.mean, std=data.std)
        predictions = evaluate(model, make_loader(patches, batch, shuffle=False, device=device), device=device)
    return predictions.preds == predictions.labels


def trial_correct(result: SearchResult, trial: int, data, idx=None, *, base=None, device="cpu", run_dir=None,
                  log=print):
    """``val_correct`` for trial ``trial``'s checkpoint (its lowest-loss epoch) on the validation patches
    ``idx`` (default: the whole validation split)."""
    return val_correct(result.kind, restore_trial(result, trial, base), trial_config(result, trial), data, idx,
                       device=device, run_dir=run_dir, log=log)


def paired_test(correct_a, correct_b, name_a: str = "a", name_b: str = "b") -> conclusions.PairedTest:
    """McNemar's exact test (``conclusions.paired_test``, the one the notebook uses everywhere) of two
    classifiers given which of the same patches each gets right (bool arrays)."""
    import numpy as np

    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"a paired test needs the same patches: {a.shape} and {b.shape} predictions")
    # "right" as a label: each classifier's prediction is 1 where it got the patch right
    return conclusions.paired_test(np.ones(a.size, dtype=np.int64), a, b, name_a, name_b)


def compare_with_baseline(result: SearchResult, data, *, base=None, device="cpu", run_dir=None, log=print) -> dict:
    """The search's best trial against the baseline's trial, both after the same epochs on the same subset,
    on the half of the validation split that did not choose the best (``search_halves``): their checkpoints
    restored, McNemar's exact test (``paired_test``). ``retrain`` is True when the best trial gets
    significantly more of those patches right (p < ``SIGNIFICANCE``)."""
    _, test = search_halves(data, result.seed)
    best, baseline = (trial_correct(result, trial, data, test, base=base, device=device, run_dir=run_dir, log=log)
                      for trial in (result.best_trial, result.baseline_trial))
    verdict = paired_test(best, baseline, "best", "baseline")
    return {"best_trial": result.best_trial, "baseline_trial": result.baseline_trial, **verdict.as_dict(),
            "retrain": verdict.winner == "best"}


# ---------------------------------------------------------------------------------------------------
# Retraining with the best config
# ---------------------------------------------------------------------------------------------------
@dataclass
class FinalRun:
    model: torch.nn.Module
    fit: object               # labkit.train.FitResult
    config: dict


def train_final(kind: str, config: dict, data, profile, *, device="cpu", seed: int = 0, weights_file=None,
                allow_random: bool = True, base_model2=None, run_dir=None, log=print) -> FinalRun:
    """Retrain ``kind`` with ``config`` on the whole training split with the profile's full budget
    (``recipes.train_model``: model2 on the cached prefix features in ``run_dir`` where it can)."""
    kind_recipe = recipe(kind)
    base = base_model2 if base_model2 is not None else kind_recipe.load_base(weights_file, allow_random)
    config = {"batch_size": profile.batch_size, **config}
    seed_everything(seed)  # the initial weights depend on the seed, not on what ran before in this process
    model = kind_recipe.make_model(config, base)
    epochs = profile.epochs_for(kind, len(data.train_idx))
    # model2 on a CPU revisits the views the baseline and the trials computed (features.views_to_reuse)
    result = train_model(kind, model, config, data, epochs=epochs, patience=profile.patience, device=device,
                         seed=seed, run_dir=run_dir, log=log, name=f"{kind} (tuned)")
    return FinalRun(model=model, fit=result, config=config)
