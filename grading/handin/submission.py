"""Validate a submission.csv against the competition's example.csv: header, file names, count, labels."""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

LABELS = ("0", "1", "2", "3")   # DATA_FACTS.md: integer labels 0..3 (grading does not import labkit)


class SubmissionFileError(Exception):
    """A file that cannot be read as CSV at all (missing, empty, not UTF-8)."""


@dataclass
class SubmissionCheck:
    path: str
    rows: int = 0
    problems: list[str] = field(default_factory=list)   # make the submission invalid
    warnings: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems

    def to_text(self) -> str:
        head = f"{self.path}: {'valid' if self.valid else 'INVALID'} ({self.rows} rows)"
        return "\n".join([head] + [f"  ✗ {p}" for p in self.problems] + [f"  ! {w}" for w in self.warnings]) + "\n"

    def as_dict(self) -> dict:
        return {"file": self.path, "valid": self.valid, "rows": self.rows, "problems": self.problems,
                "warnings": self.warnings}


def _read(path: Path) -> list[list[str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = [row for row in csv.reader(handle)]
    except OSError as exc:
        raise SubmissionFileError(f"cannot read {path}: {exc.strerror}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SubmissionFileError(f"{path} is not a UTF-8 CSV file ({exc})") from exc
    if not rows:
        raise SubmissionFileError(f"{path} is empty; it needs the header Filename,Label and one row per test image")
    return rows


def check_submission(path: str | Path, example: str | Path, labels=LABELS, max_shown: int = 10) -> SubmissionCheck:
    """Compare ``path`` with ``example``; problems name the line (1 = header) and say what is wrong."""
    path, example = Path(path), Path(example)
    rows, expected_rows = _read(path), _read(example)
    check = SubmissionCheck(str(path), rows=len(rows) - 1)
    header, expected_header = [h.strip() for h in rows[0]], [h.strip() for h in expected_rows[0]]
    if header != expected_header:
        check.problems.append(f"line 1: header is {','.join(rows[0])!r}, expected {','.join(expected_header)!r}")
        return check   # columns cannot be trusted; the rest would be noise
    expected_files = [r[0].strip() for r in expected_rows[1:] if r]
    expected_set = set(expected_files)
    allowed = set(labels)
    bad_rows, seen, files = [], set(), []
    for line, row in enumerate(rows[1:], start=2):
        if not row or not any(cell.strip() for cell in row):
            bad_rows.append(f"line {line}: empty row")
            continue
        if len(row) != len(header):
            bad_rows.append(f"line {line}: {len(row)} fields, expected {len(header)}: {','.join(row)[:60]!r}")
            continue
        name, label = row[0].strip(), row[1].strip()
        if name not in expected_set:
            bad_rows.append(f"line {line}: {name!r} is not a test file in {example.name}")
        elif name in seen:
            bad_rows.append(f"line {line}: {name!r} is listed twice")
        if label not in allowed:
            bad_rows.append(f"line {line}: label {label!r} is not one of {', '.join(labels)}")
        seen.add(name)
        files.append(name)
    if bad_rows:
        check.problems.extend(bad_rows[:max_shown])
        if len(bad_rows) > max_shown:
            check.problems.append(f"... and {len(bad_rows) - max_shown} more bad rows")
    if check.rows != len(expected_files):
        check.problems.append(f"{check.rows} rows, expected {len(expected_files)} (one per row of {example.name})")
    missing = [f for f in expected_files if f not in seen]
    if missing:
        check.problems.append(f"{len(missing)} test files have no prediction, e.g. {', '.join(missing[:5])}")
    if not check.problems and files != expected_files:
        check.warnings.append(f"rows are not in the order of {example.name} (Kaggle scores them anyway)")
    return check
