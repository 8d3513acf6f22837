"""Diagnostics: learning curves, confusion matrices, the worst confusion, and an experiment aimed at it.

Public API (chapter 05 calls these; every figure is sized for a ~900 px notebook column):

- ``curves_figure(history, title) -> Figure``: loss and accuracy, train and validation, two panels.
- ``comparison_figure(histories: dict[str, History]) -> Figure``: validation loss and accuracy of
  several models (model1 vs model2) epoch by epoch.
- ``confusion_figure(y_true, y_pred, title) -> Figure``: counts and row-normalised rates, class names,
  colour bars.
- ``per_class_table(y_true, y_pred) -> DataFrame``: precision, recall, F1, support per class plus
  accuracy, macro avg and weighted avg rows (sklearn ``classification_report``).
- ``per_class_display(table) -> DataFrame``: that table as the notebook shows it: percentages with at most
  3 significant digits, support as counts, "—" where a number does not apply (no NaN).
- ``most_confused_pair(y_true, y_pred) -> ConfusedPair(true_class, predicted_class, count, rate, text)``,
  or None when nothing was misclassified (``describe_pair`` words either case):
  the largest off-diagonal **row-normalised rate** (ties broken by count). Rate, not count, because
  the classes are strongly imbalanced: a raw count always points at the big classes (cancer, immune),
  while the rate says "this share of class X is taken for class Y", which is what hurts the minority
  classes and what the fix aims at.
- ``misclassified_gallery(images_uint8, y_true, y_pred, probs, max_images=12) -> Figure``: the most
  confidently wrong validation patches, true/predicted class and confidence in each title.
- ``fix_experiment(model, train_dataset, train_labels, val_loader, FixSettings(...), *, before, device, ...)
  -> FixResult(before, after, pair, description, settings, after_without_tta)``: fine-tunes the model
  for a few epochs with a sampler (or loss weights) that over-weights the true class of the worst
  pair, then evaluates with test-time augmentation on the SAME validation loader.
- ``fix_figure(result) -> Figure``: before/after confusion rates and per-class recall side by side.
- ``judge_fix(result, model) -> FixVerdict``: adopted or not, from paired statistics on the validation split
  (the pair's count, balanced accuracy with its paired-bootstrap interval, collapsed classes), with the
  verdict in two or three sentences (``FixVerdict.text``).

``history`` may be a ``labkit.train.History`` or its ``to_dict()`` form; predictions may be a
``labkit.train.Predictions`` or any object with numpy ``labels``, ``preds``, ``probs``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from labkit import CLASS_NAMES, N_CLASSES, train
from labkit.data import make_loader
from labkit.narrative import misclassified_order

CLASS_IDS = list(range(N_CLASSES))


# ----------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------
def _history_dict(history) -> dict:
    if hasattr(history, "to_dict"):
        history = history.to_dict()
    if not isinstance(history, Mapping):
        raise TypeError(f"expected a History or its to_dict() form, got {type(history).__name__}")
    missing = [k for k in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc") if k not in history]
    if missing:
        raise ValueError(f"history lacks {', '.join(missing)}: pass the History that labkit.train.fit returned")
    return history


def _as_labels(values) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values).astype(np.int64).ravel()


def _acc_scale(values: Sequence[float]) -> tuple[list[float], str]:
    """Accuracies are stored 0..1 by fit; show percent (and accept percent already)."""
    vals = [float(v) for v in values]
    if vals and max(vals) <= 1.0 + 1e-9:
        vals = [100.0 * v for v in vals]
    return vals, "accuracy (%)"


def share_label(value: float, digits: int = 1) -> str:
    """A share 0..1 as a percent with ``digits`` decimals that never rounds up to 100% (or down to 0%) unless
    it is exactly that: 284 of 285 reads "99.6%", 9,999 of 10,000 "99.9%", not "100.0%"."""
    value = float(value)
    step = 10.0 ** -digits
    shown = round(100 * value, digits)
    if value < 1 and shown >= 100:
        shown = 100 - step
    elif value > 0 and shown <= 0:
        shown = step
    return f"{shown:.{digits}f}%"


def _epoch_ticks(ax, epochs: Sequence[int]) -> None:
    # integer epochs only, and not one tick per epoch when there are many
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=10))
    if len(set(epochs)) == 1:  # one point: matplotlib would spread fractions of an epoch around it
        ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
    ax.set_xlabel("epoch")


LOG_LOSS_RATIO = 5.0  # losses spanning more than this factor are drawn on a log axis


def _loss_axis(ax, label: str, losses: Sequence[float]) -> None:
    """A log loss axis (plain tick labels: 0.5, 1, 2) where the losses span more than LOG_LOSS_RATIO, so that a
    high first epoch does not flatten the rest; a linear one otherwise, where a log axis would show a tick or
    two at most. The label says which."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    positive = [float(v) for v in losses if np.isfinite(v) and v > 0]
    if not positive or max(positive) / min(positive) <= LOG_LOSS_RATIO:
        ax.set_ylabel(label)
        return
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel(f"{label} (log scale)")


