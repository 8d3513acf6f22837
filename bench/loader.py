"""One training epoch of batches: labkit's cached loader vs the usual student Dataset, side by side.

The usual Dataset opens each PNG with PIL in ``__getitem__`` and applies torchvision's ToTensor and
Normalize (plus the same flips and rotations); labkit's slices the uint8 tensor decoded once by
``prepare``. Both run over the same stub, same batch size, in one process, one after the other.

    python bench/loader.py [--train 3000] [--batch-size 64] [--workers 0]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from data_stub import make_stub
from labkit.data import make_loader, prepare, read_labels


class StudentDataset(Dataset):
    """What most submissions write: decode the PNG on every access."""

    def __init__(self, folder: Path, frame, transform):
        self.folder, self.frame, self.transform = folder, frame, transform

    def __len__(self):
        return len(self.frame)

    def __getitem__(self, i):
        image = Image.open(self.folder / self.frame.Filename.iloc[i]).convert("RGB")
        return self.transform(image), int(self.frame.Label.iloc[i])


def one_epoch(loader) -> tuple[float, int]:
    start, seen = time.perf_counter(), 0
    for images, labels in loader:
        seen += len(labels)
    return time.perf_counter() - start, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=3000, help="stub training images (standard profile: 3000)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for both loaders")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        stub = make_stub(Path(tmp) / "stub", args.train, 10, seed=0)
        start = time.perf_counter()
        data = prepare(stub, Path(tmp) / "cache", val_fraction=0.2, seed=0)
        first_prepare = time.perf_counter() - start
        start = time.perf_counter()
        data = prepare(stub, Path(tmp) / "cache", val_fraction=0.2, seed=0)
        cached_prepare = time.perf_counter() - start

        # the student's version: same training rows, same augmentation, PNGs read every epoch
        frame = read_labels(stub / "train.csv").iloc[data.train_idx.numpy()].reset_index(drop=True)
        transform = transforms.Compose([
            transforms.RandomHorizontalFlip(), transforms.RandomVerticalFlip(),
            transforms.RandomChoice([transforms.RandomRotation((a, a)) for a in (0, 90, 180, 270)]),
            transforms.ToTensor(), transforms.Normalize(data.mean, data.std)])
        student = DataLoader(StudentDataset(data.layout.train_dir, frame, transform),
                             batch_size=args.batch_size, shuffle=True, drop_last=True,
                             num_workers=args.workers)
        labkit = make_loader(data.train_dataset(augment=True), args.batch_size, shuffle=True,
                             device="cpu", num_workers=args.workers)

        one_epoch(labkit)  # warm the file-system cache and allocator for both, fairly
        one_epoch(student)
        student_s, n_student = one_epoch(student)
        labkit_s, n_labkit = one_epoch(labkit)

    print(f"stub: {args.train} images, training split {len(data.train_idx)}, batch {args.batch_size}, "
          f"workers {args.workers}, torch threads {args.threads}")
    print(f"prepare(): first call (decode + cache) {first_prepare:.2f} s, cached {cached_prepare:.2f} s")
    print(f"student Dataset (PIL per item + torchvision transforms): {student_s:.2f} s for {n_student} images")
    print(f"labkit cached loader:                                    {labkit_s:.2f} s for {n_labkit} images")
    print(f"speed-up: {student_s / labkit_s:.1f}x")


if __name__ == "__main__":
    main()
