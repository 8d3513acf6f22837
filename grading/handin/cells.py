"""A light, read-only view of a notebook's cells that the detectors scan.

Built once per notebook. Output text is capped (first and last ``TEXT_CAP`` characters) because Kaggle
exports can hold megabytes of Ray Tune status tables in one stream output, and nothing the rubric looks
for needs the middle of them. Image data (base64) is never copied, only its mime type noted.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property

from .rubric import EVIDENCE_MIME

IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
# A printed matrix: numpy "[[12  3  0  1]\n [ 2 40 ...", or torch "tensor([[...": a confusion matrix shown as text.
PRINTED_MATRIX = re.compile(r"\[\[\s*\d+\.?\d*(?:[\s,]+\d+\.?\d*)+\s*\],?\s*\n?\s*\[\s*\d")
TEXT_CAP = 20_000
# Printed metrics: "Accuracy: 0.91", "val_loss 0.32", "F1 = 88%".
_RESULT_TEXT = re.compile(r"\b(?:[Aa]cc\w*|ACC\w*|[Ll]oss|LOSS|[Ff]1\w*|[Pp]recision|[Rr]ecall|[Ss]core)\b[^\n]{0,40}?\d")


def cap_text(text: str, cap: int = TEXT_CAP) -> str:
    """The first and last ``cap`` characters of ``text`` (all of it when short)."""
    if len(text) <= 2 * cap:
        return text
    return text[:cap] + "\n...\n" + text[-cap:]


def _as_text(value) -> str:
    if isinstance(value, list):  # nbformat joins multi-line strings, but be tolerant of raw dicts
        value = "".join(value)
    return value if isinstance(value, str) else ""


@dataclass
class Output:
    output_type: str
    mimes: tuple[str, ...] = ()
    text: str = ""                    # capped: stream text, text/plain, or "ename: evalue"
    ename: str | None = None          # for error outputs
    evidence: list[dict] = field(default_factory=list)  # evidence records carried by this output
    table: bool = False               # an HTML table (a displayed DataFrame)

    @property
    def is_image(self) -> bool:
        return any(m in IMAGE_MIMES for m in self.mimes)

    @property
    def is_blank_image(self) -> bool:
        """matplotlib says "<Figure size 640x480 with 0 Axes>" for a figure that was never drawn on."""
        return self.is_image and "with 0 Axes" in self.text


@dataclass
class Cell:
    number: int                       # 1-based over all cells, as a person counts them in Jupyter
    cell_type: str                    # "code", "markdown" or "raw"
    source: str
    execution_count: int | None = None
    outputs: list[Output] = field(default_factory=list)
    chapter: str | None = None        # set on the first cell of a chapter that build.py assembled
    chapter_start: bool = False
    ran_without_count: bool = False   # a Colab export drops every execution count; its cells still ran

    @property
    def is_code(self) -> bool:
        return self.cell_type == "code"

    @property
    def is_empty(self) -> bool:
        return not self.source.strip()

    @property
    def ran(self) -> bool:
        return self.execution_count is not None or self.ran_without_count

    # cached: detectors ask these of every cell many times; outputs never change after reading
    @cached_property
    def errors(self) -> list[Output]:
        return [o for o in self.outputs if o.output_type == "error"]

    @cached_property
    def has_error(self) -> bool:
        return bool(self.errors)

    @cached_property
    def has_image(self) -> bool:
        """An image that shows something (not an empty figure), other than an evidence record's."""
        return any(o.is_image and not o.is_blank_image for o in self.outputs)

    @cached_property
    def shown_outputs(self) -> list[Output]:
        """The outputs a person sees, without evidence records (which only vouch for the cell)."""
        return [o for o in self.outputs if not o.evidence]

    @property
    def ran_cleanly(self) -> bool:
        return self.ran and not self.has_error

    @cached_property
    def shows_result(self) -> bool:
        """A code cell whose output is a result: a figure, a table, or printed metrics (not a pip log).
        Markdown right after one may interpret it; a comparison of the models comes after the first."""
        return self.is_code and self.ran_cleanly and (
            self.has_image or any(o.table or _prints_result(o.text) for o in self.shown_outputs))


def _prints_result(text: str) -> bool:
    # Metrics are printed at the start or the end of an output; a Ray status table's middle holds none.
    ends = text if len(text) <= 4000 else text[:2000] + "\n" + text[-2000:]
    return bool(_RESULT_TEXT.search(ends) or PRINTED_MATRIX.search(ends))


def _read_output(raw) -> Output:
    kind = raw.get("output_type", "")
    if kind == "stream":
        return Output(kind, ("text/plain",), cap_text(_as_text(raw.get("text", ""))))
    if kind == "error":
        ename, evalue = str(raw.get("ename", "Error")), str(raw.get("evalue", ""))
        return Output(kind, (), cap_text(f"{ename}: {evalue}"), ename=ename)
    data = raw.get("data") or {}
    records = []
    if EVIDENCE_MIME in data:
        record = data[EVIDENCE_MIME]
        if isinstance(record, str):  # JSON mime data is normally parsed already; tolerate a string
            try:
                record = json.loads(record)
            except ValueError:
                record = None
        if isinstance(record, dict) and isinstance(record.get("criterion"), str):
            records.append(record)
    # Generated prose is displayed as Markdown, whose text/plain is only "<IPython...Markdown object>".
    text = _as_text(data.get("text/markdown", "")) or _as_text(data.get("text/plain", ""))
    return Output(kind, tuple(data), cap_text(text), evidence=records,
                  table="<table" in _as_text(data.get("text/html", ""))[:TEXT_CAP])


def read_cells(nb) -> list[Cell]:
    """Turn an nbformat v4 notebook into a list of ``Cell`` (numbered from 1)."""
    cells = []
    for number, raw in enumerate(nb.get("cells", []), start=1):
        kind = raw.get("cell_type", "")
        labkit_meta = (raw.get("metadata") or {}).get("labkit") or {}
        cell = Cell(number, kind, _as_text(raw.get("source", "")),
                    chapter=labkit_meta.get("chapter"),
                    chapter_start=bool(labkit_meta.get("chapter_start")))
        if kind == "code":
            count = raw.get("execution_count")
            cell.execution_count = count if isinstance(count, int) else None
            cell.outputs = [_read_output(o) for o in raw.get("outputs") or [] if isinstance(o, dict)]
        cells.append(cell)
    code = [c for c in cells if c.is_code and c.source.strip()]
    if code and all(c.execution_count is None for c in code) and any(c.outputs for c in code):
        # Exported without counts (Colab) yet with outputs: it ran. Which cells without outputs ran cannot
        # be told, so none is failed for it; run_order says the counts are missing.
        for c in code:
            c.ran_without_count = True
    return cells