def _finish_curves(fig: Figure, axes, epochs: Sequence[int], title: str) -> Figure:
    """What every curves figure ends with: epoch ticks, grid and legend on each panel, then the title."""
    for ax in axes:
        _epoch_ticks(ax, epochs)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    return fig


def rates_matrix(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """(counts, row-normalised rates) over all four classes; a class with no examples gets a zero row."""
    from sklearn.metrics import (
        confusion_matrix,  # here: importing sklearn costs seconds where unused
    )

    counts = confusion_matrix(_as_labels(y_true), _as_labels(y_pred), labels=list(CLASS_IDS))
    support = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, support, out=np.zeros(counts.shape, dtype=float), where=support > 0)
    return counts, rates


def recall_per_class(y_true, y_pred) -> np.ndarray:
    return np.diag(rates_matrix(y_true, y_pred)[1])


def accuracy(y_true, y_pred) -> float:
    y_true, y_pred = _as_labels(y_true), _as_labels(y_pred)
    return float((y_true == y_pred).mean()) if len(y_true) else float("nan")


# ----------------------------------------------------------------------------------------------
# curves
# ----------------------------------------------------------------------------------------------
def curves_figure(history, title: str = "Training curves") -> Figure:
    """Loss (left) and accuracy (right), train and validation, by epoch. The kept epoch (lowest validation
    loss: the weights ``fit`` keeps) is marked on both panels, and its validation accuracy, the run's one
    quoted accuracy, is written in a corner box away from the curves.

    The loss axis is logarithmic where the losses span more than a factor of LOG_LOSS_RATIO: a first epoch's
    loss can be ten times the later ones (a network started from random weights), and on a linear axis it
    flattens every later epoch into one line. The accuracy axis is always 0 to 100%, so that any two curves
    figures of the notebook can be compared by eye."""
    h = _history_dict(history)
    epochs = list(h["epoch"])
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    ax_loss.plot(epochs, h["train_loss"], "o-", label="train")
    ax_loss.plot(epochs, h["val_loss"], "s--", label="validation")
    _loss_axis(ax_loss, "cross-entropy loss", [*h["train_loss"], *h["val_loss"]])
    ax_loss.set_title("Loss")
    train_acc, ylabel = _acc_scale(h["train_acc"])
    val_acc, _ = _acc_scale(h["val_acc"])
    ax_acc.plot(epochs, train_acc, "o-", label="train")
    ax_acc.plot(epochs, val_acc, "s--", label="validation")
    ax_acc.set_ylabel(ylabel)
    ax_acc.set_ylim(0, 100)
    ax_acc.set_title("Accuracy")
    if val_acc:
        kept = train.kept_index(h)  # the epoch fit keeps
        for ax in (ax_loss, ax_acc):
            ax.axvline(epochs[kept], color="grey", linestyle=":", linewidth=1.2)
        ax_loss.plot(epochs[kept], h["val_loss"][kept], "*", color="black", markersize=13, label="kept epoch")
        ax_acc.plot(epochs[kept], val_acc[kept], "*", color="black", markersize=13, label="kept epoch")
        ax_acc.text(0.98, 0.04, f"kept epoch {epochs[kept]}: val {share_label(val_acc[kept] / 100)}", transform=ax_acc.transAxes,
                    ha="right", va="bottom", fontsize=9,
                    bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "grey", "alpha": 0.9})
    return _finish_curves(fig, (ax_loss, ax_acc), epochs, title)


def comparison_figure(histories: Mapping[str, Any], title: str = "Validation curves, model by model") -> Figure:
    """Validation loss and accuracy of each named history on shared axes."""
    if not histories:
        raise ValueError("comparison_figure needs at least one history, e.g. {'model1': h1, 'model2': h2}")
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    all_epochs: list[int] = []
    for name, history in histories.items():
        h = _history_dict(history)
        epochs = list(h["epoch"])
        all_epochs += epochs
        val_acc, ylabel = _acc_scale(h["val_acc"])
        ax_loss.plot(epochs, h["val_loss"], "o-", label=name)
        kept = int(np.argmin(h["val_loss"])) if val_acc else 0  # the epoch fit keeps
        ax_acc.plot(epochs, val_acc, "o-", label=f"{name} (kept epoch {epochs[kept]}: "
                    f"{share_label(val_acc[kept] / 100)})" if val_acc else name)
    _loss_axis(ax_loss, "validation loss", [v for history in histories.values()
                                            for v in _history_dict(history)["val_loss"]])
    ax_loss.set_title("Validation loss")
    ax_acc.set_ylabel(f"validation {ylabel}")
    ax_acc.set_ylim(0, 100)
    ax_acc.set_title("Validation accuracy")
    return _finish_curves(fig, (ax_loss, ax_acc), all_epochs, title)


