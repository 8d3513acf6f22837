"""Where a chapter's time goes: named phases, written to ``run/timing/<chapter>.json``.

    timer = PhaseTimer("03_model2", run_dir)      # right after the chapter's imports
    with timer.phase("data"):
        ...
    with timer.phase("training"):
        ...

Phases with the same name add up (e.g. "evaluation" around several calls). The file is rewritten after
every phase, so a chapter that fails still leaves what it measured. Besides the phases it holds
``before_timer``, the seconds from the process start to the timer (kernel start and imports, when the
timer is made in the cell after the imports; build.py starts a kernel while the step before runs, so this
includes waiting for the chapter's turn), ``before_timer_cpu``, the CPU seconds the kernel spent until then
(what starting and importing cost; a kernel that build.py forked from its fork server counts from the
fork, the server's imports being done once for all), and ``unaccounted``, the time since the timer that no
phase covers. ``bench/build.py --breakdown RUN_DIR`` prints a table of all chapters' files.
Wall and CPU seconds are both kept: on a shared machine the CPU time says what an idle one would take.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

# the phase names chapters use, in the order bench/build.py shows them (others follow)
PHASES = ("imports", "data", "features", "training", "tuning", "evaluation", "captum", "figures")


def process_age_seconds() -> float | None:
    """Seconds since this process started (Linux /proc), or None where that cannot be read."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        return max(0.0, time.time() - (boot + start_ticks / os.sysconf("SC_CLK_TCK")))
    except (OSError, ValueError, IndexError, StopIteration):
        return None


class PhaseTimer:
    """Adds up wall and CPU seconds per named phase of one chapter and saves them as JSON."""

    def __init__(self, chapter: str, run_dir=None):
        self.chapter = chapter
        from labkit.artifacts import RunDir

        root = run_dir.root if isinstance(run_dir, RunDir) else run_dir  # a RunDir or a path
        self.path = Path(root) / "timing" / f"{chapter}.json" if root else None
        self.before_timer = process_age_seconds()
        self.before_timer_cpu = time.process_time()
        self.started = time.perf_counter()
        self.phases: dict[str, dict] = {}

    @contextlib.contextmanager
    def phase(self, name: str):
        from labkit import progress

        progress.set_phase(name)  # build.py shows it while the chapter runs
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            entry = self.phases.setdefault(name, {"seconds": 0.0, "cpu_seconds": 0.0, "calls": 0})
            entry["seconds"] += time.perf_counter() - wall
            entry["cpu_seconds"] += time.process_time() - cpu
            entry["calls"] += 1
            self.save()

    def as_dict(self) -> dict:
        since = time.perf_counter() - self.started
        covered = sum(p["seconds"] for p in self.phases.values())
        return {"chapter": self.chapter, "before_timer": self.before_timer,
                "before_timer_cpu": self.before_timer_cpu, "since_timer": since,
                "unaccounted": max(0.0, since - covered), "phases": self.phases}

    def save(self) -> None:
        if self.path is None:
            return
        from labkit.artifacts import atomic_write_text

        atomic_write_text(self.path, json.dumps(self.as_dict(), indent=1))


def read_breakdown(run_dir) -> dict[str, dict]:
    """{chapter: its saved timing} for every ``timing/*.json`` in the run folder, in chapter order."""
    folder = Path(run_dir) / "timing"
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
