"""The two model kinds, one recipe each: everything that differs between model1 and model2.

A recipe says how to make the model from a config, which optimiser settings ``train.fit`` gets, the
hand-picked settings of the baseline (chapters 2 and 3), the Ray Tune search space around it (chapter 4),
how many epochs a full run takes, and how to rebuild the model from a checkpoint. Chapters, ``tune`` and
``results`` look a kind up in ``RECIPES`` instead of asking ``if kind == "model1"``, so a new setting or
a changed baseline is written here once.

    RECIPES["model1"], RECIPES["model2"]   the recipes; ``KINDS`` their names
    baseline_config(kind, profile)         the baseline's settings, with the profile's batch size
    describe_settings(config)              the settings in words, for the notebook
    model1_search_space(profile), model2_search_space(profile)
                                           what Ray Tune varies (shown in chapter 4: keep them short)
    is_log_scale(domain)                   whether a space's entry is sampled on a log scale
    train_model(kind, model, config, data, ...)
                                           a baseline or final run; model2 on cached prefix features
"""
from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from labkit import features, models


# ---------------------------------------------------------------------------------------------------
# Search spaces (shown in the notebook with inspect.getsource: keep them short)
# ---------------------------------------------------------------------------------------------------
def model1_search_space(profile, pretrained: bool = False) -> dict:
    """What Ray Tune varies for model1, our small ConvNet; the other settings stay the baseline's."""
    # imported here: importing Ray costs seconds in every chapter that only trains or reads results
    from ray import tune

    return {
        "lr": tune.loguniform(3e-4, 3e-2),            # log scale: rates matter by ratio, not difference
        "weight_decay": tune.loguniform(1e-5, 1e-2),  # L2 penalty, also log scale
        "dropout": tune.uniform(0.0, 0.5),            # before the classifier
    }


def model2_search_space(profile, pretrained: bool = True) -> dict:
    """What Ray Tune varies for model2, the fine-tuned torchvision network (``pretrained``: whether it starts
    from ImageNet weights); the other settings stay the baseline's."""
    from ray import tune

    if not pretrained:  # random weights: every stage trains, so how many to unfreeze is not a question
        return {
            "head_lr": tune.loguniform(1e-3, 3e-2),
            "backbone_lr": tune.loguniform(3e-4, 1e-2),
            "weight_decay": tune.loguniform(1e-5, 1e-2),
        }
    # on a CPU: the head alone or with the last stage, whose trials share cached features (labkit.features);
    # unfreezing earlier, higher-resolution stages costs a full forward and backward pass per step
    return {
        "head_lr": tune.loguniform(1e-3, 3e-2),       # the new head learns from scratch: larger steps
        "backbone_lr": tune.loguniform(1e-5, 1e-3),   # small steps adjust pretrained features
        "unfrozen_stages": tune.choice([1, 2, 3, 4] if profile.name == "full" else [0, 1]),  # 0: the head only
    }


def is_log_scale(domain) -> bool:
    """Whether a search-space entry is sampled on a log scale (``tune.loguniform`` and the like)."""
    from ray.tune.search.sample import Float, Integer
    return isinstance(domain, (Float, Integer)) and "LogUniform" in type(domain.get_sampler()).__name__


# ---------------------------------------------------------------------------------------------------
# model1: built from the config alone
# ---------------------------------------------------------------------------------------------------
def _model1(config: dict, base=None) -> nn.Module:
    return models.build_model1(config)


def _model1_fit_settings(model: nn.Module, config: dict) -> dict:
    return {"lr": config["lr"], "weight_decay": config["weight_decay"],
            "optimizer": config.get("optimizer", "adamw")}


def _no_base(weights_file=None, allow_random: bool = True) -> None:
    return None


# ---------------------------------------------------------------------------------------------------
# model2: each model is a copy of one ImageNet network with its new head (the base), built once per search
# ---------------------------------------------------------------------------------------------------
def _pretrained_model2(weights_file=None, allow_random: bool = True) -> nn.Module:
    with warnings.catch_warnings():  # chapter 3 already said whether the weights are pretrained
        warnings.simplefilter("ignore")
        model, info = models.build_model2(weights_file=weights_file, allow_random=allow_random)
    model.pretrained = info.pretrained  # decides the baseline's settings and the search space (is_pretrained)
    return model


def is_pretrained(base) -> bool:
    """Whether a search's base model started from ImageNet weights (model1 has no base: False)."""
    return bool(getattr(base, "pretrained", True)) if base is not None else False


def _model2(config: dict, base: nn.Module) -> nn.Module:
    model = copy.deepcopy(base)  # the base is shared by every trial: each trains its own copy
    models.set_unfrozen_stages(model, int(config["unfrozen_stages"]))
    return model


def _model2_fit_settings(model: nn.Module, config: dict) -> dict:
    groups = models.model2_param_groups(model, config["head_lr"], config["backbone_lr"], config["weight_decay"])
    return {"param_groups": groups, "lr": config["head_lr"], "weight_decay": config["weight_decay"]}


