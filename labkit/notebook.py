"""What every chapter does first, and small helpers for showing things in a notebook.

``ChapterParameters`` is the one definition of the parameters every chapter takes (names, types,
defaults). ``start_chapter`` turns them into a ``ChapterContext`` (profile, run folder, device,
data), seeds everything and sets figure defaults, so each chapter opens with one line instead of twenty.
``say`` shows generated Markdown (interpretations quote this run's numbers, so they are built from
results, never typed as fixed prose).

Listings, as d2l does it the other way round: labkit keeps the one tested copy of the code the rubric asks to
see, and a chapter cell that holds only ``%load labkit.data.NucleiDataset`` lines (jupytext writes them
``# %load ...`` in the script) is replaced, when the chapter is built, by that code (``expand_listing``):
the notebook's cell IS labkit's source, it runs in the kernel, and the chapter's later cells call what it
defined. The imports it needs are written above it, as the labkit module writes them.
"""
from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import json
import re
import symtable
import textwrap
import threading
import warnings
from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class ChapterParameters:
    """The chapter-parameter contract: every name, type and default a chapter's parameters cell holds.

    build.py fills it from its options, the Kaggle copy from Kaggle's folders, and each chapter hands all of
    it to ``start_chapter`` with ``**chapter_parameters(globals())``. The defaults let a chapter run by hand
    after a quick build. tests/test_notebook.py checks every chapter's parameters cell against this class.
    """
    team: str = "Dogs_Versus_Cats"
    data_dir: str = ".cache/stub/quick-seed0"
    is_stub: bool = True
    profile: str = "quick"
    run_dir: str = "build/run"
    cache_dir: str = ".cache"
    device: str = "auto"
    ray_address: str = ""     # "" starts Ray on this machine; "HOST:PORT" joins a running cluster
    weights_file: str = ""    # "" uses torchvision's cache (or a download); else this ImageNet weights file
    submission_file: str = ""  # also write the chosen submission.csv here ("" = only into the run folder)
    seed: int = 0

    def __post_init__(self):
        for f in fields(self):  # papermill passes whatever it is given: catch a wrong type here, by name
            value = getattr(self, f.name)
            if type(value) is not _TYPES[f.type]:
                raise TypeError(f"chapter parameter {f.name} = {value!r} should be a {f.type}, "
                                f"not {type(value).__name__}")

    def source(self, comment: str) -> str:
        """The text of a parameters cell holding these values."""
        return "\n".join([f"# {comment}"] + [f"{f.name} = {_literal(getattr(self, f.name))}"
                                          for f in fields(self)])


_TYPES = {"str": str, "bool": bool, "int": int}


def _literal(value) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)  # "double quotes", as chapters write


PARAMETER_NAMES = tuple(f.name for f in fields(ChapterParameters))


def chapter_parameters(namespace: dict) -> dict:
    """The contract's parameters out of a chapter's namespace (``globals()``), by name."""
    missing = [name for name in PARAMETER_NAMES if name not in namespace]
    if missing:
        raise NameError(f"the parameters cell does not set {', '.join(missing)}: copy the parameters cell of "
                        "chapters/01_data.py (names and defaults: labkit.notebook.ChapterParameters)")
    return {name: namespace[name] for name in PARAMETER_NAMES}


@dataclass
class ChapterContext:
    chapter: str
    params: ChapterParameters
    profile: object       # labkit.profiles.Profile
    run: object           # labkit.artifacts.RunDir
    device: object        # torch.device
    data: object          # labkit.data.NucleiData
    # where the chapter's time goes: `with ctx.timer.phase("training"):` (run/timing/<chapter>.json)
    timer: object = None  # labkit.timing.PhaseTimer

    # the parameters chapters use most, by their plain names
    seed = property(lambda self: self.params.seed)
    is_stub = property(lambda self: self.params.is_stub)
    ray_address = property(lambda self: self.params.ray_address)
    weights_file = property(lambda self: self.params.weights_file)
    submission_file = property(lambda self: self.params.submission_file)


