"""The two models: model1, a small ConvNet trained from scratch, and model2, a torchvision ImageNet model
fine-tuned with a new 4-class head.

ImageNet weights come through torchvision's own weights API. The file torchvision would download lies in
torch.hub's checkpoint folder (``~/.cache/torch/hub/checkpoints/resnet18-f37072fd.pth``); the hex digits
after the last ``-`` in that name are the first digits of the file's SHA-256 (torch.hub's convention), so
any copy of the file can be checked. Nothing here pretends to be pretrained: where no weights can be had,
the model is randomly initialised and ``WeightsInfo.pretrained`` is False.
"""
from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
import urllib.parse
import urllib.request
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from labkit import N_CLASSES
from labkit.artifacts import atomic_write_bytes, sha256_file

MAX_WEIGHT_LAYERS = 8
DEFAULT_MODEL2_ARCH = "resnet18"  # small enough to fine-tune on a CPU; any torchvision classifier works
DOWNLOAD_TIMEOUT_S = 10.0  # a download that cannot start within this is treated as "offline"


class LayerLimitError(ValueError):
    """model1 would have more weight layers than the coursework allows."""


class WeightsError(RuntimeError):
    """A weights file exists but cannot be used for the architecture."""


class MissingWeightsError(WeightsError):
    """No ImageNet weights could be had and random initialisation is not allowed (real data)."""


# ---------------------------------------------------------------------------------------------------
# model1: a small ConvNet trained from scratch
# ---------------------------------------------------------------------------------------------------
def default_relu_first() -> bool:
    """The faster order of model1's ReLU and max pool (the same function either way) on this machine.

    bench/train.py, model1's training step with the project's CPU settings: pooling first is x1.12-1.39 as
    fast in float32 (a 2-core AVX2 EPYC; a Zen 5 EPYC with LABKIT_FP32=1), but in bfloat16 x0.70-0.80 on a
    Xeon with AMX and x0.99-1.07 on the Zen 5. So the textbook order (ReLU first) where this CPU trains in
    bfloat16, pooling first where it trains in float32. On a GPU both orders are far from the bottleneck."""
    from labkit.train import autocast_dtype

    return autocast_dtype("cpu") == torch.bfloat16


