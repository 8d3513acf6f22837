"""What each chapter's executed notebook was made from, and which chapters a rebuild has to run again.

A chapter's result depends on four things, and ``build.py`` keeps a content hash of each in the run folder
(``run/chapter_inputs.json``) for every chapter that ran:

- its script (``chapters/NN_name.py``, byte for byte: a markdown edit is a change);
- the labkit code it runs, object by object (``labkit_code``): each labkit object the chapter lists with
  ``%load`` or imports, plus, within labkit, every module-level object those refer to, transitively. A
  change to ``labkit.models.Model1`` reaches the chapters that run Model1, not those that only import
  ``labkit.models`` for something else;
- the parameters and the environment (the build's options, the data's fingerprint, ``LABKIT_*`` settings,
  the versions of the libraries that compute);
- the run-folder files it read that another chapter wrote, with the SHA-256 of what it read
  (``labkit.artifacts`` records every read through a ``RunDir`` in ``run/reads/NN_name.json``).

A chapter is out of date when any of them differs now. The first three can be checked before anything runs;
the last one is checked at the chapter's turn, after the chapters before it have run again, so a chapter
re-runs exactly when something it read is no longer byte for byte what it read (a re-run upstream chapter
that wrote the same bytes leaves it alone; one that wrote new ones re-runs it). A kept chapter therefore
always reflects the inputs the rest of the notebook was made from.

The code is read with ``ast`` from labkit's source files: nothing is imported, so the check takes about a
second and cannot be fooled by a module that was already loaded. Units are a module's top-level statements
(a function, a class, an assignment); statements that bind no name (a setting made at import) count for
every object of their module and of the modules in its package. The references found are a superset of
those that run (a local name that shadows a module-level one counts too): an edit may re-run a chapter that
did not need it. One exception is deliberate: of a registry, a dict literal such as ``RECIPES``, a chapter
reaches only the entries whose key it names in its code (see ``LabkitCode.closure``).
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import jupytext

from labkit.notebook import listing_targets

PACKAGE = "labkit"
RECORD_FILE = "chapter_inputs.json"  # in the run folder
# the libraries whose versions change what the chapters compute (a new version re-runs them)
COMPUTING_PACKAGES = ("torch", "torchvision", "ray", "captum", "scikit-learn", "scipy", "numpy", "pandas",
                      "matplotlib")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- labkit's code, unit by unit -------------------------------------------------------------------
@dataclass
class Unit:
    """One top-level statement of a labkit module."""
    module: str
    key: str                 # "labkit.models.Model1" (the first name it binds), or "labkit.x:<line N>"
    text: str
    node: ast.AST = field(repr=False)
    # a registry (a module-level dict literal with string keys): its entries, each a unit of its own
    entries: dict[str, Unit] = field(default_factory=dict, repr=False)


@dataclass
class Module:
    name: str
    units: list[Unit]
    by_name: dict[str, Unit]          # module-level name -> the unit that binds it
    imports: dict[str, str]           # local name -> dotted name it stands for ("labkit.data.prepare", "torch")
    always: list[Unit]                # statements that bind no name: they run with any object of the module


def _bound_names(node: ast.AST) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    names = []
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
            names.append(child.id)
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(child.name)
    return list(dict.fromkeys(names))


def _registry_entries(node: ast.AST) -> dict[str, ast.AST] | None:
    """{key: value node} of ``NAME = {"key": value, ...}`` with string keys only, else None."""
    if not (isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Dict) and node.value.keys):
        return None
    keys = node.value.keys
    if not all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in keys):
        return None
    return {k.value: v for k, v in zip(keys, node.value.values)}


def _import_map(nodes) -> dict[str, str]:
    """Local name -> dotted name, for the import statements among ``nodes``."""
    found = {}
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    found[alias.asname] = alias.name
                else:  # "import labkit.data" binds "labkit"
                    found[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level and node.module != "__future__":
            for alias in node.names:
                found[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return found


def read_module(name: str, source: str) -> Module:
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    units, by_name, always = [], {}, []
    body = tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:]  # the module docstring: words for readers, not code that runs
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        text = "".join(lines[first - 1:node.end_lineno])
        names = _bound_names(node)
        unit = Unit(name, f"{name}.{names[0]}" if names else f"{name}:<line {first}>", text, node)
        registry = _registry_entries(node)
        if registry is not None:
            # the dict's keys make the unit; each entry's code is reached only by a chapter that names its key
            unit.text, unit.node = f"{names[0]} = dict with keys {sorted(registry)}", ast.Pass()
            unit.entries = {k: Unit(name, f"{unit.key}[{k!r}]", ast.get_source_segment(source, value), value)
                            for k, value in registry.items()}
        units.append(unit)
        for bound in names:
            by_name[bound] = unit
        if not names:
            always.append(unit)
    return Module(name, units, by_name, _import_map(tree.body), always)


class LabkitCode:
    """labkit's modules read from source, and the closure of what an object refers to."""

    def __init__(self, package_dir: Path):
        self.modules: dict[str, Module] = {}
        for path in sorted(Path(package_dir).rglob("*.py")):
            parts = path.relative_to(package_dir.parent).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            self.modules[name] = read_module(name, path.read_text(encoding="utf-8"))

    def resolve(self, dotted: str) -> list[Unit]:
        """The units a dotted labkit name stands for: an object's unit, or every unit of a module."""
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            module = self.modules.get(".".join(parts[:cut]))
            if module is None:
                continue
            if cut == len(parts):
                return list(module.units)
            unit = module.by_name.get(parts[cut])
            if unit is not None:
                return [unit]
            # a name that module imports from elsewhere in labkit ("from labkit.x import y" re-exported)
            target = module.imports.get(parts[cut])
            if target and target.startswith(PACKAGE):
                return self.resolve(".".join([target, *parts[cut + 1:]]))
            return []
        return []

    def references(self, unit: Unit) -> list[str]:
        """The dotted labkit names a unit refers to (module-level names of its module included)."""
        module = self.modules[unit.module]
        local_imports = _import_map(n for n in ast.walk(unit.node) if isinstance(n, (ast.Import, ast.ImportFrom)))
        return _dotted_references(unit.node, module.name, set(module.by_name), {**module.imports, **local_imports})

    def closure(self, dotted_names, keys=frozenset()) -> dict[str, str]:
        """{unit key: SHA-256 of its text} for the named objects and everything they refer to within labkit.

        Of a registry (``RECIPES = {"model1": ..., "model2": ...}``) only the entries whose key is in ``keys``
        (the string literals of the chapter's code) are followed: labkit looks a kind up by its name, and a
        chapter that never names "model1" never runs model1's recipe."""
        todo = [unit for name in dotted_names for unit in self.resolve(name)]
        seen: dict[str, Unit] = {}
        while todo:
            unit = todo.pop()
            if unit.key in seen:
                continue
            seen[unit.key] = unit
            for package in _enclosing(unit.module):  # importing labkit.x runs labkit/__init__.py first
                todo.extend(self.modules[package].always if package in self.modules else [])
            todo.extend(entry for key, entry in unit.entries.items() if key in keys)
            for name in self.references(unit):
                todo.extend(self.resolve(name))
        return {key: sha256_text(unit.text) for key, unit in sorted(seen.items())}


