"""
Unit tests for L{txinferno.client.new}: registration lines, the
coalesced confirmation by listings, and how a close is explained, on a
L{MemoryReactorClock}.
"""

import pytest
from support import MemoryNetwork
from twisted.internet import defer
from twisted.internet.error import (
    ConnectingCancelledError,
    ConnectionLost,
    ConnectionRefusedError,
)
from twisted.internet.protocol import Protocol
from twisted.logger import LogLevel, capturedLogs, formatEvent
from zope.interface.verify import verifyObject

from txinferno.client._reconnect import connectionStarter
from txinferno.client.new import (
    BURST_LISTING_DELAY,
    CHECK_RETRY_DELAY,
    CONFIRM_AFTER,
    LOSS_WINDOW,
    STALE_RETRIES,
    Registrar,
)
from txinferno.errors import (
    AnswerTooLarge,
    MalformedAnswer,
    RegistrationLost,
    RegistrationRejected,
    RegistryTimeout,
)
from txinferno.interfaces import IRegistration


class NewPortServerProtocol(Protocol):
    """
    The server side of a registration: keeps every write it gets.
    """

    def __init__(self):
        self.writes = []

    def dataReceived(self, data):
        self.writes.append(data)


class Setup:
    """
    A registrar on a memory reactor; the test completes its connections and
    answers its listings.
    """

    def __init__(self, timeout=10):
        network = MemoryNetwork()
        network.listen(6701, NewPortServerProtocol)
        self.reactor = network.reactor
        self.completer = network.completer
        self.servers = network.serverProtocols
        self.listings = []
        self.queries = []
        self.registrar = Registrar(
            connectionStarter(self.reactor, network.clientEndpoint(6701)),
            self.findServices,
            self.reactor,
            timeout,
        )

    def findServices(self, pairs):
        """
        A find the test answers: its Deferred goes to C{listings}, its
        pairs to C{queries}.
        """
        d = defer.Deferred()
        self.listings.append(d)
        self.queries.append(list(pairs))
        return d

    def answer(self, services=None, failure=None):
        """
        Answer every find not answered yet (a round's finds together) with
        C{services}, or fail them with C{failure}.

        @return: how many were answered.
        """
        waiting = [d for d in self.listings if not d.called]
        for d in waiting:
            d.callback(services) if failure is None else d.errback(failure)
        return len(waiting)

    def register(self, name, attrs=(("proto", "ssh"),)):
        fired, failed = [], []
        self.registrar.register(name, attrs).addCallbacks(fired.append, failed.append)
        return fired, failed

    def connect(self, settle=True):
        """
        Complete the next connection and, if C{settle}, let L{CONFIRM_AFTER}
        pass, after which its listing starts if no other registration is
        connecting.
        """
        pump = self.completer.succeedOnce()
        pump.flush()
        if settle:
            self.reactor.advance(CONFIRM_AFTER)
        return pump


def test_lineAndConfirmation():
    """
    The registration line goes out in one write; the registration fires
    once a listing shows the service with its attributes.
    """
    s = Setup()
    fired, failed = s.register("myservice", {"proto": "ssh", "descr": "an example"})
    s.connect()
    assert s.servers[0].writes == [b"myservice proto ssh descr 'an example'\n"]
    assert len(s.listings) == 1 and fired == []
    s.listings[0].callback(
        {"myservice": {"descr": "an example", "proto": "ssh"}, "other": {"proto": "ssh"}}
    )
    [registration] = fired
    assert verifyObject(IRegistration, registration)
    assert registration.name == "myservice"
    assert registration.attrs == {"proto": "ssh", "descr": "an example"}


def test_validationBeforeSending():
    s = Setup()
    with pytest.raises(ValueError, match="bad service name"):
        s.registrar.register("find", {})
    with pytest.raises(ValueError, match="odd attribute set"):
        s.registrar.register("svc", ["a"])
    assert s.reactor.tcpClients == []


def test_coalesced():
    """
    While more registrations are connecting, the listing waits for them:
    one listing, started when the last is written, confirms a burst of 100.
    """
    s = Setup()
    results = [s.register("svc%d" % i, {"k": str(i)}) for i in range(100)]
    for _ in range(99):
        s.connect(settle=False)
    assert s.listings == []
    s.connect()
    assert len(s.listings) == 1
    everything = {"svc%d" % i: {"k": str(i)} for i in range(100)}
    s.listings[0].callback(everything)
    assert all(len(fired) == 1 for fired, failed in results)
    assert len(s.listings) == 1
    assert s.reactor.getDelayedCalls() == []


