"""The repository's layout rules, read from the source: no ``sys.path`` edits anywhere, and neither the
product nor the tests import the exploration scripts in ``research/`` or the tools in ``scripts/``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("forensic_face", "tests", "scripts", "research")


def _python_files(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py"))


def _sys_path_uses(tree: ast.AST) -> list[int]:
    """Lines that use ``sys.path`` (to change it, or to read it)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name) \
                and node.value.id == "sys":
            lines.append(node.lineno)
    return lines


def test_no_sys_path_edits() -> None:
    """Scripts run as ``python -m`` from the repository root or with the package installed."""
    found = {str(p.relative_to(ROOT)): lines for p in _python_files(*SOURCES)
             if (lines := _sys_path_uses(ast.parse(p.read_text(), str(p))))}
    assert not found, f"sys.path used at {found}"


def _imported(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_product_and_tests_never_import_research_or_scripts() -> None:
    outside = {"research", "scripts"} | {p.stem for p in _python_files("research", "scripts")}
    found = {str(p.relative_to(ROOT)): sorted(names) for p in _python_files("forensic_face", "tests")
             if (names := _imported(ast.parse(p.read_text(), str(p))) & outside)}
    assert not found, f"imports of research/ or scripts/: {found}"


def test_import_contracts_are_rooted_at_the_package() -> None:
    """The Qt rule covers the whole package (the GUI exempted) and the layers contract lists every child of
    it (exhaustive), so a new module or package is checked by `lint-imports` without a line being added."""
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    qt = next(c for c in contracts if c["type"] == "forbidden" and "PySide6" in c["forbidden_modules"])
    assert qt["source_modules"] == ["forensic_face"]
    assert all(i.startswith("forensic_face.gui.") for i in qt.get("ignore_imports", []))
    layers = next(c for c in contracts if c["type"] == "layers")
    assert layers["containers"] == ["forensic_face"] and layers["exhaustive"] is True
