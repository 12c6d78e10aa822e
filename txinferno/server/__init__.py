"""
The embedded registry server: the in-memory model (L{registry}) and the
per-port server protocols (L{protocols}).
"""
