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
        assert listening_marker(share_file).exists()
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


class FakeKernelManager:
    def __init__(self):
        self.signals = []

    def signal_kernel(self, signum):
        self.signals.append(signum)


class FakeKernel:
    def __init__(self):
        self.km = FakeKernelManager()


def test_the_build_gives_a_finished_chapters_cores_to_those_still_running(tmp_path, monkeypatch):
    pool = build.KernelPool({}, tmp_path / "kernels", tmp_path / "shares")
    monkeypatch.setattr(pool, "cores", 4)
    chapters = {c.number: c for c in build.find_chapters()}
    step = [chapters["01"], chapters["02"], chapters["03"]]
    envs = {c.id: pool._share_env(c, len(step)) for c in step}
    assert {env["OMP_NUM_THREADS"] for env in envs.values()} == {"1"}  # 4 cores // 3 chapters
    kernels = {c.id: FakeKernel() for c in step}
    listening_marker(envs["02_model1"][SHARE_FILE_ENV]).touch()
    listening_marker(envs["03_model2"][SHARE_FILE_ENV]).touch()

    del kernels["01_data"]  # 01 finished: two chapters share four cores
    pool.share_cores(kernels)
    assert [read_share(envs[c][SHARE_FILE_ENV]) for c in ("02_model1", "03_model2")] == [2, 2]
    assert kernels["03_model2"].km.signals == [signal.SIGUSR1]

    del kernels["02_model1"]  # then 02: chapter 03 has them all
    pool.share_cores(kernels)
    assert read_share(envs["03_model2"][SHARE_FILE_ENV]) == 4
    assert kernels["03_model2"].km.signals == [signal.SIGUSR1] * 2
    pool.share_cores(kernels)  # nothing changed: no signal
    assert kernels["03_model2"].km.signals == [signal.SIGUSR1] * 2


def test_a_kernel_not_listening_yet_is_not_signalled_but_reads_its_share_later(tmp_path):
    pool = build.KernelPool({}, tmp_path / "kernels", tmp_path / "shares")
    pool.cores = 2
    chapters = {c.number: c for c in build.find_chapters()}
    env = pool._share_env(chapters["07"], 2)
    kernel = FakeKernel()
    pool.share_cores({"07_submission": kernel})
    assert kernel.km.signals == []  # SIGUSR1 would end a kernel that has no handler yet
    assert read_share(env[SHARE_FILE_ENV]) == 2
