"""model2 fine-tuning on cached prefix features (labkit.features) against the full forward/backward.

Three variants of one training step, at the same number of unfrozen stages where it applies:
  whole network          forward and backward through every layer, all of them trained (fine-tuning
                         without freezing anything: the full forward/backward pass of issue 15)
  frozen prefix, rerun   the frozen prefix recomputed in every step (no gradients flow through it), the
                         unfrozen stages and the head trained: what freezing alone saves
  cached prefix          the unfrozen stages and the head trained on the prefix's cached features

    python bench/features.py                     # last stage unfrozen (the baseline), 3 rounds
    python bench/features.py --stages 0 1 2 --rounds 5

Per number of unfrozen stages, one training step (loader fetch, forward, loss, backward, AdamW step, at
the project's batch size and CPU settings) is timed for both variants, interleaved in every round so a
busy shared CPU slows both alike; the figure is the fastest step over all rounds (others sharing the CPU
only add time), with the median beside it. An epoch is that step times the standard profile's steps per
epoch. The one-off cost of filling the cache (every view of every image through the frozen prefix) is
measured on ``--cache-images`` images and scaled to the standard stub's train.csv (training and validation
split), for all 8 views and for the views a build computes on a CPU (``features.views_to_reuse``: every
model2 run draws among them); the break-even number of epochs is that cost over the time an epoch saves
against rerunning the frozen prefix.
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from labkit.data import NucleiDataset, make_loader
from labkit.features import FeatureLoader, build_cache, split_model2, views_to_reuse
from labkit.models import build_model2, model2_param_groups, set_unfrozen_stages
from labkit.profiles import get_profile
from labkit.train import default_amp, default_channels_last

MEAN, STD = [0.6, 0.4, 0.7], [0.2, 0.25, 0.15]


def stepper(module, loader, params, channels_last, amp):
    """A function that runs one training step of ``module`` on the loader's next batch."""
    module.train()
    if channels_last:
        module.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(params, lr=1e-4)
    batches = iter(loader)

    def step():
        nonlocal batches
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(loader)
            x, y = next(batches)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = torch.nn.functional.cross_entropy(module(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", type=int, nargs="+", default=[1])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per variant and round")
    parser.add_argument("--cache-images", type=int, default=256)
    args = parser.parse_args(argv)

    profile = get_profile("standard")
    batch = profile.batch_size
    n_train = round(profile.stub_train * (1 - profile.val_fraction))
    steps_per_epoch = n_train // batch
    cpu = torch.device("cpu")
    channels_last, amp = default_channels_last(cpu), default_amp(cpu)
    print(f"{os.cpu_count()} CPUs, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}; "
          f"bf16 {'on' if amp else 'off'}, channels_last {channels_last}; batch {batch}; standard profile: "
          f"{n_train} training images, {steps_per_epoch} steps per epoch")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base, weights = build_model2(allow_random=True)
    print(f"resnet18 weights: {'ImageNet' if weights.pretrained else 'random (same cost)'}")
    n = max(args.cache_images, 2 * batch)
    images = torch.randint(0, 256, (n, 3, 100, 100), dtype=torch.uint8)
    labels = torch.arange(n) % 4
    data = SimpleNamespace(train_images=images, train_labels=labels, mean=MEAN, std=STD, cache_key="")

    for stages in args.stages:
        full = base
        set_unfrozen_stages(full, stages)
        cache = build_cache(full, data, stages, lazy=False, log=None)  # all 8 views: the one-off cost
        cache_seconds = cache.seconds * profile.stub_train / n  # the cache holds train.csv: training + validation
        # the full model as the chapters train it today: fit's model.train() on the whole network
        groups = model2_param_groups(full, 3e-3, 3e-4, 1e-4)
        image_loader = make_loader(NucleiDataset(images, labels, mean=MEAN, std=STD, augment=True), batch,
                                   shuffle=True)
        full_step = stepper(full, image_loader, groups, channels_last, amp)
        cached_model = copy.deepcopy(full)
        _, suffix = split_model2(cached_model, stages)
        feature_loader = FeatureLoader(cache, torch.arange(n), batch, shuffle=True, augment=True)
        cached_step = stepper(suffix, feature_loader, model2_param_groups(cached_model, 3e-3, 3e-4, 1e-4),
                              channels_last, amp)
        whole = copy.deepcopy(full)
        set_unfrozen_stages(whole, -1)
        whole_step = stepper(whole, image_loader, model2_param_groups(whole, 3e-3, 3e-4, 1e-4), channels_last, amp)
        variants = {"whole network": whole_step, "frozen prefix, rerun": full_step, "cached prefix": cached_step}
        for step in variants.values():  # warm-up: oneDNN picks its kernels on the first calls
            step()
        times = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, step in variants.items():
                for _ in range(args.steps):
                    start = time.perf_counter()
                    step()
                    times[name].append(time.perf_counter() - start)
        best = {name: min(t) for name, t in times.items()}
        print(f"\nunfrozen stages {stages}: feature {tuple(cache.features.shape[2:])} {cache.features.dtype}, "
              f"{cache.nbytes / n * profile.stub_train / 2**20:.0f} MiB for the standard stub's train.csv")
        for name, t in times.items():
            print(f"  {name:<22} step {best[name] * 1e3:7.1f} ms (median {statistics.median(t) * 1e3:7.1f}), "
                  f"epoch {best[name] * steps_per_epoch:6.1f} s")
        saved = (best["frozen prefix, rerun"] - best["cached prefix"]) * steps_per_epoch
        print(f"  whole network / cached prefix: {best['whole network'] / best['cached prefix']:.1f}x per training "
              f"epoch; frozen prefix rerun / cached prefix: {best['frozen prefix, rerun'] / best['cached prefix']:.1f}x")
        views = views_to_reuse("cpu")
        print(f"  cache build: {cache.seconds:.1f} s for {n} images x 8 views -> {cache_seconds:.0f} s for "
              f"{profile.stub_train}, breaking even after {cache_seconds / saved:.1f} epochs (each saves {saved:.0f} s); "
              f"the {views} views a CPU build computes: {cache_seconds * views / 8:.0f} s, even after "
              f"{cache_seconds * views / 8 / saved:.1f} epochs")


if __name__ == "__main__":
    main()
