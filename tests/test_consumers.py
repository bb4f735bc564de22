"""The pages' consumer: what it writes to the request, and when."""

from __future__ import annotations

import select
import socket
import struct
import time
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from twisted.web.server import Request as WebRequest
from twisted.web.test.requesthelper import DummyRequest

from buildbot_logfile._consumers import RequestConsumer, TextRequestConsumer
from buildbot_logfile.logfile import HEADER, STDERR, STDOUT
from tests.masters import poll

INTERVAL = RequestConsumer.WRITE_INTERVAL


def text_consumer() -> tuple[Clock, DummyRequest, TextRequestConsumer]:
    clock = Clock()
    request = DummyRequest([b""])
    return clock, request, TextRequestConsumer(request, clock)


def test_writes_that_follow_closely_go_out_together_after_the_interval() -> None:
    clock, request, consumer = text_consumer()
    consumer.writeChunk((STDOUT, "a"))
    assert request.written == [b"a"]  # the first write, at once
    consumer.writeChunk((STDERR, "b"))
    consumer.writeChunk((HEADER, "not on the text page"))
    consumer.write_encoded(STDOUT, b"c")
    clock.advance(INTERVAL / 2)
    assert request.written == [b"a"]
    clock.advance(INTERVAL / 2)
    assert request.written == [b"a", b"bc"]
    assert clock.getDelayedCalls() == []
    clock.advance(INTERVAL)
    consumer.writeChunk((STDOUT, "d"))  # after a quiet interval: at once
    assert request.written == [b"a", b"bc", b"d"]


def test_a_bundle_of_write_bytes_goes_out_at_once() -> None:
    clock, request, consumer = text_consumer()
    consumer.writeChunk((STDOUT, "a"))
    consumer.writeChunk((STDOUT, "b"))
    consumer.write_encoded(STDOUT, b"c" * RequestConsumer.WRITE_BYTES)
    assert request.written == [b"a", b"b" + b"c" * RequestConsumer.WRITE_BYTES]
    assert clock.getDelayedCalls() == []


def test_finish_and_unregister_write_the_bundle_first() -> None:
    clock = Clock()
    request = DummyRequest([b""])
    html = RequestConsumer(request, lambda channel, text: text.encode(), b"</pre>", clock)
    html.writeChunk((STDOUT, "a"))
    html.writeChunk((STDOUT, "b"))
    html.unregisterProducer()
    assert request.written == [b"a", b"b"]
    html.writeChunk((STDOUT, "c"))
    html.finish()
    assert request.written == [b"a", b"b", b"c", b"</pre>"]
    assert html.done.called
    assert clock.getDelayedCalls() == []


def test_a_client_that_goes_away_gets_nothing_more() -> None:
    clock, request, consumer = text_consumer()
    consumer.writeChunk((STDOUT, "a"))
    consumer.writeChunk((STDOUT, "b"))
    consumer.done.cancel()
    clock.advance(INTERVAL)
    assert request.written == [b"a"]
    assert clock.getDelayedCalls() == []


def test_the_consumers_of_a_clock_hold_back_their_writes_on_one_timer() -> None:
    # A thousand clients of one log make one timer a chunk, not a thousand.
    clock = Clock()
    requests = [DummyRequest([b""]) for _ in range(3)]
    consumers = [TextRequestConsumer(request, clock) for request in requests]
    for consumer in consumers:
        consumer.writeChunk((STDOUT, "a"))
        consumer.writeChunk((STDOUT, "b"))
    assert len(clock.getDelayedCalls()) == 1
    consumers[0].writeChunk((STDOUT, "c"))
    consumers[1].done.cancel()  # gone: it leaves the others' timer running
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(INTERVAL)
    assert [r.written for r in requests] == [[b"a", b"bc"], [b"a"], [b"a", b"b"]]
    assert clock.getDelayedCalls() == []
    clock.advance(INTERVAL)
    consumers[2].writeChunk((STDOUT, "d"))  # a quiet interval later: at once
    consumers[2].writeChunk((STDOUT, "e"))
    consumers[2].finish()  # its bundle goes out, and the timer with it
    assert requests[2].written == [b"a", b"b", b"d", b"e"]
    assert clock.getDelayedCalls() == []


