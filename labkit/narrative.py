"""Sentences that depend on this run's numbers, so the report never claims what the run cannot back.

Chapters call each function in one line and show the result with ``notebook.say``. Every function reads
numbers (class counts, a History, weights.json, predictions) and picks its wording from them; the tests in
tests/test_narrative.py run each one on runs that differ (balanced vs imbalanced classes, overfitting vs
underfitting vs converged, random vs verified vs unverified weights) and check the wording.

    describe_data_source(root, is_stub)        "synthetic patches in ..." / "the provided data"
    class_balance(counts) -> ClassBalance      largest and smallest class, their ratio, a verdict
    describe_class_mix(counts)                 the class mix in numbers and the bar it sets for accuracy
    weights_start(weights)                     the comparison table's "start" cell for model2
    describe_weights(weights)                  section 3.1's result: are the weights torchvision's, by their hash
    model2_name(weights)                       "resnet18 fine-tuned from verified ImageNet weights" / "resnet18
                                               trained from random weights" / ... an unverified weights file
    training_verdict(history, kept_epoch)      overfitting / still learning / flattened, with the numbers
    describe_training(history, name, kept_epoch)  the verdict as a sentence
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _joined(words: Sequence[str]) -> str:
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


# ---------------------------------------------------------------------------------------------------
# the data
# ---------------------------------------------------------------------------------------------------
def describe_data_source(root, is_stub: bool) -> str:
    """Where the data comes from, in the report's words: synthetic patches, or the given data. The folder
    itself (a path of this machine) belongs in the appendix, not in the report."""
    return "synthetic patches in the competition's file layout" if is_stub else "the provided data"


# the largest class over the smallest: up to BALANCED the mix is treated as balanced; from IMBALANCED on
# accuracy is dominated by the large classes and the minorities need their own numbers
BALANCED_RATIO = 1.5
IMBALANCED_RATIO = 3.0


@dataclass(frozen=True)
class ClassBalance:
    largest: str
    largest_share: float
    smallest: str
    smallest_share: float
    ratio: float          # largest count / smallest count (inf when a class is empty)

    @property
    def verdict(self) -> str:
        if self.ratio <= BALANCED_RATIO:
            return "balanced"
        return "imbalanced" if self.ratio >= IMBALANCED_RATIO else "mildly imbalanced"

    @property
    def needs_rebalancing(self) -> bool:
        """Whether the class mix itself calls for a sampler or loss weights (not only a stratified split)."""
        return self.verdict == "imbalanced"


def class_balance(counts: Mapping[str, int]) -> ClassBalance:
    """``counts``: class name -> number of patches (a pandas Series indexed by class name works)."""
    pairs = list(counts.items())  # a dict or a pandas Series (whose iteration gives values, not names)
    names, values = [name for name, _ in pairs], np.asarray([int(n) for _, n in pairs], dtype=float)
    total = values.sum()
    if total == 0:
        raise ValueError("class_balance got no patches at all: is train.csv empty?")
    big, small = int(values.argmax()), int(values.argmin())
    ratio = values[big] / values[small] if values[small] > 0 else float("inf")
    return ClassBalance(names[big], values[big] / total, names[small], values[small] / total, float(ratio))


def class_mix_record(counts: Mapping[str, int]) -> dict:
    """The numbers ``describe_class_mix`` quotes, for the record of conclusions: patches per class, the
    largest and smallest class with their shares, their ratio and the verdict."""
    b = class_balance(counts)
    return {"counts": {name: int(n) for name, n in counts.items()}, **asdict(b), "verdict": b.verdict}


def describe_class_mix(counts: Mapping[str, int]) -> str:
    """The class mix in numbers: the largest and smallest class, their ratio, and the accuracy of always
    answering the largest class (the bar any accuracy has to clear)."""
    b = class_balance(counts)
    ratio = "no patches at all" if np.isinf(b.ratio) else f"{b.ratio:.1f} to 1"
    verdict = {"balanced": "close to balanced", "mildly imbalanced": "mildly imbalanced",
               "imbalanced": "clearly imbalanced"}[b.verdict]
    return (f"The largest class, **{b.largest}**, holds {_pct(b.largest_share)} of the labelled patches, so "
            f"always answering '{b.largest}' would be right that often; the smallest, **{b.smallest}**, holds "
            f"{_pct(b.smallest_share)} ({ratio}): {verdict}.")


# ---------------------------------------------------------------------------------------------------
# model2's starting weights (weights.json, written by chapter 3 from models.WeightsInfo)
# ---------------------------------------------------------------------------------------------------
def _weights_kind(weights: Mapping) -> str:
    if not weights.get("pretrained"):
        return "random"
    return "verified" if weights.get("verified") else "unverified"


def weights_start(weights: Mapping) -> str:
    """What model2 started from, for a table cell."""
    return {"random": "random", "verified": "ImageNet (verified)",
            "unverified": "unverified weights file"}[_weights_kind(weights)]


def describe_weights(weights: Mapping) -> str:
    """Section 3.1's result: whether model2's weights are torchvision's ImageNet weights, by their hash."""
    kind = _weights_kind(weights)
    if kind == "verified":
        return (f"The file's SHA-256 (`{str(weights['sha256'])[:16]}...`) matches the hash torchvision publishes "
                f"for **{weights['weights']}**: model2 starts from ImageNet weights.")
    if kind == "unverified":
        return (f"> **Caution:** the weights file's SHA-256 (`{str(weights.get('sha256'))[:16]}...`) does **not** "
                f"match the hash torchvision publishes for {weights.get('weights')}. It fits the architecture, but "
                "nothing shows it holds ImageNet weights: model2 starts from an unknown state.")
    return ("> **model2 is not pretrained here:** no ImageNet weights were available, so it starts from random "
            "weights.")


