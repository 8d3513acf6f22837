"""Fixtures shared by test modules."""
from __future__ import annotations

import pytest
from ray_cluster import local_ray_cluster


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """(address, home) of a real `ray start --head` cluster with token authentication, one CPU."""
    with local_ray_cluster(tmp_path_factory.mktemp("ray_cluster")) as cluster:
        yield cluster
