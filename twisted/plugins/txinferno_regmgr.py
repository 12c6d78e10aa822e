"""
The C{twistd regmgr} plugin: serve an Inferno registry (see L{txinferno.tap}).
"""

from twisted.application.service import ServiceMaker

regmgr = ServiceMaker(
    "txinferno registry manager",
    "txinferno.tap",
    (
        "Serve an Inferno registry(4) (its new, find and event TCP ports, Styx and a "
        "web view), or run as an agent holding services registered in one."
    ),
    "regmgr",
)
