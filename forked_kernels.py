"""Jupyter kernels forked from one process that has already imported the chapters' libraries.

Every chapter runs in a kernel of its own, and a new kernel spends 4-13 s of CPU importing torch,
torchvision, scikit-learn, matplotlib and pandas before its first line runs (``bench/build.py --breakdown``:
start+imports). Seven chapters pay that seven times: on a 2-core machine, a fifth of a quick build. Here
the imports run once, in the fork server of the standard library's ``multiprocessing`` with those modules
preloaded, and each kernel is a fork of it: a new process with its own namespace, environment, working
directory and process group, in which ``import torch`` finds the module already loaded.

jupyter_client still manages each kernel. ``ForkProvisioner`` is its ``LocalProvisioner`` with only the
launch replaced (a fork instead of ``Popen``), so interrupting, killing and waiting work as for any local
kernel. The server imports but runs nothing: no torch thread pool exists yet when it forks.

Only on Linux: macOS forbids forking after some of its system libraries are loaded, and Windows has no
fork. Elsewhere ``available()`` is False and the build starts kernels the usual way.
"""
from __future__ import annotations

import gc
import multiprocessing
import os
import select
import signal
import sys
import threading
import time

from jupyter_client.provisioning import LocalProvisioner

# what ipykernel sets before a kernel's first import of matplotlib. The server imports matplotlib itself, so
# it starts with the same setting, or the kernels' figures would not show inline.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def available() -> bool:
    """Whether kernels are forked here: on Linux, unless LABKIT_FORK_KERNELS=0 (then each kernel imports
    for itself, as benchmarks compare)."""
    return (sys.platform.startswith("linux") and "forkserver" in multiprocessing.get_all_start_methods()
            and os.environ.get("LABKIT_FORK_KERNELS", "1") != "0")


def start_server(modules: list[str]) -> None:
    """Start the fork server now, importing ``modules`` in it (those that fail to import are skipped, as
    a kernel would meet the same error itself). Returns at once; the first fork waits for the imports.

    The server lives until this process exits. If it is already running, it stays as it is.
    """
    from multiprocessing import forkserver

    # A script run as `python build.py` is preloaded too: multiprocessing runs the main script again in every
    # fork (as __mp_main__), which costs nothing once its imports are loaded.
    main = sys.modules["__main__"]
    script = ([os.path.splitext(os.path.basename(main.__file__))[0]]
              if getattr(main, "__spec__", None) is None and getattr(main, "__file__", None) else [])
    forkserver.set_forkserver_preload([__name__, *script, "ipykernel.kernelapp", *modules])
    backend = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = backend or INLINE_BACKEND  # the server inherits this process's environment
    try:
        forkserver.ensure_running()
    finally:
        if backend is None:
            del os.environ["MPLBACKEND"]


def _run_kernel(argv: list[str], env: dict, cwd: str) -> None:
    """The forked process: become what ``Popen(argv, env=env, cwd=cwd, start_new_session=True)`` would
    have started, then run the kernel until it is shut down."""
    os.setsid()  # a process group of its own, as jupyter_client gives a kernel: signals reach its children
    _end_with(int(env["JPY_PARENT_PID"]))
    # what was inherited is the imported modules, alive for good: the kernel's garbage collector need not
    # scan them again and again (and scanning would copy the pages the fork shares)
    gc.freeze()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    threads = env.get("OMP_NUM_THREADS")
    if threads and "torch" in sys.modules:  # torch read the variable at import, in the server
        sys.modules["torch"].set_num_threads(int(threads))
    sys.argv = ["ipykernel_launcher", *argv[3:]] if argv[1:3] == ["-m", "ipykernel_launcher"] else list(argv)
    # ipykernel read JPY_PARENT_PID when the server imported it: say it again, as a kernel started the
    # usual way reads it (and does not print the note for kernels without a parent)
    sys.argv.append(f"--IPKernelApp.parent_handle={env['JPY_PARENT_PID']}")
    # sys.path as in a kernel started the usual way: the PYTHONPATH given first, and neither the working
    # directory nor the build script's folder (ipykernel_launcher removes what `python -m` put first)
    given = [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]
    sys.path[:] = given + [entry for entry in sys.path
                           if entry not in given and entry != "" and os.path.realpath(entry) != os.getcwd()]
    from ipykernel.kernelapp import IPKernelApp

    try:
        IPKernelApp.launch_instance(argv=sys.argv[1:])
    finally:
        import atexit

        atexit._run_exitfuncs()  # a multiprocessing child ends with os._exit, which skips these


def _end_with(pid: int) -> None:
    """Kill this kernel's process group (the kernel and what it started, Ray included) when process ``pid``
    ends, however it ends (a SIGKILL too).

    A kernel started the usual way does this itself: ipykernel exits when its parent process does. A fork's
    parent is the server, and the server lives as long as any process forked from it (each holds its
    "alive" pipe), so neither would ever end after the build was killed: the kernel watches the build."""
    try:
        handle = os.pidfd_open(pid)  # readable once the process has ended (Linux 5.3 and later)
    except ProcessLookupError:  # it has ended already
        os.killpg(0, signal.SIGKILL)
        return
    except (AttributeError, OSError):
        handle = None

    def watch() -> None:
        if handle is not None:
            select.select([handle], [], [])
        else:  # older kernels: poll, and a zombie has ended too
            while _running(pid):
                time.sleep(1.0)
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, name="end-with-build", daemon=True).start()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


class _ForkedProcess:
    """The part of ``subprocess.Popen`` that LocalProvisioner uses, over a multiprocessing.Process."""

    stdin = stdout = stderr = None

    def __init__(self, process: multiprocessing.Process):
        self._process = process
        self.pid = process.pid

    def poll(self) -> int | None:
        return None if self._process.is_alive() else self._process.exitcode

    def wait(self, timeout: float | None = None) -> int | None:
        self._process.join(timeout)
        return self._process.exitcode

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def kill(self) -> None:
        self._process.kill()

    def terminate(self) -> None:
        self._process.terminate()


class ForkProvisioner(LocalProvisioner):
    """jupyter_client's local provisioner, launching the kernel as a fork of the server."""

    async def launch_kernel(self, cmd: list[str], **kwargs):
        env = dict(kwargs.get("env") or os.environ)
        # as jupyter_client's launcher sets it; the forked kernel ends with this process (``_end_with``)
        env["JPY_PARENT_PID"] = str(os.getpid())
        cwd = str(kwargs.get("cwd") or os.getcwd())
        process = multiprocessing.get_context("forkserver").Process(
            target=_run_kernel, args=(list(cmd), env, cwd), name="kernel")
        process.start()
        self.process = _ForkedProcess(process)
        # its own process group, once it has called setsid (until then killpg fails and
        # LocalProvisioner signals the process alone)
        self.pid = self.pgid = process.pid
        self.cwd = cwd
        return self.connection_info


def use_fork(km) -> None:
    """Make the (not yet started) KernelManager ``km`` start its kernel as a fork of the server."""
    import uuid

    km.kernel_id = km.kernel_id or str(uuid.uuid4())  # what start_kernel would assign
    km.provisioner = ForkProvisioner(kernel_id=km.kernel_id, kernel_spec=km.kernel_spec, parent=km)
