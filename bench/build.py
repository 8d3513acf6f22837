"""Whole-build time per profile against its target, with the time of each chapter.

    python bench/build.py                        # quick and standard, fresh output folders
    python bench/build.py --profiles quick

Each build runs as a student runs it (python build.py --team Bench_Team --profile P) into a temporary
output folder, with the stub cache of this repo (made once per profile and reused, as for a student's
second build). Prints each chapter's seconds (from OUT/chapters/timings.json), the total wall time, and
the ratio to the profile's target: quick 120 s, standard 600 s on a 2-core CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = {"quick": 120, "standard": 600}


def time_build(profile: str) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(REPO / "build.py"), "--team", "Bench_Team",
                                 "--profile", profile, "--out", str(out)], capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(f"{profile} build failed:\n{result.stderr[-2000:]}")
        return seconds, json.loads((out / "chapters" / "timings.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", nargs="+", default=["quick", "standard"], choices=list(TARGET_SECONDS))
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    for profile in args.profiles:
        total, chapters = time_build(profile)
        print(f"\n{profile}: {total:.0f} s in all, target {TARGET_SECONDS[profile]} s "
              f"(ratio {total / TARGET_SECONDS[profile]:.2f})")
        for chapter, seconds in chapters.items():
            print(f"  {chapter:<18} {seconds:6.1f} s")


if __name__ == "__main__":
    main()
