"""A deterministic synthetic stand-in for the course's Kaggle data, in the real layout.

    python -m data_stub --out DIR [--train N] [--test M] [--seed S] [--zip]

or from Python ``make_stub(out, n_train, n_test, seed, zip=False)``. Writes ``train.csv`` and
``example.csv`` (header ``Filename,Label``), ``train/1.png ..`` and ``test/10001.png ..`` (100x100 RGB),
and with ``zip`` also ``train.zip`` and ``test.zip``. Same arguments, same bytes. The image generator is
in :mod:`data_stub.generator`.
"""
from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image

from labkit.artifacts import (
    atomic_write_bytes,  # one atomic writer for the project (stdlib only)
)

from .generator import CLASS_MIX, make_image

__all__ = ["CLASS_MIX", "FIRST_TEST_NUMBER", "STUB_VERSION", "make_stub"]

FIRST_TEST_NUMBER = 10001  # the real test files are 10001.png .. 15041.png
# The generator's own source is part of a cached stub's identity: any change to it rebuilds the stub,
# with no version number to forget to bump.
STUB_VERSION = hashlib.sha256((Path(__file__).parent / "generator.py").read_bytes()).hexdigest()[:16]
MARKER = "stub.json"  # written last: its presence says the folder is a complete stub
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps keep the zips byte-for-byte reproducible


def _png_bytes(pixels) -> bytes:
    buffer = io.BytesIO()
    # fixed settings and no metadata: the same pixels always give the same file
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG", compress_level=6, optimize=False)
    return buffer.getvalue()


def _make_chunk(seed: int, split: str, indices: range) -> list[tuple[int, bytes]]:
    """(label, PNG bytes) for some images; runs in a worker process."""
    # The generator's small matrix products run fastest on one BLAS thread (more only contend).
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return [(label, _png_bytes(pixels)) for label, pixels in
                (make_image(seed, split, index) for index in indices)]


def _write_split(out: Path, split: str, numbers: range, seed: int, workers: int):
    """Writes split/NUMBER.png for each number; returns (names, labels, {name: png bytes})."""
    folder = out / split
    folder.mkdir(parents=True, exist_ok=True)
    chunk = 250
    starts = range(0, len(numbers), chunk)
    jobs = [range(s, min(s + chunk, len(numbers))) for s in starts]
    if workers > 1 and len(jobs) > 1:
        # every image has its own seed, so splitting the work over processes changes no byte
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            results = pool.map(_make_chunk, [seed] * len(jobs), [split] * len(jobs), jobs)
            made = [item for part in results for item in part]
    else:
        made = [item for job in jobs for item in _make_chunk(seed, split, job)]
    names, labels, files = [], [], {}
    for number, (label, data) in zip_(numbers, made):
        name = f"{number}.png"
        (folder / name).write_bytes(data)
        names.append(name)
        labels.append(label)
        files[name] = data
    return names, labels, files


def _write_zip(path: Path, split: str, files: dict) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():  # PNGs are compressed already: store them
            archive.writestr(zipfile.ZipInfo(f"{split}/{name}", date_time=_ZIP_DATE), data)
    atomic_write_bytes(path, buffer.getvalue())


def make_stub(out, n_train: int = 3000, n_test: int = 800, seed: int = 0, zip: bool = False,
              workers: int | None = None) -> Path:
    """Writes the stub into ``out`` (created if needed) and returns its path.

    ``workers`` processes share the work (default: the CPU count, at most 8); the bytes do not depend
    on it.

    Cheap to call again: when ``out`` already holds a complete stub made with the same arguments (its
    ``stub.json`` says so) nothing is rewritten.
    """
    if n_train < 1 or n_test < 0:
        raise ValueError(f"need n_train >= 1 and n_test >= 0, got n_train={n_train}, n_test={n_test}")
    out = Path(out)
    wanted = {"version": STUB_VERSION, "n_train": n_train, "n_test": n_test, "seed": seed, "zip": bool(zip)}
    marker = out / MARKER
    if marker.exists():
        try:
            if json.loads(marker.read_text()) == wanted:
                return out
        except (OSError, json.JSONDecodeError):
            pass  # unreadable marker: rebuild
        marker.unlink()
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):  # stale images from a bigger earlier stub must not linger
        for old in (out / split).glob("*.png") if (out / split).is_dir() else ():
            old.unlink()

    workers = min(os.cpu_count() or 1, 8) if workers is None else workers
    train_names, train_labels, train_files = _write_split(out, "train", range(1, n_train + 1), seed, workers)
    test_numbers = range(FIRST_TEST_NUMBER, FIRST_TEST_NUMBER + n_test)
    test_names, _, test_files = _write_split(out, "test", test_numbers, seed, workers)

    train_csv = "Filename,Label\n" + "".join(f"{n},{y}\n" for n, y in zip_(train_names, train_labels))
    example_csv = "Filename,Label\n" + "".join(f"{n},0\n" for n in test_names)
    atomic_write_bytes(out / "train.csv", train_csv.encode())
    atomic_write_bytes(out / "example.csv", example_csv.encode())
    if zip:
        _write_zip(out / "train.zip", "train", train_files)
        _write_zip(out / "test.zip", "test", test_files)
    atomic_write_bytes(marker, json.dumps(wanted, indent=1).encode())
    return out


zip_ = zip  # the builtin, since make_stub's ``zip`` argument shadows it