def test_listedWhileOthersStillConnect():
    """
    Registrations written while others are still connecting are listed
    after BURST_LISTING_DELAY, without waiting for the others.
    """
    s = Setup()
    first = s.register("first")
    second = s.register("second")
    s.connect(settle=False)
    s.reactor.advance(BURST_LISTING_DELAY - 0.01)
    assert s.listings == []
    s.reactor.advance(0.01)
    assert len(s.listings) == 1
    s.listings[0].callback({"first": {"proto": "ssh"}})
    assert len(first[0]) == 1 and second == ([], [])


def test_listingWaitsForTheRegistryToReadTheLine():
    """
    A registration is listed L{CONFIRM_AFTER} after it was written, not at
    once: the registry must have read its line (and closed it, for a
    duplicate) before a listing may confirm it.
    """
    s = Setup()
    fired, failed = s.register("svc")
    s.connect(settle=False)
    s.reactor.advance(CONFIRM_AFTER - 0.01)
    assert s.listings == []
    s.reactor.advance(0.01)
    assert len(s.listings) == 1
    s.listings[0].callback({"svc": {"proto": "ssh"}})
    assert len(fired) == 1


def test_duplicateWithTheSameAttributes():
    """
    A listing started less than L{CONFIRM_AFTER} after a registration was
    written does not confirm it, even if it shows the name with the same
    attributes: that may be someone else's entry, and the registry's close
    of ours still on its way.
    """
    s = Setup()
    early = s.register("early")
    late = s.register("late")
    s.connect(settle=False)
    s.reactor.advance(BURST_LISTING_DELAY - 0.01)
    pump = s.connect(settle=False)
    s.reactor.advance(0.01)
    [listing] = s.listings
    theirs = {"early": {"proto": "ssh"}, "late": {"proto": "ssh"}}
    listing.callback(theirs)
    assert len(early[0]) == 1
    assert late == ([], [])
    pump.serverIO.loseConnection()
    pump.flush()
    s.reactor.advance(CONFIRM_AFTER)
    s.answer(theirs)
    [failure] = late[1]
    assert failure.check(RegistrationRejected)
    assert failure.value.reason == "duplicate service name"


def test_changeReportListsAtOnce():
    """
    A registration the last listing did not show is listed again as soon as
    the registry reports a change, rather than after CHECK_RETRY_DELAY;
    not while others are still connecting, and not when none waits.
    """
    s = Setup()
    s.registrar.registryChanged()
    fired, failed = s.register("svc")
    s.connect()
    s.listings[0].callback({})
    assert len(s.listings) == 1
    s.registrar.registryChanged()
    assert len(s.listings) == 2
    s.listings[1].callback({"svc": {"proto": "ssh"}})
    assert len(fired) == 1
    s.registrar.registryChanged()
    s.register("later")
    s.register("other")
    s.connect()
    s.registrar.registryChanged()
    assert len(s.listings) == 2
    assert s.reactor.getDelayedCalls() != []


def test_connectionsInFlightBounded():
    """
    At most maxConnecting connection attempts are in progress at once; the
    others start in order as attempts end, and each one's timeout counts
    from when it was asked for.
    """
    s = Setup(timeout=2)
    s.registrar = Registrar(
        connectionStarter(s.reactor, "tcp:host=127.0.0.1:port=6701"),
        s.findServices,
        s.reactor,
        timeout=2,
        maxConnecting=3,
    )
    results = [s.register("svc%d" % i) for i in range(5)]
    assert len(s.reactor.tcpClients) == 3
    s.connect()
    assert len(s.reactor.tcpClients) == 3
    assert [w for server in s.servers for w in server.writes] == [b"svc0 proto ssh\n"]
    s.reactor.advance(2)
    assert [failed[0].check(RegistryTimeout) for fired, failed in results[1:]] == [
        RegistryTimeout
    ] * 4
    assert len(s.reactor.tcpClients) == 3
    assert all(c.stoppedConnecting for c in s.reactor.connectors)


