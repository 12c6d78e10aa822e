"""
The client side of a Styx (9P2000) connection: L{StyxClientProtocol}
negotiates the version, attaches, and runs requests, each with its own tag
and timeout, over one connection; L{StyxClientFactory} keeps that
connection open with L{ReconnectingClientFactory}'s backoff.

It knows nothing of the registry's files: see
L{txinferno.client.styxconnection} for the connection plugin built on it.
"""

import re
import struct
from collections import deque

from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol, ReconnectingClientFactory
from twisted.logger import Logger
from twisted.python.failure import Failure

from txinferno._keepalive import enableKeepAlive
from txinferno.client._reconnect import EndpointConnector
from txinferno.errors import (
    AuthenticationRequired,
    MalformedAnswer,
    MalformedMessage,
    RegistryError,
    RegistryTimeout,
)
from txinferno.wire.styx import (
    IOHDRSZ,
    MAXWELEM,
    NOFID,
    NOTAG,
    VERSION,
    FrameSplitter,
    Qid,
    Rerror,
    Ropen,
    Rwalk,
    Rwrite,
    Tattach,
    Tclunk,
    Tflush,
    Topen,
    Tread,
    Tremove,
    Tstat,
    Tversion,
    Twalk,
    Twrite,
    decode,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_OUTSTANDING",
    "DEFAULT_REQUEST_TIMEOUT",
    "MIN_MESSAGE_SIZE",
    "StyxClientProtocol",
    "StyxClientFactory",
]

DEFAULT_MAX_MESSAGE_SIZE = 8216
"""
The message size proposed in Tversion, as Inferno's own C{mount} proposes
it: reads and writes of up to 8192 bytes.
"""

MIN_MESSAGE_SIZE = 256
"""
The smallest message size accepted, proposed or answered.
"""

DEFAULT_MAX_OUTSTANDING = 4096
"""
Requests sent and not yet answered, at most, on one connection; more wait
their turn in order.
"""

DEFAULT_REQUEST_TIMEOUT = 10.0
"""
Seconds the server has to answer the handshake and each request (event
reads excepted), and to answer the Tflush of one given up.
"""

_AUTH_HEADER = re.compile(rb"(?:[0-9]{4}|![0-9]{3})\n")
"""
The header of a message of Inferno's authentication protocol (keyring's
C{sendmsg}): four decimal digits and a newline, or C{!} and three digits
and a newline for an error.
"""

_AUTH_PROBE = b"0000\n"
"""
As many bytes as the header of L{_AUTH_HEADER}: the first bytes received
are held until there are this many (fewer than any Rversion).
"""

_AUTH_ADVICE = (
    "export the registry with listen -A (no authentication), such as "
    "listen -A 'tcp!*!registry' {export /mnt/registry&}, or reach it through TLS"
)


def _ignore(result):
    return None


def _data(answer):
    return answer.data


def _count(answer):
    return answer.count


class _Request:
    """
    One request of a L{StyxClientProtocol}: its message's class and fields,
    its tag once it has one, and whom to tell of its answer.

    @ivar answered: called once with the answer (an R-message) or a
        L{Failure} (the server's error, a timeout, the connection's loss),
        unless the caller gave the request up; L{None} once called or
        given up.
    @ivar deadline: when it times out, or L{None} for never.
    @ivar flushed: whether it was given up once sent: its answer, if one
        still comes, is dropped.
    @ivar onAnswer: called once its tag is free again (the server answered
        it or its Tflush, or the connection is lost), even if the caller
        gave it up, or L{None}.
    """

    __slots__ = ("cls", "fields", "answered", "tag", "deadline", "flushed", "onAnswer")

    def __init__(self, cls, fields, answered, onAnswer):
        self.cls = cls
        self.fields = fields
        self.answered = answered
        self.tag = None
        self.deadline = None
        self.flushed = False
        self.onAnswer = onAnswer


_WALK = struct.Struct("<IBHIIH").pack
_FID = struct.Struct("<IBHI").pack
_OPEN = struct.Struct("<IBHIB").pack
_IO = struct.Struct("<IBHIQI").pack
_FLUSH = struct.Struct("<IBHH").pack
_NAME = struct.Struct("<H").pack
_HEADER = struct.Struct("<IBH").unpack_from
_RERROR = Rerror.TYPE
_QID = struct.Struct("<BIQ").unpack_from
_U16 = struct.Struct("<H").unpack_from
_U32 = struct.Struct("<I").unpack_from


