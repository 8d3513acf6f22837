"""What grading produces: one Verdict per criterion, one NotebookReport per notebook."""
from __future__ import annotations

from dataclasses import dataclass, field

PASS, FAIL, WARN = "pass", "fail", "warn"


@dataclass
class Verdict:
    id: str
    status: str        # PASS, FAIL or WARN
    evidence: str      # cites cell numbers and quotes a short snippet

    def as_dict(self) -> dict:
        return {"id": self.id, "status": self.status, "evidence": self.evidence}


@dataclass
class NotebookReport:
    notebook: str                      # the path (or archive/member) as the instructor gave it
    team: str
    criteria: list[Verdict] = field(default_factory=list)
    required: frozenset = frozenset()  # ids whose fail makes the notebook incomplete
    unreadable: str | None = None      # why the file could not be read, if it could not

    @property
    def complete(self) -> bool:
        return self.unreadable is None and not any(
            v.status == FAIL and v.id in self.required for v in self.criteria)

    def counts(self) -> dict[str, int]:
        counts = {PASS: 0, FAIL: 0, WARN: 0}
        for verdict in self.criteria:
            counts[verdict.status] += 1
        return counts

    def as_dict(self) -> dict:
        """The JSON contract of DESIGN.md, exactly these keys."""
        return {"notebook": self.notebook, "team": self.team, "complete": self.complete,
                "criteria": [v.as_dict() for v in self.criteria]}