# ----------------------------------------------------------------------------------------------
# confusion
# ----------------------------------------------------------------------------------------------
def _short_names(names: Sequence[str]) -> list[str]:
    # "cancer epithelial" -> "cancer\nepithelial": keeps tick labels narrow at notebook width
    return [n.replace(" ", "\n") for n in names]


def _draw_matrix(ax, fig, matrix: np.ndarray, *, as_rate: bool, title: str, cmap: str = "Blues",
                 tick_size: int = 9) -> None:
    vmax = 1.0 if as_rate else max(1, int(matrix.max()))
    im = ax.imshow(matrix, cmap=cmap, vmin=0, vmax=vmax)
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if as_rate:
        cbar.ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    cbar.set_label("share of the true class" if as_rate else "patches")
    names = _short_names(CLASS_NAMES)
    ax.set_xticks(CLASS_IDS, names, fontsize=tick_size)
    ax.set_yticks(CLASS_IDS, names, fontsize=tick_size)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    for i in CLASS_IDS:
        for j in CLASS_IDS:
            value = matrix[i, j]
            text = share_label(value) if as_rate else f"{int(value)}"
            light = value > 0.55 * vmax  # white text on dark cells
            ax.text(j, i, text, ha="center", va="center", fontsize=10,
                    color="white" if light else "black")


def confusion_figure(y_true, y_pred, title: str = "Confusion matrix") -> Figure:
    """Counts (left) and row-normalised rates (right); rows are true classes."""
    counts, rates = rates_matrix(y_true, y_pred)
    fig, (ax_counts, ax_rates) = plt.subplots(1, 2, figsize=(12, 5), dpi=100)
    _draw_matrix(ax_counts, fig, counts, as_rate=False, title="Counts")
    _draw_matrix(ax_rates, fig, rates, as_rate=True, title="Rates (each row sums to 100%)")
    fig.suptitle(f"{title}  (accuracy {share_label(accuracy(y_true, y_pred))}, n={int(counts.sum())})", fontsize=13)
    fig.tight_layout()
    return fig


def per_class_table(y_true, y_pred) -> pd.DataFrame:
    """Precision, recall, F1 and support per class, then accuracy / macro avg / weighted avg rows."""
    # imported here: importing sklearn costs seconds in chapters that never call this
    from sklearn.metrics import classification_report

    report = classification_report(
        _as_labels(y_true), _as_labels(y_pred), labels=CLASS_IDS, target_names=list(CLASS_NAMES),
        output_dict=True, zero_division=0,
    )
    accuracy_value = report.pop("accuracy", None)
    table = pd.DataFrame(report).T[["precision", "recall", "f1-score", "support"]]
    if accuracy_value is None:  # sklearn leaves it out when some labels are absent ("micro avg" instead)
        accuracy_value = accuracy(y_true, y_pred)
        table = table.drop(index="micro avg", errors="ignore")
    n = len(_as_labels(y_true))
    acc_row = pd.DataFrame({"precision": [np.nan], "recall": [np.nan], "f1-score": [accuracy_value],
                            "support": [n]}, index=["accuracy"])
    classes = table.loc[list(CLASS_NAMES)]
    averages = table.drop(index=list(CLASS_NAMES))
    table = pd.concat([classes, acc_row, averages])
    table["support"] = table["support"].astype(int)
    table.index.name = "class"
    return table


def _percent(value) -> str:
    return "—" if pd.isna(value) else f"{100 * float(value):.3g}%"


def per_class_display(table: pd.DataFrame, y_pred=None) -> pd.DataFrame:
    """``per_class_table`` for reading: precision, recall and F1 as percentages (3 significant digits),
    support as an integer, and "—" for the cells sklearn leaves empty (the accuracy row's precision and
    recall) instead of NaN. A class without validation patches says so instead of showing 0%, and with
    ``y_pred`` a class the model never predicts has "never predicted" as its precision (sklearn's 0 there
    means "undefined", not "always wrong")."""
    shown = pd.DataFrame(index=table.index)
    for column in ("precision", "recall", "f1-score"):
        shown[column] = table[column].map(_percent)
    shown["support"] = table["support"].astype(int).astype(str)
    empty = [name for name in CLASS_NAMES if name in table.index and int(table.loc[name, "support"]) == 0]
    for name in empty:
        shown.loc[name, ["precision", "recall", "f1-score"]] = "no patches"
    if y_pred is not None:
        predicted = np.bincount(_as_labels(y_pred), minlength=N_CLASSES)
        for cls, name in enumerate(CLASS_NAMES):
            if predicted[cls] == 0 and name in shown.index:
                shown.loc[name, "precision"] = "never predicted"
    return shown.rename(columns={"f1-score": "F1", "support": "patches"})


