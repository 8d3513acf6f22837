"""The data layer: find the files, decode every PNG once, split, and serve tensors fast.

``prepare(data_dir, cache_dir)`` is the one call chapters make. It

1. finds the Kaggle layout in ``data_dir`` (csv files and image folders, or the zips, nested one level
   or not), the same on the stub, a download, or ``/kaggle/input/deep-learning-for-msc-2022-23/``;
2. reads ``train.csv`` with validation (bad input stops with a :class:`DataError` that names the file
   and line and says what to do);
3. decodes every image once into a uint8 tensor cache under ``cache_dir``. The cache key is a hash of
   the csv's bytes and each listed image's name, size and modification time: stat-ing 15,000 files
   takes milliseconds, while hashing their bytes costs about as much as decoding them, which is what
   the cache is there to avoid. Any copy, re-extraction or edit changes size or mtime, so a stale
   cache is never used;
4. makes (or reloads from ``run_dir/data/split.json``) a seeded, stratified train/validation split,
   and computes the normalisation statistics on the training split only.

:class:`NucleiDataset` then reads samples by slicing that in-memory tensor: no PNG is opened again, and
``make_loader`` makes every batch on the training device (a GPU when there is one) with a few tensor ops;
bench/loader.py measures that against the per-item DataLoader path.

Two details of ``NucleiDataset`` are there for speed on a CPU. The normalisation constants are shaped
[3, 1, 1], not [1, 3, 1, 1]: PyTorch also reads a [1, 3, 1, 1] tensor as channels_last, and the result then
came out in that layout and took ten times as long. And the batch is normalised in place, into one new float
buffer rather than three: a fresh 8 MB buffer costs page faults, which made ``x * scale + shift`` forty times
slower than ``mul_``/``add_``.
"""
from __future__ import annotations

import difflib
import hashlib
import io
import os
import random
import shutil
import tempfile
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler, WeightedRandomSampler

from labkit import CLASS_NAMES, N_CLASSES
from labkit.artifacts import RunDir, atomic_write_bytes

IMAGE_SIZE = 100
COLUMNS = ("Filename", "Label")
CACHE_VERSION = 1  # bump when the cache's content or format changes
KAGGLE_DIR = "/kaggle/input/deep-learning-for-msc-2022-23/"


class DataError(Exception):
    """Bad or missing input data; the message names the file (and line) and says what to do."""


class DataWarning(UserWarning):
    """Odd but usable input data (resized images, a damaged cache, no test set): build.py's preflight
    prints these, and only these, before any chapter runs."""


# ---------------------------------------------------------------------------------------------------
# Finding the files
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DataLayout:
    root: Path                 # the folder holding train.csv
    train_csv: Path
    example_csv: Path | None   # the submission template; its order is the test order
    train_dir: Path            # the folder holding the training PNGs
    test_dir: Path | None


def _find_file(folder: Path, name: str) -> Path | None:
    """``folder/name``, else ``folder/*/name`` (one level of nesting)."""
    if (folder / name).is_file():
        return folder / name
    nested = sorted(p for p in folder.glob(f"*/{name}") if p.is_file())
    return nested[0] if nested else None


def _folders_to_search(base: Path, split: str) -> list[Path]:
    """Where a split's images may be: train/, train/train/, any train/<sub>/, or base itself."""
    found = [base / split, base / split / split]
    if (base / split).is_dir():
        found += sorted(p for p in (base / split).iterdir() if p.is_dir())
    return found + [base]


