"""Training and evaluation: a plain loop in the style of torchvision's references/classification/train.py.

``fit`` trains with AdamW or SGD+momentum under a one-cycle or cosine schedule (stepped every batch),
for a number of epochs or for a budget of optimizer steps (``max_steps``, turned into epochs up front so the
schedule knows its length), keeps the weights of the epoch with the lowest validation loss, stops early when
that has not improved for ``patience`` epochs, and puts the best weights back into the model before it
returns. That kept epoch's validation accuracy (``kept_val_acc``) is the one accuracy quoted for a run.
``evaluate`` returns labels, predictions and softmax probabilities, optionally averaged over the eight
flips and 90-degree rotations of each patch (test-time augmentation: a nucleus has no "up").
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from labkit.profiles import budget_epochs


def pick_device(requested: str | torch.device = "auto") -> torch.device:
    """"auto" -> cuda if available, else cpu. Asking for cuda where there is none is an error."""
    if isinstance(requested, torch.device):
        return requested
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds CUDA
    os.environ["PYTHONHASHSEED"] = str(seed)


def _cpu_has_bf16() -> bool:
    try:  # oneDNN's own check: avx512_bf16 / AMX; without them bfloat16 is emulated and slow
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def fp32_forced() -> bool:
    """True when the environment variable LABKIT_FP32 is set (to anything but "", "0", "false", "no").

    It turns mixed precision off everywhere, so a machine with bfloat16 (or a GPU) runs as a CPU without
    it would: the common student machine, whose times the profiles' budgets are set for."""
    return os.environ.get("LABKIT_FP32", "").strip().lower() not in ("", "0", "false", "no")


def default_amp(device: torch.device) -> bool:
    """Mixed precision where it helps: on CUDA (float16 with loss scaling), and on CPUs with native
    bfloat16. bench/train.py on the course's 2-core CPU (avx512_bf16): bfloat16 autocast trains model1
    and resnet18 x1.8-2.2 faster than float32 (best-of-12 step times). Weights stay float32.
    LABKIT_FP32=1 forces float32 (see ``fp32_forced``)."""
    if fp32_forced():
        return False
    return device.type == "cuda" or (device.type == "cpu" and _cpu_has_bf16())


def default_channels_last(device: torch.device) -> bool:
    """channels_last (NHWC) where it helps: on CUDA, and on CPU, where oneDNN's convolutions want it:
    x1.2-1.6 alone and x1.9-2.7 with bfloat16 on the 2-core CPU (bench/train.py). LABKIT_FP32 leaves
    it alone: a CPU without bfloat16 uses channels_last too, so the stand-in keeps it."""
    return device.type in ("cuda", "cpu")


@dataclass
class History:
    epoch: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_acc: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    seconds: list = field(default_factory=list)

    def append(self, **row) -> None:
        for key, value in row.items():
            getattr(self, key).append(value)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> History:
        return cls(**{k: list(d[k]) for k in cls.__dataclass_fields__})

    def to_frame(self):
        return pd.DataFrame(self.to_dict())

    def __len__(self) -> int:
        return len(self.epoch)


def kept_index(history) -> int:
    """Index of the epoch ``fit`` keeps: the lowest validation loss, the earliest on a tie (as fit does).
    ``history`` is a History or its dict."""
    val_loss = history["val_loss"] if isinstance(history, dict) else history.val_loss
    return int(np.argmin(val_loss))


def kept_val_acc(history) -> float:
    """Validation accuracy of the kept epoch: the number figures, text, tables and choices quote."""
    val_acc = history["val_acc"] if isinstance(history, dict) else history.val_acc
    return float(val_acc[kept_index(history)])


@dataclass
class FitResult:
    history: History
    best_state: dict
    best_epoch: int
    best_val_loss: float
    best_val_acc: float       # validation accuracy of the kept (lowest-loss) epoch, not the highest seen
    planned_epochs: int = 0   # the epochs the budget allowed; fewer ran if early stopping ended the run


@dataclass
class Predictions:
    labels: np.ndarray   # int64 [N]; -1 where the split is unlabelled (test)
    preds: np.ndarray    # int64 [N]
    probs: np.ndarray    # float32 [N, n_classes]


