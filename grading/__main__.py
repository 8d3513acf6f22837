"""Command line: python -m grading {check,match,submission,marks,similar} ... (see grading/__init__.py)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

from .classroom import marks as class_marks
from .classroom import overview as class_overview
from .classroom import similar as similarity
from .classroom.leaderboard import LeaderboardFileError, read_scores, read_thresholds
from .classroom.match import LeaderboardError, match_teams, read_leaderboard
from .classroom.match import to_text as match_text
from .classroom.moodle import MoodleError, read_worksheet, worksheet_text
from .handin import report as report_formats
from .handin.check import CRITERIA, check_paths, exit_code
from .handin.reader import PathError, list_notebook_names
from .handin.rubric import RubricError, load_rubric
from .handin.submission import SubmissionFileError, check_submission

USAGE_ERROR = 2


def _write_atomic(target: Path, write) -> None:
    """``write(handle)`` into a temp file next to ``target``, then rename: a half-written file never replaces
    a good one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        umask = os.umask(0)   # mkstemp makes the file private (0600); a report is read by others too
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str, text: str) -> None:
    """A UTF-8 text file, written atomically (line endings as given)."""
    _write_atomic(Path(path), lambda handle: handle.write(text.encode("utf-8")))


def write_zip_atomic(path: Path, entries: dict[str, str]) -> None:
    """A zip of text files, written atomically."""
    def write(handle):
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, text in entries.items():
                archive.writestr(name, text)
    _write_atomic(Path(path), write)


def _emit(text: str, out: str | None, name: str, fmt: str) -> bool:
    """The report to stdout, or to ``--out``: a file, or a folder that gets ``NAME.EXT`` (EXT after the format).
    Says in one line what went wrong (and returns False) instead of a traceback."""
    if not out:
        sys.stdout.write(text)
        return True
    target = Path(out)
    if target.is_dir():
        target = target / f"{name}.{REPORT_EXTENSIONS.get(fmt, fmt)}"
    try:
        write_atomic(str(target), text)
    except OSError as exc:
        print(f"error: cannot write --out {out}: {exc.strerror or exc}; give a file name or an existing folder",
              file=sys.stderr)
        return False
    return True


REPORT_EXTENSIONS = {"text": "txt"}