class Model1(nn.Module):
    """A small ConvNet for 100x100 RGB patches, trained from scratch.

    Each entry of ``channels`` is one block: 3x3 convolution -> batch norm -> ReLU -> 2x2 max pool, so
    every block halves the image (100 -> 50 -> 25 -> 13 -> 7 ...). Max pooling and ReLU commute (ReLU
    never changes which value is largest), so the block may pool first and run the ReLU on a quarter of
    the values, with the same outputs, gradients and state_dict keys. ``relu_first`` picks the order; None
    lets ``default_relu_first`` choose the faster one for this machine. Then global pooling over
    what is left (``pool="avg"`` or ``"max"``), dropout, an optional hidden linear layer, and a linear layer
    to the 4 classes.

    Layer counting: the limit of 8 is on depth as networks are conventionally counted (VGG-16's 16 are its
    13 convolutions and 3 fully connected layers): every Conv2d and Linear, each a weighted sum over its
    inputs. ``len(channels)`` convolutions + (1 if ``hidden`` else 0) + 1 output layer must be at most 8;
    more is refused with LayerLimitError. Batch norm (a scale and shift per channel), ReLU, pooling and
    dropout belong to those layers; ``count_layers(model).all_layers`` counts them too. In the blocks, a
    conv has no bias where batch norm follows it, since batch norm's shift does the same job.
    """

    def __init__(self, channels=(16, 32, 64, 128), hidden=0, dropout=0.3, batch_norm=True, pool="avg",
                 relu_first: bool | None = None):
        super().__init__()
        relu_first = default_relu_first() if relu_first is None else relu_first
        channels = tuple(int(c) for c in channels)
        self.channels = channels
        weight_layers = len(channels) + (1 if hidden else 0) + 1
        if not channels or weight_layers > MAX_WEIGHT_LAYERS:
            raise LayerLimitError(
                f"model1 with channels={channels} and hidden={hidden} has {weight_layers} weight layers "
                f"(Conv2d + Linear); the limit is {MAX_WEIGHT_LAYERS} and at least one conv is needed. "
                "Use fewer channel blocks or hidden=0.")
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', not {pool!r}")
        blocks, in_ch = [], 3
        for out_ch in channels:
            relu, max_pool = nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True)
            blocks += [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=not batch_norm),
                       nn.BatchNorm2d(out_ch) if batch_norm else nn.Identity(),
                       *((relu, max_pool) if relu_first else (max_pool, relu))]
            in_ch = out_ch
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1) if pool == "avg" else nn.AdaptiveMaxPool2d(1)
        head = [nn.Flatten(), nn.Dropout(dropout)]
        if hidden:
            head += [nn.Linear(in_ch, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            in_ch = hidden
        head.append(nn.Linear(in_ch, N_CLASSES))
        self.classifier = nn.Sequential(*head)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


def build_model1(config: dict) -> Model1:
    """Model1 from a tuning config; keys it does not know (lr, epochs, ...) are ignored."""
    keys = ("channels", "hidden", "dropout", "batch_norm", "pool")
    kwargs = {k: config[k] for k in keys if k in config}
    if isinstance(kwargs.get("channels"), str):  # "16-32-64", as the search space writes it
        kwargs["channels"] = [int(c) for c in kwargs["channels"].split("-")]
    return Model1(**kwargs)


@dataclass
class LayerCount:
    weight_layers: int            # Conv2d and Linear modules: the network's depth as VGG-16 counts its 16
    all_layers: int               # every leaf module (also batch norm, activations, pooling, flatten, dropout)
    by_type: dict = field(default_factory=dict)


def count_layers(model: nn.Module) -> LayerCount:
    """Count a model's layers two ways: its depth, the convolutional and fully connected layers (the
    count that names VGG-16 and ResNet-18), and every leaf module that transforms the tensor.

    ``by_type`` gives the leaf modules by class, in the order they first appear, so that both counts can be
    checked against the printed model. ``nn.Identity`` (batch norm switched off) does nothing and is left out.
    """
    leaves = [m for m in model.modules() if not list(m.children()) and not isinstance(m, nn.Identity)]
    by_type = Counter(type(m).__name__ for m in leaves)
    weight = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in leaves)
    return LayerCount(weight_layers=weight, all_layers=len(leaves), by_type=dict(by_type))


# ---------------------------------------------------------------------------------------------------
# model2: a torchvision model with ImageNet weights and a new head
# ---------------------------------------------------------------------------------------------------
@dataclass
class WeightsInfo:
    arch: str
    weights: str | None      # the torchvision weights enum, e.g. "ResNet18_Weights.IMAGENET1K_V1"; None if random
    source: str              # "cache", "download", "file" or "random"
    sha256: str | None
    verified: bool           # the file's SHA-256 starts with the hash prefix in torchvision's URL
    pretrained: bool
    message: str
    path: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def weights_cache_dir() -> Path:
    """Where torch.hub (and so torchvision) keeps downloaded weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def default_weights(arch: str):
    """torchvision's default ImageNet weights enum member for ``arch`` (e.g. ResNet18_Weights.IMAGENET1K_V1)."""
    # torchvision is imported where it is needed, here and below: it costs ~2 s, which every fresh Ray
    # worker would pay (model1's trials never need it)
    import torchvision
    try:
        return torchvision.models.get_model_weights(arch).DEFAULT
    except (ValueError, KeyError):
        names = ", ".join(torchvision.models.list_models(module=torchvision.models)[:12])
        raise ValueError(f"unknown torchvision classification model {arch!r}; e.g. {names}, ...") from None


def weights_file_name(weights) -> tuple[str, str]:
    """(file name, expected SHA-256 prefix) for a torchvision weights enum member."""
    name = os.path.basename(urllib.parse.urlparse(weights.url).path)
    match = re.search(r"-([a-f0-9]+)\.", name)  # torch.hub's HASH_REGEX
    return name, match.group(1) if match else ""


def _reachable(url: str, timeout: float) -> bool:
    # name lookup has no timeout of its own, so try the connection in a thread we can stop waiting for
    host = urllib.parse.urlparse(url).hostname
    result = {}

    def connect():
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result["ok"] = True
        except OSError:
            result["ok"] = False

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return result.get("ok", False)


def _download(url: str, dest: Path, hash_prefix: str, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Download to dest atomically, refusing a file whose SHA-256 does not match. Raises OSError."""
    if os.environ.get("LABKIT_OFFLINE") or not _reachable(url, timeout):
        raise OSError(f"cannot reach {urllib.parse.urlparse(url).hostname} (offline?)")
    with urllib.request.urlopen(url, timeout=timeout) as response:
        data = response.read()
    if not hashlib.sha256(data).hexdigest().startswith(hash_prefix):
        raise OSError(f"downloaded {url} but its SHA-256 does not start with {hash_prefix}")
    atomic_write_bytes(dest, data)


def _load_state_dict(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path} is not a readable PyTorch weights file ({exc}); "
                           "download it again or pass another file with --weights") from exc
    if isinstance(state, dict):  # also accept checkpoints that wrap the state_dict
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
    return state


def _head_name(model: nn.Module) -> str:
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no Linear classifier to replace")
    return linears[-1]


def replace_head(model: nn.Module, n_classes: int) -> None:
    """Swap the model's last Linear layer (the 1000 ImageNet classes) for a new one with n_classes outputs."""
    name = _head_name(model)
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, child)
    setattr(parent, child, nn.Linear(old.in_features, n_classes))


def model2_architecture(arch: str = DEFAULT_MODEL2_ARCH) -> nn.Module:
    """``arch`` with the 4-class head and no weights loaded: what a model2 checkpoint is loaded into."""
    import torchvision  # where needed: see default_weights

    return torchvision.models.get_model(arch, weights=None, num_classes=N_CLASSES)


def build_model2(arch: str = DEFAULT_MODEL2_ARCH, weights_file=None, allow_random: bool = True,
                 cache_dir=None) -> tuple[nn.Module, WeightsInfo]:
    """A torchvision classification model with ImageNet weights and a new 4-class head.

    Weights come from ``weights_file`` if given, else from the torch.hub cache (``cache_dir``, default
    ``weights_cache_dir()``), else from a download. The file's SHA-256 is checked against the hash
    prefix in torchvision's URL. A given file that fails the check is still used if it is a valid
    state_dict for ``arch``, with ``verified=False`` and a warning. With no weights at all:
    random initialisation and a warning if ``allow_random`` (synthetic data), else MissingWeightsError.
    """
    weights = default_weights(arch)
    file_name, prefix = weights_file_name(weights)
    cache_dir = Path(cache_dir) if cache_dir else weights_cache_dir()
    import torchvision

    # a fixed seed: without ImageNet weights, every chapter still builds the same starting network
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = torchvision.models.get_model(arch, weights=None)

    if weights_file is not None:
        path, source = Path(weights_file), "file"
        if not path.is_file():
            raise MissingWeightsError(f"weights file {path} does not exist; expected {file_name} "
                                      f"(torchvision's {weights}) from {weights.url}")
    else:
        path, source = cache_dir / file_name, "cache"
        if not path.is_file():
            try:
                _download(weights.url, path, prefix)
                source = "download"
            except OSError as exc:
                message = (f"No ImageNet weights for {arch}: {file_name} is not in {cache_dir} and the "
                           f"download failed ({exc}). To use them, download {weights.url} on a machine "
                           f"with internet and put {file_name} into {cache_dir} (or pass --weights FILE).")
                if not allow_random:
                    raise MissingWeightsError(message) from None
                message += " model2 is RANDOMLY INITIALISED here: it is not pretrained."
                warnings.warn(message, stacklevel=2)
                replace_head(model, N_CLASSES)
                return model, WeightsInfo(arch, None, "random", None, False, False, message)

    sha = sha256_file(path)
    try:
        model.load_state_dict(_load_state_dict(path))
    except RuntimeError as exc:
        raise WeightsError(f"{path} is not a state_dict of torchvision's {arch} ({str(exc)[:300]}...); "
                           f"expected {file_name} from {weights.url}") from None
    verified = bool(prefix) and sha.startswith(prefix)
    if verified:
        message = (f"{arch}: ImageNet weights {weights} from {source} {path}; SHA-256 {sha[:12]}... "
                   f"matches the hash prefix {prefix} in torchvision's URL (verified).")
    else:
        message = (f"{arch}: weights loaded from {source} {path}, but its SHA-256 {sha[:12]}... does NOT "
                   f"start with {prefix!r} from torchvision's URL for {weights}: NOT verified as "
                   f"torchvision's ImageNet weights.")
        warnings.warn(message, stacklevel=2)
    replace_head(model, N_CLASSES)
    return model, WeightsInfo(arch, str(weights), source, sha, verified, True, message, str(path))


def head_of(model: nn.Module) -> nn.Module:
    """The part of model2 that is new and always trained: the top-level module holding the 4-class layer."""
    return model.get_submodule(_head_name(model).split(".")[0])


def backbone_stages(model: nn.Module) -> list[nn.Module]:
    """The pretrained part of model2 as an ordered list of stages, input side first.

    ResNets give conv1, bn1, layer1..layer4; models with a ``features`` (MobileNet, EfficientNet,
    ConvNeXt) or ``trunk_output`` (RegNet) Sequential give its blocks.
    """
    head = _head_name(model).split(".")[0]
    stages = []
    for name, child in model.named_children():
        if name == head or not any(True for _ in child.parameters()):
            continue
        if name in ("features", "trunk_output") and isinstance(child, nn.Sequential):
            stages.extend(child.children())
        else:
            stages.append(child)
    return stages


def set_unfrozen_stages(model: nn.Module, n: int) -> None:
    """Head always trainable; the last ``n`` backbone stages trainable; everything else frozen.

    0 = head only; a large n (or -1) = the whole network. For resnet18, n=2 unfreezes layer3 and layer4.
    """
    stages = backbone_stages(model)
    n = len(stages) if n < 0 else min(n, len(stages))
    for p in model.parameters():
        p.requires_grad_(False)
    for module in [head_of(model), *stages[len(stages) - n:]]:
        for p in module.parameters():
            p.requires_grad_(True)


def unfreeze_schedule(model: nn.Module, stages: int, head_epochs: int = 1):
    """For fit(on_epoch_start=...): head only for the first ``head_epochs`` epochs, then ``stages``."""
    def on_epoch_start(epoch: int) -> None:  # epoch counts from 1
        set_unfrozen_stages(model, 0 if epoch <= head_epochs else stages)
    return on_epoch_start


def model2_param_groups(model: nn.Module, head_lr: float, backbone_lr: float,
                        weight_decay: float) -> list[dict]:
    """Optimizer parameter groups: the new head at ``head_lr``, the backbone at ``backbone_lr``.

    All parameters are listed, frozen ones too, so that stages unfrozen later are trained by the same
    optimizer (PyTorch's optimizers skip parameters that have no gradient).
    """
    head_ids = {id(p) for p in head_of(model).parameters()}
    head = [p for p in model.parameters() if id(p) in head_ids]
    backbone = [p for p in model.parameters() if id(p) not in head_ids]
    return [{"params": head, "lr": head_lr, "weight_decay": weight_decay, "name": "head"},
            {"params": backbone, "lr": backbone_lr, "weight_decay": weight_decay, "name": "backbone"}]


# ---------------------------------------------------------------------------------------------------
# for the notebook: what each freezing stage trains
# ---------------------------------------------------------------------------------------------------
def trainable_table(model: nn.Module, stages: list[int]):
    """Trainable and frozen parameter counts of model2 for each number of unfrozen backbone stages.

    Leaves the model as it found it.
    """
    before = [p.requires_grad for p in model.parameters()]
    rows = []
    for n in stages:
        set_unfrozen_stages(model, n)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        rows.append({"unfrozen backbone stages": n, "trainable parameters": trainable,
                     "frozen parameters": total - trainable, "trainable share": f"{100 * trainable / total:.3g}%"})
    for p, flag in zip(model.parameters(), before):
        p.requires_grad_(flag)
    return pd.DataFrame(rows).set_index("unfrozen backbone stages")
