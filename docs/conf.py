"""Sphinx configuration of the sb3-distill documentation (built offline, warnings as errors: scripts/build_docs.sh)."""

import os
import sys

DOCS_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(DOCS_DIR))

with open(os.path.join(DOCS_DIR, "..", "sb3_distill", "version.txt")) as file_handler:
    __version__ = file_handler.read().strip()

project = "sb3-distill"
author = "sb3-distill contributors"
copyright = "sb3-distill contributors, MIT License"
version = release = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# Markdown pages: links to headings ("teachers.md#safe-loading") resolve to GitHub-style anchors
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "sphinx_rtd_theme"
html_title = f"sb3-distill {__version__}"


CLI_PAGE = "cli_reference"
CLI_MARKER = "<!-- the help of every command is inserted here when the docs are built -->"


def cli_help_markdown() -> str:
    """The help of ``sb3-distill`` and of each subcommand, from the parser itself, as Markdown code blocks."""
    import argparse

    from sb3_distill.cli import build_parser

    # argparse wraps to $COLUMNS: fix it so that the page is the same on every machine
    os.environ["COLUMNS"] = "110"
    parser = build_parser()
    sections = ["## sb3-distill", "", "```text", parser.format_help().rstrip(), "```", ""]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                sections += [f"## sb3-distill {name}", "", "```text", subparser.format_help().rstrip(), "```", ""]
    return "\n".join(sections)


def insert_cli_help(app, docname: str, source: list[str]) -> None:
    """Fill the command-line reference page at build time, so it always matches ``sb3_distill.cli.build_parser()``."""
    if docname == CLI_PAGE:
        if CLI_MARKER not in source[0]:
            raise ValueError(f"docs/{CLI_PAGE}.md lost its marker line {CLI_MARKER!r}: put it back where the help goes")
        source[0] = source[0].replace(CLI_MARKER, cli_help_markdown())


def generate_results_pages(app, config) -> None:
    """Write docs/results/ (one page per benchmark, from benchmarks/results/) before Sphinx looks for its sources."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("generate_results", os.path.join(DOCS_DIR, "generate_results.py"))
    generator = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = generator  # its dataclasses look their module up there
    spec.loader.exec_module(generator)
    generator.main(os.path.join(DOCS_DIR, "results"))


def setup(app):
    app.connect("config-inited", generate_results_pages)
    app.connect("source-read", insert_cli_help)