def extract_zip(zip_path: Path, extract_dir: Path) -> Path:
    """Extracts ``zip_path`` once into a folder under ``extract_dir`` and returns that folder.

    Refuses any entry that would land outside the target (absolute paths, ``..``). The target is named
    after the zip's size and mtime, and is complete or absent (extracted to a temp folder, then renamed).
    """
    zip_path, extract_dir = Path(zip_path), Path(extract_dir)
    stat = zip_path.stat()
    tag = hashlib.sha256(f"{zip_path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    target = extract_dir / f"{zip_path.stem}-{tag}"
    if target.is_dir():
        return target
    extract_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{zip_path.stem}-", dir=extract_dir))
    try:
        try:
            archive = zipfile.ZipFile(zip_path)
        except zipfile.BadZipFile as exc:
            raise DataError(f"{zip_path} is not a valid zip file ({exc}): download it again") from None
        with archive:
            base = tmp.resolve()
            for entry in archive.namelist():
                destination = (tmp / entry).resolve()
                if entry.startswith(("/", "\\")) or not destination.is_relative_to(base):
                    raise DataError(
                        f"{zip_path}: entry {entry!r} would be written outside {target}; refused. "
                        "The zip is damaged or unsafe: download it again from the competition's Data tab.")
            archive.extractall(tmp)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _image_dir(root: Path, split: str, probe: str, extract_dir: Path | None) -> Path | None:
    """The folder holding ``probe`` (a file listed in the csv), extracting ``split.zip`` if needed."""
    for folder in _folders_to_search(root, split):
        if (folder / probe).is_file():
            return folder
    zip_path = root / f"{split}.zip"
    if not zip_path.is_file():
        return None
    if extract_dir is None:
        raise DataError(f"{zip_path} must be extracted first: pass extract_dir (prepare() uses its cache folder)")
    extracted = extract_zip(zip_path, extract_dir)
    for folder in _folders_to_search(extracted, split):
        if (folder / probe).is_file():
            return folder
    raise DataError(f"{zip_path} does not contain {probe}, the first file listed for it: "
                    f"is it the right zip? Download it again from the competition's Data tab.")


def find_layout(data_dir, extract_dir=None) -> DataLayout:
    """Finds train.csv, example.csv and the image folders (or zips) in ``data_dir``."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir} is not a folder: pass the folder that holds train.csv "
                        f"(on Kaggle: {KAGGLE_DIR})")
    train_csv = _find_file(data_dir, "train.csv")
    if train_csv is None:
        raise DataError(f"no train.csv in {data_dir} or its subfolders: put the competition's files there "
                        "(train.csv, example.csv, train/ or train.zip, test/ or test.zip)")
    root = train_csv.parent
    extract_dir = Path(extract_dir) if extract_dir is not None else None

    train_dir = _image_dir(root, "train", read_labels(train_csv).Filename.iloc[0], extract_dir)
    if train_dir is None:
        raise DataError(f"no training images for {train_csv}: expected a train/ folder or train.zip next to "
                        "it; download them from the competition's Data tab")
    example_csv = root / "example.csv" if (root / "example.csv").is_file() else None
    test_dir = None
    if example_csv is not None:
        test_dir = _image_dir(root, "test", read_labels(example_csv).Filename.iloc[0], extract_dir)
        if test_dir is None:
            raise DataError(f"no test images for {example_csv}: expected a test/ folder or test.zip next to "
                            "it; download them from the competition's Data tab")
    return DataLayout(root, train_csv, example_csv, train_dir, test_dir)


# ---------------------------------------------------------------------------------------------------
# Reading and checking the labels
# ---------------------------------------------------------------------------------------------------

def read_labels(csv_path) -> pd.DataFrame:
    """``Filename``, ``Label`` (int64) of a train.csv / example.csv, validated.

    Lines are counted as in a text editor: the header is line 1, the first image line 2.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"{csv_path} does not exist: it comes with the competition data")
    try:  # utf-8-sig: a byte-order mark from Excel must not become part of the first column's name
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{csv_path} is not a readable csv file ({exc}): download it again") from None
    columns = [c.strip() for c in frame.columns]
    if columns != list(COLUMNS):
        hints = []
        for c in columns:
            close = difflib.get_close_matches(c, COLUMNS, n=1, cutoff=0.6)
            if close and close[0] != c:
                hints.append(f"{c!r} should be {close[0]!r}")
        raise DataError(f"{csv_path} has columns {columns}; expected exactly Filename,Label"
                        + (f" ({'; '.join(hints)})" if hints else "") + ". Fix the header line.")
    frame.columns = list(COLUMNS)
    if frame.empty:
        raise DataError(f"{csv_path} lists no images (empty dataset): use the complete file from the competition")

    names = frame.Filename.str.strip()
    for row, name in enumerate(names):
        if not name:
            raise DataError(f"{csv_path} line {row + 2}: empty Filename; fix or delete that line")
    labels = pd.to_numeric(frame.Label.str.strip(), errors="coerce")
    bad = labels.isna() | (labels % 1 != 0) | (labels < 0) | (labels >= N_CLASSES)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{csv_path} line {row + 2}: Label {frame.Label.iloc[row]!r} for {names.iloc[row]} is "
                        f"not an integer 0..{N_CLASSES - 1} ({bad.sum()} such line(s)); fix or delete them")
    duplicated = names.duplicated(keep=False)
    if duplicated.any():
        rows = np.flatnonzero(duplicated.to_numpy())
        first = names.iloc[rows[0]]
        lines = [str(r + 2) for r in rows if names.iloc[r] == first]
        raise DataError(f"{csv_path}: {first} is listed more than once (lines {', '.join(lines)}); "
                        "keep one line per image")
    return pd.DataFrame({"Filename": names, "Label": labels.astype("int64")})


