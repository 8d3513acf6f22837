"""Read the Python in notebook code cells without running it: ``ast`` where the cell parses, lines where not.

IPython syntax (``!pip install captum``, ``%matplotlib inline``) is blanked out first so that a cell
with a shell command still parses; a cell that still does not parse falls back to plain lines.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import lru_cache

_MAGIC_LINE = re.compile(r"^(\s*)(?:[!%]|\?\w).*$", re.MULTILINE)
_DEF_LINE = re.compile(r"^(?:async\s+)?(def|class)\s+(\w+)")
WEIGHT_LAYERS = ("Conv2d", "Linear", "LazyConv2d", "LazyLinear")


@dataclass
class Definition:
    kind: str            # "def" or "class"
    name: str
    text: str
    node: ast.AST | None = None


@dataclass
class ParsedCell:
    tree: ast.Module | None
    definitions: list[Definition] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)   # top-level statements that are not definitions


def _blank_magics(source: str) -> str:
    if source.lstrip().startswith("%%"):   # a cell magic (%%time, %%capture) wraps plain Python
        source = source.split("\n", 1)[1] if "\n" in source else ""
    return _MAGIC_LINE.sub(lambda m: m.group(1) + "pass", source)


def parse_cell(source: str) -> ParsedCell:
    """Split a code cell into definitions (def/class) and the other top-level statements."""
    code = _blank_magics(source)
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return _parse_lines(code)
    lines = code.splitlines()
    parsed = ParsedCell(tree)
    for node in tree.body:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        text = "\n".join(lines[first - 1:node.end_lineno])
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            kind = "class" if isinstance(node, ast.ClassDef) else "def"
            parsed.definitions.append(Definition(kind, node.name, text, node))
        elif text.strip() != "pass":
            parsed.statements.append(text)
    return parsed


def _parse_lines(code: str) -> ParsedCell:
    """Fallback: a def/class at column 0 runs until the next line at column 0; the rest are statements."""
    parsed, current = ParsedCell(None), None
    for line in code.splitlines():
        match = _DEF_LINE.match(line)
        if match:
            current = Definition(match.group(1), match.group(2), line)
            parsed.definitions.append(current)
        elif current is not None and (not line.strip() or line[:1] in " \t" or line.startswith(")")):
            current.text += "\n" + line
        else:
            current = None
            if line.strip() and line.strip() != "pass":
                parsed.statements.append(line)
    return parsed


def call_name(node: ast.Call) -> str:
    """The last name of what is called: nn.Conv2d(...) -> 'Conv2d', models.resnet50(...) -> 'resnet50'."""
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def base_names(node: ast.ClassDef) -> list[str]:
    names = []
    for base in node.bases:
        if isinstance(base, ast.Attribute):
            names.append(base.attr)
        elif isinstance(base, ast.Name):
            names.append(base.id)
    return names


@dataclass
class LayerCount:
    by_type: dict[str, int] = field(default_factory=dict)
    in_loop: bool = False        # a layer is built inside a loop: the true count may be higher

    @property
    def total(self) -> int:
        return sum(self.by_type.values())

    def add(self, other: LayerCount, times: int = 1) -> None:
        for name, n in other.by_type.items():
            self.by_type[name] = self.by_type.get(name, 0) + n * times
        self.in_loop = self.in_loop or other.in_loop

    def describe(self) -> str:
        parts = " + ".join(f"{n} {name}" for name, n in sorted(self.by_type.items()))
        return f"{parts} = {'at least ' if self.in_loop else ''}{self.total} weight layers"


_LOOPS = (ast.For, ast.While, ast.ListComp, ast.GeneratorExp, ast.SetComp, ast.DictComp)


def count_weight_layers(node: ast.AST, helpers: dict[str, LayerCount]) -> LayerCount:
    """Count Conv2d/Linear constructor calls under ``node``, expanding calls to notebook-defined blocks
    (``ConvBlock(...)`` or ``conv_block(...)`` defined elsewhere in the notebook) by their own counts."""
    count = LayerCount()

    def visit(current: ast.AST, in_loop: bool) -> None:
        if isinstance(current, ast.Call):
            name = call_name(current)
            if name in WEIGHT_LAYERS:
                count.by_type[name] = count.by_type.get(name, 0) + 1
                count.in_loop = count.in_loop or in_loop
            elif name in helpers and helpers[name].total:
                count.add(helpers[name])
                count.in_loop = count.in_loop or in_loop
        for child in ast.iter_child_nodes(current):
            visit(child, in_loop or isinstance(current, _LOOPS))

    visit(node, False)
    return count


def regex_weight_layers(text: str) -> LayerCount:
    count = LayerCount()
    for name in re.findall(r"\b(?:nn\.)?(Conv2d|Linear|LazyConv2d|LazyLinear)\s*\(", text):
        count.by_type[name] = count.by_type.get(name, 0) + 1
    count.in_loop = bool(re.search(r"^\s*for\s|\bfor\b.+\bin\b.+\]", text, re.MULTILINE))
    return count


# Calls that show a value rather than use it: a sampler that is only printed is not used on the data.
_SHOWS = frozenset({"print", "display", "len", "type", "str", "repr", "format", "isinstance", "id"})


@dataclass(frozen=True)
class Uses:
    """What a piece of code does with names, read from its syntax tree: what it calls, what it passes."""
    called: frozenset[str]                  # the last name of everything called (methods included)
    passed: frozenset[str]                  # names handed to a call, as an argument or a keyword's value
    keywords: frozenset[tuple[str, str]]    # (call name, keyword) of every keyword given a value other than None
    assigned: frozenset[str]                # names assigned at the top level


@lru_cache(maxsize=4096)
def uses(code: str) -> Uses | None:
    """What ``code`` calls and passes on; None where it does not parse. Imports, comments and strings call
    nothing: ``from torch.utils.data import WeightedRandomSampler`` uses no sampler."""
    try:
        tree = ast.parse(_blank_magics(code))
    except (SyntaxError, ValueError):
        return None
    called, passed, keywords = set(), set(), set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = call_name(node)
        called.add(name)
        if name in _SHOWS:
            continue
        for argument in [*node.args, *(k.value for k in node.keywords)]:
            passed.update(n.id for n in ast.walk(argument) if isinstance(n, ast.Name))
        keywords.update((name, k.arg) for k in node.keywords
                        if k.arg and not (isinstance(k.value, ast.Constant) and k.value.value is None))
    assigned = {t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign))
                for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
                for t in ast.walk(target) if isinstance(t, ast.Name)}
    return Uses(frozenset(called), frozenset(passed), frozenset(keywords), frozenset(assigned))
