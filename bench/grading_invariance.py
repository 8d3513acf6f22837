"""Whether the grader's verdicts change only when the work changes, on a folder of real hand-ins.

    python bench/grading_invariance.py FOLDER

Each notebook in FOLDER is graded as it is, then transformed in ways that change nothing a marker cares
about, and in ways that remove something a marker looks for; every verdict is compared with the untouched
notebook's. The bench prints each verdict that moves (before and after, with the grader's evidence), then
how many expectations hold. Nothing is executed: a transformation edits the notebook's JSON the way a
student's editor would.

Transformations that must leave every verdict as it was:
  unused imports      a first code cell of imports nothing uses (a weighted sampler, Captum's methods, Ray
                      Tune's Tuner, scikit-learn's confusion matrix, class weights, torchvision's weights
                      enum and augmentations), run first: every execution count moves up by one.
  cells cut           every code cell that can be cut at a statement boundary without moving an output to
                      the wrong half, with the counts renumbered: a cell without outputs, or whose only output
                      is the value of its last line, is cut in the middle; another cell with outputs has its
                      leading or trailing imports and definitions (which print nothing) cut off into a cell of
                      their own. A cell that shows a figure is never cut: a figure shows at the end of the
                      cell that drew it.
  markdown rewrapped  every paragraph of plain markdown re-wrapped to short lines (headings, lists, tables,
                      quotes, HTML and code blocks are left as they are).
  metadata dropped    the notebook's and every cell's metadata dropped, and cell ids added (nbformat 4.5).
  empty cell at end   an empty code cell that never ran, after the last cell.
  variables renamed   variables renamed consistently in every code cell (``renamed1``, ``renamed2``, ...).

How the renaming treats meaningful names. A name is kept when it carries meaning a marker uses:
- it says which model a value belongs to: ``model1``, ``model_2``, ``history2``, ``net1``, ``resnet``,
  ``resnet_model``, ``pretrained_net``, ``small_cnn``, ``Conv_model`` (the names grading.handin.sections reads as
  naming a model, and the ConvNet names a marker reads as model 1);
- it says what the value is in the rubric's words: losses and accuracies (``train_loss``, ``val_acc``),
  confusion matrices (``cm``, ``cf_matrix``, ``conf_matr``), class weights and samplers, tuners,
  attributions, predictions and submissions, histories and splits.
Renaming one of those would change what the notebook says, not only how it is written; the grader is free
to read them, as a marker does.
Other variables (``x``, ``df``, ``device``, ``model``, ``optimizer``, ``transform``, ``loader``) are renamed:
a plain ``model`` says nothing about which model it holds; the grader must follow the data flow instead.
A renamed variable is renamed everywhere it is a variable, in every cell: where it is assigned, read,
deleted or declared global. A name is never renamed where renaming could change what the code means or
leave a reference behind: parameters and keyword names (``DataLoader(batch_size=batch_size)``), attributes,
imported names, functions and classes the notebook defines, builtins, names read inside f-strings (their
text is one token), and every name of a cell that does not parse.

Transformations that must fail what they remove:
  markdown removed    every markdown cell removed: ``narrative`` and ``discussion`` fail.
  outputs cleared     every output and execution count cleared (Jupyter's "Clear All Outputs"):
                      ``executed`` fails, and so does every criterion that needs a figure or a printed result
                      (tuning, curves, confusion matrices, Captum).
  cited cell removed  for each passing verdict that cites a cell (all but the structural criteria and the
                      narrative, which is read over the whole notebook), that cell is removed with its outputs:
                      the verdict falls (warn or fail), unless another cell shows the same thing. Where it still
                      passes, the bench prints the cell it passes on now, to be checked by eye.
"""
from __future__ import annotations

import argparse
import ast
import builtins
import copy
import io
import json
import re
import sys
import textwrap
import tokenize
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Run as a script, bench/ comes first on sys.path and bench/grading.py would shadow the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grading import LoadedNotebook, grade_notebook, load_notebooks
from grading.handin.results import PASS
from grading.handin.sections import models_named

UNUSED_IMPORTS = """\
from torch.utils.data import WeightedRandomSampler
from sklearn.utils.class_weight import compute_class_weight
from captum.attr import IntegratedGradients, NoiseTunnel, Occlusion, Saliency, visualize_image_attr
from ray import tune
from ray.tune import Tuner
from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix
from torchvision.models import ResNet50_Weights
from torchvision.transforms import ColorJitter, RandomHorizontalFlip, RandomRotation"""