# ---------------------------------------------------------------------------------------------------
# Decoding once, into a cache
# ---------------------------------------------------------------------------------------------------

def _check_present(folder: Path, names: list[str], csv_path: Path) -> None:
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise DataError(f"{len(missing)} image(s) listed in {csv_path} are missing from {folder}: {shown}. "
                        "Extract the image zip completely, or delete those lines from the csv.")


def _cache_key(csv_path: Path, folder: Path, names: list[str]) -> str:
    digest = hashlib.sha256(f"labkit-cache-v{CACHE_VERSION}\n".encode())
    digest.update(csv_path.read_bytes())
    for name in names:
        stat = (folder / name).stat()
        digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _decode(folder: Path, names: list[str], csv_path: Path) -> torch.Tensor:
    """uint8 [N, 3, 100, 100] from the PNGs, RGB; other sizes are resized with one warning."""
    pixels = np.empty((len(names), IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    resized: list[tuple[int, str, tuple[int, int]]] = []  # (row, name, size), appended by threads

    def decode_one(row: int) -> None:
        path = folder / names[row]
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")  # RGBA, greyscale and palette images become RGB
        except (OSError, SyntaxError, ValueError) as exc:  # PIL's errors for broken files
            raise DataError(f"{path} (line {row + 2} of {csv_path.name}) is not a readable image ({exc}): "
                            "download the data again, or delete that line from the csv") from None
        if image.size != (IMAGE_SIZE, IMAGE_SIZE):
            resized.append((row, names[row], image.size))
            image = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
        pixels[row] = np.asarray(image)

    # PIL releases the GIL while decoding, so a few threads decode in parallel
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(decode_one, range(len(names))))
    if resized:
        _, name, (w, h) = min(resized)  # the first in csv order, whichever thread finished first
        warnings.warn(f"{len(resized)} image(s) in {folder} are not {IMAGE_SIZE}x{IMAGE_SIZE} "
                      f"(e.g. {name} is {w}x{h}); resized them to {IMAGE_SIZE}x{IMAGE_SIZE}", DataWarning,
                      stacklevel=3)
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()


def load_images(csv_path: Path, folder: Path, names: list[str], cache_dir) -> tuple[torch.Tensor, str]:
    """(uint8 images in ``names`` order, cache key): from the cache, or decoded once and cached."""
    _check_present(folder, names, csv_path)
    key = _cache_key(csv_path, folder, names)
    cache_file = Path(cache_dir) / f"{csv_path.stem}-{key[:20]}.pt"
    if cache_file.is_file():
        try:
            cached = torch.load(cache_file, weights_only=True)
            if cached["files"] == list(names):
                return cached["images"], key
        except Exception as exc:  # noqa: BLE001 (a damaged cache is rebuilt, never trusted)
            warnings.warn(f"ignoring unreadable cache {cache_file} ({exc}); decoding the images again",
                          DataWarning)
    images = _decode(folder, names, csv_path)
    buffer = io.BytesIO()
    torch.save({"images": images, "files": list(names)}, buffer)
    atomic_write_bytes(cache_file, buffer.getbuffer())  # a view of the buffer: no second copy in memory
    return images, key


# ---------------------------------------------------------------------------------------------------
# Split and statistics
# ---------------------------------------------------------------------------------------------------

def stratified_split(labels, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train_idx, val_idx), sorted int64 tensors; each class keeps its share in both parts."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_val = round(len(members) * val_fraction)
        if len(members) >= 2:  # every class with 2+ images appears on both sides
            n_val = min(max(n_val, 1), len(members) - 1)
        val.append(rng.permutation(members)[:n_val])
    val_idx = np.sort(np.concatenate(val)) if val else np.array([], dtype=np.int64)
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    return torch.as_tensor(train_idx, dtype=torch.int64), torch.as_tensor(val_idx, dtype=torch.int64)


def _channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (0..1 scale), exact, from a histogram of the 256 uint8 values:
    no float copy of the whole set is ever made."""
    values = torch.arange(256, dtype=torch.float64) / 255
    mean, std = [], []
    for channel in range(3):
        counts = torch.bincount(images[:, channel].reshape(-1), minlength=256).double()
        m = (counts * values).sum() / counts.sum()
        v = (counts * (values - m) ** 2).sum() / counts.sum()
        mean.append(float(m))
        std.append(max(float(v.sqrt()), 1e-6))
    return mean, std


# ---------------------------------------------------------------------------------------------------
# The Dataset
# ---------------------------------------------------------------------------------------------------

def dihedral_view(x: torch.Tensor, view: int) -> torch.Tensor:
    """One of the 8 flips/90-degree rotations of an image or batch (..., H, W); view 0 is the identity.

    view = 4 * flip + k: rotate by k quarter turns, then mirror left-right if flip."""
    x = torch.rot90(x, view % 4, dims=(-2, -1))
    return x.flip(-1) if view >= 4 else x


def random_dihedral(images: torch.Tensor, by_gather: bool | None = None) -> torch.Tensor:
    """A batch [N, C, H, W] in random flips/rotations: each image in one of its 8 views, each equally likely.

    No Python runs per image; how the batch is done depends on the device, by measurement (bench/gpu.py,
    bench/loader.py). A GPU starts every operation separately, and a small model spends its step starting
    them, so there one gather moves every pixel to where its image's view puts it (``_VIEW_PIXELS``: where
    each view takes each pixel from). On a CPU that gather is slower than copying whole slices, so the batch
    is cut into eighths and eighth k is shown in view (first + k) % 8, with ``first`` random. The images must
    come in random order (``NucleiDataset.__getitems__`` makes sure) so that which eighth, and so which view,
    an image lands in is random too; ``first`` is drawn by Python's ``random``, on the CPU. ``by_gather``:
    None = the gather on a GPU, the eighths on a CPU.
    """
    n, channels, height, width = images.shape
    if images.is_cuda if by_gather is None else by_gather:
        views = torch.randint(0, 8, (n,), device=images.device)
        where_from = _view_pixels(height, width, images.device)[views]  # [N, H*W]
        pixels = images.flatten(2).gather(2, where_from.unsqueeze(1).expand(-1, channels, -1))
        return pixels.view(n, channels, height, width)
    first = random.randrange(8)
    return torch.cat([dihedral_view(part, (first + k) % 8) for k, part in enumerate(images.tensor_split(8))])


_VIEW_PIXELS: dict = {}


def _view_pixels(height: int, width: int, device) -> torch.Tensor:
    """[8, H*W]: for each view, the flat index of the pixel each output pixel comes from (made once)."""
    key = (height, width, str(device))
    if key not in _VIEW_PIXELS:
        positions = torch.arange(height * width, device=device).view(height, width)
        _VIEW_PIXELS[key] = torch.stack([dihedral_view(positions, v).reshape(-1) for v in range(8)])
    return _VIEW_PIXELS[key]


class NucleiDataset(Dataset):
    """Nucleus patches as normalised float tensors, read from the decode-once uint8 cache.

    The whole split sits in memory as uint8 (30 KB per image), so a sample is a slice of a tensor,
    never a PNG decode. Augmentation uses the 8 flips and 90-degree rotations of the square: a
    nucleus has no "up", and these never crop, blur or recolour it.

    A batch is made in one go, on whatever device the images are on (``to(device)`` copies the split
    there once): ``__getitems__``, which PyTorch's DataLoader calls with a whole batch of indices, does
    one gather, one random flip/rotation for the batch and one multiply-add normalisation. No Python
    runs per image, so on a GPU the GPU does the data work too.
    """

    def __init__(self, images, labels=None, *, mean, std, augment=False):
        self.images = images  # uint8 [N, 3, 100, 100]
        # test images have no label: -1 marks them
        self.labels = (labels if labels is not None
                       else torch.full((len(images),), -1, dtype=torch.int64, device=images.device))
        self.mean, self.std = torch.as_tensor(mean).tolist(), torch.as_tensor(std).tolist()
        # (x / 255 - mean) / std as one multiply-add: x * scale + shift
        mean = torch.tensor(self.mean, dtype=torch.float32, device=images.device).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=images.device).view(3, 1, 1)
        self.scale, self.shift = 1 / (255 * std), -mean / std
        self.augment = augment

    def to(self, device) -> NucleiDataset:
        """The same dataset with its images and labels on ``device`` (a GPU): copied once, here."""
        return NucleiDataset(self.images.to(device), self.labels.to(device), mean=self.mean, std=self.std,
                             augment=self.augment)

    def __len__(self):
        return len(self.images)

    def __getitems__(self, indices):
        """A whole batch (images [B, 3, 100, 100] float32, labels [B]) for a list or tensor of indices."""
        indices = torch.as_tensor(indices, device=self.images.device)
        if self.augment and not indices.is_cuda:  # on a CPU each eighth of a batch gets one view
            indices = indices[torch.randperm(len(indices))]
        x = self.images[indices]  # one gather, still uint8: flipping 1-byte pixels moves a quarter of the bytes
        if self.augment:
            x = random_dihedral(x)
        return x.float().mul_(self.scale).add_(self.shift), self.labels[indices]

    def __getitem__(self, i):
        x, y = self.__getitems__([i])
        return x[0], int(y[0])


class BatchIndices(Sampler):
    """The indices of each batch as one tensor, made on the data's device: a new random order every epoch
    (``shuffle``), a draw with replacement in proportion to ``weights`` (a weighted sampler, e.g. one that
    balances the classes), or 0..n-1 in order. ``drop_last`` leaves out an incomplete last batch."""

    def __init__(self, n: int, batch_size: int, *, shuffle=False, weights=None, drop_last=False,
                 device="cpu", generator=None):
        self.n, self.batch_size, self.shuffle, self.drop_last = n, batch_size, shuffle, drop_last
        self.device, self.generator = torch.device(device), generator
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float32, device=device)

    def __len__(self):
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self):
        if self.weights is not None:  # as torch's WeightedRandomSampler, in one call for the whole epoch
            order = torch.multinomial(self.weights, self.n, replacement=True, generator=self.generator)
        elif self.shuffle:
            order = torch.randperm(self.n, device=self.device, generator=self.generator)
        else:
            order = torch.arange(self.n, device=self.device)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield order[start:start + self.batch_size]


def whole_batch(batch):
    """The DataLoader's collate step for datasets whose ``__getitems__`` already made the batch."""
    return batch