class TickTests(unittest.TestCase):
    def test_a_page_that_fails_at_the_tick_leaves_the_others_theirs(self) -> None:
        clock = Clock()

        class Failing(DummyRequest):
            def write(self, data: bytes) -> None:
                if self.written:
                    raise RuntimeError("the request is gone")
                super().write(data)

        requests = [DummyRequest([b""]), Failing([b""]), DummyRequest([b""])]
        consumers = [TextRequestConsumer(request, clock) for request in requests]
        for consumer in consumers:
            consumer.writeChunk((STDOUT, "a"))
            consumer.writeChunk((STDOUT, "b"))
        clock.advance(INTERVAL)
        self.assertEqual([r.written for r in requests], [[b"a", b"b"], [b"a"], [b"a", b"b"]])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(clock.getDelayedCalls(), [])


class Gate:
    """A gate whose answers the test gives: L{holds} as set, each recheck when told."""

    def __init__(self) -> None:
        self.open = True
        self.asked: list[defer.Deferred[bool]] = []

    def holds(self) -> bool:
        return self.open

    def recheck(self) -> defer.Deferred[bool]:
        self.asked.append(defer.Deferred())
        return self.asked[-1]


class Request(DummyRequest):
    """
    A request that says whether it has started its answer, can be dropped,
    and keeps the producer registered with it (the test pauses it).
    """

    lost = False
    producer: Any = None

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    @property
    def startedWriting(self) -> bool:
        return bool(self.written)

    def loseConnection(self) -> None:
        self.lost = True


class Producer:
    paused = stopped = False

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        self.stopped = True


def gated_consumer() -> tuple[Clock, Request, TextRequestConsumer, Gate]:
    clock, request = Clock(), Request([b""])
    consumer = TextRequestConsumer(request, clock)
    consumer.gate = gate = Gate()
    return clock, request, consumer, gate


def test_while_the_gate_is_asked_again_writes_and_the_end_wait_then_go_in_order() -> None:
    clock, request, consumer, gate = gated_consumer()
    consumer.writeChunk((STDOUT, "a"))
    gate.open = False
    consumer.writeChunk((STDOUT, "b"))
    consumer.writeChunk((STDOUT, "c"))
    consumer.finish()
    clock.advance(INTERVAL)
    assert (request.written, len(gate.asked), consumer.done.called) == ([b"a"], 1, False)
    gate.open = True
    gate.asked[0].callback(True)
    assert request.written == [b"a", b"bc"]
    assert consumer.done.called
    assert clock.getDelayedCalls() == []


def test_a_page_the_gate_shuts_after_its_first_byte_is_cut_off() -> None:
    clock, request, consumer, gate = gated_consumer()
    producer = Producer()
    consumer.registerProducer(producer, True)  # type: ignore[arg-type]
    consumer.writeChunk((STDOUT, "a"))
    gate.open = False
    consumer.writeChunk((STDOUT, "b"))
    gate.asked[0].callback(False)
    consumer.writeChunk((STDOUT, "c"))  # a producer's last word: goes nowhere
    clock.advance(INTERVAL)
    assert (request.written, request.lost, producer.stopped) == ([b"a"], True, True)
    assert request.producer is None
    assert not request.finished  # an unfinished answer, as the client sees it


def test_a_page_the_gate_shuts_before_its_first_byte_answers_403() -> None:
    clock, request, consumer, gate = gated_consumer()
    gate.open = False
    consumer.writeChunk((STDOUT, "a"))
    gate.asked[0].callback(False)
    assert (request.responseCode, request.written) == (403, [b"You may not view this.\n"])
    assert request.responseHeaders.getRawHeaders(b"cache-control") == [b"no-store"]
    assert request.finished
    assert consumer.done.called
    assert clock.getDelayedCalls() == []


def test_a_client_gone_while_the_gate_is_asked_gets_nothing() -> None:
    clock, request, consumer, gate = gated_consumer()
    gate.open = False
    consumer.writeChunk((STDOUT, "a"))
    consumer.done.cancel()
    gate.asked[0].callback(True)
    assert request.written == []
    assert clock.getDelayedCalls() == []


