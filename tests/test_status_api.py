"""
The 0.8 status API that plugins call, on a real master with real builds:
each value checked against the data API it comes from.  The receivers are
written as 0.8 authors wrote them.
"""

from __future__ import annotations

import datetime
import json
import operator
import os
import shutil
from types import SimpleNamespace
from typing import Any

import treq
from buildbot.changes.base import ChangeSource
from buildbot.db.buildsets import BuildSetModel
from buildbot.interfaces import IProperties
from buildbot.plugins import schedulers, steps, util, worker
from buildbot.process.buildstep import BuildStep
from buildbot.process.results import CANCELLED, EXCEPTION, FAILURE, SKIPPED, SUCCESS
from buildbot.warnings import DeprecatedApiWarning
from twisted.internet import defer, reactor, task

from buildbot_logfile._buildset_summary import BuildSetSummaryNotifierMixin
from buildbot_logfile.base import StatusReceiverMultiService
from buildbot_logfile.bridge import LegacyStatus
from buildbot_logfile.logfile import STDERR, HTMLLogFile
from buildbot_logfile.status import BuildRequestStatus, BuildSetStatus, BuildStatus, BuildStepStatus
from tests.masters import (
    LiveLog,
    MasterTestCase,
    Recorder,
    db_text,
    html_log_step,
    live_log_step,
    poll,
    python_step,
)
from tests.support import readme_table


class Snapshots(StatusReceiverMultiService):
    """Keeps what a 0.8 plugin would read at each event."""

    def __init__(self) -> None:
        StatusReceiverMultiService.__init__(self)
        self.seen: list[tuple[Any, ...]] = []
        self.texts: dict[str, defer.Deferred[None]] = {}
        self.started_texts: dict[str, list[str]] = {}
        self.finished: defer.Deferred[Any] = defer.Deferred()
        self.builder_names_at_attach: list[str] | None = None
        # At each stepFinished: the step, and whether it is its build's current step.
        self.current_at_step_end: list[tuple[str, bool]] = []
        # At each buildFinished: the builder's state and its current builds.
        self.state_at_build_end: list[tuple[str, list[Any]]] = []
        self.same_build_at_end: bool | None = None

    def setServiceParent(self, parent: Any) -> Any:
        d = StatusReceiverMultiService.setServiceParent(self, parent)
        self.builder_names_at_attach = parent.getStatus().getBuilderNames()
        parent.getStatus().subscribe(self)
        return d

    def builderAdded(self, name: str, builder: Any) -> Any:
        return self

    def builderChangedState(self, name: str, state: str) -> None:
        self.seen.append(("builderChangedState", name, state))

    def buildStarted(self, name: str, build: Any) -> Any:
        build.waitUntilFinished().addCallback(lambda b: self.seen.append(("waited", b.number)))
        return self

    def stepStarted(self, build: Any, step: Any) -> Any:
        self.seen.append(("stepStarted", step.getName(), build.getProperty("mid")))
        self.started_texts[step.getName()] = step.getText()
        return self

    def stepETAUpdate(self, build: Any, step: Any, eta: Any, expectations: Any) -> None:
        self.seen.append(("stepETAUpdate", step.getName()))

    def stepFinished(self, build: Any, step: Any, results: Any) -> None:
        self.current_at_step_end.append((step.getName(), build.getCurrentStep() is step))
        self.seen.append(
            ("stepFinished", step.getName(), build.getProperty("mid"), step.getText(),
             step.getResults(), build.getText())
        )  # fmt: skip

    def stepTextChanged(self, build: Any, step: Any, text: list[str]) -> None:
        self.seen.append(("stepTextChanged", step.getName(), list(text)))
        waiting = self.texts.get(" ".join(text))
        if waiting is not None and not waiting.called:
            waiting.callback(None)

    def buildFinished(self, name: str, build: Any, results: int) -> None:
        self.state_at_build_end.append(build.getBuilder().getState())
        self.same_build_at_end = build.getBuilder().getBuild(-1) is build
        self.seen.append(("buildFinished", build.number))
        if not self.finished.called:
            self.finished.callback(build)


class ChangesAtEnd(Recorder):
    """Notes the authors of each build's changes as the build ends, and of each buildset's."""

    def __init__(self) -> None:
        super().__init__("changes at end")
        self.changes: dict[int, list[str]] = {}
        self.buildset_changes: dict[int, list[str]] = {}
        self.request_changes: dict[int, list[str]] = {}

    def buildsetSubmitted(self, buildset: Any) -> None:
        (stamp,) = buildset.getSourceStamps()
        self.buildset_changes[buildset.bsid] = [c.who for c in stamp.changes]
        self._record()

    def requestSubmitted(self, request: Any) -> None:
        stamp = request.getSourceStamp().result
        self.request_changes[request.bsid] = [c.who for c in stamp.changes]
        self._record()

    def buildFinished(self, builderName: str, build: Any, results: Any) -> None:
        self.changes[build.getNumber()] = [c.who for c in build.getChanges()]
        super().buildFinished(builderName, build, results)