@dataclass(frozen=True)
class ConfusedPair:
    true_class: int
    predicted_class: int
    count: int      # validation patches of true_class predicted as predicted_class
    rate: float     # count / number of validation patches of true_class
    text: str

    @property
    def true_name(self) -> str:
        return CLASS_NAMES[self.true_class]

    @property
    def predicted_name(self) -> str:
        return CLASS_NAMES[self.predicted_class]

    @property
    def support(self) -> int:
        """Validation patches of the true class."""
        return round(self.count / self.rate) if self.rate else 0

    def as_dict(self) -> dict:
        return {"true_class": self.true_class, "predicted_class": self.predicted_class,
                "true_name": self.true_name, "predicted_name": self.predicted_name,
                "count": self.count, "rate": self.rate, "support": self.support,
                "text": self.text}


def most_confused_pair(y_true, y_pred) -> ConfusedPair | None:
    """The off-diagonal cell with the largest row-normalised rate (ties: the larger count); None when
    nothing was misclassified."""
    counts, rates = rates_matrix(y_true, y_pred)
    off = ~np.eye(N_CLASSES, dtype=bool)
    if counts[off].sum() == 0:
        return None
    cells = [(rates[i, j], counts[i, j], i, j) for i in CLASS_IDS for j in CLASS_IDS if i != j]
    rate, count, i, j = max(cells)
    support = int(counts[i].sum())
    text = (f"The most confused pair is true '{CLASS_NAMES[i]}' predicted as '{CLASS_NAMES[j]}': "
            f"{int(count)} of {support} {CLASS_NAMES[i]} validation patches ({rate:.1%}).")
    return ConfusedPair(int(i), int(j), int(count), float(rate), text)


def describe_pair(pair: ConfusedPair | None) -> str:
    """The pair in one sentence, or that there is none."""
    return pair.text if pair is not None else "No validation patch was misclassified: there is no confused pair."


def _to_hwc_uint8(image) -> np.ndarray:
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
        image = image.transpose(1, 2, 0)
    if image.dtype != np.uint8:  # float 0..1 from denormalise
        image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    return image.squeeze()