def start_chapter(chapter: str, *, load_data: bool = True, **parameters) -> ChapterContext:
    """Seed, set figure defaults, open the run folder and load the data, from the chapter's parameters.

    ``parameters`` are exactly the fields of :class:`ChapterParameters`; the chapter passes them all with
    ``start_chapter("NN_name", **chapter_parameters(globals()))``. What each chapter received is saved as
    ``parameters/NN_name.json`` in the run folder, so a run can be checked against the command that made it.
    """
    import matplotlib

    from labkit import progress
    from labkit.artifacts import RunDir, record_reads
    from labkit.cpu_share import follow_build_share
    from labkit.profiles import get_profile
    from labkit.timing import PhaseTimer
    from labkit.train import pick_device, seed_everything

    unknown = sorted(set(parameters) - set(PARAMETER_NAMES))
    missing = [name for name in PARAMETER_NAMES if name not in parameters]
    if unknown or missing:
        raise TypeError(f"start_chapter({chapter!r}): " + "; ".join(filter(None, [
            f"unknown parameter(s) {', '.join(unknown)}" if unknown else "",
            f"missing parameter(s) {', '.join(missing)}" if missing else ""]))
            + ". Pass **chapter_parameters(globals()) after a parameters cell that matches "
            "labkit.notebook.ChapterParameters.")
    params = ChapterParameters(**parameters)
    follow_build_share()  # beside other chapters in build.py: take up their cores when they finish
    # Captum imports tqdm.auto, which complains when ipywidgets is missing; its bars are not used here
    warnings.filterwarnings("ignore", message="IProgress not found")
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "font.size": 10,
                                "axes.titlesize": 11, "figure.max_open_warning": 0})
    seed_everything(params.seed)
    prof = get_profile(params.profile)
    run = RunDir(params.run_dir, chapter=chapter)
    record_reads(run.root, chapter)  # what it reads of other chapters' results decides when it must re-run
    progress.start(run.root, chapter)  # what it is doing, for build.py's progress lines
    run.save_json(f"parameters/{chapter}.json", asdict(params))
    timer = PhaseTimer(chapter, run)  # its before_timer: kernel start and imports
    data = None
    if load_data:
        from labkit.data import prepare

        with timer.phase("data"):
            data = prepare(params.data_dir, params.cache_dir, run_dir=params.run_dir,
                           val_fraction=prof.val_fraction, seed=params.seed)
    return ChapterContext(chapter, params, prof, run, pick_device(params.device), data, timer)


def say(markdown: str) -> None:
    """Show generated Markdown in the notebook (plain print outside one)."""
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display

        if get_ipython() is not None:
            display(Markdown(markdown))
            return
    except ImportError:
        pass
    print(markdown)


def show_figure(fig, run=None, name: str | None = None) -> None:
    """Display a matplotlib figure (and save the same PNG into the run folder when given).

    The figure is rendered once, as the inline backend would render it (tight bounding box, the
    figure's dpi), and the PNG bytes are both displayed and saved: rendering it twice cost a second per
    Captum figure."""
    import io

    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    try:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", bbox_inches="tight")
        png = buffer.getvalue()
        if run is not None and name:
            run.save_bytes(f"figures/{name}.png", png)
        display(Image(data=png, format="png"))
    finally:
        plt.close(fig)


def pct(x: float, digits: int = 1) -> str:
    """0.8734 -> '87.3%'."""
    return f"{100 * x:.{digits}f}%"


# -- listings: labkit's code in the chapter's own cells ------------------------------------------------
LOAD_LINE = re.compile(r"^\s*(?:#\s*)?%load\s+(labkit(?:\.\w+)+)\s*$")
LISTING_TAG = "listing"   # the cell metadata tag an expanded cell carries (with the names it holds)
REPORT_TAG = "report"     # a chapter cell that only shows generated prose and evidence records


def listing_targets(source: str) -> list[str] | None:
    """The dotted names of a directive cell (every non-blank line ``%load labkit.x.Name``), else None."""
    lines = [line for line in source.splitlines() if line.strip()]
    matches = [LOAD_LINE.match(line) for line in lines]
    if not lines or not all(matches):
        return None
    return [m.group(1) for m in matches]


