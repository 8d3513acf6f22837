"""Figures and tables that show the data before any model sees it (chapter 01).

    class_mix_figure(labels, title)            bar chart of class counts with percentages
    example_grid(images, labels, per_class)    a row of example patches per class
    augmentation_preview(image)                the 8 fixed views (4 rotations x 2 flips) of a patch
    split_table(labels, train_idx, val_idx)    per-class counts and shares in each split
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from labkit import CLASS_NAMES, N_CLASSES


def _as_numpy(x) -> np.ndarray:
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def _hwc(image) -> np.ndarray:
    """CHW tensor or array (uint8, or float in 0..1) -> HWC array for imshow."""
    image = _as_numpy(image)
    return np.transpose(image if image.dtype == np.uint8 else image.clip(0, 1), (1, 2, 0))


def class_counts(labels) -> pd.Series:
    counts = np.bincount(_as_numpy(labels), minlength=N_CLASSES)
    return pd.Series(counts, index=pd.Index(CLASS_NAMES, name="class"), name="images")


def class_mix_figure(labels, title: str = "Class mix of all labelled patches (before the split)"):
    counts = class_counts(labels)
    shares = counts / counts.sum()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    bars = ax.barh(counts.index, counts.values, color=["#7b9acc", "#c0504d", "#9bbb59", "#8064a2"])
    for bar, n, share in zip(bars, counts.values, shares.values):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f"  {n:,} ({100 * share:.1f}%)", va="center")
    ax.invert_yaxis()
    ax.set_xlabel("patches")
    ax.set_xlim(0, counts.max() * 1.25)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def example_grid(images, labels, per_class: int = 6, seed: int = 0, title: str = "Example patches per class"):
    """One row per class, per_class random patches each (seeded, so every build shows the same ones)."""
    labels = _as_numpy(labels)
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(N_CLASSES, per_class, figsize=(1.5 * per_class + 1.6, 1.55 * N_CLASSES + 0.5),
                             squeeze=False)
    for cls, row in enumerate(axes):
        members = np.flatnonzero(labels == cls)
        picks = rng.choice(members, size=min(per_class, len(members)), replace=False) if len(members) else []
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
        for ax, idx in zip(row, picks):
            ax.imshow(_hwc(images[idx]))
        row[0].set_ylabel(f"{cls}: {CLASS_NAMES[cls]}", rotation=0, ha="right", va="center", fontsize=10)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def augmentation_preview(image, title: str = "The eight views training draws from: 4 rotations x 2 flips"):
    """The 8 fixed views of one CHW patch (uint8, or float in 0..1): rotations by 0, 90, 180 and 270
    degrees, each without and with a left-right flip. Training draws one of them at random per patch."""
    import torch

    image = torch.as_tensor(image)
    fig, axes = plt.subplots(2, 4, figsize=(7.5, 4.4), layout="constrained")
    for flip in range(2):
        for turn in range(4):
            view = torch.rot90(image, turn, dims=(-2, -1))
            view = view.flip(-1) if flip else view
            ax = axes[flip, turn]
            ax.imshow(_hwc(view))
            ax.set_title(f"{90 * turn} deg" + (", flipped" if flip else "") + (" (original)" if not (flip or turn)
                                                                                else ""), fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title)
    return fig


def split_table(labels, train_idx, val_idx) -> pd.DataFrame:
    labels = _as_numpy(labels)
    train = class_counts(labels[_as_numpy(train_idx)])
    val = class_counts(labels[_as_numpy(val_idx)])
    table = pd.DataFrame({"train": train, "train %": (100 * train / train.sum()).round(1),
                          "validation": val, "validation %": (100 * val / val.sum()).round(1)})
    table.loc["total"] = [train.sum(), 100.0, val.sum(), 100.0]
    return table.astype({"train": int, "validation": int})
