"""The Kaggle submission: predict the test set, write it in example.csv's order, check it before upload.

Public API (chapter 07 calls these):

- ``predict_test(model, loader, device="cpu", tta=False) -> numpy int64 [N]``: predicted classes for
  every item the (unshuffled) test loader yields, in order; batched, through ``labkit.train.evaluate``
  (``tta``: mean softmax over the 8 flips/rotations).
- ``write_submission(path, filenames, labels, example_csv) -> Path``: one row per row of example.csv,
  in its order, header ``Filename,Label``; refuses missing or unknown filenames; atomic write; the
  written file is validated before returning.
- ``validate_submission(path, example_csv) -> SubmissionReport(path, rows, class_counts,
  in_example_order)``; raises ``SubmissionError`` naming the file, every kind of problem found and the
  first bad rows (up to 5): empty file, wrong header, malformed rows, non-integer or out-of-range
  labels, duplicate, missing or extra filenames, row-count mismatch.
- ``class_mix_table(pred_labels, train_labels) -> DataFrame``: predicted class mix beside the training
  mix (counts and %), one row per class.
- ``choose_submission(test) -> (name, reason)``: the submitted model from a paired test of the two
  (``conclusions.paired_test``): the more accurate where the test tells them apart, else the smaller model1.
"""
from __future__ import annotations

import csv
import io
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from labkit import CLASS_NAMES, N_CLASSES
from labkit.train import evaluate

HEADER = ["Filename", "Label"]
MAX_BAD_ROWS = 5


class SubmissionError(ValueError):
    """A submission file does not match example.csv; the message names the file and the first bad rows."""

    def __init__(self, path, problems: Sequence[str], bad_rows: Sequence[str] = ()):
        self.path, self.problems, self.bad_rows = Path(path), list(problems), list(bad_rows)
        lines = [f"{self.path} is not a valid submission ({len(self.problems)} problem(s)):"]
        lines += [f"  - {p}" for p in self.problems]
        if self.bad_rows:
            lines.append("  first bad rows (line numbers count the header as line 1):")
            lines += [f"    {r}" for r in self.bad_rows[:MAX_BAD_ROWS]]
        lines.append("  Re-create it with labkit.submission.write_submission(...) from the test predictions "
                     "(chapter 07), which writes one row per row of example.csv.")
        super().__init__("\n".join(lines))


@dataclass
class SubmissionReport:
    path: Path
    rows: int
    class_counts: dict = field(default_factory=dict)   # class id -> rows predicted as that class
    in_example_order: bool = True

    def __str__(self) -> str:
        mix = ", ".join(f"{CLASS_NAMES[c]} {n}" for c, n in sorted(self.class_counts.items()))
        order = "in example.csv order" if self.in_example_order else "NOT in example.csv order (Kaggle accepts it)"
        return f"{self.path.name}: {self.rows} rows, {order}; predicted: {mix}"


def predict_test(model, loader, device="cpu", tta: bool = False) -> np.ndarray:
    """Predicted class per test item, in loader order (the loader must not shuffle)."""
    return np.asarray(evaluate(model, loader, device=device, tta=tta).preds, dtype=np.int64)


