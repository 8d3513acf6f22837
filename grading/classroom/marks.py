"""Mark a whole class: leaderboard marks, Moodle's worksheet filled in, feedback for each student.

The engine behind ``python -m grading marks``. One row per hand-in (and one per worksheet participant
with none): who handed it in, which leaderboard team its file name matches, that team's best score and
the mark its threshold earns, the rubric verdicts, and flags for the instructor. The rules:

- an exact match (``Dogs Versus Cats`` <-> ``Dogs_Versus_Cats.ipynb``) earns the leaderboard mark;
- a name that matches only ignoring case, spaces or punctuation is *pending*: the mark it would earn
  is shown and flagged, and written to the worksheet only once the instructor confirms it;
- a name that matches no team earns no leaderboard mark (the coursework), also pending until confirmed:
  the rule is never applied silently. ``--confirm KEY=TEAM`` pairs a hand-in with a team, ``--confirm
  KEY=none`` applies the rule (KEY: the participant number or the notebook's file name);
- no notebook, a notebook handed in twice, two hand-ins of the same team, or an unreadable file is
  flagged for a look too. The notebook half of the mark stays the instructor's (``--notebook-marks``).
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..handin.check import grade_notebook
from ..handin.names import suggest_team_name
from ..handin.reader import LoadedNotebook
from ..handin.results import NotebookReport
from ..handin.rubric import Criterion
from .batch import Member, list_members, load_member, run_all
from .feedback import cell_quotes, feedback_page, summary_html
from .leaderboard import TeamScore, Thresholds
from .match import _closest, normalise
from .moodle import (
    MoodleError,
    Worksheet,
    feedback_folder,
    numberless_prefix,
    participant_of,
    same_person,
)

EXACT, NORMALISED, NONE, CONFIRMED = "exact", "normalised", "none", "confirmed"
APPLIED, PENDING, NOT_MARKED = "applied", "pending", "none"


class MarksError(Exception):
    """Input that cannot be marked (a confirmation or notebook-marks file that names nobody, ...)."""


@dataclass
class StudentRow:
    participant: str | None
    full_name: str | None
    notebook: str | None = None          # the label of the hand-in (None: no notebook)
    filename: str | None = None          # the student's own file name
    team: str | None = None              # the leaderboard team it is paired with
    match: str = NONE                    # exact | normalised | none | confirmed
    suggestion: str | None = None        # the closest leaderboard team when the name does not match
    score: float | None = None
    proposed_mark: float | None = None   # what the leaderboard half would be
    mark_status: str = NOT_MARKED        # applied | pending | none
    notebook_mark: float | None = None
    complete: bool | None = None
    statuses: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)     # settled things worth knowing (not flags)
    comment: str = ""                    # Moodle's "Feedback comments" (HTML)
    feedback: str | None = None          # the HTML page
    locked: bool = False                 # "Grade can be changed: No": the Grade is left as it is
    folder: str | None = None            # where Moodle's feedback upload files it
    report: NotebookReport | None = None
    quotes: dict = field(default_factory=dict)   # criterion -> (cell number, source) for the feedback page

    @property
    def leaderboard_mark(self) -> float | None:
        return self.proposed_mark if self.mark_status == APPLIED else None

    @property
    def grade(self) -> float | None:
        """What goes into Moodle's Grade column (None: leave it empty)."""
        if self.leaderboard_mark is None or self.locked:
            return None
        return self.leaderboard_mark + (self.notebook_mark or 0.0)

    def as_dict(self) -> dict:
        return {"participant": self.participant, "full_name": self.full_name, "notebook": self.notebook,
                "filename": self.filename, "team": self.team, "match": self.match, "suggestion": self.suggestion,
                "score": self.score, "leaderboard_mark": self.leaderboard_mark, "proposed_mark": self.proposed_mark,
                "mark_status": self.mark_status, "notebook_mark": self.notebook_mark, "grade": self.grade,
                "complete": self.complete, "locked": self.locked, "criteria": self.statuses, "flags": self.flags,
                "notes": self.notes}


