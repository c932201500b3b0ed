"""The package tree's import order (docs/architecture.md, "The package tree"), checked on the code.

A stage may import the foundation modules and the stages before it; an import of a later stage
is a layering error unless it is one of the documented exceptions. Imports are read with ast, so
imports inside functions (lazy ones) count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "agent" / "edgeprof"
FOUNDATION = {"errors", "exit_codes", "atomic", "lifecycle", "validation", "_native", "_marks"}
ORDER = [
    "native",
    "device",
    "bridge",
    "runners",
    "measure",
    "report",
    "uplink",
    "collector",
    "gate",
]
ANYTHING = {"cli", "testing", "__main__", "models"}
# (importing module, imported stage): the documented exceptions.
ALLOWED = {
    ("native.py", "device"),  # ChannelSpec: the contract between discovery and the C core
    ("measure/profile.py", "report"),  # the run job builds, signs and stores its report
}


def _imported_stages(path: Path) -> set[str]:
    stages = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "edgeprof":
                names = [f"edgeprof.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "edgeprof" and len(parts) > 1:
                stages.add(parts[1])
    return stages


def _stage_of(rel: Path) -> str:
    return rel.parts[0].removesuffix(".py")


def test_the_order_lists_every_package_and_module() -> None:
    top = {p.name.removesuffix(".py") for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()}
    top -= {"__pycache__", "__init__"}
    assert top <= set(ORDER) | FOUNDATION | ANYTHING, top - set(ORDER) - FOUNDATION - ANYTHING


def test_no_stage_imports_a_later_one() -> None:
    wrong = []
    checked = 0
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        src = _stage_of(rel)
        if src in ANYTHING or src in FOUNDATION:
            continue
        checked += 1
        for dst in _imported_stages(path):
            if dst == src or dst in FOUNDATION or dst in ANYTHING - {"cli", "testing"}:
                continue
            later = dst in ("cli", "testing") or (
                src in ORDER and dst in ORDER and ORDER.index(dst) > ORDER.index(src)
            )
            if later and (rel.as_posix(), dst) not in ALLOWED:
                wrong.append(f"{rel.as_posix()} imports edgeprof.{dst}")
    assert checked > 50  # the walk really saw the package
    assert wrong == []


def test_the_checker_sees_a_wrong_import(tmp_path: Path) -> None:
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from edgeprof.gate.policy import load_policy\n")
    assert _imported_stages(bad) == {"gate"}
