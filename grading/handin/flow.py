"""A data-flow model of a notebook: what ran, in which order, which model each variable held, and what
the notebook's own helper functions do. The detectors (grading.detect) ask it where a step was done and
for which model; nothing here is executed.

Students reuse one variable for both models (``model = create_new_model()``, later ``model =
models.resnet50(...)``) and hide the work in helpers (``trainer(model=model)`` draws the curves,
``tune.run(partial(train_hpt2, ...))`` builds the model inside). So:
- cells are replayed in execution order (execution counts; cell position in a Colab export without counts),
  and each top-level assignment gives its variable the kind of model it builds, if any, remembering where
  the model came from (a ``Binding``), so that evidence can show the chain;
- every name is resolved as it was when the cell ran: a function defined twice is called in the version
  in force at that point of execution (a ``Scope``), not the last one in the file;
- a call is followed into functions defined in the notebook, two levels deep: their bodies count as the
  caller's code, and the models they build or read from globals count as the models the call is about;
  a tuple returned by such a function hands its model to the matching target and that model's results
  to the others (``Conv_model, train_loss, val_loss = train_Conv_model(config)``).
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

TORCHVISION_ARCH = r"(?:{})\w*".format("|".join(a for a in sections.ARCH_NAMES if a not in ("vit", "swin"))) \
    + r"|vit_\w+|swin_\w+"
# torchvision's builders are lower case (resnet50, efficientnet_b0); a student's class ResNet50() is not one.
# (Case-sensitive also keeps it fast: an IGNORECASE alternation cannot skip ahead to a literal.)
ARCH_CALL = Marker(rf"\b({TORCHVISION_ARCH})\s*\(([^()]*(?:\([^()]*\)[^()]*)*)\)", sections.ARCH_NAMES)
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
_RETURN = re.compile(r"^[ \t]*return\b([^\n]*(?:\n[^\n]*){0,8})", re.MULTILINE)
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
    attributed_by: str   # "variables", "helper", "arguments", "section", "only model" or "" (unknown)
    note: str = ""       # how it was attributed: the helper's line quoted, or the data-flow chain
    versions: str = ""   # which definition ran, for a helper the notebook defines more than once


QUOTE_CHARS = 60


def _short(text: str, limit: int = QUOTE_CHARS) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[:limit - 3] + "..."


@dataclass(frozen=True)
class Binding:
    """What a variable holds after an assignment: a model, or a result computed from one (a history, a list
    of losses), and where it came from, so that evidence can show the chain an instructor can check."""
    kind: str                      # "model1" or "model2"
    is_model: bool                 # the model itself, not a result computed from it
    cell: int                      # the cell of the assignment (of the definition, inside a function)
    step: str                      # the assignment as evidence shows it
    via: Binding | None = None     # the variable it was copied or computed from
    origin: str = ""               # where the model was built, when that is not a variable

    def chain(self, limit: int = 4) -> str:
        """``cell 16 "Conv_model, ... = train_Conv_model(...)" ← cell 15 train_Conv_model builds "..."``: the
        latest steps and where it all started (``model = model.to(device)`` in every cell adds no news)."""
        steps, binding = [], self
        while binding is not None:
            steps.append(f"cell {binding.cell} {binding.step}")
            last, binding = binding, binding.via
        if last.origin:
            steps.append(last.origin)
        if len(steps) > limit:
            steps = steps[:limit - 1] + ["...", steps[-1]]
        return " ← ".join(steps)


@dataclass(frozen=True)
class Source:
    """Where a value's model comes from, before it is bound to a name."""
    kind: str
    via: Binding | None = None
    origin: str = ""


@dataclass(frozen=True)
class Parameter:
    """A function returns one of its parameters as it is (``return losses, model``)."""
    name: str
    index: int


@dataclass
class Returns:
    """What a notebook function returns, read from its ``return`` statements."""
    single: list[Source]                     # models returned as a single value
    globals: set[str]                        # global names returned as they are
    tuples: dict[int, list]                  # tuple length -> per position: Source, Parameter or None