STRUCTURAL = ("filename", "executed", "no_errors", "run_order")
# Criteria whose evidence is a figure or a printed result: with the outputs cleared, none can pass.
NEEDS_OUTPUT = ("tuning_model1", "tuning_model2", "curves_model1", "curves_model2", "confusion_model1",
                "confusion_model2", "captum_model1", "captum_model2")
# Variable names that say what a value is in the rubric's words (see the docstring).
RUBRIC_WORDS = re.compile(r"loss|acc|conf|matri|^cm|_cm|weight|sampl|tune|tuning|attr|saliency|occlu|captum|"
                          r"pred|submi|hist|split|conv|cnn", re.IGNORECASE)
_MAGIC = re.compile(r"^\s*(?:[!%]|\?\w)")
_CITED_CELL = re.compile(r"\bcell (\d+)\b")


# --- notebooks as JSON ----------------------------------------------------------------------------

def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else value or ""


def normalised(nb: dict) -> dict:
    """A copy whose cell sources are strings (a file on disk may hold them as lists of lines)."""
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        cell["source"] = _text(cell.get("source"))
    return nb


def code_cell(source: str, count: int | None = None, outputs: list | None = None) -> dict:
    return {"cell_type": "code", "execution_count": count, "metadata": {}, "outputs": outputs or [],
            "source": source}


def make_room(nb: dict, extra: dict[int, int]) -> None:
    """Give every count room for cells run just before it: ``extra`` maps a count to how many new cells ran
    right before it; every later count moves up by all the room made before it."""
    if not extra:
        return
    counts = sorted({c["execution_count"] for c in nb["cells"]
                     if c["cell_type"] == "code" and isinstance(c.get("execution_count"), int)})
    shift, moved = 0, {}
    for count in counts:
        shift += extra.get(count, 0)
        moved[count] = count + shift
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and isinstance(cell.get("execution_count"), int):
            cell["execution_count"] = moved[cell["execution_count"]]


def _has_figure(cell: dict) -> bool:
    return any(key.startswith("image/") for o in cell.get("outputs", []) for key in (o.get("data") or {}))


def _blanked(source: str) -> str:
    """The cell with IPython lines (``!pip``, ``%matplotlib``) read as ``pass``, line for line."""
    return "\n".join(re.sub(r"\S.*", "pass", line, count=1) if _MAGIC.match(line) else line
                     for line in source.split("\n"))


def _parsed(source: str) -> ast.Module | None:
    try:
        return ast.parse(_blanked(source))
    except (SyntaxError, ValueError):
        return None


# --- transformations that change nothing a marker cares about ------------------------------------

def add_unused_imports(nb: dict) -> dict:
    nb = normalised(nb)
    counts = [c["execution_count"] for c in nb["cells"] if c["cell_type"] == "code"
              and isinstance(c.get("execution_count"), int)]
    first = min(counts) if counts else None
    make_room(nb, {first: 1} if first is not None else {})
    nb["cells"].insert(0, code_cell(UNUSED_IMPORTS, first))
    return nb