def _autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype)


def _to_device(x, y, device, channels_last):
    x = x.to(device, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


def _make_optimizer(name, groups, lr, weight_decay, momentum):
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'adamw' or 'sgd', not {name!r}")


def _make_schedule(name, optimizer, total_steps):
    if name == "onecycle" and total_steps >= 8:  # fewer steps than that cannot warm up: use cosine
        peak = [g["lr"] for g in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peak, total_steps=total_steps,
                                                   pct_start=0.25)
    if name in ("cosine", "onecycle"):
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if name in ("none", None):
        return None
    raise ValueError(f"schedule must be 'onecycle', 'cosine' or 'none', not {name!r}")


def _run_val(model, loader, device, amp, channels_last):
    # validation loss is plain cross-entropy (no class weights, no smoothing) so runs with different
    # training losses, e.g. tuning trials, are compared on the same scale
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    with torch.inference_mode():
        for x, y in loader:
            x, y = _to_device(x, y, device, channels_last)
            with _autocast(device, amp):
                logits = model(x)
            total_loss += nn.functional.cross_entropy(logits.float(), y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
    return total_loss / seen, correct / seen


def fit(model: nn.Module, train_loader, val_loader, *, epochs: int | None = None, lr: float = 1e-3,
        optimizer: str = "adamw", weight_decay: float = 1e-4, momentum: float = 0.9,
        schedule: str = "onecycle", param_groups: list[dict] | None = None, class_weights=None,
        label_smoothing: float = 0.0, patience: int | None = None, device="cpu", seed: int = 0,
        amp: bool | None = None, channels_last: bool | None = None,
        report: Callable[[int, dict], None] | None = None, log: Callable[[str], None] | None = print,
        name: str = "model", on_epoch_start: Callable[[int], None] | None = None,
        max_steps: int | None = None) -> FitResult:
    """Train ``model`` for up to ``epochs`` epochs and leave the best weights (lowest val loss) in it.

    With ``max_steps`` the run gets a budget of optimizer steps instead: ceil(max_steps / batches per
    epoch) epochs, capped by ``epochs`` if that is given. ``patience`` may stop either sooner.

    ``param_groups`` (e.g. from ``model2_param_groups``) give each group its own peak learning rate;
    without them every parameter uses ``lr``. ``report(epoch, metrics)`` is called after each epoch
    (Ray Tune's ``tune.report`` goes there); ``on_epoch_start(epoch)`` before each (model2 uses it to
    unfreeze stages). ``amp`` and ``channels_last``: None = on where they help (CUDA).
    """
    if max_steps is not None:
        epochs = budget_epochs(max_steps, len(train_loader), max_epochs=epochs or max_steps)
    if not epochs or epochs < 1:
        raise ValueError(f"{name}: give fit a positive epochs or max_steps, not epochs={epochs!r}")
    seed_everything(seed)
    device = pick_device(device)
    amp = default_amp(device) if amp is None else amp
    channels_last = default_channels_last(device) if channels_last is None else channels_last
    model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)

    # copies: the optimizer and schedule write into group dicts, and a caller may reuse its groups
    groups = ([dict(g) for g in param_groups] if param_groups is not None
              else [{"params": list(model.parameters()), "lr": lr}])
    opt = _make_optimizer(optimizer, groups, lr, weight_decay, momentum)
    scheduler = _make_schedule(schedule, opt, total_steps=epochs * len(train_loader))
    scaler = torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda")
    if class_weights is not None:
        class_weights = torch.as_tensor(class_weights, dtype=torch.float32, device=device)
    criterion = nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)

    history = History()
    best_state, best_epoch, best_loss, best_acc, waited = None, 0, math.inf, 0.0, 0
    for epoch in range(1, epochs + 1):
        if on_epoch_start is not None:
            on_epoch_start(epoch)
        start = time.perf_counter()
        model.train()
        total_loss, correct, seen = 0.0, 0, 0
        for x, y in train_loader:
            x, y = _to_device(x, y, device, channels_last)
            with _autocast(device, amp):
                logits = model(x)
                loss = criterion(logits.float(), y)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{name}: training loss became {loss.item()} in epoch {epoch}; "
                                         f"lower the learning rate (peak lr {lr:g})")
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            if scheduler is not None:
                scheduler.step()
            total_loss += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
        val_loss, val_acc = _run_val(model, val_loader, device, amp, channels_last)
        seconds = time.perf_counter() - start
        current_lr = opt.param_groups[0]["lr"]
        history.append(epoch=epoch, train_loss=total_loss / seen, train_acc=correct / seen,
                       val_loss=val_loss, val_acc=val_acc, lr=current_lr, seconds=seconds)

        improved = best_state is None or val_loss < best_loss
        if improved:
            best_loss, best_acc, best_epoch, waited = val_loss, val_acc, epoch, 0
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            waited += 1
        if log is not None:
            log(f"{name} epoch {epoch}/{epochs}  train loss {total_loss / seen:.3f} acc {correct / seen:.1%}  "
                f"val loss {val_loss:.3f} acc {val_acc:.1%}  lr {current_lr:.1e}  {seconds:.1f}s"
                + ("  *" if improved else ""))
        if report is not None:
            report(epoch, {"epoch": epoch, "train_loss": total_loss / seen, "train_acc": correct / seen,
                           "val_loss": val_loss, "val_acc": val_acc, "lr": current_lr})
        if patience is not None and waited >= patience:
            if log is not None:
                log(f"{name}: no better val loss for {patience} epochs, stopping; "
                    f"best was epoch {best_epoch} (val loss {best_loss:.3f}, acc {best_acc:.1%})")
            break

    model.load_state_dict(best_state)
    return FitResult(history, best_state, best_epoch, best_loss, best_acc, planned_epochs=epochs)