def _encodeWalk(tag, fid, newfid, names):
    if len(names) > MAXWELEM:
        raise ValueError("Twalk of %d names: at most %d" % (len(names), MAXWELEM))
    body = b"".join(
        [_NAME(len(raw)) + raw for raw in [n.encode("utf-8", "surrogateescape") for n in names]]
    )
    return _WALK(17 + len(body), Twalk.TYPE, tag, fid, newfid, len(names)) + body


def _encodeWrite(tag, fid, offset, data):
    return _IO(23 + len(data), Twrite.TYPE, tag, fid, offset, len(data)) + data


_ENCODERS = {
    Twalk: _encodeWalk,
    Topen: lambda tag, fid, mode: _OPEN(12, Topen.TYPE, tag, fid, mode),
    Twrite: _encodeWrite,
    Tread: lambda tag, fid, offset, count: _IO(23, Tread.TYPE, tag, fid, offset, count),
    Tclunk: lambda tag, fid: _FID(11, Tclunk.TYPE, tag, fid),
    Tremove: lambda tag, fid: _FID(11, Tremove.TYPE, tag, fid),
    Tstat: lambda tag, fid: _FID(11, Tstat.TYPE, tag, fid),
    Tflush: lambda tag, oldtag: _FLUSH(9, Tflush.TYPE, tag, oldtag),
}
"""
The encoders of the messages a client sends most, from precompiled
structs: the bytes of the codec's C{encode()}, without making a message
first (they raise L{struct.error} for a field out of range).  Others are
encoded by the codec.
"""


def _decodeRwalk(tag, frame):
    if len(frame) < 9:
        raise MalformedMessage("Styx message shorter than its fields")
    (count,) = _U16(frame, 7)
    if count > MAXWELEM:
        raise MalformedMessage("Rwalk of %d qids: at most %d" % (count, MAXWELEM))
    if len(frame) != 9 + 13 * count:
        raise MalformedMessage("Rwalk of %d qids in %d bytes" % (count, len(frame)))
    return Rwalk(tag, tuple([Qid._make(_QID(frame, 9 + 13 * i)) for i in range(count)]))


def _decodeRopen(tag, frame):
    if len(frame) != 24:
        raise MalformedMessage("Ropen of %d bytes: it has 24" % (len(frame),))
    return Ropen(tag, Qid._make(_QID(frame, 7)), _U32(frame, 20)[0])


def _decodeRwrite(tag, frame):
    if len(frame) != 11:
        raise MalformedMessage("Rwrite of %d bytes: it has 11" % (len(frame),))
    return Rwrite(tag, _U32(frame, 7)[0])


_DECODERS = {Rwalk.TYPE: _decodeRwalk, Ropen.TYPE: _decodeRopen, Rwrite.TYPE: _decodeRwrite}
"""
The decoders of the answers a client gets most, from precompiled structs:
the messages, and the L{MalformedMessage} errors, of the codec's
C{decode()}, in fewer steps.  Others are decoded by the codec.
"""


