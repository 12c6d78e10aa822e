"""
The documentation builds with Sphinx without a single warning.
"""

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
