"""A class of hand-ins as a list of notebooks to read, one task each, spread over processes.

``check`` hands a whole zip to one process; a Moodle download is one zip of 150 notebooks, so here every
notebook inside it is its own task (each process opens the zip and reads only its member).
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..handin.check import available_cores
from ..handin.reader import (
    MAX_NOTEBOOK_BYTES,
    LoadedNotebook,
    PathError,
    _is_notebook_name,
    find_sources,
    parse_notebook,
)


@dataclass(frozen=True)
class Member:
    source: str               # the notebook file, or the zip holding it
    member: str | None        # the path inside the zip
    label: str                # what reports show
    relative: str             # the path below the folder or inside the zip (where Moodle's names are)


def list_members(paths: Iterable[str | os.PathLike]) -> tuple[list[Member], list[str]]:
    """Every notebook under PATHs, and every other file in a zip or folder (a student's PDF, say).

    Raises PathError for a PATH that does not exist or a zip that cannot be opened."""
    members: list[Member] = []
    others: list[str] = []
    for raw in paths:
        root = Path(raw)
        for source in find_sources([root]):
            if source.suffix.lower() == ".zip":
                try:
                    with zipfile.ZipFile(source) as archive:
                        names = sorted(i.filename for i in archive.infolist() if not i.is_dir())
                except (zipfile.BadZipFile, OSError) as exc:
                    raise PathError(f"{source} is not a valid zip archive ({exc}); download it again") from exc
                for name in names:
                    if _is_notebook_name(name):
                        members.append(Member(str(source), name, f"{source}/{name}", name))
                    elif "__MACOSX" not in name:
                        others.append(name)
            else:
                relative = source.relative_to(root).as_posix() if root.is_dir() else source.name
                members.append(Member(str(source), None, str(source), relative))
        if root.is_dir():
            others += [p.relative_to(root).as_posix() for p in sorted(root.rglob("*"))
                       if p.is_file() and p.suffix.lower() not in (".ipynb", ".zip")]
    return members, others


def load_member(member: Member) -> tuple[LoadedNotebook, str]:
    """The parsed notebook (never raises) and the SHA-256 of its bytes ('' when unreadable)."""
    try:
        if member.member is None:
            data = Path(member.source).read_bytes()
        else:
            with zipfile.ZipFile(member.source) as archive:
                info = archive.getinfo(member.member)
                if info.file_size > MAX_NOTEBOOK_BYTES:
                    return LoadedNotebook(member.label, Path(member.member).name,
                                          error=f"cannot read {member.label}: {info.file_size} bytes, far larger "
                                          "than any notebook"), ""
                data = archive.read(info)
    except (OSError, zipfile.BadZipFile, KeyError, EOFError) as exc:
        return LoadedNotebook(member.label, Path(member.relative).name,
                              error=f"cannot read {member.label}: {exc}"), ""
    return parse_notebook(data, member.label), hashlib.sha256(data).hexdigest()


def run_all(work: Callable, tasks: list, jobs: int | None = None) -> list:
    """``work(task)`` for every task, in order, over ``jobs`` processes (None: one per core)."""
    jobs = available_cores() if jobs is None else max(1, jobs)
    if jobs == 1 or len(tasks) < 2:
        return [work(task) for task in tasks]
    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks))) as pool:
        return list(pool.map(work, tasks, chunksize=max(1, len(tasks) // (jobs * 8))))
