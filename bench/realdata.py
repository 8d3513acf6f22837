"""Does the project's model learn real images? model1 against a logistic regression on pixels, same split.

    python -m bench.realdata [--train 540] [--test 200] [--profile standard] [--seed 0] [--weights FILE]

On the real-image proxy (bench/proxy_data.py: patches of four photographs, same colour and brightness
distributions for every class) this prints, for the same stratified train/validation split that
labkit.data.prepare makes and the held-back test answers:

- the majority-class rate (what always answering the commonest class scores);
- a logistic regression on standardised raw pixels (scikit-learn; fitted on the training split only);
- model1, the project's own ConvNet, with the baseline settings of chapter 2 and the profile's budget
  (budget -> epochs, early stopping on validation loss), scored at the epoch fit keeps;
- with ``--weights`` (torchvision's ImageNet file for resnet18), model2 with the baseline settings of
  chapter 3 and the profile's model2 budget. Without ImageNet weights model2 would start from random
  weights, which says nothing about transfer learning, so it is left out.

Timings are wall-clock on this machine; on a shared CPU they are inflated by the other jobs (the load
average is printed). Not run by the tests.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def pixel_logistic_regression(data, test_labels) -> tuple[float, float, float]:
    """(validation accuracy, test accuracy, seconds) of a logistic regression on standardised raw pixels."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pixels = data.train_images.reshape(len(data.train_images), -1).numpy().astype(np.float32) / 255
    labels = data.train_labels.numpy()
    train_idx, val_idx = data.train_idx.numpy(), data.val_idx.numpy()
    start = time.perf_counter()
    # C=0.01: 30,000 pixels and a few hundred images need a strong penalty; fixed, not tuned on validation
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=300))
    model.fit(pixels[train_idx], labels[train_idx])
    seconds = time.perf_counter() - start
    test_pixels = data.test_images.reshape(len(data.test_images), -1).numpy().astype(np.float32) / 255
    return (float(model.score(pixels[val_idx], labels[val_idx])),
            float(model.score(test_pixels, test_labels)) if len(test_labels) else float("nan"), seconds)


def train_project_model(kind: str, data, profile, seed: int, weights_file=None):
    """(FitResult, test accuracy, seconds) of ``kind`` with the chapters' baseline settings and budget."""
    from labkit import recipes, train
    from labkit.data import make_loader

    recipe = recipes.recipe(kind)
    config = recipes.baseline_config(kind, profile)
    model = recipe.make_model(config, recipe.load_base(weights_file, allow_random=False))
    settings = recipe.fit_settings(model, config)
    batch = int(config["batch_size"])
    train_loader = make_loader(data.train_dataset(augment=True, seed=seed), batch, shuffle=True)
    val_loader = make_loader(data.val_dataset(), batch, shuffle=False)
    start = time.perf_counter()
    result = train.fit(model, train_loader, val_loader, epochs=profile.epochs_for(kind, len(data.train_idx)),
                       patience=profile.patience, seed=seed, name=kind, log=None, **settings)
    seconds = time.perf_counter() - start
    return result, model, seconds


def test_accuracy(model, data, answers: np.ndarray, batch: int) -> float:
    from labkit.data import make_loader
    from labkit.train import evaluate

    if not len(answers):
        return float("nan")
    preds = evaluate(model, make_loader(data.test_dataset(), batch, shuffle=False)).preds
    return float((preds == answers).mean())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.realdata", description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=540)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--profile", default="standard")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", help="resnet18 ImageNet weights file: also train model2")
    args = parser.parse_args(argv)

    from bench.proxy_data import ANSWERS, make_proxy
    from labkit.data import prepare
    from labkit.profiles import get_profile

    profile = get_profile(args.profile)
    work = Path(tempfile.mkdtemp(prefix="bench_realdata_"))
    proxy = make_proxy(work / "proxy", args.train, args.test, seed=args.seed)
    data = prepare(proxy, work / "cache", val_fraction=profile.val_fraction, seed=args.seed)
    answers = pd.read_csv(proxy / ANSWERS)["Label"].to_numpy()
    n_train, n_val = len(data.train_idx), len(data.val_idx)
    val_labels = data.train_labels[data.val_idx].numpy()
    majority = np.bincount(val_labels).max() / len(val_labels)
    print(f"{cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"load average {os.getloadavg()[0]:.1f} at start")
    print(f"proxy: {n_train} train + {n_val} validation images (seed {args.seed}), {len(answers)} test; "
          f"profile {profile.name}: model1 budget {profile.model1_steps} steps -> "
          f"{profile.epochs_for('model1', n_train)} epochs, patience {profile.patience}")

    rows = [("majority class", majority, float(np.mean(answers == np.bincount(val_labels).argmax())), "", 0.0)]
    lr_val, lr_test, lr_seconds = pixel_logistic_regression(data, answers)
    rows.append(("logistic regression on pixels", lr_val, lr_test, "", lr_seconds))
    kinds = ["model1"] + (["model2"] if args.weights else [])
    for kind in kinds:
        result, model, seconds = train_project_model(kind, data, profile, args.seed, args.weights)
        test_acc = test_accuracy(model, data, answers, profile.batch_size)
        ran = f"{len(result.history)}/{result.planned_epochs} epochs, kept {result.best_epoch}"
        rows.append((f"{kind} (baseline settings)", result.best_val_acc, test_acc, ran, seconds))

    print(f"\n{'':34} {'val acc':>8} {'test acc':>9} {'seconds':>8}  epochs run/planned")
    for name, val_acc, test_acc, ran, seconds in rows:
        print(f"{name:34} {val_acc:8.1%} {test_acc:9.1%} {seconds:8.0f}  {ran}")
    best_project = max(rows[2:], key=lambda r: r[1])
    print(f"\nproject's better model ({best_project[0]}) minus pixel logistic regression: "
          f"{100 * (best_project[1] - lr_val):+.1f} points on validation, "
          f"{100 * (best_project[2] - lr_test):+.1f} on test; load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
