"""
Debian's Chromium, headless, driven by selenium: for txinferno's own browser
tests, its web bench and the screenshots of its documentation, which all
open the web view in the same browser.
"""

from __future__ import annotations

import os
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def chromiumMissing() -> str | None:
    """
    @return: why headless Chromium cannot be started here (the browser, its
        driver or selenium is absent, and how to install it), or L{None}
        when it can.
    """
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return "%s is missing (apt-get install chromium chromium-driver)" % (path,)
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install '.[test]')"
    return None


def startChromium(width: int = 1280, height: int = 900) -> Any:
    """
    @param width: the window's width, in pixels.
    @param height: the window's height, in pixels.
    @return: a selenium driver of a headless Chromium.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=%d,%d" % (width, height),
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
