"""The package's shape: folders in layers that never import upwards, and no import cycle anywhere."""
import ast
from pathlib import Path

from improve.config.paths import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "improve"


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set:
    """improve.* modules this file imports, anywhere in it (function-level imports included)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # `from . import plots` names a module
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in MODULES else target)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m in MODULES and m != name}


MODULES = {module_name(p) for p in PACKAGE.rglob("*.py")}


def cycles(graph: dict) -> list:
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


# what each folder may import (besides itself and the standard library): lower layers never see the loop
MAY_IMPORT = {
    "improve.files": set(),
    "improve.config": {"improve.files"},
    "improve.data": {"improve.files", "improve.config"},
    "improve.pipeline": {"improve.files", "improve.config", "improve.data"},
    "improve.journal": {"improve.files"},
    "improve.llm": {"improve.files", "improve.config", "improve.journal"},
    "improve.agents": {"improve.files", "improve.config", "improve.pipeline", "improve.llm", "improve.journal"},
}
TOP = ("improve.refine", "improve.final", "improve.results", "improve.bench")


def folder(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def test_lower_layers_never_import_the_loop_and_agents_see_only_config_and_pipeline():
    wrong = {}
    for path in PACKAGE.rglob("*.py"):
        me = folder(module_name(path))
        if me not in MAY_IMPORT:
            continue
        bad = {m for m in imports(path) if folder(m) != me and folder(m) not in MAY_IMPORT[me]}
        if bad:
            wrong[module_name(path)] = sorted(bad)
    assert wrong == {}


def test_the_layering_rule_catches_an_upward_import(tmp_path):
    bad = {m for m in {"improve.refine.loop", "improve.config.paths"} if folder(m) not in MAY_IMPORT["improve.data"]}
    assert bad == {"improve.refine.loop"}


def test_nothing_below_the_benchmarks_imports_them_and_nothing_imports_the_front_door():
    wrong = {module_name(p): sorted(m for m in imports(p) if folder(m) == "improve.bench" or m == "improve.api")
             for p in PACKAGE.rglob("*.py") if folder(module_name(p)) != "improve.bench" and p.name != "__init__.py"
             and module_name(p) != "improve.api"}
    assert {k: v for k, v in wrong.items() if v} == {}


def test_every_module_lives_in_a_folder_except_the_commands_and_the_front_door():
    flat = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert flat == ["__init__.py", "__main__.py", "api.py", "export.py", "files.py", "predict.py", "report.py",
                    "train.py"]
    for command in ("export.py", "predict.py", "report.py", "train.py"):  # thin entry points, the code lives below
        assert len((PACKAGE / command).read_text().splitlines()) <= 6


def test_no_import_cycle_inside_the_package():
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        # a package's __init__ re-exporting its submodules is not a cycle with them
        graph[module_name(path)] = {m for m in imports(path) if not (path.name == "__init__.py" and
                                                                     m.startswith(module_name(path) + "."))}
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