@dataclass
class ClassMarks:
    rows: list[StudentRow]
    thresholds: Thresholds
    scores: dict[str, TeamScore]
    teams_without_notebook: list[tuple[str, str | None]]
    criteria: list[str]
    other_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)   # about the worksheet as a whole, said before upload

    @property
    def flagged(self) -> list[StudentRow]:
        return [r for r in self.rows if r.flags]


def fmt_number(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}".rstrip("0").rstrip(".")


def _match(stem: str, teams: list[str]) -> tuple[str | None, str]:
    for team in teams:
        if stem in (team, suggest_team_name(team)):
            return team, EXACT
    key = normalise(stem)
    for team in teams:
        if normalise(team) == key:
            return team, NORMALISED
    return None, NONE


def _grade_member(task: tuple[Member, str, str | None, list[Criterion]]):
    member, filename, team, rubric = task
    loaded, digest = load_member(member)
    loaded = LoadedNotebook(loaded.label, filename, loaded.nb, loaded.error)
    report = grade_notebook(loaded, team, rubric)
    return report, cell_quotes(report, loaded.nb), digest


def parse_confirmations(items: list[str]) -> dict[str, str | None]:
    """``KEY=TEAM`` or ``KEY=none`` -> {KEY: TEAM or None}."""
    confirmed: dict[str, str | None] = {}
    for item in items:
        key, sep, team = item.partition("=")
        if not sep or not key.strip() or not team.strip():
            raise MarksError(f"--confirm {item!r}: write PARTICIPANT=TEAM, NOTEBOOK=TEAM or PARTICIPANT=none")
        confirmed[key.strip()] = None if team.strip().casefold() == "none" else team.strip()
    return confirmed