class StyxClientProtocol(Protocol):
    """
    One Styx connection, from the client's side.

    On connection it sends C{Tversion} (proposing L{maxMessageSize}) and
    C{Tattach} of L{rootFid} as C{user}; L{ready} fires once attached.
    Then L{request} sends any T-message with a free tag and gives its
    answer.

    A server that speaks Inferno's authentication protocol instead of
    Styx (C{listen} without C{-A}) fails L{ready} with
    L{AuthenticationRequired}; any other bytes that are not Styx, a
    message over the negotiated size, or an answer to no request abort the
    connection with L{MalformedAnswer}.  Every request still outstanding
    fails with the reason the connection was lost.

    @ivar state: C{"connecting"}, C{"versioning"}, C{"attaching"},
        C{"ready"} or C{"closed"}.
    @ivar ready: fires with this protocol once attached, or fails with why
        the handshake failed.
    @type ready: L{Deferred}
    @ivar msize: the negotiated message size (L{maxMessageSize} until
        then).
    @ivar rootFid: the fid of the attach: the root of the file tree.
    """

    _log = Logger()

    rootFid = 0

    def __init__(
        self,
        user,
        clock,
        maxMessageSize=DEFAULT_MAX_MESSAGE_SIZE,
        timeout=DEFAULT_REQUEST_TIMEOUT,
        maxOutstanding=DEFAULT_MAX_OUTSTANDING,
    ):
        """
        @param user: the attach name.
        @type user: L{str}
        @param clock: times the handshake and the requests.
        @type clock: L{IReactorTime}
        @param maxMessageSize: the largest message, in bytes, proposed and
            accepted.
        @param timeout: seconds the server has to answer the handshake and
            each request (see L{request}).
        @param maxOutstanding: the most requests sent and not yet answered
            (at most 65535, the tags there are besides C{NOTAG}).
        @raise ValueError: for a message size under L{MIN_MESSAGE_SIZE}, or
            a bad number of outstanding requests.
        """
        if maxMessageSize < MIN_MESSAGE_SIZE:
            raise ValueError(
                "maximum message size %d is under the minimum of %d"
                % (maxMessageSize, MIN_MESSAGE_SIZE)
            )
        if not 0 < maxOutstanding <= NOTAG:
            raise ValueError("maxOutstanding must be from 1 to %d" % (NOTAG,))
        self.user = user
        self.clock = clock
        self.maxMessageSize = self.msize = maxMessageSize
        self.timeout = timeout
        self.state = "connecting"
        self.ready = defer.Deferred()
        self._splitter = FrameSplitter(maxMessageSize)
        self._error = None
        self._head = b""
        self._handshakeTimer = None
        self._maxOutstanding = maxOutstanding
        self._outstanding = {}
        self._freeTags = []
        self._nextTag = 0
        self._waiting = deque()
        self._deadlines = deque()
        self._deadlineTimer = None
        self._receiving = False
        self._outgoing = []
        self._flushCall = None
        self._freeFids = []
        self._nextFid = self.rootFid + 1

    def __repr__(self):
        return "<StyxClientProtocol %s, %d outstanding>" % (self.state, len(self._outstanding))

    @property
    def maxIO(self):
        """
        The most bytes one read or write can carry: the negotiated message
        size less the header of a Twrite (L{IOHDRSZ}).
        """
        return self.msize - IOHDRSZ

    # The handshake.

    def connectionMade(self):
        enableKeepAlive(self.transport)
        self.state = "versioning"
        self._handshakeTimer = self.clock.callLater(self.timeout, self._handshakeTimedOut)
        self.transport.write(Tversion(NOTAG, self.maxMessageSize, VERSION).encode())

    def _handshakeTimedOut(self):
        self._handshakeTimer = None
        self.abort(
            RegistryTimeout(
                "the Styx server did not answer %s within %g s (a server that "
                "waits for Inferno's authentication protocol does not answer: "
                "%s)"
                % (
                    "Tversion" if self.state == "versioning" else "Tattach",
                    self.timeout,
                    _AUTH_ADVICE,
                )
            )
        )

    def _versioned(self, message):
        if isinstance(message, Rerror):
            self.abort(MalformedAnswer("the Styx server refused Tversion: %s" % (message.ename,)))
            return
        if getattr(message, "version", None) != VERSION or message.tag != NOTAG:
            self.abort(MalformedAnswer("the server answered Tversion with %r" % (message,)))
            return
        if not MIN_MESSAGE_SIZE <= message.msize <= self.maxMessageSize:
            self.abort(
                MalformedAnswer(
                    "the Styx server answered Tversion with message size %d: "
                    "it must be from %d to the %d proposed"
                    % (message.msize, MIN_MESSAGE_SIZE, self.maxMessageSize)
                )
            )
            return
        self.msize = self._splitter.maximum = message.msize
        self.state = "attaching"
        self.request(Tattach, self.rootFid, NOFID, self.user, "", timeout=None).addCallbacks(
            self._attached, self._attachFailed
        )

    def _attached(self, message):
        if self.state != "attaching":
            return
        self._cancelHandshakeTimer()
        self.state = "ready"
        self.ready.callback(self)

    def _attachFailed(self, reason):
        if self.state == "attaching":
            self.abort(
                MalformedAnswer("the Styx server refused Tattach: %s" % (reason.getErrorMessage(),))
            )

    def _cancelHandshakeTimer(self):
        if self._handshakeTimer is not None:
            self._handshakeTimer.cancel()
            self._handshakeTimer = None

    # Bytes in.

    def dataReceived(self, data):
        if self._error is not None:
            return
        if self._head is not None:
            # The first bytes: Styx, or Inferno's authentication protocol?
            data = self._head + data
            if len(data) < len(_AUTH_PROBE):
                self._head = data
                return
            self._head = None
            if _AUTH_HEADER.match(data):
                self.abort(
                    AuthenticationRequired(
                        "the server began Inferno's authentication protocol instead of "
                        "Styx (it sent %r): %s" % (data[:40], _AUTH_ADVICE)
                    )
                )
                return
        # What the answers make us send goes out in one write at the end.
        self._receiving = True
        try:
            for frame in self._splitter.feed(data):
                if self.state == "versioning":
                    self._versioned(decode(frame))
                else:
                    self._answered(frame)
                if self._error is not None:
                    return
        except MalformedMessage as e:
            what = (
                "bytes that are not Styx" if self.state == "versioning" else "a malformed message"
            )
            self.abort(MalformedAnswer("the server sent %s: %s" % (what, e)))
        finally:
            self._receiving = False
            self.flush()

    def _answered(self, frame):
        _, kind, tag = _HEADER(frame)
        request = self._outstanding.get(tag)
        if request is None:
            self.abort(
                MalformedAnswer(
                    "the server answered tag %d, which has no request: %r" % (tag, decode(frame))
                )
            )
            return
        cls = request.cls
        if kind != cls.TYPE + 1 and kind != _RERROR:
            self.abort(
                MalformedAnswer("the server answered %s with %r" % (cls.__name__, decode(frame)))
            )
            return
        decoder = _DECODERS.get(kind)
        message = decode(frame) if decoder is None else decoder(tag, frame)
        del self._outstanding[tag]
        self._freeTags.append(tag)
        if self._waiting:
            self._sendWaiting()
        if request.onAnswer is not None:
            request.onAnswer()
        answered = request.answered
        if answered is None:
            return
        request.answered = None
        deadlines = self._deadlines
        while deadlines and deadlines[0].answered is None:
            deadlines.popleft()
        if kind == _RERROR:
            message = Failure(RegistryError(message.ename))
        if cls is Twalk:
            message = self._walked(request, message)
        answered(message)

    def _walked(self, request, result):
        """
        A walk was answered: one that failed, or stopped part way (the
        new fid then does not exist), frees its new fid.
        """
        _, newfid, names = request.fields
        if isinstance(result, Failure) or len(result.qids) != len(names):
            if newfid != request.fields[0]:
                self._freeFid(newfid)
            if not isinstance(result, Failure):
                result = Failure(RegistryError("file does not exist"))
        return result

    # Requests.

    def call(self, cls, fields, answered, timeout=0, onAnswer=None):
        """
        Send one T-message, and call C{answered} with its answer: the
        lighter form of L{request}, without a L{Deferred}.

        @param cls: its class, such as L{Twalk}.
        @param fields: its fields after the tag, a tuple.
        @param answered: called once with the answer (an R-message, or for
            a Twalk one that walked every name), or a L{Failure} of
            L{RegistryError} (the server's error text; C{file does not
            exist} for a walk that stopped part way), L{RegistryTimeout}
            or the reason the connection was lost (at once if it is); never
            once the request is given up with L{giveUp}.
        @param timeout: C{0}, by default, for L{timeout}; L{None} for no
            limit (an event read).
        @param onAnswer: see L{request}.
        @return: the request, for L{giveUp}.
        """
        request = _Request(cls, fields, answered, onAnswer)
        if self._error is not None or self.state == "closed":
            self._ended(request)
            request.answered = None
            answered(self.lostReason or Failure(ConnectionDone("the Styx connection is closed")))
            return request
        if len(self._outstanding) < self._maxOutstanding:
            self._send(request)
        else:
            self._waiting.append(request)
        if timeout is not None:
            # Every request with the timeout has its deadline in one queue,
            # in order, and one timer waits for the first.
            request.deadline = self.clock.seconds() + self.timeout
            self._deadlines.append(request)
            if self._deadlineTimer is None:
                self._deadlineTimer = self.clock.callLater(self.timeout, self._expire)
        return request

    def request(self, cls, *fields, timeout=0, onAnswer=None):
        """
        Send one T-message.

        @param cls: its class, such as L{Twalk}.
        @param fields: its fields after the tag.
        @param timeout: seconds the server has to answer; by default
            L{timeout}; L{None} for no limit (an event read).
        @param onAnswer: called once the server has answered (an Rerror or
            Rflush included) or the connection is lost, even if the caller
            gave up: how a fid is known to be free.
        @return: a L{Deferred} that fires with the answer, or fails with
            L{RegistryError} (the server's error text) for an Rerror,
            L{RegistryTimeout}, or the reason the connection was lost.
            Cancelling it (or its timeout) sends a Tflush of it; its tag is
            reused once the server has answered the Tflush.
        """
        d = defer.Deferred(self._cancelled)
        # Deferred.callback runs the errbacks for a Failure.
        d._styxRequest = self.call(
            cls, fields, d.callback, timeout=None if timeout != 0 else 0, onAnswer=onAnswer
        )
        if timeout:
            d.addTimeout(timeout, self.clock, onTimeoutCancel=self._timedOut(cls, timeout))
        return d

    def _cancelled(self, d):
        self.giveUp(d._styxRequest)

    def _expire(self):
        """
        Give up the requests whose deadline has passed, failing them with
        L{RegistryTimeout}, and wait for the next deadline.
        """
        self._deadlineTimer = None
        now = self.clock.seconds()
        deadlines = self._deadlines
        while deadlines:
            request = deadlines[0]
            if request.answered is not None and request.deadline > now:
                self._deadlineTimer = self.clock.callLater(request.deadline - now, self._expire)
                break
            deadlines.popleft()
            answered = request.answered
            if answered is not None:
                self.giveUp(request)
                answered(self._timedOut(request.cls, self.timeout)(None, None))

    lostReason = None
    """
    Why the connection was lost (a L{Failure}), once it is.
    """

    @staticmethod
    def _timedOut(cls, timeout):
        def timedOut(result, _):
            return Failure(
                RegistryTimeout(
                    "the Styx server did not answer %s within %g s" % (cls.__name__, timeout)
                )
            )

        return timedOut

    def _send(self, request):
        freeTags = self._freeTags
        if freeTags:
            tag = freeTags.pop()
        else:
            tag = self._nextTag
            self._nextTag = tag + 1
        encoder = _ENCODERS.get(request.cls)
        try:
            if encoder is None:
                frame = request.cls(tag, *request.fields).encode()
            else:
                frame = encoder(tag, *request.fields)
        except struct.error as e:
            freeTags.append(tag)
            raise ValueError("Styx field out of range: %s (%r)" % (e, request.fields)) from None
        except BaseException:
            freeTags.append(tag)
            raise
        request.tag = tag
        self._outstanding[tag] = request
        self._outgoing.append(frame)
        if not self._receiving and self._flushCall is None:
            self._flushCall = self.clock.callLater(0, self.flush)

    def flush(self):
        """
        Write the requests sent since the last flush, in one write: done at
        the end of each read from the server, and on the next turn of the
        clock after requests made meanwhile, so that a burst of requests
        costs one write rather than one each.
        """
        if self._flushCall is not None:
            if self._flushCall.active():
                self._flushCall.cancel()
            self._flushCall = None
        outgoing = self._outgoing
        if outgoing:
            self._outgoing = []
            if self._error is None and self.state != "closed":
                self.transport.write(b"".join(outgoing))

    def _freeTag(self, tag):
        self._freeTags.append(tag)
        self._sendWaiting()

    def _sendWaiting(self):
        """
        Send the requests waiting for a tag, in order, while there are
        tags; one that cannot be encoded fails with the L{ValueError}.
        """
        waiting = self._waiting
        while waiting and len(self._outstanding) < self._maxOutstanding:
            request = waiting.popleft()
            try:
                self._send(request)
            except ValueError:
                answered, request.answered = request.answered, None
                self._ended(request)
                answered(Failure())

    def giveUp(self, request):
        """
        Give up a request made with L{call}: its C{answered} is not called.
        One not sent yet is never sent; one sent is flushed (a Tflush of
        its tag, which is reused once the server has answered that).  A
        walk given up may yet be made: its new fid is clunked, and not used
        again on this connection.  A Tflush itself given up means the
        server answers nothing: the connection is dropped.
        """
        if request.answered is None:
            return
        request.answered = None
        if request.tag is None:
            self._waiting.remove(request)
            self._ended(request)
            return
        request.flushed = True
        if request.cls is Tflush:
            self.abort(
                RegistryTimeout(
                    "the Styx server answered neither a request nor its Tflush "
                    "within %g s" % (self.timeout,)
                )
            )
            return
        if self._error is not None or self.state == "closed":
            return
        self.call(Tflush, (request.tag,), _ignore, onAnswer=lambda: self._flushed(request))
        if request.cls is Twalk and request.fields[1] != request.fields[0]:
            self.call(Tclunk, (request.fields[1],), _ignore, timeout=None)

    def _flushed(self, request):
        """
        The server answered the Tflush of C{request}: if it did not answer
        the request itself first, it never will, and its tag is free.
        """
        if self._outstanding.get(request.tag) is request:
            del self._outstanding[request.tag]
            self._freeTag(request.tag)
            self._ended(request)

    @staticmethod
    def _ended(request):
        if request.onAnswer is not None:
            request.onAnswer()

    # Fids and the file operations.

    def allocateFid(self):
        """
        @return: a fid not in use on this connection; L{clunk} or
            L{remove} frees it (as does a walk to it that fails).
        """
        if self._freeFids:
            return self._freeFids.pop()
        fid = self._nextFid
        self._nextFid += 1
        return fid

    def _freeFid(self, fid):
        self._freeFids.append(fid)

    def walk(self, fid, newfid, names):
        """
        Walk C{newfid} from C{fid} through C{names}.

        @return: a L{Deferred} that fires with the L{Rwalk} once every name
            was walked, or fails with L{RegistryError} (C{file does not
            exist} for a walk that stopped part way, when C{newfid} does
            not exist).  C{newfid} is freed if the walk fails; one given up
            is clunked (the server may yet make the walk) and not used
            again on this connection.
        """
        return self.request(Twalk, fid, newfid, tuple(names))

    def open(self, fid, mode):
        """
        @return: a L{Deferred} that fires with the L{Ropen}.
        """
        return self.request(Topen, fid, mode)

    def read(self, fid, offset, count, timeout=0):
        """
        Read at most C{count} bytes, and no more than L{maxIO}.

        @param timeout: see L{request}.
        @return: a L{Deferred} that fires with the L{bytes} read (empty at
            the end).
        """
        return self.request(
            Tread, fid, offset, min(count, self.maxIO), timeout=timeout
        ).addCallback(_data)

    def write(self, fid, offset, data):
        """
        Write C{data} in one Twrite.

        @raise ValueError: when C{data} is longer than L{maxIO}: the
            registry reads each Twrite as a whole, so a write is never cut
            into several.
        @return: a L{Deferred} that fires with the count written.
        """
        if len(data) > self.maxIO:
            raise ValueError(
                "a write of %d bytes is over the %d a message of the negotiated "
                "size %d can carry" % (len(data), self.maxIO, self.msize)
            )
        return self.request(Twrite, fid, offset, data).addCallback(_count)

    def clunk(self, fid):
        """
        Clunk C{fid}; it is free once the server has answered.  A clunk has
        no timeout: until it is answered the fid cannot be used again.

        @return: a L{Deferred} that fires with the L{Rclunk}.
        """
        return self.request(Tclunk, fid, timeout=None, onAnswer=lambda: self._freeFid(fid))

    def remove(self, fid):
        """
        Remove the file of C{fid}; the fid is gone (and free) whatever the
        answer.

        @return: a L{Deferred} that fires with the L{Rremove}.
        """
        return self.request(Tremove, fid, timeout=None, onAnswer=lambda: self._freeFid(fid))

    @property
    def usable(self) -> bool:
        """
        Whether requests sent now can be answered: the handshake is done,
        and the connection is neither lost nor being dropped (by L{abort}).
        """
        return self.state == "ready" and self._error is None

    # The end.

    def abort(self, error):
        """
        Abort the connection; C{error} is the reason given for its loss.
        """
        if self._error is None:
            self._log.warn("dropping the Styx connection: {error}", error=error)
            self._error = error
            self.transport.abortConnection()

    def connectionLost(self, reason):
        self._cancelHandshakeTimer()
        if self._flushCall is not None:
            self._flushCall.cancel()
            self._flushCall = None
        self._outgoing = []
        if self._deadlineTimer is not None:
            self._deadlineTimer.cancel()
            self._deadlineTimer = None
        self._deadlines.clear()
        wasState, self.state = self.state, "closed"
        if self._error is not None:
            reason = Failure(self._error)
        elif wasState == "versioning":
            reason = Failure(
                AuthenticationRequired(
                    "the server closed the connection without answering Tversion "
                    "(%s): if it is Inferno's listen without -A, which expects its "
                    "authentication protocol first, %s" % (reason.getErrorMessage(), _AUTH_ADVICE)
                )
            )
        self.lostReason = reason
        outstanding = list(self._outstanding.values()) + list(self._waiting)
        self._outstanding.clear()
        self._waiting.clear()
        for request in outstanding:
            self._ended(request)
            answered, request.answered = request.answered, None
            if answered is not None:
                answered(reason)
        if not self.ready.called:
            self.ready.errback(reason)


