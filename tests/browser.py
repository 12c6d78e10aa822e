"""
Debian's Chromium, headless, driven by selenium, for the browser tests:
the C{browser} fixture, and L{inBrowser} to run blocking selenium calls off
the reactor thread (the page needs the reactor to answer it).
"""

import os

import pytest
from support import TIMEOUT, bounded
from twisted.internet import threads

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _missing():
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return "%s is missing (apt-get install chromium chromium-driver)" % (path,)
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install '.[test]')"
    return None


def startChromium(width=1280, height=900):
    """
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


@pytest.fixture(scope="session")
def browser():
    """
    A headless Chromium for the session; the tests using it are skipped,
    with the reason, only when Chromium, its driver or selenium is absent.
    """
    reason = _missing()
    if reason is not None:
        pytest.skip(reason)
    driver = startChromium()
    driver.set_page_load_timeout(TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()


def inBrowser(f, *args):
    """
    Run a blocking selenium call in a thread.

    @return: a L{Deferred} of its result, failing after the tests' timeout.
    """
    return bounded(threads.deferToThread(f, *args), TIMEOUT * 2)


def waitFor(driver, condition, timeout=TIMEOUT):
    """
    Wait (in a thread) until C{condition(driver)} is true.

    @return: a L{Deferred} of its value.
    """
    from selenium.webdriver.support.ui import WebDriverWait

    return inBrowser(lambda: WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition))