def make_loader(dataset, batch_size: int, shuffle: bool, device="cpu", sampler=None,
                num_workers: int | None = None, weights=None, generator=None) -> DataLoader:
    """A DataLoader that makes its batches on ``device``, where the model trains.

    For a dataset with a batched ``__getitems__`` and a ``to(device)`` (``NucleiDataset``), the split is
    copied to the device once, and each batch is one tensor of indices (``BatchIndices``: shuffled, or drawn
    in proportion to ``weights``; ``generator`` seeds either) that the dataset turns into a batch there. No
    worker processes, no pinned copies, no Python per image. Other datasets, or an explicit ``sampler`` or
    ``num_workers``, get the usual per-item DataLoader. Training loaders (``shuffle`` or ``weights`` or a
    ``sampler``) drop the last incomplete batch so that a batch of one never reaches BatchNorm.
    """
    training = shuffle or sampler is not None or weights is not None
    drop_last = training and len(dataset) > batch_size
    if hasattr(dataset, "__getitems__") and hasattr(dataset, "to") and sampler is None and not num_workers:
        dataset = dataset.to(device)
        batches = BatchIndices(len(dataset), batch_size, shuffle=shuffle, weights=weights, drop_last=drop_last,
                               device=device, generator=generator)
        return DataLoader(dataset, batch_sampler=batches, collate_fn=whole_batch)
    if weights is not None:
        sampler = WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), len(dataset),
                                        generator=generator)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=num_workers or 0,
        pin_memory=torch.device(device).type == "cuda",
        drop_last=drop_last,
        generator=generator if sampler is None and shuffle else None,
    )


