"""How long Captum attribution takes on CPU, per method and model, and what the settings cost.

    python bench/interpret.py [--threads 2] [--examples 8]

Times labkit.interpret.attribute on stub patches (8 = the standard profile: one right and one wrong
example per class) for model1 (default Model1) and a resnet18(weights=None) with a 4-class head, with
the default settings and with heavier ones side by side, and prints the ratios.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torchvision

from data_stub.generator import make_image
from labkit import interpret as it
from labkit.models import Model1

MEAN = torch.tensor([0.759, 0.616, 0.821])[:, None, None]
STD = torch.tensor([0.173, 0.198, 0.118])[:, None, None]


def stub_batch(n: int) -> torch.Tensor:
    images = np.stack([make_image(0, "train", i)[1] for i in range(n)])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    return (x - MEAN) / STD


def timed(model, x, targets, method, **settings) -> float:
    start = time.perf_counter()
    it.attribute(model, x, targets, method, **settings)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--examples", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None)
    resnet.fc = torch.nn.Linear(resnet.fc.in_features, 4)
    models = {"model1 (Model1 defaults)": Model1(), "model2 (resnet18, 4-class head)": resnet}
    x = stub_batch(args.examples)
    targets = torch.arange(args.examples) % 4
    heavier = {it.IG_SMOOTHGRAD: {"n_samples": 8, "n_steps": 25}, it.OCCLUSION: {"window": 15, "stride": 8}}
    print(f"{args.examples} patches 100x100, {args.threads} threads, torch {torch.__version__}")
    print(f"{'model':34s} {'method':16s} {'default s':>9s} {'heavier s':>9s} {'ratio':>6s}  heavier setting")
    total = 0.0
    for name, model in models.items():
        it.attribute(model, x[:2], targets[:2], it.SALIENCY)  # warm-up
        for method in it.METHODS:
            t_default = timed(model, x, targets, method)
            total += t_default
            if method in heavier:
                t_heavy = timed(model, x, targets, method, **heavier[method])
                print(f"{name:34s} {method:16s} {t_default:9.2f} {t_heavy:9.2f} {t_heavy / t_default:6.1f}  "
                      f"{heavier[method]}")
            else:
                print(f"{name:34s} {method:16s} {t_default:9.2f} {'-':>9s} {'-':>6s}")
    print(f"total with the defaults, both models, all methods: {total:.1f} s")


if __name__ == "__main__":
    main()
