"""
The documentation builds with Sphinx without a single warning.
"""

import html as html_module
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture(scope="module")
def sphinxBuild(tmp_path_factory):
    """
    The documentation built once for the tests of this module, with
    warnings as errors (C{--keep-going}: every page is still written);
    C{(result, html)}: the finished build's process and its output folder.
    """
    html = tmp_path_factory.mktemp("docs") / "html"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            str(DOCS),
            str(html),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result, html


def test_sphinxBuildsWithoutWarnings(sphinxBuild):
    result, html = sphinxBuild
    assert result.returncode == 0, result.stdout + result.stderr
    assert (html / "index.html").exists()


INTERFACES = [
    "IRegistryConnection",
    "IRegistration",
    "IChangeStream",
    "IChangeObserver",
    "IRegistryTask",
    "ITaskManager",
    "IConnectionStateObserver",
    "IMonitorObserver",
]


def test_referenceRendersEveryInterfaceAndNoInternals(sphinxBuild):
    """
    The API reference (pydoctor, inside the Sphinx build) has a page for
    each interface that shows its methods, and none for what a user never
    calls: private modules and the callbacks Twisted calls on protocols.
    """
    result, out = sphinxBuild
    assert (out / "index.html").exists(), result.stdout + result.stderr
    reference = out / "reference"
    for name in INTERFACES:
        page = (reference / ("txinferno.interfaces.%s.html" % (name,))).read_text()
        assert "Interface" in page
    connection = (reference / "txinferno.interfaces.IRegistryConnection.html").read_text()
    for method in ["register", "find", "watch"]:
        assert 'name="txinferno.interfaces.IRegistryConnection.%s"' % (method,) in connection
    pages = [p.name for p in reference.glob("*.html")]
    assert not [p for p in pages if "._" in p], pages
    protocol = (reference / "txinferno.client.find.FindClientProtocol.html").read_text()
    assert "dataReceived" not in protocol
    factory = (reference / "txinferno.client.find.FindClientFactory.html").read_text()
    assert 'name="txinferno.client.find.FindClientFactory.noisy"' not in factory
    watcher = (reference / "txinferno.server.protocols.EventServerProtocol.html").read_text()
    assert "resumeProducing" not in watcher
    resource = (reference / "txinferno.web.api.StatusResource.html").read_text()
    assert (
        "render_GET" not in resource
        and 'name="txinferno.web.api.StatusResource.isLeaf"' not in resource
    )
    api = (out / "api.html").read_text()
    assert 'href="reference/txinferno.client.manager.RegistryManager.html' in api


PROSE = sorted(p.stem for p in DOCS.glob("*.md"))


@pytest.mark.parametrize("page", PROSE)
def test_proseLinksIntoTheReference(sphinxBuild, page):
    """
    Every prose page links into the API reference from its own text (not
    only from the sidebar), and every Python role on it resolves: Sphinx
    renders one that does not as plain code, without a warning.
    """
    result, out = sphinxBuild
    html = (out / (page + ".html")).read_text()
    body = html[html.index('<div class="body"') : html.index('<div class="sphinxsidebar"')]
    if page == "index":
        assert 'href="api.html"' in body
    else:
        assert 'href="reference/' in body
    unresolved = re.findall(r'(?<!">)<code class="xref py[^"]*"[^>]*>(.*?)</code>', body)
    assert unresolved == []


def test_referenceRendersEpytext(sphinxBuild):
    """
    No epytext markup is left as text in the reference: fields and inline
    markup (C{{name: {attr: value}}} included) are rendered.
    """
    result, out = sphinxBuild
    raw = re.compile(r"[CLIBU]\{|@(param|type|return|rtype|raise|ivar|cvar|var)\b")
    left = []
    for page in (out / "reference").glob("txinferno*.html"):
        text = re.sub(r"<[^>]+>", "", page.read_text())
        left.extend("%s: %s" % (page.name, m.group(0)) for m in raw.finditer(text))
    assert left == []
    lookup = (out / "reference" / "txinferno.client.lookup.Lookup.html").read_text()
    assert '<tt class="rst-docutils rst-literal">{name: {attr: value}}</tt>' in lookup


def test_everyExampleShown(sphinxBuild):
    """
    Each program of docs/examples/ is shown whole on a page of the HTML.
    """
    result, out = sphinxBuild
    pages = "".join(re.sub(r"<[^>]+>", "", p.read_text()) for p in out.glob("*.html"))
    pages = html_module.unescape(pages)
    for example in sorted((DOCS / "examples").iterdir()):
        for line in example.read_text().splitlines():
            assert line.strip() in pages, (example.name, line)


def test_docstringsParseAndLinkWithinTheProject(tmp_path):
    """
    Every docstring is valid epytext, and every L{} link to a txinferno
    name resolves (links to Python's and Twisted's own names need their
    inventories, which an offline build does not have).
    """
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pydoctor",
            "--make-html",
            "-q",
            "--docformat=epytext",
            "--html-output",
            str(tmp_path / "api"),
            str(DOCS.parent / "txinferno"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = (result.stdout + result.stderr).splitlines()
    problems = [
        line for line in lines if "Cannot find link target" not in line or 'for "txinferno' in line
    ]
    assert problems == []