@dataclass
class FunctionFacts:
    """What a notebook-defined function does, read from its body (each fact worked out when first asked)."""
    definition: Definition
    cell: Cell
    called: set[str] = field(default_factory=set)       # names of notebook functions it calls or passes on
    builds: dict[str, str] = field(default_factory=dict)  # model kind -> the line that builds it

    @property
    def name(self) -> str:
        return self.definition.name

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

    @cached_property
    def returned_names(self) -> frozenset[str]:
        """Identifiers in its ``return`` statements, read from the text (a cheap test before its tree)."""
        names: set[str] = set()
        for match in _RETURN.finditer(self.body):
            text, depth = match.group(1), 0
            for end, char in enumerate(text):   # a return statement may run over lines inside brackets
                depth += char in "([{"
                depth -= char in ")]}"
                if char == "\n" and depth <= 0:
                    text = text[:end]
                    break
            names.update(_IDENTIFIER.findall(text))
        return frozenset(names)

    @cached_property
    def parameters(self) -> list[str]:
        node = self.definition.node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return []
        return [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs]


class Scope:
    """The notebook functions in force at one point of execution (a function defined twice is called in the
    version that existed when the calling cell ran), with what was worked out about calls in it."""

    def __init__(self, functions: dict[str, FunctionFacts]):
        self.functions = functions
        self.reached: dict[str, list[FunctionFacts]] = {}
        self.reach: dict[str, str] = {}


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


_STRING = re.compile(r"""(?s)'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*\"""")


@lru_cache(maxsize=8192)
def names_used(code: str) -> frozenset[str]:
    """The variable names a piece of code uses: identifiers outside string literals (a plot labelled
    'Finetuned model' does not use the variable ``model``)."""
    try:
        return frozenset(n.id for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name))
    except (SyntaxError, ValueError):
        return frozenset(_IDENTIFIER.findall(_STRING.sub(" ", code)))


def _call_step(targets: str, value: ast.AST) -> str:
    """An assignment as evidence quotes it: ``Conv_model, ... = train_Conv_model(...)``."""
    if isinstance(value, ast.Call):
        return f'"{targets} = {_short(ast.unparse(value.func), 40)}(...)"'
    return f'"{_short(targets + " = " + ast.unparse(value))}"'