def describe_stop(result: FitResult, steps_per_epoch: int | None = None) -> str:
    """How the run ended, for the notebook: a whole budget spent, or early stopping, in this run's numbers.
    With ``steps_per_epoch`` (batches an epoch) it also counts the optimizer steps actually taken."""
    ran, planned = len(result.history), result.planned_epochs or len(result.history)
    epochs = f"{planned} epoch" + ("s" if planned != 1 else "")
    steps = f", {ran * steps_per_epoch} optimizer steps of {steps_per_epoch} batches an epoch" \
        if steps_per_epoch else ""
    if ran < planned:
        waited = ran - result.best_epoch
        return (f"it ran {ran} of its {epochs}{steps}: early stopping ended it {waited} "
                f"epoch{'s' if waited != 1 else ''} after the lowest validation loss")
    return f"it ran all of its {epochs}{steps}"


def _dihedral_views(x: torch.Tensor):
    """The eight flips and 90-degree rotations of a batch [N, C, H, W]."""
    for flipped in (x, x.flip(-1)):
        for k in range(4):
            yield torch.rot90(flipped, k, dims=(-2, -1))


def evaluate(model: nn.Module, loader, device="cpu", tta: bool = False,
             channels_last: bool | None = None) -> Predictions:
    """Labels, predicted classes and softmax probabilities for every item the loader yields, in order.

    With ``tta`` the probabilities are the mean over the eight flips/rotations of each patch.
    ``channels_last``: None = where it helps, as in ``fit`` (bench/evaluate.py measures it).
    """
    device = pick_device(device)
    channels_last = default_channels_last(device) if channels_last is None else channels_last
    model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format).eval()
    labels, probs = [], []
    with torch.inference_mode():
        for x, y in loader:
            x = x.to(device)
            views = list(_dihedral_views(x)) if tta else [x]
            if channels_last:
                views = [v.contiguous(memory_format=torch.channels_last) for v in views]
            p = torch.stack([model(v).float().softmax(1) for v in views]).mean(0)
            probs.append(p.cpu())
            labels.append(torch.as_tensor(y).cpu())
    probs = torch.cat(probs).numpy().astype(np.float32)
    return Predictions(labels=torch.cat(labels).numpy().astype(np.int64), preds=probs.argmax(1), probs=probs)