def model2_name(weights: Mapping) -> str:
    """How the text names model2: only verified ImageNet weights make it "fine-tuned from ImageNet"."""
    kind, arch = _weights_kind(weights), weights.get("arch", "model2")
    return {"verified": f"{arch} fine-tuned from verified ImageNet weights",
            "unverified": f"{arch} trained from an unverified weights file",
            "random": f"{arch} trained from random weights"}[kind]


# ---------------------------------------------------------------------------------------------------
# learning curves
# ---------------------------------------------------------------------------------------------------
OVERFIT_GAP = 0.10        # training accuracy this far above validation accuracy is overfitting on its own
GAP_WITH_RISING_LOSS = 0.03   # ... or this far, while validation loss rises after the kept epoch
LOSS_RISE = 0.05          # validation loss this much (relative) above its minimum counts as rising
STILL_FALLING = 0.03      # training loss that fell this much (relative) in the last epoch is still falling


@dataclass(frozen=True)
class TrainingVerdict:
    kind: str             # "overfitting", "gap while improving", "underfitting", "converged" or "too short"
    epochs: int
    kept_epoch: int       # the epoch whose weights were kept (lowest validation loss)
    train_acc: float      # at the last epoch
    val_acc: float        # at the last epoch
    kept_val_acc: float
    kept_val_loss: float
    last_val_loss: float
    train_loss_drop: float  # relative fall of the training loss in the last epoch (negative: it rose)


def _series(history, key: str) -> list[float]:
    values = history[key] if isinstance(history, Mapping) else getattr(history, key)
    return [float(v) for v in values]


def training_verdict(history, kept_epoch: int | None = None) -> TrainingVerdict:
    """Read a History (or its to_dict form): is the model overfitting, underfitting or converged?

    overfitting   training accuracy at least OVERFIT_GAP above validation at the end with the best validation
                  loss behind, or GAP_WITH_RISING_LOSS above it while validation loss has risen LOSS_RISE past
                  its minimum;
    gap while improving  OVERFIT_GAP or more, but validation loss still lowest at the last epoch;
    underfitting  not overfitting, validation loss lowest at the last epoch and training loss still falling
                  (by STILL_FALLING in the last epoch): training stopped while the model was still learning;
    converged     neither: training loss has levelled off and validation is close to training.
    ``kept_epoch`` defaults to the epoch with the lowest validation loss, the one fit keeps.
    """
    epochs = [int(e) for e in _series(history, "epoch")]
    train_loss, train_acc = _series(history, "train_loss"), _series(history, "train_acc")
    val_loss, val_acc = _series(history, "val_loss"), _series(history, "val_acc")
    if not epochs:
        raise ValueError("training_verdict got an empty history: did the fit run at least one epoch?")
    kept = int(np.argmin(val_loss)) if kept_epoch is None else epochs.index(int(kept_epoch))
    drop = (train_loss[-2] - train_loss[-1]) / train_loss[-2] if len(epochs) > 1 and train_loss[-2] > 0 else 0.0
    gap = train_acc[-1] - val_acc[-1]
    rising = val_loss[-1] > val_loss[kept] * (1 + LOSS_RISE)
    if len(epochs) == 1:
        kind = "too short"
    elif (gap >= OVERFIT_GAP and kept < len(epochs) - 1) or (gap >= GAP_WITH_RISING_LOSS and rising):
        kind = "overfitting"
    elif gap >= OVERFIT_GAP:  # a wide gap, but validation loss was still at its lowest at the end
        kind = "gap while improving"
    elif kept == len(epochs) - 1 and drop >= STILL_FALLING:
        kind = "underfitting"
    else:
        kind = "converged"
    return TrainingVerdict(kind, len(epochs), epochs[kept], train_acc[-1], val_acc[-1], val_acc[kept],
                           val_loss[kept], val_loss[-1], drop)


