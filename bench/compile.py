"""torch.compile on this CPU: does its compile time pay back within a build's training runs?

Issue 15 asks for ``torch.compile`` only where its compile time pays back within the run. For each model
that a build trains, at the project's CPU settings (channels_last, batch 64, one thread as in a
side-by-side chapter), this times one training step (forward, loss, backward, AdamW step) eager and
compiled (Inductor, the default backend), interleaved in every round so a busy CPU slows both alike,
and the compile time: the first compiled step, less one eager step.

    python bench/compile.py                    # model1's baseline and model2's cached suffix, 3 rounds
    python bench/compile.py --threads 2 --rounds 5

It prints the ratio eager step / compiled step (above 1: compiled is faster) and, where compiled is faster,
the break-even number of steps: compile time over the time a step saves. A standard build's runs are 300
(model1) and 114 (model2) steps, a tuning trial a fifth of that, and every Ray trial compiles again.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from labkit.features import split_model2
from labkit.models import build_model1, build_model2, set_unfrozen_stages
from labkit.profiles import get_profile
from labkit.recipes import baseline_config


def model1_case(batch):
    """model1 with the standard baseline's settings, on 100x100 patches."""
    model = build_model1(baseline_config("model1", get_profile("standard")))
    return model, torch.randn(batch, 3, 100, 100)


def model2_case(batch):
    """model2's trained part on a CPU (its last stage and head) on the frozen prefix's cached features."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # offline: random weights time the same
        net, _ = build_model2()
    set_unfrozen_stages(net, 1)
    prefix, suffix = split_model2(net, 1)
    with torch.inference_mode():
        features = prefix.eval()(torch.randn(batch, 3, 100, 100))
    return suffix, features.clone()


def stepper(model, x, compiled: bool):
    model = model.train().to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.arange(len(x)) % 4
    forward = torch.compile(model) if compiled else model
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step() -> float:
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(forward(x), y).backward()
        opt.step()
        return time.perf_counter() - start
    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per variant per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="1: as in a side-by-side chapter or a trial")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {args.batch}, channels_last, fp32")
    for name, case in (("model1 (baseline settings)", model1_case), ("model2 last stage + head, cached", model2_case)):
        model, x = case(args.batch)
        eager = stepper(model, x, compiled=False)
        compiled = stepper(model, x, compiled=True)
        first_eager = eager()
        compile_seconds = compiled() - first_eager
        times = {"eager": [], "compiled": []}
        for _ in range(args.rounds):
            for variant, step in (("eager", eager), ("compiled", compiled)):
                times[variant] += [step() for _ in range(args.steps)]
        best = {v: min(t) for v, t in times.items()}
        ratio = best["eager"] / best["compiled"]
        saved = best["eager"] - best["compiled"]
        payback = (f"pays back after {compile_seconds / saved:.0f} steps" if saved > 0
                   else "never pays back: compiled steps are slower")
        print(f"{name}: eager {1000 * best['eager']:.0f} ms/step (median "
              f"{1000 * statistics.median(times['eager']):.0f}), compiled {1000 * best['compiled']:.0f} ms/step "
              f"(median {1000 * statistics.median(times['compiled']):.0f}); eager/compiled x{ratio:.2f}; "
              f"compile {compile_seconds:.1f} s, {payback}", flush=True)


if __name__ == "__main__":
    main()
