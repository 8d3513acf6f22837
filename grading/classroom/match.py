"""Pair Kaggle team names from a leaderboard export with handed-in notebook file names.

Exact first (the name itself, or the name build.py makes of it: spaces -> underscores), then normalised
(case, spaces, underscores, hyphens and punctuation ignored). Whatever is left over on either side is
listed with its closest suggestion from the other side (difflib).
"""
from __future__ import annotations

import csv
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..handin.names import suggest_team_name

_TEAM_COLUMNS = ("teamname", "team")


class LeaderboardError(Exception):
    """The leaderboard file is missing, not CSV, or has no team-name column."""


def normalise(name: str) -> str:
    return re.sub(r"[\W_]+", "", name.casefold())


def read_leaderboard(path: str | Path) -> list[str]:
    """Team names from a Kaggle leaderboard export (column TeamName), in file order, without repeats."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise LeaderboardError(f"cannot read the leaderboard {path}: {exc.strerror}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise LeaderboardError(f"the leaderboard {path} is not a UTF-8 CSV file ({exc}); export it again "
                               "from Kaggle's Leaderboard tab") from exc
    if not rows:
        raise LeaderboardError(f"the leaderboard {path} is empty")
    header = [normalise(h) for h in rows[0]]
    column = next((header.index(c) for c in _TEAM_COLUMNS if c in header), None)
    if column is None:
        raise LeaderboardError(f"the leaderboard {path} has no TeamName column (header: {', '.join(rows[0])}); "
                               "use Kaggle's leaderboard CSV export")
    teams: list[str] = []
    for row in rows[1:]:
        if len(row) > column and row[column].strip() and row[column].strip() not in teams:
            teams.append(row[column].strip())
    return teams


@dataclass
class MatchResult:
    pairs: list[tuple[str, str, str]] = field(default_factory=list)       # (team, notebook, "exact"|"normalised")
    teams_without_notebook: list[tuple[str, str | None]] = field(default_factory=list)   # (team, closest)
    notebooks_without_team: list[tuple[str, str | None]] = field(default_factory=list)   # (notebook, closest)

    @property
    def all_paired(self) -> bool:
        return not self.teams_without_notebook and not self.notebooks_without_team

    def as_dict(self) -> dict:
        return {
            "pairs": [{"team": t, "notebook": n, "match": how} for t, n, how in self.pairs],
            "teams_without_notebook": [{"team": t, "closest": c} for t, c in self.teams_without_notebook],
            "notebooks_without_team": [{"notebook": n, "closest": c} for n, c in self.notebooks_without_team],
        }


def _closest(name: str, candidates: list[str], key) -> str | None:
    """The candidate most like ``name`` (compared normalised), or None when nothing is close."""
    keyed = {key(c): c for c in candidates}
    best = difflib.get_close_matches(normalise(name), list(keyed), n=1, cutoff=0.5)
    return keyed[best[0]] if best else None


def match_teams(teams: list[str], notebooks: list[str]) -> MatchResult:
    result = MatchResult()
    stems = {nb: PurePosixPath(nb).stem for nb in notebooks}
    free_teams, free_notebooks = list(teams), list(notebooks)
    for how, same in (("exact", lambda t, s: s in (t, suggest_team_name(t))),
                      ("normalised", lambda t, s: normalise(t) == normalise(s))):
        for team in list(free_teams):
            notebook = next((nb for nb in free_notebooks if same(team, stems[nb])), None)
            if notebook is not None:
                result.pairs.append((team, notebook, how))
                free_teams.remove(team)
                free_notebooks.remove(notebook)
    # Suggest among the leftovers first: a leftover team's notebook is most likely a leftover notebook.
    result.teams_without_notebook = [(t, _closest(t, free_notebooks or notebooks, lambda n: normalise(stems[n])))
                                     for t in free_teams]
    result.notebooks_without_team = [(nb, _closest(stems[nb], free_teams or teams, normalise))
                                     for nb in free_notebooks]
    return result


def to_text(result: MatchResult) -> str:
    lines = [f"{len(result.pairs)} teams paired with a notebook"]
    lines += [f"  {team}  <->  {nb}" + ("  (normalised)" if how == "normalised" else "")
              for team, nb, how in result.pairs]
    lines.append(f"{len(result.teams_without_notebook)} teams without a notebook")
    lines += [f"  {team}" + (f"  (closest notebook: {c})" if c else "  (no similar notebook)")
              for team, c in result.teams_without_notebook]
    lines.append(f"{len(result.notebooks_without_team)} notebooks without a team")
    lines += [f"  {nb}" + (f"  (closest team: {c})" if c else "  (no similar team)")
              for nb, c in result.notebooks_without_team]
    return "\n".join(lines) + "\n"
