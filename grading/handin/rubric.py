"""The rubric as data: load grading/rubric.json (or a course's own copy) into Criterion objects.

The packaged rubric.json is the single source inside grading/ of the criterion ids (``CRITERIA``, in
rubric order) and of the evidence records' MIME type (``EVIDENCE_MIME``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_RUBRIC = Path(__file__).parent.parent / "rubric.json"


def _packaged() -> dict:
    return json.loads(DEFAULT_RUBRIC.read_text(encoding="utf-8"))


_PACKAGED = _packaged()
CRITERIA: tuple[str, ...] = tuple(entry["id"] for entry in _PACKAGED["criteria"])
EVIDENCE_MIME: str = _PACKAGED["evidence_mime"]


class RubricError(Exception):
    """The rubric file is missing, not JSON, or names a criterion no detector knows."""


@dataclass(frozen=True)
class Criterion:
    id: str
    description: str
    evidence: str = ""
    required: bool = True
    params: dict = field(default_factory=dict)


def load_rubric(path: str | Path | None = None, known_ids: tuple[str, ...] | None = CRITERIA) -> list[Criterion]:
    """Read a rubric file (default: the packaged rubric.json). ``known_ids`` guards against typos."""
    path = Path(path) if path else DEFAULT_RUBRIC
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RubricError(f"cannot read the rubric {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise RubricError(f"the rubric {path} is not valid JSON: {exc}") from exc
    entries = raw.get("criteria") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise RubricError(f"the rubric {path} needs a non-empty list under \"criteria\"")
    criteria, seen = [], set()
    for n, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise RubricError(f"the rubric {path}: criterion {n} needs an \"id\" string")
        cid = entry["id"]
        if known_ids is not None and cid not in known_ids:
            raise RubricError(f"the rubric {path}: criterion {cid!r} has no detector; "
                              f"known ids: {', '.join(known_ids)}")
        if cid in seen:
            raise RubricError(f"the rubric {path}: criterion {cid!r} is listed twice")
        seen.add(cid)
        criteria.append(Criterion(cid, str(entry.get("description", "")), str(entry.get("evidence", "")),
                                  bool(entry.get("required", True)), dict(entry.get("params") or {})))
    return criteria
