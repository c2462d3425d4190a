"""Import arrows point down only: handlers -> bot -> storage, and flows stands alone.

Read from the sources with `ast`, every import counts, including those inside functions, so
a lazy import cannot hide an arrow pointing up.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("handlers", "bot", "storage", "flows")

# How statements run, and when one commits alone, is storage's own business.
STORAGE_OWN = ("storage.prepared", "storage.unit", "storage.group_commit")
# What each package (or room of bot/) must never import.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "flows": ("bot", "handlers", "storage", "telegram", "sqlalchemy", "alembic"),
    "storage": ("bot", "handlers", "telegram"),
    "bot.services": ("handlers", "bot.wiring.app", "bot.wiring.cli", "bot.devtools"),
    "bot.transport": ("handlers", "bot.devtools"),
    "handlers": ("bot.devtools", "bot.wiring.app", "bot.wiring.cli", *STORAGE_OWN),
    "bot": STORAGE_OWN,
}
# SQL lives in storage/: elsewhere only the connection type may be named.
SQL_ALLOWED_OUTSIDE_STORAGE = ("sqlalchemy.ext.asyncio",)


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, absolute, wherever in the file the import is."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _sources() -> list[Path]:
    return sorted(path for name in PACKAGES for path in (ROOT / name).rglob("*.py"))


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _upward_imports() -> list[str]:
    wrong = []
    for path in _sources():
        module = _module(path)
        for imported in sorted(_imports(path)):
            for owner, forbidden in FORBIDDEN.items():
                if _within(module, owner) and any(_within(imported, f) for f in forbidden):
                    wrong.append(f"{module} imports {imported}")
            outside_storage = not _within(module, "storage")
            if (
                outside_storage
                and _within(imported, "sqlalchemy")
                and not any(_within(imported, ok) for ok in SQL_ALLOWED_OUTSIDE_STORAGE)
            ):
                wrong.append(f"{module} imports {imported}: SQL belongs in storage/")
    return wrong


def test_the_sources_are_found() -> None:
    modules = {_module(path) for path in _sources()}
    assert {"storage.db", "flows.engine", "bot.wiring.app", "handlers.customer"} <= modules
    assert "storage.migrations.env" in modules


def test_imports_point_down_only() -> None:
    assert _upward_imports() == []


@pytest.mark.parametrize(
    ("module", "source", "complaint"),
    [
        ("storage.x", "def f():\n    from bot.wiring.config import load_settings\n", "bot"),
        ("flows.x", "import sqlalchemy as sa\n", "sqlalchemy"),
        ("bot.services.x", "import sqlalchemy as sa\n", "SQL belongs in storage/"),
        ("bot.services.x", "from ...handlers import render\n", "handlers"),
        ("bot.services.x", "from storage.prepared import Prepared\n", "storage.prepared"),
    ],
)
def test_an_upward_import_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, source: str, complaint: str
) -> None:
    """The check itself can fail: a planted file with an arrow pointing up is reported."""
    planted = tmp_path.joinpath(*module.split(".")).with_suffix(".py")
    planted.parent.mkdir(parents=True)
    planted.write_text(source, encoding="utf-8")
    monkeypatch.setattr(__import__(__name__, fromlist=["_"]), "ROOT", tmp_path)
    for name in PACKAGES:
        (tmp_path / name).mkdir(exist_ok=True)
    wrong = _upward_imports()
    assert wrong and all(complaint in line for line in wrong), wrong
