"""Command line: python -m grading {check,match,submission} ... (see grading/__init__.py)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from . import report as report_formats
from .check import CRITERIA, check_paths, exit_code
from .match import LeaderboardError, match_teams, read_leaderboard
from .match import to_text as match_text
from .reader import PathError, list_notebook_names
from .rubric import RubricError, load_rubric
from .submission import SubmissionFileError, check_submission

USAGE_ERROR = 2


def write_atomic(path: str, text: str) -> None:
    """Write to a temp file next to ``path``, then rename: a half-written report never replaces a good one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        umask = os.umask(0)   # mkstemp makes the file private (0600); a report is read by others too
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _emit(text: str, out: str | None) -> None:
    if out:
        write_atomic(out, text)
    else:
        sys.stdout.write(text)


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
    _emit(report_formats.render(reports, args.format), args.out)
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
    _emit(text, args.out)
    return 0 if result.all_paired else 1


def cmd_submission(args) -> int:
    try:
        result = check_submission(args.file, args.example)
    except SubmissionFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    text = json.dumps(result.as_dict(), indent=2) + "\n" if args.format == "json" else result.to_text()
    _emit(text, args.out)
    return 0 if result.valid else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m grading",
                                     description="Mark coursework notebooks without running them.")
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="grade notebooks (files, folders, .zip) against the rubric",
                           description="Exit 0: all complete; 1: any incomplete; 2: any unreadable.")
    check.add_argument("paths", nargs="+", metavar="PATH", help="notebook, folder of notebooks, or .zip")
    check.add_argument("--team", help="the Kaggle team name the notebook file must match")
    check.add_argument("--format", choices=report_formats.FORMATS, default="text")
    check.add_argument("--out", help="write the report to this file instead of stdout")
    check.add_argument("--rubric", help="a rubric JSON file to use instead of grading/rubric.json")
    check.add_argument("--jobs", type=int, default=None, metavar="N",
                       help="grade N notebooks at once in separate processes (default: one per core)")
    check.set_defaults(run=cmd_check)

    match = sub.add_parser("match", help="pair leaderboard team names with notebook file names",
                           description="Exit 0: every team and notebook paired; 1: some left over; 2: bad input.")
    match.add_argument("--leaderboard", required=True, help="Kaggle leaderboard export (CSV with TeamName)")
    match.add_argument("submissions", nargs="+", metavar="SUBMISSIONS", help="notebooks, folders or .zip")
    match.add_argument("--format", choices=("text", "json"), default="text")
    match.add_argument("--out")
    match.set_defaults(run=cmd_match)

    subm = sub.add_parser("submission", help="validate a submission.csv against example.csv",
                          description="Exit 0: valid; 1: invalid; 2: a file cannot be read.")
    subm.add_argument("file", help="the submission.csv to check")
    subm.add_argument("--example", required=True, help="the competition's example.csv")
    subm.add_argument("--format", choices=("text", "json"), default="text")
    subm.add_argument("--out")
    subm.set_defaults(run=cmd_submission)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
