"""How often the grader agrees with a careful human marker on a folder of real hand-ins.

    python bench/grading_agreement.py FOLDER EXPECTED.json [--json]

EXPECTED.json maps a notebook's stem to ``{"criteria": {id: "pass"|"fail"|"warn"}, "why": "..."}`` (keys
starting with ``_`` are notes). Prints agreement per criterion, per notebook and overall, then every
disagreement with the grader's evidence beside the marker's reason, so that a reader sees at once whether
the grader or the rule is wrong. Grades with ``grading.check_paths``: the same engine as
``python -m grading check``.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

# Run as a script, bench/ comes first on sys.path and bench/grading.py would shadow the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grading import CRITERIA, check_paths


@dataclass
class Disagreement:
    notebook: str
    criterion: str
    grader: str
    marker: str
    evidence: str
    why: str


def load_expected(path: Path) -> dict[str, dict]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {stem: entry for stem, entry in data.items() if not stem.startswith("_")}


def compare(folder: Path, expected: dict[str, dict]) -> tuple[dict, list[Disagreement], list[str]]:
    """(verdict pairs per notebook, disagreements, stems in EXPECTED with no notebook in FOLDER)."""
    pairs: dict[str, dict[str, tuple[str, str]]] = {}
    disagreements = []
    for report in check_paths([folder], jobs=1):
        stem = Path(report.notebook).stem
        if stem not in expected:
            continue
        wanted = expected[stem]["criteria"]
        pairs[stem] = {}
        for verdict in report.criteria:
            if verdict.id not in wanted:
                continue
            pairs[stem][verdict.id] = (verdict.status, wanted[verdict.id])
            if verdict.status != wanted[verdict.id]:
                disagreements.append(Disagreement(stem, verdict.id, verdict.status, wanted[verdict.id],
                                                  verdict.evidence, _why_line(expected[stem], verdict.id)))
    missing = sorted(set(expected) - set(pairs))
    return pairs, disagreements, missing


def _why_line(entry: dict, criterion: str) -> str:
    """The part of the marker's 'why' that talks about this criterion (the whole line when none does)."""
    why = entry.get("why", "")
    stems = {criterion, criterion.rsplit("_model", 1)[0], criterion.split("_")[0]}
    parts = [part.strip() for part in why.split(". ")]
    mine = [p for p in parts if any(p.startswith(s) or f" {s}" in p[:40] for s in stems)]
    return ". ".join(mine) if mine else why


def _rate(agreed: int, total: int) -> str:
    return f"{agreed}/{total} ({100 * agreed / total:.0f}%)" if total else "-"


def summarise(pairs: dict[str, dict[str, tuple[str, str]]]) -> dict:
    per_criterion = {cid: [0, 0] for cid in CRITERIA}
    per_notebook = {}
    for stem, verdicts in pairs.items():
        agreed = sum(got == want for got, want in verdicts.values())
        per_notebook[stem] = (agreed, len(verdicts))
        for cid, (got, want) in verdicts.items():
            per_criterion.setdefault(cid, [0, 0])
            per_criterion[cid][0] += got == want
            per_criterion[cid][1] += 1
    agreed = sum(a for a, _ in per_notebook.values())
    total = sum(n for _, n in per_notebook.values())
    return {"per_criterion": {k: tuple(v) for k, v in per_criterion.items() if v[1]},
            "per_notebook": per_notebook, "overall": (agreed, total)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("expected", type=Path)
    parser.add_argument("--json", action="store_true", help="print the figures and disagreements as JSON")
    args = parser.parse_args(argv)
    pairs, disagreements, missing = compare(args.folder, load_expected(args.expected))
    summary = summarise(pairs)
    if args.json:
        print(json.dumps({**summary, "missing": missing,
                          "disagreements": [vars(d) for d in disagreements]}, indent=1))
        return 0
    print("agreement per criterion")
    for cid, (agreed, total) in summary["per_criterion"].items():
        print(f"  {cid:22} {_rate(agreed, total)}")
    print("agreement per notebook")
    for stem, (agreed, total) in summary["per_notebook"].items():
        print(f"  {stem:32} {_rate(agreed, total)}")
    print(f"overall: {_rate(*summary['overall'])}")
    if missing:
        print("no notebook in the folder for: " + ", ".join(missing))
    if disagreements:
        print(f"\n{len(disagreements)} disagreements")
    for d in disagreements:
        print(f"\n{d.notebook} {d.criterion}: grader {d.grader}, marker {d.marker}\n"
              f"  grader: {d.evidence}\n  marker: {d.why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
