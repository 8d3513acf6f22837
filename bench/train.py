"""Training throughput of model1 and model2 on this machine: the project's settings against plain eager
defaults, measured side by side (variants interleaved in every round, so a busy shared CPU slows all of
them alike), and what one epoch of each build profile costs.

    python bench/train.py                       # model1 + model2 (resnet18), 3 rounds
    python bench/train.py --arch resnet18 mobilenet_v3_large --rounds 5 --stages 0 2
    python bench/train.py --channels 16-32-64 16-32-64-128 24-48-96 32-64-128 --arch   # model1's widths
    python bench/train.py --arch --threads 1 --rounds 5   # model1 only: its block order, one core

A variant's figure is images/second of training steps (forward, loss, backward, AdamW step) at batch 64
on 100x100 random patches, from the fastest step over all rounds (others sharing the CPU only add
time), with the median beside it. Evaluation
throughput (inference_mode) is measured too, since every epoch also scores the validation split.
The first model1 width is built in both block orders (pool before ReLU, and the textbook ReLU before max
pool: the same function) to show which is faster here (``models.default_relu_first`` picks by this).
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from labkit.models import Model1, build_model2, set_unfrozen_stages
from labkit.profiles import get_profile
from labkit.train import default_amp, default_channels_last


def train_rate(model, batch, steps, channels_last, bf16):
    model.train()
    x, y = torch.randn(batch, 3, 100, 100), torch.arange(batch) % 4
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    else:
        model = model.to(memory_format=torch.contiguous_format)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    times, cpu_times = [], []
    for _ in range(steps + 1):  # the first step warms up (oneDNN picks kernels), not timed
        start, cpu_start = time.perf_counter(), time.process_time()
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return times[1:], cpu_times[1:]


def eval_rate(model, batch, steps):
    model.eval()
    x = torch.randn(batch, 3, 100, 100)
    times, cpu_times = [], []
    with torch.inference_mode():
        for _ in range(steps + 1):
            start, cpu_start = time.perf_counter(), time.process_time()
            model(x)
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    return times[1:], cpu_times[1:]


def rate(times, batch):
    """images/s from the fastest step: on a shared CPU other processes only ever add time, so the
    minimum is the least disturbed estimate (the median is shown next to it)."""
    return batch / min(times)


def wall_steps(runs) -> list[float]:
    """Every timed step's wall seconds over all rounds of one variant (runs: [(wall times, CPU times), ...])."""
    return [t for wall, _ in runs for t in wall]