def denormalise(x: torch.Tensor, mean, std) -> torch.Tensor:
    """Undoes the normalisation: a float image (or batch) in 0..1, same shape (C, H, W) or (N, C, H, W).
    For ``plt.imshow`` use ``denormalise(x, mean, std).permute(1, 2, 0)``."""
    shape = (3, 1, 1) if x.dim() == 3 else (1, 3, 1, 1)
    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(shape)
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(shape)
    return (x * std + mean).clamp(0, 1)


# ---------------------------------------------------------------------------------------------------
# Everything together
# ---------------------------------------------------------------------------------------------------

@dataclass
class NucleiData:
    layout: DataLayout
    train_images: torch.Tensor   # uint8 [N, 3, 100, 100], train.csv order
    train_labels: torch.Tensor   # int64 [N]
    train_files: list[str]
    test_images: torch.Tensor    # uint8 [M, 3, 100, 100], example.csv order
    test_files: list[str]
    train_idx: torch.Tensor      # int64 indices into train_* for training
    val_idx: torch.Tensor        # ... and for validation
    mean: list[float]            # per channel, 0..1 scale, training split only
    std: list[float]
    cache_key: str = field(default="", repr=False)

    def _dataset(self, idx, augment):
        return NucleiDataset(self.train_images[idx], self.train_labels[idx],
                             mean=self.mean, std=self.std, augment=augment)

    def train_subset_idx(self, subset=None, seed: int = 0) -> torch.Tensor:
        """Indices of the training split; ``subset`` (a fraction in (0, 1] or a count) keeps a stratified part."""
        idx = self.train_idx
        if subset is None:
            return idx
        keep = subset if isinstance(subset, int) and not isinstance(subset, bool) else round(subset * len(idx))
        if not 0 < keep <= len(idx):
            raise ValueError(f"subset must be a fraction in (0, 1] or a count 1..{len(idx)}, got {subset}")
        if keep == len(idx):
            return idx
        _, chosen = stratified_split(self.train_labels[idx], keep / len(idx), seed)
        return idx[chosen]

    def train_dataset(self, augment: bool = True, subset=None, seed: int = 0) -> NucleiDataset:
        """The training split; ``subset`` (a fraction in (0, 1] or a count) keeps a stratified part."""
        return self._dataset(self.train_subset_idx(subset, seed), augment)

    def val_dataset(self) -> NucleiDataset:
        return self._dataset(self.val_idx, augment=False)

    def test_dataset(self) -> NucleiDataset:
        return NucleiDataset(self.test_images, None, mean=self.mean, std=self.std)

    def class_counts(self, split: str = "all") -> pd.Series:
        """Images per class (indexed by class name) in ``"all"`` of train.csv, ``"train"`` or ``"val"``."""
        idx = {"all": slice(None), "train": self.train_idx, "val": self.val_idx}[split]
        counts = torch.bincount(self.train_labels[idx], minlength=N_CLASSES)
        return pd.Series(counts.numpy(), index=list(CLASS_NAMES), name="images")

    def class_weights(self) -> torch.Tensor:
        """Inverse-frequency weights from the training split, mean 1 (for a weighted loss)."""
        counts = torch.bincount(self.train_labels[self.train_idx], minlength=N_CLASSES).double()
        weights = counts.sum() / (N_CLASSES * counts.clamp_min(1))
        return weights.float()


