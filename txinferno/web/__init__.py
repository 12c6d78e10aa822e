"""
The registry's web side: a live view of the services (L{page}), a read-only
JSON API and a stream of changes (L{api}, L{events}), Prometheus metrics
(L{metrics}) and the agent's health (L{health}), all on one port served by
twisted.web (L{site}).
"""