def _read_rows(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM from Excel is harmless
    except FileNotFoundError:
        raise SubmissionError(path, ["the file does not exist"]) from None
    return [row for row in csv.reader(io.StringIO(text)) if row and any(cell.strip() for cell in row)]


def _example_filenames(example_csv) -> list[str]:
    example_csv = Path(example_csv)
    rows = _read_rows(example_csv)
    if not rows or [c.strip() for c in rows[0]] != HEADER:
        raise SubmissionError(example_csv, [("example.csv itself has no 'Filename,Label' header: is this the "
                                             "competition's example.csv?")])
    return [row[0].strip() for row in rows[1:]]


def _parse_label(cell: str) -> int | None:
    cell = cell.strip()
    if not cell or not cell.lstrip("-").isdigit():
        return None  # "1.0", "cancer", "" are not integer labels
    return int(cell)


def validate_submission(path, example_csv) -> SubmissionReport:
    """Check a submission against example.csv; raise SubmissionError listing every problem found."""
    path = Path(path)
    expected = _example_filenames(example_csv)
    rows = _read_rows(path)
    if not rows:
        raise SubmissionError(path, ["the file is empty (no header, no rows)"])
    problems: list[str] = []
    bad: list[str] = []
    header = [c.strip() for c in rows[0]]
    if header != HEADER:
        problems.append(f"the header is {','.join(rows[0])!r}; it must be exactly 'Filename,Label'")
        bad.append(f"line 1: {','.join(rows[0])!r} (header)")
    body = rows[1:]
    if not body:
        problems.append("there are no data rows after the header")

    filenames: list[str] = []
    labels: list[int] = []
    first_line: dict[str, int] = {}
    malformed = non_integer = out_of_range = duplicates = 0
    expected_set = set(expected)
    for line_no, row in enumerate(body, start=2):
        shown = ",".join(row)
        if len(row) != 2:
            malformed += 1
            bad.append(f"line {line_no}: {shown!r} has {len(row)} fields, expected 2 (Filename,Label)")
            continue
        name, label = row[0].strip(), _parse_label(row[1])
        if label is None:
            non_integer += 1
            bad.append(f"line {line_no}: {shown!r} label {row[1]!r} is not an integer")
        elif not 0 <= label < N_CLASSES:
            out_of_range += 1
            bad.append(f"line {line_no}: {shown!r} label {label} is outside 0..{N_CLASSES - 1}")
        if name in first_line:
            duplicates += 1
            bad.append(f"line {line_no}: {name!r} repeats line {first_line[name]}")
        else:
            first_line[name] = line_no
        if name not in expected_set:
            bad.append(f"line {line_no}: {name!r} is not in example.csv")
        filenames.append(name)
        if label is not None and 0 <= label < N_CLASSES:
            labels.append(label)

    if malformed:
        problems.append(f"{malformed} row(s) do not have exactly two fields")
    if non_integer:
        problems.append(f"{non_integer} label(s) are not integers")
    if out_of_range:
        problems.append(f"{out_of_range} label(s) are outside 0..{N_CLASSES - 1}")
    if duplicates:
        problems.append(f"{duplicates} filename(s) appear more than once")
    missing = [name for name in expected if name not in first_line]
    extra = [name for name in first_line if name not in expected_set]
    if missing:
        problems.append(f"{len(missing)} filename(s) of example.csv are missing, e.g. {', '.join(missing[:5])}")
    if extra:
        problems.append(f"{len(extra)} filename(s) are not in example.csv, e.g. {', '.join(extra[:5])}")
    if body and len(body) != len(expected):
        problems.append(f"{len(body)} data rows, but example.csv has {len(expected)}")
    if problems:
        raise SubmissionError(path, problems, bad)
    counts = Counter(labels)
    return SubmissionReport(path, len(body), {c: counts.get(c, 0) for c in range(N_CLASSES)},
                            in_example_order=filenames == expected)


def write_submission(path, filenames: Sequence[str], labels, example_csv) -> Path:
    """Write ``Filename,Label`` rows in example.csv's order (atomically), then validate the file."""
    path = Path(path)
    filenames = [os.path.basename(str(f)) for f in filenames]
    labels = np.asarray(labels).ravel()
    if len(filenames) != len(labels):
        raise ValueError(f"{len(filenames)} filenames but {len(labels)} labels for {path}: give one label per file")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels for {path} must be integers (class ids 0..{N_CLASSES - 1}), got {labels.dtype}")
    by_name = dict(zip(filenames, labels.tolist()))
    expected = _example_filenames(example_csv)
    missing = [name for name in expected if name not in by_name]
    extra = sorted(set(by_name) - set(expected))
    problems = []
    if missing:
        problems.append(f"{len(missing)} example.csv filename(s) have no prediction, e.g. {', '.join(missing[:5])}")
    if extra:
        problems.append(f"{len(extra)} predicted filename(s) are not in example.csv, e.g. {', '.join(extra[:5])}")
    if len(by_name) != len(filenames):
        problems.append(f"{len(filenames) - len(by_name)} filename(s) are given twice")
    if problems:
        raise SubmissionError(path, problems)
    frame = pd.DataFrame({HEADER[0]: expected, HEADER[1]: [int(by_name[name]) for name in expected]})
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")  # written whole, then renamed: never half a file
    frame.to_csv(partial, index=False, lineterminator="\n")
    os.replace(partial, path)
    validate_submission(path, example_csv)
    return path


def class_mix_table(pred_labels, train_labels) -> pd.DataFrame:
    """Counts and percentages per class: the test predictions beside the training labels."""
    def counts(values) -> np.ndarray:
        values = np.asarray(values, dtype=np.int64).ravel()
        return np.bincount(values, minlength=N_CLASSES)[:N_CLASSES]

    pred, train = counts(pred_labels), counts(train_labels)
    table = pd.DataFrame({
        "predicted (test)": pred,
        "predicted %": 100 * pred / max(pred.sum(), 1),
        "training": train,
        "training %": 100 * train / max(train.sum(), 1),
    }, index=pd.Index(CLASS_NAMES, name="class"))
    table["difference (pp)"] = table["predicted %"] - table["training %"]
    return table.round(1)


SMALLER_MODEL = "model1"   # far fewer parameters: cheaper to run and to retrain


def choose_submission(test) -> tuple[str, str]:
    """The model to submit, and why, from McNemar's test of model1 against model2 on the validation split
    (a ``conclusions.PairedTest``). Where the test cannot tell them apart, a higher accuracy by a patch or two
    is noise, so the smaller model is submitted."""
    if test.winner is not None:
        return test.winner, "the paired test favours it"
    return SMALLER_MODEL, "where the test cannot separate the two, the smaller model is submitted"
