"""Quick builds that several test modules read (a build is minutes on two cores, so each is made once)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEAM = "Test_Team"


def run_build(*args, timeout=600, env=None):
    return subprocess.run([sys.executable, str(REPO / "build.py"), *args], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout, env=env, check=False)  # callers read the exit code


@dataclass
class QuickBuild:
    out: Path
    cache: Path
    data: Path | None  # the data folder given with --data (None: the stub build.py makes)
    weights: Path | None  # a resnet18 state_dict with random weights, named as torchvision's file
    address: str       # the Ray cluster's address
    result: subprocess.CompletedProcess

    @property
    def notebook(self) -> Path:
        return self.out / f"{TEAM}.ipynb"

    @property
    def run_dir(self) -> Path:
        return self.out / "run"


def random_weights_file(root: Path) -> Path:
    """A resnet18 state_dict with random weights under torchvision's file name: loaded, but not verified."""
    import torch
    import torchvision

    from labkit.models import default_weights, weights_file_name

    weights = root / "torch" / "hub" / "checkpoints" / weights_file_name(default_weights("resnet18"))[0]
    weights.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    return weights


def quick_build(root: Path, ray_cluster, *options: str, data: Path | None = None,
                weights: Path | None = None) -> QuickBuild:
    """A quick build on CPU that joins the test session's Ray cluster (HOME points at the cluster's home,
    where its token is) and finds no ImageNet weights but the ``weights`` file given."""
    out, cache = root / "out", root / "cache"
    address, home = ray_cluster
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update(HOME=str(home), TORCH_HOME=str(root / "no-torch-cache"),
               MPLCONFIGDIR=str(Path.home() / ".cache" / "matplotlib"))  # keep matplotlib's font cache
    args = ["--team", TEAM, "--profile", "quick", "--out", str(out), "--cache", str(cache), "--device", "cpu",
            "--ray-address", address, *options]
    if data is not None:
        args += ["--data", str(data)]
    if weights is not None:
        args += ["--weights", str(weights)]
    result = run_build(*args, env=env)
    assert result.returncode == 0, f"quick build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return QuickBuild(out, cache, data, weights, address, result)


def stub_in_real_layout(root: Path) -> Path:
    """A stub in the real layout with zips only: read as real data (--data)."""
    import data_stub

    data = data_stub.make_stub(root / "data", n_train=320, n_test=80, seed=5, zip=True)
    for folder in ("train", "test"):
        shutil.rmtree(data / folder)
    return data
