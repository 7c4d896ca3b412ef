"""The generated blocks of the hand-written docs pages (docs/blocks.py) match the code: the package tree of
docs/architecture.md lists every module with its docstring's first line, and the run-directory tables of
docs/getting-started.md and docs/rlhf.md are purejaxrl_ppo.runs.contents'."""

import ast
from pathlib import Path

import pytest

from helpers import load_script

REPO = Path(__file__).resolve().parent.parent
FIX = "run `python docs/blocks.py` (a docs build does it too) and commit the page"


blocks = load_script("docs/blocks.py", "docs_blocks")


@pytest.mark.parametrize("page,name", [(page, name) for page, names in blocks.BLOCKS.items() for name in names])
def test_committed_blocks_are_what_the_code_gives(page, name):
    text = (REPO / "docs" / page).read_text()
    assert blocks.committed_block(text, name) == blocks.block_text(page, name), f"docs/{page} ({name}) is stale: {FIX}"


def test_the_tree_names_every_public_module_with_its_summary():
    tree = blocks.package_tree()
    package = REPO / "purejaxrl_ppo"
    for path in package.rglob("*.py"):
        if "__pycache__" in path.parts or (path.stem.startswith("_") and path.stem not in ("__init__", "__main__")):
            continue
        rel = path.relative_to(package)
        entry = rel.parent.name + "/" if path.name == "__init__.py" else path.name
        if rel == Path("__init__.py"):
            entry = "purejaxrl_ppo/"
        assert any(line.split()[0] == entry for line in tree.splitlines()[1:-1] if line.strip() and
                   not line.startswith(" " * blocks.DESCRIPTION_COLUMN)), entry
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        first_words = " ".join(blocks.plain(doc.split("\n")[0]).split()[:3])
        assert first_words in " ".join(tree.split()), (rel, first_words)
    assert "_moved.py" not in tree  # private modules stay out


def test_a_page_without_its_markers_is_a_clear_error():
    with pytest.raises(LookupError, match="docs/rlhf.md: no <!-- generated:rlhf-run-dir start -->"):
        blocks.render("rlhf.md", "a page that lost its block\n")


def test_render_replaces_only_the_block():
    page = "rlhf.md"
    start, end = blocks.markers("rlhf-run-dir")
    text = f"before\n{start}\nold table\n{end}\nafter\n"
    out = blocks.render(page, text)
    assert out.startswith("before\n") and out.endswith("\nafter\n") and "old table" not in out
    assert "| `summary.json` |" in out and blocks.render(page, out) == out
