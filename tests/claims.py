"""The claims audit: read a built notebook against its run's records, mechanically.

- every number in the audited chapters' prose equals a value in the run's records (the record of
  conclusions, ``conclusions/*.json``, and the evidence records the notebook displays), as written or as a
  percentage, at the precision the prose gives. Written markdown cannot know a run, so of its numbers only
  those that read as results are audited (a decimal or a percentage): "VGG-16" or "2018" are facts;
- the submitted model is named the same everywhere: every sentence of the notebook that speaks of the
  submission and names one model names the one the records say was submitted;
- no comparative ("better", "more accurate", "outperforms") without a paired test's verdict behind it: a
  generated sentence with one must name the winner of a recorded paired test and never call the loser
  better; written markdown, which cannot know this run's verdict, must not use one at all.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat

from labkit.evidence import EVIDENCE_MIME

AUDITED_CHAPTERS = ("01_data", "02_model1", "03_model2", "04_tuning", "05_diagnostics", "06_interpretation",
                    "07_submission")
MODELS = ("model1", "model2")
COMPARATIVE = re.compile(r"\b(?:better|worse|weaker|stronger|(?:more|less) accurate|outperform\w*|superior|"
                         r"inferior)\b", re.IGNORECASE)
NUMBER = re.compile(r"(?<![\w.])[-+−]?\d[\d,]*(?:\.\d+)?(?![\w])")
# numbers that are not results: section and chapter references, the floor of a printed p-value, and names
# with a number in them (SHA-256, ResNet-18, VGG-16)
NOT_RESULTS = re.compile(r"\b(?:sections?|chapters?)\s+\d+(?:\.\d+)?(?:(?:\s*,\s*|\s+and\s+|\s+to\s+)\d+(?:\.\d+)?)*"
                         r"|\bp\s*<\s*0\.001|\b[A-Za-z]+-\d+\b", re.IGNORECASE)
SENTENCE_END = re.compile(r"(?<=[.:;!?])\s+(?=[A-Z*`'\"(-])|\n\s*\n|\n\s*-\s+")
LONG_LIST = 50  # a list this long is predictions or a curve, not a result a sentence quotes


def sentences(text: str) -> list[str]:
    return [" ".join(s.split()) for s in SENTENCE_END.split(text) if s.strip()]


def prose(nb, chapters=None) -> list[dict]:
    """What a reader reads as the report, cell by cell: markdown cells (headings dropped) and generated
    Markdown outputs, the appendix excepted; ``chapters`` limits it to those chapters."""
    found = []
    for index, cell in enumerate(nb.cells):
        chapter = cell.get("metadata", {}).get("labkit", {}).get("chapter")
        if cell.get("id") == "appendix-environment" or (chapters is not None and chapter not in chapters):
            continue
        texts = []
        if cell.cell_type == "markdown":
            texts.append(("written", cell.source))
        for output in cell.get("outputs", []):
            if "text/markdown" in output.get("data", {}):
                texts.append(("generated", output["data"]["text/markdown"]))
        for kind, text in texts:
            text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
            found.append({"cell": index, "chapter": chapter, "kind": kind, "text": text,
                          "tags": list(cell.get("metadata", {}).get("tags", []))})
    return found


def evidence_records(nb) -> list[dict]:
    return [output["data"][EVIDENCE_MIME] for cell in nb.cells for output in cell.get("outputs", [])
            if EVIDENCE_MIME in output.get("data", {})]


def conclusions(run_dir) -> dict:
    folder = Path(run_dir, "conclusions")
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))} if folder.is_dir() else {}


def numeric_values(obj) -> list[float]:
    """Every number in a JSON value (booleans and long lists left out)."""
    if isinstance(obj, bool):
        return []
    if isinstance(obj, (int, float)):
        return [float(obj)]
    if isinstance(obj, dict):
        return [v for value in obj.values() for v in numeric_values(value)]
    if isinstance(obj, list) and len(obj) <= LONG_LIST:
        return [v for value in obj for v in numeric_values(value)]
    return []


def _matches(token: str, values: list[float]) -> bool:
    """Whether a number as the prose writes it (sign dropped, commas allowed) is a record's value, or that
    value as a percentage, rounded to the decimals the prose gives."""
    text = token.replace(",", "").lstrip("+-−")
    x = float(text)
    decimals = len(text.split(".")[1]) if "." in text else 0
    return any(abs(round(abs(candidate), decimals) - x) < 1e-9 for v in values for candidate in (v, 100 * v))


def unbacked_numbers(nb, run_dir, chapters=AUDITED_CHAPTERS) -> list[tuple[int, str, str]]:
    """(cell, number, sentence) for each number in the chapters' prose that no record holds."""
    values = numeric_values(conclusions(run_dir)) + numeric_values(evidence_records(nb))
    found = []
    for item in prose(nb, chapters):
        for sentence in sentences(item["text"]):
            text = NOT_RESULTS.sub(" ", sentence)
            for match in NUMBER.finditer(text):
                token = match.group()
                reads_as_result = "." in token or text[match.end():match.end() + 1] == "%"
                if (item["kind"] == "generated" or reads_as_result) and not _matches(token, values):
                    found.append((item["cell"], token, sentence))
    return found


