"""Interpretation with Captum: where in the patch does each model look?

Public API (chapter 06 calls these):

- ``METHODS``: ("Saliency", "IG + SmoothGrad", "Occlusion").
- ``attribute(model, inputs, targets, method, *, n_samples=3, n_steps=8, noise_std=0.15, window=16,
  stride=12, batch_size=64) -> numpy [N, H, W]``: one heat map per input, channels summed.
  Saliency is |gradient| (Captum ``Saliency``); "IG + SmoothGrad" is ``IntegratedGradients`` wrapped in
  ``NoiseTunnel(nt_type="smoothgrad")``; ``Occlusion`` slides a ``window`` x ``window`` patch of the
  baseline with ``stride``. The baseline of IG and Occlusion is 0 in normalised units, i.e. the mean
  colour of the training images. Targets are usually the predicted classes (what made the model say so).
- ``explain(model, inputs, targets, methods=METHODS, **settings) -> dict[method, numpy [N, H, W]]``.
- ``occlusion_positions(size, window=16, stride=12) -> int``: occlusion positions along one side.
- ``pick_examples(labels, preds, per_class=1, seed=0) -> list[int]``: for each class, ``per_class``
  correctly and ``per_class`` wrongly classified indices (when there are any), class by class.
- ``attribution_figure(model, images_norm, images_uint8, labels, preds, title, *, attributions=None,
  probs=None, radius_fraction=0.25) -> Figure``: rows = examples, columns = patch + one heat map per
  method (overlaid on the grey patch, the central disc dashed, each map's central share under it, one
  colour bar per method).
- ``central_share(attr, radius_fraction=0.25) -> float``: share of the positive attribution inside the
  central disc of radius ``radius_fraction * min(H, W)`` (where the nucleus is), averaged over images.
- ``central_area_share(height=100, width=100, radius_fraction=0.25) -> float``: the disc's share of the
  area, i.e. the central share of attribution spread uniformly (chance level).
- ``central_share_table(attributions_by_model: dict[model name, dict[method, array]], radius_fraction=0.25)
  -> DataFrame`` (model, method, images, central_share, area_share, times_chance).
- ``describe_central_share(table, area_share=None) -> str``: generated text quoting the table's measure:
  the methods that fail a check, then each model's central shares against the disc's share of the area.
- ``randomised_copy(model, seed=0)``, ``map_similarity(a, b) -> float``, ``randomisation_check(model,
  inputs, targets, attributions, seed=0, **settings) -> dict[method, float]``: the model-randomisation
  sanity check (Adebayo et al., 2018): the rank correlation between each method's maps for the trained
  model and for the same network with re-initialised weights. A method whose maps barely change is
  showing the image (edges, dark blobs), not what the model learned.

Speed (bench/interpret.py, 2-core CPU): the defaults keep both models under about a minute for the
standard profile's 8 examples per model; ``n_samples * n_steps`` is the cost of IG + SmoothGrad per image,
``((H - window) // stride + 1) ** 2`` forward passes the cost of Occlusion.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Circle
from scipy.stats import spearmanr

from labkit import CLASS_NAMES, N_CLASSES

SALIENCY, IG_SMOOTHGRAD, OCCLUSION = "Saliency", "IG + SmoothGrad", "Occlusion"
METHODS = (SALIENCY, IG_SMOOTHGRAD, OCCLUSION)
SIGNED = {SALIENCY: False, IG_SMOOTHGRAD: True, OCCLUSION: True}  # Saliency is |gradient|


def _targets_tensor(targets, n: int, device) -> torch.Tensor:
    targets = torch.as_tensor(np.asarray(targets), dtype=torch.long).reshape(-1)
    if len(targets) != n:
        raise ValueError(f"got {n} inputs but {len(targets)} targets: give one target class per input")
    if len(targets) and (targets.min() < 0 or targets.max() >= N_CLASSES):
        raise ValueError(f"targets must be class ids 0..{N_CLASSES - 1}, got {targets.tolist()}")
    return targets.to(device)


def attribute(model: torch.nn.Module, inputs, targets, method: str, *, n_samples: int = 3, n_steps: int = 8,
              noise_std: float = 0.15, window: int = 16, stride: int = 12, batch_size: int = 64) -> np.ndarray:
    """Heat maps [N, H, W] (channels summed) of ``method`` for ``inputs`` [N, C, H, W] (normalised).

    The defaults keep the cost small: 3 noisy copies x 8 IG steps = 24 forward/backward passes per image;
    a 16 px occlusion window every 12 px tiles a 100 px patch exactly (8 x 8 = 64 forward passes per
    image). ``noise_std`` is in normalised units (data std 1). The baseline of Integrated Gradients and
    Occlusion is 0 in normalised units: the training images' mean colour.
    """
    from captum.attr import IntegratedGradients, NoiseTunnel, Occlusion, Saliency

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    inputs = torch.as_tensor(inputs, dtype=torch.float32)
    if inputs.ndim != 4:
        raise ValueError(f"inputs must be [N, C, H, W], got shape {tuple(inputs.shape)}")
    targets = _targets_tensor(targets, len(inputs), device)
    was_training = model.training
    model.eval()  # BatchNorm/Dropout as at prediction time
    maps = []
    try:
        # chunks of examples so each forward pass holds about batch_size images
        if method == SALIENCY:
            chunk = batch_size
        elif method == IG_SMOOTHGRAD:
            chunk = max(1, batch_size // n_samples)
        else:
            chunk = max(1, min(len(inputs), batch_size // 4))
        for start in range(0, len(inputs), chunk):
            x = inputs[start:start + chunk].to(device)
            t = targets[start:start + chunk]
            if method == SALIENCY:
                attr = Saliency(model).attribute(x.requires_grad_(), target=t, abs=True)
            elif method == IG_SMOOTHGRAD:
                smooth_ig = NoiseTunnel(IntegratedGradients(model))
                attr = smooth_ig.attribute(x, nt_type="smoothgrad", nt_samples=n_samples, stdevs=noise_std,
                                           baselines=0.0, target=t, n_steps=n_steps,
                                           internal_batch_size=batch_size)
            else:
                channels = x.shape[1]
                attr = Occlusion(model).attribute(
                    x, sliding_window_shapes=(channels, window, window), strides=(channels, stride, stride),
                    baselines=0.0, target=t, perturbations_per_eval=max(1, batch_size // len(x)))
            maps.append(attr.detach().sum(dim=1).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(maps) if maps else np.zeros((0,) + tuple(inputs.shape[2:]))


def occlusion_positions(size: int, window: int = 16, stride: int = 12) -> int:
    """Positions of the occlusion window along one side of a ``size``-pixel patch (Captum's count)."""
    return (size - window) // stride + 1


def explain(model, inputs, targets, methods: Sequence[str] = METHODS, **settings) -> dict[str, np.ndarray]:
    """Every method's heat maps for the same inputs and targets."""
    return {method: attribute(model, inputs, targets, method, **settings) for method in methods}


def pick_examples(labels, preds, per_class: int = 1, seed: int = 0) -> list[int]:
    """Indices, class by class: ``per_class`` right and ``per_class`` wrong ones where they exist."""
    labels, preds = np.asarray(labels).ravel(), np.asarray(preds).ravel()
    rng = np.random.default_rng(seed)
    picked: list[int] = []
    for c in range(N_CLASSES):
        for wanted in (labels == preds, labels != preds):
            pool = np.flatnonzero((labels == c) & wanted)
            if len(pool):
                picked += sorted(rng.choice(pool, size=min(per_class, len(pool)), replace=False).tolist())
    return picked


def central_mask(height: int, width: int, radius_fraction: float = 0.25) -> np.ndarray:
    """Boolean disc of radius ``radius_fraction * min(height, width)`` around the patch centre."""
    yy, xx = np.mgrid[0:height, 0:width]
    cy, cx = (height - 1) / 2, (width - 1) / 2
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= (radius_fraction * min(height, width)) ** 2


def central_area_share(height: int = 100, width: int = 100, radius_fraction: float = 0.25) -> float:
    return float(central_mask(height, width, radius_fraction).mean())


def central_share(attr, radius_fraction: float = 0.25) -> float:
    """Share of the positive attribution inside the central disc, averaged over images.

    Per-image shares are averaged (rather than pooling all pixels) so that one image with large
    attributions does not decide the number. Images without any positive attribution are skipped;
    NaN if none has any.
    """
    attr = np.asarray(attr, dtype=float)
    if attr.ndim == 2:
        attr = attr[None]
    if attr.ndim != 3:
        raise ValueError(f"attr must be [N, H, W] or [H, W], got shape {attr.shape}")
    positive = np.clip(attr, 0, None)
    mask = central_mask(attr.shape[1], attr.shape[2], radius_fraction)
    totals = positive.sum(axis=(1, 2))
    inside = positive[:, mask].sum(axis=1)
    keep = totals > 0
    return float((inside[keep] / totals[keep]).mean()) if keep.any() else float("nan")


def central_share_table(attributions_by_model: Mapping[str, Mapping[str, np.ndarray]],
                        radius_fraction: float = 0.25,
                        randomisation: Mapping[str, Mapping[str, float]] | None = None,
                        across_patches: bool = False) -> pd.DataFrame:
    """One row per model and method: central share, the disc's area share, their ratio, and (when
    ``randomisation`` from ``randomisation_check`` is given per model) the similarity to a random model.
    ``across_patches``: also how alike one method's maps of *different* patches are (``patch_similarity``)."""
    rows = []
    for model_name, by_method in attributions_by_model.items():
        for method, attr in by_method.items():
            attr = np.asarray(attr)
            area = central_area_share(attr.shape[-2], attr.shape[-1], radius_fraction)
            share = central_share(attr, radius_fraction)
            similarity = (randomisation or {}).get(model_name, {}).get(method, float("nan"))
            row = {"model": model_name, "method": method, "images": int(attr.shape[0]) if attr.ndim == 3 else 1,
                   "central_share": share, "area_share": area, "times_chance": share / area,
                   "similarity_to_random": similarity}
            if across_patches:
                row["similarity_across_patches"] = patch_similarity(attr)
            rows.append(row)
    columns = ["model", "method", "images", "central_share", "area_share", "times_chance", "similarity_to_random"]
    return pd.DataFrame(rows, columns=columns + (["similarity_across_patches"] if across_patches else []))


def patch_similarity(maps) -> float:
    """Mean Spearman rank correlation of |map| between every two *different* patches: near 1 when a method
    draws the same picture whatever the patch (a pattern of the network, not of the input). NaN for < 2."""
    maps = np.abs(np.asarray(maps, dtype=float))
    if maps.ndim != 3 or len(maps) < 2:
        return float("nan")
    flat = maps.reshape(len(maps), -1)
    rhos = [spearmanr(flat[i], flat[j]).statistic for i in range(len(flat)) for j in range(i + 1, len(flat))
            if np.ptp(flat[i]) > 0 and np.ptp(flat[j]) > 0]
    return float(np.mean(rhos)) if rhos else float("nan")


def _same_for_every_patch(row) -> bool:
    value = row.get("similarity_across_patches", float("nan"))
    return bool(value >= RANDOMISATION_SIMILAR)


def _joined(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _fails_check(row) -> bool:
    return bool(row["similarity_to_random"] >= RANDOMISATION_SIMILAR) or _same_for_every_patch(row)


def describe_central_share(table: pd.DataFrame, area_share: float | None = None) -> str:
    """Generated text that says no more than the table's measure: which methods fail a check (and by how
    much), then, per model and for the methods that pass, the share of positive attribution inside the disc
    against the disc's share of the area. It does not rank the models: the table's numbers per method do."""
    if table.empty:
        return "No attributions were computed, so there is no central share to report."
    if area_share is None:
        area_share = float(table["area_share"].iloc[0])
    checked = table["similarity_to_random"].notna().any()
    lines = []
    if checked:
        for model_name, group in table.groupby("model", sort=False):
            random_like = group[group["similarity_to_random"] >= RANDOMISATION_SIMILAR]
            if len(random_like):
                lines.append(f"For {model_name}, {_joined(list(random_like['method']))} "
                             f"{'fails' if len(random_like) == 1 else 'fail'} the randomisation check (rank "
                             f"correlation with a re-initialised copy's maps up to "
                             f"{random_like['similarity_to_random'].max():.2f}).")
            same = group[group.apply(_same_for_every_patch, axis=1) & ~group.index.isin(random_like.index)]
            if len(same):
                lines.append(f"For {model_name}, {_joined(list(same['method']))} draws nearly the same map for "
                             f"every patch (rank correlation between patches up to "
                             f"{same['similarity_across_patches'].max():.2f}).")
        if not lines:
            lines.append("Every method passes both checks for every model.")
    trusted = table[~table.apply(_fails_check, axis=1)] if checked else table
    if len(trusted):
        lines.append(f"The disc covers {area_share:.1%} of the patch.")
    for model_name, group in trusted.groupby("model", sort=False):
        above = [f"{row['method']} ({row['central_share']:.1%})" for _, row in group.iterrows()
                 if row["central_share"] > area_share]
        below = [f"{row['method']} ({row['central_share']:.1%})" for _, row in group.iterrows()
                 if not row["central_share"] > area_share]  # NaN too: no positive attribution to measure
        if above:
            share = f"more than that inside it by {_joined(above)}" + (f", but no more by {_joined(below)}"
                                                                      if below else "")
        else:
            share = f"no more than that inside it by {_joined(below)}"
        some_failed = checked and len(group) < int((table["model"] == model_name).sum())
        lines.append(f"{model_name}'s maps{' that pass' if some_failed else ''} put {share}.")
    if checked and trusted.empty:
        lines.append("No map passes both checks, so none is read for where the models look.")
    counts = table.groupby("model", sort=False)["images"].min()
    if counts.max() < 20:
        shown = (f"{counts.iloc[0]} patches per model" if counts.nunique() == 1
                 else _joined([f"{n} patches for {name}" for name, n in counts.items()]))
        lines.append(f"{shown[0].upper()}{shown[1:]} make these shares an indication, not a measurement.")
    return " ".join(lines)


# ----------------------------------------------------------------------------------------------
# the model-randomisation sanity check
# ----------------------------------------------------------------------------------------------
RANDOMISATION_SIMILAR = 0.5   # rank correlation above which a method fails the check


def randomised_copy(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """The same network with every layer re-initialised (BatchNorm statistics reset too)."""
    clone = copy.deepcopy(model)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        for module in clone.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            if hasattr(module, "reset_running_stats"):
                module.reset_running_stats()
    finally:
        torch.random.set_rng_state(generator_state)  # the caller's random stream is left as it was
    return clone.eval()


def map_similarity(maps_a, maps_b) -> float:
    """Mean over images of the Spearman rank correlation between |map a| and |map b|.

    Absolute values, as in Adebayo et al.: a sign flip of a whole map is not a different explanation.
    """
    maps_a, maps_b = np.abs(np.asarray(maps_a, dtype=float)), np.abs(np.asarray(maps_b, dtype=float))
    if maps_a.shape != maps_b.shape:
        raise ValueError(f"map shapes differ: {maps_a.shape} vs {maps_b.shape}")
    rhos = []
    for a, b in zip(maps_a.reshape(len(maps_a), -1), maps_b.reshape(len(maps_b), -1)):
        if np.ptp(a) > 0 and np.ptp(b) > 0:  # a constant map has no ranking
            rhos.append(spearmanr(a, b).statistic)
    return float(np.mean(rhos)) if rhos else float("nan")


def randomisation_check(model, inputs, targets, attributions: Mapping[str, np.ndarray], seed: int = 0,
                        **settings) -> dict[str, float]:
    """Each method's similarity between the trained model's maps and a randomised copy's maps."""
    random_model = randomised_copy(model, seed).to(next(model.parameters()).device)
    return {method: map_similarity(maps, attribute(random_model, inputs, targets, method, **settings))
            for method, maps in attributions.items()}


# ----------------------------------------------------------------------------------------------
# the figure
# ----------------------------------------------------------------------------------------------
def _hwc(image) -> np.ndarray:
    image = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if image.ndim == 3 and image.shape[0] in (1, 3):
        image = image.transpose(1, 2, 0)
    return image


def attribution_figure(model, images_norm, images_uint8, labels, preds, title: str, *,
                       attributions: Mapping[str, np.ndarray] | None = None, probs=None,
                       radius_fraction: float = 0.25, **settings) -> Figure:
    """Rows = examples, columns = the patch and each method's heat map for the predicted class.

    Pass ``attributions`` (from ``explain``) to reuse maps already computed for the central-share table.
    Heat maps are scaled per image (the 99th percentile of |value| is 1, beyond is clipped) so that
    patterns, not magnitudes, are compared.
    """
    labels, preds = np.asarray(labels).ravel(), np.asarray(preds).ravel()
    if attributions is None:
        attributions = explain(model, images_norm, preds, **settings)
    methods = list(attributions)
    n = len(labels)
    if n == 0:
        raise ValueError("attribution_figure got no examples: pick some with pick_examples(labels, preds)")
    cols = 1 + len(methods)
    fig, axes = plt.subplots(n, cols, figsize=(2.3 * cols + 0.6, 2.25 * n + 1.1), dpi=100,
                             squeeze=False, layout="constrained")
    radius = None
    for r in range(n):
        patch = _hwc(images_uint8[r])
        grey = patch.mean(axis=2) if patch.ndim == 3 else patch
        ax = axes[r, 0]
        ax.imshow(patch)
        if r == 0:  # the column's header, above the row's own title
            ax.annotate("patch", xy=(0.5, 1.0), xycoords="axes fraction", xytext=(0, 30), textcoords="offset points",
                        ha="center", va="bottom", fontsize=10, fontweight="bold")
        verdict = "right" if labels[r] == preds[r] else "WRONG"
        confidence = f" {float(np.asarray(probs)[r, preds[r]]):.0%}" if probs is not None else ""
        ax.set_title(f"row {r + 1}: true {CLASS_NAMES[labels[r]]}\npred: {CLASS_NAMES[preds[r]]}{confidence} "
                     f"({verdict})",
                     fontsize=8.5, color="black" if verdict == "right" else "firebrick")
        h, w = grey.shape
        radius = radius_fraction * min(h, w)
        for c, method in enumerate(methods, start=1):
            attr = np.asarray(attributions[method][r], dtype=float)
            # the 99th percentile, not the maximum: a few extreme gradient pixels would wash out the rest
            scale = np.percentile(np.abs(attr), 99) or np.abs(attr).max() or 1.0
            attr = np.clip(attr / scale, -1, 1)
            ax = axes[r, c]
            ax.imshow(grey, cmap="gray")
            if SIGNED.get(method, True):
                im = ax.imshow(attr, cmap="RdBu_r", vmin=-1, vmax=1, alpha=0.7)
            else:
                im = ax.imshow(attr, cmap="inferno", vmin=0, vmax=1, alpha=0.7)
            ax.add_patch(Circle(((w - 1) / 2, (h - 1) / 2), radius, fill=False, ls="--", lw=1, color="lime"))
            # the table's measure for this one map, so that the picture and the number can be read together
            share = central_share(attributions[method][r], radius_fraction)
            ax.set_xlabel("no positive attribution" if np.isnan(share) else f"in the disc: {share:.0%}", fontsize=8.5)
            if r == 0:
                ax.set_title(method, fontsize=10, fontweight="bold")
            if r == n - 1:
                label = ("|gradient|, scaled per image" if not SIGNED.get(method, True)
                         else "scaled per image\nred: for the prediction, blue: against")
                signed = SIGNED.get(method, True)
                cbar = fig.colorbar(im, ax=axes[:, c], location="bottom", shrink=0.8, pad=0.01, aspect=25,
                                    ticks=[-1, 0, 1] if signed else [0, 0.5, 1])
                cbar.set_label(label, fontsize=8.5)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{title}\n(dashed circle: the central disc; under each map, its share of the positive "
                 "attribution inside the disc)", fontsize=11)
    return fig
