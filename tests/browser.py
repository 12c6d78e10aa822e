"""
The browser tests' headless Chromium (L{txinferno.testing._chromium}): the
C{browser} fixture, and L{inBrowser} to run blocking selenium calls off the
reactor thread (the page needs the reactor to answer it).
"""

import pytest
from support import TIMEOUT, bounded
from twisted.internet import threads

from txinferno.testing._chromium import chromiumMissing, startChromium


@pytest.fixture(scope="session")
def browser():
    """
    A headless Chromium for the session; the tests using it are skipped,
    with the reason, only when Chromium, its driver or selenium is absent.
    """
    reason = chromiumMissing()
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
