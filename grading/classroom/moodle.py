"""Moodle's side of the marking loop: its submission names, its grading worksheet, its feedback-zip layout.

What Moodle's own code (mod/assign) does, and what this module does to match it:

- "Download all submissions" (``classes/downloader.php``) names each file
  ``Full Name_123456_assignsubmission_file_Team.ipynb`` or, with "download submissions in folders", puts it in
  ``Full Name_123456_assignsubmission_file/`` (``..._file_/`` before Moodle 4.1); 123456 is the participant
  number (``participant_of``). The name part is the full name with ``_`` turned into spaces and the characters
  ``clean_filename`` drops removed (``download_name``); its zip writer turns ``?`` and ``*`` into ``_``. With
  blind marking the name part is "Participant"; with team submissions it is the group's name and the number
  is the group's id, not a participant's.
- "Download grading worksheet" is a CSV whose first column, ``Identifier``, reads "Participant 123456"
  (there is no ``Full name`` column under blind marking). Moodle reads it back with PHP's ``fgetcsv``
  (``lib/csvlib.class.php``), whose escape character is a backslash: inside quotes ``\"`` does not end the
  field and the backslash is kept. ``read_php_csv`` reads and ``php_csv_text`` writes with exactly those
  rules, so what Moodle imports is what was written. ``worksheet_text`` changes only ``Grade`` and
  ``Feedback comments`` (same BOM, same line ends).
- "Upload multiple feedback files in a zip" (``feedback/file/importziplib.php``) splits each folder name with
  ``explode('_', $name, 5)`` and takes the second part as the participant number, so a feedback folder is
  built from a name part with no ``_`` and the number (``feedback_folder``), never copied from the download.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

# "Full Name_123456_assignsubmission_file_" + rest; Moodle writes the name with spaces, never "_" (a "?" or
# "*" in it becomes "_" in the zip, so the name is matched lazily up to the last "_NUMBER_assignsubmission").
_SUBMISSION = re.compile(r"^(?P<name>.+?)_(?P<participant>\d+)_assignsubmission_(?P<plugin>[a-z]+)_?(?P<rest>.*)$")
# a team submission of students in no group: "Default group_assignsubmission_file" (no number at all)
_NUMBERLESS = re.compile(r"^(?P<name>[^/]+?)_assignsubmission_(?P<plugin>[a-z]+)_?(?P<rest>.*)$")
_IDENTIFIER = re.compile(r"^\s*Participant\s+(\d+)\s*$", re.IGNORECASE)
REQUIRED_COLUMNS = ("Identifier", "Status", "Grade", "Feedback comments")   # "Full name" is absent when blind
# what Moodle's clean_filename (PARAM_FILE) removes from a name, and what its zip writer turns into "_"
_DROPPED = re.compile(r"[\x00-\x1f\x7f&<>\"`|':\\/]")
_UNDERSCORED = re.compile(r"[?*]")
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


def numberless_prefix(label: str) -> str | None:
    """The name part of a Moodle prefix that carries no number ("Default group", a team submission of
    students in no group), or None."""
    for part in PurePosixPath(label.replace("\\", "/")).parts:
        found = _NUMBERLESS.match(part)
        if found and not _SUBMISSION.match(part):
            return found["name"]
    return None


def download_name(full_name: str) -> str:
    """The name part Moodle's download gives ``full_name``: "_" as spaces, clean_filename's characters dropped,
    "?" and "*" as "_" (its zip writer), in Unicode's composed form."""
    name = _DROPPED.sub("", unicodedata.normalize("NFC", full_name).replace("_", " "))
    return _UNDERSCORED.sub("_", name)


def same_person(name_part: str, full_name: str) -> bool:
    """Whether a download's name part is ``full_name`` as Moodle writes it (spacing, case, and the characters
    its download drops or turns into "_" aside)."""
    def key(text: str) -> str:
        return " ".join(download_name(text).replace("_", " ").casefold().split())
    return key(name_part) == key(full_name)


