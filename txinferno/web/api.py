"""
The read-only JSON API: C{GET /v1/services?ATTR=VALUE...} (the services a
query finds, as the C{find} port answers it), C{GET /v1/services/NAME}
(one service) and C{GET /v1/status}.
"""

from twisted.web.resource import Resource

from txinferno.client.find import DEFAULT_MAX_ANSWER_SIZE
from txinferno.web.query import jsonError, jsonResponse, queryWords
from txinferno.web.view import serviceJSON
from txinferno.wire.words import decode

__all__ = ["ServicesResource", "StatusResource"]


class ServicesResource(Resource):
    """
    C{/v1/services} and C{/v1/services/NAME}.

    @ivar maxAnswerSize: the largest answer served, counted as the C{find}
        port's answer (the bytes of the matching services' lines); a larger
        one is refused with 413, as a client's find would refuse it.
    @ivar answersRefused: the answers refused so.
    """

    isLeaf = True
    answersRefused = 0

    def __init__(self, view, maxAnswerSize=DEFAULT_MAX_ANSWER_SIZE):
        """
        @type view: L{txinferno.web.view.RegistryView}
        @type maxAnswerSize: L{int}
        """
        Resource.__init__(self)
        self.view = view
        self.maxAnswerSize = maxAnswerSize

    def render_GET(self, request):
        registry = self.view.registry
        if len(request.postpath) == 1 and request.postpath[0]:
            name = decode(request.postpath[0])
            if name not in registry:
                return jsonError(request, 404, "no service %s" % (name,))
            service = registry[name]
            return jsonResponse(request, serviceJSON(name, service.attributes()))
        if request.postpath not in ([], [b""]):
            return jsonError(request, 404, "no such resource")
        services = registry.find(queryWords(request))
        size = sum(len(s.line()) for s in services)
        if size > self.maxAnswerSize:
            self.answersRefused += 1
            return jsonError(
                request,
                413,
                "answer of %d bytes is larger than the limit "
                "of %d bytes" % (size, self.maxAnswerSize),
            )
        return jsonResponse(request, self.view.encodeServices(services))


class StatusResource(Resource):
    """
    C{/v1/status}: L{txinferno.web.view.RegistryView.status}.
    """

    isLeaf = True

    def __init__(self, view):
        Resource.__init__(self)
        self.view = view

    def render_GET(self, request):
        return jsonResponse(request, self.view.status())
