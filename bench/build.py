"""Whole-build time per profile against its target, with the time of each chapter.

    python bench/build.py                        # quick and standard, fresh output folders
    python bench/build.py --profiles quick
    python bench/build.py --breakdown build/run     # only print the phases of an existing build
    python bench/build.py --profiles quick --compare-kernels --rounds 3
    python bench/build.py --profiles standard --against fc86e4f --rounds 2   # this tree against a commit
    python bench/build.py --profiles standard --against fc86e4f --build-args "--weights W.pth"
    python bench/build.py --profiles standard --rebuild     # a build, the same again, again after an edit

Each build runs as a student runs it (python build.py --team Bench_Team --profile P) into a temporary
output folder, with the stub cache of this repo (made once per profile and reused, as for a student's
second build). Prints each chapter's seconds (from OUT/chapters/timings.json), the total wall time, and
the ratio to the profile's target on a 2-core CPU: quick 60 s; standard 240 s with bf16, 420 s with
LABKIT_FP32=1 (float32, as a CPU without bf16 trains). Chapters that record their
phases with labkit.timing.PhaseTimer (run/timing/<chapter>.json) get a per-phase breakdown: kernel start
and imports, data, features, training, tuning, evaluation/TTA, Captum, figures, and what no phase covers.
LABKIT_FP32=1 in the environment makes a machine with bfloat16 build as one without would.

--compare-kernels builds each profile alternately with forked kernels (build.py's default on Linux) and with
kernels that each import their libraries (LABKIT_FORK_KERNELS=0), --rounds times, and prints the ratio of
the medians.

--rebuild times what a student's second and third commands cost, in a copy of this working tree: a build
into a new output folder, the same command again (nothing changed: re-assembly only), and the same command
after a markdown cell is added to chapter 06 (only 06 re-runs; target 40 s), printing which chapters each ran.

--against REF builds a git worktree of commit REF (in a temporary folder, with its own stub made before any
build is timed) and this working tree alternately, --rounds times each, and prints both medians and their
ratio: the side-by-side measure of a change to the build's speed. --build-args passes more options to every
build, e.g. a weights file, with which an offline stub build fine-tunes model2 as a real one does (frozen
early stages) instead of training a random backbone whole.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TARGET_SECONDS = {"quick": 60, "standard": 240}
TARGET_SECONDS_FP32 = {"quick": 60, "standard": 420}  # with LABKIT_FP32=1
REBUILD_TARGET_SECONDS = 40  # after a markdown edit in chapter 06


def target_seconds(profile: str) -> int:
    return (TARGET_SECONDS_FP32 if os.environ.get("LABKIT_FP32") == "1" else TARGET_SECONDS)[profile]


def print_breakdown(run_dir) -> None:
    """One row per chapter with a timing file: seconds per phase (CPU seconds in brackets). A warm kernel
    (build.py starts it while the step before runs) shows its wait in start+imports' wall seconds; the CPU
    seconds beside them are what starting and importing cost (for a forked kernel, from the fork on)."""
    from labkit.timing import PHASES, read_breakdown

    chapters = read_breakdown(run_dir)
    if not chapters:
        print(f"  (no phase timings in {Path(run_dir) / 'timing'}: the chapters do not record them yet)")
        return
    seen = {name for saved in chapters.values() for name in saved["phases"]}
    columns = [p for p in PHASES if p in seen] + sorted(seen - set(PHASES))
    print("  " + f"{'chapter':<16}{'start+imports':>16}" + "".join(f"{c:>16}" for c in columns)
          + f"{'unaccounted':>13}")
    for chapter, saved in chapters.items():
        start, start_cpu = saved.get("before_timer"), saved.get("before_timer_cpu")
        start_cell = "" if start is None else f"{start:.1f}" + ("" if start_cpu is None else f" ({start_cpu:5.1f})")
        cells = [f"{saved['phases'][c]['seconds']:7.1f} ({saved['phases'][c]['cpu_seconds']:5.1f})"
                 if c in saved["phases"] else "" for c in columns]
        print("  " + f"{chapter:<16}{start_cell:>16}"
              + "".join(f"{c:>16}" for c in cells) + f"{saved['unaccounted']:13.1f}")


def run_build(profile: str, out: Path, env: dict | None = None, repo: Path = REPO,
              build_args: tuple = ()) -> tuple[float, str]:
    """(wall seconds, printed output) of one ``build.py`` run as a student runs it."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, str(repo / "build.py"), "--team", "Bench_Team",
                             "--profile", profile, "--out", str(out), *build_args], capture_output=True, text=True,
                            cwd=repo, env={**os.environ, **(env or {}), "PYTHONPATH": str(repo)},
                            check=False)  # the exit code is read below
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{profile} build failed:\n{result.stderr[-2000:]}")
    return seconds, result.stdout


def time_build(profile: str, env: dict | None = None, repo: Path = REPO, build_args: tuple = ()) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        seconds, _ = run_build(profile, out, env, repo, build_args)
        print_breakdown(out / "run")
        return seconds, json.loads((out / "chapters" / "timings.json").read_text())


