"""A side-by-side chapter takes up the cores of a neighbour that has finished (labkit.cpu_share, build.py)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import build
from labkit.cpu_share import SHARE_FILE_ENV, listening_marker, read_share

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs POSIX signals")


def test_a_kernel_raises_its_thread_count_when_signalled(tmp_path):
    share_file = tmp_path / "07_submission"
    share_file.write_text("1")
    # a stand-in for a chapter's kernel: it follows its share, then works in Python until its count grows
    kernel = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import time, torch
            from labkit.cpu_share import follow_build_share
            print(follow_build_share(), torch.get_num_threads(), flush=True)
            deadline = time.time() + 60
            while torch.get_num_threads() == 1 and time.time() < deadline:
                sum(range(1000))
            print(torch.get_num_threads(), flush=True)
        """)],
        env={**os.environ, SHARE_FILE_ENV: str(share_file), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE, text=True)
    try:
        assert kernel.stdout.readline().split() == ["True", "1"]
        assert listening_marker(share_file).read_text() == str(kernel.pid)  # whom build.py may signal
        share_file.write_text("3")
        kernel.send_signal(signal.SIGUSR1)
        assert kernel.stdout.readline().strip() == "3"
    finally:
        kernel.kill()
        kernel.wait()


def test_without_a_share_file_a_kernel_is_left_alone(monkeypatch):
    from labkit.cpu_share import follow_build_share

    monkeypatch.delenv(SHARE_FILE_ENV, raising=False)
    before = signal.getsignal(signal.SIGUSR1)
    assert follow_build_share() is False
    assert signal.getsignal(signal.SIGUSR1) is before  # a student's kernel keeps its own handling


def listening_stand_in(share_file):
    """A process that has installed the kernel's handler (it records the signal and ignores it), written to
    ``share_file``'s marker as a listening kernel writes its own process id."""
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import signal, sys, time
            signal.signal(signal.SIGUSR1, lambda *_: print("signalled", flush=True))
            print("ready", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    listening_marker(share_file).write_text(str(process.pid))
    return process


def test_the_build_gives_a_finished_chapters_cores_to_those_still_running(tmp_path, monkeypatch):
    pool = build.KernelPool({}, tmp_path / "kernels", tmp_path / "shares")
    monkeypatch.setattr(pool, "cores", 4)
    chapters = {c.number: c for c in build.find_chapters()}
    step = [chapters["01"], chapters["02"], chapters["03"]]
    envs = {c.id: pool._share_env(c, len(step)) for c in step}
    assert {env["OMP_NUM_THREADS"] for env in envs.values()} == {"1"}  # 4 cores // 3 chapters
    share = {c.id: envs[c.id][SHARE_FILE_ENV] for c in step}
    kernel3 = listening_stand_in(share["03_model2"])  # 02's kernel does not listen yet
    try:
        pool.share_cores(["02_model1", "03_model2"])  # 01 finished: two chapters share four cores
        assert [read_share(share[c]) for c in ("02_model1", "03_model2")] == [2, 2]
        assert kernel3.stdout.readline().strip() == "signalled"

        pool.share_cores(["03_model2"])  # then 02: chapter 03 has them all
        assert read_share(share["03_model2"]) == 4
        assert kernel3.stdout.readline().strip() == "signalled"
        pool.share_cores(["03_model2"])  # nothing changed: no signal
        kernel3.terminate()
        assert kernel3.stdout.read() == ""
    finally:
        kernel3.kill()
        kernel3.wait()


def test_a_kernel_not_listening_yet_is_not_signalled_but_reads_its_share_later(tmp_path):
    pool = build.KernelPool({}, tmp_path / "kernels", tmp_path / "shares")
    pool.cores = 2
    chapters = {c.number: c for c in build.find_chapters()}
    share_file = pool._share_env(chapters["07"], 2)[SHARE_FILE_ENV]
    pool.share_cores(["07_submission"])  # no marker: SIGUSR1 would end a kernel that has no handler yet
    assert read_share(share_file) == 2
    assert not listening_marker(share_file).exists()
