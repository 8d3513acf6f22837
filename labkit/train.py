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

from labkit import progress
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


def autocast_dtype(device) -> torch.dtype | None:
    """The mixed-precision type to train in on ``device``, or None for plain float32. Decided at run time:

    - an NVIDIA GPU of compute capability 8 or later (Ampere, Hopper, ...: A100, L4, H100, H200): bfloat16.
      It has float32's range, so no loss scaling;
    - capability 7 (Volta, Turing: V100, Kaggle's T4): float16, with a GradScaler (``needs_loss_scaling``).
      These GPUs have float16 tensor cores but no native bfloat16;
    - capability 6 and older (Pascal: Kaggle's P100): float32. No tensor cores; float16 would add loss
      scaling for at best a small gain (not measured here: no P100 was lent);
    - a CPU with native bfloat16 (avx512_bf16 / AMX, oneDNN's own check): bfloat16, which bench/train.py
      measured training model1 and resnet18 x1.8-3.4 faster than float32; other CPUs: float32.

    Weights stay float32 in every case. ``LABKIT_FP32=1`` forces float32 (see ``fp32_forced``)."""
    device = torch.device(device)
    if fp32_forced():
        return None
    if device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        if major >= 8:
            return torch.bfloat16
        return torch.float16 if major == 7 else None
    if device.type == "cpu" and _cpu_has_bf16():
        return torch.bfloat16
    return None


def needs_loss_scaling(dtype: torch.dtype | None, device) -> bool:
    """float16 on a GPU needs a GradScaler: small gradients would underflow to zero without it."""
    return dtype == torch.float16 and torch.device(device).type == "cuda"


def precision_name(device) -> str:
    """The training precision on ``device`` in words, for the notebook's environment appendix."""
    dtype = autocast_dtype(device)
    if dtype is None:
        return "float32"
    if needs_loss_scaling(dtype, device):
        return "float16 autocast with loss scaling"
    return "bfloat16 autocast"


def default_amp(device: torch.device) -> bool:
    """Whether ``fit`` trains in mixed precision on ``device`` by default (``autocast_dtype`` says which)."""
    return autocast_dtype(device) is not None


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


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _amp_dtype(device: torch.device, amp: bool | None) -> torch.dtype | None:
    """fit's ``amp`` argument as a dtype: None = the device's own choice, False = float32, True = mixed
    precision even where float32 is the default (float16 on a GPU, bfloat16 on a CPU)."""
    if amp is None:
        return autocast_dtype(device)
    if not amp:
        return None
    return autocast_dtype(device) or (torch.float16 if device.type == "cuda" else torch.bfloat16)


def _to_device(x, y, device, channels_last):
    # a no-op for batches made on the device already (data.make_loader); a copy for other loaders
    x = x.to(device, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


def _make_optimizer(name, groups, lr, weight_decay, momentum, device):
    if name == "adamw":  # on a GPU, the fused kernel updates every parameter in one launch
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, fused=device.type == "cuda" or None)
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


