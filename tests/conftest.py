"""Fixtures shared by test modules."""
from __future__ import annotations

import pytest
from builds import quick_build as make_quick_build
from builds import random_weights_file, stub_in_real_layout
from ray_cluster import local_ray_cluster


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """(address, home) of a real `ray start --head` cluster with token authentication, one CPU."""
    with local_ray_cluster(tmp_path_factory.mktemp("ray_cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def quick_build(tmp_path_factory, ray_cluster):
    """One quick build that uses every option, shared by the slow tests (a build is minutes here).

    --data is a stub in the real layout with zips only, so this is the real-data path, offline: it needs
    --weights. --ray-address is a real `ray start` cluster with token authentication, joined with nothing
    set but the token in ~/.ray/auth_token (HOME points at the cluster's home).
    """
    root = tmp_path_factory.mktemp("quick_build")
    return make_quick_build(root, ray_cluster, "--seed", "3", "--standalone", data=stub_in_real_layout(root),
                            weights=random_weights_file(root))
