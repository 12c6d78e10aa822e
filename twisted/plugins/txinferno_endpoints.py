"""
Endpoint string parsers of txinferno: C{inferno:} (client) and
C{registered:} (server).
"""

from txinferno.endpoints import InfernoClientParser, RegisteredServerParser

infernoClientParser = InfernoClientParser()
registeredServerParser = RegisteredServerParser()
