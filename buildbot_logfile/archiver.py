"""
LogChunkArchiver: a status plugin written as one was for Buildbot 0.8.

It copies every log chunk of the chosen builders into one text file per
build, C{<outdir>/<builder>/<number>.log}, each log under a banner line.
It uses nothing but the 0.8 status API, and is shipped both to be useful
and to show what a 0.8 plugin looks like on a Buildbot 4 master.
"""

import os
import re

from buildbot.status.base import StatusReceiverMultiService
from buildbot.status.builder import Results


class LogChunkArchiver(StatusReceiverMultiService):
    compare_attrs: list[str] = ["outdir", "builders"]  # a list, as 0.8's were

    def __init__(self, outdir, builders=None):
        StatusReceiverMultiService.__init__(self)
        self.outdir = outdir
        self.builders = builders
        self.files = {}

    def setServiceParent(self, parent):
        StatusReceiverMultiService.setServiceParent(self, parent)
        self.status = parent.getStatus()
        self.status.subscribe(self)

    def disownServiceParent(self):
        self.status.unsubscribe(self)
        for f in self.files.values():
            f.close()
        self.files = {}
        return StatusReceiverMultiService.disownServiceParent(self)

    def builderAdded(self, name, builder):
        if self.builders is None or name in self.builders:
            return self

    def buildStarted(self, builderName, build):
        directory = os.path.join(self.outdir, re.sub(r"[^\w.-]", "_", builderName))
        if not os.path.isdir(directory):
            os.makedirs(directory)
        path = os.path.join(directory, "%d.log" % build.getNumber())
        self.files[build] = open(path, "w", encoding="utf-8")
        return self

    def stepStarted(self, build, step):
        return self

    def logStarted(self, build, step, log):
        self.files[build].write("--- %s / %s ---\n" % (step.getName(), log.getName()))
        return self

    def logChunk(self, build, step, log, channel, text):
        self.files[build].write(text)

    def logFinished(self, build, step, log):
        self.files[build].flush()

    def buildFinished(self, builderName, build, results):
        f = self.files.pop(build, None)
        if f is not None:
            f.write("--- build %s ---\n" % Results[results])
            f.close()
