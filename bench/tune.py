"""How much of a Ray Tune search is spent outside training, on this machine.

    python bench/tune.py [--train 400] [--trials 4] [--epochs 2] [--repeats 1]

Runs the same small model1 search twice side by side (trials reusing finished trials' worker processes,
labkit's default, and a fresh process per trial) and prints, for each:
- per-trial overhead: a trial's wall time (start to end, as Tune's controller sees it) minus its training
  time (the epochs fit ran, validation included); target < 1.5 s;
- amortised overhead per trial: (search wall time x concurrent trials - total training time) / trials,
  which also counts starting worker processes, scheduling and Tune's start-up and shut-down;
- the share of the search spent outside training;
- training CPU seconds next to training wall seconds: their ratio shows how much the machine's other
  load slowed the trials down.
The machine's load is printed too: on a shared CPU the numbers move by tens of percent between runs.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path


def one_search(data, profile, seed, storage, reuse):
    from labkit import tune

    tune.REUSE_ACTORS = reuse
    result = tune.run_search("model1", data, profile, device="cpu", seed=seed, storage_dir=storage,
                             log=lambda line: None)
    _, concurrent = tune.trial_resources("model1", "cpu", os.cpu_count(), 0, profile.tune_trials)
    t = result.timings
    train = t["train_seconds"].sum()
    return {
        "trials": len(t),
        "epochs": int(result.table["epochs_run"].sum()),
        "search_s": result.seconds,
        "train_s": train,
        "train_cpu_s": t["train_cpu_seconds"].sum(),
        "setup_s": t["setup_seconds"].mean(),
        "overhead_per_trial_s": (t["wall_seconds"] - t["train_seconds"]).mean(),
        "amortised_per_trial_s": (result.seconds * concurrent - train) / len(t),
        "outside_training": 1 - train / (result.seconds * concurrent),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=400, help="stub training images")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="alternate the two settings this many times")
    args = parser.parse_args(argv)

    from data_stub import make_stub
    from labkit import tune
    from labkit.data import prepare
    from labkit.profiles import get_profile

    work = Path(tempfile.mkdtemp(prefix="bench_tune_"))
    data = prepare(make_stub(work / "stub", n_train=args.train, n_test=4, seed=0), work / "cache", seed=0)
    # max_epochs caps the trials' budget at --epochs
    profile = dataclasses.replace(get_profile("standard"), tune_trials=args.trials, max_epochs=args.epochs,
                                  min_epochs=args.epochs, tune_subset=0.5, batch_size=32)
    started = time.perf_counter()
    tune.init_ray()
    print(f"ray.init: {time.perf_counter() - started:.1f} s; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; model1, {args.trials} trials x up to {args.epochs} epochs on "
          f"{int(len(data.train_idx) * 0.5)} images, validation {len(data.val_idx)}")

    rows = []
    for repeat in range(args.repeats):
        for reuse in (True, False):
            row = one_search(data, profile, seed=repeat, storage=work / "ray", reuse=reuse)
            rows.append(("reuse workers" if reuse else "fresh worker", row))
    print(f"{'setting':15} {'trials':>6} {'epochs':>6} {'search s':>9} {'train s':>8} {'setup s':>8} "
          f"{'train CPU s':>11} {'overhead/trial s':>17} {'amortised/trial s':>18} {'outside training':>17}")
    for name, r in rows:
        print(f"{name:15} {r['trials']:6d} {r['epochs']:6d} {r['search_s']:9.1f} {r['train_s']:8.1f} "
              f"{r['setup_s']:8.2f} {r['train_cpu_s']:11.1f} {r['overhead_per_trial_s']:17.2f} "
              f"{r['amortised_per_trial_s']:18.2f} "
              f"{r['outside_training']:17.0%}")
    reuse = [r for n, r in rows if n == "reuse workers"]
    fresh = [r for n, r in rows if n == "fresh worker"]
    mean = lambda rs, k: sum(r[k] for r in rs) / len(rs)
    print(f"per-trial overhead, reuse vs fresh: {mean(reuse, 'overhead_per_trial_s'):.2f} s vs "
          f"{mean(fresh, 'overhead_per_trial_s'):.2f} s (ratio "
          f"{mean(fresh, 'overhead_per_trial_s') / max(mean(reuse, 'overhead_per_trial_s'), 1e-9):.1f}x); "
          f"target < 1.5 s: {'met' if mean(reuse, 'overhead_per_trial_s') < 1.5 else 'NOT met'}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
