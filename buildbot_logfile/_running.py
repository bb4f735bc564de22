"""
This master's own running builds and steps, for what the data API tells
late or not at all: a step's properties reach the database only after its
step-finished message (0.8's receivers saw them at once), the flags that
made 0.8 name a failed step in its build's text are in no message, and a
step reaches the database only as it starts (0.8 listed a build's every
step from its start).  Another master's builds have no such objects here.
"""

from __future__ import annotations

from typing import Any

from buildbot.util import join_list
from twisted.internet import defer


def running_build(master: Any, builder_name: str, buildid: int) -> Any:
    """The C{Build} with C{buildid} that this master runs, or None."""
    builder = getattr(master.botmaster, "builders", {}).get(builder_name)
    for build in getattr(builder, "building", None) or ():
        if getattr(build, "buildid", None) == buildid:
            return build
    return None


def running_step(build: Any, stepid: int) -> Any:
    """The C{BuildStep} of C{build} with C{stepid}, or None."""
    for step in getattr(build, "executedSteps", None) or ():
        if getattr(step, "stepid", None) == stepid:
            return step
    return None


def running_log(
    master: Any, builder_name: str, buildid: int, stepid: int | None, name: str, logid: int
) -> Any:
    """The C{Log} object of log C{logid} of a step this master runs, or None."""
    if stepid is None:
        return None
    step = running_step(running_build(master, builder_name, buildid), stepid)
    found = (getattr(step, "logs", None) or {}).get(name)
    return found if getattr(found, "logid", None) == logid else None


def starting_step(build: Any, stepid: int) -> Any:
    """
    L{running_step}, or else the step of C{build} whose id Buildbot has
    not set yet: it sends a step's first message before it sets the id,
    and starts one step at a time.  Not for the steps Buildbot adds of
    its own (C{worker_preparation}, C{locks_acquire}): those are none of
    the build's steps, and have their ids before the build starts any.
    """
    found = running_step(build, stepid)
    own = (getattr(build, attr, None) for attr in ("_preparation_step", "_locks_acquire_step"))
    if found is None and stepid not in {getattr(step, "stepid", None) for step in own}:
        executed = getattr(build, "executedSteps", None) or ()
        if executed and getattr(executed[-1], "stepid", 0) is None:
            found = executed[-1]
    return found


def description_now(step: Any) -> str | None:
    """
    How the running C{step} describes itself now, as 0.8 set a step's
    text when it started; Buildbot stores it a moment later.  None if
    that cannot be known at once: a description still to render.
    """
    parts = [getattr(step, "description", None), getattr(step, "descriptionSuffix", None)]
    if parts[0] is None or not all(_plain(part) for part in parts):
        return None
    text = " ".join(join_list(part) for part in parts if part)
    if getattr(step, "rendered", False):
        # Rendered, it may hold a secret, which Buildbot hides as it stores it.
        text = step.build.properties.cleanupTextFromSecrets(text)
    return text


def _plain(value: Any) -> bool:
    """Whether a description is text already, not a renderable."""
    if isinstance(value, (list, tuple)):
        return all(isinstance(word, str) for word in value)
    return value is None or isinstance(value, str)


def steps_to_come(build: Any) -> list[tuple[Any, str]]:
    """
    The C{BuildStep}s C{build} has yet to start, in order, each with the
    name it will start under: rendered now if it can be, made unique as
    C{Build.setUniqueStepName} will make it.  Empty until C{setupBuild}
    has made the build's steps.
    """
    counts = dict(getattr(build, "stepnames", None) or {})
    to_come = []
    for step in getattr(build, "steps", None) or ():
        name = _name_now(build, step)
        if name in counts:
            counts[name] += 1
            name = f"{name}_{counts[name]}"
        else:
            counts[name] = 0
        to_come.append((step, name))
    return to_come


def _name_now(build: Any, step: Any) -> str:
    """A step's name, rendered if it renders at once, else its class's default."""
    if isinstance(step.name, str):
        return step.name
    rendered: list[Any] = []
    defer.maybeDeferred(build.render, step.name).addBoth(rendered.append)
    if rendered and isinstance(rendered[0], str):
        return rendered[0]
    default = getattr(type(step), "name", None)
    return default if isinstance(default, str) else "step"


async def current_properties(build: Any) -> dict[str, tuple[Any, str]]:
    """
    C{build}'s properties now, C{{name: (value, source)}}, rendered as
    Buildbot renders them to store them.
    """
    properties = build.getProperties()
    return await properties.render(properties.asDict())
