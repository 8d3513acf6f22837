"""What a running chapter is doing, shown live by build.py: one line per chapter that runs.

A chapter's kernel is a process of its own, so the two sides talk through a small status file per chapter,
``run/progress/<chapter>.json``, written atomically by the kernel and read by build.py twice a second:

    {"phase": "training", "subject": "model1", "unit": "epoch", "done": 3, "total": 12, "running": true}

The kernel side is fed by what already marks the work: ``start_chapter`` calls ``start``; each
``ctx.timer.phase(...)`` sets the phase; ``labkit.train.fit`` reports its epochs and ``labkit.tune``'s Ray
Tune callback its finished trials (``step``). Outside a chapter that build.py runs (a test, a Ray Tune
trial's own process, a student's notebook) nothing is started and every call does nothing.

The build side (``ProgressBoard``) shows, per running chapter, its cells done of its total (counted by
nbclient's per-cell hook in build.py) and the phase, as tqdm bars in a terminal and as plain lines, printed
when the phase changes, when the output is a file or a pipe (a CI log).
"""
from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

PROGRESS_DIR = "progress"
_state: dict = {}  # this kernel's status: its file and what it says


def status_path(run_root, chapter: str) -> Path:
    return Path(run_root) / PROGRESS_DIR / f"{chapter}.json"


# -- the kernel's side -----------------------------------------------------------------------------
def _write() -> None:
    from labkit.artifacts import atomic_write_text

    try:
        atomic_write_text(_state["path"], json.dumps(_state["status"]))
    except OSError:
        pass  # progress is for the eyes: a full disk must not fail the chapter here


def start(run_root, chapter: str) -> None:
    """Report this process's progress as ``chapter``'s, from now on."""
    _state.update(path=status_path(run_root, chapter), status={"phase": ""})
    _write()


def set_phase(name: str) -> None:
    """The phase the chapter is in now (``PhaseTimer.phase`` calls it); a step of the one before is cleared."""
    if _state:
        _state["status"] = {"phase": name}
        _write()


def step(subject: str, unit: str, done: int, total: int, running: bool = True) -> None:
    """Where the work of the current phase is: ``running`` (``unit`` ``done`` of ``total`` is under way, as an
    epoch) or not (``done`` of ``total`` have finished, as trials that run side by side)."""
    if _state:
        _state["status"] = {"phase": _state["status"].get("phase", ""), "subject": subject, "unit": unit,
                            "done": int(done), "total": int(total), "running": running}
        _write()


def describe(status: dict | None) -> str:
    """'training model1: epoch 3/12', 'tuning model2: 4/8 trials done', 'captum', or '' (not started)."""
    if not status:
        return ""
    phase, subject = status.get("phase", ""), status.get("subject")
    if not subject:
        return phase
    label = subject if phase and phase in subject else f"{phase} {subject}".strip()
    done, total, unit = status["done"], status["total"], status["unit"]
    where = f"{unit} {done}/{total}" if status.get("running") else f"{done}/{total} {unit}s done"
    return f"{label}: {where}"


def read(path) -> dict | None:
    """A status file's contents, or None while there is none (or it cannot be read)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


# -- build.py's side -------------------------------------------------------------------------------
class ProgressBoard:
    """The progress of the chapters running now: tqdm bars in a terminal, plain lines elsewhere.

        with ProgressBoard() as board:
            board.add("02_model1", status_file, cells=31)
            board.cell_done("02_model1")          # from nbclient's hook, any thread
            board.finish("02_model1", "  [2/7] 02_model1   40.1 s")
    """

    def __init__(self, stream=None, live: bool | None = None, interval: float = 0.5):
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.interval = interval
        self._lock = threading.Lock()
        self._chapters: dict[str, dict] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self) -> ProgressBoard:  # noqa: PYI034  a final class: Self adds nothing
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            for chapter in list(self._chapters):
                self._close(chapter)

    def add(self, chapter: str, status_file, cells: int) -> None:
        status_file = Path(status_file)
        status_file.unlink(missing_ok=True)  # an earlier run's last words are not this run's
        entry = {"file": status_file, "cells": cells, "done": 0, "shown": None, "started": time.perf_counter(),
                 "bar": None, "line": 0}
        with self._lock:
            if self.live:
                from tqdm import tqdm

                taken = {other["line"] for other in self._chapters.values()}
                entry["line"] = min(set(range(len(taken) + 1)) - taken)  # the first free line
                entry["bar"] = tqdm(total=cells, desc=f"  {chapter:<18}", unit="cell", leave=False,
                                    file=self.stream, dynamic_ncols=True, position=entry["line"],
                                    bar_format="{desc} {bar:16} {n_fmt}/{total_fmt} cells {elapsed}{postfix}")
            else:
                self._print(f"  {chapter:<18} started: {cells} cells")
            self._chapters[chapter] = entry

    def cell_done(self, chapter: str) -> None:
        with self._lock:
            if chapter in self._chapters:
                self._chapters[chapter]["done"] += 1

    def finish(self, chapter: str, line: str | None = None) -> None:
        """The chapter has ended: its bar goes, and ``line`` (its result) is printed in its place."""
        with self._lock:
            self._close(chapter)
            if line:
                self._print(line)

    def _close(self, chapter: str) -> None:
        entry = self._chapters.pop(chapter, None)
        if entry is not None and entry["bar"] is not None:
            entry["bar"].close()
            if entry["line"]:  # tqdm leaves the cursor at the end of a lower bar's cleared line
                self.stream.write("\r")
                self.stream.flush()

    def _print(self, line: str) -> None:
        if self.live:
            from tqdm import tqdm

            tqdm.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def refresh(self) -> None:
        """Read every running chapter's status once and show what changed."""
        with self._lock:
            for chapter, entry in self._chapters.items():
                doing = describe(read(entry["file"]))
                if entry["bar"] is not None:
                    bar = entry["bar"]
                    bar.n = entry["done"]
                    bar.set_postfix_str(doing, refresh=False)
                    bar.refresh()
                elif doing and doing != entry["shown"]:
                    self._print(f"  {chapter:<18} cell {entry['done']}/{entry['cells']}  {doing}")
                entry["shown"] = doing

    def _follow(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()