def submitted_model(nb, run_dir) -> str:
    """The submitted model as the records say: the evidence record of the submission, which must agree
    with the record of conclusions where the run has one."""
    models = {r.get("model") for r in evidence_records(nb) if r.get("criterion") == "submission"}
    record = conclusions(run_dir).get("submission", {}).get("model")
    if record is not None:
        models.add(record)
    assert len(models) == 1, f"the records name {sorted(models)} as the submitted model"
    return models.pop()


def misnamed_submission(nb, run_dir) -> list[tuple[int, str]]:
    """(cell, sentence) of every sentence in the notebook that speaks of the submission and names only the
    model that was not submitted."""
    submitted = submitted_model(nb, run_dir)
    found = []
    for item in prose(nb):
        for sentence in sentences(item["text"]):
            named = {m for m in MODELS if re.search(rf"\b{m}\b", sentence)}
            if re.search(r"\bsubmi(?:ssion|tted|ts?)\b", sentence, re.IGNORECASE) and len(named) == 1 \
                    and named != {submitted}:
                found.append((item["cell"], sentence))
    return found


def _verdicts(run_dir) -> list[tuple[str, str]]:
    """(winner, loser) of every paired test in the record of conclusions that found a difference."""
    return [(r["winner"], r["name_b"] if r["winner"] == r["name_a"] else r["name_a"])
            for r in conclusions(run_dir).values() if isinstance(r, dict) and r.get("winner")]


def unsupported_comparatives(nb, run_dir, chapters=AUDITED_CHAPTERS) -> list[tuple[int, str]]:
    """(cell, sentence) of each comparative without a paired test's verdict behind it."""
    verdicts = _verdicts(run_dir)
    found = []
    for item in prose(nb, chapters):
        for sentence in sentences(item["text"]):
            if not COMPARATIVE.search(sentence):
                continue
            backed = item["kind"] == "generated" and any(
                re.search(rf"\b{re.escape(winner)}\b", sentence) and not re.search(
                    rf"\b{re.escape(loser)}\b[^.;:]*\b(?:is|was|are)\b[^.;:]*{COMPARATIVE.pattern}", sentence)
                for winner, loser in verdicts)
            if not backed:
                found.append((item["cell"], sentence))
    return found


def audit(notebook: Path, run_dir: Path, chapters=AUDITED_CHAPTERS) -> dict[str, list]:
    nb = nbformat.read(notebook, as_version=4)
    return {"numbers without a record": unbacked_numbers(nb, run_dir, chapters),
            "submission named otherwise": misnamed_submission(nb, run_dir),
            "comparatives without a paired test": unsupported_comparatives(nb, run_dir, chapters)}