class StyxClientFactory(ReconnectingClientFactory):
    """
    Keeps one Styx connection open, reconnecting with exponential backoff
    and jitter until told to L{stop}, and tells its observer.

    The observer has three methods: C{connectionReady(protocol)} once a
    connection is attached; C{connectionFailed(reason)} when an attempt
    fails (no connection, or a handshake that failed: the backoff goes on);
    C{connectionLost(reason)} when a ready connection is lost.

    @ivar protocol: the ready L{StyxClientProtocol}, or L{None}.
    """

    _log = Logger()
    noisy = False

    protocol = None

    def __init__(
        self,
        endpoint,
        user,
        observer,
        clock,
        initialDelay,
        maxDelay,
        maxMessageSize=DEFAULT_MAX_MESSAGE_SIZE,
        timeout=DEFAULT_REQUEST_TIMEOUT,
    ):
        """
        @param endpoint: the Styx server.
        @type endpoint: L{IStreamClientEndpoint}
        @param user: the attach name.
        @param observer: told of each connection's start and end.
        @param clock: times reconnections, handshakes and requests.
        @param initialDelay: seconds before the first reconnection.
        @param maxDelay: the longest wait between attempts.
        @param maxMessageSize: see L{StyxClientProtocol}.
        @param timeout: see L{StyxClientProtocol}.
        """
        self.user = user
        self.observer = observer
        self.clock = clock
        self.initialDelay = self.delay = initialDelay
        self.maxDelay = maxDelay
        self.maxMessageSize = maxMessageSize
        self.timeout = timeout
        self._building = None
        self._stopped = []
        self._connector = EndpointConnector(endpoint, self)

    def start(self):
        """
        Connect, and keep connecting until L{stop}.
        """
        self.continueTrying = True
        self._connector.connect()

    def buildProtocol(self, addr):
        protocol = self._building = StyxClientProtocol(
            self.user, self.clock, self.maxMessageSize, self.timeout
        )
        protocol.factory = self
        protocol.ready.addCallbacks(self._ready, lambda _: None)
        return protocol

    def _ready(self, protocol):
        if not self.continueTrying:
            protocol.flush()
            protocol.transport.loseConnection()
            return
        self.resetDelay()
        self.protocol = protocol
        self.observer.connectionReady(protocol)

    def clientConnectionFailed(self, connector, reason):
        if self.continueTrying:
            self._log.info("cannot reach the Styx server: {reason}", reason=reason.value)
            self.observer.connectionFailed(reason)
        ReconnectingClientFactory.clientConnectionFailed(self, connector, reason)

    def clientConnectionLost(self, connector, reason):
        protocol, self._building = self._building, None
        if protocol is not None and protocol.lostReason is not None:
            reason = protocol.lostReason
        if protocol is not None and protocol is self.protocol:
            self.protocol = None
            self._log.info("Styx connection lost: {reason}", reason=reason.value)
            self.observer.connectionLost(reason)
        elif self.continueTrying:
            self._log.warn("Styx connection failed: {reason}", reason=reason.value)
            self.observer.connectionFailed(reason)
        stopped, self._stopped = self._stopped, []
        for d in stopped:
            d.callback(None)
        ReconnectingClientFactory.clientConnectionLost(self, connector, reason)

    def stop(self):
        """
        Close the connection and stop reconnecting.

        @return: a L{Deferred} that fires with L{None} once the connection
            is closed (at once if there is none).
        """
        self.stopTrying()
        if self._connector.state == "connecting":
            self._connector.stopConnecting()
        building = self._building
        if building is None or building.transport is None or building.state == "closed":
            return defer.succeed(None)
        d = defer.Deferred()
        self._stopped.append(d)
        building.flush()
        building.transport.loseConnection()
        return d
