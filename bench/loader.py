"""One training epoch of batches: labkit's loader, its former per-item loader, and the usual student Dataset.

The usual Dataset opens each PNG with PIL in ``__getitem__`` and applies torchvision's ToTensor and
Normalize (plus the same flips and rotations). labkit's loader makes each batch in one call
(``NucleiDataset.__getitems__`` on an index tensor: one gather, batched flips/rotations, one multiply-add),
on the training device. Its former per-item path (``PerItemNuclei``, the code of main before issue 23:
a float conversion, rot90 and flip per sample, then the DataLoader's collate) runs beside it. All over the
same stub and batch size, in one process, alternating in every round (``--rounds``); the best round is
each one's figure (others sharing the CPU only add time).

    python bench/loader.py [--train 3000] [--batch-size 64] [--workers 0] [--rounds 5]
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


class PerItemNuclei(Dataset):
    """labkit's NucleiDataset before issue 23: one sample at a time, collated by the DataLoader."""

    def __init__(self, images, labels, mean, std):
        self.images, self.labels = images, labels
        mean = torch.as_tensor(mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.as_tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.scale, self.shift = 1 / (255 * std), -mean / std

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        x = self.images[i].float() * self.scale + self.shift
        x = torch.rot90(x, int(torch.randint(0, 4, ())), dims=(1, 2))
        if torch.rand(()) < 0.5:
            x = x.flip(2)
        return x, int(self.labels[i])


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
    parser.add_argument("--rounds", type=int, default=3)
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
        train = data.train_dataset(augment=True)
        per_item = DataLoader(PerItemNuclei(train.images, train.labels, data.mean, data.std),
                              batch_size=args.batch_size, shuffle=True, drop_last=True, num_workers=args.workers)

        loaders = {"labkit (batches)": labkit, "labkit before (per item)": per_item, "student (PIL)": student}
        times = {name: [] for name in loaders}
        for name, loader in loaders.items():
            one_epoch(loader)  # warm the file-system cache and allocator for all, fairly
        for r in range(args.rounds):
            for name, loader in list(loaders.items())[:: 1 if r % 2 == 0 else -1]:
                seconds, n_images = one_epoch(loader)
                times[name].append(seconds)

    print(f"stub: {args.train} images, training split {len(data.train_idx)}, batch {args.batch_size}, "
          f"workers {args.workers}, torch threads {args.threads}, {args.rounds} rounds")
    print(f"prepare(): first call (decode + cache) {first_prepare:.2f} s, cached {cached_prepare:.2f} s")
    for name, seconds in times.items():
        print(f"{name:26s} best {min(seconds):6.3f} s an epoch ({n_images / min(seconds):8.0f} img/s); "
              f"rounds: {', '.join(f'{t:.3f}' for t in seconds)}")
    best = {name: min(seconds) for name, seconds in times.items()}
    print(f"labkit's batches against its per-item path: x{best['labkit before (per item)'] / best['labkit (batches)']:.2f} "
          f"as fast; against the student's PIL Dataset: x{best['student (PIL)'] / best['labkit (batches)']:.1f}")


if __name__ == "__main__":
    main()
