"""Moodle's side of the marking loop: its submission names, its grading worksheet, its feedback-zip layout.

- "Download all submissions" names each file ``Full Name_123456_assignsubmission_file_Team.ipynb`` or,
  with "download submissions in folders", puts it in ``Full Name_123456_assignsubmission_file_/``;
  123456 is the participant number (``participant_of``).
- "Download grading worksheet" is a CSV whose first column, ``Identifier``, reads "Participant 123456";
  ``read_worksheet`` keeps every row and column as it came, ``worksheet_text`` writes it back with only
  ``Grade`` and ``Feedback comments`` changed (same BOM, same line ends).
- "Upload multiple feedback files in a zip" splits each path on ``_`` and reads the participant number
  from it, so feedback goes in folders named like the submissions' (``feedback_folder``).
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

# "Full Name_123456_assignsubmission_file_" + rest; Moodle writes the name with spaces, never "_".
_SUBMISSION = re.compile(r"^(?P<name>.+?)_(?P<participant>\d+)_assignsubmission_(?P<plugin>[a-z]+)_?(?P<rest>.*)$")
_IDENTIFIER = re.compile(r"^\s*Participant\s+(\d+)\s*$", re.IGNORECASE)
REQUIRED_COLUMNS = ("Identifier", "Full name", "Status", "Grade", "Feedback comments")
MOODLE_COLUMNS = ("Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade",
                  "Grade can be changed", "Last modified (submission)", "Last modified (grade)", "Feedback comments")


class MoodleError(Exception):
    """A worksheet or submission that is not shaped as Moodle writes it; the message names file and row."""


@dataclass(frozen=True)
class SubmissionName:
    participant: str | None     # Moodle's participant number, None when the path is not Moodle's
    full_name: str | None
    folder: str | None          # "Full Name_123456_assignsubmission_file_" (the prefix Moodle's upload reads)
    filename: str               # the student's own file name, which must be Team_Name.ipynb


def participant_of(label: str) -> SubmissionName:
    """Read Moodle's participant prefix from a notebook path (a folder's, a file's, or a zip member's)."""
    parts = PurePosixPath(label.replace("\\", "/")).parts
    for depth in range(len(parts) - 1, -1, -1):   # the innermost component that carries the prefix
        found = _SUBMISSION.match(parts[depth])
        if found:
            rest = found["rest"] if depth == len(parts) - 1 else parts[-1]
            return SubmissionName(found["participant"], found["name"],
                                  f"{found['name']}_{found['participant']}_assignsubmission_{found['plugin']}_",
                                  rest or parts[-1])
    return SubmissionName(None, None, None, parts[-1] if parts else label)


def feedback_folder(participant: str, full_name: str) -> str:
    """The folder Moodle's feedback-zip upload files under ``participant`` (its own download's name)."""
    return f"{full_name}_{participant}_assignsubmission_file_"


@dataclass
class Worksheet:
    path: Path
    header: list[str]                 # column names, stripped, for lookups
    rows: list[list[str]]
    raw_header: list[str] = field(default_factory=list)   # the header row as read, written back as it was
    bom: bool = False
    newline: str = "\n"
    by_participant: dict[str, int] = field(default_factory=dict)   # participant -> index in rows

    def column(self, name: str) -> int:
        return self.header.index(name)

    def get(self, participant: str, name: str) -> str:
        row = self.rows[self.by_participant[participant]]
        index = self.column(name)
        return row[index] if index < len(row) else ""

    def submitted(self, participant: str) -> bool:
        """Moodle's Status says "Submitted for grading" (or "Submitted", in other versions) when there is one;
        "No submission" and "Draft (not submitted)" are not."""
        status = self.get(participant, "Status").casefold()
        return "submitted" in status and "not submitted" not in status and "no submission" not in status


def read_worksheet(path: str | Path) -> Worksheet:
    """Moodle's grading worksheet, every row and column kept as it is. Raises MoodleError naming file and row."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MoodleError(f"cannot read the grading worksheet {path}: {exc.strerror}") from exc
    bom = raw.startswith(b"\xef\xbb\xbf")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MoodleError(f"the grading worksheet {path} is not UTF-8 (byte {exc.start}); download it again "
                          "from Moodle (Grading action: Download grading worksheet)") from exc
    newline = "\r\n" if "\r\n" in text[:4096] else "\n"
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise MoodleError(f"the grading worksheet {path} is not a CSV file: {exc}") from exc
    if not rows:
        raise MoodleError(f"the grading worksheet {path} is empty")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise MoodleError(f"{path}, row 1: the header lacks {', '.join(repr(c) for c in missing)} (it reads: "
                          f"{', '.join(rows[0])}); use Moodle's 'Download grading worksheet' with offline "
                          "grading worksheets turned on")
    sheet = Worksheet(path, header, rows[1:], raw_header=rows[0], bom=bom, newline=newline)
    ident = header.index("Identifier")
    for number, row in enumerate(sheet.rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        found = _IDENTIFIER.match(row[ident]) if len(row) > ident else None
        if not found:
            raise MoodleError(f"{path}, row {number}: Identifier {row[ident] if len(row) > ident else ''!r} "
                              "is not 'Participant NNN'")
        if found[1] in sheet.by_participant:
            raise MoodleError(f"{path}, row {number}: participant {found[1]} is listed twice "
                              f"(also row {sheet.by_participant[found[1]] + 2})")
        sheet.by_participant[found[1]] = number - 2
    return sheet


def worksheet_text(sheet: Worksheet, grades: dict[str, str], comments: dict[str, str]) -> str:
    """The worksheet with ``Grade`` and ``Feedback comments`` set for the given participants, all else as read."""
    grade, comment = sheet.column("Grade"), sheet.column("Feedback comments")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=sheet.newline)
    writer.writerow(sheet.raw_header or sheet.header)
    changed = {**{p: None for p in grades}, **{p: None for p in comments}}
    rows = [list(r) for r in sheet.rows]
    for participant in changed:
        row = rows[sheet.by_participant[participant]]
        row.extend([""] * (len(sheet.header) - len(row)))
        if participant in grades:
            row[grade] = grades[participant]
        if participant in comments:
            row[comment] = comments[participant]
    writer.writerows(rows)
    return ("\ufeff" if sheet.bom else "") + buffer.getvalue()
