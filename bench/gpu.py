"""Does the device do the work? The project's training path against compute alone, side by side.

For model1 (baseline settings) and resnet18 (every stage trainable), in one run, alternating:

- **path**: images/s through what the chapters run: ``NucleiDataset`` + ``data.make_loader`` + ``train.fit``
  (batches made on the device, the device's precision, channels_last, early-stopping bookkeeping and a
  one-batch validation pass per epoch). The first epoch warms up (cuDNN picks kernels) and is not counted;
- **compute**: images/s of ``train.train_step`` on one batch reused, with the same model, precision,
  memory format and optimizer: what the device can do with no data work at all;
- the ratio path / compute (issue 23's target on one H200: at least 0.85 for both models);
- **per-item**: the same ``fit`` fed by the loader of main before issue 23 (``bench/loader.PerItemNuclei``: a
  float conversion, rot90 and flip per sample in Python, the DataLoader's collate, pinned copies on a GPU),
  so the data path's gain is measured side by side too.

    python bench/gpu.py                  # on a GPU: 8,500 training images, batch 128, 3 epochs
    python bench/gpu.py --device cpu     # small sizes: 256 images, batch 32 (a test runs it in seconds)
    python bench/gpu.py --features       # also: model2 (last stage unfrozen) on cached prefix features
                                         # against the full pass, whole runs of --epochs (features.CACHE_ON_GPU)

On a shared CPU, other processes only ever add time: the best round of each variant is its figure.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from labkit import features, models
from labkit.data import NucleiDataset, make_loader
from labkit.train import (
    autocast_dtype,
    default_channels_last,
    fit,
    needs_loss_scaling,
    pick_device,
    precision_name,
    train_step,
)

STATS = {"mean": [0.759, 0.616, 0.821], "std": [0.173, 0.198, 0.118]}  # DATA_FACTS.md


def make_model(name: str) -> nn.Module:
    if name == "model1":
        return models.Model1(channels=(16, 32, 64, 128), dropout=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # offline: random weights time the same as ImageNet's
        model = models.model2_architecture(name)
    models.set_unfrozen_stages(model, -1)  # every stage trainable
    return model


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def path_rate(model, images, labels, batch, epochs, device) -> float:
    """images/s of fit's training epochs after the first, on the chapters' loaders."""
    train = NucleiDataset(images, labels, augment=True, **STATS)
    val = NucleiDataset(images[:batch], labels[:batch], **STATS)  # one batch: fit's bookkeeping, little else
    train_loader = make_loader(train, batch, shuffle=True, device=device)
    val_loader = make_loader(val, batch, shuffle=False, device=device)
    result = fit(model, train_loader, val_loader, epochs=epochs, lr=1e-3, device=device, log=None,
                 schedule="onecycle")
    seconds = sum(result.history.seconds[1:])  # each epoch's seconds end after fit has read its sums
    return (epochs - 1) * len(train_loader) * batch / seconds


def per_item_rate(model, images, labels, batch, epochs, device) -> float:
    """path_rate with the former per-item loader (the same fit)."""
    from torch.utils.data import DataLoader

    from bench.loader import PerItemNuclei

    train = PerItemNuclei(images, labels, STATS["mean"], STATS["std"])
    val = NucleiDataset(images[:batch], labels[:batch], **STATS)
    train_loader = DataLoader(train, batch_size=batch, shuffle=True, drop_last=True,
                              pin_memory=device.type == "cuda")
    result = fit(model, train_loader, make_loader(val, batch, shuffle=False, device=device), epochs=epochs,
                 lr=1e-3, device=device, log=None)
    return (epochs - 1) * len(train_loader) * batch / sum(result.history.seconds[1:])


def compute_rate(model, images, labels, batch, steps, device) -> float:
    """images/s of train_step on one batch made once and reused: no data work at all."""
    dtype, channels_last = autocast_dtype(device), default_channels_last(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device, memory_format=memory_format).train()
    x, y = NucleiDataset(images[:batch], labels[:batch], augment=True, **STATS).to(device).__getitems__(
        torch.arange(batch, device=device))
    x = x.contiguous(memory_format=memory_format)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda" or None)
    scaler = torch.amp.GradScaler(device.type, enabled=needs_loss_scaling(dtype, device))
    criterion = nn.CrossEntropyLoss()
    for _ in range(3):  # warm-up: kernel choice, allocator
        train_step(model, x, y, criterion, opt, scaler, None, device, dtype)
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        train_step(model, x, y, criterion, opt, scaler, None, device, dtype)
    sync(device)
    return steps * batch / (time.perf_counter() - start)


def model2_run_seconds(images, labels, batch, epochs, device, cached: bool) -> float:
    """Seconds of a whole model2 run (resnet18, last stage unfrozen), as recipes.train_model would make it:
    on the prefix-feature cache (filled as the run draws views) or the full pass on device batches."""
    from types import SimpleNamespace

    torch.manual_seed(0)
    model = make_model("resnet18")
    models.set_unfrozen_stages(model, 1)
    groups = models.model2_param_groups(model, 3e-3, 3e-4, 1e-4)
    n_val = batch
    train_idx, val_idx = torch.arange(n_val, len(images)), torch.arange(n_val)
    sync(device)
    start = time.perf_counter()
    if cached:
        data = SimpleNamespace(train_images=images, train_labels=labels, cache_key="", **STATS)
        cache = features.build_cache(model, data, features.CACHE_STAGES, device=device, log=None)
        features.fit_on_features(model, cache, train_idx, val_idx, batch_size=batch, epochs=epochs, device=device,
                                 param_groups=groups, log=None, reuse_views=features.views_to_reuse(device))
    else:
        train = NucleiDataset(images[train_idx], labels[train_idx], augment=True, **STATS)
        val = NucleiDataset(images[val_idx], labels[val_idx], **STATS)
        fit(model, make_loader(train, batch, shuffle=True, device=device),
            make_loader(val, batch, shuffle=False, device=device), epochs=epochs, device=device,
            param_groups=groups, log=None)
    sync(device)
    return time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", nargs="+", default=["model1", "resnet18"])
    parser.add_argument("--images", type=int, default=None, help="training images (GPU 8500, CPU 256)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (GPU 128, CPU 32)")
    parser.add_argument("--epochs", type=int, default=3, help="fit's epochs; the first is not counted")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--features", action="store_true",
                        help="also time model2 runs on cached prefix features against the full pass")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    on_gpu = device.type == "cuda"
    n = args.images or (8500 if on_gpu else 256)
    batch = args.batch or (128 if on_gpu else 32)
    epochs = max(2, args.epochs)
    steps = (epochs - 1) * (n // batch)  # as many steps as the path's counted epochs
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 100, 100), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 4, (n,), generator=g)
    where = torch.cuda.get_device_name(device) if on_gpu else f"CPU, {torch.get_num_threads()} threads"
    print(f"{where}; torch {torch.__version__}; {precision_name(device)}, channels_last "
          f"{default_channels_last(device)}; {n} images, batch {batch}, {epochs} epochs ({epochs - 1} counted), "
          f"{args.rounds} rounds")

    rates = {(m, v): [] for m in args.models for v in ("path", "compute", "per-item")}
    for r in range(args.rounds):
        order = args.models if r % 2 == 0 else args.models[::-1]
        for name in order:
            base = make_model(name)
            variants = [("path", path_rate), ("compute", compute_rate), ("per-item", per_item_rate)]
            for variant, measure in variants if r % 2 == 0 else variants[::-1]:
                torch.manual_seed(0)
                count = steps if variant == "compute" else epochs
                rates[name, variant].append(measure(copy.deepcopy(base), images, labels, batch, count, device))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    summary = {}
    print(f"\n{'model':10s} {'path img/s':>11s} {'compute img/s':>14s} {'path/compute':>13s} "
          f"{'per-item img/s':>15s} {'path/per-item':>14s}  (best round; rounds path/compute/per-item)")
    for name in args.models:
        path, compute, item = (max(rates[name, v]) for v in ("path", "compute", "per-item"))
        summary[name] = {"path": path, "compute": compute, "ratio": path / compute, "per_item": item}
        every = ", ".join(f"{p:.0f}/{c:.0f}/{i:.0f}" for p, c, i in
                          zip(*(rates[name, v] for v in ("path", "compute", "per-item"))))
        print(f"{name:10s} {path:11.0f} {compute:14.0f} {path / compute:13.2f} {item:15.0f} {path / item:14.2f}  "
              f"({every})")

    if args.features:
        runs = {"cached": [], "full": []}
        for r in range(args.rounds):
            for variant in ("cached", "full") if r % 2 == 0 else ("full", "cached"):
                runs[variant].append(model2_run_seconds(images, labels, batch, epochs, device, variant == "cached"))
        cached, full = min(runs["cached"]), min(runs["full"])
        summary["model2 cache"] = {"cached_s": cached, "full_s": full}
        print(f"\nmodel2 (resnet18, last stage unfrozen), a whole {epochs}-epoch run: on cached prefix features "
              f"{cached:.1f} s, full pass on device batches {full:.1f} s: the cache is x{full / cached:.2f} as fast "
              f"(features.CACHE_ON_GPU is {'on' if features.CACHE_ON_GPU else 'off'})")
    return summary


if __name__ == "__main__":
    main()