def training_record(history, kept_epoch: int | None = None) -> dict:
    """The numbers chapter 2's and 3's sentences about a run quote, for the record of conclusions:
    ``training_verdict``'s fields, the gap between training and validation accuracy, and the validation loss
    of every epoch (its spikes among them)."""
    v = training_verdict(history, kept_epoch)
    return {**asdict(v), "gap": v.train_acc - v.val_acc, "val_loss": [float(x) for x in history.val_loss]}


def describe_training(history, name: str, kept_epoch: int | None = None) -> str:
    """The verdict of ``training_verdict`` in one or two sentences quoting the curves' numbers. It says what
    the curves show and nothing more: a flat training loss is "flattened", never "converged" (a learning rate
    decayed to almost nothing flattens any curve)."""
    v = training_verdict(history, kept_epoch)
    accs = f"training accuracy {_pct(v.train_acc)} against validation {_pct(v.val_acc)} at the last epoch"
    if v.kind == "too short":
        return f"**{name}** trained for a single epoch, so its curves show no trend."
    if v.kind == "overfitting":
        rise = (f"; validation loss rose from {v.kept_val_loss:.3f} at epoch {v.kept_epoch} to "
                f"{v.last_val_loss:.3f}" if v.last_val_loss > v.kept_val_loss else "")
        return f"**{name}** overfits: {accs} ({100 * (v.train_acc - v.val_acc):+.1f} points){rise}."
    if v.kind == "gap while improving":
        return (f"**{name}** fits its training patches more closely than new ones ({accs}), but its "
                f"validation loss was still at its lowest at the last epoch.")
    if v.kind == "underfitting":
        return (f"**{name}** was still learning: its validation loss was lowest at the last epoch, in which its "
                f"training loss fell {_pct(v.train_loss_drop)}.")
    if abs(v.train_loss_drop) >= STILL_FALLING:  # validation has levelled off, the (small) training loss not
        return (f"**{name}**'s validation loss was lowest at epoch {v.kept_epoch}, not at the last, while its "
                f"training loss still changed {_pct(abs(v.train_loss_drop))} in the last epoch ({accs}).")
    return (f"**{name}**'s curves have flattened: training loss changed {_pct(abs(v.train_loss_drop))} in the "
            f"last epoch, with {accs}.")


def describe_spikes(history, jump: float = 0.2) -> str:
    """Epochs whose validation loss jumped above both neighbours (by ``jump`` of the lower one), said once.
    A curve's spike that no sentence mentions reads as unseen; "" when there is none."""
    loss = list(history.val_loss)
    spikes = [i for i in range(1, len(loss) - 1)
              if loss[i] > (1 + jump) * max(loss[i - 1], loss[i + 1]) or
              (loss[i] > (1 + jump) * min(loss[i - 1], loss[i + 1]) and loss[i] > max(loss[i - 1], loss[i + 1]))]
    if not spikes:
        return ""
    one = len(spikes) == 1
    epochs = _and([str(history.epoch[i]) for i in spikes])
    values = _and([f"{loss[i]:.3f}" for i in spikes])
    return f" Validation loss jumped at epoch{'' if one else 's'} {epochs} (to {values}) and fell back after."


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# ---------------------------------------------------------------------------------------------------
# predictions
# ---------------------------------------------------------------------------------------------------
UNDER_PREDICTED = 0.5     # a class predicted at less than half its training share
OVER_PREDICTED = 1.5      # ... or at more than one and a half times it


def misclassified_order(labels, preds, probs, max_images: int | None = None) -> np.ndarray:
    """Indices of the misclassified patches, most confident mistake first (the gallery's order)."""
    labels, preds = np.asarray(labels).ravel(), np.asarray(preds).ravel()
    probs = np.asarray(probs, dtype=float)
    wrong = np.flatnonzero(labels != preds)
    confidence = probs[np.arange(len(preds)), preds]
    order = wrong[np.argsort(-confidence[wrong], kind="stable")]
    return order if max_images is None else order[:max_images]


