"""The package's layers (book/api.md): every import of every module of `dm`,
at module level or inside a function, read from the source, points to its
own layer or a lower one, and the imports have no circle."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dm"

# Lowest first. A module may import from its own layer and the layers before it.
LAYERS = {
    "core": 0, "data": 1, "models": 1, "training": 2, "experiments": 3, "report": 4, "cli": 5,
}
CORE = {"dm", "dm._checks", "dm.weights", "dm.losses", "dm.packed", "dm.noise", "dm.stats", "dm.hardware"}


def layer(module: str) -> str:
    """The layer a module of dm belongs to."""
    if module in CORE:
        return "core"
    if module in ("dm.cli", "dm.__main__"):
        return "cli"
    folder = module.split(".")[1]
    if folder not in LAYERS:
        raise ValueError(f"{module} is in no layer: add it to the table in tests/test_layers.py and book/api.md")
    return folder


def modules() -> dict:
    """Module name -> its source file, for every module of dm."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: dict) -> set:
    """The modules of dm that ``name`` imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "dm"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "dm":
                continue
            for alias in node.names:
                child = f"{source}.{alias.name}"
                found.add(child if child in known else source)
    return {module for module in found if module != name}


def graph() -> dict:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def upward(edges: dict) -> list:
    """The imports that point to a higher layer, or across the folders of one
    layer (data and models do not import each other)."""
    bad = []
    for module, targets in edges.items():
        for target in targets:
            a, b = layer(module), layer(target)
            if LAYERS[b] > LAYERS[a] or (LAYERS[b] == LAYERS[a] and a != b):
                bad.append(f"{module} -> {target} ({a} imports {b})")
    return sorted(bad)


def circles(edges: dict) -> list:
    """One module path per circle found by a depth-first walk (empty: none)."""
    found, state = [], {}

    def visit(module, path):
        state[module] = "open"
        for target in sorted(edges.get(module, ())):
            if state.get(target) == "open":
                found.append(path[path.index(target):] + [target] if target in path else [module, target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    return found


def test_every_module_is_in_a_layer():
    for module in modules():
        layer(module)


def test_no_import_points_to_a_higher_layer():
    assert upward(graph()) == []


def test_the_imports_have_no_circle():
    assert circles(graph()) == []


def test_the_checks_can_fail():
    edges = {"dm.data.cifar": {"dm.training.runs"}, "dm.training.runs": {"dm.data.cifar"},
             "dm.models.resnet": {"dm.data.cifar"}, "dm.losses": {"dm.weights"}}
    assert upward(edges) == ["dm.data.cifar -> dm.training.runs (data imports training)",
                             "dm.models.resnet -> dm.data.cifar (models imports data)"]
    assert circles(edges) == [["dm.data.cifar", "dm.training.runs", "dm.data.cifar"]]
    with pytest.raises(ValueError, match="dm.plots.figure is in no layer"):
        layer("dm.plots.figure")


def test_the_graph_sees_imports_inside_functions():
    edges = graph()
    assert "dm.data.cifar" in edges["dm.experiments.cifar"]
    assert "dm.report.paper" in edges["dm.cli"]
    assert "dm.experiments.tables" in edges["dm.report.paper"]
