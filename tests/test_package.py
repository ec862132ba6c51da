"""The package surface: one declared import order (checked on the source, function-level imports
included), ``import celltrain`` without Lightning or torchmetrics, one version, ``ddp_local``
registered from every entry point."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_lightning_cli import celltrain_command

import celltrain

PACKAGE = Path(celltrain.__file__).parent
ROOT = PACKAGE.parent
#: the declared order, bottom first: a module may import its own layer and the layers below
LAYERS = ("utils", "neural", "observe", "learn", "callbacks", "lightning")
#: frameworks that only the Lightning side (callbacks, lightning) may import
FRAMEWORKS = ("lightning", "pytorch_lightning", "lightning_utilities", "torchmetrics")


def layer_of(path: Path) -> int:
    """Rank of a source file's layer; the top-level ``__init__`` sits just above ``learn``."""
    parts = path.relative_to(PACKAGE).parts
    if len(parts) == 1:
        return LAYERS.index("learn")
    return LAYERS.index(parts[0])


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, module)`` of every import anywhere in the tree (functions and classes too)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import at line {node.lineno}"
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module":
            found.append((node.lineno, "<importlib.import_module>"))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            found.append((node.lineno, "<__import__>"))
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_layer_is_known():
    assert {p.relative_to(PACKAGE).parts[0] for p in SOURCES if p.parent != PACKAGE} == set(LAYERS)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_one_way(path):
    rank = layer_of(path)
    wrong = []
    for line, module in imported_modules(ast.parse(path.read_text())):
        if module.startswith("<"):
            wrong.append(f"line {line}: dynamic import {module}")
            continue
        top, _, rest = module.partition(".")
        if top == "celltrain" and rest:
            target = rest.split(".")[0]
            if target not in LAYERS or LAYERS.index(target) > rank:
                wrong.append(f"line {line}: imports {module} (above its layer)")
        elif top in FRAMEWORKS and rank < LAYERS.index("callbacks"):
            wrong.append(f"line {line}: imports {module} below the Lightning side")
    assert not wrong, f"{path.relative_to(ROOT)}: " + "; ".join(wrong)


def test_the_checker_sees_imports_inside_functions():
    source = "def f():\n    from celltrain.lightning import SpikingModule\n"
    assert (2, "celltrain.lightning") in imported_modules(ast.parse(source))


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def readme_plain_loop_imports() -> str:
    """The import lines of README.md's plain-loop example (the block that builds a layer)."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    (loop,) = [b for b in blocks if "diehl_cook_layer(" in b and "layer.run" in b]
    imports = [line for line in loop.splitlines() if line.startswith(("from ", "import "))]
    assert imports
    return "\n".join(imports)


def test_the_readme_plain_loop_loads_no_lightning():
    code = (
        readme_plain_loop_imports()
        + "\nimport sys, torch\n"
        + "layer = diehl_cook_layer(inputs=8, neurons=4)\n"
        + "stdp = STDP()\nstdp.register_cell('input_exc', layer.cell('input_exc'))\n"
        + "encoder = PoissonEncoder(steps=10, dt=layer.dt)\n"
        + "layer.run(input=encoder(torch.rand(2, 8) * 63.75, torch.arange(2)))\n"
        + "stdp(); stdp.update()\n"
        + "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        + f"{FRAMEWORKS!r}))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("module", ["celltrain", "celltrain.learn", "celltrain.observe"])
def test_importing_the_layers_below_lightning_loads_no_framework(module):
    result = run_python(
        f"import sys, {module}\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r}))"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_one_version_for_the_package_and_its_metadata():
    assert re.fullmatch(r"\d+\.\d+\.\d+", celltrain.__version__)
    assert importlib.metadata.version("celltrain") == celltrain.__version__
    assert 'dynamic = ["version"]' in (ROOT / "pyproject.toml").read_text()


def test_top_level_names_exist_and_are_public():
    for name in celltrain.__all__:
        assert hasattr(celltrain, name), name
    assert {"Layer", "STDP", "Monitor", "diehl_cook_layer"} <= set(celltrain.__all__)


def test_ddp_local_is_registered_by_importing_celltrain_lightning():
    result = run_python(
        "from lightning.pytorch.strategies import StrategyRegistry\n"
        "assert 'ddp_local' not in StrategyRegistry\n"
        "import celltrain.lightning\n"
        "print('ddp_local' in StrategyRegistry)"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "True"


def test_ddp_local_is_known_to_the_celltrain_command(tmp_path):
    result = subprocess.run(
        [*celltrain_command(), "fit", "--print_config", "--trainer.strategy=ddp_local"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"^\s*strategy: ddp_local$", result.stdout, flags=re.M)


PUBLIC_LAYERS = (
    "celltrain.neural",
    "celltrain.neural.functional",
    "celltrain.observe",
    "celltrain.learn",
    "celltrain.callbacks",
    "celltrain.lightning",
)


def public_classes():
    import importlib
    import inspect

    for module_name in PUBLIC_LAYERS:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj):
                yield f"{module_name}.{name}", obj


@pytest.mark.parametrize(("name", "cls"), list(public_classes()), ids=lambda x: str(x))
def test_every_public_class_has_a_runnable_example(name, cls):
    """The examples themselves run as doctests (``--doctest-modules`` on ``celltrain/``)."""
    assert "Example::" in (cls.__doc__ or "") and ">>>" in cls.__doc__, name
