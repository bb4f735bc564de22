"""
0.8.12's C{HttpStatusPush}, unchanged, on a real master with real builds,
pushing to a real HTTP server; and the queues it keeps its packets in.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import subprocess
from dataclasses import dataclass, field
from typing import Any

from buildbot.process.results import FAILURE
from twisted.internet import defer, reactor
from twisted.python import log
from twisted.trial import unittest
from twisted.web import resource, server

from buildbot_logfile import _shims
from buildbot_logfile.bridge import LegacyStatus
from tests.masters import MasterTestCase, poll, python_step
from tests.test_faults import mount_tmpfs

_shims.install()

from buildbot.status.persistent_queue import (  # type: ignore[import-not-found]  # noqa: E402
    DiskQueue,
    MemoryQueue,
    PersistentQueue,
)
from buildbot.status.status_push import HttpStatusPush  # type: ignore[import-not-found]  # noqa: E402


@dataclass
class Post:
    content_type: str
    user_agent: str
    form: dict[str, list[str]]
    packets: list[dict[str, Any]] = field(default_factory=list)


class PushServer(resource.Resource):
    """
    The receiving end of a status push: records every POST, and answers
    503 to the first C{refuse} of them (the server is down); with
    C{moved}, every path but that one is redirected to it (301).
    """

    isLeaf = True

    def __init__(self, refuse: int = 0, stall: int = 0, moved: bytes | None = None) -> None:
        super().__init__()
        self.refuse = refuse
        self.stall = stall
        self.moved = moved
        self.paths: list[bytes] = []
        self.posts: list[Post] = []
        self.accepted: list[dict[str, Any]] = []

    def render_POST(self, request: Any) -> bytes:
        self.paths.append(request.path)
        if self.moved is not None and request.path != self.moved:
            request.setResponseCode(301)
            request.setHeader(b"location", self.moved)
            return b"moved"
        form = {k.decode(): [v.decode() for v in vs] for k, vs in request.args.items()}
        post = Post(
            content_type=request.getHeader(b"content-type").decode(),
            user_agent=request.getHeader(b"user-agent").decode(),
            form=form,
            packets=json.loads(form["packets"][0]),
        )
        self.posts.append(post)
        if self.stall:
            # The headers, then a body that never comes.
            self.stall -= 1
            request.setHeader(b"content-length", b"100")
            request.write(b"partial")
            return server.NOT_DONE_YET
        if self.refuse:
            self.refuse -= 1
            request.setResponseCode(503)
            return b"busy"
        self.accepted.extend(post.packets)
        return b"ok"

    def events(self) -> list[str]:
        return [p["event"] for p in self.accepted]

    def has(self, event: str) -> bool:
        return event in self.events()


class StatusPushTests(MasterTestCase):
    def serve(
        self, refuse: int = 0, stall: int = 0, moved: bytes | None = None
    ) -> tuple[PushServer, str]:
        push_server = PushServer(refuse, stall, moved)
        port = reactor.listenTCP(0, server.Site(push_server), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return push_server, f"http://127.0.0.1:{port.getHost().port}/push"

    @defer.inlineCallbacks
    def test_a_build_pushed_as_0_8_12_did(self) -> defer.Generator:
        push_server, url = self.serve()
        pusher = HttpStatusPush(url, bufferDelay=0.01, extra_post_params={"site": "ci"})
        yield self.start_master(
            {"b1": [python_step("emit", "print('hi')"), python_step("fail", "exit(1)")]},
            receivers=[pusher],
            title="Push Project",
        )
        yield self.force("b1")
        yield poll(lambda: push_server.has("buildFinished"), "the buildFinished packet")
        for post in push_server.posts:
            self.assertEqual(
                (post.content_type, post.user_agent, post.form["site"]),
                ("application/x-www-form-urlencoded", "buildbot", ["ci"]),
            )
        packets = push_server.accepted
        self.assertEqual([p["id"] for p in packets], list(range(1, len(packets) + 1)))
        self.assertEqual({p["project"] for p in packets}, {"Push Project"})
        self.assertEqual(len({p["started"] for p in packets}), 1)
        events = [e for e in push_server.events() if e not in ("slaveConnected",)]
        # As 0.8: subscribing announces the builders, then comes "start".
        self.assertEqual(events[:3], ["builderAdded", "builderChangedState", "start"])
        build_events = [
            e for e in events if e.startswith(("build", "step", "log")) and e != "builderAdded"
        ]
        # 0.8.12's stepStarted does not subscribe to the step: no log events.
        self.assertEqual(
            [e for e in build_events if e != "builderChangedState"],
            ["buildsetSubmitted", "buildStarted"]
            + ["stepStarted", "stepFinished"] * 3  # the worker's preparation, emit, fail
            + ["buildFinished"],
        )
        # the schedulers that feed the builder, as 0.8 named them
        self.assertEqual(packets[0]["payload"]["builder"]["schedulers"], ["force"])
        self.assertEqual(
            packets[2]["payload"]["status"],
            {"title": "Push Project", "titleURL": "http://buildbot.net/",
             "buildbotURL": self.master.config.buildbotURL},
        )  # fmt: skip
        (db_build,) = yield self.master.data.get(("builders", "b1", "builds"))
        (finished,) = [p["payload"]["build"] for p in packets if p["event"] == "buildFinished"]
        self.assertEqual(
            (finished["number"], finished["results"], finished["builderName"]),
            (db_build["number"], FAILURE, "b1"),
        )
        self.assertEqual(finished["times"][0], db_build["started_at"].timestamp())
        # 0.8's FilterOut: false values go, a step's SUCCESS (0) result with them.
        steps = [p["payload"] for p in packets if p["event"] == "stepFinished"]
        self.assertEqual([s["step"]["name"] for s in steps[1:]], ["emit", "fail"])
        self.assertNotIn("results", steps[1]["step"])
        self.assertEqual(steps[2]["step"]["results"][0], FAILURE)
        self.assertIn(["buildnumber", db_build["number"], "Build"], steps[1]["properties"])
        self.assertNotIn("slaveDisconnected", push_server.events())

    @defer.inlineCallbacks
    def test_nothing_lost_or_repeated_while_the_server_refuses(self) -> defer.Generator:
        push_server, url = self.serve(refuse=3)
        pusher = HttpStatusPush(url, bufferDelay=0.01, retryDelay=0.01)
        yield self.start_master({"b1": [python_step("emit", "print('hi')")]}, receivers=[pusher])
        yield self.force("b1")
        yield poll(lambda: push_server.has("buildFinished"), "the buildFinished packet")
        packets = push_server.accepted
        self.assertEqual([p["id"] for p in packets], list(range(1, len(packets) + 1)))
        refused = [len(p.packets) for p in push_server.posts[:3]]
        # After a refusal, packets go one at a time until one gets through.
        self.assertEqual(refused[1:], [1, 1])
        self.assertEqual(len(push_server.posts[3].packets), 1)

    @defer.inlineCallbacks
    def test_a_server_that_stalls_mid_answer_gets_the_packets_again(self) -> defer.Generator:
        push_server, url = self.serve(stall=2)
        pusher = HttpStatusPush(url, bufferDelay=0.01, retryDelay=0.01)
        # Long enough for any post the server answers, short for the stalls.
        pusher.timeout = 5.0
        yield self.start_master({"b1": [python_step("emit", "print('hi')")]}, receivers=[pusher])
        yield self.force("b1")
        yield poll(lambda: push_server.has("buildFinished"), "the buildFinished packet")
        packets = push_server.accepted
        self.assertEqual([p["id"] for p in packets], list(range(1, len(packets) + 1)))
        self.assertEqual([len(p.packets) for p in push_server.posts[1:3]], [1, 1])
        # A stop does not wait on a stalled push longer than the timeout.
        push_server.stall = 10**6
        pusher.push("late", note="x")
        yield self.reconfig(services=[])
        self.assertNotIn("late", push_server.events())

    @defer.inlineCallbacks
    def test_a_redirect_is_followed_with_the_same_post(self) -> defer.Generator:
        push_server, url = self.serve(moved=b"/push/")  # as Django's APPEND_SLASH answers
        pusher = HttpStatusPush(url, bufferDelay=0.01)
        yield self.start_master({"b1": [python_step("emit", "print('hi')")]}, receivers=[pusher])
        yield self.force("b1")
        yield poll(lambda: push_server.has("buildFinished"), "the buildFinished packet")
        ids = [p["id"] for p in push_server.accepted]
        self.assertEqual(ids, list(range(1, len(ids) + 1)))
        self.assertEqual(set(push_server.paths), {b"/push", b"/push/"})

    @defer.inlineCallbacks
    def test_a_subclass_of_0_8_and_the_worker_paused(self) -> defer.Generator:
        class Noted(HttpStatusPush):
            """As sites wrote them: 0.8's push() gave a Deferred to add an errback to."""

            def buildStarted(self, builderName: str, build: Any) -> Any:
                d = self.push("buildStarted", build=build)
                d.addErrback(log.err, "while pushing status message")
                d = self.queueNextServerPush()
                d.addErrback(log.err, "while pushing status message")
                return self

        push_server, url = self.serve()
        pusher = Noted(url, bufferDelay=0.01)
        yield self.start_master({"b1": [python_step("emit", "print('hi')")]}, receivers=[pusher])
        yield self.force("b1")
        yield poll(lambda: push_server.has("buildFinished"), "the buildFinished packet")
        self.assertIn("stepFinished", push_server.events())  # the receiver went on
        (worker,) = yield self.master.data.get(("workers",))
        for action in ("pause", "unpause"):
            yield self.master.data.control(action, {}, ("workers", worker["workerid"]))
        yield poll(lambda: push_server.has("slaveUnpaused"), "the slaveUnpaused packet")
        paused = [p["payload"] for p in push_server.accepted if p["event"] == "slavePaused"]
        self.assertEqual(paused, [{"slavename": "local1"}])

    @defer.inlineCallbacks
    def test_two_pushers_to_one_host_keep_apart(self) -> defer.Generator:
        first_server, first_url = self.serve()
        second_server, second_url = self.serve()
        pushers = [HttpStatusPush(url, bufferDelay=0.01) for url in (first_url, second_url)]
        yield self.start_master({"b1": [python_step("emit", "print('hi')")]}, receivers=pushers)
        yield self.force("b1")
        for push_server in (first_server, second_server):
            yield poll(lambda s=push_server: s.has("buildFinished"), "buildFinished")
            ids = [p["id"] for p in push_server.accepted]
            self.assertEqual(ids, list(range(1, len(ids) + 1)))
        self.assertEqual(first_server.events(), second_server.events())

    def test_a_url_twisted_cannot_request_is_a_clear_error(self) -> None:
        for url in ("http://dashb\u00f6ard.example/push", "http://x/a b", "ftp://x/", "x"):
            with self.assertRaises(ValueError):
                HttpStatusPush(url)

    @defer.inlineCallbacks
    def test_bodies_split_to_fit_and_a_packet_too_large_dropped(self) -> defer.Generator:
        push_server, url = self.serve()
        pusher = HttpStatusPush(url, bufferDelay=0.2, maxHttpRequestSize=4000)
        yield self.start_master({"b1": [python_step("emit", "print('hi')")]}, receivers=[pusher])
        yield poll(lambda: push_server.has("builderAdded"), "the first packets")
        pusher.push("small", note="a")
        pusher.push("huge", note="x" * 5000)
        pusher.push("after", note="b")
        yield poll(lambda: push_server.has("after"), "the packet after the huge one")
        self.assertNotIn("huge", push_server.events())
        ids = [p["id"] for p in push_server.accepted]
        huge = ids[push_server.events().index("small")] + 1
        self.assertEqual(ids, [i for i in range(1, ids[-1] + 1) if i != huge])
        for post in push_server.posts:
            self.assertLess(len(json.dumps(post.packets)), 4000)

    @defer.inlineCallbacks
    def test_packets_kept_on_disk_across_a_restart(self) -> defer.Generator:
        push_server, url = self.serve(refuse=10**6)
        first = HttpStatusPush(url, bufferDelay=0.01, retryDelay=0.01)
        yield self.start_master({"b1": [python_step("emit", "print('hi')")]}, receivers=[first])
        yield self.force("b1")
        # The build's end in the database comes before the pusher hears it.
        yield poll(
            lambda: "buildFinished" in [p["event"] for p in first.queue.items()],
            "the buildFinished packet queued",
        )
        yield poll(lambda: len(push_server.posts) >= 3, "pushes the server refuses")
        # The master drops the receiver, as a restart or reconfig does.
        yield self.reconfig(services=[])
        queue_dir = os.path.join(self.master.basedir, "events_127.0.0.1")
        with open(os.path.join(queue_dir, "state")) as f:
            state = json.load(f)
        saved = sorted(int(name) for name in os.listdir(queue_dir) if name.lstrip("-").isdigit())
        self.assertEqual(len(saved), state["next_id"] - 1)
        self.assertEqual(push_server.accepted, [])
        push_server.refuse = 0
        second = HttpStatusPush(url, bufferDelay=0.01)
        yield self.reconfig(services=[LegacyStatus(receivers=[second])])
        yield poll(lambda: len(push_server.accepted) > len(saved), "the saved packets, then more")
        packets = push_server.accepted
        self.assertEqual([p["id"] for p in packets], list(range(1, len(packets) + 1)))
        self.assertEqual(packets[len(saved) - 1]["event"], "shutdown")
        self.assertEqual(
            [p["event"] for p in packets[len(saved) :]][:3],
            ["builderAdded", "builderChangedState", "start"],
        )
        self.assertIn("buildFinished", [p["event"] for p in packets[: len(saved)]])
        self.assertEqual(sorted(os.listdir(queue_dir)), ["state"])


