"""
Reading the pickles of an 0.7/0.8 master's build history, safely.

0.8 saved each builder's status (C{builder}) and each build (C{0}, C{1},
...) with Python 2's pickle.  Those files are untrusted input: a pickle can
name any importable callable and have the unpickler call it.  L{load}
therefore resolves only the 0.7/0.8 status classes (mapped onto
L{Pickled} subclasses that do nothing but keep their state) and the few
builtins and C{copy_reg} helpers those pickles use; every other name is
refused before anything runs.  Properties may also hold the standard
library's value types (C{Decimal}, and C{datetime}'s dates, times and
durations), which are built from their pickled state and nothing else.

Python 2's C{str} arrives as C{bytes} (C{encoding="bytes"}), so binary
data such as a patch stays exact; L{text} decodes a field when it is used:
UTF-8, or Latin-1 for bytes that are not UTF-8 (0.8 stored whatever the
worker and the VCS gave it).
"""

from __future__ import annotations

import datetime
import decimal
import io
import pickle
import struct
from collections.abc import Callable, Collection, Iterable
from typing import IO, Any


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names something outside the allow-list."""


class Pickled:
    """
    An 0.7/0.8 object as its pickle left it: C{state} is the dict 0.8's
    C{__getstate__} returned, with its keys decoded.  Nothing of the
    original class runs.
    """

    # Replaced, never changed: an object whose pickle had no state has none.
    state: dict[str, Any] = {}

    def __init__(self, *args: Any) -> None:
        """0.8's classes were old-style: OBJ and INST may pass arguments, which mean nothing."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            if not all(part is None or isinstance(part, dict) for part in state):
                raise pickle.UnpicklingError("a state of what is no dict")
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            for key in state:
                if not isinstance(key, (bytes, str)):
                    raise pickle.UnpicklingError(f"an attribute named by a {type(key).__name__}")
            self.state = {key_text(k): v for k, v in state.items()}

    def get(self, key: str, default: Any = None) -> Any:
        return self.state.get(key, default)


class BuilderStatus(Pickled):
    """0.8's C{BuilderStatus}: the builder's name and category."""


class BuildStatus(Pickled):
    """0.8's C{BuildStatus}: one build."""


class BuildStepStatus(Pickled):
    """0.8's C{BuildStepStatus}: one step of a build."""


class LogFile(Pickled):
    """0.8's C{LogFile}: a log whose text is in a file next to the pickle."""


class HTMLLogFile(Pickled):
    """0.8's C{HTMLLogFile}: a log whose HTML is in the pickle itself."""


class SourceStamp(Pickled):
    """0.8's C{SourceStamp}."""


class Change(Pickled):
    """0.8's C{Change}."""


class Properties(Pickled):
    """0.8's C{Properties}: C{properties} maps a name to C{(value, source)}."""


class Ignored(Pickled):
    """Status objects the import has no use for (events, progress, locks...)."""


_BY_MODULE: dict[str, dict[str, type[Pickled]]] = {
    # 0.7 kept every status class in buildbot.status.builder; 0.8 split them.
    "buildbot.status.builder": {
        "BuilderStatus": BuilderStatus,
        "BuildStatus": BuildStatus,
        "BuildStepStatus": BuildStepStatus,
        "LogFile": LogFile,
        "HTMLLogFile": HTMLLogFile,
        "Event": Ignored,
        "TestResult": Ignored,
        "BuildSetStatus": Ignored,
        "BuildRequestStatus": Ignored,
    },
    "buildbot.status.build": {"BuildStatus": BuildStatus},
    "buildbot.status.buildstep": {"BuildStepStatus": BuildStepStatus},
    "buildbot.status.logfile": {"LogFile": LogFile, "HTMLLogFile": HTMLLogFile},
    "buildbot.status.event": {"Event": Ignored},
    "buildbot.status.testresult": {"TestResult": Ignored},
    "buildbot.status.progress": {
        "BuildProgress": Ignored,
        "StepProgress": Ignored,
        "Expectations": Ignored,
    },
    "buildbot.sourcestamp": {"SourceStamp": SourceStamp},
    "buildbot.changes.changes": {"Change": Change},
    "buildbot.process.properties": {"Properties": Properties},
    # 0.8.6 pickled the SourceStamp's lock along with it.
    "twisted.internet.defer": {"DeferredLock": Ignored},
}
_CLASSES = {
    (module, name): cls for module, names in _BY_MODULE.items() for name, cls in names.items()
}


