"""
The live view's page, C{GET /}: a twisted.web.template shell with the
registry's status at the time it is served; C{static/view.js} fills it in
from the event stream (C{/v1/events}) and keeps it current.
"""

from twisted.web.resource import Resource
from twisted.web.template import Element, XMLString, renderElement, renderer

__all__ = ["ViewPage", "ViewResource"]

_TEMPLATE = """\
<html xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1" lang="en">
<head>
<meta charset="utf-8" />
<title>txinferno registry</title>
<link rel="stylesheet" href="static/view.css" />
</head>
<body class="connecting">
<header>
<h1>registry</h1>
<span id="state">connecting</span>
<dl id="status">
<dt>version</dt><dd id="version"><t:transparent t:render="version" /></dd>
<dt>services</dt><dd id="count"><t:transparent t:render="count" /></dd>
<dt>uptime</dt><dd id="uptime">-</dd>
<dt>connections</dt><dd id="connections">-</dd>
</dl>
</header>
<main>
<section id="services-section">
<form id="filter-form" autocomplete="off">
<label for="filter">query</label>
<input id="filter" name="filter" type="search" placeholder="proto http" spellcheck="false" />
<span id="filter-note"></span>
</form>
<p id="shown"></p>
<div id="services">
<div class="row heading"><span class="name">service</span><span class="attrs">attributes</span></div>
<div id="rows"></div>
</div>
</section>
<aside>
<h2>over time</h2>
<svg id="chart" viewBox="0 0 300 100" preserveAspectRatio="none" role="img"
 aria-label="services and changes over time"></svg>
<p class="legend"><span class="services-key">services</span> <span class="changes-key">changes</span></p>
<h2>recent changes</h2>
<ol id="changes"></ol>
<h2>attribute values</h2>
<div id="counts"></div>
</aside>
</main>
<script src="static/view.js"></script>
</body>
</html>
"""


class ViewPage(Element):
    """
    The page, with the version and the number of services of the moment.
    """

    loader = XMLString(_TEMPLATE)

    def __init__(self, view):
        """
        @type view: L{txinferno.web.view.RegistryView}
        """
        Element.__init__(self)
        self.view = view

    @renderer
    def version(self, request, tag):
        return str(self.view.registry.version)

    @renderer
    def count(self, request, tag):
        return str(len(self.view.registry))


class ViewResource(Resource):
    """
    Serves L{ViewPage} at C{/}.
    """

    isLeaf = True

    def __init__(self, view):
        Resource.__init__(self)
        self.view = view

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return renderElement(request, ViewPage(self.view))