def resolve(dotted: str):
    """``labkit.data.NucleiDataset`` -> the object (module part imported)."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # the module exists but fails to import: say why, not "no such object"
                raise
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(f"%load {dotted}: no such labkit object")


def object_source(obj) -> str:
    """The object's source as labkit holds it, dedented (a method's source stands alone)."""
    return textwrap.dedent(inspect.getsource(obj)).rstrip() + "\n"


def _free_names(code: str) -> tuple[set[str], set[str]]:
    """(names the code reads from globals, names it binds at top level)."""
    table = symtable.symtable(code, "<listing>", "exec")
    bound = {s.get_name() for s in table.get_symbols() if s.is_local()}
    free: set[str] = set()

    def walk(t):
        for s in t.get_symbols():
            if s.is_referenced() and s.is_global() and not (t is table and s.is_local()):
                free.add(s.get_name())
        for child in t.get_children():
            walk(child)
    walk(table)
    return free - bound - set(dir(builtins)), bound


def _module_imports(module) -> dict[str, tuple[str | None, str, str | None]]:
    """Name -> (from-module or None, imported name, alias) for the module's own top-level imports."""
    found = {}
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.Import):
            for a in node.names:
                found[a.asname or a.name.split(".")[0]] = (None, a.name, a.asname)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level and node.module != "__future__":
            for a in node.names:
                found[a.asname or a.name] = (node.module, a.name, a.asname)
    return found


def import_lines(objects, already: set[str] = frozenset()) -> list[str]:
    """The import statements the objects' code needs, as their labkit modules write them; names in
    ``already`` (defined by an earlier listing of the chapter, or by this one) are not imported."""
    plain, froms = [], {}
    for obj in objects:
        module = inspect.getmodule(obj)
        free, _ = _free_names(object_source(obj))
        imports = _module_imports(module)
        for name in sorted(free - set(already)):
            if name in imports:
                source, imported, alias = imports[name]
                if source is None:
                    line = f"import {imported}" + (f" as {alias}" if alias else "")
                    if line not in plain:
                        plain.append(line)
                    continue
                entry = imported + (f" as {alias}" if alias else "")
            elif name in vars(module):
                source, entry = module.__name__, name
            else:
                continue  # only in an annotation, under TYPE_CHECKING: never evaluated
            froms.setdefault(source, [])
            if entry not in froms[source]:
                froms[source].append(entry)
    return sorted(plain) + [f"from {source} import {', '.join(names)}" for source, names in sorted(froms.items())]


def expand_listing(targets: list[str], defined: set[str] = frozenset()) -> str:
    """The code cell that a ``%load`` directive cell becomes: labkit's source of each target, after the
    imports that source needs (``defined``: names earlier listings of the chapter define already)."""
    objects = [resolve(t) for t in targets]
    codes = [object_source(o) for o in objects]
    own = set().union(*(_free_names(c)[1] for c in codes))
    where = {}
    for obj, target in zip(objects, targets):
        where.setdefault(inspect.getmodule(obj).__name__.replace(".", "/") + ".py", []).append(obj.__qualname__)
    header = "# " + "; ".join(f"{path}: {', '.join(names)}" for path, names in where.items()) \
        + " (the tested copy, run here)"
    lines = [header, "from __future__ import annotations", *import_lines(objects, set(defined) | own)]
    return "\n".join(lines) + "\n\n\n" + "\n\n".join(codes).rstrip() + "\n"


_EXPANDING = threading.Lock()


def expand_listings(cells) -> None:
    """Replace each directive cell of a chapter (nbformat cells, in order) by its listing, in place; tag it
    ``listing`` and record the targets in its metadata (tests compare the cell with labkit's source).
    One chapter at a time: build.py runs chapters from threads, and Python 3.11's parser (ast, symtable) is
    not safe to call from two threads at once."""
    with _EXPANDING:
        _expand_listings(cells)


def _expand_listings(cells) -> None:
    defined: set[str] = set()
    for cell in cells:
        if cell.cell_type != "code":
            continue
        targets = listing_targets(cell.source)
        if targets is None:
            continue
        cell.source = expand_listing(targets, defined)
        tags = cell.metadata.setdefault("tags", [])
        if LISTING_TAG not in tags:
            tags.append(LISTING_TAG)
        cell.metadata["labkit_listing"] = targets
        defined |= {t.rsplit(".", 1)[-1] for t in targets}
