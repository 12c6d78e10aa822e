"""
The client: the TCP connection plugin (one module per port: L{new}, L{find},
L{event}), the L{manager.RegistryManager} and its tasks.
"""