_SILENT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _cut(cell: dict) -> tuple[int, bool] | None:
    """Where a cell can be cut: (the 0-based line the second half starts at, whether the outputs go with the
    first half), or None. A cell without outputs, or whose only output is the value of its last line, is
    cut in the middle; otherwise only imports and definitions (which print nothing) at its start or its
    end are cut off, so that every output stays with the statement that printed it."""
    if cell["cell_type"] != "code" or _has_figure(cell) or cell["source"].lstrip().startswith("%%"):
        return None
    tree = _parsed(cell["source"])
    if tree is None or len(tree.body) < 2:
        return None
    starts = [min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
              for node in tree.body]
    if all(o.get("output_type") == "execute_result" for o in cell.get("outputs", [])):
        return starts[len(starts) // 2], False
    silent = [isinstance(node, _SILENT) for node in tree.body]
    leading = silent.index(False) if False in silent else len(silent)
    if 0 < leading < len(silent):
        return starts[leading], False
    trailing = silent[::-1].index(False) if False in silent else len(silent)
    if 0 < trailing < len(silent):
        return starts[len(silent) - trailing], True
    return None


def cut_cells(nb: dict) -> dict:
    nb = normalised(nb)
    cells, halves, extra = [], [], {}
    for cell in nb["cells"]:
        cut = _cut(cell)
        if cut is None:
            cells.append(cell)
            continue
        at, outputs_first = cut
        lines = cell["source"].split("\n")
        count = cell.get("execution_count")
        first = {**cell, "source": "\n".join(lines[:at]).rstrip("\n")}
        second = {**cell, "source": "\n".join(lines[at:])}
        (second if outputs_first else first)["outputs"] = []
        if "id" in cell:
            second["id"] = f"{cell['id']}-cut"
        if isinstance(count, int):
            extra[count] = extra.get(count, 0) + 1
            halves.append((first, second))
        cells += [first, second]
    nb["cells"] = cells
    make_room(nb, extra)
    for first, second in halves:   # both halves had the old count: the first ran right before the second
        first["execution_count"] = second["execution_count"] - 1
    return nb


_NOT_PARAGRAPH = re.compile(r"^\s*(?:#|[-*+]\s|\d+[.)]\s|>|\||<|```|~~~|\$\$|!\[)|^(?: {4}|\t)")


def rewrap_markdown(nb: dict) -> dict:
    nb = normalised(nb)
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown" or "```" in cell["source"]:
            continue
        blocks = re.split(r"(\n\s*\n)", cell["source"])
        for index in range(0, len(blocks), 2):
            lines = blocks[index].split("\n")
            if lines and not any(_NOT_PARAGRAPH.match(line) for line in lines) and blocks[index].strip():
                blocks[index] = textwrap.fill(" ".join(line.strip() for line in lines), width=40,
                                              break_long_words=False, break_on_hyphens=False)
        cell["source"] = "".join(blocks)
    return nb


def drop_metadata(nb: dict) -> dict:
    nb = normalised(nb)
    nb["metadata"] = {}
    nb["nbformat_minor"] = max(5, nb.get("nbformat_minor", 0))
    for index, cell in enumerate(nb["cells"]):
        cell["metadata"] = {}
        cell["id"] = f"cell-{index}"
    return nb


def add_empty_cell(nb: dict) -> dict:
    nb = normalised(nb)
    nb["cells"].append(code_cell(""))
    return nb


def _meaningful(name: str) -> bool:
    return bool(models_named(name) or RUBRIC_WORDS.search(name))


def renameable(nb: dict) -> set[str]:
    """Variables the renaming may rename (see the docstring)."""
    assigned, kept = set(), set(dir(builtins))
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        tree = _parsed(cell["source"])
        if tree is None:
            kept.update(re.findall(r"[A-Za-z_]\w*", cell["source"]))
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                assigned.add(node.id)
            elif isinstance(node, ast.arg) or isinstance(node, ast.keyword) and node.arg:
                kept.add(node.arg)
            elif isinstance(node, ast.Attribute):
                kept.add(node.attr)
            elif isinstance(node, ast.alias):
                kept.add((node.asname or node.name).split(".")[0])
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                kept.add(node.name)
            elif isinstance(node, ast.JoinedStr):
                kept.update(n.id for n in ast.walk(node) if isinstance(n, ast.Name))
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                assigned.update(node.names)
    return {name for name in assigned - kept if not _meaningful(name)}


def rename_variables(nb: dict) -> dict:
    nb = normalised(nb)
    names = sorted(renameable(nb))
    taken = {word for cell in nb["cells"] for word in re.findall(r"\w+", cell["source"])}
    fresh = (f"renamed{n}" for n in range(1, 10 ** 6) if f"renamed{n}" not in taken)
    new = {name: next(fresh) for name in names}
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and _parsed(cell["source"]) is not None:
            cell["source"] = _renamed(cell["source"], new)
    return nb


def _renamed(source: str, new: dict[str, str]) -> str:
    lines = source.split("\n")
    edits = []
    for token in tokenize.generate_tokens(io.StringIO(_blanked(source)).readline):
        if token.type == tokenize.NAME and token.string in new and not _MAGIC.match(lines[token.start[0] - 1]):
            edits.append((token.start, token.end, new[token.string]))
    for (row, start), (_, end), name in reversed(edits):
        line = lines[row - 1]
        lines[row - 1] = line[:start] + name + line[end:]
    return "\n".join(lines)


# --- transformations that remove what a marker looks for -----------------------------------------

def remove_markdown(nb: dict) -> dict:
    nb = normalised(nb)
    nb["cells"] = [c for c in nb["cells"] if c["cell_type"] != "markdown"]
    return nb


def clear_outputs(nb: dict) -> dict:
    nb = normalised(nb)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return nb


def remove_cell(nb: dict, number: int) -> dict:
    nb = normalised(nb)
    del nb["cells"][number - 1]
    return nb


@dataclass
class Transformation:
    name: str
    apply: Callable[[dict], dict]
    must_fail: tuple[str, ...] = ()     # empty: every verdict must stay as it was


UNCHANGING = (
    Transformation("unused imports", add_unused_imports),
    Transformation("cells cut", cut_cells),
    Transformation("markdown rewrapped", rewrap_markdown),
    Transformation("metadata dropped", drop_metadata),
    Transformation("empty cell at end", add_empty_cell),
    Transformation("variables renamed", rename_variables),
)
REMOVING = (
    Transformation("markdown removed", remove_markdown, ("narrative", "discussion")),
    Transformation("outputs cleared", clear_outputs, ("executed",) + NEEDS_OUTPUT),
)


# --- comparing verdicts ---------------------------------------------------------------------------

def grade(nb: dict, filename: str) -> dict[str, tuple[str, str]]:
    """criterion id -> (status, evidence)."""
    report = grade_notebook(LoadedNotebook(filename, filename, nb=nb))
    return {v.id: (v.status, v.evidence) for v in report.criteria}


@dataclass
class Outcome:
    notebook: str
    transformation: str
    criterion: str
    held: bool
    before: tuple[str, str]
    after: tuple[str, str]
    note: str = ""


@dataclass
class Findings:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def held(self) -> int:
        return sum(o.held for o in self.outcomes)


def check_notebook(nb: dict, filename: str) -> list[Outcome]:
    """Every expectation of every transformation for one notebook."""
    stem = Path(filename).stem
    original = normalised(nb)
    before = grade(original, filename)
    outcomes = []
    for t in UNCHANGING + REMOVING:
        after = grade(t.apply(original), filename)
        for cid in (t.must_fail or before):
            held = after[cid][0] == before[cid][0] if not t.must_fail else after[cid][0] == "fail"
            outcomes.append(Outcome(stem, t.name, cid, held, before[cid], after[cid]))
    for cid, (status, evidence) in before.items():
        cited = _CITED_CELL.search(evidence)
        if status != PASS or cid in STRUCTURAL or cid == "narrative" or not cited:
            continue
        number = int(cited.group(1))
        after = grade(remove_cell(original, number), filename)[cid]
        note = ""
        if after[0] == PASS:
            now = _CITED_CELL.search(after[1])
            on = int(now.group(1)) + (int(now.group(1)) >= number) if now else None
            note = f"still passes on cell {on} (was cell {number}): check it shows the same" if on else \
                f"still passes without cell {number}, citing no cell"
        outcomes.append(Outcome(stem, f"cell {number} removed", cid, after[0] != PASS or bool(note.startswith(
            "still passes on")), before[cid], after, note))
    return outcomes


def describe(nb: dict, filename: str) -> str:
    """How much the transformations change in a notebook: an expectation holds for little where they change
    nothing (a notebook with no cell to cut, no variable to rename)."""
    nb = normalised(nb)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    cut = sum(_cut(c) is not None for c in code)
    paragraphs = sum(a != b for a, b in zip(nb["cells"], rewrap_markdown(nb)["cells"]))
    return (f"{Path(filename).stem}: {cut} of {len(code)} code cells cut, {len(renameable(nb))} variables renamed, "
            f"{paragraphs} markdown cells rewrapped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--json", action="store_true", help="print every outcome as JSON")
    args = parser.parse_args(argv)
    findings = Findings()
    for loaded in load_notebooks([args.folder]):
        if loaded.nb is None:
            print(f"{loaded.label}: cannot be read ({loaded.error}); left out")
            continue
        findings.outcomes += check_notebook(loaded.nb, loaded.filename)
        if not args.json:
            print(describe(loaded.nb, loaded.filename))
    if args.json:
        print(json.dumps([vars(o) for o in findings.outcomes], indent=1))
        return 0
    for o in findings.outcomes:
        if not o.held:
            print(f"MOVED {o.notebook} [{o.transformation}] {o.criterion}: {o.before[0]} -> {o.after[0]}\n"
                  f"    before: {o.before[1]}\n    after:  {o.after[1]}")
    for o in findings.outcomes:
        if o.held and o.note:
            print(f"ANOTHER CELL {o.notebook} [{o.transformation}] {o.criterion}: {o.note}\n"
                  f"    before: {o.before[1]}\n    after:  {o.after[1]}")
    notebooks = len({o.notebook for o in findings.outcomes})
    print(f"{findings.held} of {len(findings.outcomes)} expectations hold on {notebooks} notebooks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