def _reconstructor(cls: Any, base: Any, state: Any) -> Pickled:
    """
    Python 2's C{copy_reg._reconstructor}, for the allowed classes only:
    how protocol 0 and 1 pickled instances of new-style classes.
    """
    if not (isinstance(cls, type) and issubclass(cls, Pickled)) or base is not object:
        raise UnsafePickleError(f"refusing copy_reg._reconstructor({_named(cls)}, {_named(base)})")
    return cls.__new__(cls)


def _named(thing: Any) -> str:
    return getattr(thing, "__qualname__", None) or repr(thing)


def _decimal(value: Any) -> decimal.Decimal:
    """Python 2's C{Decimal} pickled itself as its text, which arrives as bytes."""
    if not isinstance(value, (bytes, str)):
        raise UnsafePickleError(f"refusing decimal.Decimal({value!r})")
    return decimal.Decimal(text(value))


# What one key of a dict or member of a set may hold.  Python hashes a
# tuple afresh each time, all of it: one tuple held twice in another, level
# after level, takes a few hundred bytes of pickle and longer than any
# import to hash.  0.8's keys were names, and tuples of names (a test's).
MAX_KEY_PARTS = 1_000


def _check_keys(keys: Iterable[Any]) -> None:
    """Refuse a key whose hash would take long: one of more than L{MAX_KEY_PARTS} parts."""
    for key in keys:
        todo = [key]
        parts = 1
        while todo:
            part = todo.pop()
            if isinstance(part, (tuple, frozenset)):
                parts += len(part)
                if parts > MAX_KEY_PARTS:
                    raise pickle.UnpicklingError(
                        f"a key of more than {MAX_KEY_PARTS:,} parts, where 0.8's keys were names"
                    )
                todo.extend(part)


def _checked(kind: type[set[Any]] | type[frozenset[Any]]) -> Callable[..., Any]:
    """
    C{set} or C{frozenset} for the unpickler, whichever opcode calls it
    (Python 2 pickled a set as C{set(list)}): its members checked as keys.
    """

    def build(items: Iterable[Any] = ()) -> Any:
        members = list(items)
        _check_keys(members)
        return kind(members)

    build.__name__ = build.__qualname__ = kind.__name__
    return build


_SET, _FROZENSET = _checked(set), _checked(frozenset)

_BUILTINS: dict[tuple[str, str], Callable[..., Any] | type] = {
    ("__builtin__", "set"): _SET,
    ("__builtin__", "frozenset"): _FROZENSET,
    ("__builtin__", "object"): object,
    ("builtins", "set"): _SET,
    ("builtins", "frozenset"): _FROZENSET,
    ("builtins", "object"): object,
    ("copy_reg", "_reconstructor"): _reconstructor,
    ("copyreg", "_reconstructor"): _reconstructor,
    # Values a site's properties held (SetProperty, a custom step).
    ("decimal", "Decimal"): _decimal,
    ("datetime", "datetime"): datetime.datetime,
    ("datetime", "date"): datetime.date,
    ("datetime", "time"): datetime.time,
    ("datetime", "timedelta"): datetime.timedelta,
}


def _checking_keys(
    opcode: bytes, keys: Callable[[list[Any]], Iterable[Any]]
) -> Callable[[Any], None]:
    """
    The unpickler's C{opcode}, checking the C{keys} it is about to hash
    (taken from its stack: between MARK and the opcode, just the items).
    """
    load = pickle._Unpickler.dispatch[opcode[0]]

    def checked(unpickler: Any) -> None:
        _check_keys(keys(unpickler.stack))
        load(unpickler)

    return checked


class _AllowListUnpickler(pickle._Unpickler):
    """
    The allow-list over Python's own unpickler: its memo is a dict, where
    the C unpickler's is an array it grows to the index a damaged pickle
    names (one flipped bit asked for gigabytes).  Pickles of builds are a
    few kilobytes: the pure-Python one's speed does not matter.
    """

    def find_class(self, module: str, name: str) -> Any:
        found = _CLASSES.get((module, name)) or _BUILTINS.get((module, name))
        if found is None:
            raise UnsafePickleError(f"refusing to load {module}.{name}")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refusing a persistent id")


