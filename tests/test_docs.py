"""``make docs``: the static reference site builds without warnings, with every public module,
the formulas converted for MathJax, every command in the CLI reference and the README."""

import importlib.util
import re
from pathlib import Path

import pytest
import typer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def builder():
    spec = importlib.util.spec_from_file_location("docs_build", ROOT / "docs" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_site_builds_with_every_module_command_and_formula(builder, tmp_path):
    site = tmp_path / "site"
    pages = builder.build(site)
    for name in builder.MODULES:
        assert (site / (name.replace(".", "/") + ".html")) in pages, name
    from xnorfault.cli import app

    cli = (site / "cli.html").read_text()
    for command in typer.main.get_command(app).commands:
        assert f"xnorfault {command}" in cli, command
    assert "xnorfault mram wer" in cli and "--max-drop" in cli
    assert (
        "<h2" in (site / "guide.html").read_text()
        and "Python API" in (site / "guide.html").read_text()
    )
    statistics = (site / "xnorfault" / "statistics.html").read_text()
    assert "mathjax" in statistics.lower()
    # no role left unconverted in a rendered docstring (the source listings keep theirs)
    for page in pages:
        rendered = re.sub(
            r'<div class="pdoc-code codehilite">.*?</div>', "", page.read_text(), flags=re.S
        )
        assert ":math:`" not in rendered and "math:`\\" not in rendered, page
    index = (site / "index.html").read_text()
    assert 'href="xnorfault/api.html"' in index and 'href="cli.html"' in index


def test_the_build_never_replaces_a_folder_it_did_not_write(builder, tmp_path):
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit, match="was not written by docs/build.py"):
        builder.build(mine)
    assert (mine / "keep.txt").read_text() == "mine"