def test_the_producer_waits_while_the_gate_is_asked_and_for_the_request_after() -> None:
    # What it would produce meanwhile would pile up in the bundle.
    _, request, consumer, gate = gated_consumer()
    producer = Producer()
    consumer.registerProducer(producer, True)  # type: ignore[arg-type]
    assert request.producer is consumer  # the request pauses it through the consumer
    gate.open = False
    consumer.writeChunk((STDOUT, "a"))
    assert producer.paused
    request.producer.resumeProducing()  # the transport has room: not yet
    assert producer.paused
    request.producer.pauseProducing()  # and now it has none
    gate.open = True
    gate.asked[0].callback(True)
    assert (request.written, producer.paused) == ([b"a"], True)
    request.producer.resumeProducing()
    assert not producer.paused


def test_rules_that_change_again_while_asked_are_asked_too() -> None:
    _, request, consumer, gate = gated_consumer()
    producer = Producer()
    consumer.registerProducer(producer, True)  # type: ignore[arg-type]
    gate.open = False
    consumer.writeChunk((STDOUT, "a"))
    gate.asked[0].callback(True)  # the rules asked allow it; newer ones came meanwhile
    assert (request.written, len(gate.asked), producer.paused) == ([], 2, True)
    gate.open = True
    gate.asked[1].callback(True)
    assert (request.written, producer.paused) == ([b"a"], False)


class SentAtOnceTests(unittest.TestCase):
    """
    Over a real connection: what a consumer writes to a client that keeps
    up is in the client's socket before the reactor turns again, not left
    in the transport for the reactor's next poll (see issue 13's fan-out).
    """

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.clock = Clock()
        self.consumers: list[TextRequestConsumer] = []
        self.ended: list[Any] = []
        page = Resource()
        page.isLeaf = True
        page.render_GET = self.render  # type: ignore[method-assign]
        port = reactor.listenTCP(0, Site(page), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.client = socket.create_connection(("127.0.0.1", port.getHost().port))
        self.addCleanup(self.close)
        self.client.setblocking(False)
        self.client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.received = b""
        yield poll(lambda: self.consumers and self.read() and b"first\n" in self.received,
                   "the page's first line")  # fmt: skip

    def render(self, request: WebRequest) -> Any:
        request.notifyFinish().addBoth(self.ended.append)
        consumer = TextRequestConsumer(request, self.clock)
        self.consumers.append(consumer)
        consumer.writeChunk((STDOUT, "first\n"))
        return NOT_DONE_YET

    def close(self) -> Any:
        """Close the client's end, and wait for the page's end to see it."""
        self.client.close()
        return poll(lambda: self.ended, "the request to end")

    def read(self) -> bool:
        """Whatever the client's socket holds, without waiting: whether it was open."""
        try:
            data = self.client.recv(65536)
        except BlockingIOError:
            return True
        self.received += data
        return bool(data)

    def in_socket_before_the_reactor_turns(self, text: bytes) -> None:
        # Called from the reactor's thread, which this keeps: nothing the
        # transport still held could reach the socket meanwhile.
        deadline = time.monotonic() + 5
        while text not in self.received:
            remaining = deadline - time.monotonic()
            self.assertGreater(remaining, 0, f"{text!r} never reached the client's socket")
            select.select([self.client], [], [], remaining)
            self.read()

    def test_a_write_after_a_quiet_spell(self) -> None:
        (consumer,) = self.consumers
        self.clock.advance(INTERVAL)
        consumer.writeChunk((STDOUT, "second\n"))
        self.in_socket_before_the_reactor_turns(b"second\n")

    def test_a_bundle_at_the_tick(self) -> None:
        (consumer,) = self.consumers
        consumer.writeChunk((STDOUT, "bundled "))
        consumer.writeChunk((STDOUT, "together\n"))
        self.read()
        self.assertNotIn(b"bundled", self.received)
        self.clock.advance(INTERVAL)
        self.in_socket_before_the_reactor_turns(b"bundled together\n")

    @defer.inlineCallbacks
    def test_a_client_gone_is_found_gone(self) -> Any:
        (consumer,) = self.consumers
        # A reset rather than an orderly close: the next send fails.
        self.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.client.close()
        self.clock.advance(INTERVAL)
        consumer.writeChunk((STDOUT, "to nobody\n"))
        consumer.writeChunk((STDOUT, "at the tick\n"))
        self.clock.advance(INTERVAL)
        yield poll(lambda: self.ended, "the request to end")
        self.assertIsInstance(self.ended[0], Failure)