def _enclosing(module: str) -> list[str]:
    """``labkit.a.b`` -> ["labkit", "labkit.a", "labkit.a.b"]."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _dotted_references(tree: ast.AST, module_name: str | None, module_names: set[str],
                       imports: dict[str, str]) -> list[str]:
    """Dotted labkit names read in ``tree``: ``features.build_cache`` with ``from labkit import features``
    gives ``labkit.features.build_cache``; a bare module-level name ``helper`` gives ``module.helper``."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Name) or isinstance(node.ctx, ast.Store):
            continue
        chain, top = [node.id], node
        while isinstance(parents.get(top), ast.Attribute) and parents[top].value is top:
            top = parents[top]
            chain.append(top.attr)
        if node.id in imports:
            target = imports[node.id]
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                found.append(".".join([target, *chain[1:]]))
        elif module_name is not None and node.id in module_names:
            found.append(f"{module_name}.{node.id}")
    return list(dict.fromkeys(found))


# -- a chapter's own inputs ------------------------------------------------------------------------
def chapter_code(script: Path) -> tuple[list[str], set[str]]:
    """(the labkit objects a chapter runs: its ``%load`` listings and what its code cells use of its imports,
    the string literals of its code cells)."""
    names, code = [], []
    for cell in jupytext.read(script).cells:
        if cell.cell_type != "code":
            continue
        targets = listing_targets(cell.source)
        if targets is not None:
            # the cell becomes labkit's source, written out by labkit.notebook's listing code
            names += targets + ["labkit.notebook.expand_listings"]
            continue
        code.append("\n".join(line for line in cell.source.splitlines()
                              if not line.lstrip().startswith(("%", "!"))))  # magics are not Python
    try:
        tree = ast.parse("\n\n".join(code))
    except SyntaxError as exc:
        raise ValueError(f"{script}: a code cell is not valid Python (line {exc.lineno} of its code cells): "
                         f"{exc.msg}. Fix the chapter.") from None
    imports = _import_map(n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)))
    names += _dotted_references(tree, None, set(), imports)
    literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    return list(dict.fromkeys(names)), literals


