"""A real-image proxy for the nuclei data: 100x100 patches cut from real photographs, in the Kaggle layout.

    python -m bench.proxy_data --out DIR [--train 540] [--test 200] [--seed 0] [--balanced]

The competition's images cannot be downloaded here, and the synthetic stub (data_stub/) is drawn by our
own code, so a model tuned on it may only have learned our drawing. This proxy cuts patches from four
*real* photographs bundled with scikit-image (no download), one per class:

    0 "normal"  immunohistochemistry(): IHC-stained colon tissue (the only histology image bundled)
    1 "cancer"  gravel():  loose stones
    2 "muscle"  brick():   a brick wall (long, parallel edges)
    3 "immune"  grass():   blades of grass

Pixels alone must not give the class away (a logistic regression on pixels scored 99.4% on an earlier
proxy, which made it useless as a test). So every patch is cut at a random place, scale (0.75-1.33) and
angle, turned to grey, standardised, and then given a random brightness, contrast and H&E-like colour
drawn from the *same* distributions for every class. What is left to tell the classes apart is texture:
the shapes, edges and their arrangement, which is what a ConvNet should learn and a linear model on pixels
cannot (bench/realdata.py measures both).

Training patches come from the left 60% of each photograph, test patches from the right 40%, so the test
set is not the training set seen again. The class mix follows DATA_FACTS.md (normal 9.8%, cancer 45.8%,
muscle 8.8%, immune 35.6%) unless ``balanced``. Writes train.csv, example.csv (all labels 0), train/ and
test/ (test named 10001.png ...) and, outside the Kaggle layout, ``test_answers.csv`` with the true test
labels. Same arguments, same bytes.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

PATCH = 100
SOURCES = ("immunohistochemistry", "gravel", "brick", "grass")   # index = label
KAGGLE_MIX = (0.098, 0.458, 0.088, 0.356)                       # DATA_FACTS.md, test-set predictions
TRAIN_REGION = 0.6   # share of each photograph's width that training patches come from
ANSWERS = "test_answers.csv"
# H&E-like end colours (RGB 0..1): dark = haematoxylin purple, light = eosin pink; jittered per patch
DARK, LIGHT = np.array([0.30, 0.12, 0.45]), np.array([0.96, 0.78, 0.90])

_grey_sources: dict[str, np.ndarray] = {}


def _source(name: str) -> np.ndarray:
    """The photograph as float greyscale 0..1 (colour would give the IHC class away)."""
    if name not in _grey_sources:
        import skimage.color
        import skimage.data

        image = getattr(skimage.data, name)()
        grey = skimage.color.rgb2gray(image) if image.ndim == 3 else image / 255.0
        _grey_sources[name] = grey.astype(np.float64)
    return _grey_sources[name]


def class_counts(n: int, balanced: bool) -> list[int]:
    """How many images of each class n images hold: the Kaggle mix (or equal shares), largest remainder."""
    shares = np.full(len(SOURCES), 1 / len(SOURCES)) if balanced else np.asarray(KAGGLE_MIX) / sum(KAGGLE_MIX)
    exact = shares * n
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def labels_for(n: int, seed: int, split: str, balanced: bool) -> np.ndarray:
    counts = class_counts(n, balanced)
    labels = np.repeat(np.arange(len(SOURCES)), counts)
    return np.random.default_rng([seed, 0 if split == "train" else 1]).permutation(labels)


def render_patch(label: int, rng: np.random.Generator, split: str) -> np.ndarray:
    """One uint8 RGB [100, 100, 3] patch of class ``label``, cut from its photograph's ``split`` region."""
    import skimage.transform

    grey = _source(SOURCES[label])
    height, width = grey.shape
    scale = np.exp(rng.uniform(np.log(0.75), np.log(1.33)))
    # cut a square big enough that rotating it by any angle leaves no empty corners
    side = int(np.ceil(PATCH * scale * np.sqrt(2)))
    left_edge = 0 if split == "train" else int(width * TRAIN_REGION)
    right_edge = int(width * TRAIN_REGION) if split == "train" else width
    x = rng.integers(left_edge, right_edge - side + 1)
    y = rng.integers(0, height - side + 1)
    crop = grey[y:y + side, x:x + side]
    crop = skimage.transform.rotate(crop, rng.uniform(0, 360), order=1, mode="reflect")
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    inner = round(PATCH * scale)
    start = (side - inner) // 2
    crop = skimage.transform.resize(crop[start:start + inner, start:start + inner], (PATCH, PATCH), order=1,
                                    anti_aliasing=scale > 1)
    # the same brightness, contrast and colour distributions for every class: only texture is left
    z = (crop - crop.mean()) / (crop.std() + 1e-6)
    g = np.clip(rng.uniform(0.45, 0.75) + rng.uniform(0.12, 0.22) * z, 0, 1)[..., None]
    dark = np.clip(DARK + rng.normal(0, 0.06, 3), 0, 1)
    light = np.clip(LIGHT + rng.normal(0, 0.04, 3), 0, 1)
    rgb = dark + g * (light - dark) + rng.normal(0, 0.02, (PATCH, PATCH, 3))
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, 0 if split == "train" else 1, index])


def make_proxy(out, n_train: int = 540, n_test: int = 200, seed: int = 0, balanced: bool = False) -> Path:
    """Write the proxy dataset into ``out``; returns the folder."""
    from PIL import Image

    out = Path(out)
    for split, n, first in (("train", n_train, 1), ("test", n_test, 10001)):
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        labels = labels_for(n, seed, split, balanced)
        rows = []
        for index, label in enumerate(labels):
            name = f"{first + index}.png"
            patch = render_patch(int(label), image_rng(seed, split, index), split)
            Image.fromarray(patch).save(folder / name, optimize=False)
            rows.append(f"{name},{int(label)}")
        if split == "train":
            (out / "train.csv").write_text("Filename,Label\n" + "\n".join(rows) + "\n")
        else:
            (out / "example.csv").write_text("Filename,Label\n" + "".join(f"{r.split(',')[0]},0\n" for r in rows))
            (out / ANSWERS).write_text("Filename,Label\n" + "\n".join(rows) + ("\n" if rows else ""))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.proxy_data", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to write into (created if needed)")
    parser.add_argument("--train", type=int, default=540, help="training images (default 540)")
    parser.add_argument("--test", type=int, default=200, help="test images, numbered from 10001 (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--balanced", action="store_true", help="equal classes instead of the Kaggle mix")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out = make_proxy(args.out, args.train, args.test, args.seed, balanced=args.balanced)
    print(f"wrote {args.train} training and {args.test} test images to {out} "
          f"(answers in {out / ANSWERS}) in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
