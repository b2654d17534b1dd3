"""The layers of docs/architecture.md, checked by reading every module's imports (no module is imported here).

Each module of ``cnfm_core`` belongs to one layer; a new module must be given one below, so the map stays whole.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = {"config", "geo", "grid", "data", "textfile", "csvtable", "decimals", "angles", "runs", "jobs", "owners",
        "procs", "runlock", "standby", "devices", "pathframes", "pathpreview", "pathmaps", "rayjobs"}
NUMERICS = {"splits", "manifolds", "manifolds.base", "manifolds.sphere", "manifolds.torus", "sphere", "schedules",
            "paths", "vmf", "torus_path", "von_mises", "targets", "field", "kernelbase", "objectives", "integrate",
            "kde", "torus_kde", "auto", "torus_auto", "synthetic", "torus_synthetic", "clustered"}
TRAINING = {"builders", "train", "prepare", "guard", "live", "report", "stages", "frames"}
EDGES = {"__init__", "__main__", "worker", "cli"}
LAYER = {**{m: 1 for m in PAGE}, **{m: 2 for m in NUMERICS}, **{m: 3 for m in TRAINING}, **{m: 4 for m in EDGES}}
TORCH = {"torch", "torchdiffeq", "geoopt"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT / "cnfm_core").with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" and len(rel.parts) > 1 else rel.parts
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for every import in the file; relative imports resolved to
    ``cnfm_core.X``."""
    tree = ast.parse(path.read_text())
    package = ["cnfm_core", *path.relative_to(ROOT / "cnfm_core").parts[:-1]]
    top = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                name = f"{base}.{node.module}" if node.module else base
                if not node.module:  # from . import a, b
                    out += [(f"{base}.{alias.name}", id(node) in top) for alias in node.names]
                    continue
            else:
                name = node.module or ""
            if name in ("cnfm_core", "cnfm_core.manifolds"):  # from cnfm_core import a, b
                out += [(f"{name}.{alias.name}", id(node) in top) for alias in node.names]
                continue
            out.append((name, id(node) in top))
    return out


def _internal(name: str) -> str | None:
    """The ``cnfm_core`` module an import names (its layer-map key), or None for other packages."""
    if not name.startswith("cnfm_core"):
        return None
    rest = name.removeprefix("cnfm_core").lstrip(".")
    if not rest:
        return "__init__"
    if rest.startswith("manifolds"):
        return rest if rest in LAYER else "manifolds"
    return rest.split(".")[0]


LIBRARY = sorted(p for p in (ROOT / "cnfm_core").rglob("*.py") if "__pycache__" not in p.parts)
DASHBOARD = sorted(p for p in (ROOT / "dashboard").rglob("*.py") if "__pycache__" not in p.parts)


def test_every_library_module_has_a_layer():
    names = {_module_name(p) for p in LIBRARY}
    assert names - set(LAYER) == set(), "give each new module a layer in tests/test_architecture.py"
    assert set(LAYER) - names == set(), "the layer map names modules that no longer exist"


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: _module_name(p))
def test_library_imports_follow_the_layers(path):
    me = _module_name(path)
    layer = LAYER[me]
    for name, top in _imports(path):
        assert name.split(".")[0] != "streamlit", f"{me} imports streamlit"
        assert not (top and name.split(".")[0] == "ray"), f"{me} imports ray at module level (only when it is used)"
        if layer == 1 and top:
            assert name.split(".")[0] not in TORCH, f"{me} (page layer) imports {name} at module level"
        other = _internal(name)
        if other is None or other == me:
            continue
        assert other in LAYER, f"{me} imports {name}, which has no layer"
        if layer in (1, 2):
            assert LAYER[other] <= layer, f"{me} (layer {layer}) imports {other} (layer {LAYER[other]})"
        if layer == 2:
            assert other not in {"runs", "jobs", "procs"}, f"{me} (numerics) imports the run store ({other})"


@pytest.mark.parametrize("path", DASHBOARD, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_dashboard_imports_only_the_page_layer(path):
    for name, _ in _imports_dashboard(path):
        assert name.split(".")[0] not in TORCH, f"{path.name} imports {name}"
        other = _internal(name)
        if other is not None:
            assert LAYER.get(other) == 1, f"{path.relative_to(ROOT)} imports {name} (not in the page layer)"


def _imports_dashboard(path: Path) -> list[tuple[str, bool]]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, True) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            if node.module == "cnfm_core":
                out += [(f"cnfm_core.{alias.name}", True) for alias in node.names]
            else:
                out.append((node.module or "", True))
    return out


def test_only_procs_starts_processes():
    starters = [p for p in [*LIBRARY, *DASHBOARD] if "Popen(" in p.read_text() or "subprocess.run(" in p.read_text()]
    assert [str(p.relative_to(ROOT)) for p in starters] == ["cnfm_core/procs.py"]


def test_the_layer_check_catches_a_violation(tmp_path, monkeypatch):
    """The check itself: a page-layer module importing the field at module level is caught."""
    bad = ROOT / "cnfm_core" / "data.py"
    fake = tmp_path / "cnfm_core" / "data.py"
    fake.parent.mkdir()
    fake.write_text(bad.read_text() + "\nfrom .field import VectorField\nimport torch\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    with pytest.raises(AssertionError, match="page layer|layer 1"):
        test_library_imports_follow_the_layers(fake)