def test_attributesMustMatchExactly():
    """
    A listing showing the name with other values, or with more attributes
    than ours, does not confirm: someone else holds the name, and the
    registration fails with C{duplicate service name} at once, its
    connection closed, although the registry has not closed it (a close
    held back under concurrency, spec section 4).
    """
    for theirs in [{"k": "2"}, {"k": "1", "extra": "x"}]:
        s = Setup()
        fired, failed = s.register("svc", {"k": "1"})
        pump = s.connect()
        s.answer({"svc": theirs})
        assert fired == []
        [failure] = failed
        assert failure.check(RegistrationRejected)
        assert failure.value.reason == "duplicate service name"
        assert pump.clientIO.disconnecting


def test_withoutAttributesMatchesOnlyNone():
    """
    A service without attributes is confirmed only by an entry without
    attributes, found by the full listing.
    """
    s = Setup()
    fired, failed = s.register("svc", {})
    s.connect()
    assert s.queries == [[]]
    s.answer({"svc": {"proto": "http"}})
    assert fired == [] and failed[0].value.reason == "duplicate service name"
    s = Setup()
    fired, failed = s.register("svc", {})
    s.connect()
    s.answer({"svc": {}})
    assert len(fired) == 1


def test_findsOwnAttributes():
    """
    A registration is confirmed by a find of its own attributes, not by a
    listing of every service; registrations that share attributes share
    one find, of what they all have (attributes they all have with
    different values as C{*}).
    """
    s = Setup()
    fired, failed = s.register("svc", {"proto": "http", "port": "80"})
    s.connect()
    assert s.queries == [[("proto", "http"), ("port", "80")]]
    s.answer({"svc": {"proto": "http", "port": "80"}})
    assert len(fired) == 1

    s = Setup()
    results = [s.register("s%d" % i, {"proto": "http", "n": str(i)}) for i in range(10)]
    results += [s.register("t%d" % i, {"k": str(i)}) for i in range(5)]
    results.append(s.register("lone", {"z": "1"}))
    for _ in results:
        s.connect(settle=False)
    s.reactor.advance(CONFIRM_AFTER)
    assert sorted(s.queries) == sorted(
        [[("proto", "http"), ("n", "*")], [("k", "*")], [("z", "1")]]
    )
    s.answer(
        dict(
            [("s%d" % i, {"proto": "http", "n": str(i)}) for i in range(10)]
            + [("t%d" % i, {"k": str(i)}) for i in range(5)]
            + [("lone", {"z": "1"})]
        )
    )
    assert all(len(fired) == 1 for fired, failed in results)


def test_sharedFindTooLarge():
    """
    When the shared find's answer is over the limit, each registration is
    found by its own attributes in the next round.
    """
    s = Setup()
    results = [s.register("s%d" % i, {"proto": "http", "n": str(i)}) for i in range(3)]
    for _ in results:
        s.connect(settle=False)
    s.reactor.advance(CONFIRM_AFTER)
    s.answer(failure=AnswerTooLarge("answer over the limit of 10 bytes"))
    assert all(r == ([], []) for r in results)
    assert sorted(s.queries[1:]) == [[("proto", "http"), ("n", str(i))] for i in range(3)]
    s.answer({"s%d" % i: {"proto": "http", "n": str(i)} for i in range(3)})
    assert all(len(fired) == 1 for fired, failed in results)


def test_watchedAfterConfirmation():
    """
    A later answer (started after the confirming one) that lists our name
    with attributes we never sent means someone else holds it: the
    registration is lost, the reason given.  Attributes we did send, old
    values of an update included, do not.
    """
    s = Setup()
    fired, failed = s.register("svc", {"k": "1"})
    pump = s.connect()
    s.answer({"svc": {"k": "1"}})
    [registration] = fired
    lost = []
    registration.whenLost().addErrback(lost.append)
    registration.update({"k": "2"})
    s.registrar.sawAnswer({"svc": {"k": "1"}}, s.reactor.seconds())
    s.registrar.sawAnswer({"svc": {"k": "2"}}, s.reactor.seconds())
    s.registrar.sawAnswer({"svc": {"k": "3"}}, s.reactor.seconds() - 1)
    assert not pump.clientIO.disconnecting
    s.registrar.sawAnswer({"svc": {"k": "2", "owner": "other"}}, s.reactor.seconds())
    assert pump.clientIO.disconnecting
    pump.flush()
    [failure] = lost
    assert failure.check(RegistrationLost)
    assert (
        "duplicate service name: the registry lists it with attributes this "
        "registration never sent (k 2 owner other)" in str(failure.value)
    )