class QueueTests(unittest.TestCase):
    # What Python 2's pickle (protocol 2) wrote for 0.8's packets: byte
    # strings, one of them Latin-1.
    PY2_PACKET = b"\x80\x02}q\x00(U\x02idK\x01U\x05eventU\x0cbuildStartedU\x03whoU\x04caf\xe9u."

    def test_a_queue_left_by_0_8_is_read(self) -> None:
        path = self.mktemp()
        os.makedirs(path)
        for name, data in (("-1", self.PY2_PACKET), ("1", pickle.dumps({"id": 2}, protocol=2))):
            with open(os.path.join(path, name), "wb") as f:
                f.write(data)
        queue = DiskQueue(path)
        self.assertEqual(
            queue.popChunk(),
            [{"id": 1, "event": "buildStarted", "who": "café"}, {"id": 2}],
        )
        self.assertEqual(os.listdir(path), [])

    def test_a_pickle_naming_a_class_is_set_aside_not_run(self) -> None:
        path = self.mktemp()
        os.makedirs(path)
        with open(os.path.join(path, "1"), "wb") as f:
            f.write(b"cos\nsystem\n(S'touch pwned'\ntR.")
        with open(os.path.join(path, "2"), "wb") as f:
            f.write(pickle.dumps({"id": 2}, protocol=2))
        with open(os.path.join(path, "3.tmp"), "wb") as f:
            f.write(b"\x80\x02}q")  # half a write, cut short
        queue = DiskQueue(path)
        self.assertEqual(queue.nbItems(), 2)
        self.assertEqual(queue.popChunk(), [{"id": 2}])
        self.assertEqual(sorted(os.listdir(path)), ["1.bad"])
        self.assertFalse(os.path.exists("pwned"))

    def test_memory_then_disk_in_order_and_bounded(self) -> None:
        path = self.mktemp()
        queue = PersistentQueue(MemoryQueue(maxItems=2), DiskQueue(path, maxItems=3))
        dropped = [queue.pushItem(i) for i in range(7)]
        # Five fit: the two oldest made room.
        self.assertEqual(dropped, [None] * 5 + [0, 1])
        self.assertEqual(queue.items(), [2, 3, 4, 5, 6])
        chunk = queue.popChunk(3)
        self.assertEqual(chunk, [2, 3, 4])
        self.assertIsNone(queue.insertBackChunk(chunk))
        self.assertEqual(queue.items(), [2, 3, 4, 5, 6])
        queue.save()
        again = PersistentQueue(MemoryQueue(maxItems=2), DiskQueue(path, maxItems=3))
        self.assertEqual(again.popChunk(10), [2, 3, 4, 5, 6])

    def test_saves_and_reloads_keep_the_bound(self) -> None:
        path = self.mktemp()
        pushed = 0
        for _ in range(20):
            queue = PersistentQueue(MemoryQueue(maxItems=10), DiskQueue(path, maxItems=100))
            for _ in range(30):
                queue.pushItem(pushed)
                pushed += 1
            queue.save()
        again = PersistentQueue(MemoryQueue(maxItems=10), DiskQueue(path, maxItems=100))
        # The newest 110 at most (the bound of both), in order.
        self.assertEqual(again.popChunk(1000), list(range(pushed - 110, pushed)))

    def test_what_a_restart_left_stays_on_disk_until_sent(self) -> None:
        path = self.mktemp()
        queue = PersistentQueue(MemoryQueue(maxItems=10), DiskQueue(path, maxItems=100))
        for i in range(50):
            queue.pushItem(i)
        queue.save()
        again = PersistentQueue(MemoryQueue(maxItems=10), DiskQueue(path, maxItems=100))
        # A crash now would lose nothing: every item still has its file.
        self.assertEqual(len(os.listdir(path)), 50)
        self.assertEqual(again.popChunk(5), [0, 1, 2, 3, 4])
        self.assertEqual(len(os.listdir(path)), 45)


