"""The tables of the README and of docs/results.md are generated from the result files in assets/
(tools/readme_tables.py); the README stays a front page."""

from pathlib import Path

from conftest import load_tool

ROOT = Path(__file__).resolve().parents[1]


def test_tables_match_their_files():
    tables = load_tool("readme_tables")
    shown: list[str] = []
    for page in tables.PAGES:
        held = tables.blocks(page.read_text())
        assert held, f"{page} has no generated tables"
        for name, body in held.items():
            assert body == tables.TABLES[name]().strip(), f"{page.name}: table {name!r} differs from its files"
        shown += held
    assert set(shown) == set(tables.TABLES), "every table is shown"


def test_the_readme_is_a_front_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    for linked in ("docs/results.md", "docs/design.md", "CHANGELOG.md"):
        assert linked in text and (ROOT / linked).exists()
