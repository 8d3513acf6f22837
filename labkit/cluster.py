"""Ray: start it on this machine, or join a running cluster, and check a cluster before a build uses it.

Ray 2.59 and later turn on token authentication for clusters started with ``ray start``. ``ray.init``
enables the token on its own only for a cluster it finds itself; given an explicit address it connects
without one and then retries for about a minute ("Authentication token is missing or incorrect").
``init_ray`` does what ``ray start`` does: when ``RAY_AUTH_MODE`` is unset and a token is on this machine
(``RAY_AUTH_TOKEN``, the file at ``RAY_AUTH_TOKEN_PATH``, or ``~/.ray/auth_token``), it turns token mode on
before joining. ``check_cluster`` joins in a child process, counts the CPUs and leaves, and fails within
seconds, in one line that names the fix.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

AUTH_MODE = "RAY_AUTH_MODE"
# Ray's own lines when a client has no token or the wrong one (it then retries for about a minute)
AUTH_FAILURE = ("Authentication token is missing or incorrect", "no authentication token was found",
                "authentication token is invalid")
TOKEN_HELP = ("copy the cluster's token (on its head node: ray get-auth-token) into ~/.ray/auth_token, "
              "or set RAY_AUTH_TOKEN=<token> or RAY_AUTH_TOKEN_PATH=<file>")


class ClusterError(RuntimeError):
    """A Ray cluster cannot be reached or joined; the message is one line naming the address and the fix."""


def token_available() -> bool:
    """Whether Ray would find an authentication token here (the places Ray's own token loader reads)."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token"
    return Path(path).expanduser().is_file()


def enable_token_auth_if_available() -> bool:
    """Turn on Ray's token mode when the user has not chosen a mode and a token is here; True if it is on.

    An explicit ``RAY_AUTH_MODE`` (``token`` or ``disabled``) is always respected.
    """
    mode = os.environ.get(AUTH_MODE)
    if mode is not None:
        return mode.lower() == "token"
    if not token_available():
        return False
    os.environ[AUTH_MODE] = "token"  # child processes (Ray workers, Tune trials) inherit it
    try:  # Ray reads its config once per process: refresh it if ray's core is already loaded
        from ray._raylet import Config

        Config.initialize("")
    except (ImportError, AttributeError):
        pass
    return True


def init_ray(address: str | None = None) -> dict:
    """Start Ray on this machine (all its CPUs, no dashboard, quiet), or join the cluster at ``address``.

    Returns the cluster's resources, e.g. ``{"CPU": 2.0, ...}``. Calling it again is harmless.
    """
    import ray

    if not ray.is_initialized():
        quiet = {"log_to_driver": False, "ignore_reinit_error": True, "configure_logging": True,
                 "logging_level": logging.ERROR}
        if address:
            enable_token_auth_if_available()
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, **quiet)
    return {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU", "memory")}


def shutdown_ray() -> None:
    """Stop the local Ray workers (or leave the cluster) before the kernel exits."""
    import ray

    ray.shutdown()


def _host_port(address: str) -> tuple[str, int]:
    address = address.removeprefix("ray://")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--ray-address {address!r} is not HOST:PORT: give the address `ray start --head` "
                           "printed, e.g. 127.0.0.1:6379")
    return host, int(port)


# The child joins, prints the resources as JSON on its last line, and leaves.
_PROBE = ("import json, sys; from labkit.cluster import init_ray, shutdown_ray; "
          "r = init_ray(sys.argv[1]); shutdown_ray(); print(json.dumps(r))")


def check_cluster(address: str, timeout: float = 60.0) -> dict:
    """Join the Ray cluster at ``address`` in a child process, count its resources, leave; return them.

    Raises ClusterError, one line, within seconds when nothing listens there or the token is refused
    (instead of Ray's minute of retries), and after ``timeout`` seconds otherwise.
    """
    host, port = _host_port(address)
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        raise ClusterError(f"no Ray cluster answers at {address} ({exc.strerror or exc}): start one there with "
                           f"`ray start --head --port={port}`, or fix --ray-address") from None
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen([sys.executable, "-c", _PROBE, address], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(child.stdout), daemon=True)  # Ray's output, as it comes
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while child.poll() is None:
            if any(marker.lower() in line.lower() for line in list(lines) for marker in AUTH_FAILURE):
                mode = os.environ.get(AUTH_MODE)
                why = (f"RAY_AUTH_MODE={mode} is set here" if mode and mode.lower() != "token"
                       else "this machine's token is not the cluster's" if token_available()
                       else "no token was found on this machine")
                raise ClusterError(f"the Ray cluster at {address} refused to authenticate ({why}): {TOKEN_HELP}")
            if time.monotonic() > deadline:
                raise ClusterError(f"the Ray cluster at {address} did not let this machine join within "
                                   f"{timeout:.0f} s: check `ray status --address={address}` on its head node")
            time.sleep(0.2)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        reader.join(timeout=5)
    if child.returncode != 0:
        last = next((line for line in reversed(lines) if line.strip()), "no output")
        raise ClusterError(f"cannot join the Ray cluster at {address}: {last.strip()[:300]}")
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise ClusterError(f"cannot join the Ray cluster at {address}: unexpected answer {lines[-1:]}") from None