class QueueOf08Tests(MasterTestCase):
    @defer.inlineCallbacks
    def test_the_queue_0_8_left_under_its_folder_name_is_sent(self) -> defer.Generator:
        push_server = PushServer()
        port = reactor.listenTCP(0, server.Site(push_server), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        yield self.start_master({"b1": [python_step("emit", "print('hi')")]}, legacy=False)
        # 0.8 named the folder by the host as written in the URL
        folder = os.path.join(self.master.basedir, "events_LocalHost")
        os.makedirs(folder)
        with open(os.path.join(folder, "1"), "wb") as f:
            f.write(QueueTests.PY2_PACKET)
        pusher = HttpStatusPush(f"http://LocalHost:{port.getHost().port}/push", bufferDelay=0.01)
        yield self.reconfig(services=[LegacyStatus(receivers=[pusher])])
        yield poll(lambda: push_server.has("start"), "the start packet")
        self.assertEqual(push_server.accepted[0], {"id": 1, "event": "buildStarted", "who": "café"})


class UnwritableQueueTests(MasterTestCase):
    def test_a_queue_folder_gone_read_only_still_gives_its_packets(self) -> None:
        folder = os.path.abspath(self.mktemp())
        mount_tmpfs(self, folder, "size=1m")
        queue = PersistentQueue(MemoryQueue(maxItems=1), DiskQueue(folder, maxItems=10))
        for i in range(4):
            queue.pushItem({"id": i})
        subprocess.run(["mount", "-o", "remount,ro", folder], check=True)
        self.assertEqual(queue.popChunk(10), [{"id": i} for i in range(4)])
        self.assertEqual(queue.nbItems(), 0)
        # the files it could not remove stay, to be sent again after a restart
        self.assertEqual(sorted(os.listdir(folder)), ["1", "2", "3"])

    @defer.inlineCallbacks
    def test_a_full_disk_under_the_queue_loses_nothing(self) -> defer.Generator:
        push_server = PushServer(refuse=10**6)
        port = reactor.listenTCP(0, server.Site(push_server), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        yield self.start_master({"b1": [python_step("emit", "print('hi')")]}, legacy=False)
        folder = os.path.join(self.master.basedir, "events_127.0.0.1")
        mount_tmpfs(self, folder, "size=64k")
        # The disk is full before the first packet is written there.
        with open(os.path.join(folder, "filler"), "wb") as f, contextlib.suppress(OSError):
            f.write(b"x" * 2**20)
        pusher = HttpStatusPush(
            f"http://127.0.0.1:{port.getHost().port}/",
            bufferDelay=0.01, retryDelay=0.01, maxMemoryItems=3,
        )  # fmt: skip
        yield self.reconfig(services=[LegacyStatus(receivers=[pusher])])
        yield self.force("b1")
        yield poll(
            lambda: self.master.data.get(("builders", "b1", "builds", 1)).addCallback(
                lambda b: b is not None and b["complete"]
            ),
            "the build to finish",
        )
        yield poll(
            lambda: "buildFinished" in [p["event"] for p in pusher.queue.items()],
            "the buildFinished packet queued",
        )
        self.assertEqual(os.listdir(folder), ["filler"])  # none of them on the disk
        push_server.refuse = 0
        yield poll(lambda: push_server.has("buildFinished"), "the buildFinished packet")
        ids = [p["id"] for p in push_server.accepted]
        self.assertEqual(ids, list(range(1, len(ids) + 1)))
        self.assertIn("stepFinished", push_server.events())
        # Stopping with the disk still full: the master stops, the rest is said lost.
        yield self.reconfig(services=[])

    @defer.inlineCallbacks
    def test_a_queue_folder_that_cannot_be_made_leaves_packets_in_memory(
        self,
    ) -> defer.Generator:
        push_server = PushServer()
        port = reactor.listenTCP(0, server.Site(push_server), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        yield self.start_master({"b1": [python_step("emit", "print('hi')")]}, legacy=False)
        with open(os.path.join(self.master.basedir, "events_127.0.0.1"), "w") as f:
            f.write("a file where the queue's folder would be")
        pusher = HttpStatusPush(f"http://127.0.0.1:{port.getHost().port}/", bufferDelay=0.01)
        yield self.reconfig(services=[LegacyStatus(receivers=[pusher])])
        yield self.force("b1")
        yield poll(lambda: push_server.has("buildFinished"), "the buildFinished packet")
        ids = [p["id"] for p in push_server.accepted]
        self.assertEqual(ids, list(range(1, len(ids) + 1)))
