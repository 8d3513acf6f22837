"""Test-set prediction with TTA (chapter 07's cost): evaluate's memory format and batch size, side by side.

    python bench/evaluate.py                   # 256 test patches, TTA over 8 views, 3 rounds

Chapter 07 predicts the test set with model1 and model2, each patch in its 8 flips/rotations. evaluate
runs in fit's precision (``amp=None``: bfloat16 autocast on a CPU with avx512_bf16, float32 on one without);
the last variant is that, against float32 on the same CPU, with the share of patches whose predicted class
is the same. Variants are interleaved in every round; the figure is the fastest round (others sharing the
CPU only add time), scaled to the standard profile's 800 test patches.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from labkit import N_CLASSES
from labkit.data import NucleiDataset, make_loader
from labkit.models import Model1
from labkit.train import evaluate


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    from labkit.train import precision_name

    print(f"{os.cpu_count()} CPUs, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}; "
          f"{args.images} patches, TTA over 8 views; training precision here: {precision_name('cpu')}")
    images = torch.randint(0, 256, (args.images, 3, 100, 100), dtype=torch.uint8)
    dataset = NucleiDataset(images, mean=[0.5] * 3, std=[0.25] * 3)
    torch.manual_seed(0)
    models = {"model1": Model1(), "model2": torchvision.models.resnet18(weights=None, num_classes=N_CLASSES)}
    variants = {"NCHW, batch 64, float32": (False, 64, False), "channels_last, batch 64, float32": (True, 64, False),
                "channels_last, batch 128, float32": (True, 128, False),
                "channels_last, batch 64, fit's precision": (True, 64, None)}
    for name, model in models.items():
        loaders = {b: make_loader(dataset, b, shuffle=False) for b in {b for _, b, _ in variants.values()}}
        times = {v: [] for v in variants}
        reference, same_class = None, {}
        for round_ in range(args.rounds + 1):  # round 0 warms up (oneDNN picks its kernels)
            for variant, (channels_last, batch, amp) in variants.items():
                start = time.perf_counter()
                preds = evaluate(model, loaders[batch], tta=True, amp=amp, channels_last=channels_last)
                if round_:
                    times[variant].append(time.perf_counter() - start)
                reference = preds if reference is None else reference
                if amp is False:  # float32 variants differ only in rounding
                    assert torch.allclose(torch.from_numpy(preds.probs), torch.from_numpy(reference.probs), atol=1e-4)
                same_class[variant] = float((preds.preds == reference.preds).mean())
        base = min(times[next(iter(variants))])
        print(f"\n{name}:")
        for variant, t in times.items():
            print(f"  {variant:<40} {min(t):6.2f} s  -> {min(t) * 800 / args.images:6.1f} s for 800 patches, "
                  f"x{base / min(t):.2f}; same class as float32 for {same_class[variant]:.1%}")


if __name__ == "__main__":
    main()
