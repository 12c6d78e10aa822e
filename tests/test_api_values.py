"""
Bad values given to the Python API raise at the call, before anything is
sent or scheduled (issue 14, item 20): a set as attributes, a monitor's
observer that is not one, a timeout that is not a positive number.
"""

import pytest
from twisted.internet.task import Clock

from txinferno.client.lookup import Lookup
from txinferno.client.manager import RegistryManager
from txinferno.client.monitor import Monitor
from txinferno.client.service import ServiceTask
from txinferno.client.tcp import connectionFromString
from txinferno.testing.recorders import MonitorRecorder as Recorder
from txinferno.wire.rules import checkPositive, normaliseAttrs


@pytest.mark.parametrize("attrs", [{"proto", "http"}, frozenset(["a", "1"]), {("a", "1")}])
def test_setAsAttributes(attrs):
    """
    A set has no order: its words would make arbitrary pairs.
    """
    with pytest.raises(ValueError, match="not a (set|frozenset): a set has no order"):
        normaliseAttrs(attrs)
    with pytest.raises(ValueError, match="a set has no order"):
        ServiceTask("svc", attrs)
    with pytest.raises(ValueError, match="a set has no order"):
        Monitor(attrs, Recorder())
    with pytest.raises(ValueError, match="a set has no order"):
        Lookup(attrs)


@pytest.mark.parametrize("observer", [None, object(), "printer"])
def test_monitorNeedsAnObserver(observer):
    """
    C{None}, or anything without the observer's methods, is refused at
    once rather than failing at every report.
    """
    with pytest.raises(TypeError, match="must provide IMonitorObserver"):
        Monitor({}, observer)


def test_monitorTakesADuckTypedObserver():
    class Duck:
        def added(self, name, attrs):
            pass

        def updated(self, name, attrs, previous):
            pass

        def removed(self, name, attrs):
            pass

        def resynced(self):
            pass

    duck = Duck()
    assert Monitor({}, duck).observer is duck


@pytest.mark.parametrize("timeout", [0, -1, -0.5, float("nan"), float("inf")])
def test_lookupTimeoutNotPositive(timeout):
    with pytest.raises(ValueError, match="the lookup timeout must be positive"):
        Lookup({}, timeout=timeout)
    manager = RegistryManager(connectionFromString(Clock(), "tcp:127.0.0.1:1"), clock=Clock())
    with pytest.raises(ValueError, match="the lookup timeout must be positive"):
        manager.lookup({}, timeout=timeout)
    assert manager.tasks == ()


@pytest.mark.parametrize("timeout", ["10", None, True, [1]])
def test_lookupTimeoutNotANumber(timeout):
    with pytest.raises(TypeError, match="the lookup timeout must be a number"):
        Lookup({}, timeout=timeout)


def test_checkPositive():
    assert checkPositive(3, "x") == 3
    assert checkPositive(0.25, "x") == 0.25