def time_rebuilds(profile: str, build_args: tuple = ()) -> None:
    """A build, the same command again, and again after a markdown edit in chapter 06, in a copy of this tree."""
    import shutil

    with tempfile.TemporaryDirectory() as tmp:
        tree, out = Path(tmp) / "tree", Path(tmp) / "out"
        shutil.copytree(REPO, tree, ignore=shutil.ignore_patterns(".git", "build", ".cache", "__pycache__",
                                                                  "*.egg-info"))
        subprocess.run([sys.executable, "-c", MAKE_STUB, profile], cwd=tree, check=True,
                       env={**os.environ, "PYTHONPATH": str(tree)})
        rows = []
        for what in ("first build", "the same command, nothing changed", "after a markdown edit in chapter 06"):
            if what.startswith("after"):
                script = tree / "chapters" / "06_interpretation.py"
                script.write_text(script.read_text() + "\n# %% [markdown]\n# One more remark.\n")
            print(f"\n{profile}, {what}:")
            seconds, printed = run_build(profile, out, repo=tree, build_args=build_args)
            ran = [line.split()[1] for line in printed.splitlines() if line.lstrip().startswith("[")]
            rows.append((what, seconds, ran))
            print(f"  {seconds:.0f} s; chapters run: {', '.join(ran) or 'none'}")
    print(f"\n{profile} rebuilds (target after the edit: {REBUILD_TARGET_SECONDS} s):")
    for what, seconds, ran in rows:
        print(f"  {what:<40} {seconds:6.0f} s   ran {len(ran)} chapter(s)")


KERNEL_VARIANTS = {"forked kernels": {"LABKIT_FORK_KERNELS": "1"},
                   "each kernel imports": {"LABKIT_FORK_KERNELS": "0"}}


def compare_kernels(profile: str, rounds: int) -> None:
    """Both kernel variants, alternately (so a machine that slows down slows both), then the medians' ratio."""
    import statistics

    seconds: dict[str, list[float]] = {name: [] for name in KERNEL_VARIANTS}
    for round_ in range(rounds):
        for name, env in KERNEL_VARIANTS.items():
            print(f"\n{profile}, {name}, round {round_ + 1}/{rounds}:")
            total, _ = time_build(profile, env)
            seconds[name].append(total)
            print(f"  {total:.0f} s")
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"\n{profile} build, median of {rounds} (target {target_seconds(profile)} s):")
    for name, values in seconds.items():
        print(f"  {name:<22} {medians[name]:6.0f} s   ({', '.join(f'{v:.0f}' for v in values)})")
    forked, plain = medians["forked kernels"], medians["each kernel imports"]
    print(f"  forked kernels take x{forked / plain:.2f} the time")


# Makes a checkout's stub with its own generator and sizes, untimed, as build.py would (seed 0)
MAKE_STUB = ("import sys, data_stub\nfrom labkit.profiles import get_profile\np = get_profile(sys.argv[1])\n"
             "data_stub.make_stub(f'.cache/stub/{p.name}-seed0', n_train=p.stub_train, n_test=p.stub_test, seed=0)")


def compare_against(ref: str, profile: str, rounds: int, build_args: tuple = ()) -> None:
    """This working tree against commit ``ref``, alternately (a machine that slows down slows both)."""
    import statistics

    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "ref"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(other), ref], check=True,
                       capture_output=True)
        try:
            trees = {f"this tree ({REPO.name})": REPO, f"{ref}": other}
            for tree in trees.values():
                subprocess.run([sys.executable, "-c", MAKE_STUB, profile], cwd=tree, check=True,
                               env={**os.environ, "PYTHONPATH": str(tree)})
            seconds: dict[str, list[float]] = {name: [] for name in trees}
            for round_ in range(rounds):
                for name, tree in trees.items():
                    print(f"\n{profile}, {name}, round {round_ + 1}/{rounds}:")
                    total, _ = time_build(profile, repo=tree, build_args=build_args)
                    seconds[name].append(total)
                    print(f"  {total:.0f} s")
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(other)], check=False)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"\n{profile} build, median of {rounds}:")
    for name, values in seconds.items():
        print(f"  {name:<30} {medians[name]:6.0f} s   ({', '.join(f'{v:.0f}' for v in values)})")
    mine, theirs = medians[next(iter(trees))], medians[ref]
    print(f"  this tree takes x{mine / theirs:.2f} the time of {ref}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", nargs="+", default=["quick", "standard"], choices=list(TARGET_SECONDS))
    parser.add_argument("--compare-kernels", action="store_true",
                        help="build with forked kernels and without, alternately, and print the ratio")
    parser.add_argument("--against", metavar="REF", help="build commit REF and this tree alternately, and "
                        "print the ratio")
    parser.add_argument("--rebuild", action="store_true",
                        help="time a build, an unchanged rebuild and a rebuild after a markdown edit in chapter 06")
    parser.add_argument("--build-args", default="", help="more options for every build (with --against or "
                        "alone), e.g. \"--weights W.pth\"")
    parser.add_argument("--rounds", type=int, default=1,
                        help="builds per variant with --compare-kernels or --against")
    parser.add_argument("--breakdown", metavar="RUN_DIR", help="print the phase timings of a finished build's "
                        "run folder and exit")
    args = parser.parse_args()
    if args.breakdown:
        print_breakdown(args.breakdown)
        return
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    build_args = tuple(shlex.split(args.build_args))
    if args.against:
        for profile in args.profiles:
            compare_against(args.against, profile, args.rounds, build_args)
        return
    if args.rebuild:
        for profile in args.profiles:
            time_rebuilds(profile, build_args)
        return
    if args.compare_kernels:
        for profile in args.profiles:
            compare_kernels(profile, args.rounds)
        return
    for profile in args.profiles:
        total, chapters = time_build(profile, build_args=build_args)
        print(f"\n{profile}: {total:.0f} s in all, target {target_seconds(profile)} s "
              f"(ratio {total / target_seconds(profile):.2f})")
        for chapter, seconds in chapters.items():
            print(f"  {chapter:<18} {seconds:6.1f} s")


if __name__ == "__main__":
    main()