def environment_fingerprint(data_fingerprint: str = "") -> dict[str, str]:
    """What outside the repository changes a chapter's numbers: library versions, LABKIT_* settings, the data."""
    import importlib.metadata as md
    import platform

    def version(package):
        try:
            return md.version(package)
        except md.PackageNotFoundError:
            return "not installed"

    return {"python": platform.python_version(),
            **{package: version(package) for package in COMPUTING_PACKAGES},
            **{name: value for name, value in sorted(os.environ.items()) if name.startswith("LABKIT_")},
            "data": data_fingerprint}


# Parameters that say where the output folder is, not what is computed: a copied or moved output folder keeps
# its results.
OUTPUT_LOCATIONS = ("run_dir", "submission_file")


def chapter_inputs(script: Path, code: LabkitCode, parameters: dict, environment: dict) -> dict:
    """The hashes of everything a chapter depends on before it reads the run folder."""
    what = {name: value for name, value in parameters.items() if name not in OUTPUT_LOCATIONS}
    return {"script": hashlib.sha256(script.read_bytes()).hexdigest(),
            "code": code.closure(*chapter_code(script)),
            "parameters": sha256_text(json.dumps(what, sort_keys=True)),
            "environment": sha256_text(json.dumps(environment, sort_keys=True))}


# -- the record and the verdict --------------------------------------------------------------------
def read_record(run_dir: Path) -> dict:
    path = Path(run_dir) / RECORD_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}  # a damaged record: every chapter runs again, which is always safe


def write_record(run_dir: Path, record: dict) -> None:
    from labkit.artifacts import atomic_write_text

    atomic_write_text(Path(run_dir) / RECORD_FILE, json.dumps(record, indent=1, sort_keys=True))


def own_changes(saved: dict | None, now: dict) -> list[str]:
    """Why a chapter is out of date before it reads anything (empty: its script, code, parameters and
    environment are those it last ran with)."""
    if not saved:
        return ["not run in this output folder yet"]
    reasons = []
    if saved.get("script") != now["script"]:
        reasons.append("its script changed")
    before, after = saved.get("code", {}), now["code"]
    changed = sorted(k for k in after if before.get(k) != after[k]) + sorted(k for k in before if k not in after)
    if changed:
        shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
        reasons.append(f"labkit code it runs changed ({shown})")
    if saved.get("parameters") != now["parameters"]:
        reasons.append("the build's options changed")
    if saved.get("environment") != now["environment"]:
        reasons.append("the data, a LABKIT_ setting or a library version changed")
    return reasons


def changed_reads(saved: dict | None, run_dir: Path, digest=None) -> list[str]:
    """Why a chapter is out of date because of what it read: the run-folder files whose bytes differ now."""
    from labkit.artifacts import sha256_file

    digest = digest or sha256_file
    reasons = []
    for name, read in sorted((saved or {}).get("reads", {}).items()):
        path = Path(run_dir) / name
        if not path.exists():
            reasons.append(f"{name} is gone")
        elif digest(path) not in (read["sha256"], read.get("left")):  # what it read, or what it left there
            writer = f" (written by {read['writer']})" if read.get("writer") else ""
            reasons.append(f"{name}{writer} changed")
    return reasons


def data_fingerprint(data_dir: Path) -> str:
    """A hash of every file's name, size and modification time under ``data_dir``: new, removed, replaced or
    edited files change it. (labkit.data keys its image cache the same way: stat takes milliseconds, while
    hashing the bytes costs as much as decoding them.)"""
    digest = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(data_dir)):
        dirs.sort()
        for name in sorted(files):
            stat = os.stat(os.path.join(folder, name))
            digest.update(f"{os.path.relpath(os.path.join(folder, name), data_dir)}\0{stat.st_size}\0"
                          f"{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()
