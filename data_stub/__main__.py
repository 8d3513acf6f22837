"""python -m data_stub --out DIR [--train N] [--test M] [--seed S] [--zip]"""
from __future__ import annotations

import argparse
import sys
import time

from . import make_stub


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data_stub",
        description="Write a synthetic H&E nuclei dataset in the Kaggle layout (train.csv, example.csv, "
                    "train/, test/). Same arguments, same bytes.")
    parser.add_argument("--out", required=True, help="folder to write into (created if needed)")
    parser.add_argument("--train", type=int, default=3000, help="training images (default 3000)")
    parser.add_argument("--test", type=int, default=800, help="test images, numbered from 10001 (default 800)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--zip", action="store_true", help="also write train.zip and test.zip")
    args = parser.parse_args(argv)
    if args.train < 1 or args.test < 0:
        parser.error("--train must be at least 1 and --test at least 0")
    start = time.perf_counter()
    out = make_stub(args.out, args.train, args.test, args.seed, zip=args.zip)
    print(f"wrote {args.train} training and {args.test} test images to {out} "
          f"in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
