"""labkit as a Kaggle Dataset: the wheel the Kaggle copy of the notebook installs, and its setup cell.

Kaggle users ship their own code to a notebook as a Dataset that the notebook adds as an input: here a folder
with labkit's wheel and Kaggle's ``dataset-metadata.json``, which ``kaggle datasets create -p FOLDER`` uploads
(``kaggle datasets version -p FOLDER -m MESSAGE`` after labkit changed). Kaggle mounts it read-only at
``/kaggle/input/<slug>/``; the notebook's first code cell installs the wheel from there.

The wheel's version carries a hash of labkit's sources (``0.1.0+1a2b3c4d``), so the notebook names the exact
code its listings were expanded from, and a dataset left at an older version fails in the setup cell, saying
what to upload, instead of running other code than the notebook lists.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from labkit import configuration

REPO = Path(__file__).resolve().parent
LABKIT = REPO / "labkit"
SLUG = "nuclei-labkit"
TITLE = "labkit for the nuclei coursework"
USER_PLACEHOLDER = "USERNAME"
# what labkit imports beyond the standard library and IPython (the wheel's metadata; its setup cell installs it
# with --no-deps, so that pip never swaps Kaggle's CUDA build of torch for another)
LABKIT_REQUIRES = ("torch", "torchvision", "ray[tune]", "captum", "numpy", "pandas", "scikit-learn", "scipy",
                   "matplotlib", "pillow")
# installed from Kaggle's package index: the Kaggle image has the rest of LABKIT_REQUIRES
KAGGLE_LACKS = ("captum", "ray[tune]")


def source_hash() -> str:
    """A short hash of labkit's sources: it changes whenever any module does."""
    digest = hashlib.sha256()
    for module in sorted(LABKIT.rglob("*.py")):
        digest.update(module.relative_to(LABKIT).as_posix().encode() + b"\0" + module.read_bytes() + b"\0")
    return digest.hexdigest()[:8]


def labkit_version() -> str:
    import labkit

    return f"{labkit.__version__}+{source_hash()}"


def wheel_name() -> str:
    """The file name ``pip wheel`` gives labkit's wheel (PEP 427: name-version-python-abi-platform)."""
    return f"labkit-{labkit_version()}-py3-none-any.whl"


def _pyproject() -> str:
    dependencies = "".join(f"\n    {json.dumps(spec)}," for spec in LABKIT_REQUIRES)
    return (
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "labkit"\nversion = "{labkit_version()}"\n'
        'description = "The tested library the nuclei coursework chapters call"\nrequires-python = ">=3.10"\n'
        f"dependencies = [{dependencies}\n]\n\n"
        '[tool.setuptools]\npackages = ["labkit"]\n'
    )


def build_wheel(folder: Path) -> Path:
    """labkit's wheel, built by ``pip wheel`` from a copy of the package beside a pyproject of its own (the
    project's own pyproject also packages grading/ and data_stub/, which Kaggle does not need)."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="labkit-wheel-") as tmp:
        source, built = Path(tmp, "source"), Path(tmp, "built")
        shutil.copytree(LABKIT, source / "labkit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (source / "pyproject.toml").write_text(_pyproject())
        # offline and with this environment's setuptools: the wheel has nothing to download
        result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                                 "--no-index", "--quiet", "--wheel-dir", str(built), str(source)],
                                capture_output=True, text=True, check=False)
        wheels = list(built.glob("labkit-*.whl"))
        if result.returncode != 0 or len(wheels) != 1:
            raise RuntimeError(f"pip wheel could not build labkit's wheel (exit {result.returncode}):\n"
                               f"{(result.stdout + result.stderr)[-2000:]}\n"
                               "Check that setuptools>=68 is installed: pip install 'setuptools>=68'")
        target = folder / wheels[0].name
        staged = folder / f".{wheels[0].name}.partial"
        shutil.copyfile(wheels[0], staged)
        os.replace(staged, target)  # the dataset folder never holds half a wheel
    return target


def dataset_metadata(user: str | None) -> dict:
    """Kaggle's dataset-metadata.json (the Data Package fields the Kaggle API reads)."""
    return {
        "title": TITLE,
        "id": f"{user or USER_PLACEHOLDER}/{SLUG}",
        "subtitle": "The wheel of labkit that the coursework notebook installs",
        "licenses": [{"name": "other"}],
    }