class Talkative(BuildStep):
    """
    A step whose text changes while it runs, as a 0.8 step's did: it goes
    on to the next text once the receiver has seen the last.
    """

    def __init__(self, texts: list[str], receiver: Snapshots, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.texts = texts
        self.receiver = receiver
        self.now = "starting"

    def getCurrentSummary(self) -> dict[str, str]:
        return {"step": self.now}

    @defer.inlineCallbacks
    def run(self) -> Any:
        for text in self.texts:
            seen = self.receiver.texts[text] = defer.Deferred()
            self.now = text
            self.updateSummary()
            yield seen
        return SUCCESS


class UntilStopped(BuildStep):
    """A step that runs until its build is stopped, telling C{started} as it starts."""

    def __init__(self, started: defer.Deferred[None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.started = started
        self._stop: defer.Deferred[None] = defer.Deferred()

    @defer.inlineCallbacks
    def run(self) -> Any:
        self.started.callback(None)
        yield self._stop
        return CANCELLED

    def interrupt(self, reason: Any) -> defer.Deferred[None]:
        if not self._stop.called:
            self._stop.callback(None)
        return super().interrupt(reason)


REVISION = "abc1234" + "0" * 33


class StatusAPITests(MasterTestCase):
    @defer.inlineCallbacks
    def start(self, build_steps: list, **kwargs: Any) -> defer.Generator:
        yield self.start_master(
            {"b1": build_steps},
            receivers=[self.snapshots],
            schedulers=[
                schedulers.ForceScheduler(name="force", builderNames=["b1"]),
                schedulers.SingleBranchScheduler(
                    name="main", change_filter=util.ChangeFilter(branch="main"),
                    treeStableTimer=None, builderNames=["b1"],
                ),
            ],
            **kwargs,
        )  # fmt: skip

    def setUp(self) -> None:
        self.snapshots = Snapshots()

    @defer.inlineCallbacks
    def build_of_a_change(self) -> defer.Generator:
        """The finished build that a change of revision r1 on main started."""
        yield self.start([python_step("emit", "print(1)")])
        yield self.master.data.updates.addChange(
            author="a", files=[], comments="c", revision="r1", branch="main", codebase=""
        )
        return (yield self.snapshots.finished)

    @defer.inlineCallbacks
    def test_a_build_lists_every_change_since_its_builder_last_built(self) -> defer.Generator:
        """
        As 0.8 gave a build the changes of each request it took: Buildbot 4
        keeps only the last change of a tree-stable period, and skips the
        requests it collapses.  Those the scheduler would not take are not
        among them.
        """
        heard = ChangesAtEnd()
        gate = os.path.abspath(self.mktemp())
        wait = f"import os, time\nwhile not os.path.exists({gate!r}): time.sleep(0.05)"
        main = schedulers.SingleBranchScheduler(
            name="main", treeStableTimer=3600, builderNames=["b1"],
            change_filter=util.ChangeFilter(branch="dev", category_fn=lambda c: c != "docs"),
        )  # fmt: skip
        force = schedulers.ForceScheduler(name="force", builderNames=["b1"])
        yield self.start_master(
            {"b1": [python_step("gate", wait)]}, receivers=[heard], schedulers=[main, force]
        )
        ssids = {}
        for who, branch, category in [
            ("alice", "dev", None), ("bob", "dev", None), ("other", "elsewhere", None),
            ("mallory", "dev", "docs"), ("carol", "dev", None),
        ]:  # fmt: skip
            ssids[who] = yield self.change(who, branch, category)
        # the end of the tree-stable period
        yield self.buildset_of(ssids["carol"])
        yield poll(self.building, "build 1 to start")
        # Two requests while the builder is busy: Buildbot collapses dave's into erin's.
        for who in ("dave", "erin"):
            yield self.buildset_of((yield self.change(who, "dev", None)))
        open(gate, "w").close()
        yield heard.wait_for_builds(2)
        yield self.force("b1")
        yield heard.wait_for_builds(3)
        requests = yield self.master.data.get(("buildrequests",))
        self.assertEqual(
            sorted(r["results"] for r in requests), [SUCCESS, SUCCESS, SUCCESS, SKIPPED]
        )
        expected = {1: ["alice", "bob", "carol"], 2: ["dave", "erin"], 3: []}
        self.assertEqual(heard.changes, expected)
        # Each buildset (and its request) lists the changes its scheduler
        # gathered for it, as 0.8's database had them.
        yield heard.wait_until(lambda: len(heard.request_changes) == 4)
        gathered = {1: ["alice", "bob", "carol"], 2: ["dave"], 3: ["erin"], 4: []}
        self.assertEqual((heard.buildset_changes, heard.request_changes), (gathered, gathered))
        # The same from history
        yield self.reconfig(services=[])
        yield self.reconfig(services=[LegacyStatus()])
        builder = self.legacy_status().getBuilder("b1")
        self.assertEqual(
            {n: [c.who for c in builder.getBuild(n).getChanges()] for n in expected}, expected
        )
        self.assertEqual(builder.getBuild(2).getResponsibleUsers(), ["dave", "erin"])

    @defer.inlineCallbacks
    def change(self, who: str, branch: str, category: str | None) -> defer.Generator:
        """A change by C{who}: its source stamp's id."""
        changeid = yield self.master.data.updates.addChange(
            author=who, files=[], comments="", revision=who, branch=branch, category=category,
            codebase="",
        )  # fmt: skip
        change = yield self.master.data.get(("changes", changeid))
        return change["sourcestamp"]["ssid"]

    @defer.inlineCallbacks
    def buildset_of(self, ssid: int) -> defer.Generator:
        """A buildset of the tree-stable scheduler for source stamp C{ssid}, as it makes them."""
        builderid = yield self.master.data.updates.findBuilderId("b1")
        yield self.master.data.updates.addBuildset(
            waited_for=False, scheduler="main", reason="changes", builderids=[builderid],
            sourcestamps=[ssid], properties={"scheduler": ("main", "Scheduler")},
        )  # fmt: skip

    @defer.inlineCallbacks
    def building(self) -> defer.Generator:
        builds = yield self.master.data.get(("builders", "b1", "builds"))
        return bool(builds)

    @defer.inlineCallbacks
    def test_source_stamps_changes_users_and_revisions(self) -> defer.Generator:
        yield self.start([python_step("emit", "print('built')")])
        yield self.master.data.updates.addChange(
            author="Alice <alice@example.org>", committer="Carol <carol@example.org>",
            files=["src/b.c", "src/a.c"], comments="fix the frobnicator", revision=REVISION,
            branch="main", repository="https://example.org/repo.git", project="frob",
            codebase="", when_timestamp=1700000000, revlink="https://example.org/c/abc1234",
        )  # fmt: skip
        build = yield self.snapshots.finished
        (change,) = yield self.master.data.get(("changes",))
        (ss,) = build.getSourceStamps()
        self.assertIs(build.getSourceStamp(), ss)
        self.assertEqual(
            (ss.branch, ss.revision, ss.repository, ss.project, ss.codebase, ss.patch),
            ("main", REVISION, "https://example.org/repo.git", "frob", "", None),
        )
        (got,) = build.getChanges()
        self.assertEqual(ss.changes, (got,))
        self.assertEqual(
            (got.number, got.who, got.author, got.comments, got.files, got.revision, got.when),
            (change["changeid"], "Alice <alice@example.org>", "Alice <alice@example.org>",
             "fix the frobnicator", ["src/a.c", "src/b.c"], REVISION, 1700000000),
        )  # fmt: skip
        self.assertIn("fix the frobnicator", got.asText())
        self.assertIn(f'<a href="https://example.org/c/abc1234">{REVISION}</a>', got.asHTML())
        self.assertEqual(got.asDict()["number"], change["changeid"])
        self.assertEqual(build.getResponsibleUsers(), ["Alice <alice@example.org>"])
        status = self.legacy_status()
        self.assertEqual(
            status.getURLForThing(got), f"{status.getBuildbotURL()}#/changes/{change['changeid']}"
        )
        # Buildbot 4's owners property holds the blamelist; 0.8's interested
        # users were those who asked for the build, not its authors.
        self.assertEqual(build.getProperty("owners"), ["Alice <alice@example.org>"])
        self.assertEqual(build.getInterestedUsers(), [])
        # 0.8 cut each revision to 7 characters
        self.assertEqual(build.getRevisions(), "abc1234")
        self.assertEqual(ss.asDict()["changes"], [got.asDict()])
        self.assertEqual(
            build.getReason(),
            "The SingleBranchScheduler scheduler named 'main' triggered this build",
        )
        self.assertEqual(build.changes, [got])

    @defer.inlineCallbacks
    def test_a_patch_and_its_author(self) -> defer.Generator:
        yield self.start([python_step("emit", "print('patched')")])
        builderid = yield self.master.data.updates.findBuilderId("b1")
        yield self.master.data.updates.addBuildset(
            waited_for=False,
            scheduler="force",
            reason="try",
            builderids=[builderid],
            sourcestamps=[{
                "branch": "main", "revision": "def5678", "repository": "r", "project": "p",
                "codebase": "", "patch_body": b"--- a\n+++ b\n", "patch_level": 1,
                "patch_author": "Dave <dave@example.org>", "patch_comment": "try this",
                "patch_subdir": ".",
            }],
            properties={"owner": ("Erin <erin@example.org>", "Force Build Form")},
        )  # fmt: skip
        build = yield self.snapshots.finished
        ss = build.getSourceStamp()
        self.assertEqual(ss.patch, (1, "--- a\n+++ b\n", "."))
        self.assertEqual(ss.patch_info, ("Dave <dave@example.org>", "try this"))
        self.assertEqual(build.getResponsibleUsers(), ["Dave <dave@example.org>"])
        self.assertEqual(build.getInterestedUsers(), ["Erin <erin@example.org>"])
        self.assertEqual(build.getChanges(), [])
        as_dict = ss.asDict()
        self.assertEqual(
            {k: as_dict[k] for k in ("hasPatch", "patch_level", "patch_author", "revision")},
            {"hasPatch": True, "patch_level": 1, "patch_author": "Dave <dave@example.org>",
             "revision": "def5678"},
        )  # fmt: skip

    @defer.inlineCallbacks
    def test_live_step_text_properties_and_builder_state(self) -> defer.Generator:
        yield self.start([
            Talkative(["one", "two words"], self.snapshots, name="talk"),
            steps.SetProperty(property="mid", value="set mid-build", name="setter"),
            python_step("after", "print(1)"),
        ])  # fmt: skip
        yield self.force("b1")
        build = yield self.snapshots.finished
        seen = self.snapshots.seen
        # idle once the build's end is told
        yield poll(lambda: seen[-1] == ("builderChangedState", "b1", "idle"), "idle")
        # told at subscribe (offline, if the worker is not connected yet),
        # then at every change
        states = [e[2] for e in seen if e[0] == "builderChangedState"]
        self.assertIn(states[0], ("offline", "idle"))
        self.assertEqual(states[-3:], ["idle", "building", "idle"])
        self.assertTrue(all(a != b for a, b in zip(states, states[1:])), states)
        # text, as it changed while the step ran
        changes = [e[2] for e in seen if e[0] == "stepTextChanged" and e[1] == "talk"]
        self.assertIn(["one"], changes)
        self.assertIn(["two", "words"], changes)
        # a property a step set is there at the next event
        self.assertIn(("stepStarted", "after", "set mid-build"), seen)
        self.assertIn(("stepStarted", "setter", None), seen)
        # ... and at its own step's end, as in 0.8, though Buildbot stores
        # it only after that
        (setter_finished,) = [e for e in seen if e[:2] == ("stepFinished", "setter")]
        self.assertEqual(setter_finished[2], "set mid-build")
        props = yield self.master.data.get(("builds", build.buildid, "properties"))
        # ... with 0.8's name of the worker beside Buildbot 4's
        self.assertEqual(
            build.getProperties().asDict(),
            {**{k: tuple(v) for k, v in props.items()}, "slavename": ("local1", "BuildSlave")},
        )
        self.assertEqual((yield build.render(util.Interpolate("%(prop:slavename)s"))), "local1")
        data = yield self.master.data.get(("builds", build.buildid))
        self.assertEqual(build.getText(), data["state_string"].split())
        talk = build.getSteps()[1]
        step_data = yield self.master.data.get(("steps", talk.stepid))
        self.assertEqual(talk.getText(), step_data["state_string"].split())
        self.assertEqual(talk.getResults(), (SUCCESS, []))
        self.assertEqual(talk.step_number, step_data["number"])
        self.assertFalse(talk.isHidden())
        # A step stays its build's current step as it finishes and until
        # the next starts, as in 0.8; none once the build has finished.
        self.assertEqual(
            self.snapshots.current_at_step_end,
            [(name, True) for name in ("worker_preparation", "talk", "setter", "after")],
        )
        self.assertIsNone(build.getCurrentStep())
        # While its watchers hear buildFinished, the builder still says
        # "building", the build no longer current, as 0.8's did.
        self.assertEqual(self.snapshots.state_at_build_end, [("building", [])])
        # ... and it is the builder's newest build, as the same object
        self.assertTrue(self.snapshots.same_build_at_end)
        self.assertEqual(build.getBuilder().getState(), ("idle", []))

    @defer.inlineCallbacks
    def test_texts_are_08_words(self) -> defer.Generator:
        yield self.start([
            python_step("soft", "exit(1)", flunkOnFailure=False, descriptionDone="soft"),
            python_step("fail", "exit(1)", descriptionDone="fail"),
            python_step("after", "print(1)", descriptionDone="after"),
            python_step("desc", "print(1)", description=["compiling", "it"],
                        descriptionSuffix="now", alwaysRun=True),
        ])  # fmt: skip
        yield self.force("b1")
        build = yield self.snapshots.finished
        finished = {e[1]: e[3:] for e in self.snapshots.seen if e[0] == "stepFinished"}
        # Buildbot's "(failure)" is 0.8's last word; only a step whose
        # flags let it fail the build names itself in the build's text.
        self.assertEqual(finished["soft"], (["soft", "failed"], (FAILURE, []), []))
        self.assertEqual(finished["fail"], (["fail", "failed"], (FAILURE, ["fail"]), ["fail"]))
        self.assertEqual(finished["after"], (["after"], (SUCCESS, []), ["fail"]))
        # ... and so it is in the text receivers are told of as it changes:
        # Buildbot adds its "(failure)" a moment before the step finishes.
        # (Buildbot says "running" of a step that has run for a second:
        # when that comes depends on the machine.)
        told = [e[1:] for e in self.snapshots.seen if e[0] == "stepTextChanged"]
        self.assertEqual(
            [t for t in told if t[0] in ("soft", "fail") and t[1] != ["running"]],
            [("soft", ["soft", "failed"]), ("fail", ["fail", "failed"])],
        )
        self.assertEqual(build.getText(), ["failed", "fail"])
        self.assertEqual(build.asDict()["text"], ["failed", "fail"])
        # The builder's watchers hear of the end first, as in 0.8.
        yield poll(lambda: ("waited", 1) in self.snapshots.seen, "the build's waiter")
        ends = [e for e in self.snapshots.seen if e[0] in ("buildFinished", "waited")]
        self.assertEqual(ends, [("buildFinished", 1), ("waited", 1)])
        # not Buildbot's "pending": 0.8 described a step by its name at least
        self.assertEqual(self.snapshots.started_texts["after"], ["after"])
        # ... and a step with a description, that, as 0.8 gave it at the
        # step's start: Buildbot stores it a moment later, no change.
        self.assertEqual(self.snapshots.started_texts["desc"], ["compiling", "it", "now"])
        self.assertNotIn(
            ("stepTextChanged", "desc", ["compiling", "it", "now"]), self.snapshots.seen
        )
        # A receiver returned plainly from stepStarted gets a stepETAUpdate
        # at once (and then every 10 s), as in 0.8.
        seen = self.snapshots.seen
        for name in ("soft", "fail", "after"):
            started = [e[:2] for e in seen].index(("stepStarted", name))
            self.assertEqual(seen[started + 1], ("stepETAUpdate", name))

    @defer.inlineCallbacks
    def test_a_stopped_build_is_an_exception_as_in_0_8(self) -> defer.Generator:
        started: defer.Deferred[None] = defer.Deferred()
        yield self.start([UntilStopped(started, name="wait", descriptionDone="waited")])
        yield self.force("b1")
        yield started
        (running,) = yield self.master.data.get(("builds",))
        yield self.master.data.control("stop", {"reason": "enough"}, ("builds", running["buildid"]))
        build = yield self.snapshots.finished
        finished = yield self.master.data.get(("builds", running["buildid"]))
        self.assertEqual(finished["results"], CANCELLED)  # Buildbot's word for it
        # 0.8 had no CANCELLED: a build it stopped was an EXCEPTION, its
        # interrupted step too; the step's text ended in "interrupted", and
        # that was the only text it was told of.
        stopped = {e[1]: e[3:] for e in self.snapshots.seen if e[0] == "stepFinished"}["wait"]
        self.assertEqual(
            stopped, (["waited", "interrupted"], (EXCEPTION, ["interrupted"]), ["interrupted"])
        )
        self.assertEqual(build.getText(), ["exception", "interrupted"])
        self.assertEqual(build.getResults(), EXCEPTION)
        texts = [e[2] for e in self.snapshots.seen if e[:2] == ("stepTextChanged", "wait")]
        self.assertEqual([t for t in texts if t != ["running"]], [["waited", "interrupted"]])

    @defer.inlineCallbacks
    def test_render_and_as_dict(self) -> defer.Generator:
        build = yield self.build_of_a_change()
        rendered = build.render(util.Interpolate("%(prop:buildername)s at %(src::revision)s"))
        self.assertEqual((yield rendered), "b1 at r1")
        self.assertEqual((yield build.render(util.Property("buildnumber"))), 1)
        self.assertEqual((yield build.render("plain")), "plain")
        as_dict = build.asDict()
        self.assertEqual(
            sorted(as_dict),
            sorted(["builderName", "number", "sourceStamps", "reason", "blame", "properties",
                    "times", "text", "results", "slave", "logs", "eta", "steps", "currentStep"]),
        )  # fmt: skip
        self.assertEqual(
            (as_dict["builderName"], as_dict["number"], as_dict["slave"]), ("b1", 1, "local1")
        )
        self.assertEqual([s["name"] for s in as_dict["steps"]], ["worker_preparation", "emit"])
        self.assertEqual(as_dict["logs"][0][0], "stdio")
        (log,) = build.getSteps()[1].getLogs()
        self.assertEqual(
            log.asDict(),
            {"name": "stdio", "url": as_dict["logs"][0][1], "step": "emit", "isFinished": True},
        )
        builder = build.getBuilder()
        # (this runs inside buildFinished, while the builder still says "building")
        yield poll(lambda: builder.getState()[0] == "idle", "the builder's state told")
        self.assertEqual(builder.asDict()["state"], "idle")
        self.assertEqual(builder.currentBuilds, [])
        self.assertEqual(builder.category, None)
        # an untagged builder's tags are None, as 0.8 kept them
        self.assertIsNone(builder.getTags())
        self.assertIsNone(builder.asDict()["tags"])
        self.assertFalse(builder.matchesAnyTag(["x"]))

    @defer.inlineCallbacks
    def test_every_name_of_the_readme_status_object_table_is_there(self) -> defer.Generator:
        build = yield self.build_of_a_change()
        status = self.legacy_status()
        builder = build.getBuilder()
        step = build.getSteps()[1]
        request = BuildRequestStatus(status, {"buildrequestid": 1, "buildsetid": 1}, builder)
        buildset = BuildSetStatus(status, {"bsid": 1, "reason": "r"})
        instances = {
            "`LegacyStatus` (0.8 `Status`)": status,
            "`getURLForThing(thing)`": status,
            "`BuilderStatus`": builder,
            "`BuildStatus`": build,
            "`BuildStepStatus`": step,
            "`SourceStamp`": build.getSourceStamps()[0],
            "`Change` (a Buildbot 4 `Change`)": build.getChanges()[0],
            "`SlaveStatus`": status.getSlave("local1"),
            "`BuildRequestStatus`": request,
            "`BuildSetStatus`": buildset,
            "`LogFile`": step.getLogs()[0],
        }
        table = readme_table("### Status objects")
        self.assertEqual(sorted(table), sorted(instances))
        for row, names in table.items():
            if row == "`getURLForThing(thing)`":
                continue  # what it takes, not what it has
            for name in names:
                self.assertTrue(hasattr(instances[row], name), f"{row}: {name}")

    @defer.inlineCallbacks
    def test_builder_names_are_known_as_receivers_attach(self) -> defer.Generator:
        yield self.start([python_step("emit", "print(1)")])
        self.assertEqual(self.snapshots.builder_names_at_attach, ["b1"])
        self.assertEqual(self.legacy_status().basedir, self.master.basedir)
        botmaster = self.legacy_status().botmaster
        self.assertEqual(list(botmaster.builders), ["b1"])
        self.assertEqual(botmaster.getBuildernames(), ["b1"])

    @defer.inlineCallbacks
    def test_urls_for_things_are_the_old_pages_where_the_plugin_serves_them(
        self,
    ) -> defer.Generator:
        www = {"port": "tcp:0:interface=127.0.0.1", "plugins": {"legacy_logs": {}}}
        yield self.start([python_step("emit", "print('here')")], www=www)
        self.master.config.buildbotURL = f"http://127.0.0.1:{self.master.www.getPortnum()}/"
        yield self.force("b1")
        build = yield self.snapshots.finished
        status = self.legacy_status()
        (log,) = build.getLogs()
        url = status.getURLForThing(log)
        self.assertEqual(
            url,
            status.getBuildbotURL()
            + "plugins/legacy_logs/builders/b1/builds/1/steps/emit/logs/stdio",
        )
        response = yield treq.get(url + "/text", persistent=False)
        self.assertEqual((yield treq.content(response)), b"here\n")
        old = status.getBuildbotURL() + "plugins/legacy_logs/builders/b1"
        (step,) = build.getSteps()[1:]
        # 0.8's paths, which plugins extend ("/logs/stdio" after a step's)
        self.assertEqual(
            [status.getURLForThing(thing) for thing in (build.getBuilder(), build, step)],
            [old, old + "/builds/1", old + "/builds/1/steps/emit"],
        )
        self.assertEqual(status.getURLForBuild("b1", 1), old + "/builds/1")
        for page in (old, old + "/builds/1", old + "/builds/1/steps/emit/logs/stdio"):
            response = yield treq.get(page, persistent=False)
            self.assertEqual(response.code, 200, page)


class Roster(Snapshots):
    """Keeps a build's list of steps as a 0.8 plugin saw it at each event."""

    def __init__(self) -> None:
        Snapshots.__init__(self)
        self.at_start: list[Any] = []
        self.lists: list[tuple[str, list[tuple[str, int, bool]]]] = []

    def buildStarted(self, name: str, build: Any) -> Any:
        self.at_start = build.getSteps()
        self._note("buildStarted", build)
        return Snapshots.buildStarted(self, name, build)

    def stepStarted(self, build: Any, step: Any) -> Any:
        self._note(step.getName(), build)
        return Snapshots.stepStarted(self, build, step)

    def _note(self, event: str, build: Any) -> None:
        self.lists.append(
            (event, [(s.getName(), s.step_number, s.isStarted()) for s in build.getSteps()])
        )


class AddsAStep(BuildStep):
    """A step that adds one after itself, as a step could in 0.8 too."""

    def run(self) -> Any:
        self.build.addStepsAfterCurrentStep([python_step("added", "print(1)")])
        return SUCCESS


class StepsToComeTests(MasterTestCase):
    @defer.inlineCallbacks
    def test_a_build_lists_every_step_from_its_start_as_0_8_did(self) -> defer.Generator:
        roster = Roster()
        yield self.start_master(
            {"b1": [
                python_step(util.Interpolate("on-%(prop:buildername)s"), "print(1)"),
                python_step("emit", "print(1)"),
                python_step("emit", "print(2)"),
                AddsAStep(name="adder"),
                python_step("fail", "exit(1)", haltOnFailure=True),
                python_step("never", "print(1)"),
                python_step("always", "print(1)", alwaysRun=True),
            ]},
            receivers=[roster],
            http=True,
        )  # fmt: skip
        yield self.force("b1")
        build = yield roster.finished
        # At buildStarted: every step the build will start, none started,
        # under the names and numbers Buildbot gives them as they start,
        # after the one it adds before it announces a build.
        planned = ["worker_preparation", "on-b1", "emit", "emit_1", "adder", "fail", "never",
                   "always"]  # fmt: skip
        self.assertEqual(
            roster.lists[0], ("buildStarted", [(n, i, False) for i, n in enumerate(planned)])
        )
        # Each step is the object listed at the start, started; the step
        # another added comes in its place.
        for listed in roster.at_start:
            if listed.getName() != "never":
                self.assertIn(listed, build.getSteps())
        self.assertEqual(
            [(s.getName(), s.isStarted()) for s in build.getSteps()],
            [("worker_preparation", True), ("on-b1", True), ("emit", True), ("emit_1", True),
             ("adder", True), ("added", True), ("fail", True), ("never", False),
             ("always", True)],
        )  # fmt: skip
        lists = dict(roster.lists)
        self.assertEqual(
            lists["added"],
            [("worker_preparation", 0, True), ("on-b1", 1, True), ("emit", 2, True),
             ("emit_1", 3, True), ("adder", 4, True), ("added", 5, True), ("fail", 6, False),
             ("never", 7, False), ("always", 8, False)],
        )  # fmt: skip
        # The started steps are the database's, by number; the one the
        # build passed over stays, unstarted, as in 0.8.
        step_data = yield self.master.data.get(("builds", build.buildid, "steps"))
        started = [s for s in build.getSteps() if s.isStarted()]
        self.assertEqual(
            [(s.stepid, s.getName(), s.step_number) for s in started],
            [(d["stepid"], d["name"], d["number"]) for d in step_data],
        )
        never = build.getStep("never")
        self.assertEqual(
            (never.getResults(), never.getText(), never.getLogs()), ((None, []), [], [])
        )
        # The modern UI has no page of it (its number is the next started
        # step's, which it comes before): its build's is its URL.
        status = self.legacy_status()
        self.assertEqual(
            [status.getURLForThing(s) for s in (never, build.getStep("always"))],
            [status.getURLForThing(build), f"{status.getURLForThing(build)}/steps/7"],
        )
        self.assertEqual(build.getText(), ["failed", "fail"])
        self.assertEqual(
            [(d["name"], d["isStarted"]) for d in build.asDict()["steps"]][-2:],
            [("never", False), ("always", True)],
        )
        # The pages list it and have no log of it.
        url = f"{self.pages}/builders/b1/builds/{build.number}"
        page = yield (yield treq.get(url, persistent=False)).text()
        self.assertIn(">never</a>", page)
        self.assertEqual(page.count("not started"), 2)  # its class and its text
        missing = yield treq.get(f"{url}/steps/never/logs/stdio", persistent=False)
        self.assertEqual(missing.code, 404)


class WithoutThePlugin(MasterTestCase):
    @defer.inlineCallbacks
    def test_urls_for_things_are_the_modern_ui_otherwise(self) -> defer.Generator:
        recorder = Recorder()
        yield self.start_master(
            {"b1": [python_step("emit", "print(1)"), html_log_step("test results", "<p>1</p>")]},
            receivers=[recorder],
        )
        yield self.force("b1")
        yield recorder.wait_for_builds(1)
        status = self.legacy_status()
        build = yield status.lookup.locate_build("b1", 1)
        root = status.getBuildbotURL()
        self.assertEqual(
            [status.getURLForThing(thing) for thing in (status, build.getBuilder(), build)],
            [root, root + "#/builders/1", root + "#/builders/1/builds/1"],
        )
        self.assertEqual(status.getURLForBuild("b1", 1), root + "#/builders/1/builds/1")
        self.assertIsNone(status.getURLForBuild("gone", 1))
        self.assertEqual(status.getURLForThing(status.getSlave("local1")), root + "#/workers/1")
        self.assertIsNone(status.getURLForThing(object()))
        # The UI names a log by its slug, live or from history
        urls = {
            "stdio": "#/builders/1/builds/1/steps/1/logs/stdio",
            "test results": "#/builders/1/builds/1/steps/2/logs/test_results",
        }
        for log in build.getLogs():
            self.assertTrue(status.getURLForThing(log).endswith(urls[log.getName()]))
        for step, name in (("emit", "stdio"), ("report", "test results")):
            log = yield status.getLogFile("b1", 1, step, name)
            self.assertTrue(status.getURLForThing(log).endswith(urls[name]), name)
        self.assertIsInstance(self.legacy_status(), LegacyStatus)


class HistoryTests(MasterTestCase):
    @defer.inlineCallbacks
    def test_build_history_from_the_database(self) -> defer.Generator:
        fail = os.path.abspath(self.mktemp())
        script = f"import os, sys; print('run'); sys.exit(2 if os.path.exists({fail!r}) else 0)"
        yield self.start_master({"b1": [python_step("check", script)]})
        for number, failing in ((1, False), (2, True), (3, False)):
            if failing:
                open(fail, "w").close()
            elif os.path.exists(fail):
                os.unlink(fail)
            yield self.force("b1")
            yield self.recorder.wait_for_builds(number)
        # As after a restart: a new LegacyStatus, nothing at hand, no spool.
        yield self.reconfig(services=[])
        shutil.rmtree(os.path.join(self.master.basedir, "legacy_logs"))
        yield self.reconfig(services=[LegacyStatus()])
        builder = self.legacy_status().getBuilder("b1")
        newest = builder.getBuild(-1)
        self.assertEqual((newest.getNumber(), newest.getResults()), (3, SUCCESS))
        self.assertEqual(builder.getBuild(-3).getNumber(), 1)
        self.assertIsNone(builder.getBuild(-4))
        self.assertIsNone(builder.getBuild(4))
        self.assertIs(builder.getBuild(3), newest)  # cached, with a bound
        second = newest.getPreviousBuild()
        self.assertEqual((second.getNumber(), second.getResults()), (2, FAILURE))
        # 0.8's texts; from the database a step that failed is named (its
        # flags are not stored)
        self.assertEqual(
            (newest.getText(), second.getText(), second.getSteps()[1].getText()[-1]),
            (["build", "successful"], ["failed", "check"], "failed"),
        )
        self.assertIsNone(newest.getNextBuild())
        self.assertEqual(builder.getLastFinishedBuild().getNumber(), 3)
        self.assertEqual(builder.getBuildByNumber(1).getNumber(), 1)

        def numbers(**filters: Any) -> list[int]:
            return [b.getNumber() for b in builder.generateFinishedBuilds(**filters)]

        self.assertEqual(numbers(), [3, 2, 1])
        self.assertEqual(numbers(results=[FAILURE]), [2])
        self.assertEqual(numbers(num_builds=2), [3, 2])
        self.assertEqual(numbers(max_buildnum=2), [2, 1])
        self.assertEqual(numbers(max_search=2), [3, 2])
        self.assertEqual(numbers(branches=["nope"]), [])
        self.assertEqual(numbers(filter_fn=lambda b: b.getNumber() != 2), [3, 1])
        # (the database keeps whole seconds: builds may end in the same one)
        cutoff = second.getTimes()[1]
        before = [n for n in (3, 2, 1) if builder.getBuild(n).getTimes()[1] < cutoff]
        self.assertEqual(numbers(finished_before=cutoff), before)
        self.assertNotIn(2, before)
        # old builds come with their steps and logs, read from the database
        data = yield self.master.data.get(("builders", "b1", "builds", 2))
        self.assertEqual(second.getTimes()[0], data["started_at"].timestamp())
        (_, step) = second.getSteps()
        self.assertEqual((step.getName(), step.getResults()[0]), ("check", FAILURE))
        (log,) = step.getLogs()
        _, content = yield self.db_log("b1", 2, "check", "stdio")
        self.assertEqual(log.getText(), db_text(content))
        self.assertIn("run\n", log.getText())

    @defer.inlineCallbacks
    def test_the_rest_of_0_8s_history_api(self) -> defer.Generator:
        def revision_step() -> Any:
            return steps.SetProperty(
                name="revision",
                property="got_revision",
                value=util.Interpolate("rev%(prop:buildnumber)s"),
            )

        tagged_steps = [revision_step(), html_log_step("report.html", "<b>made</b>")]
        yield self.start_master(
            {},
            builders=[
                util.BuilderConfig(
                    name="tagged", workernames=["local1"], tags=["a", "b"],
                    description="Tagged builds", factory=util.BuildFactory(tagged_steps),
                ),
                util.BuilderConfig(
                    name="plain", workernames=["local1"],
                    factory=util.BuildFactory([python_step("hi", "print('hi')")]),
                ),
            ],
            schedulers=[schedulers.ForceScheduler(name="force", builderNames=["tagged", "plain"])],
            change_source=[ChangeSource(name="quiet")],
        )  # fmt: skip
        for finished, builder in enumerate(("tagged", "plain", "tagged"), 1):
            yield self.force(builder)
            yield self.recorder.wait_for_builds(finished)
        changeid = yield self.master.data.updates.addChange(
            author="alice", files=["f.c"], comments="fix", revision="r9", branch=None,
            category=None, revlink=None, properties={}, repository="repo", codebase="",
            project="p", when_timestamp=None, src=None,
        )  # fmt: skip
        # The builds' ends set apart (builds this quick end in one second
        # of the database), two of them at once.
        for (builder_name, number), started, ended in (
            (("tagged", 1), 500, 1000),
            (("plain", 1), 500, 1000),
            (("tagged", 2), 2500, 3000),
        ):
            yield self.set_times(builder_name, number, started, ended)
        # As after a restart: a new LegacyStatus, nothing at hand.
        yield self.reconfig(services=[])
        yield self.reconfig(services=[LegacyStatus()])
        status = self.legacy_status()
        tagged, plain = status.getBuilder("tagged"), status.getBuilder("plain")
        # Tags as 0.8 matched them: an empty list matches no builder;
        # categories, when given, before tags.
        self.assertEqual(status.getBuilderNames(), ["plain", "tagged"])
        self.assertEqual(status.getBuilderNames(tags=[]), [])
        self.assertEqual(status.getBuilderNames(tags=["b", "c"]), ["tagged"])
        self.assertEqual(status.getBuilderNames(categories=["a"], tags=["c"]), ["tagged"])
        self.assertEqual((tagged.getDescription(), plain.getDescription()), ("Tagged builds", None))
        self.assertEqual(
            [tagged.matchesAllTags(["a", "b"]), tagged.matchesAllTags(["a", "c"]),
             plain.matchesAllTags([]), plain.matchesAllTags(["a"])],
            [True, False, True, False],
        )  # fmt: skip
        # By revision (the newest build that got it) and by number.
        self.assertEqual(tagged.getBuild(0, revision="rev1").getNumber(), 1)
        self.assertEqual(tagged.getBuildByRevision("rev2").getNumber(), 2)
        self.assertIsNone(tagged.getBuildByRevision("rev3"))
        with self.assertRaises(IndexError):
            tagged.getBuildByNumber(3)
        # max_search counts from the newest build, as 0.8's did; None finds nothing.
        self.assertEqual(
            [[b.getNumber() for b in tagged.generateFinishedBuilds(**kw)]
             for kw in ({"max_buildnum": 1, "max_search": 1},
                        {"max_buildnum": 1, "max_search": 2}, {"max_search": None})],
            [[], [1], []],
        )  # fmt: skip

        # The whole status's finished builds: the newest end first, a tie
        # going to the later builder, as 0.8's sort left it.
        def named(found: Any) -> list[tuple[str, int]]:
            return [(b.getBuilder().getName(), b.getNumber()) for b in found]

        newest_first = [("tagged", 2), ("tagged", 1), ("plain", 1)]
        self.assertEqual(named(status.generateFinishedBuilds()), newest_first)
        self.assertEqual(named(status.generateFinishedBuilds(num_builds=1)), newest_first[:1])
        self.assertEqual(named(status.generateFinishedBuilds(builders=["plain"])), [("plain", 1)])
        # An HTML log from history is an HTMLLogFile, as it was live.
        (_, _, report) = tagged.getBuild(1).getSteps()
        (html_log,) = report.getLogs()
        self.assertIsInstance(html_log, HTMLLogFile)
        self.assertEqual(list(html_log.getChunks()), [(STDERR, "<b>made</b>\n")])

        # The waterfall's generator: each build's started steps, last
        # first, then the build, newest build first, the builder's events
        # between them by time.
        for text, when in ((["old"], 1.0), (["between"], 1500.0), (["new"], None)):
            event = tagged.addPointEvent(text)
            event.started = when or event.started

        def kinds(found: Any) -> list[Any]:
            return [
                ("build", x.getNumber()) if isinstance(x, BuildStatus)
                else ("step", x.getName()) if isinstance(x, BuildStepStatus)
                else ("event", x.getText())
                for x in found
            ]  # fmt: skip

        self.assertEqual(
            kinds(tagged.eventGenerator()),
            [("event", ["new"]),
             ("step", "report"), ("step", "revision"), ("step", "worker_preparation"),
             ("build", 2),
             ("event", ["between"]),
             ("step", "report"), ("step", "revision"), ("step", "worker_preparation"),
             ("build", 1),
             ("event", ["old"])],
        )  # fmt: skip
        events = [("event", ["new"]), ("event", ["between"]), ("event", ["old"])]
        self.assertEqual(kinds(tagged.eventGenerator(categories=["c"])), events)
        # Builds that started before minTime end it; the events after the
        # first too (0.8 gave the newest whatever its time).
        self.assertEqual(kinds(tagged.eventGenerator(minTime=2501)), events[:1])
        # The rest of 0.8's Status.
        change = yield status.getChange(changeid)
        self.assertEqual((change.who, change.files, change.revision), ("alice", ["f.c"], "r9"))
        self.assertIsNone((yield status.getChange(changeid + 1)))
        self.assertEqual([s.name for s in status.getSchedulers()], ["force"])
        self.assertEqual([c.name for c in status.getChangeSources()], ["quiet"])
        self.assertIs(status.getMetrics(), self.master.metrics)
        # A reconfig's description and tags, as 0.8's reconfig set them
        # (LegacyStatus's own settings the same).
        builders = self.master_config_dict["builders"]
        builders[0].description, builders[0].tags = "Retagged", ["c"]
        yield self.reconfig(builders=builders, services=[LegacyStatus()])
        self.assertIs(self.legacy_status(), status)
        self.assertEqual((tagged.getDescription(), tagged.getTags()), ("Retagged", ["c"]))

    @defer.inlineCallbacks
    def set_times(self, builder: str, number: int, started: int, ended: int) -> Any:
        """
        Say in the database that the build and its steps started at
        C{started} and ended at C{ended}, before anything read them.
        """
        build = yield self.master.data.get(("builders", builder, "builds", number))
        builds, build_steps = self.master.db.model.builds, self.master.db.model.steps
        queries = [
            builds.update()
            .where(builds.c.id == build["buildid"])
            .values(started_at=started, complete_at=ended),
            build_steps.update()
            .where(build_steps.c.buildid == build["buildid"])
            .values(started_at=started, complete_at=ended),
        ]
        yield self.master.db.pool.do_with_transaction(
            lambda conn: [conn.execute(query).rowcount for query in queries]
        )


class Counting(BuildStep):
    """A step that counts failed tests, as 0.8's Test steps set their statistics."""

    def __init__(self, failed: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failed = failed

    def run(self) -> Any:
        self.setStatistic("tests-failed", self.failed)
        return defer.succeed(SUCCESS)


class AtEachEnd(Recorder):
    """Notes what 0.8 plugins read of steps and builds as they start and end."""

    def __init__(self) -> None:
        super().__init__("at each end")
        self.noted: list[tuple[Any, ...]] = []

    def stepStarted(self, build: Any, step: Any) -> Any:
        self.noted.append(("started", build.getBuilder().getName(), step.getName(),
                           step.isWaitingForLocks()))  # fmt: skip
        return super().stepStarted(build, step)

    def stepFinished(self, build: Any, step: Any, results: Any) -> None:
        self.noted.append(("finished", step.getName(), step.isSkipped(),
                           step.hasStatistic("tests-failed"), step.getStatistics()))  # fmt: skip
        super().stepFinished(build, step, results)

    def buildFinished(self, builderName: str, build: Any, results: Any) -> None:
        if builderName == "counts":
            build.setProperty("noted", "yes")
            self.noted.append((
                repr(build),
                build.getSummaryStatistic("tests-failed", operator.add),
                build.getSummaryStatistic("tests-failed", operator.add, 10),
                build.hasProperty("buildnumber"), build.has_key("nope"),
                IProperties(build).getProperty("buildername"),
                build.getProperties().getPropertySource("noted"),
                "noted" in build.getProperties().runtime,
            ))  # fmt: skip
        super().buildFinished(builderName, build, results)


class StepDetailTests(MasterTestCase):
    @defer.inlineCallbacks
    def test_statistics_skips_locks_and_properties_as_0_8_gave_them(self) -> defer.Generator:
        lock = util.MasterLock("one at a time")
        holding = LiveLog()
        noted = AtEachEnd()
        yield self.start_master(
            {
                "counts": [
                    Counting(2, name="unit"),
                    Counting(3, name="functional"),
                    python_step("skipped", "print(1)", doStepIf=False),
                ],
                "holder": [live_log_step(holding, name="hold", locks=[lock.access("exclusive")])],
                "waiter": [python_step("wait", "print(1)", locks=[lock.access("exclusive")])],
            },
            receivers=[noted],
        )
        yield self.force("counts")
        yield noted.wait_for_builds(1)
        yield self.force("holder")
        yield holding.opened
        yield self.force("waiter")
        yield noted.wait_until(lambda: ("stepStarted", 1, "wait") in noted.events)
        waiting = self.legacy_status().getBuilder("waiter").getBuild(1).getSteps()[1]
        # It waits once it has asked for the lock, after stepStarted (as in 0.8).
        yield poll(waiting.isWaitingForLocks, "the step to wait for its lock")
        holding.end()
        yield noted.wait_for_builds(3)
        self.assertEqual({e[3] for e in noted.noted if e[0] == "started"}, {False})
        ends = {e[1]: e[2:] for e in noted.noted if e[0] == "finished"}
        # (skipped, has the statistic, the statistics)
        self.assertEqual(ends["unit"], (False, True, {"tests-failed": 2}))
        self.assertEqual(ends["functional"], (False, True, {"tests-failed": 3}))
        self.assertEqual(ends["skipped"], (True, False, {}))
        self.assertEqual(ends["wait"], (False, False, {}))
        (build_end,) = [e for e in noted.noted if e[0] == "<BuildStatus #1>"]
        self.assertEqual(build_end[1:], (5, 15, True, False, "counts", "Unknown", True))


class Slaves(Snapshots):
    def slaveConnected(self, name: str) -> None:
        self.seen.append(("slaveConnected", name))

    def slaveDisconnected(self, name: str) -> None:
        self.seen.append(("slaveDisconnected", name))

    def slavePaused(self, name: str) -> None:
        self.seen.append(("slavePaused", name))

    def slaveUnpaused(self, name: str) -> None:
        self.seen.append(("slaveUnpaused", name))


class WorkerTests(MasterTestCase):
    @defer.inlineCallbacks
    def test_a_builders_slaves_in_the_order_of_its_config(self) -> defer.Generator:
        yield self.start_master({"b1": [python_step("emit", "print(1)")]})
        (b1,) = self.master_config_dict["builders"]
        b1.workernames = ["zed", "local1", "amy"]
        more = {
            "workers": [
                *self.master_config_dict["workers"],
                worker.Worker("amy", "pw"),
                worker.Worker("zed", "pw"),
            ],
            "builders": [b1],
        }
        yield self.reconfig(**more)
        # Buildbot tells of no worker configured: a LegacyStatus that
        # starts now knows them (and one running learns of each as it connects).
        yield self.reconfig(**more, services=[])
        yield self.reconfig(**more, services=[LegacyStatus()])
        builder = self.legacy_status().getBuilder("b1")
        self.assertEqual(builder.slavenames, ["zed", "local1", "amy"])

    @defer.inlineCallbacks
    def test_workers_as_slaves_and_their_events(self) -> defer.Generator:
        slaves = Slaves()
        yield self.start_master({"b1": [python_step("emit", "print(1)")]}, receivers=[slaves])
        status = self.legacy_status()
        yield poll(lambda: ("slaveConnected", "local1") in slaves.seen, "the worker to connect")
        self.assertEqual(status.getSlaveNames(), ["local1"])
        slave = status.getSlave("local1")
        worker = yield self.master.data.get(("workers", "local1"))
        self.assertEqual((slave.getName(), slave.isConnected()), ("local1", True))
        self.assertEqual(slave.getHost(), worker["workerinfo"].get("host"))
        self.assertEqual(slave.getVersion(), worker["workerinfo"].get("version"))
        self.assertIsNotNone(slave.lastMessageReceived())
        self.assertEqual(sorted(slave.asDict()), sorted([
            "name", "admin", "host", "access_uri", "version", "connected", "runningBuilds",
            "info", "paused",
        ]))  # fmt: skip
        builder = status.getBuilder("b1")
        self.assertEqual((builder.slavenames, builder.getState()[0]), (["local1"], "idle"))
        # The builder's event list, as 0.8 before 0.8.9 kept it.
        connect = builder.getEvent(-1)
        self.assertEqual((connect.getText(), connect.getTimes()[1]), (["connect", "local1"], 0))
        self.assertGreaterEqual(connect.getTimes()[0], slave.lastMessageReceived())
        self.assertEqual((builder.getEvent(0), builder.getEvent(1)), (connect, None))
        with self.assertRaises(KeyError):
            status.getSlave("nope")
        yield self.master.data.updates.set_worker_paused(worker["workerid"], True, "maintenance")
        yield poll(lambda: ("slavePaused", "local1") in slaves.seen, "the pause")
        self.assertTrue(slave.isPaused())
        yield self.master.data.updates.set_worker_paused(worker["workerid"], False)
        yield poll(lambda: ("slaveUnpaused", "local1") in slaves.seen, "the unpause")
        yield self.master.workers.workers["local1"].disconnect()
        yield poll(lambda: ("slaveDisconnected", "local1") in slaves.seen, "the disconnection")
        self.assertFalse(slave.isConnected())
        self.assertEqual(builder.getState()[0], "offline")
        self.assertEqual(
            [builder.getEvent(-2), builder.getEvent(-1).getText()],
            [connect, ["disconnect", "local1"]],
        )
        self.assertEqual(slaves.seen[-1], ("builderChangedState", "b1", "offline"))


class MasterAsParent(StatusReceiverMultiService):
    """
    Written as 0.8.4-era receivers were, whose parent was the BuildMaster:
    they asked it for C{db} and C{caches} and read the dicts they gave.
    """

    def __init__(self) -> None:
        StatusReceiverMultiService.__init__(self)
        self.reasons: dict[int, str] = {}
        self.done: defer.Deferred[None] = defer.Deferred()

    def startService(self) -> None:
        StatusReceiverMultiService.startService(self)
        self.buildsets = self.parent.caches.get_cache(
            "Buildsets", self.parent.db.buildsets.getBuildset
        )
        self.parent.status.subscribe(self)

    def builderAdded(self, name: str, builder: Any) -> Any:
        return self

    @defer.inlineCallbacks
    def requestSubmitted(self, request: Any) -> Any:
        bsid = yield request.getBsid()  # a Deferred, in 0.8.x
        bsdict = yield self.buildsets.get(bsid)
        self.reasons[bsid] = bsdict["reason"]
        self.done.callback(None)


class MasterAsParentTests(MasterTestCase):
    @defer.inlineCallbacks
    def test_receivers_of_0_8_4_reach_db_and_caches_through_their_parent(
        self,
    ) -> defer.Generator:
        receiver = MasterAsParent()
        yield self.start_master({"b1": [python_step("emit", "print(1)")]}, receivers=[receiver])
        self.assertIs(receiver.parent.db, self.master.db)
        yield self.force("b1")
        yield receiver.done
        (buildset,) = yield self.master.data.get(("buildsets",))
        self.assertEqual(receiver.reasons, {buildset["bsid"]: buildset["reason"]})
        # Buildbot itself tells the operator such a plugin reads a model as a dict
        (warned,) = self.flushWarnings([BuildSetModel.__getitem__])
        self.assertIs(warned["category"], DeprecatedApiWarning)


class ControlsItsMaster(StatusReceiverMultiService):
    """As 0.8's chat bots took their control: C{IControl(self.master)}, as they were added."""

    def setServiceParent(self, parent: Any) -> Any:
        from buildbot import interfaces

        d = StatusReceiverMultiService.setServiceParent(self, parent)
        self.control = interfaces.IControl(self.master)
        return d


class ControlTests(MasterTestCase):
    @defer.inlineCallbacks
    def test_a_receiver_forces_and_stops_builds_through_icontrol_of_its_master(
        self,
    ) -> defer.Generator:
        from buildbot import interfaces
        from buildbot.sourcestamp import SourceStamp

        controller = ControlsItsMaster()
        recorder = Recorder()
        yield self.start_master(
            {"b1": [python_step("emit", "print(1)")]}, receivers=[recorder, controller]
        )
        self.assertIs(controller.master, self.master)
        builder = controller.control.getBuilder("b1")
        self.assertTrue(interfaces.IBuilderControl.providedBy(builder))
        request = yield builder.submitBuildRequest(SourceStamp(), "asked by the bot")
        self.assertEqual(request.getBuilderName(), "b1")
        yield recorder.wait_for_builds(1)
        build = self.legacy_status().getBuilder("b1").getBuild(1)
        self.assertEqual(
            build.getReason(), "A build was forced by 'buildbot.status.words': asked by the bot"
        )
        # A master without LegacyStatus says what it lacks.
        yield self.legacy_status().disownServiceParent()
        with self.assertRaisesRegex(TypeError, "needs reporters.LegacyStatus"):
            interfaces.IControl(self.master)
        # Anything else is not adapted.
        self.assertIsNone(interfaces.IControl(SimpleNamespace(service_manager=None), None))


class Requests(Snapshots):
    @defer.inlineCallbacks
    def buildsetSubmitted(self, buildset: Any) -> Any:
        self.seen.append(
            ("buildsetSubmitted", buildset.getID(), buildset.getReason(), buildset.getResults())
        )
        self.buildset_dict = buildset.asDict()
        # As 0.8 read them from the database: there before their own events.
        names = yield buildset.getBuilderNames()
        requests = yield buildset.getBuildRequests()
        self.seen.append(("buildset's requests", names, [r.brid for r in requests]))

    @defer.inlineCallbacks
    def requestSubmitted(self, request: Any) -> Any:
        self.seen.append(("requestSubmitted", request.getBuilderName(), request.brid))
        bsid = yield request.getBsid()
        stamp = yield request.getSourceStamp()
        properties = yield request.getBuildProperties()
        self.seen.append(
            ("request's buildset", bsid, stamp.ssid, properties.getProperty("scheduler"))
        )

    def requestCancelled(self, builder: Any, request: Any) -> None:
        self.seen.append(("requestCancelled", builder.getName(), request.brid))

    def changeAdded(self, change: Any) -> None:
        self.seen.append(("changeAdded", change.number, change.who))


class RequestTests(MasterTestCase):
    @defer.inlineCallbacks
    def test_requests_buildsets_and_changes_as_events(self) -> defer.Generator:
        receiver = Requests()
        config = util.BuilderConfig(
            name="waiting", workernames=["local1"], factory=util.BuildFactory(),
            canStartBuild=lambda *args: False,  # never starts: its requests stay pending
        )  # fmt: skip
        yield self.start_master(
            {},
            receivers=[receiver],
            builders=[config],
            schedulers=[schedulers.ForceScheduler(name="force", builderNames=["waiting"])],
        )
        status = self.legacy_status()
        yield self.master.data.updates.addChange(
            author="eve", files=["x"], comments="c", revision="r9"
        )
        (change,) = yield self.master.data.get(("changes",))
        yield poll(
            lambda: ("changeAdded", change["changeid"], "eve") in receiver.seen, "changeAdded"
        )
        yield self.force("waiting")
        (request,) = yield self.master.data.get(("buildrequests",))
        brid = request["buildrequestid"]
        yield poll(
            lambda: ("requestSubmitted", "waiting", brid) in receiver.seen, "requestSubmitted"
        )
        bsid = request["buildsetid"]
        buildset_data = yield self.master.data.get(("buildsets", bsid))
        # A forced buildset has no external id (a try job's); its results
        # are 0.8's -1 until it completes.
        self.assertIn(("buildsetSubmitted", None, buildset_data["reason"], -1), receiver.seen)
        # 0.8.14's asDict: the row, its times as text
        when = buildset_data["submitted_at"]
        submitted = str(datetime.datetime.fromtimestamp(when, datetime.timezone.utc))
        self.assertEqual(
            {k: v for k, v in receiver.buildset_dict.items() if k != "sourceStamps"},
            {"bsid": bsid, "external_idstring": None, "reason": buildset_data["reason"],
             "submitted_at": submitted, "complete": False, "complete_at": None, "results": -1},
        )  # fmt: skip
        (ss,) = buildset_data["sourcestamps"]
        for read in (
            ("buildset's requests", ["waiting"], [brid]),
            ("request's buildset", bsid, ss["ssid"], "force"),
        ):
            yield poll(lambda read=read: read in receiver.seen, f"{read[0]}, read")
        builder = status.getBuilder("waiting")
        (pending,) = yield builder.getPendingBuildRequestStatuses()
        self.assertEqual(
            (pending.brid, pending.getBuilderName()), (request["buildrequestid"], "waiting")
        )
        self.assertEqual((yield pending.getSubmitTime()), request["submitted_at"].timestamp())
        (buildset,) = yield status.getBuildSets()
        self.assertEqual(buildset.bsid, bsid)
        self.assertEqual((yield buildset.getBuilderNames()), ["waiting"])
        (names_and_requests,) = (yield buildset.getBuilderNamesAndBuildRequests()).items()
        self.assertEqual((names_and_requests[0], names_and_requests[1].brid), ("waiting", brid))
        yield self.master.data.control(
            "cancel", {"reason": "no"}, ("buildrequests", request["buildrequestid"])
        )
        yield poll(
            lambda: ("requestCancelled", "waiting", brid) in receiver.seen, "requestCancelled"
        )
        self.assertEqual(builder.getPendingBuilds(), [])
        # A try job's buildset says the id its job gave it.
        builderid = yield self.master.data.updates.findBuilderId("waiting")
        stamp_data = {"codebase": "", "branch": "b", "repository": "", "project": ""}
        tried, _ = yield self.master.data.updates.addBuildset(
            waited_for=False, scheduler="try", sourcestamps=[stamp_data], reason="tried",
            properties={}, builderids=[builderid], external_idstring="1-23",
        )  # fmt: skip
        yield poll(
            lambda: ("buildsetSubmitted", "1-23", "tried", -1) in receiver.seen, "the try job"
        )
        tried_status = status.requests.buildsets[tried]
        (stamp,) = tried_status.getSourceStamps()
        self.assertEqual(stamp.branch, "b")


class Following(StatusReceiverMultiService):
    """Subscribes as it is given its parent, and follows every builder."""

    def setServiceParent(self, parent: Any) -> Any:
        d = StatusReceiverMultiService.setServiceParent(self, parent)
        parent.getStatus().subscribe(self)
        return d

    def builderAdded(self, name: str, builder: Any) -> Any:
        return self


class RequestFollower(Following):
    """As 0.8 plugins followed a request: subscribe to it, hear of each build for it."""

    def __init__(self) -> None:
        Following.__init__(self)
        self.requests: list[Any] = []
        self.builds: list[Any] = []

    def requestSubmitted(self, request: Any) -> None:
        self.requests.append(request)
        request.subscribe(self.builds.append)


class RequestObserverTests(MasterTestCase):
    @defer.inlineCallbacks
    def test_a_request_tells_its_observers_of_its_builds(self) -> defer.Generator:
        follower = RequestFollower()
        yield self.start_master({"b1": [python_step("emit", "print(1)")]}, receivers=[follower])
        yield self.force("b1")
        yield poll(lambda: follower.builds, "the build of the request")
        ((request,), (build,)) = (follower.requests, follower.builds)
        (db_build,) = yield self.master.data.get(("builders", "b1", "builds"))
        self.assertEqual(
            (build.getNumber(), build.getBuilder().getName(), build.buildrequestid),
            (db_build["number"], "b1", request.brid),
        )
        yield build.waitUntilFinished()
        # One that subscribes late hears of the builds that ran.
        late: list[Any] = []
        request.subscribe(late.append)
        yield poll(lambda: late, "the finished build, to a late observer")
        self.assertEqual([b.getNumber() for b in late], [db_build["number"]])
        self.assertEqual([b.getNumber() for b in (yield request.getBuilds())], [db_build["number"]])
        self.assertEqual(len(follower.builds), 1)


class BadInterval(Following):
    """Returns an interval that is not a number of seconds."""

    def buildStarted(self, name: str, build: Any) -> Any:
        return (self, "5")


class BadReturnTests(MasterTestCase):
    @defer.inlineCallbacks
    def test_a_bad_return_value_stops_no_other_receiver(self) -> defer.Generator:
        recorder = Recorder()
        yield self.start_master(
            {"b1": [python_step("emit", "print(1)")]}, receivers=[BadInterval(), recorder]
        )
        yield self.force("b1")
        yield recorder.wait_for_builds(1)
        self.assertIn(("buildStarted", "b1", 1), [e[:3] for e in recorder.events])
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)


class Gated(BuildStep):
    """A step that runs until the test lets it end (one gate per run)."""

    def __init__(self, gates: list[defer.Deferred[None]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gates = gates

    @defer.inlineCallbacks
    def run(self) -> Any:
        yield self.gates.pop(0)
        return SUCCESS


class Timekeeper(Snapshots):
    def __init__(self) -> None:
        super().__init__()
        self.etas: list[tuple[int, str, float | None]] = []

    def buildStarted(self, name: str, build: Any) -> Any:
        return (self, 0.02)

    def stepStarted(self, build: Any, step: Any) -> Any:
        return (self, 0.02)

    def buildETAUpdate(self, build: Any, eta: float | None) -> None:
        self.etas.append((build.getNumber(), "build", eta))

    def stepETAUpdate(self, build: Any, step: Any, eta: float | None, expectations: Any) -> None:
        self.etas.append((build.getNumber(), step.getName(), eta))


class ETATests(MasterTestCase):
    @defer.inlineCallbacks
    def test_eta_from_earlier_builds_and_its_updates(self) -> defer.Generator:
        first_gate, second_gate = gates = [defer.Deferred(), defer.Deferred()]
        # A failing test must not leave a build waiting: the master would not stop.
        self.addCleanup(
            lambda: [g.callback(None) for g in (first_gate, second_gate) if not g.called]
        )
        keeper = Timekeeper()
        yield self.start_master({"b1": [Gated(gates, name="gated")]}, receivers=[keeper])
        yield self.force("b1")
        yield poll(lambda: self.legacy_status().getBuilder("b1").getCurrentBuilds(), "build 1")
        first = self.legacy_status().getBuilder("b1").getCurrentBuilds()[0]
        self.assertIsNone(first.getETA())  # nothing to go by yet
        first_gate.callback(None)
        yield poll(lambda: first.isFinished(), "build 1 to finish")
        yield self.force("b1")
        yield poll(
            lambda: len([e for e in keeper.etas if e[0] == 2]) >= 4, "ETA updates of build 2"
        )
        second = self.legacy_status().getBuilder("b1").getCurrentBuilds()[0]
        builds = yield self.master.data.get(("builders", "b1", "builds"))
        took = builds[0]["complete_at"].timestamp() - builds[0]["started_at"].timestamp()
        self.assertEqual(second.expected_duration, took)
        # (the database keeps whole seconds: build 1 may have taken "0")
        self.assertTrue(all(eta is None for n, kind, eta in keeper.etas if n == 1))
        build_etas = [eta for n, kind, eta in keeper.etas if (n, kind) == (2, "build")]
        self.assertTrue(all(eta is not None and 0 <= eta <= took for eta in build_etas))
        self.assertEqual(build_etas, sorted(build_etas, reverse=True))
        self.assertIn((2, "gated"), {(n, kind) for n, kind, _ in keeper.etas})
        second_gate.callback(None)
        yield poll(lambda: second.isFinished(), "build 2 to finish")
        count = len(keeper.etas)
        self.assertIsNone(second.getETA())
        # No more updates once finished: none in five of their intervals.
        yield task.deferLater(reactor, 5 * 0.02, lambda: None)
        self.assertEqual(len(keeper.etas), count)


class SummaryPush(StatusReceiverMultiService, BuildSetSummaryNotifierMixin):
    """Written as 0.8.12's GerritStatusPush with a summaryCB: whole buildsets."""

    def __init__(self) -> None:
        StatusReceiverMultiService.__init__(self)
        self.summaries: list[tuple[Any, ...]] = []

    def startService(self) -> Any:
        self.master_status = self.parent
        self.master_status.subscribe(self)
        self.summarySubscribe()
        return StatusReceiverMultiService.startService(self)

    def stopService(self) -> Any:
        self.summaryUnsubscribe()
        return StatusReceiverMultiService.stopService(self)

    def includeInSummary(self, build: Any, results: Any) -> bool:
        return build.getBuilder().getName() != "skipped"

    def sendBuildSetSummary(self, buildset: dict[str, Any], builds: list[Any]) -> None:
        self.summaries.append(
            (
                buildset["bsid"],
                buildset["results"],
                buildset["reason"],
                [(b.getBuilder().getName(), b.getNumber(), b.getResults()) for b in builds],
            )
        )


class BuildSetSummaryTests(MasterTestCase):
    @defer.inlineCallbacks
    def test_a_summary_once_every_build_of_a_buildset_finished(self) -> defer.Generator:
        summary = SummaryPush()
        yield self.start_master(
            {
                "passes": [python_step("emit", "print(1)")],
                "fails": [python_step("emit", "import sys; sys.exit(1)")],
                "skipped": [python_step("emit", "print(1)")],
            },
            receivers=[summary],
        )
        bsid, _ = yield self.master.data.control(
            "force",
            {"builderNames": ["passes", "fails", "skipped"], "reason": "together"},
            ("forceschedulers", "force"),
        )
        yield poll(lambda: summary.summaries, "the summary")
        (buildset,) = yield self.master.data.get(("buildsets",))
        requests = yield self.master.data.get(("buildrequests",))
        names = {b["builderid"]: b["name"] for b in (yield self.master.data.get(("builders",)))}
        in_request_order = [names[r["builderid"]] for r in requests]
        results = {"passes": SUCCESS, "fails": FAILURE}
        self.assertEqual(
            summary.summaries,
            [
                (
                    bsid,
                    FAILURE,
                    buildset["reason"],
                    [(n, 1, results[n]) for n in in_request_order if n != "skipped"],
                )
            ],
        )
        self.assertIn("together", buildset["reason"])
        self.assertEqual((buildset["bsid"], buildset["results"]), (bsid, FAILURE))


class JsonPush(StatusReceiverMultiService):
    """
    Written as 0.8.12's StatusPush/HttpStatusPush: every event as a packet
    of the status objects' asDict(), serialised with json at once.
    """

    def __init__(self) -> None:
        StatusReceiverMultiService.__init__(self)
        self.packets: list[str] = []
        self.done: defer.Deferred[None] = defer.Deferred()

    def setServiceParent(self, parent: Any) -> Any:
        d = StatusReceiverMultiService.setServiceParent(self, parent)
        self.status = parent.getStatus()
        self.status.subscribe(self)
        return d

    def push(self, event: str, **objs: Any) -> None:
        payload = {name: obj.asDict() for name, obj in objs.items()}
        self.packets.append(json.dumps({"event": event, "payload": payload}))

    def builderAdded(self, name: str, builder: Any) -> Any:
        self.push("builderAdded", builder=builder)
        return self

    def buildStarted(self, name: str, build: Any) -> Any:
        self.push("buildStarted", build=build)
        return self

    def stepStarted(self, build: Any, step: Any) -> Any:
        self.push("stepStarted", build=build, step=step)
        return self

    def logStarted(self, build: Any, step: Any, log: Any) -> None:
        self.push("logStarted", build=build, step=step, log=log)

    def stepFinished(self, build: Any, step: Any, results: Any) -> None:
        self.push("stepFinished", build=build, step=step)

    def buildFinished(self, name: str, build: Any, results: Any) -> None:
        self.push("buildFinished", build=build)
        self.done.callback(None)

    def slaveConnected(self, name: str) -> None:
        self.push("slaveConnected", slave=self.status.getSlave(name))

    def changeAdded(self, change: Any) -> None:
        self.push("changeAdded", change=change)

    def requestSubmitted(self, request: Any) -> None:
        self.push("requestSubmitted", request=request)


class JsonPushTests(MasterTestCase):
    @defer.inlineCallbacks
    def test_every_event_serialises_as_status_push_did(self) -> defer.Generator:
        pusher = JsonPush()
        yield self.start_master({"b1": [python_step("emit", "print(1)")]}, receivers=[pusher])
        yield self.force("b1")
        yield pusher.done
        packets = [json.loads(p) for p in pusher.packets]
        events = [p["event"] for p in packets]
        self.assertEqual(
            [e for e in events if e != "slaveConnected"],
            ["builderAdded", "requestSubmitted", "buildStarted",
             "stepStarted", "stepFinished", "stepStarted", "logStarted", "stepFinished",
             "buildFinished"],
        )  # fmt: skip
        finished = packets[-1]["payload"]["build"]
        (db_build,) = yield self.master.data.get(("builders", "b1", "builds"))
        self.assertEqual(
            (finished["number"], finished["results"], finished["builderName"], finished["text"]),
            (db_build["number"], db_build["results"], "b1", db_build["state_string"].split()),
        )
        self.assertEqual(finished["times"][0], db_build["started_at"].timestamp())
        log = packets[events.index("logStarted")]["payload"]["log"]
        self.assertEqual((log["name"], log["step"]), ("stdio", "emit"))
