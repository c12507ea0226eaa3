"""Build xnorfault's reference documentation as a static site.

- **API reference** from the docstrings (pdoc; reStructuredText docstrings, their ``:math:``
  roles and ``.. math::`` blocks rendered by MathJax), one page per public module;
- **command-line reference** from the commands themselves (typer's own ``utils docs``);
- **guide**: the README.

Usage: ``python docs/build.py [OUTPUT]`` (default ``site/``; ``make docs``). Any warning while
importing or rendering fails the build, so the docs never silently lose a page. The output
folder is replaced only if it is absent or was written by this script (it holds a marker file).
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

# The public modules: the Python API and the physics, statistics and deployed half it rests on.
MODULES = [
    "xnorfault",
    "xnorfault.api",
    "xnorfault.inputs",
    "xnorfault.faults",
    "xnorfault.mram",
    "xnorfault.mram.device",
    "xnorfault.mram.switching",
    "xnorfault.mram.chips",
    "xnorfault.mram.device_file",
    "xnorfault.mram.measured",
    "xnorfault.mram.fit",
    "xnorfault.mram.disturb",
    "xnorfault.mram.weights",
    "xnorfault.statistics",
    "xnorfault.evaluation.request",
    "xnorfault.evaluation.run",
    "xnorfault.evaluation.runner",
    "xnorfault.evaluation.testset",
    "xnorfault.evaluation.results",
    "xnorfault.evaluation.jobs",
    "xnorfault.evaluation.executors",
    "xnorfault.evaluation.campaign",
    "xnorfault.evaluation.weight_ages",
    "xnorfault.optimization",
    "xnorfault.graph.rewrite",
    "xnorfault.graph.inspection",
    "xnorfault.graph.lowering",
    "xnorfault.graph.generator",
    "xnorfault.graph.bitflip",
    "xnorfault.graph.contract",
    "xnorfault.graph.sites",
    "xnorfault.graph.weights",
    "xnorfault.report",
    "xnorfault.tracking",
    "xnorfault.units",
    "xnorfault.schemas",
    "xnorfault.runtimes",
    "xnorfault.targets",
]
MARKER = ".xnorfault-docs"
ROOT = Path(__file__).resolve().parent.parent

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
line-height:1.5}}pre{{background:#f6f8fa;padding:.8rem;overflow-x:auto}}code{{background:#f6f8fa}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2rem .5rem}}</style>
</head><body><p><a href="index.html">xnorfault documentation</a></p>
{body}
</body></html>
"""


def _join_role_lines(contents: str) -> str:
    """pdoc reads a line that begins with ``:math:`` as an RST field (``:name: value``); such a
    line continues the sentence before it, so it is joined to it (a paragraph's first line,
    after a blank line, is left alone)."""
    return re.sub(r"(\S[^\n]*)\n[ \t]*(?=:math:`)", r"\1 ", contents)


def _markdown_page(title: str, markdown_text: str) -> str:
    import markdown2  # pdoc's own Markdown renderer

    body = markdown2.markdown(
        markdown_text, extras=["fenced-code-blocks", "tables", "header-ids", "code-friendly"]
    )
    return PAGE.format(title=html.escape(title), body=body)


def cli_reference() -> str:
    """The command-line reference in Markdown, as typer generates it from the commands."""
    result = subprocess.run(
        [sys.executable, "-m", "typer", "xnorfault.cli", "utils", "docs", "--name", "xnorfault"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or result.stderr.strip():
        raise RuntimeError(f"typer could not document the commands: {result.stderr.strip()}")
    return result.stdout


def _prepare(output: Path) -> None:
    if output.exists():
        if not (output / MARKER).exists():
            raise SystemExit(
                f"{output} exists and was not written by docs/build.py: give another folder"
            )
        shutil.rmtree(output)
    output.mkdir(parents=True)
    (output / MARKER).write_text("written by docs/build.py\n")


def build(output: Path) -> list[Path]:
    """Write the site into ``output``; returns the pages written."""
    import pdoc
    import pdoc.docstrings
    import pdoc.render

    from xnorfault import __version__

    _prepare(output)
    convert_rst = pdoc.docstrings.rst
    pdoc.docstrings.rst = lambda contents, source: convert_rst(_join_role_lines(contents), source)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pdoc.render.configure(
            docformat="restructuredtext",
            math=True,
            search=True,
            show_source=True,
            footer_text=f"xnorfault {__version__}",
        )
        try:
            pdoc.pdoc(*MODULES, output_directory=output)
        finally:
            pdoc.docstrings.rst = convert_rst
    (output / "cli.html").write_text(_markdown_page("xnorfault commands", cli_reference()))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (output / "guide.html").write_text(_markdown_page("xnorfault guide", readme))
    modules = "\n".join(
        f'<li><a href="{name.replace(".", "/")}.html"><code>{name}</code></a></li>'
        for name in MODULES
    )
    index = PAGE.format(
        title="xnorfault documentation",
        body=f"""<h1>xnorfault {html.escape(__version__)}</h1>
<p>Error-resilient binarized neural networks on low-voltage MRAM.</p>
<ul><li><a href="guide.html">Guide</a> (the README: set-up, every command, the physics, results)</li>
<li><a href="cli.html">Command-line reference</a></li></ul>
<h2>Python API reference</h2><ul>{modules}</ul>""",
    )
    (output / "index.html").write_text(index)
    return sorted(output.rglob("*.html"))


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "site"
    pages = build(target)
    print(f"wrote {len(pages)} pages to {target}")
