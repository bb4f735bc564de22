"""
A Python 2 client of the PB status port: its text is Python 2's C{str},
UTF-8 bytes, both ways, as with 0.8's master.

0.8's own tools (C{buildbot statuslog}, C{statusgui}) and the scripts sites
wrote for them run on Python 2.  Jelly sends a Python 3 C{str} as
C{unicode}, which such a client takes in and then fails on at the first
character beyond ASCII that it writes to a file or a pipe, or decodes (0.8
sent bytes).  The other way, what it sends arrives as C{bytes}: names, and
the errors of its remote methods, which Python 3's PB cannot even read (a
failure's state has C{bytes} keys), so it loses the answer.  A client is
known to be one by the names it sends (a subscription mode, a builder's
name): its strings arrive as C{bytes}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.python import failure
from twisted.spread import pb

_UNICODE = b"unicode"
_DICTIONARY = b"dictionary"
_REFERENCE = b"reference"
# Tags whose payload is jelly's own encoding, not jellied values.
_RAW = frozenset(
    (
        _UNICODE, b"boolean", b"datetime", b"date", b"time", b"timedelta", b"decimal",
        b"class", b"module", b"function", b"None", b"dereference", b"persistent",
        b"unpersistable", b"remote", b"local", b"cache", b"cached", b"lcache",
    )
)  # fmt: skip


def speaks_python2(broker: pb.Broker) -> bool:
    return isinstance(broker.__dict__.get("serialize"), _Python2Serialize)


def speak_python2(broker: pb.Broker) -> None:
    """From now on, C{broker} sends text as Python 2's C{str}, and takes it as text."""
    if not speaks_python2(broker):
        broker.serialize = _Python2Serialize(broker.serialize)  # type: ignore[method-assign,assignment]
        broker.unserialize = _Python2Unserialize(broker.unserialize)  # type: ignore[method-assign]


class _Python2Serialize:
    """
    A broker's C{serialize}, its jellied text untagged.  Every value the
    broker sends goes through it: call arguments (the events), answers,
    errors; a Deferred answer comes back through it when it fires.
    """

    def __init__(self, serialize: Any) -> None:
        self._serialize = serialize

    def __call__(self, obj: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(obj, failure.Failure):
            # Python 2 names built-in exceptions C{exceptions.KeyError}:
            # so the client's Failure.check(KeyError) finds them.  Put back
            # after: the failure may be someone else's too.
            parents = obj.parents
            obj.parents = [_python2_name(name) for name in parents]
            try:
                return _untagged(self._serialize(obj, *args, **kwargs))
            finally:
                obj.parents = parents
        jellied = self._serialize(obj, *args, **kwargs)
        if isinstance(jellied, defer.Deferred):
            return jellied
        return _untagged(jellied)


class _Python2Unserialize:
    """A broker's C{unserialize}, taking the bytes it gets as UTF-8 text."""

    def __init__(self, unserialize: Any) -> None:
        self._unserialize = unserialize

    def __call__(self, sexp: Any, *args: Any, **kwargs: Any) -> Any:
        return self._unserialize(_as_text(sexp), *args, **kwargs)


def _python2_name(name: Any) -> Any:
    if not isinstance(name, str) or not name.startswith("builtins."):
        return name
    return ("__builtin__." if name == "builtins.object" else "exceptions.") + name[9:]


def _untagged(jellied: Any) -> Any:
    """
    C{jellied} with each C{["unicode", utf8]} as the bare string: a Python
    2 C{str}.  A jellied list starts with its type's tag; only a
    dictionary's items are lists without one, C{[key, value]}.
    """
    if not isinstance(jellied, list) or not jellied:
        return jellied
    tag = jellied[0]
    if tag == _UNICODE:
        return jellied[1]
    if tag == _DICTIONARY:
        return [tag, *([_untagged(key), _untagged(value)] for key, value in jellied[1:])]
    return [tag, *(_untagged(item) for item in jellied[1:])]


def _as_text(jellied: Any) -> Any:
    """C{jellied} with each bare string, a Python 2 C{str}, jellied as text instead."""
    if isinstance(jellied, bytes):
        return [_UNICODE, jellied.decode("utf-8", "replace").encode("utf-8")]
    if not isinstance(jellied, list) or not jellied:
        return jellied
    tag = jellied[0]
    if tag in _RAW:
        return jellied
    if tag == _DICTIONARY:
        return [tag, *([_as_text(key), _as_text(value)] for key, value in jellied[1:])]
    if tag == _REFERENCE:
        return [tag, jellied[1], _as_text(jellied[2])]
    return [tag, *(_as_text(item) for item in jellied[1:])]