def cmd_check(args) -> int:
    try:
        rubric = load_rubric(args.rubric, known_ids=CRITERIA)
        reports = list(check_paths(args.paths, team=args.team, rubric=rubric, jobs=args.jobs))
    except (PathError, RubricError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    if not reports:
        print(f"error: no .ipynb notebooks found under {', '.join(args.paths)}", file=sys.stderr)
        return USAGE_ERROR
    if not _emit(report_formats.render(reports, args.format), args.out, "check", args.format):
        return USAGE_ERROR
    for report in reports:   # unreadable files also go to stderr, so they are seen even with --out
        if report.unreadable:
            print(f"error: {report.unreadable}", file=sys.stderr)
    return exit_code(reports)


def cmd_match(args) -> int:
    try:
        teams = read_leaderboard(args.leaderboard)
        notebooks = list_notebook_names(args.submissions)
    except (LeaderboardError, PathError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    result = match_teams(teams, notebooks)
    text = json.dumps(result.as_dict(), indent=2, ensure_ascii=False) + "\n" if args.format == "json" \
        else match_text(result)
    if not _emit(text, args.out, "match", args.format):
        return USAGE_ERROR
    return 0 if result.all_paired else 1


def cmd_submission(args) -> int:
    try:
        result = check_submission(args.file, args.example)
    except SubmissionFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    text = json.dumps(result.as_dict(), indent=2) + "\n" if args.format == "json" else result.to_text()
    if not _emit(text, args.out, "submission", args.format):
        return USAGE_ERROR
    return 0 if result.valid else 1


def cmd_marks(args) -> int:
    """Leaderboard marks, the worksheet filled in and feedback pages; exit 1 when a row needs a look."""
    try:
        rubric = load_rubric(args.rubric, known_ids=CRITERIA)
        scores = read_scores(args.leaderboard)
        thresholds = read_thresholds(args.thresholds)
        sheet = read_worksheet(args.worksheet) if args.worksheet else None
        notebook_marks = class_marks.read_notebook_marks(args.notebook_marks) if args.notebook_marks else None
        confirmations = class_marks.parse_confirmations(args.confirm or [])
        result = class_marks.mark_class(args.paths, scores, thresholds, rubric, sheet, confirmations,
                                        notebook_marks, jobs=args.jobs)
        filled = class_marks.filled_worksheet(result, sheet) if sheet is not None else None
    except (PathError, RubricError, LeaderboardFileError, MoodleError, class_marks.MarksError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    if not any(row.notebook for row in result.rows):
        print(f"error: no .ipynb notebooks found under {', '.join(args.paths)}", file=sys.stderr)
        return USAGE_ERROR
    text = class_overview.render(result, args.format)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not args.out:
        sys.stdout.write(text)
        return 1 if result.flagged else 0
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"error: --out {out} is a file; marks writes a folder (report, worksheet, feedback zip)", file=sys.stderr)
        return USAGE_ERROR
    report_path = out / f"marks.{class_marks.EXTENSIONS[args.format]}"
    sheet_path = out / f"{Path(args.worksheet).stem}_marked.csv" if sheet is not None else None
    zip_path = out / "feedback.zip"
    inputs = [args.leaderboard, args.thresholds, args.worksheet, args.notebook_marks, *args.paths]
    for target in (report_path, sheet_path, zip_path):
        if target is not None and any(p and class_marks.same_file(target, p) for p in inputs):
            print(f"error: {target} is one of the inputs; give another --out folder", file=sys.stderr)
            return USAGE_ERROR
    write_atomic(str(report_path), text)
    written = [report_path]
    if sheet_path is not None:
        write_atomic(str(sheet_path), worksheet_text(sheet, *filled))
        written.append(sheet_path)
    write_zip_atomic(zip_path, class_marks.feedback_entries(result))
    written.append(zip_path)
    flagged = len(result.flagged)
    print("wrote " + ", ".join(str(p) for p in written) +
          f"; {flagged} student{'' if flagged == 1 else 's'} flagged for a look")
    return 1 if result.flagged else 0


def cmd_similar(args) -> int:
    try:
        result = similarity.similar_notebooks(args.paths, templates=args.template or [], k=args.k,
                                              window=args.window, min_share=args.min_share, jobs=args.jobs)
    except (PathError, similarity.SimilarityError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    if len(result.notebooks) < 2:
        print(f"error: fewer than two notebooks under {', '.join(args.paths)}", file=sys.stderr)
        return USAGE_ERROR
    if not _emit(similarity.render(result, args.format), args.out, "similar", args.format):
        return USAGE_ERROR
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m grading",
                                     description="Mark coursework notebooks without running them.")
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="grade notebooks (files, folders, .zip) against the rubric",
                           description="Exit 0: all complete; 1: any incomplete; 2: any unreadable.")
    check.add_argument("paths", nargs="+", metavar="PATH", help="notebook, folder of notebooks, or .zip")
    check.add_argument("--team", help="the Kaggle team name the notebook file must match")
    check.add_argument("--format", choices=report_formats.FORMATS, default="text")
    check.add_argument("--out", metavar="FILE|DIR", help="write the report to this file (or to check.<format> in "
                       "this folder) instead of stdout")
    check.add_argument("--rubric", help="a rubric JSON file to use instead of grading/rubric.json")
    check.add_argument("--jobs", type=int, default=None, metavar="N",
                       help="grade N notebooks at once in separate processes (default: one per core)")
    check.set_defaults(run=cmd_check)

    match = sub.add_parser("match", help="pair leaderboard team names with notebook file names",
                           description="Exit 0: every team and notebook paired; 1: some left over; 2: bad input.")
    match.add_argument("--leaderboard", required=True, help="Kaggle leaderboard export (CSV with TeamName)")
    match.add_argument("submissions", nargs="+", metavar="SUBMISSIONS", help="notebooks, folders or .zip")
    match.add_argument("--format", choices=("text", "json"), default="text")
    match.add_argument("--out", metavar="FILE|DIR", help="write to this file (or match.<format> in this folder)")
    match.set_defaults(run=cmd_match)

    subm = sub.add_parser("submission", help="validate a submission.csv against example.csv",
                          description="Exit 0: valid; 1: invalid; 2: a file cannot be read.")
    subm.add_argument("file", help="the submission.csv to check")
    subm.add_argument("--example", required=True, help="the competition's example.csv")
    subm.add_argument("--format", choices=("text", "json"), default="text")
    subm.add_argument("--out", metavar="FILE|DIR", help="write to this file (or submission.<format> in this folder)")
    subm.set_defaults(run=cmd_submission)

    marks = sub.add_parser("marks", help="leaderboard marks, Moodle's grading worksheet and feedback for a class",
                           description="Exit 0: nothing to look at; 1: some students flagged for a look; 2: bad input.")
    marks.add_argument("paths", nargs="+", metavar="PATH", help="folder of notebooks, or Moodle's submissions zip")
    marks.add_argument("--leaderboard", required=True, help="Kaggle's leaderboard CSV (TeamId,TeamName,...,Score)")
    marks.add_argument("--thresholds", required=True, help="CSV 'score,mark': the mark each score threshold earns")
    marks.add_argument("--worksheet", help="Moodle's grading worksheet CSV, filled in and written to --out")
    marks.add_argument("--notebook-marks", help="CSV 'participant,mark' (or 'notebook,mark'): the marker's "
                       "notebook half, added to the Grade")
    marks.add_argument("--confirm", action="append", metavar="KEY=TEAM|none",
                       help="settle a flagged name: pair participant/notebook KEY with TEAM, or 'none' for no "
                       "leaderboard mark (repeatable)")
    marks.add_argument("--format", choices=class_marks.EXTENSIONS, default="text")
    marks.add_argument("--out", metavar="DIR", help="write marks.<format>, the filled worksheet and feedback.zip here")
    marks.add_argument("--rubric", help="a rubric JSON file to use instead of grading/rubric.json")
    marks.add_argument("--jobs", type=int, default=None, metavar="N", help="processes (default: one per core)")
    marks.set_defaults(run=cmd_marks)

    similar = sub.add_parser("similar", help="pairs of notebooks that share unusual code (for a look)",
                             description="Ranks pairs by their share of winnowed fingerprints of normalised "
                             "code; it flags for a look and never decides. Exit 0, or 2 on bad input.")
    similar.add_argument("paths", nargs="+", metavar="PATH", help="folder of notebooks, or a zip")
    similar.add_argument("--template", action="append", metavar="NB",
                         help="the course's lab or starter notebook: its code does not count (repeatable)")
    similar.add_argument("--format", choices=("text", "json", "csv", "html"), default="text")
    similar.add_argument("--out", metavar="FILE|DIR", help="write the report to this file (or to similar.<format> "
                         "in this folder) instead of stdout")
    similar.add_argument("--min-share", type=float, default=similarity.MIN_SHARE,
                         help="list pairs sharing at least this share of fingerprints "
                         f"(default {similarity.MIN_SHARE})")
    similar.add_argument("-k", type=int, default=similarity.K, help=f"tokens per k-gram (default {similarity.K})")
    similar.add_argument("--window", type=int, default=similarity.WINDOW,
                         help=f"winnowing window (default {similarity.WINDOW})")
    similar.add_argument("--jobs", type=int, default=None, metavar="N", help="processes (default: one per core)")
    similar.set_defaults(run=cmd_similar)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
