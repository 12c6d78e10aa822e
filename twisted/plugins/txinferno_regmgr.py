"""
The C{twistd regmgr} plugin: serve an Inferno registry (see L{txinferno.tap}).
"""

from twisted.application.service import ServiceMaker

regmgr = ServiceMaker(
    "txinferno registry manager",
    "txinferno.tap",
    "Serve an Inferno registry(4) on its new, find and event TCP ports.",
    "regmgr",
)