def test_neverListed():
    """
    A registration never listed while its connection stays open fails
    with L{RegistryTimeout} after the timeout, and its connection is
    aborted.
    """
    s = Setup(timeout=1)
    fired, failed = s.register("svc")
    pump = s.connect()
    rounds = 0
    while not failed:
        rounds += 1
        s.answer({})
        s.reactor.advance(CHECK_RETRY_DELAY)
    assert failed[0].check(RegistryTimeout)
    assert "not listed by the registry within 1 s" in str(failed[0].value)
    assert pump.clientIO.disconnecting
    assert 9 <= rounds <= 12


def test_duplicate():
    """
    The registry closes the connection; a listing started after the close
    shows the name: C{duplicate service name}.
    """
    s = Setup()
    fired, failed = s.register("svc")
    pump = s.connect()
    pump.serverIO.loseConnection()
    pump.flush()
    s.answer({"svc": {"proto": "ssh"}})
    assert failed == [] and len(s.listings) == 3
    assert s.queries[1:] == [[("proto", "ssh")], []]
    s.answer({"svc": {"other": "owner"}})
    [failure] = failed
    assert failure.check(RegistrationRejected)
    assert failure.value.name == "svc"
    assert failure.value.reason == "duplicate service name"


def test_closedForAnotherReason():
    s = Setup()
    fired, failed = s.register("svc")
    pump = s.connect()
    s.listings[0].callback({})
    s.reactor.advance(CHECK_RETRY_DELAY)
    pump.serverIO.loseConnection()
    pump.flush()
    s.answer({})
    assert failed == []
    s.answer({})
    [failure] = failed
    assert failure.check(RegistrationRejected)
    assert failure.value.reason.startswith("the registry closed the connection (")


def test_listingFails():
    """
    When the listing fails, open registrations waiting for it fail with its
    error and are closed; closed ones are rejected, saying both.
    """
    s = Setup()
    first, firstFailed = s.register("a")
    second, secondFailed = s.register("b")
    s.connect()
    pumpB = s.connect()
    s.listings[0].callback({"a": {"proto": "ssh"}})
    pumpB.serverIO.loseConnection()
    pumpB.flush()
    s.answer(failure=RegistryTimeout("too slow"))
    assert len(first) == 1
    [failure] = secondFailed
    assert failure.check(RegistrationRejected)
    assert "listing the services to find out why failed: too slow" in failure.value.reason

    third, thirdFailed = s.register("c")
    pumpC = s.connect()
    s.answer(failure=RegistryTimeout("too slow"))
    assert thirdFailed[0].check(RegistryTimeout)
    assert pumpC.clientIO.disconnecting


def test_serverWrites():
    """
    A peer that writes on the new port is not a registry: the connection
    is aborted and the registration fails with L{MalformedAnswer}.
    """
    s = Setup()
    fired, failed = s.register("svc")
    pump = s.connect()
    pump.serverIO.write(b"HELLO\n")
    pump.flush()
    assert failed[0].check(MalformedAnswer)
    assert "wrote 6 bytes on the registration connection" in str(failed[0].value)
    s.listings[0].callback({"svc": {"proto": "ssh"}})
    assert fired == []


def confirmed(s, name="svc", attrs=(("proto", "ssh"),)):
    fired, failed = s.register(name, attrs)
    pump = s.connect()
    s.listings[-1].callback({name: dict(attrs)})
    return fired[0], pump


def test_update():
    """
    An update is one line on the same connection; the attributes are
    remembered.
    """
    s = Setup()
    registration, pump = confirmed(s)
    registration.update([("descr", "it's"), ("port", "22")])
    pump.flush()
    assert s.servers[0].writes[1:] == [b"descr 'it''s' port 22\n"]
    assert registration.attrs == {"proto": "ssh", "descr": "it's", "port": "22"}
    with pytest.raises(ValueError, match="at least one attribute"):
        registration.update({})
    assert len(s.listings) == 1


def test_unregister():
    s = Setup()
    registration, pump = confirmed(s)
    lost = registration.whenLost()
    done = registration.unregister()
    assert pump.clientIO.disconnecting and not done.called
    with pytest.raises(RegistrationLost):
        registration.update({"a": "1"})
    pump.flush()
    assert done.called and done.result is None
    assert lost.called and lost.result is None
    assert registration.whenLost().result is None
    assert registration.unregister().result is None


