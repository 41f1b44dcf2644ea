"""The code keeps its shape: layers import downward only, and it type-checks and lints clean."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "server"

# Each layer and the internal packages it may import (itself included).
ALLOWED = {
    "server.domain": {"server.domain"},
    "server.protocol": {"server.domain"},
    "server.settings": set(),
    "server.metrics": set(),
    "server.store": {"server.domain", "server.store"},
    "server.hub": {"server.domain", "server.protocol", "server.hub"},
    "server.services": {
        "server.domain", "server.protocol", "server.store", "server.hub", "server.services",
        "server.settings", "server.metrics",
    },
    "server.endpoints": {
        "server.domain", "server.protocol", "server.services", "server.endpoints", "server.settings",
    },
}
# The wiring modules may import anything.
WIRING = {"server.app", "server.cli", "server.__main__", "server"}


def _layer(module: str) -> str | None:
    for layer in ALLOWED:
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def _internal_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m == "server" or m.startswith("server.")}


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(SERVER.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        module = ".".join(p for p in parts if p != "__init__")
        out.append((module, path))
    return out


def test_every_module_belongs_to_a_layer_or_is_wiring() -> None:
    loose = [m for m, _ in _modules() if m not in WIRING and _layer(m) is None]
    assert loose == []


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[m for m, _ in _modules()])
def test_layers_import_downward_only(module: str, path: Path) -> None:
    if module in WIRING:
        return
    layer = _layer(module)
    assert layer is not None
    wrong = sorted(
        imported for imported in _internal_imports(path)
        if _layer(imported) not in ALLOWED[layer] and imported not in ALLOWED[layer]
    )
    assert wrong == [], f"{module} ({layer}) imports {wrong}"


def test_the_server_type_checks_strictly() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_code_is_lint_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "server", "bench", "tests"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
