"""
The registry's web side: a live view of the services (L{page}), a read-only
JSON API and a stream of changes (L{api}, L{events}), Prometheus metrics
(L{metrics}) and the agent's health (L{health}), all on one port served by
twisted.web (L{site}).
"""

__all__ = ["DEFAULT_WEB"]

DEFAULT_WEB = "tcp:6680:interface=127.0.0.1"
"""
Where C{twistd regmgr} serves the web port when it serves a registry (here,
not in L{txinferno.web.site}, so that its options need not import the web
port's modules).
"""