# Cheap tests that say a cell needs its syntax tree: it defines something at the top level, or assigns
# to names (one, or a tuple). Parsing is the largest cost of grading a notebook.
_DEFINES = re.compile(r"^(?:async\s+def|def|class|@)\s", re.MULTILINE)
_ASSIGNS = re.compile(r"^\s*[A-Za-z_(\[][\w\s,*()\[\]]*?=[^=]", re.MULTILINE)
# Other ways to build a pretrained model than torchvision's builders (for telling whether a notebook has one).
_OTHER_MODEL2 = Marker(r"\bget_model\s*\(|\btimm\.create_model\s*\(|\bhub\.load\s*\(|\.from_pretrained\s*\(",
                       ("get_model", "create_model", "hub.load", "from_pretrained"))


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
    def all_functions(self) -> list[FunctionFacts]:
        """Every notebook-defined function, each definition once (a name defined twice appears twice)."""
        found = [FunctionFacts(d, cell) for cell, d in self.definitions if d.kind == "def"]
        names = {f.name for f in found}
        builders = tuple(sorted(self.model1_builders))
        builds = [("model1", Marker(self._builder_call(self.model1_builders), builders)) if builders else None,
                  ("model2", ARCH_CALL)]
        for facts in found:
            facts.called = {n for n in _IDENTIFIER.findall(facts.body) if n in names and n != facts.name}
            for kind, pattern in filter(None, builds):
                match = pattern.search(facts.body)
                if match:
                    facts.builds[kind] = _line_of(facts.body, re.escape(match.group(0)))
        return found

    @cached_property
    def function_names(self) -> frozenset[str]:
        return frozenset(f.name for f in self.all_functions)

    @cached_property
    def _scopes(self) -> tuple[dict[int, Scope], Scope]:
        """The scope each cell that ran saw (its own definitions included), and the scope at the end."""
        defined_in: dict[int, list[FunctionFacts]] = {}
        for facts in self.all_functions:
            defined_in.setdefault(facts.cell.number, []).append(facts)
        # Before a name's first definition in execution order, the name still resolves: to the definition
        # that ran first (a defining cell re-run by hand later shows only its last count, yet it ran before
        # the cells that call it), else to one that never ran. A later definition replaces it from there on.
        first_ran: dict[str, FunctionFacts] = {}
        for cell in self.execution_order:
            for facts in defined_in.get(cell.number, ()):
                first_ran.setdefault(facts.name, facts)
        scope = Scope({**{f.name: f for f in self.all_functions if not f.cell.ran}, **first_ran})
        by_cell = {}
        for cell in self.execution_order:
            mine = defined_in.get(cell.number)
            if mine:
                scope = Scope({**scope.functions, **{f.name: f for f in mine}})
            by_cell[cell.number] = scope
        return by_cell, scope

    def scope_at(self, cell: Cell | None = None) -> Scope:
        """The functions in force when ``cell`` ran (at the end of the run for a cell that never ran)."""
        by_cell, final = self._scopes
        return by_cell.get(cell.number, final) if cell is not None else final

    @property
    def functions(self) -> dict[str, FunctionFacts]:
        """Notebook-defined functions by name as they stood at the end of the run."""
        return self.scope_at().functions

    @staticmethod
    def _builder_call(names: set[str]) -> str:
        return r"\b(?:{})\s*\(".format("|".join(map(re.escape, sorted(names)))) if names else ""

    # --- models ---------------------------------------------------------------------------------------
    @cached_property
    def model1_candidates(self) -> list[tuple[Cell, Definition, LayerCount]]:
        return model1_candidates(self)

    @cached_property
    def model1_builders(self) -> set[str]:
        """Names that build an own ConvNet when called: its class, or a factory function returning one."""
        return {d.name for _, d, _ in self.model1_candidates if d.kind in ("class", "def")}

    @cached_property
    def models_built(self) -> dict[str, str]:
        """Which models the notebook's code builds anywhere (comments aside): kind -> a cell that does."""
        found = {}
        if self.model1_candidates:
            cell, d, _ = self.model1_candidates[0]
            found["model1"] = f'cell {cell.number} "{_short(d.text)}"'
        for cell in self.code:
            source = strip_comments(cell.source)
            match = ARCH_CALL.search(source) or _OTHER_MODEL2.search(source)
            if match:
                found["model2"] = f'cell {cell.number} "{_short(_line_of(source, re.escape(match.group(0))))}"'
                break
        return found

    def _value_source(self, value: ast.AST, state: dict[str, Binding], scope: Scope,
                      depth: int = FOLLOW_DEPTH) -> Source | None:
        """Which model a value is, and where it came from: a builder call, a copy of a variable, or what a
        notebook function returns."""
        if isinstance(value, ast.Name):
            binding = state.get(value.id)
            return Source(binding.kind, binding) if binding else None
        if isinstance(value, ast.Attribute):        # model = model.to(device)
            return self._value_source(value.value, state, scope, depth)
        if not isinstance(value, ast.Call):
            return None
        name = call_name(value)
        if name in self.model1_builders:
            return Source("model1")
        if re.fullmatch(TORCHVISION_ARCH, name) or name == "get_model":
            return Source("model2")
        if name in ("to", "cuda", "cpu", "train", "eval") and isinstance(value.func, ast.Attribute):
            return self._value_source(value.func.value, state, scope, depth)
        facts = scope.functions.get(name)
        if facts is not None and depth > 0 and facts.definition.node is not None \
                and self._may_return_a_model(facts, scope, state):
            returns = self._returns(facts, scope, depth - 1)
            sources = returns.single + [Source(state[g].kind, state[g]) for g in sorted(returns.globals) if g in state]
            if len({s.kind for s in sources}) == 1:
                return sources[0] if sources[0].via or sources[0].origin else \
                    Source(sources[0].kind, origin=f'cell {facts.cell.number} {name} returns it')
        return None

    @staticmethod
    def _may_return_a_model(facts: FunctionFacts, scope: Scope, state: dict[str, Binding]) -> bool:
        """Whether a call's value can be a model at all: the function builds one, calls another notebook
        function, or returns one of its parameters or a global that holds one. Most helpers return losses
        and accuracies, and their trees need not be walked (a class has dozens)."""
        return bool(facts.builds or any(n in scope.functions for n in facts.called)
                    or facts.returned_names & (set(facts.parameters) | state.keys()))

    def _returns(self, facts: FunctionFacts, scope: Scope, depth: int) -> Returns:
        """What a notebook function returns. Cached by the versions of the functions it calls, not by scope:
        most cells that define something open a new scope, yet leave this function's callees as they were."""
        key = (id(facts), depth, tuple(id(scope.functions.get(n)) for n in sorted(facts.called)))
        if key not in self._returns_cache:
            node = facts.definition.node
            assignments, returned = [], []
            for child in ast.walk(node):   # one walk: a notebook has dozens of helpers, each asked once
                if isinstance(child, ast.Assign):
                    assignments.append(child)
                elif isinstance(child, ast.Return) and child.value is not None:
                    returned.append(child.value)
            elements = [e for v in returned for e in (v.elts if isinstance(v, (ast.Tuple, ast.List)) else [v])]
            local: dict[str, Binding] = {}
            # Locals matter only when a variable is returned (``return net``); ``return loss / n, acc`` holds none.
            if any(isinstance(_root(e), ast.Name) for e in elements):
                for child in assignments:
                    source = self._value_source(child.value, local, scope, depth)
                    for target in child.targets:
                        if isinstance(target, ast.Name) and source:
                            step = f'{facts.name} builds "{_short(ast.unparse(child))}"'
                            local[target.id] = Binding(source.kind, True, facts.cell.number, step,
                                                       source.via, source.origin)
            parameters = facts.parameters
            single, tuples = [], {}
            for value in returned:
                if isinstance(value, (ast.Tuple, ast.List)):
                    positions = []
                    for element in value.elts:
                        if isinstance(element, ast.Name) and element.id in parameters and element.id not in local:
                            positions.append(Parameter(element.id, parameters.index(element.id)))
                        else:
                            positions.append(self._value_source(element, local, scope, depth))
                    tuples.setdefault(len(value.elts), positions)
                else:
                    source = self._value_source(value, local, scope, depth)
                    if source:
                        single.append(source)
            names = [v.id for v in returned if isinstance(v, ast.Name) and v.id not in local]
            bound = _function_names(node)[0] if names else set()
            returned_globals = {name for name in names if name not in bound}
            self._returns_cache[key] = Returns(single, returned_globals, tuples)
        return self._returns_cache[key]

    @cached_property
    def _returns_cache(self) -> dict[tuple, Returns]:
        return {}

    @cached_property
    def model_state(self) -> dict[int, dict[str, Binding]]:
        """For each code cell that ran: variable -> Binding just after it ran (the last assignment in
        execution order wins: one variable may hold model 1 first, model 2 later). A value computed from
        exactly one model (``history = fit(model)``, or the losses a training function returns beside the
        model it built) belongs to that model too, as a result."""
        state: dict[str, Binding] = {}
        result = {}
        for cell in self.execution_order:
            if not _ASSIGNS.search(cell.source):
                result[cell.number] = dict(state)
                continue
            scope = self.scope_at(cell)
            tree = self.parsed[cell.number].tree
            for node in tree.body if tree is not None else []:
                for child in _top_level_assignments(node):
                    for target in child.targets:
                        if isinstance(target, ast.Name):
                            self._bind_name(target.id, child.value, state, scope, cell)
                        elif isinstance(target, (ast.Tuple, ast.List)):
                            self._bind_tuple(target, child.value, state, scope, cell)
            result[cell.number] = dict(state)
        return result

    def _bind_name(self, name: str, value: ast.AST, state: dict[str, Binding], scope: Scope, cell: Cell) -> None:
        source = self._value_source(value, state, scope)
        is_model = source is not None
        source = source or _derived_source(value, state)
        if source is None:
            state.pop(name, None)
            return
        # The variable's own name ("model2 = Net()", then reloaded from a checkpoint) says which model it
        # is better than its class does.
        own = sections.models_named(name)
        kind = own.pop() if len(own) == 1 else source.kind
        state[name] = Binding(kind, is_model, cell.number, _call_step(name, value), source.via, source.origin)

    def _bind_tuple(self, target: ast.Tuple | ast.List, value: ast.AST, state: dict[str, Binding], scope: Scope,
                    cell: Cell) -> None:
        """``Conv_model, train_loss, val_loss = train_Conv_model(config)``: the model the function returns
        goes to its target, and the others are that model's results."""
        names = [e.id if isinstance(e, ast.Name) else None for e in target.elts]
        positions: list = [None] * len(names)
        results_of: Source | None = None
        if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(names):
            positions = [self._value_source(e, state, scope) for e in value.elts]
        elif isinstance(value, ast.Call):
            facts = scope.functions.get(call_name(value))
            if facts is not None and facts.definition.node is not None:
                may = self._may_return_a_model(facts, scope, state)
                returned = may and self._returns(facts, scope, FOLLOW_DEPTH - 1).tuples.get(len(names))
                if returned:
                    positions = [self._argument_source(value, p, state, scope) if isinstance(p, Parameter) else p
                                 for p in returned]
                models = [p for p in positions if p is not None]
                if len({p.kind for p in models}) == 1:
                    results_of = models[0]
                elif not models and len(facts.builds) == 1:
                    (kind, line), = facts.builds.items()
                    results_of = Source(kind, origin=f'cell {facts.cell.number} {facts.name} builds "{_short(line)}"')
            results_of = results_of or _derived_source(value, state)
        shown = ", ".join(n or "_" for n in names)
        for index, (name, source) in enumerate(zip(names, positions)):
            if name is None:
                continue
            step = _call_step(_tuple_targets(names, index) if isinstance(value, ast.Call) else shown, value)
            if source is not None:
                state[name] = Binding(source.kind, True, cell.number, step, source.via, source.origin)
            elif results_of is not None:
                state[name] = Binding(results_of.kind, False, cell.number, step, results_of.via, results_of.origin)
            else:
                state.pop(name, None)

    def _argument_source(self, call: ast.Call, parameter: Parameter, state: dict[str, Binding],
                         scope: Scope) -> Source | None:
        """The model passed for a parameter that the function hands back (``return losses, model``)."""
        argument = next((k.value for k in call.keywords if k.arg == parameter.name), None)
        if argument is None and parameter.index < len(call.args):
            argument = call.args[parameter.index]
        return self._value_source(argument, state, scope) if argument is not None else None

    def variables_at(self, cell: Cell) -> dict[str, Binding]:
        return self.model_state.get(cell.number, {})

    # --- following calls ------------------------------------------------------------------------------
    def own_functions_in(self, code: str) -> list[str]:
        """Names of notebook functions that a piece of code mentions (calls, or passes as in partial(f))."""
        return [word for word in dict.fromkeys(_IDENTIFIER.findall(code)) if word in self.function_names]

    def does(self, marker: re.Pattern, code: str) -> bool:
        """Whether ``code`` itself does what ``marker`` looks for. A match that is only the name of a
        notebook function (a student's ``def confusion_matrix(model)``) does not count: the function is
        judged by its body instead."""
        if not marker.search(code):   # the common case, at C speed
            return False
        for match in marker.finditer(code):
            word = _IDENTIFIER.match(code, match.start())
            before = code[match.start() - 1:match.start()]
            if not (word and word.group(0) in self.function_names and before not in (".", "_")):
                return True
        return False

    def helpers_reached(self, text: str, cell: Cell | None = None) -> list[FunctionFacts]:
        """Notebook functions a statement of ``cell`` calls or passes on (``partial(train_hpt2, ...)``), two
        levels deep, in the versions in force when the cell ran."""
        if not self.function_names:
            return []
        scope = self.scope_at(cell)
        if text not in scope.reached:   # every detector asks for the same statements
            scope.reached[text] = _helpers_reached(scope, self.own_functions_in(strip_comments(text)))
        return scope.reached[text]

    def reach(self, text: str, cell: Cell | None = None) -> str:
        """A statement's code with the bodies of the helpers it reaches; comments removed. Cached: every
        detector asks for the same statements."""
        scope = self.scope_at(cell)
        if text not in scope.reach:
            scope.reach[text] = "\n".join([strip_comments(text)] + [f.body for f in self.helpers_reached(text, cell)])
        return scope.reach[text]

    def attribute(self, cell: Cell, text: str) -> tuple[set[str], str, str]:
        """(models, how, note): which model a statement is about.

        In order: variables it uses whose model is known at that point of execution (a variable holding a
        model before one holding a result); model-like names (``history2``, ``resnet``); the model its
        helpers build or read from globals; the section heading; and last, in a notebook that builds only
        one model, that model (a step none of the others settles cannot be about a model never built).
        """
        models, how, note = self._attribute(cell, text)
        built = self.models_built
        if not models and len(built) == 1:
            (only, where), = built.items()
            return {only}, "only model", where
        return models, how, note

    def _attribute(self, cell: Cell, text: str) -> tuple[set[str], str, str]:
        code = strip_comments(text)
        state = self.variables_at(cell)
        used = names_used(code)
        named = {var: b for var, b in state.items() if var in used and var not in self.function_names}
        chosen = {var: b for var, b in named.items() if b.is_model} or named
        if chosen:
            kinds = {b.kind for b in chosen.values()}
            note = "; ".join(f"{var} ← {b.chain()}" for var, b in sorted(chosen.items()))
            return kinds, "variables", note
        named = sections.models_named(code)
        if named:
            return named, "arguments", ""
        helper_kinds: dict[str, str] = {}
        for facts in self.helpers_reached(text, cell):
            for kind, line in facts.builds.items():
                helper_kinds.setdefault(kind, f'{facts.name} builds it: "{line[:60]}"')
            for var in sorted(facts.free_names):
                if var in state and state[var].kind not in helper_kinds:
                    line = _line_of(facts.definition.text, rf"\b{re.escape(var)}\b")
                    helper_kinds[state[var].kind] = f'{facts.name} uses it: "{line[:60]}"'
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
        in_body = {id(f): self.does(marker, f.body) for f in self.all_functions}
        found = []
        for cell in self.code:
            source = strip_comments(cell.source)
            if not (marker.search(source) or any(in_body[id(f)] for f in self.helpers_reached(source, cell))):
                continue   # most cells do nothing of the kind: skip their statements
            for text in self.parsed[cell.number].statements:
                if not (self.does(marker, strip_comments(text))
                        or any(in_body[id(f)] for f in self.helpers_reached(text, cell))):
                    continue
                reach = self.reach(text, cell)
                if context is not None and not context.search(reach):
                    continue
                models, how, note = self.attribute(cell, text)
                found.append(Site(cell, text, reach, self._quote(text, marker), models, how, note,
                                  self.versions_called(cell, text)))
        return found

    @cached_property
    def _definitions_of(self) -> dict[str, list[FunctionFacts]]:
        found: dict[str, list[FunctionFacts]] = {}
        for facts in self.all_functions:
            found.setdefault(facts.name, []).append(facts)
        return found

    def versions_called(self, cell: Cell, text: str) -> str:
        """For each helper a statement reaches that the notebook defines more than once: which definition
        ran (the one in force when the cell ran), and where the others are."""
        notes = []
        for facts in self.helpers_reached(text, cell):
            others = [f.cell.number for f in self._definitions_of[facts.name] if f is not facts]
            if others:
                where = ", ".join(str(n) for n in others)
                notes.append(f"{facts.name} as defined in cell {facts.cell.number}, in force when cell "
                             f"{cell.number} ran (also defined in cell {where})")
        return "; ".join(notes)

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


