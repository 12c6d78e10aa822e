"""
txinferno: Inferno OS's service registry, registry(4), for Twisted programs.
"""

__version__ = "0.1.0"
