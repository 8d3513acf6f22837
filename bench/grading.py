"""Benchmark: how many ~4 MB notebooks per second `grading check` reads and grades on one core.

Builds a batch of Kaggle-style notebooks (base64 PNG figures, a Ray Tune status table of MBs in one
stream output, thousands of execution counts), then times, side by side on the same files:
  json      json.loads of each file (the floor: nothing can read a notebook faster)
  nbformat  nbformat.read(as_version=4), which also validates against the schema
  grading   grading.check_paths: read, upgrade, and grade all 20 criteria
Run: python bench/grading.py [--notebooks 40] [--mb 4]
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nbformat  # noqa: E402
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output  # noqa: E402

from grading import check_paths  # noqa: E402


def big_notebook(rng: random.Random, megabytes: float):
    figure_bytes = 60_000
    n_figures = 24
    status_bytes = int(megabytes * 1e6) - n_figures * figure_bytes * 4 // 3
    row = "| train_fn_{:05d} | TERMINATED | 127.0.0.1:{} | 0.001 | 0.{:02d} |\n"
    status = "".join(row.format(i, i, i % 97) for i in range(max(1, status_bytes // len(row.format(0, 0, 0)))))

    def figure():
        png = base64.b64encode(rng.randbytes(figure_bytes)).decode()   # incompressible, like real plots
        return new_output("display_data", data={"image/png": png, "text/plain": "<Figure size 640x480>"})

    cells = [new_code_cell("!pip install captum", outputs=[new_output("stream", name="stdout", text="ok\n")]),
             new_markdown_cell("# Nuclei\nTwo ConvNets for H&E nuclei.")]
    cells.append(new_code_cell("class NucleiDataset(Dataset):\n    pass\n"
                               "tr, va = train_test_split(df, test_size=0.2)"))
    cells.append(new_markdown_cell("## Model 1"))
    cells.append(new_code_cell("class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                               "        self.c = nn.Conv2d(3, 8, 3)\n        self.fc = nn.Linear(8, 4)\n"
                               "model1 = Net()"))
    cells.append(new_code_cell("results1 = tune.run(train_fn, config=space, num_samples=10)",
                               outputs=[new_output("stream", name="stdout", text=status)]))
    for i in range(n_figures):
        model = "model1" if i < n_figures // 2 else "model2"
        if i == n_figures // 2:
            cells.append(new_markdown_cell("## Model 2 (ResNet50)"))
            cells.append(new_code_cell("model2 = models.resnet50(pretrained=True)"))
            cells.append(new_code_cell("results2 = tune.run(train_fn2, config=space2, num_samples=10)",
                                       outputs=[new_output("stream", name="stdout", text=status[:100_000])]))
        kind = ("plt.plot(history['loss'])", f"ConfusionMatrixDisplay(confusion_matrix(y, p_{model}))",
                f"viz.visualize_image_attr(Saliency({model}).attribute(x))")[i % 3]
        cells.append(new_code_cell(kind, outputs=[figure()]))
        cells.append(new_markdown_cell(f"The accuracy of {model} is {rng.random():.1%}, which shows a clear "
                                       "improvement because the loss keeps falling. " * 3))
    cells.append(new_code_cell("loss_fn = nn.CrossEntropyLoss(weight=class_weights)"))
    cells.append(new_code_cell("sub.to_csv('submission.csv', index=False)"))
    cells.append(new_markdown_cell("## Discussion\nModel 2 (ResNet50) is better than model 1 by seven points "
                                   "of accuracy, while model 1 trains much faster. " * 4))
    for n, cell in enumerate(c for c in cells if c.cell_type == "code"):
        cell.execution_count = 1000 + 3 * n
    return new_notebook(cells=cells)


def timed(label: str, paths: list[Path], work) -> float:
    start = time.perf_counter()
    for path in paths:
        work(path)
    seconds = time.perf_counter() - start
    print(f"{label:<9} {len(paths) / seconds:7.1f} notebooks/s  ({seconds:.2f} s)")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=int, default=40)
    parser.add_argument("--mb", type=float, default=4.0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})   # one core, as the target says
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.notebooks):
            path = Path(tmp) / f"Team_{i:03d}.ipynb"
            nbformat.write(big_notebook(rng, args.mb), path)
            paths.append(path)
        size = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
        print(f"{len(paths)} notebooks of {size:.1f} MB on one core")
        floor = timed("json", paths, lambda p: json.loads(p.read_bytes()))
        validated = timed("nbformat", paths, lambda p: nbformat.read(p, as_version=4))
        graded = timed("grading", paths, lambda p: list(check_paths([p])))
        reports = list(check_paths(paths))
        complete = sum(r.complete for r in reports)
        print(f"grading takes {graded / floor:.1f}x the time of json.loads alone and "
              f"{graded / validated:.2f}x the time of nbformat.read with validation; "
              f"{complete}/{len(reports)} graded complete")


if __name__ == "__main__":
    main()
