"""Find and load notebooks: .ipynb files, folders of them, and .zip archives of them.

Loading never executes anything and never raises for a bad notebook: an unreadable file (invalid JSON,
a truncated download, an unknown nbformat version) comes back as a ``LoadedNotebook`` whose ``error``
says what went wrong, so one bad file never stops a batch of hundreds.
"""
from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

# A coursework notebook with plots is a few MB; anything far bigger inside a zip is refused rather than
# inflated into memory (a zip bomb or the wrong archive).
MAX_NOTEBOOK_BYTES = 512 * 1024 * 1024


class PathError(Exception):
    """A PATH on the command line that is neither a notebook, a folder nor a zip."""


@dataclass
class LoadedNotebook:
    """One notebook as read from disk: ``nb`` (nbformat v4 node) or ``error`` (why it could not be read)."""

    label: str            # what reports show: the path, or "archive.zip/member.ipynb"
    filename: str         # the file's own name, which the `filename` criterion checks
    nb: dict | None = None    # nbformat v4 structure (plain parsed JSON)
    error: str | None = None


def parse_notebook(text: str | bytes, label: str) -> LoadedNotebook:
    """Parse notebook JSON of any nbformat version into v4 (v3 is upgraded by nbformat). Never raises.

    A v4 notebook is used as the plain parsed JSON: turning it into NotebookNodes (what nbformat.reads
    does) costs twice the parse itself on a Kaggle export whose stream outputs hold 30,000 lines, and
    grading only reads it. Schema validation is skipped for the same reason; what grading needs is checked.
    """
    filename = PurePosixPath(label).name
    try:
        raw = json.loads(text)
        if not isinstance(raw, dict) or "nbformat" not in raw:
            raise ValueError("no nbformat version in it")
        major = raw["nbformat"]
        if major != 4:
            import nbformat  # only for old notebooks: importing it costs more than grading one notebook
            import nbformat.reader

            if major not in nbformat.versions:
                raise ValueError(f"nbformat version {major!r} is unknown")
            raw = nbformat.convert(nbformat.reader.reads(json.dumps(raw)), 4)
        if not isinstance(raw.get("cells"), list):
            raise TypeError("it has no list of cells")
        return LoadedNotebook(label, filename, nb=raw)
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    except json.JSONDecodeError as exc:
        reason = "the file is empty" if not exc.doc.strip() else \
            f"invalid JSON, {exc} (a truncated or corrupted file?)"
    except Exception as exc:  # noqa: BLE001  an odd notebook must never stop the batch: report it instead
        reason = f"not a Jupyter notebook ({type(exc).__name__}: {str(exc)[:120]})"
    return LoadedNotebook(label, filename, error=f"cannot read {label}: {reason}; "
                          "ask for the file to be downloaded and handed in again")


def _read_file(path: Path) -> LoadedNotebook:
    try:
        return parse_notebook(path.read_bytes(), str(path))
    except OSError as exc:
        return LoadedNotebook(str(path), path.name, error=f"cannot read {path}: {exc.strerror}")


def _read_zip(path: Path) -> Iterator[LoadedNotebook]:
    try:
        with zipfile.ZipFile(path) as archive:
            members = sorted(
                (info for info in archive.infolist() if not info.is_dir() and _is_notebook_name(info.filename)),
                key=lambda info: info.filename)
            if not members:
                yield LoadedNotebook(str(path), path.name,
                                     error=f"{path} holds no .ipynb files; is it the right archive?")
            for info in members:
                label = f"{path}/{info.filename}"
                if info.file_size > MAX_NOTEBOOK_BYTES:
                    yield LoadedNotebook(label, PurePosixPath(info.filename).name,
                                         error=f"cannot read {label}: {info.file_size} bytes uncompressed, "
                                         "far larger than any notebook; extract and check it by hand")
                    continue
                try:
                    data = archive.read(info)
                except (zipfile.BadZipFile, OSError, EOFError) as exc:
                    yield LoadedNotebook(label, PurePosixPath(info.filename).name,
                                         error=f"cannot read {label}: damaged zip member ({exc})")
                    continue
                yield parse_notebook(data, label)
    except (zipfile.BadZipFile, OSError) as exc:
        yield LoadedNotebook(str(path), path.name,
                             error=f"cannot read {path}: not a valid zip archive ({exc}); download it again")


def _is_notebook_name(name: str) -> bool:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    # Jupyter's autosave copies and macOS resource forks are not submissions.
    return (name.lower().endswith(".ipynb") and ".ipynb_checkpoints" not in parts
            and "__MACOSX" not in parts and not parts[-1].startswith("._"))


def find_sources(paths: list[str | os.PathLike]) -> list[Path]:
    """Expand PATHs into the notebook and zip files to read, in a stable order.

    Raises PathError for a PATH that does not exist or is not a notebook, folder or zip.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*")
                            if p.is_file() and (p.suffix.lower() == ".zip" or _is_notebook_name(str(p.relative_to(path)))))
            found.extend(inside)
        elif path.is_file() and path.suffix.lower() in (".ipynb", ".zip"):
            found.append(path)
        elif path.exists():
            raise PathError(f"{path} is neither a .ipynb notebook, a folder nor a .zip of notebooks")
        else:
            raise PathError(f"{path} does not exist; give a notebook, a folder of them or a .zip")
    return found


def load_source(source: Path) -> Iterator[LoadedNotebook]:
    """The notebooks in one file that find_sources listed: a notebook, or every notebook in a zip."""
    if source.suffix.lower() == ".zip":
        yield from _read_zip(source)
    else:
        yield _read_file(source)


def load_notebooks(paths: list[str | os.PathLike]) -> Iterator[LoadedNotebook]:
    """Yield every notebook under PATHs (files, folders, zips) as LoadedNotebook, one at a time."""
    for source in find_sources(paths):
        yield from load_source(source)


def list_notebook_names(paths: list[str | os.PathLike]) -> list[str]:
    """The file names of the notebooks under PATHs, without parsing them (for `match`)."""
    names: list[str] = []
    for source in find_sources(paths):
        if source.suffix.lower() == ".zip":
            try:
                with zipfile.ZipFile(source) as archive:
                    names.extend(PurePosixPath(n).name for n in sorted(archive.namelist())
                                 if _is_notebook_name(n) and not n.endswith("/"))
            except (zipfile.BadZipFile, OSError) as exc:
                raise PathError(f"{source} is not a valid zip archive ({exc}); download it again") from exc
        else:
            names.append(source.name)
    return names
