"""Read the machine-readable evidence records that notebooks built by this repo carry.

A record is a display_data output under ``cells.EVIDENCE_MIME`` holding
``{"criterion": id, "model": "model1"|"model2"|null, "summary": str, "data": {...}}`` and optionally
``"status": "warn"``. Records are read exactly: a record means pass, except ``model2_pretrained``, which
passes only when its data says the weights were pretrained and verified. A record in a cell that ended
in an error does not count.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .cells import Cell
from .results import FAIL, PASS, WARN, Verdict


@dataclass
class Record:
    cell: int
    criterion: str
    model: str | None
    summary: str
    data: dict
    status: str | None


def _record_verdict(rec: Record) -> Verdict:
    where = f'cell {rec.cell} "{rec.summary[:80]}"'
    if rec.criterion == "model2_pretrained":
        if rec.data.get("pretrained") is not True:
            return Verdict(rec.criterion, FAIL, f"{where}: the weights were random (not ImageNet-pretrained)")
        if rec.data.get("verified") is not True:
            return Verdict(rec.criterion, WARN, f"{where}: pretrained weights, but their hash was not verified")
    if rec.status == "warn":
        return Verdict(rec.criterion, WARN, f"{where} (the record itself is a warning)")
    return Verdict(rec.criterion, PASS, f"{where} (evidence record)")


_RANK = {PASS: 0, WARN: 1, FAIL: 2}


@dataclass
class ExactRecords:
    by_criterion: dict[str, list[Record]] = field(default_factory=dict)
    in_error_cells: dict[str, list[int]] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return bool(self.by_criterion or self.in_error_cells)

    def has(self, criterion: str) -> bool:
        return criterion in self.by_criterion

    def verdict(self, criterion: str) -> Verdict:
        """The best verdict among this criterion's records (a later, verified record beats a warning)."""
        return min((_record_verdict(r) for r in self.by_criterion[criterion]), key=lambda v: _RANK[v.status])

    def ignored(self, criterion: str) -> str:
        cells = self.in_error_cells.get(criterion)
        if not cells:
            return ""
        return f"evidence record in cell {cells[0]} ignored: the cell ended in an error"


def find_records(cells: list[Cell]) -> ExactRecords:
    found = ExactRecords()
    for cell in cells:
        for output in cell.outputs:
            for raw in output.evidence:
                criterion = raw["criterion"]
                if cell.has_error:
                    found.in_error_cells.setdefault(criterion, []).append(cell.number)
                    continue
                data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
                found.by_criterion.setdefault(criterion, []).append(Record(
                    cell.number, criterion, raw.get("model"), str(raw.get("summary", "")), data,
                    raw.get("status")))
    return found