def misclassified_gallery(images_uint8, y_true, y_pred, probs, max_images: int = 12,
                          title: str = "Misclassified validation patches") -> Figure:
    """The most confidently wrong patches first; each title says true class, prediction, confidence."""
    y_true, y_pred = _as_labels(y_true), _as_labels(y_pred)
    probs = np.asarray(probs.detach().cpu() if hasattr(probs, "detach") else probs, dtype=float)
    confidence = probs[np.arange(len(y_pred)), y_pred]
    wrong = misclassified_order(y_true, y_pred, probs, max_images)
    cols = 6
    rows = max(1, int(np.ceil(len(wrong) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(12, 2.45 * rows + 0.6), dpi=100, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    if len(wrong) == 0:
        axes[0, 0].text(0, 0.5, "No misclassified patches.", fontsize=12, transform=axes[0, 0].transAxes)
    for ax, idx in zip(axes.ravel(), wrong):
        ax.imshow(_to_hwc_uint8(images_uint8[idx]))
        ax.set_title(f"true: {CLASS_NAMES[y_true[idx]]}\npred: {CLASS_NAMES[y_pred[idx]]} "
                     f"({confidence[idx]:.0%})", fontsize=9)
    n_wrong = int((y_true != y_pred).sum())
    fig.suptitle(f"{title}: {len(wrong)} of {n_wrong}, most confident mistakes first", fontsize=12)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# the fix
# ----------------------------------------------------------------------------------------------
REBALANCE = ("sampler", "loss", "none")


@dataclass(frozen=True)
class FixSettings:
    """How the fix fine-tunes the model.

    rebalance  "sampler": a weighted draw (``data.make_loader(weights=...)``), classes balanced and the pair's true class x boost;
               "loss": the same emphasis as class weights in the loss; "none": plain fine-tuning.
    tta        evaluate after the fix with test-time augmentation (flips, 90-degree rotations).
    """
    rebalance: str = "sampler"
    boost: float = 2.0
    tta: bool = True
    epochs: int = 2
    lr: float = 3e-4
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self):
        if self.rebalance not in REBALANCE:
            raise ValueError(f"rebalance must be 'sampler', 'loss' or 'none', not {self.rebalance!r}")


@dataclass
class FixResult:
    before: Any                 # Predictions-like (labels, preds, probs) of the model as it was
    after: Any                  # Predictions-like after the fix (with TTA when tta=True)
    pair: ConfusedPair | None   # the pair the fix aimed at (from `before`); None if nothing was confused
    description: str            # what was done, in words
    settings: dict = field(default_factory=dict)  # the FixSettings, as a dict for the run folder
    after_without_tta: Any = None  # the fine-tuned model without TTA: tells the two parts apart
    model: Any = None           # the fixed model (trained in place)


def pair_sample_weights(train_labels, true_class: int | None, boost: float = 2.0) -> np.ndarray:
    """Per-sample weights for a weighted draw (``data.make_loader(weights=...)``): every class drawn equally often, and the pair's
    true class ``boost`` times as often again, so the model sees more of the class it gives away."""
    labels = _as_labels(train_labels)
    counts = np.bincount(labels, minlength=N_CLASSES).astype(float)
    per_class = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
    if true_class is not None:
        per_class[true_class] *= boost
    return per_class[labels]


def pair_class_weights(train_labels, true_class: int | None, boost: float = 2.0) -> torch.Tensor:
    """Loss weights: inverse frequency normalised to mean 1, the pair's true class times ``boost``."""
    counts = np.bincount(_as_labels(train_labels), minlength=N_CLASSES).astype(float)
    weights = np.divide(counts.sum() / N_CLASSES, counts, out=np.zeros_like(counts), where=counts > 0)
    if true_class is not None:
        weights[true_class] *= boost
    weights = weights / weights[weights > 0].mean()
    return torch.tensor(weights, dtype=torch.float32)


def _describe_method(pair: ConfusedPair | None, settings: FixSettings) -> str:
    if pair is None:
        target = "no confusion (nothing was misclassified)"
        how = {"sampler": "a class-balanced sampler", "loss": "class-weighted loss"}
    else:
        target = f"'{pair.true_name}' taken for '{pair.predicted_name}'"
        how = {"sampler": f"a balanced sampler that draws '{pair.true_name}' {settings.boost:g}x as often again",
               "loss": f"class-weighted loss with '{pair.true_name}' weighted {settings.boost:g}x"}
    return (f"Aimed at {target}: fine-tuned the final weights for {settings.epochs} epoch(s) at lr "
            f"{settings.lr:g} with {how.get(settings.rebalance, 'plain fine-tuning')}"
            + (", then evaluated with test-time augmentation (4 rotations x 2 flips)" if settings.tta else "")
            + "; same validation split as before.")


def fix_experiment(model, train_dataset, train_labels, val_loader, settings: FixSettings = FixSettings(), *,
                   before=None, device="cpu", fit_kwargs: Mapping[str, Any] | None = None,
                   fit: Callable[..., Any] = train.fit, evaluate: Callable[..., Any] = train.evaluate) -> FixResult:
    """Fine-tune ``model`` for a few epochs aimed at its worst confusion and re-evaluate it.

    model          the weights to start from (trained in place: pass a fresh copy of the final model).
    train_dataset  the (augmenting) training Dataset; train_labels its labels, for the sampler/weights.
    val_loader     the SAME validation loader `before` was measured on (not shuffled).
    before         Predictions of the model as it is; evaluated here (no TTA) when None.
    fit_kwargs     more keywords for fit, e.g. {"name": "model1 (fix)"}.
    fit, evaluate  labkit.train's; a test may pass small stand-ins with the same keywords:
                   fit(model, train_loader, val_loader, *, epochs, lr, class_weights, device, seed, **fit_kwargs),
                   evaluate(model, loader, device=..., tta=...) -> Predictions.
    """
    if before is None:
        before = evaluate(model, val_loader, device=device, tta=False)
    pair = most_confused_pair(before.labels, before.preds)
    true_class = pair.true_class if pair is not None else None

    sample_weights, class_weights = None, None
    if settings.rebalance == "sampler":  # a weighted draw, made on the device: torch.multinomial per epoch
        sample_weights = torch.as_tensor(pair_sample_weights(train_labels, true_class, settings.boost))
    elif settings.rebalance == "loss":
        class_weights = pair_class_weights(train_labels, true_class, settings.boost)
    generator = torch.Generator(train.pick_device(device)).manual_seed(settings.seed)
    train_loader = make_loader(train_dataset, settings.batch_size, shuffle=True, device=device,
                               weights=sample_weights, generator=generator)

    fit(model, train_loader, val_loader, epochs=settings.epochs, lr=settings.lr, class_weights=class_weights,
        device=device, seed=settings.seed, **dict(fit_kwargs or {}))
    after_plain = evaluate(model, val_loader, device=device, tta=False)
    after = evaluate(model, val_loader, device=device, tta=True) if settings.tta else after_plain
    return FixResult(before, after, pair, _describe_method(pair, settings), asdict(settings),
                     after_plain if settings.tta else None, model)


def _first_words(names: Sequence[str]) -> list[str]:
    # "cancer epithelial" -> "cancer": one short word per class keeps the tick labels large in a small panel
    return [n.split()[0] for n in names]


def fix_figure(result: FixResult, title: str | None = None, model: str | None = None) -> Figure:
    """Before and after confusion rates side by side, per-class recall before/after below them. "After" is
    the fixed weights without TTA (what chapter 5 adopts or not), as the text's numbers are.

    Two rows rather than three panels in one: at notebook width (~900 px) each panel keeps its class
    names at about 10 pt.
    """
    before = result.before
    after = result.after_without_tta if result.after_without_tta is not None else result.after
    _, rates_before = rates_matrix(before.labels, before.preds)
    _, rates_after = rates_matrix(after.labels, after.preds)
    fig = plt.figure(figsize=(10, 8.4), dpi=100)
    grid = fig.add_gridspec(2, 2, height_ratios=[1.25, 1])
    matrices = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])]
    _draw_matrix(matrices[0], fig, rates_before, as_rate=True, tick_size=10,
                 title=f"Before (acc {share_label(accuracy(before.labels, before.preds))})")
    _draw_matrix(matrices[1], fig, rates_after, as_rate=True, cmap="Greens", tick_size=10,
                 title=f"After (acc {share_label(accuracy(after.labels, after.preds))})")
    for ax in matrices:
        ax.set_xticks(CLASS_IDS, _first_words(CLASS_NAMES), fontsize=10)
        ax.set_yticks(CLASS_IDS, _first_words(CLASS_NAMES), fontsize=10)
    pair = result.pair
    if pair is not None:  # outline the cell the fix aimed at
        for ax in matrices:
            ax.add_patch(plt.Rectangle((pair.predicted_class - 0.5, pair.true_class - 0.5), 1, 1,
                                       fill=False, edgecolor="red", linewidth=2.5))
    ax = fig.add_subplot(grid[1, :])
    x = np.arange(N_CLASSES)
    r_before, r_after = 100 * np.diag(rates_before), 100 * np.diag(rates_after)
    ax.bar(x - 0.2, r_before, width=0.4, label="before", color="tab:blue")
    ax.bar(x + 0.2, r_after, width=0.4, label="after", color="tab:green")
    for xi, b, a in zip(x, np.diag(rates_before), np.diag(rates_after)):
        for offset, value in ((-0.2, b), (0.2, a)):
            # inside the top of a tall bar (the axis ends at 100%), above a short one
            inside = value > 0.12
            ax.text(xi + offset, 100 * value + (-2 if inside else 1), share_label(value), ha="center",
                    va="top" if inside else "bottom", fontsize=8.5, color="white" if inside else "black")
    ax.set_xticks(x, list(CLASS_NAMES), fontsize=10)
    ax.set_ylim(0, 100)  # recall cannot pass 100%
    ax.yaxis.set_major_formatter(PercentFormatter(100))
    ax.set_ylabel("recall")
    ax.set_title("Per-class recall (the diagonal of each matrix)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    if title is None:
        title = ((f"{model}: fix" if model else "Fix") + " for "
                 + (f"'{pair.true_name}' -> '{pair.predicted_name}' (red box)" if pair is not None
                    else "the model (no confusion to aim at)"))
    fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# the fix of model2: the head only, on cached features
# ----------------------------------------------------------------------------------------------
def head_fix_experiment(model, data, settings: FixSettings, *, before=None, run_dir=None, device="cpu",
                        fit_kwargs: Mapping[str, Any] | None = None) -> FixResult:
    """``fix_experiment`` for model2 that retrains only its head, on cached features: cheap on a CPU.

    The backbone's output is computed once per image and view and the head is fine-tuned on it with the
    same rebalancing as model1's fix. Where chapters 3 and 4 left a cache of the same frozen prefix in
    ``run_dir`` (ImageNet weights with the last stage trained, on a CPU), only the stages after it run
    (``features.head_inputs``), and the views they computed cost nothing. Otherwise (every stage trained, or
    a GPU, where those chapters keep no cache) the head's inputs are computed directly and nothing is saved.
    Before and after are the whole model's ``train.evaluate`` on the validation images (no TTA), as
    chapter 5's confusion matrices are: ``before`` may pass those predictions. ``model`` is trained in
    place: pass a fresh copy of the final model.
    """
    from labkit import features, models

    if settings.tta:
        raise ValueError("head_fix_experiment measures without TTA: pass FixSettings(tta=False)")
    models.set_unfrozen_stages(model, 0)
    model.eval()
    shared = features.has_saved_cache(model, data, features.CACHE_STAGES, run_dir)
    if shared:
        cache = features.build_cache(model, data, features.CACHE_STAGES, run_dir=run_dir, device=device, log=None)
    else:  # the pooled vectors the head sees (512 a view for resnet18), in the precision evaluate uses
        cache = features.build_cache(model, data, 0, device=device, dtype=torch.float32,
                                     autocast=train.autocast_dtype(device), log=None)
    # two views per training patch, or the ones earlier chapters computed: the head's augmentation draws among them
    cache.fill_at_least(data.train_idx, 2, seed=settings.seed)
    cache.fill(torch.as_tensor(data.val_idx), torch.zeros(len(data.val_idx), dtype=torch.int64))
    if shared:
        features.save_cache(cache, run_dir)
    heads = features.head_inputs(model, cache) if shared else cache
    _, head = features.split_model2(model, 0)
    val_features = make_loader(features.FeatureDataset(heads, data.val_idx), settings.batch_size, False, device)
    val_images = make_loader(data.val_dataset(), settings.batch_size, shuffle=False, device=device)

    def evaluate(_, loader, device="cpu", tta=False):  # the whole model (its head is the one being trained)
        return train.evaluate(model, val_images, device=device)

    train_set = features.FeatureDataset(heads, data.train_idx, augment=True)
    result = fix_experiment(head, train_set, data.train_labels[data.train_idx], val_features, settings,
                            before=before, device=device, evaluate=evaluate,
                            fit_kwargs={"channels_last": False, **dict(fit_kwargs or {})})
    result.model = model.cpu().eval()
    result.description = result.description.replace("fine-tuned the final weights", "retrained the final head")
    return result


# ----------------------------------------------------------------------------------------------
# judging a fix: the targeted pair, balanced accuracy with its noise band, collapsed classes
# ----------------------------------------------------------------------------------------------
COLLAPSE_PP = 10.0  # a class's recall "collapses" when it falls by at least this many points ...
COLLAPSE_SE = 2.0   # ... and by more than this many binomial standard errors of that recall


def balanced_accuracy(y_true, y_pred) -> float:
    """Mean recall over the classes present: every class counts the same, however rare."""
    y_true, y_pred = _as_labels(y_true), _as_labels(y_pred)
    present = np.unique(y_true)
    return float(np.mean([(y_pred[y_true == c] == c).mean() for c in present]))


def bootstrap_difference(y_true, pred_before, pred_after, metric=None, n_boot: int = 1000,
                         seed: int = 0) -> tuple[float, float]:
    """95% interval of metric(after) - metric(before) under a paired bootstrap of the validation patches
    (the same resampled patches for both): the noise band that a split of this size allows."""
    metric = metric or balanced_accuracy
    y, b, a = _as_labels(y_true), _as_labels(pred_before), _as_labels(pred_after)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        diffs.append(metric(y[i], a[i]) - metric(y[i], b[i]))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(low), float(high)


@dataclass
class FixVerdict:
    model: str
    pair: list | None              # [true, predicted] the fix aimed at
    pair_support: int              # validation patches of the pair's true class
    pair_count_before: int         # ... of them predicted as the other class, before / after
    pair_count_after: int
    pair_rate_before: float        # the same as shares of the true class
    pair_rate_after: float
    pair_se: float                 # binomial standard error of the rate before
    balanced_before: float
    balanced_after: float
    balanced_change: float
    balanced_low: float            # paired-bootstrap 95% interval of the change in balanced accuracy
    balanced_high: float
    confidence: float              # of that interval
    macro_f1_before: float
    macro_f1_after: float
    accuracy_before: float
    accuracy_after: float          # of the fixed weights, without TTA
    recall_before: list            # per class
    recall_after: list
    collapsed: list                # class names whose recall collapsed
    adopted: bool
    reason: str = ""               # why adopted or not, in words
    text: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def judge_fix(result: FixResult, model: str, n_boot: int = 1000, seed: int = 0) -> FixVerdict:
    """Whether the fixed weights replace the final model, from paired statistics on the validation split.

    Judged on the fixed weights without TTA (``after_without_tta`` where the fix used TTA): the weights are
    what is adopted; whether to add TTA is chapter 7's decision. Adopted when the targeted confusion fell,
    the paired-bootstrap 95% interval of the balanced-accuracy change lies above zero (a gain the validation
    split can tell from noise), and no class's recall collapsed.
    """
    from sklearn.metrics import f1_score

    before = result.before
    after = result.after_without_tta if result.after_without_tta is not None else result.after
    y, pb, pa = _as_labels(before.labels), _as_labels(before.preds), _as_labels(after.preds)
    f1 = lambda p: float(f1_score(y, p, average="macro", labels=list(range(N_CLASSES)), zero_division=0))
    counts = np.bincount(y, minlength=N_CLASSES)
    recall_b, recall_a = recall_per_class(y, pb), recall_per_class(y, pa)
    collapsed = []
    for c in range(N_CLASSES):
        if counts[c] == 0:
            continue
        smoothed = (recall_b[c] * counts[c] + 1) / (counts[c] + 2)  # a recall of 100% still has noise
        se = np.sqrt(smoothed * (1 - smoothed) / counts[c])
        drop = recall_b[c] - recall_a[c]
        if 100 * drop >= COLLAPSE_PP and drop > COLLAPSE_SE * se:
            collapsed.append(CLASS_NAMES[c])
    pair = result.pair
    if pair is not None:
        i, j = pair.true_class, pair.predicted_class
        n_i = int(counts[i])
        count_b, count_a = int(((y == i) & (pb == j)).sum()), int(((y == i) & (pa == j)).sum())
        rate_b, rate_a = count_b / max(n_i, 1), count_a / max(n_i, 1)
        smoothed = (rate_b * n_i + 1) / (n_i + 2)  # so that a rate of 0% or 100% does not claim zero noise
        se_pair = float(np.sqrt(smoothed * (1 - smoothed) / max(n_i, 1)))
    else:
        n_i = count_b = count_a = 0
        rate_b = rate_a = se_pair = 0.0
    low, high = bootstrap_difference(y, pb, pa, n_boot=n_boot, seed=seed)
    ba_b, ba_a = balanced_accuracy(y, pb), balanced_accuracy(y, pa)
    if pair is None:
        reason = "nothing was misclassified, so there was no confusion to fix"
    elif collapsed:
        reason = "recall collapsed for " + ", ".join(
            f"'{c}' ({recall_b[CLASS_NAMES.index(c)]:.1%} to {recall_a[CLASS_NAMES.index(c)]:.1%})" for c in collapsed)
    elif count_a >= count_b:
        reason = "the targeted confusion did not fall"
    elif low <= 0:
        reason = "its interval includes zero"
    else:
        reason = "the targeted confusion fell, the interval lies above zero and no class collapsed"
    adopted = pair is not None and count_a < count_b and low > 0 and not collapsed
    verdict = FixVerdict(model, [pair.true_class, pair.predicted_class] if pair else None, n_i, count_b, count_a,
                         float(rate_b), float(rate_a), se_pair, ba_b, ba_a, ba_a - ba_b, low, high, 0.95,
                         f1(pb), f1(pa), accuracy(y, pb), accuracy(y, pa),
                         [float(r) for r in recall_b], [float(r) for r in recall_a], collapsed, adopted, reason)
    verdict.text = describe_verdict(verdict)
    return verdict


def describe_verdict(v: FixVerdict) -> str:
    """The verdict in one sentence (the criteria are in the chapter's text); every number is the verdict's own."""
    pp = lambda x: f"{100 * x:+.1f}"
    if v.pair is None:
        return f"**{v.model}** misclassified no validation patch: there was no confusion to fix."
    true_name, predicted_name = CLASS_NAMES[v.pair[0]], CLASS_NAMES[v.pair[1]]
    pair = (f"stayed at {v.pair_count_after}" if v.pair_count_after == v.pair_count_before else
            f"went from {v.pair_count_before} to {v.pair_count_after}")
    balanced = (f"balanced accuracy stayed at {v.balanced_after:.1%}" if v.balanced_low == v.balanced_high == 0 else
                f"balanced accuracy from {v.balanced_before:.1%} to {v.balanced_after:.1%} "
                f"({pp(v.balanced_change)} pp, {v.confidence:.0%} interval {pp(v.balanced_low)} to "
                f"{pp(v.balanced_high)})")
    # one sentence that names the model: two verdicts in one chapter never read the same
    return (f"**{v.model}**: '{true_name}' taken for '{predicted_name}' {pair} of {v.pair_support} patches, "
            f"{balanced}: " + ("**adopted**." if v.adopted else f"**not adopted**, as {v.reason}."))
