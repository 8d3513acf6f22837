"""grading/ is laid out by its two jobs: grading.handin reads one hand-in, grading.classroom marks a class and
stands on handin. No module imports another that (through any chain) imports it back."""
import ast
from pathlib import Path

import grading

ROOT = Path(grading.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Each grading module's imports of other grading modules (relative or absolute, at any depth in the file)."""
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                edges[name] |= {t for t in (target, f"{target}.{alias.name}") if t in modules and t != name}
    return edges


def test_handin_never_imports_classroom():
    wrong = sorted((a, b) for a, targets in _imports().items() for b in targets
                   if a.startswith("grading.handin") and b.startswith("grading.classroom"))
    assert not wrong, wrong


def test_no_import_cycle_in_grading():
    edges = _imports()
    # a package's __init__ importing its own modules is how Python packages work, not a cycle between jobs
    edges = {a: {b for b in targets if a != b.rsplit(".", 1)[0]} for a, targets in edges.items()}
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges[node]):
            assert state.get(nxt) != "open", f"import cycle: {' -> '.join(path + [nxt])}"
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])


def test_both_jobs_are_packages():
    assert (ROOT / "handin" / "__init__.py").exists() and (ROOT / "classroom" / "__init__.py").exists()
    assert not [p.name for p in ROOT.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
