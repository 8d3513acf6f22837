"""Compute the frozen part of model2 once: cached prefix features for fine-tuning, tuning and TTA.

While a prefix of model2's stages is frozen and in eval mode (BatchNorm uses its stored statistics), its
output for a given input never changes. So instead of running the whole resnet every step, we

1. split model2 (a torchvision ResNet after ``replace_head``) into a frozen ``prefix`` and a trainable
   ``suffix`` for a number of unfrozen stages (:func:`split_model2`; 0 = head only, the prefix then ends
   with the global average pool and the cache holds one pooled vector per view);
2. run the prefix at most once per image and per each of the 8 dihedral views (the flips/90-degree
   rotations that ``NucleiDataset`` samples for augmentation and ``train.evaluate`` averages for TTA), in
   batches, under ``torch.no_grad`` (:func:`build_cache`, :class:`FeatureCache`). By default a view is
   computed the first time a loader draws it: the first epoch costs about what a frozen forward costs
   anyway, and every later draw of that view is free;
3. train the suffix on the cached tensors with ``train.fit`` unchanged (:func:`fit_on_features`). The
   suffix holds the model's own modules, so the trained weights are in ``model`` afterwards and
   checkpoints, ``train.evaluate`` and Captum see one ordinary resnet.

Exactness: with fp32 storage, logits and gradients equal those of the full model with the same frozen
prefix in eval mode (tests/test_features.py). Note the one difference from running the whole model in
``fit``: ``model.train()`` there puts the frozen prefix's BatchNorm layers in training mode too (batch
statistics, running averages drift), here they keep ImageNet's statistics, the usual meaning of "frozen".

Storage: resnet18 at 100x100 after layer3 is 256x7x7 per view; 3,000 images x 8 views is 1.2 GB in
float32, 0.6 GB in float16. The default storage is float16 (features are post-ReLU activations of
moderate size, where float16 keeps ~3 significant digits; fp32 is used for training arithmetic), and
float32 is available for exactness. The cache is saved in the run folder under ``features/`` with a key
of everything it depends on (images, normalisation, prefix weights, depth, dtype), so chapter 03's
baseline, chapter 04's trials and final run, and chapter 05's fix can share one cache: the ImageNet
prefix never changes between them (``save_cache`` at the end of a chapter, ``build_cache`` in the next).
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import time
from dataclasses import dataclass

import torch
from torch import nn

from labkit.data import dihedral_view
from labkit.models import backbone_stages
from labkit.train import default_channels_last

N_VIEWS = 8
# The depth every model2 run with at most this many unfrozen stages trains on: one cache (layer3's output for
# resnet18, 256x7x7 per view) serves head-only runs and last-stage fine-tuning alike, so chapter 3's baseline,
# chapter 4's trials and final run share it. Deeper caches are large (layer2's output: 1 GB for the standard
# stub in float16) and save little, since the unfrozen stages are then most of the work.
CACHE_STAGES = 1


def views_to_reuse(device) -> int:
    """How many dihedral views per image model2's runs draw from (``fit_on_features``'s ``reuse_views``).

    On a CPU, 2: computed once in large batches and revisited by the baseline and the final run (tuning
    trials draw among them too, computing more only when they run more epochs), instead of a fresh view per
    sample and epoch (the standard build's baseline spent much of its 3 epochs computing new views). A GPU
    affords a fresh view per epoch (0), which matters over the full profile's many epochs."""
    return 2 if torch.device(device).type == "cpu" else 0


# Whether model2's runs use the cache on a GPU too. Off: there a batch of cached features is gathered on the
# CPU and copied to the GPU, and a view not yet computed runs the prefix and copies its output back, every
# batch; the GPU waits for the CPU, which issue 23 set out to remove. The full pass on device-made batches
# has none of that (resnet18, every stage trained: 3,942 img/s on the former per-item path of an H200, 11,968
# on device batches). Not measured against the cache on a GPU yet: bench/gpu.py --features does.
CACHE_ON_GPU = False


def uses_cache(model: nn.Module, unfrozen_stages: int, device="cpu") -> bool:
    """Whether a model2 run with ``unfrozen_stages`` on ``device`` trains on cached features
    (``CACHE_STAGES`` deep): on a CPU, where it pays (bench/features.py); on a GPU, if ``CACHE_ON_GPU``."""
    if torch.device(device).type == "cuda" and not CACHE_ON_GPU:
        return False
    return type(model).__name__ == "ResNet" and 0 <= int(unfrozen_stages) <= CACHE_STAGES
CACHE_VERSION = 2  # bump when what a cache holds, or how it is computed, changes


# ---------------------------------------------------------------------------------------------------
# Splitting model2
# ---------------------------------------------------------------------------------------------------
def split_model2(model: nn.Module, unfrozen_stages: int) -> tuple[nn.Sequential, nn.Sequential]:
    """(prefix, suffix) of a torchvision ResNet with ``suffix(prefix(x)) == model(x)``.

    The suffix holds the last ``unfrozen_stages`` backbone stages (as ``models.backbone_stages`` counts
    them: conv1, bn1, layer1..layer4) and the head; 0 = the head only (the prefix then ends with the
    average pool and the flatten). Both are Sequentials of the model's own modules, not copies: training
    the suffix trains ``model``. The prefix is put in eval mode.
    """
    if type(model).__name__ != "ResNet":
        raise ValueError(f"split_model2 handles torchvision ResNets (their forward is their children in "
                         f"order), not {type(model).__name__}; train it with train.fit on images instead")
    children = list(model.named_children())  # conv1 bn1 relu maxpool layer1..layer4 avgpool fc
    names = [name for name, _ in children]
    if names[-2:] != ["avgpool", "fc"]:
        raise ValueError(f"unexpected ResNet layout {names}: expected it to end with avgpool, fc")
    stages = backbone_stages(model)
    n = len(stages) if unfrozen_stages < 0 else min(unfrozen_stages, len(stages))
    modules = [module for _, module in children[:-1]] + [nn.Flatten(1), model.fc]
    if n == 0:
        cut = len(modules) - 1  # everything up to and including the flatten is frozen
    else:
        first_trainable = stages[len(stages) - n]
        cut = next(i for i, m in enumerate(modules) if m is first_trainable)
    prefix, suffix = nn.Sequential(*modules[:cut]), nn.Sequential(*modules[cut:])
    prefix.eval()
    return prefix, suffix


# ---------------------------------------------------------------------------------------------------
# Building the cache
# ---------------------------------------------------------------------------------------------------
@dataclass
class FeatureCache:
    """Prefix features of every image of train.csv in its 8 views, computed when first needed.

    ``features[i, v]`` is ``prefix(dihedral_view(image i, v))``; ``filled[i, v]`` says whether it has been
    computed. ``fill(rows, views)`` computes the missing ones in one batch. Filling lazily costs at most
    what filling all 8 views up front costs, and less when fewer epochs are trained than that takes to
    draw every view (a 3-epoch run draws about 2.6 of the 8 views per image).
    """
    features: torch.Tensor   # [N, 8, *feature shape] in the storage dtype
    filled: torch.Tensor     # bool [N, 8]
    labels: torch.Tensor     # int64 [N]
    unfrozen_stages: int
    key: str                 # hash of everything the features depend on
    prefix: nn.Module | None = None   # to compute missing views; None for a complete cache
    images: torch.Tensor | None = None  # uint8 [N, 3, H, W]
    mean: list | None = None
    std: list | None = None
    seconds: float = 0.0     # time spent computing features (loading a saved cache costs none)
    channels_last: bool | None = None  # prefix memory format; None = where it helps (train.default_channels_last)
    autocast: torch.dtype | None = None  # the prefix's mixed precision; None = float32 (exact)

    def __len__(self) -> int:
        return len(self.features)

    @property
    def nbytes(self) -> int:
        """Memory the filled features take (the allocation's untouched pages cost nothing on Linux)."""
        return int(self.filled.sum()) * self.features[0, 0].numel() * self.features.element_size()

    def fill(self, rows: torch.Tensor, views: torch.Tensor, batch_size: int = 256) -> None:
        """Compute the features of (rows[j], views[j]) that are missing, in batches."""
        missing = ~self.filled[rows, views]
        if not missing.any():
            return
        if self.prefix is None:
            raise RuntimeError("this feature cache is incomplete and has no prefix to compute the rest")
        rows, views = rows[missing], views[missing]
        started = time.perf_counter()
        device = next(self.prefix.parameters(), torch.empty(0)).device
        # channels_last: 1.2-1.8x faster convolutions on a CPU without bf16 (bench/evaluate.py), same values
        channels_last = default_channels_last(device) if self.channels_last is None else self.channels_last
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.prefix.to(memory_format=memory_format)
        precision = (torch.autocast(device.type, dtype=self.autocast) if self.autocast is not None
                     else contextlib.nullcontext())
        with torch.no_grad(), precision:  # not inference_mode: its tensors could not be used in training later
            for start in range(0, len(rows), batch_size):
                r, v = rows[start:start + batch_size], views[start:start + batch_size]
                # uint8 to the device, then the float work there: a quarter of the bytes to copy to a GPU
                x = _normalise(self.images[r].to(device), self.mean, self.std)
                views_here = v.to(device)
                for view in v.unique().tolist():  # each view once for all the rows that want it
                    x[views_here == view] = dihedral_view(x[views_here == view], view)
                x = x.contiguous(memory_format=memory_format)
                self.features[r, v] = self.prefix(x).to("cpu", self.features.dtype)
                self.filled[r, v] = True
        self.seconds += time.perf_counter() - started

    def fill_all(self, rows=None, batch_size: int = 256) -> None:
        rows = torch.arange(len(self)) if rows is None else torch.as_tensor(rows, dtype=torch.int64)
        self.fill(rows.repeat_interleave(N_VIEWS), torch.arange(N_VIEWS).repeat(len(rows)), batch_size)

    def fill_at_least(self, rows, n_views: int, seed: int = 0, batch_size: int = 256) -> None:
        """Make sure each of ``rows`` has at least ``n_views`` computed views, adding uniformly drawn ones
        where it has fewer: the views earlier runs computed are used first, so this is free after them.

        For runs that draw among the computed views (``FeatureLoader(only_computed=True)``, or a ``subset``
        handed on without its prefix): each epoch's view is still uniform over the 8, and a run of up to
        ``n_views`` epochs sees about as many different views per image as it would have drawn itself."""
        rows = torch.as_tensor(rows, dtype=torch.int64)
        n = min(int(n_views), N_VIEWS)
        g = torch.Generator().manual_seed(seed)
        order = (torch.rand(len(rows), N_VIEWS, generator=g) - 2 * self.filled[rows].float()).argsort(1)
        views = order[:, :n]  # the computed views first, then random others
        self.fill(rows.repeat_interleave(n), views.reshape(-1), batch_size)

    def subset(self, rows) -> FeatureCache:
        """The computed features of ``rows`` (renumbered 0..len(rows)-1), without the prefix and the images:
        what Ray's object store carries to the tuning trials. A view not computed here cannot be computed
        there; loaders draw among the computed views (see FeatureLoader)."""
        rows = torch.as_tensor(rows, dtype=torch.int64)
        return FeatureCache(self.features[rows].clone(), self.filled[rows].clone(), self.labels[rows].clone(),
                            self.unfrozen_stages, self.key)


def _normalise(images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 -> float32 exactly as NucleiDataset does it: x * scale + shift."""
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(3, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(3, 1, 1)
    return images.float() * (1 / (255 * std_t)) + (-mean_t / std_t)


def _prefix_key(prefix: nn.Module, images: torch.Tensor, mean, std, unfrozen_stages: int, dtype,
                data_key: str = "") -> str:
    digest = hashlib.sha256(f"labkit-features-v{CACHE_VERSION}:{unfrozen_stages}:{dtype}:{mean}:{std}:"
                            f"{tuple(images.shape)}:{data_key}\n".encode())
    if not data_key:  # no decode-cache key to stand for the images: hash their bytes
        digest.update(images.numpy().tobytes())
    for name, value in prefix.state_dict().items():  # weights and BatchNorm statistics
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _cache_key(prefix: nn.Module, data, unfrozen_stages: int, dtype, autocast=None) -> str:
    """The key a cache of ``prefix``'s features of ``data`` is saved under (``_prefix_key``)."""
    return _prefix_key(prefix, data.train_images, data.mean, data.std, unfrozen_stages,
                       dtype if autocast is None else f"{dtype} computed in {autocast}", getattr(data, "cache_key", ""))


def build_cache(model: nn.Module, data, unfrozen_stages: int, *, run_dir=None, dtype=torch.float16,
                lazy: bool = True, device="cpu", channels_last: bool | None = None,
                autocast: torch.dtype | None = None, log=print) -> FeatureCache:
    """The prefix-feature cache of every image in train.csv (training and validation split), 8 views each.

    ``data`` is a ``labkit.data.NucleiData``. ``lazy``: views are computed when a loader first needs them
    (see FeatureCache), else all at once here. With ``run_dir`` (a path or RunDir), what a previous chapter
    computed is read from ``features/model2-u<unfrozen>-<key>.pt`` when it was made for the same images,
    normalisation, prefix weights and dtype; ``save_cache`` writes it back for the next chapter.
    ``channels_last``: the prefix's memory format (None: where it helps); it changes only the rounding.
    ``autocast``: run the prefix in this mixed precision (e.g. ``train.autocast_dtype(device)``, as
    ``train.evaluate`` does), or in float32 (None), which the exactness of cached training rests on.
    """
    from labkit.artifacts import RunDir

    prefix, _ = split_model2(model, unfrozen_stages)
    key = _cache_key(prefix, data, unfrozen_stages, dtype, autocast)
    with torch.no_grad():
        shape = prefix(torch.zeros(1, *data.train_images.shape[1:])).shape[1:]
    n = len(data.train_images)
    # the same weights, but a copy: the cache must not change when the model is trained later
    cache = FeatureCache(torch.empty((n, N_VIEWS, *shape), dtype=dtype), torch.zeros((n, N_VIEWS), dtype=torch.bool),
                         data.train_labels, unfrozen_stages, key, copy.deepcopy(prefix).to(device).eval(),
                         data.train_images, list(data.mean), list(data.std), channels_last=channels_last,
                         autocast=autocast)
    if run_dir is not None and not isinstance(run_dir, RunDir):
        run_dir = RunDir(run_dir)
    name = _cache_name(unfrozen_stages, key)
    if run_dir is not None and run_dir.exists(name):
        saved = run_dir.load_torch(name, recorded=False)  # keyed by what it is computed from: not an input
        if saved.get("key") == key and saved.get("version") == CACHE_VERSION:
            cache.features[saved["filled"]] = saved["features"]
            cache.filled = saved["filled"]
    if not lazy:
        cache.fill_all()
    if log is not None:
        log(f"model2 prefix features (unfrozen stages {unfrozen_stages}): {n} images x {N_VIEWS} views of "
            f"{tuple(shape)} {dtype}, {int(cache.filled.sum())} of {cache.filled.numel()} computed "
            f"({cache.nbytes / 2**20:.0f} MiB), {cache.seconds:.1f} s")
    return cache


def has_saved_cache(model: nn.Module, data, unfrozen_stages: int, run_dir, dtype=torch.float16) -> bool:
    """Whether an earlier chapter saved, in ``run_dir``, the cache that ``build_cache`` would read for this
    model's frozen prefix (same images, normalisation, prefix weights, depth and dtype)."""
    from labkit.artifacts import RunDir

    if run_dir is None:
        return False
    run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    prefix, _ = split_model2(model, unfrozen_stages)
    return run_dir.exists(_cache_name(unfrozen_stages, _cache_key(prefix, data, unfrozen_stages, dtype)))


def head_inputs(model: nn.Module, cache: FeatureCache, batch_size: int = 256) -> FeatureCache:
    """What ``model``'s head sees (the pooled backbone output) for every view ``cache`` holds: the cache
    deepened to 0 unfrozen stages by running the stages in between once, in eval mode. A head-only run
    (``fit_on_features`` with ``set_unfrozen_stages(model, 0)``) then trains on these vectors. Without a
    prefix: loaders draw among the computed views."""
    prefix, _ = split_model2(model, cache.unfrozen_stages)
    if cache.prefix is not None:
        _check_same_prefix(prefix, cache.prefix)
    deep, _ = split_model2(model, 0)
    middle = nn.Sequential(*list(deep.children())[len(prefix):]).eval()  # e.g. layer4, avgpool, flatten
    device = next(middle.parameters()).device
    rows, views = cache.filled.nonzero(as_tuple=True)
    out = None
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            r, v = rows[start:start + batch_size], views[start:start + batch_size]
            y = middle(cache.features[r, v].to(device, torch.float32)).cpu()
            if out is None:
                out = torch.zeros((len(cache), N_VIEWS, *y.shape[1:]), dtype=torch.float32)
            out[r, v] = y
    return FeatureCache(out, cache.filled.clone(), cache.labels, 0, f"{cache.key}:head-inputs")


def _cache_name(unfrozen_stages: int, key: str) -> str:
    return f"features/model2-u{unfrozen_stages}-{key[:16]}.pt"


def save_cache(cache: FeatureCache, run_dir) -> None:
    """Save what has been computed so far, for the next chapter (same run folder)."""
    from labkit.artifacts import RunDir

    run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    # only the computed views: a lazy cache of the standard stub is a quarter full, the rest is untouched memory
    run_dir.save_torch(_cache_name(cache.unfrozen_stages, cache.key),
                       {"key": cache.key, "version": CACHE_VERSION, "features": cache.features[cache.filled],
                        "filled": cache.filled})


# ---------------------------------------------------------------------------------------------------
# Training and evaluating on the cache
# ---------------------------------------------------------------------------------------------------
class FeatureLoader:
    """Batches ``(features, labels)`` of the images ``idx`` of a cache, like a DataLoader over images.

    ``augment``: a uniformly random view per sample and epoch (the image pipeline's augmentation), or, with
    ``only_computed`` or for a cache without a prefix (``FeatureCache.subset``), a uniformly random one of
    the views computed for that image; otherwise the identity view. ``all_views``: all 8 views [B, 8, ...] per sample (for TTA).
    ``shuffle`` reshuffles every epoch; training loaders (shuffle) drop the last incomplete batch, as
    ``data.make_loader`` does. Views not computed yet are computed here, one prefix batch per batch.
    """

    def __init__(self, cache: FeatureCache, idx, batch_size: int, *, shuffle: bool = False,
                 augment: bool = False, all_views: bool = False, only_computed: bool = False):
        self.cache, self.batch_size, self.only_computed = cache, int(batch_size), only_computed
        self.idx = torch.as_tensor(idx, dtype=torch.int64)
        self.shuffle, self.augment, self.all_views = shuffle, augment, all_views
        self.drop_last = shuffle and len(self.idx) > self.batch_size

    def __len__(self) -> int:
        n, b = len(self.idx), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self):
        order = self.idx[torch.randperm(len(self.idx))] if self.shuffle else self.idx
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            rows = order[start:start + self.batch_size]
            if self.all_views:
                self.cache.fill(rows.repeat_interleave(N_VIEWS), torch.arange(N_VIEWS).repeat(len(rows)))
                x = self.cache.features[rows]
            else:
                views = (self._random_views(rows) if self.augment
                         else torch.zeros(len(rows), dtype=torch.int64))
                self.cache.fill(rows, views)
                x = self.cache.features[rows, views]
            yield x.float(), self.cache.labels[rows]

    def _random_views(self, rows: torch.Tensor) -> torch.Tensor:
        if self.cache.prefix is not None and not self.only_computed:
            return torch.randint(0, N_VIEWS, (len(rows),))
        return torch.multinomial(self.cache.filled[rows].float(), 1).squeeze(1)  # among the computed ones


class FeatureDataset(torch.utils.data.Dataset):
    """Item i = (features of image ``idx[i]`` in a random computed view, or the identity view, label), for
    code that wants a Dataset (e.g. the weighted draw of diagnostics.fix_experiment). Every view it may draw
    must be computed beforehand (``fill_at_least``, ``fill``): an item never runs the prefix. Holds a copy
    of its rows; like ``data.NucleiDataset`` it makes whole batches (``__getitems__``) on the device its
    tensors are on (``to``), so ``data.make_loader`` serves it without per-item Python."""

    def __init__(self, cache: FeatureCache, idx, augment: bool = False):
        idx = torch.as_tensor(idx, dtype=torch.int64)
        self._set(cache.features[idx], cache.filled[idx], cache.labels[idx], augment)
        views = self.filled if augment else self.filled[:, :1]
        if not views.any(1).all():
            raise ValueError("FeatureDataset: some images have no computed view; fill the cache first")

    def _set(self, features, filled, labels, augment):
        self.features, self.filled, self.labels, self.augment = features, filled, labels, augment

    def to(self, device) -> FeatureDataset:
        moved = FeatureDataset.__new__(FeatureDataset)
        moved._set(self.features.to(device), self.filled.to(device), self.labels.to(device), self.augment)
        return moved

    def __len__(self) -> int:
        return len(self.features)

    def __getitems__(self, indices):
        rows = torch.as_tensor(indices, device=self.features.device)
        if self.augment:  # one computed view per row, drawn uniformly among that row's computed views
            views = torch.multinomial(self.filled[rows].float(), 1).squeeze(1)
        else:
            views = torch.zeros_like(rows)
        return self.features[rows, views].float(), self.labels[rows]

    def __getitem__(self, i):
        x, y = self.__getitems__([i])
        return x[0], y[0]


def _check_prefix_frozen(prefix: nn.Module) -> None:
    trainable = [name for name, p in prefix.named_parameters() if p.requires_grad]
    if trainable:
        raise ValueError(f"{len(trainable)} parameters of the cached prefix require gradients (e.g. "
                         f"{trainable[0]}): the cache would silently freeze them. Cache fewer stages, or call "
                         "models.set_unfrozen_stages(model, n) with n <= the cache's unfrozen_stages")


def _check_same_prefix(prefix: nn.Module, cached: nn.Module) -> None:
    ours, theirs = prefix.state_dict(), cached.state_dict()
    if any(not torch.equal(ours[k], theirs[k].to(ours[k].device)) for k in ours):
        raise ValueError("the model's frozen prefix differs from the one this feature cache was made with: "
                         "build the cache from this model (features.build_cache)")


def fit_on_features(model: nn.Module, cache: FeatureCache, train_idx, val_idx, *, batch_size: int,
                    device="cpu", reuse_views: int = 0, **fit_kwargs):
    """``train.fit`` of model2's trainable suffix on cached features; returns fit's FitResult.

    ``model`` must have at most ``cache.unfrozen_stages`` stages unfrozen (``set_unfrozen_stages``;
    fewer is fine, e.g. the head-only first epoch of ``unfreeze_schedule``: a frozen stage in the suffix
    is run but not trained). Other keyword arguments go to ``fit`` as they are (epochs, param_groups,
    lr, on_epoch_start, report, seed, name, ...); ``param_groups`` may list the whole model's
    parameters, the frozen ones get no gradient and are skipped. The best weights end up in ``model``.
    ``FitResult.best_state`` holds the suffix's state_dict (use ``model.state_dict()`` for the model's).

    ``reuse_views`` = k > 0: augment by drawing among the views already computed for each image (earlier
    runs' on the same cache), computing more only where an image has fewer than k (``fill_at_least``).
    Each epoch's view is still uniform over the 8; a run just revisits an image's few computed views
    instead of computing new ones. 0: a fresh uniform draw per sample and epoch, computed when first drawn.
    """
    from labkit.train import fit

    prefix, suffix = split_model2(model, cache.unfrozen_stages)
    _check_prefix_frozen(prefix)
    if cache.prefix is not None:  # the cache computes views with its own copy of the prefix: check they agree
        _check_same_prefix(prefix, cache.prefix)
    if reuse_views:  # (no more views than the run has epochs to draw them in)
        cache.fill_at_least(train_idx, min(reuse_views, fit_kwargs.get("epochs") or reuse_views),
                            seed=fit_kwargs.get("seed", 0))
    train_loader = FeatureLoader(cache, train_idx, batch_size, shuffle=True, augment=True,
                                 only_computed=bool(reuse_views))
    val_loader = FeatureLoader(cache, val_idx, batch_size)
    if cache.features.dim() < 5:  # pooled vectors [N, 8, C]: channels_last needs 4-d tensors
        fit_kwargs["channels_last"] = False
    result = fit(suffix, train_loader, val_loader, device=device, **fit_kwargs)
    model.to(device)  # fit moved only the suffix; keep the model in one piece for the callers
    return result


def evaluate_on_features(model: nn.Module, cache: FeatureCache, idx, *, tta: bool = False,
                         batch_size: int = 256, device="cpu"):
    """``train.evaluate`` for the images ``idx`` of the cache: same Predictions, without the prefix's cost.

    With ``tta`` the probabilities are the mean softmax over the 8 cached views.
    """
    import numpy as np

    from labkit.train import Predictions, pick_device

    device = pick_device(device)
    _, suffix = split_model2(model, cache.unfrozen_stages)
    suffix.to(device).eval()
    loader = FeatureLoader(cache, idx, batch_size, all_views=tta)
    labels, probs = [], []
    with torch.inference_mode():
        for x, y in loader:
            x = x.to(device)
            if tta:  # [B, 8, ...] -> one batch of B*8, then the mean over each image's views
                p = suffix(x.flatten(0, 1)).float().softmax(1).view(len(x), N_VIEWS, -1).mean(1)
            else:
                p = suffix(x).float().softmax(1)
            probs.append(p.cpu())
            labels.append(y)
    probs = torch.cat(probs).numpy().astype(np.float32)
    return Predictions(labels=torch.cat(labels).numpy().astype(np.int64), preds=probs.argmax(1), probs=probs)
