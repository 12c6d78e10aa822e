"""
The live view in a real browser: Debian's Chromium, headless, driven by
selenium, against a registry and its web port on loopback.  Services are
registered over the registry's TCP port and must appear on, and vanish
from, the open page without a reload.
"""

import pytest_twisted
from browser import browser, inBrowser, waitFor
from support import bounded
from twisted.internet import reactor
from websupport import served

from txinferno.testing.embedded import connectRaw

__all__ = ["browser", "served"]


def rowNames(driver):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#rows .row')).map(r => r.dataset.name)"
    )


def pageState(driver):
    return driver.execute_script("return document.body.className")


async def openPage(driver, served):
    await inBrowser(driver.get, served.url("/"))
    await waitFor(driver, lambda d: pageState(d) == "live")
    await inBrowser(driver.execute_script, "window.notReloaded = true")


async def stillSamePage(driver):
    return await inBrowser(driver.execute_script, "return window.notReloaded === true")


async def register(served, line):
    conn = await bounded(connectRaw(reactor, "127.0.0.1", served.registry.newPort))
    conn.send(line)
    return conn


@pytest_twisted.ensureDeferred
async def test_serviceComesAndGoes(browser, served):
    """
    A service registered over TCP appears on the open page, with its
    attributes in the registry's quoting, and vanishes when its connection
    closes, with no reload; the changes are listed.
    """
    await openPage(browser, served)
    conn = await register(served, b"web proto http descr 'my site'\n")
    await waitFor(browser, lambda d: rowNames(d) == ["web"])
    cells = await inBrowser(
        browser.execute_script,
        "return Array.from(document.querySelectorAll('#rows .row > span')).map(c => c.textContent)",
    )
    assert cells == ["web", "descr 'my site' proto http"]
    conn.close()
    await waitFor(browser, lambda d: rowNames(d) == [])
    await waitFor(
        browser,
        lambda d: (
            d.execute_script(
                "return Array.from(document.querySelectorAll('#changes li span'))"
                ".map(s => s.textContent).join(' ')"
            )
            == "removed registered"
        ),
    )
    assert await stillSamePage(browser)


def countsShown(driver):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#counts dl')).map(block =>"
        " [block.querySelector('dt').textContent,"
        " Array.from(block.querySelectorAll('dd')).map(dd => dd.textContent)])"
    )


@pytest_twisted.ensureDeferred
async def test_countsFromChanges(browser, served):
    """
    The counts per attribute value follow the changes, the attributes read
    from each change's line by the registry's word rules: quoted values, a
    quote inside one, an attribute named like a number.
    """
    await openPage(browser, served)
    conn = await register(served, b"web proto http descr 'it''s  mine' 10 x\n")
    await waitFor(
        browser,
        lambda d: (
            countsShown(d) == [["10", ["x 1"]], ["descr", ["it's  mine 1"]], ["proto", ["http 1"]]]
        ),
    )
    other = await register(served, b"ssh proto http\n")
    conn.send(b"proto ftp\n")
    await waitFor(
        browser,
        lambda d: (
            countsShown(d)
            == [["10", ["x 1"]], ["descr", ["it's  mine 1"]], ["proto", ["ftp 1", "http 1"]]]
        ),
    )
    conn.close()
    await waitFor(browser, lambda d: countsShown(d) == [["proto", ["http 1"]]])
    assert await stillSamePage(browser)
    other.close()


@pytest_twisted.ensureDeferred
async def test_filter(browser, served):
    """
    The filter box takes a registry query, C{*} values included.
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    conns = [
        await register(served, b"web proto http\n"),
        await register(served, b"ssh proto tcp\n"),
        await register(served, b"plain x y\n"),
    ]
    await openPage(browser, served)
    await waitFor(browser, lambda d: sorted(rowNames(d)) == ["plain", "ssh", "web"])
    box = await inBrowser(browser.find_element, By.ID, "filter")
    await inBrowser(box.send_keys, "proto http", Keys.ENTER)
    await waitFor(browser, lambda d: rowNames(d) == ["web"] and pageState(d) == "live")
    # A change to a service that no longer matches takes it off the page.
    conns[0].send(b"proto gone\n")
    await waitFor(browser, lambda d: rowNames(d) == [])
    await inBrowser(box.clear)
    await inBrowser(box.send_keys, "proto *", Keys.ENTER)
    await waitFor(
        browser, lambda d: sorted(rowNames(d)) == ["ssh", "web"] and pageState(d) == "live"
    )
    # One that comes to match joins it.
    conns[2].send(b"proto ftp\n")
    await waitFor(browser, lambda d: sorted(rowNames(d)) == ["plain", "ssh", "web"])
    # An odd number of words finds every service, as the registry would.
    await inBrowser(box.send_keys, " odd", Keys.ENTER)
    await waitFor(browser, lambda d: d.find_element("id", "filter-note").text.startswith("odd"))
    for c in conns:
        c.close()


@pytest_twisted.ensureDeferred
async def test_registryRestart(browser, served):
    """
    When the registry goes away the page says so, and when it is back the
    page reconnects by itself and shows the new registry.
    """
    conn = await register(served, b"before proto http\n")
    await openPage(browser, served)
    await waitFor(browser, lambda d: rowNames(d) == ["before"])
    await served.stop()
    await waitFor(browser, lambda d: pageState(d) == "lost")
    text = await inBrowser(lambda: browser.find_element("id", "state").text)
    assert text == "registry unreachable: reconnecting"
    await served.start()
    after = await register(served, b"after proto http\n")
    await waitFor(browser, lambda d: pageState(d) == "live" and rowNames(d) == ["after"])
    assert await stillSamePage(browser)
    conn.close()
    after.close()