def _helpers_reached(scope: Scope, names: list[str]) -> list[FunctionFacts]:
    reached: list[FunctionFacts] = []
    frontier = [scope.functions[n] for n in names if n in scope.functions]
    for _ in range(FOLLOW_DEPTH):
        next_frontier = []
        for facts in frontier:
            if facts not in reached:
                reached.append(facts)
                next_frontier += [scope.functions[n] for n in sorted(facts.called) if n in scope.functions]
        frontier = next_frontier
    return reached


def _root(node: ast.AST) -> ast.AST:
    """What a chain of attributes and method calls starts from: ``net.to(device).eval()`` -> ``net``."""
    while True:
        if isinstance(node, ast.Attribute):
            node = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            node = node.func.value
        else:
            return node


def _tuple_targets(names: list[str | None], index: int) -> str:
    """``Conv_model, ...`` or ``..., train_loss, ...``: the target a binding is about, in its place."""
    return ", ".join(filter(None, ["..." if index > 0 else "", names[index],
                                   "..." if index < len(names) - 1 else ""]))


def _derived_source(value: ast.AST, state: dict[str, Binding]) -> Source | None:
    """``history = fit(model, 5)``: a result computed from one model belongs to that model."""
    if not isinstance(value, ast.Call):
        return None
    used = [state[n.id] for arg in [*value.args, *(k.value for k in value.keywords)]
            for n in ast.walk(arg) if isinstance(n, ast.Name) and n.id in state]
    if len({b.kind for b in used}) != 1:
        return None
    best = next((b for b in used if b.is_model), used[0])
    return Source(best.kind, best)


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
        alternatives = "".join("|" + re.escape(k) for k in blocks)
        builds = Marker(rf"\b(?:Conv2d|Linear|LazyConv2d|LazyLinear{alternatives})\b",
                        ("Conv2d", "Linear") + blocks)
        for _, d in view.definitions:
            if d.node is not None and builds.search(d.text):
                counts[d.name] = count_weight_layers(d.node, {k: v for k, v in counts.items() if k != d.name})
    return counts
