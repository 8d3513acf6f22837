"""A side-by-side chapter's share of the CPU cores, which grows when the chapters beside it finish.

build.py runs some chapters side by side (01 to 03, then 06 and 07), each kernel with its share of the cores
(``OMP_NUM_THREADS``): oversubscribed torch threads spin and slow every chapter down. The chapters do not take
equally long, though: on a 2-core CPU chapter 07 went on alone, on one thread, for 90 s after chapter 06 had
finished. So build.py keeps each kernel's current share in the file that ``LABKIT_CPU_SHARE_FILE`` names, and
when a chapter finishes it raises the shares of those still running and sends their kernel processes SIGUSR1.

The handler runs in the kernel's main thread between two Python bytecodes, that is between two torch ops,
where changing torch's thread count is safe: the next parallel region uses the new count. A kernel that
build.py did not start (a student's Jupyter) has no share file and is left alone.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

SHARE_FILE_ENV = "LABKIT_CPU_SHARE_FILE"


def listening_marker(share_file) -> Path:
    """The file a kernel writes its process id to once its handler is installed: build.py signals only that
    process (before the handler, SIGUSR1's default action would end the kernel; and a signal to the kernel's
    process group would reach what the kernel started, which has no handler)."""
    share_file = Path(share_file)
    return share_file.with_name(share_file.name + ".listening")


def _positive_int(path) -> int | None:
    """The positive integer written in ``path``, or None if there is none (yet)."""
    try:
        value = int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None
    return value if value >= 1 else None


def listening_pid(share_file) -> int | None:
    """The process id of the kernel that follows ``share_file``, or None while none listens."""
    return _positive_int(listening_marker(share_file))


def read_share(share_file) -> int | None:
    """The number of threads in ``share_file``, or None if it cannot be read as a positive integer."""
    return _positive_int(share_file)


def apply_share(*_signal_frame) -> int | None:
    """Set torch's thread count to this kernel's share, if it has one; return the share."""
    share_file = os.environ.get(SHARE_FILE_ENV)
    threads = read_share(share_file) if share_file else None
    torch = sys.modules.get("torch")  # a signal handler must not import: the main thread may be importing
    if threads is not None and torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def follow_build_share() -> bool:
    """In a kernel that build.py runs beside others, take up a larger share of the cores whenever build.py
    signals one (``start_chapter`` calls it). Safe to call more than once; returns whether this kernel follows
    a share."""
    share_file = os.environ.get(SHARE_FILE_ENV)
    if not share_file or not hasattr(signal, "SIGUSR1") or threading.current_thread() is not threading.main_thread():
        return False
    import torch  # noqa: F401  loaded before the handler can run (every chapter's kernel imports it anyway)

    signal.signal(signal.SIGUSR1, apply_share)
    # marker first, then read: a share written before the marker existed is read here, one written after it
    # comes with a signal
    listening_marker(share_file).write_text(str(os.getpid()))
    apply_share()
    return True
