"""
Sphinx configuration for txinferno's documentation.

Build: python -m sphinx -W docs docs/_build
"""

import os
import re
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "txinferno"
author = "the txinferno developers"
copyright = "2026, " + author
extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "examples"]
myst_heading_anchors = 3
html_theme = "alabaster"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True}

_MARKUP = re.compile(r"[LCIB]\{([^{}]*)\}")
_FIELD = re.compile(r"^(\s*)@(param|type|return|rtype|raise|ivar|cvar)\b\s*([^:]*):(.*)$")


def _epytextToRst(app, what, name, obj, options, lines):
    """
    Turn the epytext of Twisted-style docstrings (C{code}, L{link},
    C{@param x: ...}) into reStructuredText, in place.
    """
    for i, line in enumerate(lines):
        line = _MARKUP.sub(lambda m: "``%s``" % (m.group(1),) if m.group(1) else "", line)
        field = _FIELD.match(line)
        if field:
            indent, kind, arg, rest = field.groups()
            kind = {"return": "returns", "raise": "raises"}.get(kind, kind)
            arg = arg.strip()
            line = "%s:%s%s:%s" % (indent, kind, " " + arg if arg else "", rest)
        lines[i] = line


def setup(app):
    app.connect("autodoc-process-docstring", _epytextToRst)