def read_notebook_marks(path: str | Path) -> dict[str, float]:
    """The instructor's notebook marks: a CSV ``participant,mark`` (or ``notebook,mark``), by key."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = [r for r in csv.reader(handle) if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MarksError(f"cannot read the notebook marks {path}: {exc}") from exc
    if not rows or len(rows[0]) != 2 or rows[0][1].strip().casefold() != "mark" or \
            rows[0][0].strip().casefold() not in ("participant", "notebook"):
        raise MarksError(f"{path}, row 1: the header must be 'participant,mark' or 'notebook,mark' "
                         f"(it reads: {', '.join(rows[0]) if rows else 'nothing'})")
    marks: dict[str, float] = {}
    for number, row in enumerate(rows[1:], start=2):
        try:
            key, value = row[0].strip(), float(row[1])
        except (IndexError, ValueError):
            raise MarksError(f"{path}, row {number}: expected a key and a number, got {','.join(row)!r}") from None
        key = key.removeprefix("Participant ").strip()
        if key in marks:
            raise MarksError(f"{path}, row {number}: {key} has a mark already")
        marks[key] = value
    return marks


def mark_class(paths: list[str], scores: dict[str, TeamScore], thresholds: Thresholds, rubric: list[Criterion],
               worksheet: Worksheet | None = None, confirmations: dict[str, str | None] | None = None,
               notebook_marks: dict[str, float] | None = None, jobs: int | None = None) -> ClassMarks:
    """Everything ``marks`` reports, for a folder or Moodle zip of hand-ins. Raises MoodleError/MarksError."""
    confirmations = dict(confirmations or {})
    notebook_marks = dict(notebook_marks or {})
    members, others = list_members(paths)
    teams = list(scores)
    if worksheet is not None:
        _check_names(members, worksheet)
    rows: list[StudentRow] = []
    for member in members:
        name = participant_of(member.relative)
        stem = PurePosixPath(name.filename).stem
        team, how = _match(stem, teams)
        row = StudentRow(name.participant, name.full_name, member.label, name.filename, team, how)
        if name.participant:
            if worksheet is not None:
                row.full_name = worksheet.full_name(name.participant)
            blind = worksheet.blind if worksheet is not None else name.full_name == "Participant"
            row.folder = feedback_folder(name.participant, None if blind else row.full_name)
        if team is None:
            row.suggestion = _closest(stem, teams, normalise)
        rows.append(row)

    # flags that depend on the class as a whole
    per_participant: dict[str, list[StudentRow]] = {}
    for row in rows:
        if row.participant:
            per_participant.setdefault(row.participant, []).append(row)
    for participant, own in per_participant.items():
        if len(own) > 1:
            for row in own:
                row.flags.append(f"handed in {len(own)} notebooks: "
                                 + ", ".join(r.filename or "" for r in own))
    per_team: dict[str, list[StudentRow]] = {}
    for row in rows:
        if row.team:
            per_team.setdefault(row.team, []).append(row)

    # grade every notebook, each paired with its team for the `filename` criterion
    tasks = [(member, row.filename, row.team, rubric) for member, row in zip(members, rows, strict=True)]
    digests: dict[str, list[StudentRow]] = {}
    for row, (report, quotes, digest) in zip(rows, run_all(_grade_member, tasks, jobs), strict=True):
        row.report = report
        row.statuses = {v.id: v.status for v in report.criteria}
        row.complete = report.complete
        row.quotes = quotes
        if report.unreadable:
            row.flags.append(f"unreadable: {report.unreadable}")
        if digest:
            digests.setdefault(digest, []).append(row)
    for same in digests.values():
        owners = {r.participant or r.notebook for r in same}
        if len(owners) > 1:
            for row in same:
                row.flags.append("the same file as " + ", ".join(
                    (r.full_name or r.notebook or "") for r in same if r is not row))
    for team, own in per_team.items():
        owners = {r.participant or r.notebook for r in own}
        if len(owners) > 1:
            for row in own:
                row.flags.append(f"team {team!r} is also handed in by " + ", ".join(
                    (r.full_name or r.filename or "") for r in own if r is not row))

    # apply the leaderboard rule, with the instructor's confirmations
    keys_used: set[str] = set()
    chosen: dict[str, StudentRow] = {}      # participant -> the notebook confirmed to count
    for row in rows:
        keys = [k for k in (row.participant, row.filename, PurePosixPath(row.filename or "").stem) if k]
        key = next((k for k in keys if k in confirmations), None)
        multiple = bool(row.participant) and len(per_participant.get(row.participant, [])) > 1
        if key is not None:
            if multiple and key == row.participant:
                raise MarksError(f"--confirm {key}=...: participant {key} handed in "
                                 f"{len(per_participant[key])} notebooks; confirm the one that counts by its file name")
            keys_used.add(key)
            confirmed = confirmations[key]
            if confirmed is not None and confirmed not in scores:
                raise MarksError(f"--confirm {key}={confirmations[key]}: {confirmed!r} is not a team on the leaderboard")
            row.team, row.match = confirmed, CONFIRMED
            if row.participant:
                chosen[row.participant] = row
        row.score = scores[row.team].score if row.team else None
        row.proposed_mark = thresholds.mark(row.score)
        if row.match == CONFIRMED:
            row.mark_status = APPLIED
            # the instructor has looked: only what still stops marking stays flagged
            row.flags = [f for f in row.flags if f.startswith("unreadable")]
            row.notes.append(f"confirmed: team {row.team!r}" if row.team else "confirmed: no leaderboard mark")
        elif row.match == EXACT and not multiple:
            row.mark_status = APPLIED
        else:
            row.mark_status = PENDING
        if row.match == NORMALISED:
            row.flags.insert(0, f"file name {row.filename!r} differs from team {row.team!r} only in case, spaces "
                             "or punctuation; confirm to award the leaderboard mark")
        elif row.match == NONE:
            hint = f" (closest: {row.suggestion!r})" if row.suggestion else ""
            row.flags.insert(0, f"file name {row.filename!r} matches no leaderboard team{hint}: no leaderboard "
                             "mark once confirmed")
        elif multiple and row.match != CONFIRMED:
            row.flags.append("confirm which notebook counts (--confirm FILE.ipynb=TEAM)")
    if worksheet is not None:
        for row in rows:
            if not row.participant:
                continue
            if row.mark_status != NOT_MARKED and row.match != CONFIRMED and not worksheet.submitted(row.participant):
                status = worksheet.get(row.participant, "Status").strip() or "empty"
                row.mark_status = PENDING
                row.flags.append(f"Moodle's status is {status!r}, not submitted: the grade stays empty until you "
                                 f"confirm it (--confirm {row.participant}={row.team or 'TEAM'})")
            if worksheet.locked(row.participant):
                row.locked = True
                row.flags.append("'Grade can be changed' is No (the grade is locked or overridden in the "
                                 "gradebook): its Grade is left as it is")
    for row in rows:   # a student's other notebooks, once one is confirmed, do not count
        if row.participant in chosen and chosen[row.participant] is not row:
            row.mark_status, row.flags = NOT_MARKED, []
            row.notes.append(f"not marked: {chosen[row.participant].filename} counts")
    unknown = set(confirmations) - keys_used
    if unknown:
        raise MarksError(f"--confirm names no hand-in: {', '.join(sorted(unknown))} (use a participant number "
                         "or a notebook's file name)")

    # worksheet participants without a notebook
    if worksheet is not None:
        handed = {r.participant for r in rows}
        order = {p: i for p, i in worksheet.by_participant.items()}
        for participant in worksheet.by_participant:
            if participant in handed:
                continue
            row = StudentRow(participant, worksheet.full_name(participant))
            own_files = [o for o in others if participant_of(o).participant == participant]
            if worksheet.submitted(participant):
                row.flags.append("submitted, but no notebook" + (f" ({', '.join(own_files)})" if own_files else ""))
            elif own_files:
                row.flags.append(f"no notebook ({', '.join(own_files)})")
            else:
                row.flags.append("no submission")
            rows.append(row)
        rows.sort(key=lambda r: (order.get(r.participant or "", len(order)), r.notebook or ""))
    else:
        for row in rows:
            if row.notebook is None:
                row.flags.append("no notebook")

    # notebook marks and feedback
    used_marks: set[str] = set()
    for row in rows:
        for key in (row.participant, row.filename, PurePosixPath(row.filename or "").stem):
            if key and key in notebook_marks:
                row.notebook_mark = notebook_marks[key]
                used_marks.add(key)
                break
    unknown = set(notebook_marks) - used_marks
    if unknown:
        raise MarksError(f"the notebook marks name no hand-in: {', '.join(sorted(unknown))}")
    for row in rows:
        if row.report is None:
            continue
        line = _leaderboard_line(row)
        row.comment = summary_html(row.report, rubric, [line] if line else [])
        row.feedback = feedback_page(row.report, rubric, row.quotes, row.full_name, line)
    lonely = [t for t in teams if not any(r.team == t for r in rows)]
    notebooks = [r.filename for r in rows if r.filename and r.team is None]
    return ClassMarks(rows, thresholds, scores, [(t, _closest(t, notebooks, lambda n: normalise(
        PurePosixPath(n).stem)) if notebooks else None) for t in lonely], [c.id for c in rubric], others,
        _overwrite_warnings(rows, worksheet) if worksheet is not None else [])


def _check_names(members: list[Member], worksheet: Worksheet) -> None:
    """Refuse files whose Moodle name does not belong to the participant number it carries.

    With "students submit in groups" Moodle names a file after the group and the group's id
    (``get_student_prefix``), and that id may equal some participant's number: crediting the file to that
    participant would be silently wrong. So the name part must be that participant's name as Moodle's
    download writes it (not checked under blind marking, where it is "Participant")."""
    names = {p: worksheet.get(p, "Full name") for p in worksheet.by_participant}
    teams, strangers = [], []
    for member in members:
        name = participant_of(member.relative)
        if name.participant is None:
            group = numberless_prefix(member.relative)
            if group is not None:
                teams.append(f"{member.label} (group {group!r}, with no number)")
                continue
            raise MoodleError(f"{member.label}: the name carries no Moodle participant number "
                              "('Full Name_123456_assignsubmission_file/...'); use Moodle's "
                              "'Download all submissions' zip with the worksheet")
        if name.participant not in worksheet.by_participant:
            raise MoodleError(f"{member.label}: participant {name.participant} is not in the grading "
                              f"worksheet {worksheet.path}; download both again from the same assignment (with "
                              "'Students submit in groups' the number is a group's id: marks cannot credit it)")
        if worksheet.blind or same_person(name.full_name or "", names[name.participant]):
            continue
        owner = next((p for p, full in names.items() if same_person(name.full_name or "", full)), None)
        if owner is None:
            teams.append(f"{member.label} ({name.full_name!r} is nobody's name in the worksheet)")
        else:
            strangers.append(f"{member.label}: the file is named for {names[owner]!r} (participant {owner}) but "
                             f"carries number {name.participant}, which belongs to {names[name.participant]!r}")
    if teams:
        shown = "; ".join(teams[:3]) + (f"; and {len(teams) - 3} more" if len(teams) > 3 else "")
        raise MoodleError(f"these look like team submissions: {shown}. With 'Students submit in groups' Moodle "
                          "names each file after the group and the group's id, not a participant, so no "
                          "notebook can be credited to a student. marks grades one notebook per student: grade "
                          "the groups in Moodle, or give each member's copy of the notebook a folder named as "
                          "Moodle names individual hand-ins ('Full Name_123456_assignsubmission_file/')")
    if strangers:
        raise MoodleError("; ".join(strangers[:3]) + ". The worksheet and the submissions disagree about who "
                          "is who: download both again from the same assignment")


def _overwrite_warnings(rows: list[StudentRow], worksheet: Worksheet) -> list[str]:
    """Rows whose worksheet already carries a grade that this run changes.

    Moodle's upload skips a row whose grade changed after the worksheet was downloaded (more than 60 s after
    "Last modified (grade)", feedback/offline ``process_import_grades``): a worksheet downloaded before an
    earlier upload of grades or of the feedback zip is stale for those rows."""
    changed = []
    for row in rows:
        if row.participant is None or row.grade is None or row.participant not in worksheet.by_participant:
            continue
        existing = worksheet.get(row.participant, "Grade").strip()
        try:
            same = existing and abs(float(existing.replace(",", ".")) - row.grade) < 1e-9
        except ValueError:
            same = False
        if existing and not same:
            changed.append(f"{row.participant} ({existing} -> {fmt_number(row.grade)})")
    if not changed:
        return []
    many = len(changed) != 1
    return [(f"{len(changed)} row{'s' if many else ''} of the worksheet already {'carry' if many else 'carries'} a "
             "grade that "
             f"this run changes: {', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}. Moodle skips a row "
             "whose grade changed after the worksheet was downloaded; if you have uploaded grades or the feedback "
             "zip since, download a fresh worksheet and run marks again")]


def _leaderboard_line(row: StudentRow) -> str:
    """What the student is told about the Kaggle half (only once it is decided)."""
    if row.mark_status != APPLIED:
        return ""
    if row.team is None:
        return ("Kaggle leaderboard: your notebook's file name matches no Kaggle team name, so the "
                "leaderboard half earns no marks.")
    return (f"Kaggle leaderboard: team {row.team}, best score {row.score:g}, leaderboard mark "
            f"{fmt_number(row.leaderboard_mark)}.")


# --- what marks writes -------------------------------------------------------------------------------

def filled_worksheet(marks: ClassMarks, worksheet: Worksheet) -> tuple[dict[str, str], dict[str, str]]:
    """Grade and Feedback comments per participant, checked against Moodle's Maximum Grade."""
    grades: dict[str, str] = {}
    comments: dict[str, str] = {}
    maximum_at = worksheet.header.index("Maximum Grade") if "Maximum Grade" in worksheet.header else None
    counting_first = sorted(marks.rows, key=lambda r: r.mark_status != APPLIED)
    for row in counting_first:
        if not row.participant or row.participant not in worksheet.by_participant:
            continue
        if row.comment and row.participant not in comments:
            comments[row.participant] = row.comment
        if row.grade is None or row.participant in grades:
            continue
        if maximum_at is not None:
            top = worksheet.get(row.participant, "Maximum Grade").strip()
            try:
                if top and row.grade > float(top) + 1e-9:
                    raise MarksError(f"{worksheet.path}, row {worksheet.by_participant[row.participant] + 2}: grade "
                                     f"{fmt_number(row.grade)} for participant {row.participant} is above the "
                                     f"Maximum Grade {top}; lower the thresholds' or notebook marks")
            except ValueError:
                pass
        grades[row.participant] = fmt_number(row.grade)
    return grades, comments