# ---------------------------------------------------------------------------------------------------
# The recipes
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recipe:
    kind: str
    imagenet: bool                    # starts from ImageNet weights (model2) or from random ones (model1)
    # The hand-picked settings of the baseline in chapter 2 or 3. Every search tries them first
    # (points_to_evaluate), so a search can only find something better than the default, never silently worse.
    baseline: dict
    search_space: Callable[..., dict]          # profile -> Ray Tune space, in the baseline's keys
    load_base: Callable[..., nn.Module | None]  # (weights_file, allow_random) -> what make_model starts from
    make_model: Callable[..., nn.Module]       # (config, base) -> a fresh model to train
    fit_settings: Callable[..., dict]          # (model, config) -> train.fit's optimiser keywords
    from_checkpoint: Callable[..., nn.Module]  # checkpoint meta -> the architecture, weights not loaded
    # Ray Tune on GPUs (tune.trial_resources): at most this many trials share one GPU (a small model leaves
    # gaps between its kernels that other trials fill) ...
    trials_per_gpu: int
    # ... and each needs about this much GPU memory (GB: its split on the device, the model, AdamW's state
    # and the activations of a batch of up to 256; an estimate with room to spare, not a measurement)
    trial_gpu_gb: float


RECIPES = {
    "model1": Recipe(
        kind="model1", imagenet=False,
        baseline={"lr": 3e-3, "weight_decay": 1e-4, "optimizer": "adamw", "channels": "16-32-64-128",
                  "dropout": 0.3},
        search_space=model1_search_space,
        load_base=_no_base, make_model=_model1, fit_settings=_model1_fit_settings,
        from_checkpoint=lambda meta: models.build_model1(meta.get("config", {})), trials_per_gpu=4,
        trial_gpu_gb=2.0),
    "model2": Recipe(
        kind="model2", imagenet=True,
        baseline={"head_lr": 3e-3, "backbone_lr": 3e-4, "weight_decay": 1e-4, "unfrozen_stages": 1},
        search_space=model2_search_space,
        load_base=_pretrained_model2, make_model=_model2, fit_settings=_model2_fit_settings,
        from_checkpoint=lambda meta: models.model2_architecture(meta["arch"]), trials_per_gpu=2,
        trial_gpu_gb=4.0),
}
KINDS = tuple(RECIPES)


def recipe(kind: str) -> Recipe:
    try:
        return RECIPES[kind]
    except KeyError:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}") from None


# model2 without ImageNet weights: frozen random stages would compute nothing useful, so every stage trains,
# at the head's learning rate (there are no pretrained features to protect with a smaller one)
RANDOM_MODEL2 = {"backbone_lr": 3e-3, "unfrozen_stages": -1}


def baseline_config(kind: str, profile, pretrained: bool = True) -> dict:
    """The baseline's full config (with the profile's batch size), in the search space's keys.
    ``pretrained=False`` (model2 with random weights): all stages are trained (``RANDOM_MODEL2``)."""
    config = {**recipe(kind).baseline, "batch_size": profile.batch_size}
    if kind == "model2" and not pretrained:
        config.update(RANDOM_MODEL2)
    return config


_WORDS = {"lr": "peak learning rate", "head_lr": "peak learning rate of the new head",
          "backbone_lr": "peak learning rate of the backbone", "weight_decay": "weight decay",
          "optimizer": "optimiser", "channels": "channels per conv block", "dropout": "dropout",
          "unfrozen_stages": "unfrozen backbone stages", "batch_size": "batch size"}
_ALL_STAGES = {-1: "all"}
_OPTIMIZERS = {"adamw": "AdamW", "sgd": "SGD with momentum 0.9"}


def describe_settings(config: dict) -> str:
    """A config in words, e.g. "optimiser AdamW, peak learning rate 0.003, ...", for the notebook."""
    def value(key, v):
        if key == "unfrozen_stages" and v in _ALL_STAGES:
            return _ALL_STAGES[v]
        return _OPTIMIZERS.get(v, v) if key == "optimizer" else f"{v:g}" if isinstance(v, float) else str(v)
    return ", ".join(f"{_WORDS.get(k, k)} {value(k, v)}" for k, v in config.items())


# ---------------------------------------------------------------------------------------------------
# One training run (baselines in chapters 2 and 3, final runs in chapter 4)
# ---------------------------------------------------------------------------------------------------
def train_model(kind: str, model: nn.Module, config: dict, data, *, epochs: int, patience=None, device="cpu",
                seed: int = 0, run_dir=None, name: str | None = None, reuse_views: int | None = None, log=print):
    """Train ``model`` (made for ``config``) with the config's settings on ``data``'s training split, keep the
    epoch with the lowest validation loss; returns ``train.FitResult``.

    model2 with at most ``features.CACHE_STAGES`` unfrozen stages trains its suffix on cached prefix
    features (``labkit.features``): the frozen stages run once per image and view, not once per epoch. The
    cache is read from and written back to ``run_dir`` (the run folder), so later chapters reuse it;
    ``reuse_views`` (model2 on the cache): see ``features.fit_on_features``; None: ``features.views_to_reuse``
    for the device.
    """
    from labkit import data as data_module
    from labkit import train

    settings = recipe(kind).fit_settings(model, config)
    batch = int(config.get("batch_size", 64))
    common = dict(epochs=epochs, patience=patience, device=device, seed=seed, name=name or kind, log=log, **settings)
    if kind == "model2" and features.uses_cache(model, config["unfrozen_stages"], device):
        cache = features.build_cache(model, data, features.CACHE_STAGES, run_dir=run_dir, device=device, log=log)
        if reuse_views is None:
            reuse_views = features.views_to_reuse(device)
        result = features.fit_on_features(model, cache, data.train_idx, data.val_idx, batch_size=batch,
                                          reuse_views=reuse_views, **common)
        if run_dir is not None:
            features.save_cache(cache, run_dir)
        return result
    train_loader = data_module.make_loader(data.train_dataset(augment=True, seed=seed), batch, shuffle=True,
                                           device=device)
    val_loader = data_module.make_loader(data.val_dataset(), batch, shuffle=False, device=device)
    return train.fit(model, train_loader, val_loader, **common)
