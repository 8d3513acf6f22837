"""labkit.cluster against a real `ray start` cluster with token authentication (Ray 2.59+)."""
from __future__ import annotations

import time

import pytest
from ray_cluster import free_port

from labkit.cluster import ClusterError, check_cluster

pytestmark = pytest.mark.slow


def test_joins_a_token_cluster_with_nothing_set(ray_cluster, monkeypatch):
    address, home = ray_cluster
    monkeypatch.setenv("HOME", str(home))  # the token is in ~/.ray/auth_token, as `ray start` left it
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    assert check_cluster(address)["CPU"] == 1


@pytest.mark.parametrize("token, why", [("", "no token was found"),
                                        ("0" * 32, "this machine's token is not the cluster's")])
def test_refused_token_fails_fast_in_one_line_naming_the_fix(ray_cluster, tmp_path, monkeypatch, token, why):
    address, _ = ray_cluster
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ray/auth_token here
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    monkeypatch.setenv("RAY_AUTH_MODE", "token") if token else monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN", token) if token else monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    t0 = time.monotonic()
    with pytest.raises(ClusterError) as err:
        check_cluster(address)
    message = str(err.value)
    assert "\n" not in message and address in message and why in message
    assert "~/.ray/auth_token" in message and "RAY_AUTH_TOKEN" in message
    assert time.monotonic() - t0 < 30, "no minute of retries"


def test_no_cluster_at_the_address_is_one_line_at_once():
    port = free_port()
    t0 = time.monotonic()
    expected = rf"no Ray cluster answers at 127.0.0.1:{port}.*ray start --head --port={port}"
    with pytest.raises(ClusterError, match=expected):
        check_cluster(f"127.0.0.1:{port}")
    assert time.monotonic() - t0 < 10


def test_an_address_without_a_port_is_refused():
    with pytest.raises(ClusterError, match="not HOST:PORT"):
        check_cluster("my-cluster")
