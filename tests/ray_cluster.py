"""A real local Ray cluster for tests, started the way a user would: `ray start --head` with a token.

The cluster gets its own HOME (holding ~/.ray/auth_token, made with `ray get-auth-token --generate`), its own
--temp-dir and a free port. `ray start --block` runs in its own process group; stopping it stops exactly the
processes it started (plain `ray stop` would stop every Ray on the machine, other people's too).
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(*args) -> list[str]:
    """The `ray` command of this interpreter's installation (not whichever is first on PATH)."""
    script = Path(sys.executable).with_name("ray")
    return [str(script) if script.is_file() else "ray", *args]


@contextlib.contextmanager
def local_ray_cluster(root: Path):
    """Yields (address, home): home holds .ray/auth_token, the token the cluster requires."""
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    # short temp dir: Ray's socket paths must stay under the 107-character limit of AF_UNIX
    temp = Path(os.environ.get("TMPDIR", "/tmp")) / f"rt{os.getpid()}-{free_port()}"
    env = {**os.environ, "HOME": str(home)}
    env.pop("RAY_AUTH_MODE", None)
    subprocess.run(_ray("get-auth-token", "--generate"), env=env, check=True, capture_output=True, timeout=60)
    assert (home / ".ray" / "auth_token").is_file()
    port = free_port()
    head = subprocess.Popen(
        _ray("start", "--head", f"--port={port}", f"--temp-dir={temp}", "--num-cpus=1",
             "--include-dashboard=false", "--disable-usage-stats", "--block"),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:  # ready once the GCS accepts connections
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"`ray start --head --port={port}` did not come up (exit {head.poll()})")
            time.sleep(0.5)
        time.sleep(2)  # the raylet registers just after the GCS opens its port
        yield address, home
    finally:
        # --block: on SIGTERM `ray start` stops the node it started; then make sure of the whole group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(timeout=5)  # it may take longer; nothing of it needs to survive, so kill what is left
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)
        _kill_leftovers(str(temp))
        subprocess.run(["rm", "-rf", str(temp)], check=False)


def _kill_leftovers(marker: str) -> None:
    """Kill, by pid, any process of this cluster still alive (its command line names the temp dir)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if marker in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore"):
                os.kill(int(proc.name), signal.SIGKILL)
