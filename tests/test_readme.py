"""The README's tables are generated from the result files in assets/ (tools/readme_tables.py)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tables():
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "tools" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_tables_match_their_files():
    tables = _tables()
    text = (ROOT / "README.md").read_text()
    held = tables.blocks(text)
    assert held, "the README has no generated tables"
    for name, body in held.items():
        assert body == tables.TABLES[name]().strip(), f"README table {name!r} differs from its files in assets/"
