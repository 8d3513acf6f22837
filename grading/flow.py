"""A data-flow model of a notebook: what ran, in which order, which model each variable held, and what
the notebook's own helper functions do. The detectors (grading.detect) ask it where a step was done and
for which model; nothing here is executed.

Students reuse one variable for both models (``model = create_new_model()``, later ``model =
models.resnet50(...)``) and hide the work in helpers (``trainer(model=model)`` draws the curves,
``tune.run(partial(train_hpt2, ...))`` builds the model inside). So:
- cells are replayed in execution order (execution counts; cell position in a Colab export without counts),
  and each top-level assignment gives its variable the kind of model it builds, if any;
- a call is followed into functions defined in the notebook, two levels deep: their bodies count as the
  caller's code, and the models they build or read from globals count as the models the call is about.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

from . import sections
from .cells import Cell
from .codeparse import (
    Definition,
    LayerCount,
    ParsedCell,
    base_names,
    call_name,
    count_weight_layers,
    parse_cell,
    regex_weight_layers,
)
from .marker import Marker

MODELS = ("model1", "model2")
FOLLOW_DEPTH = 2     # helpers calling helpers; deeper chains are rare in coursework and cost time

TORCHVISION_ARCH = r"(?:%s)\w*" % "|".join(a for a in sections.ARCH_NAMES if a not in ("vit", "swin")) \
    + r"|vit_\w+|swin_\w+"
# torchvision's builders are lower case (resnet50, efficientnet_b0); a student's class ResNet50() is not one.
# (Case-sensitive also keeps it fast: an IGNORECASE alternation cannot skip ahead to a literal.)
ARCH_CALL = Marker(r"\b(%s)\s*\(([^()]*(?:\([^()]*\)[^()]*)*)\)" % TORCHVISION_ARCH, sections.ARCH_NAMES)
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
_COMMENT = re.compile(r"(?m)^\s*#.*$|[ \t]+#(?![^'\"\n]*['\"]\s*[,)\]]).*$")


@lru_cache(maxsize=8192)   # every detector asks for the same cells and statements
def strip_comments(code: str) -> str:
    """Code without its comments: a commented-out line (``# visualize_image_attr(...)``) did not run."""
    return _COMMENT.sub("", code) if "#" in code else code


def parses(text: str) -> bool:
    try:
        ast.parse(text)
        return True
    except SyntaxError:
        return False


@dataclass
class Site:
    """A place where a step is done: a top-level statement that does it directly or calls a helper."""
    cell: Cell
    text: str            # the statement itself
    reach: str           # the statement plus the bodies of the notebook helpers it reaches, comments removed
    quote: str           # the line to quote as evidence
    models: set[str]
    attributed_by: str   # "variables", "helper", "arguments", "section" or "" (unknown)
    note: str = ""       # how the helper was attributed, quoted


@dataclass
class FunctionFacts:
    """What a notebook-defined function does, read from its body (each fact worked out when first asked)."""
    definition: Definition
    cell: Cell
    called: set[str] = field(default_factory=set)       # notebook functions it calls or passes on
    builds: dict[str, str] = field(default_factory=dict)  # model kind -> the line that builds it

    @cached_property
    def body(self) -> str:
        return strip_comments(self.definition.text)

    @cached_property
    def free_names(self) -> set[str]:
        """Globals it reads: names loaded that are neither parameters nor assigned inside."""
        if self.definition.node is None:
            return set()
        bound, loaded = _function_names(self.definition.node)
        return loaded - bound


def _function_names(node: ast.AST) -> tuple[set[str], set[str]]:
    """(bound, loaded) names inside a function: parameters and assignments; names read."""
    bound, loaded = set(), set()
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = node.args
        for arg in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
            if arg is not None:
                bound.add(arg.arg)
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            (bound if isinstance(child.ctx, (ast.Store, ast.Del)) else loaded).add(child.id)
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and child is not node:
            bound.add(child.name)
    return bound, loaded


def _line_of(text: str, pattern: str) -> str:
    for line in text.splitlines():
        if re.search(pattern, line):
            return line.strip()
    return ""


# Cheap tests that say a cell needs its syntax tree: it defines something at the top level, or assigns
# one name (tuples hold results, not models). Parsing is the largest cost of grading a notebook.
_DEFINES = re.compile(r"^(?:async\s+def|def|class|@)\s", re.MULTILINE)
_ASSIGNS = re.compile(r"^\s*[A-Za-z_]\w*\s*=[^=]", re.MULTILINE)


class _ParsedCells(dict):
    """Cell number -> ParsedCell, parsed when first asked for (most cells never are)."""

    def __init__(self, sources: dict[int, str]):
        super().__init__()
        self.sources = sources

    def __missing__(self, number: int) -> ParsedCell:
        parsed = self[number] = parse_cell(self.sources[number])
        return parsed


@dataclass
class NotebookView:
    cells: list[Cell]
    code: list[Cell] = field(init=False)
    parsed: _ParsedCells = field(init=False)

    def __post_init__(self):
        self.code = [c for c in self.cells if c.is_code and not c.is_empty]
        self.parsed = _ParsedCells({c.number: c.source for c in self.code})

    # --- sections ---------------------------------------------------------------------------------
    @cached_property
    def section_model(self) -> dict[int, str | None]:
        return sections.section_models(self.cells)

    @cached_property
    def section_title(self) -> dict[int, str]:
        return sections.section_titles(self.cells)

    @cached_property
    def memo(self) -> dict:
        """Facts a detector works out once per notebook and asks for many times."""
        return {}

    def next_code_cell(self, cell: Cell) -> Cell | None:
        return next((c for c in self.code if c.number > cell.number), None)

    # --- execution order --------------------------------------------------------------------------
    @cached_property
    def execution_order(self) -> list[Cell]:
        """Code cells that ran, in the order they ran (by count; by position where there are no counts)."""
        ran = [c for c in self.code if c.ran]
        return sorted(ran, key=lambda c: (c.execution_count if c.execution_count is not None else 0, c.number))

    # --- definitions --------------------------------------------------------------------------------
    @cached_property
    def definitions(self) -> list[tuple[Cell, Definition]]:
        return [(cell, d) for cell in self.code if _DEFINES.search(cell.source)
                for d in self.parsed[cell.number].definitions]

    @cached_property
    def functions(self) -> dict[str, FunctionFacts]:
        """Notebook-defined functions by name; a name defined twice keeps the definition that ran last."""
        order = {c.number: i for i, c in enumerate(self.execution_order)}
        found: dict[str, FunctionFacts] = {}
        for cell, d in sorted(self.definitions, key=lambda item: order.get(item[0].number, -1)):
            if d.kind == "def":
                found[d.name] = FunctionFacts(d, cell)
        builders = tuple(sorted(self.model1_builders))
        builds = [("model1", Marker(self._builder_call(self.model1_builders), builders)) if builders else None,
                  ("model2", ARCH_CALL)]
        for facts in found.values():
            facts.called = {n for n in _IDENTIFIER.findall(facts.body) if n in found and n != facts.definition.name}
            for kind, pattern in filter(None, builds):
                match = pattern.search(facts.body)
                if match:
                    facts.builds[kind] = _line_of(facts.body, re.escape(match.group(0)))
        return found

    @staticmethod
    def _builder_call(names: set[str]) -> str:
        return r"\b(?:%s)\s*\(" % "|".join(map(re.escape, sorted(names))) if names else ""

    # --- models ---------------------------------------------------------------------------------------
    @cached_property
    def model1_candidates(self) -> list[tuple[Cell, Definition, LayerCount]]:
        return model1_candidates(self)

    @cached_property
    def model1_builders(self) -> set[str]:
        """Names that build an own ConvNet when called: its class, or a factory function returning one."""
        return {d.name for _, d, _ in self.model1_candidates if d.kind in ("class", "def")}

    def _value_kind(self, value: ast.AST, state: dict[str, str], depth: int = FOLLOW_DEPTH) -> str | None:
        if isinstance(value, ast.Name):
            return state.get(value.id)
        if isinstance(value, ast.Attribute):        # model = model.to(device)
            return self._value_kind(value.value, state, depth)
        if not isinstance(value, ast.Call):
            return None
        name = call_name(value)
        if name in self.model1_builders:
            return "model1"
        if re.fullmatch(TORCHVISION_ARCH, name) or name == "get_model":
            return "model2"
        if name in ("to", "cuda", "cpu", "train", "eval") and isinstance(value.func, ast.Attribute):
            return self._value_kind(value.func.value, state, depth)
        facts = self.functions.get(name)
        if facts is not None and depth > 0 and facts.definition.node is not None:
            kinds, returned_globals = self._returns(name, depth - 1)
            kinds = kinds | {state[g] for g in returned_globals if g in state}
            return kinds.pop() if len(kinds) == 1 else None
        return None

    def _returns(self, name: str, depth: int) -> tuple[set[str], set[str]]:
        """(kinds of model a notebook function returns, global names it returns as they are), cached:
        the same helper is called in many cells."""
        key = (name, depth)
        if key not in self._returns_cache:
            node = self.functions[name].definition.node
            local: dict[str, str] = {}
            for child in ast.walk(node):
                if isinstance(child, ast.Assign):
                    kind = self._value_kind(child.value, local, depth)
                    for target in child.targets:
                        if isinstance(target, ast.Name) and kind:
                            local[target.id] = kind
            returned = [r.value for r in ast.walk(node) if isinstance(r, ast.Return) and r.value is not None]
            kinds = {self._value_kind(value, local, depth) for value in returned} - {None}
            bound, _ = _function_names(node)
            returned_globals = {v.id for v in returned if isinstance(v, ast.Name) and v.id not in bound}
            self._returns_cache[key] = (kinds, returned_globals)
        kinds, returned_globals = self._returns_cache[key]
        return set(kinds), returned_globals

    @cached_property
    def _returns_cache(self) -> dict:
        return {}

    @cached_property
    def model_state(self) -> dict[int, dict[str, str]]:
        """For each code cell that ran: variable -> "model1"/"model2" just after it ran (the last
        assignment in execution order wins: one variable may hold model 1 first, model 2 later). A value
        computed from exactly one model (``history = fit(model)``) belongs to that model too."""
        state: dict[str, str] = {}
        result = {}
        for cell in self.execution_order:
            if not _ASSIGNS.search(cell.source):
                result[cell.number] = dict(state)
                continue
            tree = self.parsed[cell.number].tree
            for node in tree.body if tree is not None else []:
                for child in _top_level_assignments(node):
                    if not any(isinstance(t, ast.Name) for t in child.targets):
                        continue   # loss, acc = ...: tuples hold results, not models
                    kind = self._value_kind(child.value, state) or _derived_kind(child.value, state)
                    for target in child.targets:
                        if isinstance(target, ast.Name):
                            if kind:
                                # The variable's own name ("model2 = Net()", then reloaded from a
                                # checkpoint) says which model it is better than its class does.
                                own = sections.models_named(target.id)
                                state[target.id] = own.pop() if len(own) == 1 else kind
                            else:
                                state.pop(target.id, None)
            result[cell.number] = dict(state)
        return result

    def variables_at(self, cell: Cell) -> dict[str, str]:
        return self.model_state.get(cell.number, {})

    # --- following calls ------------------------------------------------------------------------------
    def own_functions_in(self, code: str) -> list[str]:
        """Names of notebook functions that a piece of code mentions (calls, or passes as in partial(f))."""
        return [word for word in dict.fromkeys(_IDENTIFIER.findall(code)) if word in self.functions]

    def does(self, marker: re.Pattern, code: str) -> bool:
        """Whether ``code`` itself does what ``marker`` looks for. A match that is only the name of a
        notebook function (a student's ``def confusion_matrix(model)``) does not count: the function is
        judged by its body instead."""
        if not marker.search(code):   # the common case, at C speed
            return False
        for match in marker.finditer(code):
            word = _IDENTIFIER.match(code, match.start())
            before = code[match.start() - 1:match.start()]
            if not (word and word.group(0) in self.functions and before not in (".", "_")):
                return True
        return False

    def helpers_reached(self, text: str, depth: int = FOLLOW_DEPTH) -> list[FunctionFacts]:
        """Notebook functions a statement calls or passes on (``partial(train_hpt2, ...)``), two levels."""
        if not self.functions:
            return []
        if depth == FOLLOW_DEPTH:   # every detector asks for the same statements
            if text not in self._reached_cache:
                self._reached_cache[text] = self._helpers_reached(text, depth)
            return self._reached_cache[text]
        return self._helpers_reached(text, depth)

    @cached_property
    def _reached_cache(self) -> dict[str, list[FunctionFacts]]:
        return {}

    def _helpers_reached(self, text: str, depth: int) -> list[FunctionFacts]:
        reached: list[FunctionFacts] = []
        frontier = self.own_functions_in(strip_comments(text))
        for _ in range(depth):
            next_frontier = []
            for name in frontier:
                facts = self.functions[name]
                if facts not in reached:
                    reached.append(facts)
                    next_frontier += [n for n in facts.called if self.functions[n] not in reached]
            frontier = next_frontier
        return reached

    def reach(self, text: str) -> str:
        """A statement's code with the bodies of the helpers it reaches; comments removed. Cached: every
        detector asks for the same statements."""
        if text not in self._reach_cache:
            self._reach_cache[text] = "\n".join([strip_comments(text)] + [
                f.body for f in self.helpers_reached(text)])
        return self._reach_cache[text]

    @cached_property
    def _reach_cache(self) -> dict[str, str]:
        return {}

    def attribute(self, cell: Cell, text: str) -> tuple[set[str], str, str]:
        """(models, how, note): which model a statement is about.

        In order: variables it names whose model is known at that point of execution; model-like names
        (``history2``, ``resnet``); the model its helpers build or read from globals; the section heading.
        """
        code = strip_comments(text)
        state = self.variables_at(cell)
        called = set(self.functions)
        named = {kind for var, kind in state.items()
                 if var not in called and re.search(rf"\b{re.escape(var)}\b", code)}
        if named:
            return named, "variables", ""
        named = sections.models_named(code)
        if named:
            return named, "arguments", ""
        helper_kinds: dict[str, str] = {}
        for facts in self.helpers_reached(text):
            for kind, line in facts.builds.items():
                helper_kinds.setdefault(kind, f'{facts.definition.name} builds it: "{line[:60]}"')
            for var in sorted(facts.free_names):
                if var in state and state[var] not in helper_kinds:
                    line = _line_of(facts.definition.text, rf"\b{re.escape(var)}\b")
                    helper_kinds[state[var]] = f'{facts.definition.name} uses it: "{line[:60]}"'
        if len(helper_kinds) == 1:
            (kind, note), = helper_kinds.items()
            return {kind}, "helper", note
        model = self.section_model.get(cell.number)
        return ({model}, "section", "") if model else (set(), "", "")

    def sites(self, marker: re.Pattern, context: re.Pattern | None = None) -> list[Site]:
        """Statements whose own code, or the code of the notebook helpers they reach, matches ``marker``
        (and ``context``, when given). A call to a notebook function is judged by its body, never by its
        name: a student's ``def confusion_matrix(model)`` that shows four images is not sklearn's."""
        # A helper's body is searched once per marker, not once per statement that calls it.
        in_body = {name: self.does(marker, f.body) for name, f in self.functions.items()}
        found = []
        for cell in self.code:
            source = strip_comments(cell.source)
            if not (marker.search(source) or any(in_body[f.definition.name] for f in self.helpers_reached(source))):
                continue   # most cells do nothing of the kind: skip their statements
            for text in self.parsed[cell.number].statements:
                if not (self.does(marker, strip_comments(text))
                        or any(in_body[f.definition.name] for f in self.helpers_reached(text))):
                    continue
                reach = self.reach(text)
                if context is not None and not context.search(reach):
                    continue
                models, how, note = self.attribute(cell, text)
                found.append(Site(cell, text, reach, self._quote(text, marker), models, how, note))
        return found

    def _quote(self, text: str, marker: re.Pattern) -> str:
        """The line of a statement that does the step or calls the helper that does: never an
        ``if __name__ == "__main__":`` line or a comment."""
        lines = [line.strip() for line in strip_comments(text).splitlines() if line.strip()]
        for line in lines:
            if self.does(marker, line):
                return line
        for line in lines:
            if self.own_functions_in(line):
                return line
        return lines[0] if lines else ""

    @cached_property
    def discussion_cells(self) -> list[Cell]:
        from .detect import (
            discussion_cells,  # the rule lives with the detector that uses it
        )
        return discussion_cells(self)


def _derived_kind(value: ast.AST, state: dict[str, str]) -> str | None:
    """``history = fit(model, 5)``: a result computed from one model belongs to that model."""
    if not isinstance(value, ast.Call):
        return None
    kinds = {state[n.id] for arg in [*value.args, *(k.value for k in value.keywords)]
             for n in ast.walk(arg) if isinstance(n, ast.Name) and n.id in state}
    return kinds.pop() if len(kinds) == 1 else None


def _top_level_assignments(node: ast.stmt):
    """Assignments that run when the cell runs: at the top level, or inside if/with/for/try blocks."""
    if isinstance(node, ast.Assign):
        yield node
    elif isinstance(node, (ast.If, ast.With, ast.For, ast.Try)):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                yield from _top_level_assignments(child)


# --- model 1 candidates ---------------------------------------------------------------------------

def model1_candidates(view: NotebookView) -> list[tuple[Cell, Definition, LayerCount]]:
    """Own ConvNets with their weight-layer counts: nn.Module subclasses, nn.Sequential assignments and
    factory functions (``def create_new_model(): return nn.Sequential(...)``) that build at least one
    convolution (directly or through a block defined in the notebook). Blocks that other candidates are
    built from (a ConvBlock) are not candidates themselves."""
    helpers = _helper_counts(view)
    candidates = []
    for cell, d in view.definitions:
        if not re.search(r"Conv2d|Sequential", d.text) or ARCH_CALL.search(d.text):
            continue   # (the cheap test first: most definitions are training or plotting helpers)
        if d.node is None:
            if d.kind == "class" and "Conv2d" in d.text and re.search(r"\(\s*(?:nn\.)?Module\s*\)", d.text):
                candidates.append((cell, d, regex_weight_layers(d.text)))
        elif d.kind == "class" and any(b in ("Module", "Sequential") for b in base_names(d.node)):
            count = count_weight_layers(d.node, {k: v for k, v in helpers.items() if k != d.name})
            if _has_conv(count):
                candidates.append((cell, d, count))
        elif d.kind == "def" and "Sequential" in d.text and _returns_a_network(d.node):
            count = count_weight_layers(d.node, {k: v for k, v in helpers.items() if k != d.name})
            if _has_conv(count) and count.by_type.get("Linear", 0) + count.by_type.get("LazyLinear", 0):
                candidates.append((cell, d, count))
    for cell in (c for c in view.code if "Sequential" in c.source):
        for text in view.parsed[cell.number].statements:
            if "Sequential" not in text or not re.search(r"\bSequential\s*\(", text) or ARCH_CALL.search(text):
                continue
            tree = ast.parse(text) if parses(text) else None
            count = count_weight_layers(tree, helpers) if tree else regex_weight_layers(text)
            if _has_conv(count):
                name = re.match(r"\s*([\w.]+)\s*=", text)
                candidates.append((cell, Definition("sequential", name.group(1) if name else "Sequential", text),
                                   count))
    # (a class defined twice, say once in a %%writefile cell and once in the notebook, is not a block of itself)
    return [(cell, d, count) for cell, d, count in candidates
            if not any(other is not d and other.name != d.name and re.search(rf"\b{re.escape(d.name)}\s*\(", other.text)
                       for _, other, _ in candidates)]


def _returns_a_network(node: ast.AST) -> bool:
    """A factory returns what it built: ``return nn.Sequential(...)`` or ``model = ...; return model``;
    a training loop that merely uses a model returns a history or nothing."""
    returns = [r for r in ast.walk(node) if isinstance(r, ast.Return) and r.value is not None]
    return any(isinstance(r.value, ast.Call) and call_name(r.value) in ("Sequential", "ModuleList")
               or isinstance(r.value, ast.Name) and any(
                   isinstance(a, ast.Assign) and isinstance(a.value, ast.Call)
                   and call_name(a.value) == "Sequential"
                   and any(isinstance(t, ast.Name) and t.id == r.value.id for t in a.targets)
                   for a in ast.walk(node))
               for r in returns)


def _has_conv(count: LayerCount) -> bool:
    return bool(count.by_type.get("Conv2d") or count.by_type.get("LazyConv2d"))


def _helper_counts(view: NotebookView) -> dict[str, LayerCount]:
    """Weight layers built by each notebook-defined block (class or function), for expanding calls."""
    counts: dict[str, LayerCount] = {}
    for _ in range(2):   # blocks built from blocks
        # only definitions that name a weight layer or a block already counted can build one
        blocks = tuple(k for k, v in counts.items() if v.total)
        builds = Marker(r"\b(?:Conv2d|Linear|LazyConv2d|LazyLinear%s)\b" % "".join("|" + re.escape(k) for k in blocks),
                        ("Conv2d", "Linear") + blocks)
        for _, d in view.definitions:
            if d.node is not None and builds.search(d.text):
                counts[d.name] = count_weight_layers(d.node, {k: v for k, v in counts.items() if k != d.name})
    return counts