def describe(runs, batch):
    steps = wall_steps(runs)
    cpu = [t for _, c in runs for t in c]
    return (f"best {rate(steps, batch):6.1f} img/s, median {batch / statistics.median(steps):6.1f}, "
            f"{batch / statistics.median(cpu):6.1f} img/CPU-s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", nargs="+", default=["16-32-64-128"],
                        help="model1 widths, as in its search space (the first is the one the ratios compare with)")
    parser.add_argument("--arch", nargs="*", default=["resnet18"], help="model2 architectures (none: model1 only)")
    parser.add_argument("--stages", nargs="+", type=int, default=[0, 1, 2],
                        help="model2 unfrozen stages to compare (0 = head only)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    project_cl, project_amp = default_channels_last(cpu), default_amp(cpu)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, 100x100; "
          f"project settings on CPU: channels_last={project_cl}, amp={project_amp}")

    # model name -> factory; the model is built once and reused by all variants
    # pool before ReLU for every width, and the first width in the textbook order too (the same function)
    models = {f"model1 {c}": (lambda c=c: Model1(channels=[int(n) for n in c.split("-")], relu_first=False))
              for c in args.channels}
    textbook = f"model1 {args.channels[0]} ReLU->pool"
    models[textbook] = lambda: Model1(channels=[int(n) for n in args.channels[0].split("-")], relu_first=True)
    for arch in args.arch:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # offline: random init is fine for timing
            net = build_model2(arch)[0]
        for n in args.stages:
            models[f"model2 {arch} stages={n}"] = (lambda net=net, n=n: (set_unfrozen_stages(net, n), net)[1])
        models[f"model2 {arch} all"] = (lambda net=net: (set_unfrozen_stages(net, -1), net)[1])

    variants = {"eager fp32": (False, False), "channels_last": (True, False),
                "bf16 autocast": (False, True), "channels_last+bf16": (True, True)}
    results = {(m, v): [] for m in models for v in variants}
    evals = {m: [] for m in models}
    for r in range(args.rounds):
        order = list(models.items())
        for m, factory in order if r % 2 == 0 else order[::-1]:  # no model always goes first
            model = factory()
            for v, (cl, bf16) in variants.items():
                results[m, v].append(train_rate(model, args.batch, args.steps, cl, bf16))
            evals[m].append(eval_rate(model.to(memory_format=torch.contiguous_format), args.batch, args.steps))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    print("\ntraining throughput (ratio = best step of the variant / best step of eager fp32, same rounds)")
    project = next(v for v, flags in variants.items() if flags == (project_cl, project_amp))
    for m in models:
        base = results[m, "eager fp32"]
        print(f"{m}")
        for v in variants:
            ratio = rate(wall_steps(results[m, v]), 1) / rate(wall_steps(base), 1)
            mark = "  <- project setting on CPU" if v == project else ""
            print(f"  {v:20s} {describe(results[m, v], args.batch)}  x{ratio:4.2f}{mark}")
        print(f"  {'eval (inference)':20s} {describe(evals[m], args.batch)}")

    # model1's widths: what a final run of each costs against the first (the baseline's), same rounds
    first = f"model1 {args.channels[0]}"
    baseline_steps = wall_steps(results[first, project])
    for c in args.channels[1:]:
        other = wall_steps(results[f"model1 {c}", project])
        print(f"model1 {c}: a training step takes x{rate(baseline_steps, 1) / rate(other, 1):4.2f} the time of "
              f"{args.channels[0]}'s")

    ours, theirs = baseline_steps, wall_steps(results[textbook, project])
    best_ratio, median_ratio = rate(ours, 1) / rate(theirs, 1), statistics.median(theirs) / statistics.median(ours)
    eval_ratio = rate(wall_steps(evals[first]), 1) / rate(wall_steps(evals[textbook]), 1)
    print(f"{first}, pool before ReLU (Model1) against ReLU before pool (textbook), the same function: training "
          f"step x{best_ratio:4.2f} as fast (best), x{median_ratio:4.2f} (median); evaluation x{eval_ratio:4.2f} (best)")

    # the other project setting that matters on a CPU: model2 trains its head and last stages, not all
    for arch in args.arch:
        everything = wall_steps(results[f"model2 {arch} all", project])
        for n in args.stages:
            part = wall_steps(results[f"model2 {arch} stages={n}", project])
            ratio = rate(part, 1) / rate(everything, 1)
            print(f"model2 {arch}: head + last {n} stages trainable vs the whole network: x{ratio:4.2f}")

    print("\nseconds per epoch at the project setting from the best rates above (train split at the train\n"
          "rate, val split at the eval rate; data loading, augmentation and Ray overheads not included)")
    for name in ("quick", "standard"):
        p = get_profile(name)
        n_val = round(p.stub_train * p.val_fraction)
        n_train = p.stub_train - n_val
        n_subset = round(n_train * p.tune_subset)
        print(f"profile {name}: {n_train} train + {n_val} val images; model1 {p.epochs_for('model1', n_train)} "
              f"epochs, model2 {p.epochs_for('model2', n_train)}, tuning {p.tune_trials} trials x up to "
              f"{p.trial_epochs('model1', n_subset)}/{p.trial_epochs('model2', n_subset)} epochs on "
              f"{p.tune_subset:.0%} of train")
        for m in (m for m in models if m != textbook):
            train_rate_ = rate(wall_steps(results[m, project]), args.batch)
            erate = rate(wall_steps(evals[m]), args.batch)
            epoch = n_train / train_rate_ + n_val / erate
            kind = "model1" if m.startswith("model1") else "model2"
            epochs = p.epochs_for(kind, n_train)
            tune = p.tune_trials * p.trial_epochs(kind, n_subset) * (n_subset / train_rate_ + n_val / erate)
            print(f"  {m:28s} {epoch:6.1f} s/epoch; baseline+final {2 * epochs * epoch:6.0f} s; "
                  f"tuning at most {tune:6.0f} s")


if __name__ == "__main__":
    main()
