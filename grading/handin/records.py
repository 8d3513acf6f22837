"""Read the machine-readable evidence records that notebooks built by this repo carry.

A record is a display_data output under ``cells.EVIDENCE_MIME`` holding
``{"criterion": id, "model": "model1"|"model2"|null, "summary": str, "data": {...}}`` and optionally
``"status": "warn"``. Records are read exactly: a record means pass, except ``model2_pretrained``, which
passes only when its data says the weights were pretrained and verified. A record in a cell that ended
in an error does not count.

A record does not vouch for itself: anyone can paste one into a notebook. It counts only when its own
cell also shows what it claims (``backing``): a figure for curves, confusion, the fix and Captum, a
table or matrix for the split and the tuning, a printed model for model 1, and so on. An unbacked record
is set aside and the criterion is read by the heuristics, with a note saying so.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .cells import PRINTED_MATRIX, Cell
from .results import FAIL, PASS, WARN, Verdict

_CONV = re.compile(r"\bConv2d\b")
_WEIGHTS = re.compile(r"weights|pretrained|resnet|efficientnet|densenet|vgg|mobilenet|convnext|arch", re.IGNORECASE)
_LOADER = re.compile(r"\bDataset\b|DataLoader|make_loader|\bloader\b")
_WORDS = re.compile(r"[A-Za-z]{2,}")


def _shows(cell: Cell, what: str) -> bool:
    shown = cell.shown_outputs
    text = "\n".join(o.text for o in shown)
    if what == "image":
        return cell.has_image
    if what == "matrix":
        return cell.has_image or any(o.table for o in shown) or bool(PRINTED_MATRIX.search(text))
    if what == "table":
        return cell.has_image or any(o.table for o in shown) or text.count("\n") >= 3
    if what == "model":
        return bool(_CONV.search(text) or _CONV.search(cell.source))
    if what == "weights":
        return bool(_WEIGHTS.search(text))
    if what == "loader":
        return bool(_LOADER.search(cell.source)) and bool(shown)
    if what == "file":
        return ".csv" in text or ".csv" in cell.source
    return len(_WORDS.findall(text)) >= 20 or any(o.table for o in shown)   # "prose": generated text


# What a record's cell must also show; "what the reason says" when it does not.
BACKING = {
    "data_loader": ("loader", "a Dataset or DataLoader in its code and an output"),
    "validation_split": ("table", "a table of the split"),
    "model1_small_convnet": ("model", "a model with Conv2d layers (printed or defined)"),
    "model2_pretrained": ("weights", "which weights were loaded"),
    "tuning_model1": ("table", "a table or figure of the trials"),
    "tuning_model2": ("table", "a table or figure of the trials"),
    "curves_model1": ("image", "an image"),
    "curves_model2": ("image", "an image"),
    "confusion_model1": ("matrix", "an image or a printed matrix"),
    "confusion_model2": ("matrix", "an image or a printed matrix"),
    "confusion_fix": ("image", "an image"),
    "captum_model1": ("image", "an image"),
    "captum_model2": ("image", "an image"),
    "submission": ("file", "the .csv file it writes"),
    "narrative": ("prose", "any text interpreting results"),
    "discussion": ("prose", "a comparison (text or table)"),
}


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
    unbacked: dict[str, str] = field(default_factory=dict)   # criterion -> why its record was set aside

    @property
    def any(self) -> bool:
        return bool(self.by_criterion or self.in_error_cells or self.unbacked)

    def has(self, criterion: str) -> bool:
        return criterion in self.by_criterion

    def verdict(self, criterion: str) -> Verdict:
        """The best verdict among this criterion's records (a later, verified record beats a warning)."""
        return min((_record_verdict(r) for r in self.by_criterion[criterion]), key=lambda v: _RANK[v.status])

    def ignored(self, criterion: str) -> str:
        """Why this criterion's record(s) did not count ('' when there were none or they counted)."""
        cells = self.in_error_cells.get(criterion)
        if cells:
            return f"evidence record in cell {cells[0]} ignored: the cell ended in an error"
        return self.unbacked.get(criterion, "")


def find_records(cells: list[Cell]) -> ExactRecords:
    found = ExactRecords()
    for cell in cells:
        for output in cell.outputs:
            for raw in output.evidence:
                criterion = raw["criterion"]
                if cell.has_error:
                    found.in_error_cells.setdefault(criterion, []).append(cell.number)
                    continue
                what, needs = BACKING.get(criterion, ("prose", "anything"))
                if not _shows(cell, what):
                    found.unbacked.setdefault(criterion, f"evidence record in cell {cell.number} not backed: the "
                                              f"cell does not show {needs}")
                    continue
                data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
                found.by_criterion.setdefault(criterion, []).append(Record(
                    cell.number, criterion, raw.get("model"), str(raw.get("summary", "")), data,
                    raw.get("status")))
    return found
