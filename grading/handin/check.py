"""Grade notebooks against the rubric: evidence records where the notebook carries them, heuristics
(grading.detect) where it does not. This is the engine behind ``python -m grading check``."""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from pathlib import Path, PurePosixPath

from . import detect
from .cells import read_cells
from .reader import LoadedNotebook, find_sources, load_source
from .records import find_records
from .results import FAIL, PASS, WARN, NotebookReport, Verdict
from .rubric import CRITERIA, Criterion, load_rubric

# Read from the notebook's structure, always exactly; evidence records are not needed for these.
STRUCTURAL = ("filename", "executed", "no_errors", "run_order")


def default_rubric() -> list[Criterion]:
    return load_rubric(known_ids=CRITERIA)


# Which detector reads each content criterion (a per-model detector answers for both of its ids).
DETECTORS = {
    "data_loader": lambda view, params: detect.detect_data_loader(view),
    "validation_split": lambda view, params: detect.detect_validation_split(view),
    "model1_small_convnet": lambda view, params: detect.detect_model1(view, params.get("model1_small_convnet", {})),
    "model2_pretrained": lambda view, params: detect.detect_model2(view),
    "tuning_model1": lambda view, params: detect.detect_tuning(view),
    "tuning_model2": lambda view, params: detect.detect_tuning(view),
    "curves_model1": lambda view, params: detect.detect_curves(view),
    "curves_model2": lambda view, params: detect.detect_curves(view),
    "confusion_model1": lambda view, params: detect.detect_confusion(view),
    "confusion_model2": lambda view, params: detect.detect_confusion(view),
    "confusion_fix": lambda view, params: detect.detect_confusion_fix(view),
    "captum_model1": lambda view, params: detect.detect_captum(view),
    "captum_model2": lambda view, params: detect.detect_captum(view),
    "submission": lambda view, params: detect.detect_submission(view),
    "narrative": lambda view, params: detect.detect_narrative(view, params.get("narrative", {})),
    "discussion": lambda view, params: detect.detect_discussion(view, params.get("discussion", {})),
}


def _heuristics(view: detect.NotebookView, params: dict[str, dict], wanted: set[str]) -> dict[str, Verdict]:
    """Run only the detectors the rubric asks for, each once (a per-model one answers two ids)."""
    found: dict[str, Verdict] = {}
    for cid in sorted(wanted, key=CRITERIA.index):
        if cid not in found:
            result = DETECTORS[cid](view, params)
            found.update(result if isinstance(result, dict) else {result.id: result})
    return found


def grade_notebook(loaded: LoadedNotebook, team: str | None = None,
                   rubric: list[Criterion] | None = None) -> NotebookReport:
    """One report for one loaded notebook; an unreadable one fails every criterion but `filename`."""
    rubric = rubric if rubric is not None else default_rubric()
    stem = PurePosixPath(loaded.filename).stem
    report = NotebookReport(loaded.label, team or stem, required=frozenset(c.id for c in rubric if c.required))
    filename = detect.detect_filename(loaded.filename, team)
    if loaded.nb is None:
        report.unreadable = loaded.error or "cannot read the notebook"
        report.criteria = [filename if c.id == "filename" else Verdict(c.id, FAIL, report.unreadable)
                           for c in rubric]
        return report

    view = detect.NotebookView(read_cells(loaded.nb))
    records = find_records(view.cells)
    # build.py marks its chapters and records every step; a record pasted into a student's notebook
    # does not make the rest of it "built here".
    built_here = records.any and any(c.chapter_start for c in view.cells)
    wanted = {c.id for c in rubric}
    heuristic = _heuristics(view, {c.id: c.params for c in rubric},
                            {cid for cid in wanted if cid not in STRUCTURAL and not records.has(cid)})
    structural = {
        "filename": lambda: filename,
        "executed": lambda: detect.detect_executed(view),
        "no_errors": lambda: detect.detect_no_errors(view),
        "run_order": lambda: detect.detect_run_order(view),
    }
    for criterion in rubric:
        cid = criterion.id
        if cid in structural:
            verdict = structural[cid]()
        elif records.has(cid):
            verdict = records.verdict(cid)
        else:
            verdict = heuristic[cid]
            if built_here and verdict.status == PASS and not records.ignored(cid):
                # Built here, yet the step that records this criterion did not: say so, do not trust blindly.
                verdict = Verdict(cid, WARN, f"no evidence record (the notebook has records for other "
                                  f"criteria); read from the code: {verdict.evidence}")
            elif records.ignored(cid):
                verdict = Verdict(cid, verdict.status, f"{records.ignored(cid)}; {verdict.evidence}")
        report.criteria.append(verdict)
    return report


def check_paths(paths: Iterable[str | os.PathLike], team: str | None = None,
                rubric: list[Criterion] | None = None, jobs: int | None = 1) -> Iterator[NotebookReport]:
    """Grade every notebook under PATHs (files, folders, zips), in order, one report at a time.

    ``jobs``: how many processes grade at once (None: one per core). Grading is CPU-bound pure Python,
    so a class of 150 notebooks is spread over processes, each reading and grading whole files.
    Raises reader.PathError for a PATH that does not exist."""
    rubric = rubric if rubric is not None else default_rubric()
    sources = find_sources(list(paths))
    jobs = available_cores() if jobs is None else max(1, jobs)
    if jobs == 1 or len(sources) < 2:
        for source in sources:
            yield from _grade_source(source, team, rubric)
        return
    with ProcessPoolExecutor(max_workers=min(jobs, len(sources))) as pool:
        # small chunks keep every core busy when a few notebooks are much bigger than the rest
        chunk = max(1, len(sources) // (jobs * 8))
        for reports in pool.map(_grade_source, sources, repeat(team), repeat(rubric), chunksize=chunk):
            yield from reports


def _grade_source(source: Path, team: str | None, rubric: list[Criterion]) -> list[NotebookReport]:
    return [grade_notebook(loaded, team, rubric) for loaded in load_source(source)]


def available_cores() -> int:
    """The cores this process may run on (a container or taskset may allow fewer than the machine has)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def exit_code(reports: list[NotebookReport]) -> int:
    """DESIGN.md: 0 all complete, 1 any incomplete, 2 any unreadable."""
    if any(r.unreadable for r in reports):
        return 2
    return 0 if all(r.complete for r in reports) else 1