def feedback_entries(marks: ClassMarks) -> dict[str, str]:
    """Zip path -> page, in the folders Moodle's "Upload multiple feedback files in a zip" reads."""
    entries: dict[str, str] = {}
    for row in marks.rows:
        if row.feedback is None:
            continue
        stem = PurePosixPath(row.filename or "notebook").stem
        folder = row.folder or "no participant number"
        entries[f"{folder}/feedback_{stem}.html"] = row.feedback
    return entries


def to_text(marks: ClassMarks) -> str:
    lines = []
    for row in marks.rows:
        who = " ".join(x for x in (row.participant, row.full_name and f"({row.full_name})") if x) or "-"
        lb = (f"{row.team} {row.score:g} -> {fmt_number(row.proposed_mark)}" if row.team else "no team")
        status = {APPLIED: "", PENDING: " [pending]", NOT_MARKED: ""}[row.mark_status]
        book = (f"{row.filename}: " + ("complete" if row.complete else "INCOMPLETE") +
                f" ({sum(s == 'pass' for s in row.statuses.values())}/{len(row.statuses)} pass)") \
            if row.notebook else "no notebook"
        lines.append(f"{'!' if row.flags else ' '} {who}  {book}  leaderboard: {lb}{status}"
                     + (f"  grade {fmt_number(row.grade)}" if row.grade is not None else ""))
        lines += [f"      ! {flag}" for flag in row.flags]
        lines += [f"      - {note}" for note in row.notes]
    handed = [r for r in marks.rows if r.notebook]
    lines.append("")
    lines.append(f"{len(handed)} notebooks, {len(marks.flagged)} rows flagged for a look, "
                 f"{sum(r.mark_status == APPLIED for r in marks.rows)} leaderboard marks applied, "
                 f"{sum(r.mark_status == PENDING for r in marks.rows)} pending confirmation")
    if marks.teams_without_notebook:
        lines.append("leaderboard teams without a notebook: " + ", ".join(
            t + (f" (closest notebook: {c})" if c else "") for t, c in marks.teams_without_notebook))
    lines += [f"warning: {w}" for w in marks.warnings]
    return "\n".join(lines) + "\n"