def write_dataset(folder: Path, user: str | None = None) -> Path:
    """Write the dataset folder (labkit's wheel and dataset-metadata.json); return the wheel's path. An older
    wheel in the folder is removed: `kaggle datasets version` uploads every file there."""
    from labkit.artifacts import atomic_write_text

    wheel = build_wheel(folder)
    for old in folder.glob("labkit-*.whl"):
        if old != wheel:
            old.unlink()
    atomic_write_text(folder / "dataset-metadata.json", json.dumps(dataset_metadata(user), indent=2) + "\n")
    return wheel


def user_name(name: str) -> str:
    """--kaggle-user: a Kaggle user name, the first part of the dataset's id."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,49}", name):
        raise argparse.ArgumentTypeError(f"{name!r} is not a Kaggle user name (letters, digits, '-' and '_'); "
                                         "it is the name in your Kaggle profile's address, kaggle.com/NAME")
    return name


# The configuration the Kaggle copy runs in, as far as it is known before it runs: the competition's real data;
# torchvision's ImageNet weights, downloaded through its weights API and so checked against its hash (a
# real-data run without them stops); and with a pretrained backbone the search varies the unfrozen stages.
# What a search finds (a retraining or none) is decided only while the notebook runs.
KAGGLE_CONFIGURATION = {"pretrained": True, "synthetic_data": False, "imagenet_verified": True,
                        "model2_stages_searched": True, "tta_tried": True}  # the full profile tries TTA


def keep_kaggle_cells(cells, known: dict[str, bool], where: str = "") -> list:
    """The chapters' cells the Kaggle copy keeps: for each condition in ``known``, the blocks written for its
    value (``labkit.configuration.keep_cells``). A condition decided only while the notebook runs (by the data,
    by what a search finds) cannot be chosen here, so every block written for it stays, still tagged."""
    undecided = [cell for cell in cells if any(name not in known for name, _ in configuration.conditions_of(cell))]
    kept = configuration.keep_cells([cell for cell in cells if not any(cell is u for u in undecided)], known, where)
    return [cell for cell in cells if any(cell is k for k in kept + undecided)]


def setup_markdown(user: str | None) -> str:
    dataset = f"{user}/{SLUG}" if user else SLUG
    return (
        "## Setup\n\n"
        "The chapters call `labkit`, the project's tested library. The cell below installs it from its wheel, "
        f"which the team uploaded to Kaggle as the dataset `{dataset}`, and two packages Kaggle lacks (Captum "
        "and Ray Tune). To run the notebook, add that dataset and the competition's data with *Add Input*, and "
        "turn on a GPU accelerator."
    )


def setup_code(user: str | None, wheel: str | None = None) -> str:
    """Install labkit from the dataset input, and what Kaggle's image lacks from its package index."""
    path = f"/kaggle/input/{SLUG}/{wheel or wheel_name()}"
    dataset = f"{user or USER_PLACEHOLDER}/{SLUG}"
    return (
        "from pathlib import Path\n"
        f'LABKIT_WHEEL = Path("{path}")\n'
        "if not LABKIT_WHEEL.exists():  # the dataset is not added, or holds another version of labkit\n"
        f'    raise FileNotFoundError(f"{{LABKIT_WHEEL}} not found: add the dataset {dataset} with Add Input, or '
        f'upload the folder {SLUG} built with this notebook as its new version")\n'
        f"%pip install -q {' '.join(repr(p) if '[' in p else p for p in KAGGLE_LACKS)}\n"
        "%pip install -q --no-deps {LABKIT_WHEEL}"
    )


def appendix_markdown(profile: str, seed: int, wheel: str) -> str:
    """The Kaggle copy's appendix: what is known when it is built; the cell after it prints the rest there."""
    version = wheel.split("-")[1]
    return (
        "# Appendix: the environment of this run\n\n"
        f"This notebook ran top to bottom in one kernel, on the competition's data, with the `{profile}` training "
        f"budget and seed {seed}. The chapters' library is labkit {version}, installed from the dataset "
        f"`{SLUG}`. The cell below prints the device and the versions of the packages that did the work."
    )


ENVIRONMENT_CODE = """import importlib.metadata
import platform

import torch

device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU: the CPU"
print(f"Python {platform.python_version()}; device: {device}")
for package in ("labkit", "torch", "torchvision", "ray", "captum", "scikit-learn", "pandas", "matplotlib"):
    print(f"{package} {importlib.metadata.version(package)}")"""