def test_lost():
    """
    A confirmed registration whose connection closes without
    C{unregister}: L{RegistrationLost}, now and for later callers.
    """
    s = Setup()
    registration, pump = confirmed(s)
    lost = registration.whenLost()
    pump.clientIO.disconnectReason = ConnectionLost("reset")
    pump.serverIO.loseConnection()
    pump.flush()
    failures = []
    lost.addErrback(failures.append)
    registration.whenLost().addErrback(failures.append)
    assert [f.check(RegistrationLost) for f in failures] == [RegistrationLost] * 2
    assert "registration of 'svc' lost" in str(failures[0].value)
    with pytest.raises(RegistrationLost, match="is gone"):
        registration.update({"a": "1"})


def test_connectTimeout():
    s = Setup(timeout=2)
    fired, failed = s.register("svc")
    s.reactor.advance(2)
    assert failed[0].check(RegistryTimeout)
    assert "could not connect to the new port within 2 s" in str(failed[0].value)
    assert s.reactor.connectors[0].stoppedConnecting


def test_connectTimeoutsShareOneTimer():
    """
    Connection attempts are timed by one timer, each attempt failing once
    its own timeout has passed; the timer goes with the last attempt.
    """
    s = Setup(timeout=2)
    first = s.register("one")
    s.reactor.advance(1)
    second = s.register("two")
    assert len(s.reactor.getDelayedCalls()) == 1
    s.reactor.advance(1)
    assert first[1][0].check(RegistryTimeout) and second[1] == []
    assert len(s.reactor.getDelayedCalls()) == 1
    s.reactor.advance(1)
    assert second[1][0].check(RegistryTimeout)
    assert "could not connect to the new port within 2 s" in str(second[1][0].value)
    assert s.reactor.getDelayedCalls() == []
    s = Setup(timeout=2)
    third = s.register("three")
    s.connect()
    assert third[1] == [] and s.listings
    assert s.reactor.getDelayedCalls() == []


def test_connectionRefused():
    s = Setup()
    fired, failed = s.register("svc")
    s.completer.failOnce()
    assert failed[0].type is ConnectionRefusedError
    assert s.reactor.getDelayedCalls() == []


def test_cancelWhileConnecting():
    s = Setup()
    d = s.registrar.register("svc", {})
    d.cancel()
    assert s.reactor.connectors[0].stoppedConnecting
    failures = []
    d.addErrback(failures.append)
    assert failures[0].check(defer.CancelledError)
    assert not failures[0].check(ConnectingCancelledError)


def test_cancelWhileConfirming():
    """
    Cancelling a registration waiting for its listing closes its
    connection; the listing ignores it.
    """
    s = Setup()
    d = s.registrar.register("svc", {})
    pump = s.connect()
    d.cancel()
    assert pump.clientIO.disconnecting
    pump.flush()
    s.listings[0].callback({"svc": {}})
    failures = []
    d.addErrback(failures.append)
    assert failures[0].check(defer.CancelledError)
    assert len(s.listings) == 1


def test_confirmationLoggedOncePerListing():
    """
    A listing that confirms one registration logs it by name at info; one
    that confirms a burst logs one line with the count, the names in the
    event.
    """
    s = Setup()
    with capturedLogs() as events:
        burst = [s.register("svc%d" % i) for i in range(3)]
        for _ in burst:
            s.connect()
        s.listings[0].callback({"svc%d" % i: {"proto": "ssh"} for i in range(3)})
        single = s.register("one")
        s.connect()
        s.listings[1].callback({"one": {"proto": "ssh"}})
    assert all(len(fired) == 1 for fired, failed in burst + [single])
    infos = [formatEvent(e) for e in events if e["log_level"] == LogLevel.info]
    assert infos == ["3 services registered", "service one registered"]
    [counted] = [e for e in events if e.get("count") == 3]
    assert counted["names"] == ["svc0", "svc1", "svc2"]


def confirmedMany(s, count):
    """
    Register and confirm C{count} services, C{svc0}..., through one listing.

    @return: the registrations and their connections' pumps.
    """
    burst = [s.register("svc%d" % i) for i in range(count)]
    pumps = [s.connect() for _ in burst]
    s.listings[-1].callback({"svc%d" % i: {"proto": "ssh"} for i in range(count)})
    return [fired[0] for fired, failed in burst], pumps


