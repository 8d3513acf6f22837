"""The run folder: how chapters hand results to each other.

Every write is atomic (a temp file in the same folder, then ``os.replace``), so an interrupted chapter
never leaves half a checkpoint behind, and every file written is listed in ``manifest.json`` with its
SHA-256 and the chapter that wrote it, so a later chapter can tell what it is reading.

A chapter that build.py runs records what it reads (``record_reads``, called by ``start_chapter``): every
file any ``RunDir`` of that run folder loads in the chapter's process is listed in ``reads/<chapter>.json``
with the SHA-256 of the bytes read and the chapter that wrote them. build.py re-runs the chapter when one of
those files changes (chapter_inputs.py).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
READS_DIR = "reads"

# (run folder, chapter) whose reads this process records; set once per chapter kernel by record_reads
_recording: dict = {}


class ArtifactError(RuntimeError):
    """A run-folder file is missing or unreadable; the message says which chapter makes it."""


def current_umask() -> int:
    """This process's umask, read without changing it where Linux allows (os.umask can only set it)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); the result should get the mode any new file gets here
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _json_default(obj: Any):
    # numpy scalars and arrays, Paths: the usual things results contain
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot store {type(obj).__name__} as JSON")


def record_reads(run_root: str | os.PathLike, chapter: str) -> Path:
    """From now on, record in ``reads/<chapter>.json`` every run-folder file this process reads through a
    ``RunDir`` (whichever code made it), except those it wrote itself before reading them. Starts an empty
    record.

    Each entry holds the SHA-256 of the bytes read and the chapter that wrote them; where the chapter then
    writes the same file again (a cache it extends), also ``left``, the SHA-256 of what it left there: the
    file may hold either when the chapter's inputs are unchanged."""
    root = Path(run_root).resolve()
    _recording.update(root=root, chapter=chapter, reads={}, written=set(),
                      path=root / READS_DIR / f"{chapter}.json")
    atomic_write_text(_recording["path"], "{}")
    return _recording["path"]


def _recorded(root: Path) -> bool:
    return bool(_recording) and root.resolve() == _recording["root"]


def _save_reads() -> None:
    atomic_write_text(_recording["path"], json.dumps(_recording["reads"], indent=1, sort_keys=True))


def _note_read(root: Path, name: str, manifest: dict) -> None:
    if not _recorded(root) or name in _recording["written"] or name in _recording["reads"]:
        return  # what it wrote itself is not an input; the first read of a file is what it read
    _recording["reads"][name] = {"sha256": sha256_file(root / name), "writer": manifest.get(name, {}).get("chapter")}
    _save_reads()


def _note_write(root: Path, name: str, sha256: str) -> None:
    if not _recorded(root):
        return
    _recording["written"].add(name)
    if name in _recording["reads"]:
        _recording["reads"][name]["left"] = sha256
        _save_reads()


class RunDir:
    """A folder of named artifacts with a manifest.

    Names are relative paths such as ``"model1/final.pt"``. ``chapter`` labels who wrote what.
    """

    def __init__(self, root: str | os.PathLike, chapter: str | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.chapter = chapter

    def path(self, name: str) -> Path:
        return self.root / name

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    # -- manifest -------------------------------------------------------------------------------
    def manifest(self) -> dict:
        p = self.path(MANIFEST)
        if not p.exists():
            return {}
        return json.loads(p.read_text())

    def _register(self, name: str) -> None:
        manifest = self.manifest()
        digest = sha256_file(self.path(name))
        _note_write(self.root, name, digest)
        manifest[name] = {
            "sha256": digest,
            "chapter": self.chapter,
            "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        atomic_write_text(self.path(MANIFEST), json.dumps(manifest, indent=1, sort_keys=True))

    def _read(self, name: str, recorded: bool = True) -> Path:
        """The path of a file about to be read (recorded where ``record_reads`` asked for it)."""
        if not self.exists(name):
            raise self._missing(name)
        if recorded and _recorded(self.root):
            _note_read(self.root, name, self.manifest())
        return self.path(name)

    def _missing(self, name: str) -> ArtifactError:
        return ArtifactError(
            f"{self.path(name)} is missing: an earlier chapter makes it. "
            "Run the whole build (python build.py --team NAME) before re-running one chapter with --only."
        )

    # -- bytes, JSON ----------------------------------------------------------------------------
    def save_bytes(self, name: str, data: bytes) -> Path:
        path = atomic_write_bytes(self.path(name), data)
        self._register(name)
        return path

    def save_json(self, name: str, obj: Any) -> Path:
        return self.save_bytes(name, json.dumps(obj, indent=1, default=_json_default).encode())

    def load_bytes(self, name: str) -> bytes:
        return self._read(name).read_bytes()

    def load_json(self, name: str) -> Any:
        path = self._read(name)
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{self.path(name)} is not valid JSON ({exc}); delete it and re-run the build") from exc

    # -- torch objects (checkpoints, tensors) -------------------------------------------------
    def save_torch(self, name: str, obj: Any) -> Path:
        import torch  # here, not at the top: data_stub and build.py use this module without torch

        buffer = io.BytesIO()
        torch.save(obj, buffer)
        return self.save_bytes(name, buffer.getvalue())

    def load_torch(self, name: str, map_location: str = "cpu", *, recorded: bool = True) -> Any:
        """``recorded=False`` for a cache whose name already says what it was computed from (its key): what
        is in it is not an input of the chapter, and later chapters may extend it."""
        import torch  # see save_torch

        return torch.load(self._read(name, recorded), map_location=map_location, weights_only=False)

    def save_checkpoint(self, name: str, model, **meta) -> Path:
        """A model's state_dict with metadata (config, arch, epoch, metrics)."""
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        return self.save_torch(name, {"state_dict": state, "meta": meta})

    def load_checkpoint(self, name: str) -> tuple[dict, dict]:
        """Returns (state_dict, meta)."""
        ckpt = self.load_torch(name)
        return ckpt["state_dict"], ckpt.get("meta", {})

    # -- tables ---------------------------------------------------------------------------------
    def save_frame(self, name: str, frame) -> Path:
        return self.save_bytes(name, frame.to_csv(index=False).encode())

    def load_frame(self, name: str):
        import pandas as pd  # here, not at the top: see save_torch

        return pd.read_csv(self._read(name))
