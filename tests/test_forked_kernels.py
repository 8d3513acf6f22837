"""Kernels forked from the build's fork server behave as kernels jupyter_client starts itself."""
from __future__ import annotations

import os
import sys
import time

import pytest

import forked_kernels

MPLBACKEND_GIVEN = os.environ.get("MPLBACKEND")  # the user's own, if any
pytestmark = pytest.mark.skipif(not forked_kernels.available(), reason="kernels are forked only on Linux")

PROBE = """
import json, os, sys
print(json.dumps({"pid": os.getpid(), "group": os.getpgid(0), "cwd": os.getcwd(),
                  "marker": os.environ.get("FORK_TEST_MARKER"),
                  "forked": "forked_kernels" in sys.modules, "threads": __import__("torch").get_num_threads(),
                  "mpl": __import__("matplotlib").get_backend(), "main": __name__, "path": sys.path[:2],
                  "cwd_in_path": os.getcwd() in sys.path}))
"""


def _run(client, code: str, timeout: float = 60) -> tuple[str, dict]:
    """Execute ``code``; return (its printed output, the execute reply's content)."""
    out: list[str] = []
    reply = client.execute_interactive(code, timeout=timeout,
                                       output_hook=lambda m: out.append(m["content"].get("text", "")))
    return "".join(out), reply["content"]


@pytest.fixture()
def forked_kernel(tmp_path):
    from jupyter_client.manager import KernelManager

    # matplotlib: imported in the server, it must still draw inline; colorsys: a module nothing else imports
    forked_kernels.start_server(["torch", "matplotlib", "colorsys"])
    km = KernelManager(kernel_name="python3")
    forked_kernels.use_fork(km)
    km.start_kernel(env={**os.environ, "FORK_TEST_MARKER": "given", "OMP_NUM_THREADS": "1",
                         "PYTHONPATH": str(tmp_path / "lib")}, cwd=str(tmp_path))
    client = km.blocking_client()
    client.start_channels()
    client.wait_for_ready(timeout=120)
    yield km, client
    client.stop_channels()
    if km.has_kernel:
        km.shutdown_kernel(now=True)


def test_a_forked_kernel_has_the_servers_imports_and_its_own_process_environment_and_folder(forked_kernel, tmp_path):
    import json

    km, client = forked_kernel
    out, reply = _run(client, PROBE)
    assert reply["status"] == "ok", reply
    seen = json.loads(out)
    assert seen["forked"], "a kernel started the usual way would not have imported forked_kernels"
    assert seen["pid"] == km.provisioner.pid and seen["pid"] != os.getpid()
    assert seen["group"] == seen["pid"], "the kernel leads its own process group, as with start_new_session"
    assert seen["cwd"] == str(tmp_path) and seen["marker"] == "given"
    assert seen["threads"] == 1, "OMP_NUM_THREADS of the kernel's environment, not the server's"
    assert seen["mpl"] == forked_kernels.INLINE_BACKEND, "figures must show inline, as in a fresh kernel"
    assert os.environ.get("MPLBACKEND") == MPLBACKEND_GIVEN, "only the server's environment carries the setting"
    assert seen["main"] == "__main__"
    # as in a kernel started the usual way: PYTHONPATH first, and not the working directory
    assert seen["path"][0] == str(tmp_path / "lib") and not seen["cwd_in_path"]
    # a fresh namespace: nothing of the server's is bound in it
    out, reply = _run(client, "print(sorted(k for k in globals() if not k.startswith('_')))")
    assert "colorsys" not in out and "forked_kernels" not in out


def test_a_forked_kernel_can_be_interrupted_and_killed(forked_kernel):
    km, client = forked_kernel
    client.execute("import time; time.sleep(60)")
    time.sleep(1.0)
    km.interrupt_kernel()
    reply = client.get_shell_msg(timeout=20)
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
    out, reply = _run(client, "print(6 * 7)")
    assert out.strip() == "42", "the kernel goes on after an interrupt"

    pid = km.provisioner.pid
    km.shutdown_kernel(now=True)
    assert not km.is_alive()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_build_forks_its_kernels_where_it_can(monkeypatch, tmp_path):
    from jupyter_client.provisioning import LocalProvisioner

    import build

    chapter = build.find_chapters()[0]
    kernels = build.kernels_dir(tmp_path)
    env = build.ensure_kernel(tmp_path)
    kernel = build.WarmKernel(chapter, env, kernels)
    try:
        assert isinstance(kernel.km.provisioner, forked_kernels.ForkProvisioner)
    finally:
        kernel.shutdown()
    monkeypatch.setenv("LABKIT_FORK_KERNELS", "0")
    kernel = build.WarmKernel(chapter, env, kernels)
    try:
        assert type(kernel.km.provisioner) is LocalProvisioner
    finally:
        kernel.shutdown()


def test_a_kernel_that_cannot_be_forked_is_started_the_usual_way(monkeypatch, tmp_path, capsys):
    from jupyter_client.provisioning import LocalProvisioner

    import build

    async def broken_server(self, cmd, **kwargs):
        raise ConnectionRefusedError("the fork server is gone")

    monkeypatch.setattr(forked_kernels.ForkProvisioner, "launch_kernel", broken_server)
    kernel = build.WarmKernel(build.find_chapters()[0], build.ensure_kernel(tmp_path), build.kernels_dir(tmp_path))
    try:
        km = kernel.km
        assert type(km.provisioner) is LocalProvisioner and km.is_alive()
    finally:
        kernel.shutdown()
    assert "could not fork a kernel (ConnectionRefusedError: the fork server is gone)" in capsys.readouterr().out


BUILD_LIKE = """
import os, subprocess, sys, time
sys.path.insert(0, {repo!r})
import forked_kernels
from jupyter_client.manager import KernelManager

if __name__ == "__main__":  # a fork runs the main script again (multiprocessing's rule), as build.py's guard
    forked_kernels.start_server([])
    km = KernelManager(kernel_name="python3")
    forked_kernels.use_fork(km)
    km.start_kernel(env=dict(os.environ))
    client = km.blocking_client()
    client.start_channels()
    client.wait_for_ready(timeout=120)
    # a process the kernel starts (as chapter 4 starts Ray), which must end with it
    client.execute_interactive("import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', "
                               "'import time; time.sleep(600)']); print(p.pid)", timeout=60,
                               output_hook=lambda m: print(m["content"].get("text", "").strip() or "", end=""))
    print(" PIDS", km.provisioner.pid, flush=True)
    time.sleep(600)
"""


def test_a_forked_kernel_ends_when_the_process_that_started_it_is_killed(tmp_path):
    """A kernel forked from the server outlives neither the build nor its SIGKILL (the server alone would
    keep it: the kernels hold the server's alive pipe)."""
    import subprocess

    from build import REPO

    script = tmp_path / "build_like.py"
    script.write_text(BUILD_LIKE.format(repo=str(REPO)))
    starter = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        lines = iter(starter.stdout.readline, "")
        grandchild_pid, _, kernel_pid = next(line for line in lines if "PIDS" in line).split()
        grandchild_pid, kernel_pid = int(grandchild_pid), int(kernel_pid)
        assert forked_kernels._running(kernel_pid) and forked_kernels._running(grandchild_pid)
        starter.kill()
        starter.wait()
        deadline = time.monotonic() + 20
        while (forked_kernels._running(kernel_pid) or forked_kernels._running(grandchild_pid)) \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not forked_kernels._running(kernel_pid), "the kernel outlived the killed build"
        assert not forked_kernels._running(grandchild_pid), "what the kernel started outlived the killed build"
    finally:
        if starter.poll() is None:
            starter.kill()