def _split_for(run_dir, key: str, labels: torch.Tensor, val_fraction: float, seed: int):
    """The saved split when it was made for this data and these settings; else a new one (saved)."""
    settings = {"data_key": key, "val_fraction": val_fraction, "seed": seed, "n": len(labels)}
    if run_dir is not None and run_dir.exists("data/split.json"):
        saved = run_dir.load_json("data/split.json")
        if {k: saved.get(k) for k in settings} == settings:
            return (torch.tensor(saved["train_idx"], dtype=torch.int64),
                    torch.tensor(saved["val_idx"], dtype=torch.int64))
        warnings.warn(f"{run_dir.path('data/split.json')} was made for other data or settings; "
                      "making a new split")
    train_idx, val_idx = stratified_split(labels, val_fraction, seed)
    if run_dir is not None:
        run_dir.save_json("data/split.json", {**settings, "train_idx": train_idx.tolist(),
                                              "val_idx": val_idx.tolist()})
    return train_idx, val_idx


def prepare(data_dir, cache_dir, run_dir=None, val_fraction: float = 0.2, seed: int = 0) -> NucleiData:
    """Finds, checks and decodes the data (once; later calls read the cache) and splits it.

    ``run_dir`` (a path or :class:`labkit.artifacts.RunDir`) keeps ``data/split.json`` and
    ``data/stats.json``; a saved split is reused while the data and settings are unchanged.
    """
    cache_dir = Path(cache_dir)
    layout = find_layout(data_dir, extract_dir=cache_dir / "extracted")
    train = read_labels(layout.train_csv)
    train_files = train.Filename.tolist()
    train_images, key = load_images(layout.train_csv, layout.train_dir, train_files, cache_dir)
    train_labels = torch.tensor(train.Label.to_numpy(), dtype=torch.int64)
    if layout.example_csv is not None:
        test_files = read_labels(layout.example_csv).Filename.tolist()
        test_images, _ = load_images(layout.example_csv, layout.test_dir, test_files, cache_dir)
    else:
        warnings.warn(f"no example.csv next to {layout.train_csv}: there is no test set to predict", DataWarning)
        test_files, test_images = [], torch.empty((0, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.uint8)

    if run_dir is not None and not isinstance(run_dir, RunDir):
        run_dir = RunDir(run_dir)
    train_idx, val_idx = _split_for(run_dir, key, train_labels, val_fraction, seed)
    mean, std = _channel_stats(train_images[train_idx])
    data = NucleiData(layout, train_images, train_labels, train_files, test_images, test_files,
                      train_idx, val_idx, mean, std, cache_key=key)
    if run_dir is not None:
        run_dir.save_json("data/stats.json", {
            "mean": mean, "std": std, "n_train": len(train_idx), "n_val": len(val_idx),
            "n_test": len(test_files), "class_counts": data.class_counts().to_dict()})
    return data