def feedback_folder(participant: str, full_name: str | None) -> str:
    """The folder Moodle's feedback-zip upload files under ``participant``.

    Its importer splits the folder name with ``explode('_', $name, 5)`` and needs the second part to be the
    participant number, so the name part has no "_" (nor the "?" and "*" its zip writer turns into "_", nor
    what clean_filename drops). The trailing "_" is the form before Moodle 4.1, which 4.1 and later read too."""
    name = " ".join(_UNDERSCORED.sub(" ", download_name(full_name or "")).replace("_", " ").split())
    return f"{name or 'Participant'}_{participant}_assignsubmission_file_"


def read_php_csv(text: str, delimiter: str = ",") -> list[list[str]]:
    r"""Records as PHP's ``fgetcsv`` reads them (enclosure ``"``, escape ``\``), after Moodle's own step of
    turning every ``\r\n`` and ``\r`` into ``\n``. Inside quotes a backslash makes the next character
    ordinary (both are kept) and ``""`` is one ``"``; text after a closing quote, up to the delimiter, is
    kept; an unquoted field is taken as it stands (only its line end dropped)."""
    text = re.sub(r"\r\n?", "\n", text)
    rows: list[list[str]] = []
    at, end = 0, len(text)
    while at < end:
        row: list[str] = []
        while True:
            lead = at
            while lead < end and text[lead] in " \t" and text[lead] != delimiter:
                lead += 1
            if lead < end and text[lead] == '"':
                value, at = _enclosed(text, lead + 1)
                stop = _field_end(text, at, delimiter)
                value += text[at:stop]
            else:
                stop = _field_end(text, at, delimiter)
                value = text[at:stop]
            row.append(value)
            at = stop
            if at < end and text[at] == delimiter:
                at += 1
                continue
            at += 1           # the line end (or past the end)
            break
        rows.append(row)
    return rows


def _enclosed(text: str, at: int) -> tuple[str, int]:
    """The value of a quoted field starting after its opening quote, and where its closing quote ends."""
    out: list[str] = []
    start = at
    while at < len(text):
        char = text[at]
        if char == "\\" and at + 1 < len(text):
            at += 2                       # escaped: the next character is ordinary, both are kept
        elif char == '"':
            if at + 1 < len(text) and text[at + 1] == '"':
                out.append(text[start:at + 1])
                at += 2
                start = at
            else:
                out.append(text[start:at])
                return "".join(out), at + 1
        else:
            at += 1
    out.append(text[start:])              # unclosed: the rest of the file, as PHP does
    return "".join(out), len(text)


def _field_end(text: str, at: int, delimiter: str) -> int:
    while at < len(text) and text[at] not in (delimiter, "\n"):
        at += 1
    return at


class UnwritableValue(ValueError):
    """A value no CSV text makes PHP's fgetcsv read back: it ends in an unpaired backslash."""


def php_csv_field(value: str, delimiter: str = ",") -> str:
    """``value`` written so that PHP's ``fgetcsv`` reads it back unchanged (the inverse of ``read_php_csv``).

    Python's csv writes a quote as ``""`` everywhere; after a backslash PHP takes that first ``"`` as escaped
    and the second as the field's end, so a quote that follows an unpaired backslash is written once."""
    if not any(c in value for c in (delimiter, '"', "\n", "\r")):
        return value          # unquoted, a backslash is an ordinary character
    out, escaped = ['"'], False
    for char in value:
        if char == '"' and not escaped:
            out.append('""')
        else:
            out.append(char)
        escaped = char == "\\" and not escaped
    if escaped:
        raise UnwritableValue("it ends in a backslash, which would escape the closing quote")
    out.append('"')
    return "".join(out)