def to_json(marks: ClassMarks) -> str:
    return json.dumps({"students": [r.as_dict() for r in marks.rows],
                       "teams_without_notebook": [{"team": t, "closest": c} for t, c in marks.teams_without_notebook],
                       "warnings": marks.warnings,
                       "thresholds": [{"score": s, "mark": m} for s, m in marks.thresholds.steps]},
                      indent=2, ensure_ascii=False) + "\n"


CSV_COLUMNS = ("participant", "full_name", "notebook", "filename", "team", "match", "suggestion", "score",
               "leaderboard_mark", "proposed_mark", "mark_status", "notebook_mark", "grade", "complete", "flags", "notes")


def to_csv(marks: ClassMarks) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *marks.criteria])
    for row in marks.rows:
        data = row.as_dict()
        values = []
        for column in CSV_COLUMNS:
            value = data.get(column)
            if column in ("flags", "notes"):
                value = "; ".join(getattr(row, column))
            elif column == "complete":
                value = "" if value is None else ("yes" if value else "no")
            elif isinstance(value, float):
                value = fmt_number(value) if column != "score" else f"{value:g}"
            values.append("" if value is None else value)
        writer.writerow([*values, *(row.statuses.get(c, "") for c in marks.criteria)])
    return buffer.getvalue()


EXTENSIONS = {"text": "txt", "json": "json", "csv": "csv", "html": "html"}


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False
