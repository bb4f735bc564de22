"""
A status client as sites wrote them for 0.8, run by Python 2.7 with
Twisted 20.3 (see tests/test_pb_python2.py): it subscribes to everything,
writes each logChunk's text to a file as it comes (a log forwarder), and
once the build has finished asks the build's remote objects for their
text.  It prints one JSON object per line; arguments: host port file.
"""

from __future__ import print_function  # noqa: UP010  (this file is Python 2 too)

import json
import sys

from twisted.cred import credentials
from twisted.internet import defer, reactor
from twisted.spread import pb


def say(**what):
    print(json.dumps(what, sort_keys=True))
    sys.stdout.flush()


class Client(pb.Referenceable):
    def __init__(self, path):
        self.out = open(path, "wb")  # noqa: SIM115  (written as chunks come, closed at the end)
        self.types = set()

    def remote_builderAdded(self, name, builder):
        say(event="builderAdded", name=name, type=type(name).__name__)

    def remote_buildStarted(self, name, build):
        say(event="buildStarted", name=name)

    def remote_stepStarted(self, name, build, step_name, step):
        say(event="stepStarted", step=step_name, type=type(step_name).__name__)

    def remote_logChunk(self, name, build, step_name, step, log_name, log, channel, text):
        self.types.add(type(text).__name__)
        self.out.write(text)  # as 0.8's text was: a str

    def remote_stepFinished(self, name, build, step_name, step, results):
        say(event="stepFinished", step=step_name, results=results)

    @defer.inlineCallbacks
    def remote_buildFinished(self, name, build, results):
        self.out.close()
        say(event="buildFinished", results=results, chunk_types=sorted(self.types))
        steps = yield build.callRemote("getSteps")
        for step in steps:
            step_name = yield step.callRemote("getName")
            logs = yield step.callRemote("getLogs")
            for log_name, log in sorted(logs.items()):
                text = yield log.callRemote("getText")
                chunks = yield log.callRemote("getChunks")
                say(
                    step=step_name,
                    log=log_name,
                    text=text,
                    type=type(text).__name__,
                    chunks=[[channel, piece] for channel, piece in chunks],
                )
        # As 0.8's clients took an error: a Failure to check
        d = self.perspective.callRemote("getBuilder", "nope")
        (failed,) = yield d.addCallbacks(lambda _: [None], lambda f: [f])
        say(error=failed.getErrorMessage(), keyerror=bool(failed.check(KeyError)))
        reactor.stop()


def main(host, port, path):
    client = Client(path)
    factory = pb.PBClientFactory()
    reactor.connectTCP(host, int(port), factory)
    d = factory.login(credentials.UsernamePassword("statusClient", "clientpw"))

    @defer.inlineCallbacks
    def subscribe(perspective):
        client.perspective = perspective
        yield perspective.callRemote("subscribe", "full", None, client)
        say(event="subscribed")

    d.addCallback(subscribe)
    d.addErrback(lambda f: (say(failed=f.getErrorMessage()), reactor.stop()))
    reactor.run()


if __name__ == "__main__":
    main(*sys.argv[1:])
