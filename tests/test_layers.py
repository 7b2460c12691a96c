"""The data flow of ../shared/DESIGN.md, read off the imports: chain → indexer → DB → rollups → read
layer → metrics → pages / API / vault, one direction. Each rule is a wall a change could break."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names, at any depth of the file)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def modules(pattern: str) -> list[Path]:
    """Files matching ``pattern``; a package's ``__main__`` (its command line, a front end like the pages) apart."""
    found = sorted(p for p in ROOT.glob(pattern) if p.name != "__main__.py")
    assert found, pattern
    return found


def offending(paths: list[Path], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    out = {}
    for p in paths:
        bad = sorted(n for n in imports_of(p) if any(n == f or n.startswith(f + ".") for f in forbidden))
        if bad:
            out[str(p.relative_to(ROOT))] = bad
    return out


@pytest.mark.parametrize(("pattern", "forbidden", "why"), [
    ("core/**/*.py", ("streamlit", "pages"), "core is testable without Streamlit"),
    ("core/metrics/*.py", ("sqlalchemy", "sqlmodel", "core.db", "core.read", "core.rollup", "core.dashboard"),
     "metrics are pure: frames in, frames out"),
    ("core/vault/*.py", ("sqlalchemy", "sqlmodel", "core.db", "core.read", "core.simulator", "core.indexer"),
     "the vault engine is pure: it takes a History and never opens a database or imports the simulator"),
    ("core/read/*.py", ("core.metrics", "core.dashboard", "core.vault.replay", "core.api"),
     "the read layer only reads: nothing downstream of it"),
    ("core/rollup.py", ("core.read", "core.metrics", "core.dashboard"), "rollups sit below the read layer"),
    ("core/indexer/*.py", ("core.metrics", "core.dashboard", "core.vault", "core.simulator"),
     "the indexer writes; it knows nothing of what reads the rows"),
    ("views/*.py", ("sqlalchemy", "sqlmodel", "core.db", "core.rollup", "web3"), "pages are thin: no SQL, no RPC"),
])
def test_imports_follow_the_data_flow(pattern: str, forbidden: tuple[str, ...], why: str) -> None:
    assert offending(modules(pattern), forbidden) == {}, why


def test_the_schema_lives_in_one_module() -> None:
    """Only core/schema.py declares tables (``table=True``)."""
    declaring = sorted(str(p.relative_to(ROOT)) for p in modules("core/**/*.py") if "table=True" in p.read_text())
    assert declaring == ["core/schema.py"]
