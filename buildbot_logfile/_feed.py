"""
From the master's message queue to 0.8 status events.

Events from the message queue are only hints: what a receiver sees comes
from the database, through the log mirrors.  Events of one build run one at
a time, in arrival order, which gives receivers 0.8's order: buildStarted,
then for each step stepStarted, logStarted, logChunk..., logFinished,
stepFinished, and last buildFinished.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from buildbot.data import resultspec
from twisted.internet import defer
from twisted.python import log

from buildbot_logfile import _appends
from buildbot_logfile._build_data import load_expectations
from buildbot_logfile._builders import Builders
from buildbot_logfile._delivery import deliver, each_watcher, subscribe_returned
from buildbot_logfile._mirror import LogMirror, MirrorRegistry
from buildbot_logfile._requests import Requests
from buildbot_logfile._retries import DatabaseRetries
from buildbot_logfile._running import (
    current_properties,
    description_now,
    running_build,
    running_step,
    starting_step,
    steps_to_come,
)
from buildbot_logfile._workers import Workers
from buildbot_logfile.logfile import LogFile
from buildbot_logfile.status import BuildStatus, BuildStepStatus

_Message = Mapping[str, Any]

# The longest a reconfig holds the builds' events while it replaces
# receivers (see EventFeed.hold): one whose stop hangs holds up no page
# and no other receiver for longer.
HOLD_LIMIT = 30.0


class _BuildState:
    """What the feed tracks of one running build."""

    def __init__(self, buildid: int) -> None:
        self.buildid = buildid
        self.status: BuildStatus | None = None
        self.queue = defer.DeferredLock()
        self.steps: dict[int, BuildStepStatus] = {}
        self.mirrors: dict[int, LogMirror] = {}
        self.logs_finished: set[int] = set()
        # Its Build, where this master runs it: taken once, as it starts,
        # since Buildbot forgets it as it ends, maybe before its last
        # steps' events are read here.
        self.running: Any = None


class EventFeed:
    """
    Consumes the master's build, step, log and builder events and delivers
    them to 0.8 receivers: builders' watchers hear of builds, builds'
    watchers of steps, steps' watchers of logs.
    """

    def __init__(
        self,
        master: Any,
        builders: Builders,
        workers: Workers,
        requests: Requests,
        mirrors: MirrorRegistry,
        on_build_finished: Callable[[BuildStatus], None],
    ) -> None:
        """
        C{on_build_finished} takes each build as it ends, before its
        receivers hear of it: a build they look up then is the same object.
        """
        self.master = master
        self.builders = builders
        self.workers = workers
        self.requests = requests
        self.mirrors = mirrors
        self.on_build_finished = on_build_finished
        # Reads tried again, in their place in their queue, while the
        # database is out of reach.
        self._retries = DatabaseRetries(master.reactor)
        # The builders', buildsets' and requests' events, one at a time in
        # arrival order, as each build's are: a request's claim waits for
        # its announcement to have been read, or tried again.
        self._others = defer.DeferredLock()
        self._consumers: list[Any] = []
        self._builds: dict[int, _BuildState] = {}
        self._step_builds: dict[int, int] = {}
        # Reads put off: logid -> (the delayed call, the read).
        self._appends_due: dict[int, tuple[Any, Callable[[], None]]] = {}
        # Work outside the build queues (builders, logs of builds that
        # started before this service), awaited by stop().
        self._running: set[defer.Deferred[Any]] = set()
        # The releases of the holds in force (see hold), and the builds'
        # events waiting for them.
        self._holds: set[Callable[[], None]] = set()
        self._held: list[defer.Deferred[None]] = []

    async def start(self) -> None:
        self.mirrors.appends.start(self._appended)
        subscriptions = [
            (self._on_builder, ("builders", None, None)),
            (self._on_worker, ("workers", None, None)),
            (self._on_buildset, ("buildsets", None, None)),
            (self._on_request, ("buildrequests", None, None)),
            (self._on_change, ("changes", None, None)),
            (self._on_build, ("builds", None, None)),
            (self._on_step, ("steps", None, None)),
            # Appends are heard log by log (see _appends).
            (self._on_log, ("logs", None, "new")),
            (self._on_log, ("logs", None, "finished")),
            (self._on_properties, ("builds", None, "properties", "update")),
        ]
        for callback, filter in subscriptions:
            # Each kept as it is made: if a later one fails, stop() undoes these.
            self._consumers.append(await self.master.mq.startConsuming(callback, filter))
        # Builds running already (a master restarted, a reconfig that adds
        # this service): announced from where they stand.  Events from here
        # on queue behind that, and nothing is told twice.
        running = await self.master.data.get(
            ("builds",), filters=[resultspec.Filter("complete", "eq", [False])]
        )
        for build in running or []:
            if build["buildid"] not in self._builds:
                state = self._builds[build["buildid"]] = _BuildState(build["buildid"])
                self.builders.expect_build(build["builderid"], build["buildid"])
                state.queue.run(self._queue_catch_up, state, build)
        self.builders.settle()

    def hold(self) -> Callable[[], None]:
        """
        Hold the builds' events, in their order, until the function this
        returns is called, or L{HOLD_LIMIT} seconds at most.  A reconfig
        that replaces receivers holds them from when the old ones hear no
        more until the new ones listen: the new ones hear what the old
        ones would have (a build that ends meanwhile is mailed), and no
        event is told twice.  Live pages wait with them, as both follow
        the same reads.
        """

        def release() -> None:
            if release not in self._holds:
                return
            self._holds.discard(release)
            if limit.active():
                limit.cancel()
            else:
                log.msg(f"LegacyStatus: receivers replaced for over {HOLD_LIMIT} s; going on")
            if not self._holds:
                self._let_go()

        self._holds.add(release)
        limit = self.master.reactor.callLater(HOLD_LIMIT, release)
        return release

    def _let_go(self) -> None:
        waiting, self._held = self._held, []
        for d in waiting:
            d.callback(None)

    async def _unless_held(self) -> None:
        if self._holds:
            d: defer.Deferred[None] = defer.Deferred()
            self._held.append(d)
            await d

    async def stop(self) -> None:
        """Stop consuming, then wait for the events already queued."""
        self._retries.stop()  # the database will not be waited for
        for release in list(self._holds):
            release()
        consumers, self._consumers = self._consumers, []
        for consumer in consumers:
            await defer.maybeDeferred(consumer.stopConsuming)
        await self.mirrors.appends.stop()
        # Reads put off (see _read_soon) run now: a receiver hears every
        # line before the log's end.
        for call, read in list(self._appends_due.values()):
            call.cancel()
            read()
        await self._others.run(lambda: None)
        for state in list(self._builds.values()):
            await state.queue.run(lambda: None)
        while self._running:
            await defer.DeferredList(list(self._running))
        # Receivers of builds still running hear no more ETA updates.
        for build in self.running_builds():
            build.stop_updates()
            for step in build.getSteps():
                step.stop_updates()

    def running_builds(self) -> list[BuildStatus]:
        """The builds this feed follows, in the order they started."""
        return [s.status for s in self._builds.values() if s.status is not None]

    # Intake: each mq message becomes work queued on its build

    def _on_builder(self, key: tuple[str, ...], msg: _Message) -> None:
        if key[2] == "started":
            self._in_order(lambda: self.builders.started(msg["builderid"]), f"builder {key[1]}")
        elif key[2] == "stopped":
            self._in_order(
                lambda: self.builders.stopped(msg["builderid"], msg["name"]), f"builder {key[1]}"
            )

    def _on_worker(self, key: tuple[str, ...], msg: _Message) -> None:
        self.workers.event(key[2], msg)

    def _on_buildset(self, key: tuple[str, ...], msg: _Message) -> None:
        self._in_order(lambda: self.requests.buildset_event(key[2], msg), f"buildset {key[1]}")

    def _on_request(self, key: tuple[str, ...], msg: _Message) -> None:
        self._in_order(
            lambda: self.requests.request_event(key[2], int(key[1]), msg),
            f"build request {key[1]}",
        )

    def _on_change(self, key: tuple[str, ...], msg: _Message) -> None:
        if key[2] == "new":
            self._run_logged(self.requests.change_event(msg))

    def _on_build(self, key: tuple[str, ...], msg: _Message) -> None:
        buildid = msg["buildid"]
        if key[2] == "new" and buildid not in self._builds:
            # The state exists at once, so the build's step and log events
            # queue up behind buildStarted while its details load.
            state = self._builds[buildid] = _BuildState(buildid)
            state.queue.run(lambda: self._run_logged(self._build_started(state, msg)))
        elif key[2] == "finished":
            self._in_build(buildid, self._build_finished, msg)

    def _on_properties(self, key: tuple[str, ...], msg: _Message) -> None:
        self._in_build(int(key[1]), self._properties_updated, msg)

    def _on_step(self, key: tuple[str, ...], msg: _Message) -> None:
        if msg["buildid"] in self._builds:
            self._step_builds[msg["stepid"]] = msg["buildid"]
        self._in_build(msg["buildid"], self._step_event, key[2], msg)

    def _on_log(self, key: tuple[str, ...], msg: _Message) -> None:
        mirror = self.mirrors.announce(msg["logid"], msg["num_lines"])
        buildid = self._step_builds.get(msg["stepid"])
        if buildid is None or buildid not in self._builds:
            # A build that started before this service: its logs are
            # mirrored only once a lookup asked for them.
            if mirror is not None:
                self._run_logged(self.mirrors.sync(mirror, msg["num_lines"], msg["complete"]))
        else:
            self._in_build(buildid, self._log_event, msg)

    def _appended(self, mirror: LogMirror, num_lines: int) -> None:
        """
        A live log has C{num_lines} lines (see L{LogAppends}).  For this
        master's own logs this is told inside Buildbot's C{appendLog}, so
        it only notes them; the read comes later (L{_read_soon}).
        """
        self.mirrors.announce(mirror.logid, num_lines)
        if num_lines > mirror.lines:  # else read already (a first look that a read caught up)
            self._read_soon(mirror)

    def _read_soon(self, mirror: LogMirror) -> None:
        """
        Read a live log's new lines in a turn of their own, at once if the
        log was last read L{_appends.APPEND_INTERVAL} ago or more, or else
        once that interval is over; either way the read takes every append
        that came before it.

        The turn: receivers run outside Buildbot's C{appendLog}, as they
        did when a message brought the append, and a slow one does not
        hold the log's next append behind it.  One delayed call per read,
        not one per append, keeps the build's master from turning its
        reactor for each append.  The interval: each read waits behind the
        master's own writes on SQLite's one database thread, and a burst of
        appends read one by one slows the build down.
        """
        if mirror.logid in self._appends_due:
            return
        reactor = self.master.reactor

        def read() -> None:
            self._appends_due.pop(mirror.logid, None)
            mirror.last_read = reactor.seconds()
            buildid = mirror.step.build.buildid
            if buildid not in self._builds:
                # A build that started before this service, or whose start
                # could not be read: no receiver hears of it.
                self._run_logged(self.mirrors.sync(mirror, mirror.announced, False))
                return
            msg = {
                "logid": mirror.logid,
                "stepid": mirror.step.stepid,
                "name": mirror.name,
                "type": mirror.type,
                "num_lines": mirror.announced,
                "complete": False,
            }
            self._in_build(buildid, self._log_event, msg)

        wait = max(0.0, mirror.last_read + _appends.APPEND_INTERVAL - reactor.seconds())
        self._appends_due[mirror.logid] = (reactor.callLater(wait, read), read)

    def _in_order(self, handle: Callable[[], Awaitable[Any]], what: str) -> None:
        """
        Handle an event of a builder, buildset or request after those that
        came before it, again while the database is out of reach: each of
        these handlers reads before it tells.
        """
        self._others.run(lambda: self._run_logged(self._retries.run(handle, what)))

    def _run_logged(self, coro: Coroutine[Any, Any, Any]) -> defer.Deferred[Any]:
        d = defer.ensureDeferred(coro).addErrback(
            lambda f: log.err(f, "LegacyStatus: while handling an event")
        )
        if not d.called:
            self._running.add(d)

            def done(result: Any) -> Any:
                self._running.discard(d)
                return result

            d.addBoth(done)
        return d

    def _in_build(self, buildid: int, handler: Callable[..., Awaitable[Any]], *args: Any) -> None:
        state = self._builds.get(buildid)
        if state is not None:
            state.queue.run(lambda: self._run_logged(self._unless_dropped(state, handler, args)))

    async def _unless_dropped(
        self, state: _BuildState, handler: Callable[..., Awaitable[Any]], args: tuple[Any, ...]
    ) -> None:
        """
        Run a handler of the build's events.  One whose read failed for a
        database out of reach runs again: each tells only what it has not
        told yet, and reads before it tells.
        """
        await self._unless_held()
        if state.status is not None:
            await self._retries.run(
                lambda: handler(state, *args), f"an event of build {state.buildid}"
            )

    # Handlers: one build's events, one at a time

    async def _build_started(self, state: _BuildState, msg: _Message) -> list[_Message] | None:
        """
        Announce the build; the data API's steps it listed from the start
        (None if it could not read them, or drops the build).
        """
        await self._unless_held()
        try:
            build = await self._retries.run(
                lambda: self._read_build(msg), f"the start of build {state.buildid}"
            )
            if build is None:
                self._forget(state.buildid)
                return None
        except Exception:
            # Its receivers cannot hear of it, but its logs must still
            # stream to the pages that open them: a build the feed does
            # not track is mirrored straight from the database (see
            # _on_log and _read_soon), as one that started before this
            # service is.
            self._forget(state.buildid)
            raise
        builder = build.builder
        try:
            expected = await self._retries.run(
                lambda: load_expectations(self.master.data, builder.builderid),
                f"the ETA of {builder.name}",
            )
        except Exception:
            # An estimate is no reason to drop the build.
            log.err(None, f"LegacyStatus: no ETA for {builder.name} #{build.number}")
        else:
            build.expected_duration, build.expected_steps = expected
        state.running = running_build(self.master, builder.name, build.buildid)
        self._expect_steps(state, build)
        state.status = build
        steps = await self._list_steps_so_far(state)
        # First of those waiting for the build's end, as 0.8's newBuild
        # made it: the builder's watchers hear buildFinished before any
        # receiver's own waitUntilFinished fires.
        build.waitUntilFinished().addCallback(self._tell_build_finished)
        builder.build_started(build)
        for w in each_watcher(builder.watchers):
            returned = deliver(w, "buildStarted", builder.name, build)
            subscribe_returned(
                returned, build.subscribe, build.unsubscribe, build.waitUntilFinished()
            )
        self.requests.build_started(build)
        return steps

    async def _read_build(self, msg: _Message) -> BuildStatus | None:
        """A build as the database has it (None for a builder it does not know)."""
        builder = await self.builders.by_id(msg["builderid"])
        if builder is None:
            return None
        build = BuildStatus(builder, msg["number"], msg["buildid"])
        await build.refresh(msg)
        return build

    async def _list_steps_so_far(self, state: _BuildState) -> list[_Message] | None:
        """
        The steps a build has in the database as it is announced, listed
        before its receivers hear of it: the one Buildbot adds before it
        announces a build (C{worker_preparation}), whose own start came
        before the build's, is then in the list from the start, as all of
        0.8's steps were.  Each is told as it starts or finishes.
        """
        try:
            steps = await self._retries.run(
                lambda: self._steps_of(state.buildid), f"the steps of build {state.buildid}"
            )
        except Exception:
            log.err(None, f"LegacyStatus: the steps of build {state.buildid}")
            return None
        self._list_steps(state, steps)
        return steps

    async def _steps_of(self, buildid: int) -> list[_Message]:
        return list(await self.master.data.get(("builds", buildid, "steps")) or [])

    def _list_steps(self, state: _BuildState, steps: list[_Message]) -> None:
        """The build's C{steps}, of the data API, in its list and known by id."""
        for step in steps:
            self._step_builds[step["stepid"]] = state.buildid
            self._step(state, step)

    @staticmethod
    def _tell_build_finished(build: BuildStatus) -> BuildStatus:
        builder = build.builder
        for w in each_watcher(builder.watchers):
            deliver(w, "buildFinished", builder.name, build, build.results)
        return build

    def _forget(self, buildid: int) -> None:
        """Track a build no more, nor the steps it started meanwhile."""
        del self._builds[buildid]
        for stepid in [s for s, b in self._step_builds.items() if b == buildid]:
            del self._step_builds[stepid]

    def _queue_catch_up(self, state: _BuildState, build: _Message) -> defer.Deferred[Any]:
        return self._run_logged(self._catch_up_build(state, build))

    async def _catch_up_build(self, state: _BuildState, build: _Message) -> None:
        """A build that was running before this feed: its story so far, in 0.8's order."""
        try:
            steps = await self._build_started(state, build)
        finally:
            self.builders.not_expected(build["builderid"], build["buildid"])
        if state.status is None:
            return
        await self._retries.run(
            lambda: self._catch_up_steps(state, steps), f"the steps of build {state.buildid}"
        )

    async def _catch_up_steps(self, state: _BuildState, steps: list[_Message] | None) -> None:
        """
        The steps of a build caught up with, each told as far as it went;
        run again, it tells only what it has not told yet.
        """
        if steps is None:  # not listed at the start: read now
            steps = await self._steps_of(state.buildid)
            self._list_steps(state, steps)
        for step in steps:
            if step["started_at"] is None:
                continue
            await self._step_event(state, "started", step)
            for log_data in await self.master.data.get(("steps", step["stepid"], "logs")) or []:
                await self._log_event(state, log_data)
            if step["complete"]:
                await self._step_event(state, "finished", step)

    async def _properties_updated(self, state: _BuildState, msg: _Message) -> None:
        assert state.status is not None
        state.status.set_properties(dict(msg))

    async def _step_event(self, state: _BuildState, event: str, msg: _Message) -> None:
        step = self._step(state, msg)
        if event == "started" or (event == "finished" and not step.isStarted()):
            self._start_step(state, step, msg)
        if event == "updated" and step.isStarted() and not step.isFinished():
            step.note_locks(msg)
            self._update_step(step, msg)
        if event == "finished" and not step.isFinished():
            await self._finish_step(state, step, msg)

    def _update_step(
        self, step: BuildStepStatus, msg: _Message, *, finished: bool = False, running: Any = None
    ) -> None:
        """A step's text and text2 as the data API has them; their watchers hear of changes."""
        text, text2 = step.getText(), step.text2
        step.update(msg, finished=finished, running=running)
        if step.getText() != text:
            for w in each_watcher(step.watchers):
                deliver(w, "stepTextChanged", step.build, step, step.getText())
        if step.text2 != text2:
            for w in each_watcher(step.watchers):
                deliver(w, "stepText2Changed", step.build, step, step.text2)

    def _step(self, state: _BuildState, msg: _Message) -> BuildStepStatus:
        step = state.steps.get(msg["stepid"])
        if step is None:
            build = state.status
            assert build is not None
            # A step this master listed before it started is the same object.
            running = state.running
            running_as = starting_step(running, msg["stepid"]) if running is not None else None
            if running_as is not None:
                step = build.take_step_to_come(running_as, msg["number"])
            if step is None:
                step = BuildStepStatus(build, msg["name"], msg["number"], msg["stepid"])
            else:
                step.name, step.number, step.stepid = msg["name"], msg["number"], msg["stepid"]
            state.steps[msg["stepid"]] = step
            build.add_step(step)
            self._expect_steps(state, build)  # and those a step added
        return step

    @staticmethod
    def _expect_steps(state: _BuildState, build: BuildStatus) -> None:
        """The steps this master's running build has yet to start, listed."""
        if state.running is None:
            return
        try:
            build.expect_steps(steps_to_come(state.running))
        except Exception:
            # A list short of some steps is no reason to drop the build.
            log.err(
                None, f"LegacyStatus: the steps to come of {build.builder.name} #{build.number}"
            )

    def _start_step(self, state: _BuildState, step: BuildStepStatus, msg: _Message) -> None:
        if step.isStarted():
            return
        step.mark_started(msg, self.master.reactor.seconds())
        build = step.build
        running = state.running
        running_as = running_step(running, msg["stepid"]) if running is not None else None
        if running_as is not None:
            step.started_as = description_now(running_as)
        step.update(msg)
        for w in each_watcher(build.watchers):
            returned = deliver(w, "stepStarted", build, step)
            subscribe_returned(returned, step.subscribe, step.unsubscribe, step.waitUntilFinished())
        # Asked from now on: 0.8 told of the step before it asked for its locks.
        step.running_step = running_as

    async def _finish_step(self, state: _BuildState, step: BuildStepStatus, msg: _Message) -> None:
        stepid = step.stepid
        assert stepid is not None  # a step the data API told of
        # 0.8 finished every log of a step before the step itself.
        for log_data in await self.master.data.get(("steps", stepid, "logs")) or []:
            if log_data["complete"]:
                await self._log_event(state, log_data)
        build = step.build
        running = state.running
        running_as = running_step(running, stepid) if running is not None else None
        if running is not None:
            # What the step set, which Buildbot stores only after this.
            try:
                build.set_properties(await current_properties(running))
            except Exception:
                log.err(
                    None, f"LegacyStatus: the properties of {build.builder.name} #{build.number}"
                )
        self._update_step(step, msg, finished=True, running=running_as)
        step.running_step = None
        step.mark_finished()
        for w in each_watcher(build.watchers):
            deliver(w, "stepFinished", build, step, step.getResults())

    async def _log_event(self, state: _BuildState, msg: _Message) -> None:
        logid = msg["logid"]
        step = state.steps.get(msg["stepid"])
        if step is None:
            step_data = await self.master.data.get(("steps", msg["stepid"]))
            step = self._step(state, step_data)
            self._start_step(state, step, step_data)
        mirror = state.mirrors.get(logid)
        if mirror is None:
            mirror = state.mirrors[logid] = self.mirrors.find_or_create(step, msg)
            mirror.adopt(step)  # one a lookup opened first, on a build of its own
            # logStarted before any text, so a receiver's catch-up starts
            # from the first line.
            await mirror.lock.run(mirror.ensure_started)
            if mirror.logfile is not None:
                self._log_started(step, mirror.logfile)
        await self.mirrors.sync(mirror, msg["num_lines"], msg["complete"])
        lf = mirror.logfile
        if lf is not None and lf.isFinished() and logid not in state.logs_finished:
            state.logs_finished.add(logid)
            if lf not in step.logs:  # an HTML log, whole at once
                self._log_started(step, lf)
            for w in each_watcher(step.watchers):
                deliver(w, "logFinished", step.build, step, lf)

    def _log_started(self, step: BuildStepStatus, lf: LogFile) -> None:
        step.logs.append(lf)
        for w in each_watcher(step.watchers):
            returned = deliver(w, "logStarted", step.build, step, lf)
            if not returned:
                continue
            try:
                lf.subscribe(returned, True)
            except Exception:
                # The text so far unreadable: the other receivers still hear the log.
                log.err(None, f"LegacyStatus: while catching {returned!r} up on {lf.getName()}")
            lf.waitUntilFinished().addCallback(LogFile.unsubscribe, returned)

    async def _build_finished(self, state: _BuildState, msg: _Message) -> None:
        build = state.status
        assert build is not None
        for step in build.started_steps:
            if not step.isFinished():
                step_data = await self.master.data.get(("steps", step.stepid))
                await self._step_event(state, "finished", step_data)
        await build.refresh(msg)
        build.end_steps_to_come()
        state.running = None
        builder = build.builder
        builder.build_finished(build)
        self.on_build_finished(build)
        build.mark_finished()
        builder.announce_state()
        del self._builds[build.buildid]
        for stepid in state.steps:
            self._step_builds.pop(stepid, None)
