"""The package's imports run one way: each stage imports only from the stages below it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tvm_mobilenet"
#: Bottom to top: the pipeline's stages (docs/architecture.md). Modules of one layer may
#: import each other; none imports a layer above its own.
LAYERS = ["errors", "files", "resources", "reference", "models", "frontend", "transform", "target",
          "gpu", "runtime", "tuning", "compile", "evaluate", "deploy", "pipeline", "cli"]
#: `python -m` doors: the verbs' entry points, above everything.
DOORS = {"__main__", "tune", "build", "verify", "bench", "profile", "classify", "bundle",
         "device", "targets"}


def layer_of(module: str) -> int | None:
    """Layer index of a dotted module inside the package; None for doors and outsiders."""
    parts = module.split(".")
    if parts[0] != "tvm_mobilenet" or len(parts) < 2:
        return None
    if parts[-1] == "__main__" or (len(parts) == 2 and parts[1] in DOORS):
        return None
    return LAYERS.index(parts[1])


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, lazy ones inside functions included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names
                      if (PACKAGE / node.module.replace("tvm_mobilenet.", "").replace(".", "/")
                          / f"{alias.name}.py").exists()]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_subpackage_has_a_layer():
    tops = {path.name.removesuffix(".py") for path in PACKAGE.iterdir()
            if path.suffix == ".py" or (path / "__init__.py").exists()}
    assert tops - DOORS - {"__init__"} == set(LAYERS)


def test_no_import_runs_up_the_layers():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = layer_of(module_name(path))
        if here is None:
            continue
        for line, module in imports_of(path):
            there = layer_of(module)
            if there is not None and there > here:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module} "
                              f"({LAYERS[there]} is above {LAYERS[here]})")
    assert not upward, "\n".join(upward)


def test_the_check_sees_an_upward_import(tmp_path):
    """A negative control: the rule flags an import from a higher stage."""
    assert layer_of("tvm_mobilenet.models.weights") < layer_of("tvm_mobilenet.runtime.runner")
    stray = tmp_path / "stray.py"
    stray.write_text("def f():\n    from tvm_mobilenet.runtime.runner import load\n")
    assert imports_of(stray) == [(2, "tvm_mobilenet.runtime.runner")]