def _run_val(model, loader, device, dtype, channels_last):
    # validation loss is plain cross-entropy (no class weights, no smoothing) so runs with different
    # training losses, e.g. tuning trials, are compared on the same scale. Sums stay on the device and
    # are read once, after the last batch
    model.eval()
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    with torch.inference_mode():
        for x, y in loader:
            x, y = _to_device(x, y, device, channels_last)
            with _autocast(device, dtype):
                logits = model(x)
            total_loss += nn.functional.cross_entropy(logits.float(), y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
    return total_loss.item() / seen, correct.item() / seen


# How often fit looks at the running loss to catch a non-finite one: each look waits for the GPU
FINITE_CHECK_STEPS = 50


def check_finite(loss_sum: torch.Tensor, name: str, epoch: int, lr: float) -> None:
    """Stops a diverged run with advice. ``loss_sum`` is the epoch's running loss: NaN or inf as soon as any
    step's loss was, so one look every ``FINITE_CHECK_STEPS`` steps (and at the end of the epoch) catches it."""
    value = loss_sum.item()
    if not math.isfinite(value):
        raise FloatingPointError(f"{name}: training loss became {value} in epoch {epoch}; "
                                 f"lower the learning rate (peak lr {lr:g})")


def train_step(model, x, y, criterion, opt, scaler, scheduler, device, dtype):
    """One optimizer step on a batch already on the device; returns the loss and logits as device tensors
    (reading them would make the CPU wait for the GPU, so ``fit`` sums them on the device instead)."""
    with _autocast(device, dtype):
        logits = model(x)
        loss = criterion(logits.float(), y)
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    if scheduler is not None:
        scheduler.step()
    return loss.detach(), logits.detach()


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
    unfreeze stages). ``amp`` and ``channels_last``: None = where they help (``autocast_dtype``,
    ``default_channels_last``). The inner loop never waits for the device: losses and correct counts are
    summed there and read once per epoch, and a non-finite loss is looked for every ``FINITE_CHECK_STEPS``
    steps and at the end of each epoch.
    """
    if max_steps is not None:
        epochs = budget_epochs(max_steps, len(train_loader), max_epochs=epochs or max_steps)
    if not epochs or epochs < 1:
        raise ValueError(f"{name}: give fit a positive epochs or max_steps, not epochs={epochs!r}")
    seed_everything(seed)
    device = pick_device(device)
    dtype = _amp_dtype(device, amp)
    channels_last = default_channels_last(device) if channels_last is None else channels_last
    model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)

    # copies: the optimizer and schedule write into group dicts, and a caller may reuse its groups
    groups = ([dict(g) for g in param_groups] if param_groups is not None
              else [{"params": list(model.parameters()), "lr": lr}])
    opt = _make_optimizer(optimizer, groups, lr, weight_decay, momentum, device)
    scheduler = _make_schedule(schedule, opt, total_steps=epochs * len(train_loader))
    scaler = torch.amp.GradScaler(device.type, enabled=needs_loss_scaling(dtype, device))
    if class_weights is not None:
        class_weights = torch.as_tensor(class_weights, dtype=torch.float32, device=device)
    criterion = nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)

    history = History()
    best_state, best_epoch, best_loss, best_acc, waited = None, 0, math.inf, 0.0, 0
    for epoch in range(1, epochs + 1):
        progress.step(name, "epoch", epoch, epochs)  # for a live progress line while the chapter runs
        if on_epoch_start is not None:
            on_epoch_start(epoch)
        start = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        for step, (x, y) in enumerate(train_loader, 1):
            x, y = _to_device(x, y, device, channels_last)
            loss, logits = train_step(model, x, y, criterion, opt, scaler, scheduler, device, dtype)
            loss_sum.add_(loss, alpha=len(y))  # summed on the device: nothing here waits for it
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            if step % FINITE_CHECK_STEPS == 0:
                check_finite(loss_sum, name, epoch, lr)
        check_finite(loss_sum, name, epoch, lr)
        total_loss, correct = loss_sum.item(), correct.item()
        val_loss, val_acc = _run_val(model, val_loader, device, dtype, channels_last)
        seconds = time.perf_counter() - start
        current_lr = opt.param_groups[0]["lr"]
        history.append(epoch=epoch, train_loss=total_loss / seen, train_acc=correct / seen,
                       val_loss=val_loss, val_acc=val_acc, lr=current_lr, seconds=seconds)

        improved = best_state is None or val_loss < best_loss
        if improved:
            best_loss, best_acc, best_epoch, waited = val_loss, val_acc, epoch, 0
            # a copy on the device (copying to the CPU would wait for the GPU); to the CPU once, at the end
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
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
    best_state = {k: v.to("cpu") for k, v in best_state.items()}
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


def evaluate(model: nn.Module, loader, device="cpu", tta: bool = False, amp: bool | None = None,
             channels_last: bool | None = None) -> Predictions:
    """Labels, predicted classes and softmax probabilities for every item the loader yields, in order.

    With ``tta`` the probabilities are the mean over the eight flips/rotations of each patch.
    ``amp`` and ``channels_last``: None = where they help, as in ``fit``, so that a model is evaluated
    in the precision its validation accuracy was measured in during training (bench/evaluate.py).
    """
    device = pick_device(device)
    dtype = _amp_dtype(device, amp)
    channels_last = default_channels_last(device) if channels_last is None else channels_last
    model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format).eval()
    labels, probs = [], []
    with torch.inference_mode():
        for x, y in loader:
            x = x.to(device)
            views = list(_dihedral_views(x)) if tta else [x]
            if channels_last:
                views = [v.contiguous(memory_format=torch.channels_last) for v in views]
            # kept on the device: copying each batch back would make the CPU wait for the GPU every batch
            with _autocast(device, dtype):
                logits = [model(v) for v in views]
            probs.append(torch.stack([z.float().softmax(1) for z in logits]).mean(0))
            labels.append(torch.as_tensor(y))
    probs = torch.cat(probs).cpu().numpy().astype(np.float32)  # one copy back, after the last batch
    labels = torch.cat(labels).cpu().numpy().astype(np.int64)
    return Predictions(labels=labels, preds=probs.argmax(1), probs=probs)
