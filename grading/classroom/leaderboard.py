"""Kaggle's leaderboard scores and the course's score thresholds, turned into leaderboard marks.

The leaderboard is Kaggle's CSV export (``TeamId,TeamName,SubmissionDate,Score``; the Leaderboard tab's
"Raw Data" download, or ``kaggle competitions leaderboard --download``), as the CSV or the zip holding it. It may list a team once per
improvement of its best score: rows with the same TeamId are one team, and its best score counts
(the coursework: "the score of your best submission"). Two *different* teams under one name, or one name
listed twice with no TeamId to tell them apart, cannot be marked and are refused.

The thresholds file is a CSV ``score,mark``: a score at or above a threshold earns its mark, the highest
threshold reached counts, a score below every threshold earns 0 (the coursework: "getting a score
better than particular thresholds rather than a direct conversion of the accuracy score").
"""
from __future__ import annotations

import csv
import io
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .match import normalise


class LeaderboardFileError(Exception):
    """A leaderboard or thresholds file that cannot be used; the message names the file and row."""


@dataclass(frozen=True)
class TeamScore:
    team: str
    score: float
    row: int          # the CSV row (1 = header) where the best score was read


def _rows(path: Path, what: str) -> list[list[str]]:
    try:
        if path.suffix.lower() == ".zip":   # Kaggle's "Raw Data" download is a zip of one CSV
            return list(csv.reader(io.StringIO(_csv_in_zip(path, what), newline="")))
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return list(csv.reader(handle))
    except OSError as exc:
        raise LeaderboardFileError(f"cannot read the {what} {path}: {exc.strerror}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise LeaderboardFileError(f"the {what} {path} is not a UTF-8 CSV file ({exc})") from exc


def _csv_in_zip(path: Path, what: str) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.lower().endswith(".csv")]
            if len(names) != 1:
                raise LeaderboardFileError(f"the {what} {path} should hold one .csv file; it holds "
                                           f"{len(names)}: {', '.join(names) or 'none'}")
            return archive.read(names[0]).decode("utf-8-sig")
    except zipfile.BadZipFile as exc:
        raise LeaderboardFileError(f"the {what} {path} is not a valid zip ({exc}); download it again") from exc


def _number(text: str, path: Path, row: int, column: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise LeaderboardFileError(f"{path}, row {row}: {column} {text!r} is not a number")
    return value


def read_scores(path: str | Path) -> dict[str, TeamScore]:
    """Each team's best score, by team name, in the order teams first appear."""
    path = Path(path)
    rows = _rows(path, "leaderboard")
    if not rows:
        raise LeaderboardFileError(f"the leaderboard {path} is empty")
    header = [normalise(h) for h in rows[0]]
    if "teamname" not in header or "score" not in header:
        raise LeaderboardFileError(f"{path}, row 1: the header needs TeamName and Score (it reads: "
                                   f"{', '.join(rows[0])}); use Kaggle's leaderboard CSV export")
    name_at, score_at = header.index("teamname"), header.index("score")
    id_at = header.index("teamid") if "teamid" in header else None
    best: dict[str, TeamScore] = {}
    team_id: dict[str, tuple[str, int]] = {}        # team name -> (TeamId, first row)
    by_key: dict[str, tuple[str, int]] = {}         # normalised name -> (name, first row)
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(name_at, score_at):
            raise LeaderboardFileError(f"{path}, row {number}: {len(row)} columns, the header has {len(rows[0])}")
        name = row[name_at].strip()
        if not name:
            raise LeaderboardFileError(f"{path}, row {number}: the TeamName is empty")
        score = _number(row[score_at], path, number, "Score")
        ident = row[id_at].strip() if id_at is not None and len(row) > id_at else None
        if name in team_id:
            first_id, first_row = team_id[name]
            if ident is None or ident != first_id:
                why = "with another TeamId" if ident is not None else "and there is no TeamId column to tell them apart"
                raise LeaderboardFileError(f"{path}, row {number}: team {name!r} is on the leaderboard twice "
                                           f"(also row {first_row}, {why}); fix the file or rename one team")
        else:
            other = by_key.get(normalise(name))
            if other:
                raise LeaderboardFileError(f"{path}, row {number}: team {name!r} and team {other[0]!r} (row "
                                           f"{other[1]}) differ only in case, spaces or punctuation, so a "
                                           "notebook cannot be told apart between them")
            team_id[name] = (ident or "", number)
            by_key[normalise(name)] = (name, number)
        if name not in best or score > best[name].score:
            best[name] = TeamScore(name, score, number)
    return best


@dataclass(frozen=True)
class Thresholds:
    steps: tuple[tuple[float, float], ...]     # (score, mark), ascending score
    path: str = ""

    def mark(self, score: float | None) -> float:
        """The mark of the highest threshold ``score`` reaches; 0 below all of them (or without a score)."""
        earned = 0.0
        for threshold, mark in self.steps:
            if score is not None and score >= threshold:
                earned = mark
        return earned

    @property
    def maximum(self) -> float:
        return max(mark for _, mark in self.steps)


def read_thresholds(path: str | Path) -> Thresholds:
    """A CSV with the header ``score,mark`` and one threshold per row; scores increase, marks do not fall."""
    path = Path(path)
    rows = [r for r in _rows(path, "thresholds file") if any(c.strip() for c in r)]
    if not rows or [c.strip().casefold() for c in rows[0]] != ["score", "mark"]:
        got = ", ".join(rows[0]) if rows else "nothing"
        raise LeaderboardFileError(f"{path}, row 1: the header must be 'score,mark' (it reads: {got}); "
                                   "one row per threshold, e.g. '0.80,10'")
    steps: list[tuple[float, float]] = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 2:
            raise LeaderboardFileError(f"{path}, row {number}: expected 'score,mark', got {','.join(row)!r}")
        score = _number(row[0], path, number, "score")
        mark = _number(row[1], path, number, "mark")
        if mark < 0:
            raise LeaderboardFileError(f"{path}, row {number}: mark {row[1].strip()} is negative")
        if steps and score <= steps[-1][0]:
            raise LeaderboardFileError(f"{path}, row {number}: score {row[0].strip()} does not increase "
                                       f"(the row before has {steps[-1][0]:g}); list thresholds from low to high")
        if steps and mark < steps[-1][1]:
            raise LeaderboardFileError(f"{path}, row {number}: mark {row[1].strip()} is lower than the mark of "
                                       "a lower threshold")
        steps.append((score, mark))
    if not steps:
        raise LeaderboardFileError(f"{path}: no thresholds below the header")
    return Thresholds(tuple(steps), str(path))
