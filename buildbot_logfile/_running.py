"""
This master's own running builds and steps, for what the data API tells
late or not at all: a step's properties reach the database only after its
step-finished message (0.8's receivers saw them at once), and the flags
that made 0.8 name a failed step in its build's text are in no message.
Another master's builds have no such objects here.
"""

from __future__ import annotations

from typing import Any


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


async def current_properties(build: Any) -> dict[str, tuple[Any, str]]:
    """
    C{build}'s properties now, C{{name: (value, source)}}, rendered as
    Buildbot renders them to store them.
    """
    properties = build.getProperties()
    return await properties.render(properties.asDict())