def test_unregistrationsLoggedOnce():
    """
    Unregistrations in progress together are logged as one line once the
    last of them ends, before its Deferred fires; a lone one by name.
    """
    s = Setup()
    registrations, pumps = confirmedMany(s, 4)
    with capturedLogs() as events:
        done = [r.unregister() for r in registrations[:3]]
        for pump in pumps[:2]:
            pump.flush()
        assert [formatEvent(e) for e in events if e["log_level"] == LogLevel.info] == []
        infosWhenLastEnded = []
        done[2].addCallback(
            lambda _: infosWhenLastEnded.append(
                [formatEvent(e) for e in events if e["log_level"] == LogLevel.info]
            )
        )
        pumps[2].flush()
        assert infosWhenLastEnded == [["3 services unregistered"]]
        [counted] = [e for e in events if e.get("count") == 3]
        assert counted["names"] == ["svc0", "svc1", "svc2"]
        registrations[3].unregister()
        pumps[3].flush()
    infos = [formatEvent(e) for e in events if e["log_level"] == LogLevel.info]
    assert infos == ["3 services unregistered", "service svc3 unregistered"]
    assert s.reactor.getDelayedCalls() == []


def test_lossesCollectedOverAWindow():
    """
    Registrations lost over many turns within L{LOSS_WINDOW} (a registry
    that goes away) are logged as one warning per reason, once the window
    has passed, with their names; the reason is the same words for every
    connection reset (or closed) alike.
    """
    s = Setup()
    registrations, pumps = confirmedMany(s, 3)
    with capturedLogs() as events:
        for number, pump in enumerate(pumps):
            pump.clientIO.disconnectReason = ConnectionLost("reset %d" % (number,))
            pump.serverIO.loseConnection()
            pump.flush(advanceClock=False)
            s.reactor.advance(LOSS_WINDOW / 4)
        assert [e for e in events if e["log_level"] == LogLevel.warn] == []
        s.reactor.advance(LOSS_WINDOW)
    [warning] = [e for e in events if e["log_level"] == LogLevel.warn]
    assert formatEvent(warning) == ("3 registrations lost: the connection to the registry was lost")
    assert warning["names"] == ["svc0", "svc1", "svc2"]


def test_staleAttemptDoesNotWinTheName():
    """
    An attempt given up unanswered (a stalled registry: its finds time
    out) may still be read by the registry once it resumes, and hold the
    name for a moment: the next attempt, closed by the registry while our
    name is listed with exactly our attributes, is made again rather than
    reported as a duplicate, and is confirmed once the stale entry is gone.
    """
    s = Setup()
    first, firstFailed = s.register("svc", {"k": "1"})
    stale = s.connect()
    s.answer(failure=RegistryTimeout("the registry did not answer"))
    assert firstFailed[0].check(RegistryTimeout)
    assert stale.clientIO.disconnecting

    fired, failed = s.register("svc", {"k": "1"})
    pump = s.connect()
    pump.serverIO.loseConnection()
    pump.flush()
    s.answer({"svc": {"k": "1"}})
    s.answer({"svc": {"k": "1"}})
    assert failed == [] and fired == []
    s.reactor.advance(CHECK_RETRY_DELAY)
    again = s.connect()
    assert s.servers[-1].writes == [b"svc k 1\n"]
    s.answer({"svc": {"k": "1"}})
    [registration] = fired
    assert not again.clientIO.disconnecting


def test_staleAttemptRetriesBounded():
    """
    When the holder with exactly our name and attributes is not a stale
    attempt of ours going away (another registrant, the undecidable case),
    the attempt made again is reported as a duplicate after
    L{STALE_RETRIES} tries.
    """
    s = Setup()
    first, firstFailed = s.register("svc", {"k": "1"})
    s.connect()
    s.answer(failure=RegistryTimeout("the registry did not answer"))
    fired, failed = s.register("svc", {"k": "1"})
    tries = 0
    while not failed:
        tries += 1
        pump = s.connect()
        pump.serverIO.loseConnection()
        pump.flush()
        while s.answer({"svc": {"k": "1"}}):
            pass
        s.reactor.advance(CHECK_RETRY_DELAY)
    assert tries == STALE_RETRIES + 1
    assert failed[0].value.reason == "duplicate service name"
