"""The README's tables are generated from the result files in assets/ (tools/readme_tables.py)."""

from pathlib import Path

from conftest import load_tool

ROOT = Path(__file__).resolve().parents[1]


def test_readme_tables_match_their_files():
    tables = load_tool("readme_tables")
    text = (ROOT / "README.md").read_text()
    held = tables.blocks(text)
    assert held, "the README has no generated tables"
    for name, body in held.items():
        assert body == tables.TABLES[name]().strip(), f"README table {name!r} differs from its files in assets/"
