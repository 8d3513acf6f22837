"""Team names: the one rule for what a notebook may be called, shared by build.py and the grader.

Kaggle team names may hold spaces and punctuation ("Dogs Versus Cats!"); a notebook file name must not.
``TEAM_NAME`` is what build.py accepts and what the `filename` criterion checks; ``suggest_team_name``
turns a Kaggle name into the nearest name that ``TEAM_NAME`` accepts.
"""
from __future__ import annotations

import re

MAX_TEAM_NAME = 80
# Starts with a letter or digit (a leading "-" reads as a command-line option, a leading "_" as hidden).
TEAM_NAME = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9_-]{{0,{MAX_TEAM_NAME - 1}}}\Z")
FALLBACK_TEAM_NAME = "Team_Name"


def suggest_team_name(name: str) -> str:
    """The file name Kaggle and Moodle accept for a Kaggle team name: 'Dogs Versus Cats' -> 'Dogs_Versus_Cats'.

    Runs of white space become one underscore, other characters are dropped, repeated underscores
    collapse, leading/trailing '_' and '-' go, and the result is cut to 80 characters. A name with
    nothing usable left becomes 'Team_Name', so there is always something to suggest.
    """
    fixed = re.sub(r"\s+", "_", name.strip())
    fixed = re.sub(r"[^A-Za-z0-9_-]", "", fixed)
    fixed = re.sub(r"_+", "_", fixed).strip("_-")
    return fixed[:MAX_TEAM_NAME].rstrip("_-") or FALLBACK_TEAM_NAME