def php_csv_text(rows: list[list[str]], newline: str = "\n", delimiter: str = ",") -> str:
    """Rows as CSV text that PHP's ``fgetcsv`` (and so Moodle's worksheet upload) reads back exactly.
    Raises UnwritableValue naming the row (1-based) and column."""
    lines = []
    for number, row in enumerate(rows, start=1):
        fields = []
        for column, value in enumerate(row, start=1):
            try:
                fields.append(php_csv_field(value, delimiter))
            except UnwritableValue as exc:
                raise UnwritableValue(f"row {number}, column {column}: {exc}") from None
        lines.append(delimiter.join(fields) + newline)
    return "".join(lines)


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
        """The cell, or "" where the worksheet has no such column (no "Full name" under blind marking)."""
        if name not in self.header:
            return ""
        row = self.rows[self.by_participant[participant]]
        index = self.column(name)
        return row[index] if index < len(row) else ""

    @property
    def blind(self) -> bool:
        """Blind marking: Moodle leaves out the names; the participant number is the only identity."""
        return "Full name" not in self.header

    def full_name(self, participant: str) -> str:
        return self.get(participant, "Full name").strip() or f"Participant {participant}"

    def row_number(self, participant: str) -> int:
        """The record's number in the file, the header being 1."""
        return self.by_participant[participant] + 2

    def submitted(self, participant: str) -> bool:
        """Moodle's Status says "Submitted for grading" (or "Submitted", in other versions) when there is one;
        "No submission" and "Draft (not submitted)" are not."""
        status = self.get(participant, "Status").casefold()
        return "submitted" in status and "not submitted" not in status and "no submission" not in status

    def draft(self, participant: str) -> bool:
        return "draft" in self.get(participant, "Status").casefold()

    def locked(self, participant: str) -> bool:
        """"Grade can be changed: No": the grade is locked or overridden in the gradebook; Moodle's upload
        skips it."""
        return self.get(participant, "Grade can be changed").strip().casefold() == "no"


def read_worksheet(path: str | Path) -> Worksheet:
    """Moodle's grading worksheet, read as Moodle reads it (PHP's fgetcsv), every row and column kept as it is.
    Raises MoodleError naming file and row."""
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
    rows = read_php_csv(text)
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
        if len(row) != len(header):
            raise MoodleError(f"{path}, row {number}: {len(row)} fields where the header has {len(header)}; "
                              "Moodle would refuse this file too: download the worksheet again")
        found = _IDENTIFIER.match(row[ident])
        if not found:
            raise MoodleError(f"{path}, row {number}: Identifier {row[ident]!r} is not 'Participant NNN'")
        if found[1] in sheet.by_participant:
            raise MoodleError(f"{path}, row {number}: participant {found[1]} is listed twice "
                              f"(also row {sheet.by_participant[found[1]] + 2})")
        sheet.by_participant[found[1]] = number - 2
    return sheet


def worksheet_text(sheet: Worksheet, grades: dict[str, str], comments: dict[str, str]) -> str:
    """The worksheet with ``Grade`` and ``Feedback comments`` set for the given participants, all else as read,
    written so that Moodle's upload (PHP's fgetcsv) reads back exactly these values. Raises MoodleError for a
    value it cannot write."""
    grade, comment = sheet.column("Grade"), sheet.column("Feedback comments")
    changed = {**{p: None for p in grades}, **{p: None for p in comments}}
    rows = [list(r) for r in sheet.rows]
    for participant in changed:
        row = rows[sheet.by_participant[participant]]
        row.extend([""] * (len(sheet.header) - len(row)))
        if participant in grades:
            row[grade] = grades[participant]
        if participant in comments:
            row[comment] = comments[participant]
    try:
        text = php_csv_text([sheet.raw_header or sheet.header, *rows], sheet.newline)
    except UnwritableValue as exc:
        raise MoodleError(f"{sheet.path}: cannot write the filled worksheet, {exc}; Moodle's upload "
                          "could not read it back") from None
    return ("\ufeff" if sheet.bom else "") + text