# The opcodes that hash what they put in a dict or a set check it first.
_AllowListUnpickler.dispatch = {
    **pickle._Unpickler.dispatch,
    pickle.SETITEM[0]: _checking_keys(pickle.SETITEM, lambda stack: stack[-2:-1]),
    pickle.SETITEMS[0]: _checking_keys(pickle.SETITEMS, lambda stack: stack[::2]),
    pickle.DICT[0]: _checking_keys(pickle.DICT, lambda stack: stack[::2]),
    pickle.ADDITEMS[0]: _checking_keys(pickle.ADDITEMS, lambda stack: stack),
    pickle.FROZENSET[0]: _checking_keys(pickle.FROZENSET, lambda stack: stack),
}


# What one pickle may hold once read out as the import reads it, each
# value counted wherever it is held: a pickle may hold one list twice in
# another, level after level, a few hundred bytes that read out would be
# more values, or more text, than any memory holds.
MAX_VALUES = 1_000_000
MAX_TEXT = 64 * 2**20


def _check_read_out(root: Any) -> None:
    """
    Refuse a pickle whose values, read out, exceed L{MAX_VALUES} or
    L{MAX_TEXT} characters.  What the import never reads (L{Ignored}:
    events, test results) is not counted.  A value is counted as it is
    found, before what it holds is looked at, so the walk itself stays
    within the limits.
    """
    values = 1
    text = 0
    todo = [root]
    while todo:
        value = todo.pop()
        held: Collection[Any]
        if isinstance(value, (bytes, str)):
            text += len(value)
            if text > MAX_TEXT:
                raise pickle.UnpicklingError(
                    f"more than {MAX_TEXT // 2**20} MiB of text, counting a text held"
                    " in several places in each"
                )
            continue
        if isinstance(value, (list, tuple, set, frozenset)):
            held = value
        elif isinstance(value, dict):
            held = [*value.keys(), *value.values()]
        elif isinstance(value, Pickled) and not isinstance(value, Ignored):
            held = value.state.values()
        else:
            continue
        values += len(held)
        if values > MAX_VALUES:
            raise pickle.UnpicklingError(
                f"more than {MAX_VALUES:,} values, counting a value held in several places in each"
            )
        todo.extend(held)


def load(f: IO[bytes]) -> Any:
    """Unpickle C{f} with the allow-list and the limits; raise for anything else."""
    try:
        loaded = _AllowListUnpickler(f, encoding="bytes").load()
    except struct.error as e:  # the pure-Python unpickler's word for a short read
        raise pickle.UnpicklingError("pickle data was truncated") from e
    _check_read_out(loaded)
    return loaded


def loads(data: bytes) -> Any:
    return load(io.BytesIO(data))


def key_text(key: Any) -> str:
    """A dict's key (a property's name) as C{str}, read as L{text} reads a value."""
    return text(key) if isinstance(key, bytes) else str(key)


def text(value: Any) -> str:
    """
    A Python 2 string field as C{str}: UTF-8, else Latin-1.  TypeError for
    a container, which 0.8 never wrote there: its text would be nothing
    0.8 showed.
    """
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("latin-1")
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, dict, set, frozenset, Pickled)):
        raise TypeError(f"a text that is a {type(value).__name__}")
    return str(value)


def opt_text(value: Any) -> str | None:
    return None if value is None else text(value)


def plain(value: Any) -> Any:
    """A pickled value as JSON can hold it (properties' values)."""
    if isinstance(value, (bytes, str)):
        return text(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, dict):
        return {key_text(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((plain(v) for v in value), key=repr)
    if isinstance(value, Ignored):
        # What the read-out check does not count (see _check_read_out) is
        # not read out here either: an event, a test's result.
        return None
    if isinstance(value, Pickled):
        return {k: plain(v) for k, v in value.state.items()}
    if isinstance(value, (decimal.Decimal, datetime.date, datetime.time, datetime.timedelta)):
        # As 0.8 showed them on its pages and in %(prop:...)s: their text.
        return str(value)
    return repr(value)
