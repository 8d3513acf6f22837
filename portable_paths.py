"""Paths as the notebook shows them: relative to the project, never this machine's absolute folders.

The build hands the chapters absolute paths (papermill runs them in kernels of their own). A hand-in must not
show where the building machine keeps things (a student's home folder, a temporary folder), so the parameters
cell and the appendix show each path relative to the project folder, or as ``~/...`` under the home folder.
A folder outside both (``--out /tmp/x``) is shown from the folder that holds the build's output folder, as
``…/x/run``.
"""
from __future__ import annotations

import re
from pathlib import Path

PROJECT = Path(__file__).resolve().parent
ELSEWHERE = "…"


def anchors(out: Path) -> list[tuple[Path, str]]:
    """(folder, how it is shown), the most specific first."""
    out, home = out.resolve(), Path.home().resolve()
    shown = [(PROJECT, "."), (home, "~")]
    if not any(out.is_relative_to(folder) for folder, _ in shown) and out.parent != Path(out.anchor):
        shown.append((out.parent, ELSEWHERE))
    return sorted(shown, key=lambda pair: len(pair[0].parts), reverse=True)


def portable(text: str, out: Path) -> str:
    """``text`` with every path under an anchor rewritten relative to it (a project path loses its prefix:
    ``/home/me/repo/build/run`` becomes ``build/run``)."""
    for folder, shown in anchors(out):
        # a whole path component only: /work/repo must not match /work/repo2
        pattern = re.compile(re.escape(str(folder)) + r"(?:/(?=[^/\s])|(?![\w.~-]))")
        prefix = "" if shown == "." else f"{shown}/"
        text = pattern.sub(lambda m, prefix=prefix, shown=shown: prefix if m.group(0).endswith("/") else shown,
                           text)
    return text


def parameters_comment(out: Path) -> str:
    """The first line of the displayed parameters cell: what the paths below are relative to."""
    elsewhere = [folder for folder, shown in anchors(out) if shown == ELSEWHERE]
    note = f"; {ELSEWHERE} is the folder that holds the build's output folder" if elsewhere else ""
    return f"# Parameters of this run (paths relative to the project folder; ~ is the home folder{note})"
