"""
Sphinx configuration for txinferno's documentation.

Build: python -m sphinx -W docs docs/_build

The prose pages are Markdown (MyST); the API reference is built by pydoctor,
Twisted's own API documentation tool (it reads epytext and renders
zope.interface interfaces), into the C{reference/} folder of the build, and its
inventory lets the prose pages link into it with roles such as
C{{py:class}`txinferno.client.manager.RegistryManager`}.
"""

import os

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(os.path.dirname(HERE), "txinferno")

project = "txinferno"
author = "the txinferno developers"
copyright = "2026, " + author
extensions = ["myst_parser", "sphinx.ext.intersphinx", "pydoctor.sphinx_ext.build_apidocs"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "examples"]
myst_heading_anchors = 3
html_theme = "alabaster"
# Wide enough for about 95 columns of code beside the sidebar;
# docs/_static/custom.css wraps what is longer.
html_theme_options = {"page_width": "1240px", "body_max_width": "none"}
html_static_path = ["_static"]
intersphinx_mapping = {}

# What a user of the API never calls: the callbacks Twisted calls on
# protocols, factories, producers, web resources and option parsers, the
# attributes only Twisted reads there, and private names.
_HIDDEN = [
    "txinferno._*",
    "txinferno.**._*",
    "txinferno.**.dataReceived",
    "txinferno.**.lineReceived",
    "txinferno.**.rawDataReceived",
    "txinferno.**.connectionMade",
    "txinferno.**.connectionLost",
    "txinferno.**.buildProtocol",
    "txinferno.**.clientConnectionFailed",
    "txinferno.**.clientConnectionLost",
    "txinferno.**.startedConnecting",
    "txinferno.**.postOptions",
    "txinferno.**.parseArgs",
    "txinferno.**.opt*",
    "txinferno.**.compData",
    "txinferno.**.synopsis",
    "txinferno.**.longdesc",
    "txinferno.**.writeReceived",
    "txinferno.**.writeFailed",
    "txinferno.**.pauseProducing",
    "txinferno.**.resumeProducing",
    "txinferno.**.stopProducing",
    "txinferno.**.render_*",
    "txinferno.**.isLeaf",
    "txinferno.**.noisy",
]

pydoctor_args = [
    "-q",
    "-q",
    "--html-output={outdir}/reference",
    "--project-name=txinferno",
    "--docformat=epytext",
    *("--privacy=HIDDEN:" + pattern for pattern in _HIDDEN),
    SOURCE,
]
pydoctor_url_path = "reference/"
