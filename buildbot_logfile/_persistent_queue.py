"""
0.8's C{buildbot.status.persistent_queue}: the queues C{StatusPush} keeps
its packets in until the server took them.

A L{MemoryQueue} forgets the oldest item when it is full; a L{DiskQueue}
keeps one pickle per item in a directory, so packets a master could not
send survive its restart; a L{PersistentQueue} keeps the oldest items in
memory and the rest on disk; an L{IndexedQueue} counts what left it, so
C{StatusPush} can tell whether its last push took anything.

The disk format is 0.8's (a file per item, named by its number), so a
queue an 0.8 master left behind is sent by this one.  Unlike 0.8, an item
is unpickled with no classes allowed at all (packets are plain data: a
pickle that names a class is refused), a file is written whole and
renamed into place, and an item that cannot be read is logged and set
aside as C{<number>.bad} rather than stopping the queue.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.python import log
from zope.interface import Interface, implementer

from buildbot_logfile._import08_pickles import text as py2_text


def ReadFile(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def WriteFile(path: str, buf: bytes) -> None:
    """Write C{buf} to C{path} whole: a crash leaves the old file or the new one."""
    partial = path + ".tmp"
    try:
        with open(partial, "wb") as f:
            f.write(buf)
        os.replace(partial, path)
    except OSError:
        # A full disk: what was written of it frees its space again.
        with contextlib.suppress(OSError):
            os.remove(partial)
        raise


class _PlainDataUnpickler(pickle.Unpickler):
    """Packets are dicts, lists, strings and numbers: no class is ever needed."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"a queued packet may not name {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("a queued packet may not hold a persistent id")


def _text(value: Any) -> Any:
    """Python 2's byte strings as C{str} (UTF-8, else Latin-1), all through C{value}."""
    if isinstance(value, bytes):
        return py2_text(value)
    if isinstance(value, dict):
        return {_text(k): _text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_text(v) for v in value)
    return value


def load_item(data: bytes) -> Any:
    """An item as 0.8 or this module pickled it, allowing no class."""
    return _text(_PlainDataUnpickler(io.BytesIO(data), encoding="bytes").load())


def dump_item(item: Any) -> bytes:
    # Protocol 2: what 0.8's Python 2 wrote, and read by both.
    return pickle.dumps(item, protocol=2)


class IQueue(Interface):
    """A queue of items, as 0.8 defined it."""

    def pushItem(item: Any) -> Any:
        """Add C{item} at the end; return the item dropped to make room, if any."""

    def insertBackChunk(items: list[Any]) -> list[Any] | None:
        """Put C{items} back in front (a push failed); return those that did not fit."""

    def popChunk(nbItems: int | None = None) -> list[Any]:
        """Take up to C{nbItems} items from the front (default: maxItems())."""

    def save() -> None:
        """Keep the queue across a restart, where it can."""

    def items() -> list[Any]:
        """Every item, in order (slow for a queue on disk)."""

    def nbItems() -> int:
        """How many items are queued."""

    def maxItems() -> int:
        """How many items the queue holds at most."""


@implementer(IQueue)
class MemoryQueue:
    """A bounded queue in memory: when full, the oldest item makes room."""

    def __init__(self, maxItems: int | None = None) -> None:
        self._maxItems = 10000 if maxItems is None else maxItems
        self._items: deque[Any] = deque()

    def pushItem(self, item: Any) -> Any:
        dropped = None
        if len(self._items) >= self._maxItems:
            dropped = self._items.popleft()
        self._items.append(item)
        return dropped

    def insertBackChunk(self, chunk: list[Any], bounded: bool = True) -> list[Any] | None:
        """
        Put C{chunk} back in front; what is over the bound is dropped
        (returned), unless not C{bounded}: items a failed disk did not take.
        """
        dropped = None
        excess = len(self._items) + len(chunk) - self._maxItems
        if excess > 0 and bounded:
            dropped, chunk = chunk[:excess], chunk[excess:]
        self._items.extendleft(reversed(chunk))
        return dropped

    def popChunk(self, nbItems: int | None = None) -> list[Any]:
        count = min(self._maxItems if nbItems is None else nbItems, len(self._items))
        return [self._items.popleft() for _ in range(count)]

    def save(self) -> None:
        pass

    def items(self) -> list[Any]:
        return list(self._items)

    def nbItems(self) -> int:
        return len(self._items)

    def maxItems(self) -> int:
        return self._maxItems


@implementer(IQueue)
class DiskQueue:
    """
    A bounded queue with one file per item in C{path}, named by the item's
    number, so it survives a restart: 0.8's layout.  When full, the oldest
    item makes room for a new one.  Unlike 0.8, items put back in front
    are all kept: they were in the queue (or in the memory in front of it,
    which a master saves here when it stops) and are older than anything
    a bound would drop for them.
    """

    def __init__(
        self,
        path: str,
        maxItems: int | None = None,
        pickleFn: Callable[[Any], bytes] = dump_item,
        unpickleFn: Callable[[bytes], Any] = load_item,
    ) -> None:
        self.path = path
        self._maxItems = 100000 if maxItems is None else maxItems
        self.pickleFn = pickleFn
        self.unpickleFn = unpickleFn
        os.makedirs(self.path, exist_ok=True)
        self._ids: deque[int] = deque()
        self._load_from_disk()

    def _load_from_disk(self) -> None:
        ids = []
        for name in os.listdir(self.path):
            if name.endswith(".tmp"):
                # A write a crash cut short: never a whole item, so never read as one.
                os.remove(os.path.join(self.path, name))
            elif name.lstrip("-").isdigit():
                # Items put back in front of an empty queue take numbers below 1.
                ids.append(int(name))
        self._ids = deque(sorted(ids))

    def _file(self, item_id: int) -> str:
        return os.path.join(self.path, str(item_id))

    def _read(self, item_id: int) -> tuple[bool, Any]:
        """The item, and whether it could be read (one that cannot is set aside)."""
        path = self._file(item_id)
        try:
            item = self.unpickleFn(ReadFile(path))
        except FileNotFoundError:
            log.msg(f"DiskQueue: {path} is gone; skipped")
            return False, None
        except Exception as e:
            log.msg(f"DiskQueue: setting {path} aside as {path}.bad, it cannot be read: {e}")
            try:
                os.replace(path, path + ".bad")
            except OSError as moving:
                log.msg(f"DiskQueue: {path} stays where it is: {moving}")
            return False, None
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            # A folder gone read-only: the item goes on; its file, left,
            # is read again after a restart (sent twice rather than lost).
            log.msg(f"DiskQueue: {path} read, but stays: {e}")
        return True, item

    def _write(self, item_id: int, item: Any) -> None:
        WriteFile(self._file(item_id), self.pickleFn(item))

    def pushItem(self, item: Any) -> Any:
        # Written first: a write that fails (a full disk) loses no item.
        item_id = self._ids[-1] + 1 if self._ids else 1
        self._write(item_id, item)
        self._ids.append(item_id)
        dropped, lost = None, 0
        while len(self._ids) > self._maxItems:
            ok, oldest = self._read(self._ids.popleft())
            if ok:
                lost += dropped is not None
                dropped = oldest
        if lost:
            log.msg(f"DiskQueue: {self.path} is full; {lost} items dropped")
        return dropped

    def insertBackChunk(self, chunk: list[Any]) -> list[Any] | None:
        for item in reversed(chunk):
            item_id = self._ids[0] - 1 if self._ids else 1
            self._write(item_id, item)
            self._ids.appendleft(item_id)
        return None

    def popChunk(self, nbItems: int | None = None) -> list[Any]:
        wanted = self._maxItems if nbItems is None else nbItems
        items: list[Any] = []
        while self._ids and len(items) < wanted:
            ok, item = self._read(self._ids.popleft())
            if ok:
                items.append(item)
        return items

    def save(self) -> None:
        pass

    def items(self) -> list[Any]:
        """Every item, read from disk: slow."""
        return [self.unpickleFn(ReadFile(self._file(i))) for i in self._ids]

    def nbItems(self) -> int:
        return len(self._ids)

    def maxItems(self) -> int:
        return self._maxItems


@implementer(IQueue)
class PersistentQueue:
    """
    The oldest items in memory (C{primaryQueue}), the rest on disk
    (C{secondaryQueue}); C{save} moves everything to disk, as a master
    does when it stops.
    """

    def __init__(
        self,
        primaryQueue: Any = None,
        secondaryQueue: Any = None,
        path: str | None = None,
    ) -> None:
        self.primaryQueue = MemoryQueue() if primaryQueue is None else primaryQueue
        if secondaryQueue is None:
            if path is None:
                raise ValueError("PersistentQueue needs a secondaryQueue or a path")
            secondaryQueue = DiskQueue(path)
        self.secondaryQueue = secondaryQueue
        # Items that came while the disk could not be written (full, gone),
        # after those on it, in memory until they are sent or saved.
        self._unwritten: deque[Any] = deque()
        # What a restart left on disk stays there until it is sent (a crash
        # loses none of it), but for what is over the disk's bound: the
        # memory the last run saved there, which comes back to memory.
        room = self.primaryQueue.maxItems() - self.primaryQueue.nbItems()
        excess = self.secondaryQueue.nbItems() - self.secondaryQueue.maxItems()
        if excess > 0 and room > 0:
            self.primaryQueue.insertBackChunk(self.secondaryQueue.popChunk(min(excess, room)))

    def pushItem(self, item: Any) -> Any:
        if self._unwritten:
            return self._keep_unwritten(item)
        # Once items are on disk, new ones follow them there, or the order breaks.
        if (
            self.secondaryQueue.nbItems()
            or self.primaryQueue.nbItems() >= self.primaryQueue.maxItems()
        ):
            try:
                overflow = self.secondaryQueue.pushItem(item)
            except OSError as e:
                log.msg(f"PersistentQueue: items kept in memory, the disk failed: {e}")
                return self._keep_unwritten(item)
            if overflow is None:
                return None
            # The disk is full too: the oldest item, in memory, makes room.
            item = overflow
        return self.primaryQueue.pushItem(item)

    def _keep_unwritten(self, item: Any) -> Any:
        """
        Keep C{item} after the disk's, as many as the disk would have held
        (the queue's bound stays what the operator set); the oldest dropped.
        """
        self._unwritten.append(item)
        if len(self._unwritten) > self.secondaryQueue.maxItems():
            return self._unwritten.popleft()
        return None

    def insertBackChunk(self, chunk: list[Any]) -> list[Any] | None:
        dropped = None
        excess = self.nbItems() + len(chunk) - self.maxItems()
        if excess > 0:
            dropped, chunk = chunk[:excess], chunk[excess:]
        # What no longer fits in memory goes to the front of the disk queue.
        room = self.primaryQueue.maxItems() - self.primaryQueue.nbItems()
        before_on_disk = self.secondaryQueue.nbItems()
        if len(chunk) > room:
            memory = self.primaryQueue.popChunk()
            together = chunk + memory
            keep = self.primaryQueue.maxItems()
            try:
                self.secondaryQueue.insertBackChunk(together[keep:])
            except OSError as e:
                # Those the disk did not take stay in memory, first, over its bound.
                log.msg(f"PersistentQueue: items kept in memory, the disk failed: {e}")
                written = self.secondaryQueue.nbItems() - before_on_disk
                self.primaryQueue.insertBackChunk(together[: len(together) - written], False)
                return dropped
            chunk = together[:keep]
        self.primaryQueue.insertBackChunk(chunk)
        return dropped

    def popChunk(self, nbItems: int | None = None) -> list[Any]:
        wanted = self.primaryQueue.maxItems() if nbItems is None else nbItems
        items = self.primaryQueue.popChunk(wanted)
        if len(items) < wanted and self.secondaryQueue.nbItems():
            items.extend(self.secondaryQueue.popChunk(wanted - len(items)))
        while len(items) < wanted and self._unwritten:
            items.append(self._unwritten.popleft())
        return items

    def save(self) -> None:
        """Everything to disk; an C{OSError} leaves what the disk did not take in memory."""
        while self._unwritten:
            dropped = self.secondaryQueue.pushItem(self._unwritten[0])
            self._unwritten.popleft()
            if dropped is not None:
                log.msg("PersistentQueue: the disk is full; its oldest item dropped")
        self.secondaryQueue.insertBackChunk(self.primaryQueue.popChunk())

    def items(self) -> list[Any]:
        return self.primaryQueue.items() + self.secondaryQueue.items() + list(self._unwritten)

    def nbItems(self) -> int:
        return self.primaryQueue.nbItems() + self.secondaryQueue.nbItems() + len(self._unwritten)

    def maxItems(self) -> int:
        return self.primaryQueue.maxItems() + self.secondaryQueue.maxItems()


@implementer(IQueue)
class IndexedQueue:
    """
    C{queue}, counting the items that left it (L{getIndex}): popped items
    count, items put back uncount.  C{StatusPush} compares the index
    before and after a push to tell whether the server took anything.
    """

    def __init__(self, queue: Any) -> None:
        if not IQueue.providedBy(queue):
            raise TypeError("queue doesn't implement IQueue", queue)
        self.queue = queue
        self._index = 0

    def getIndex(self) -> int:
        return self._index

    def pushItem(self, item: Any) -> Any:
        return self.queue.pushItem(item)

    def popChunk(self, nbItems: int | None = None) -> list[Any]:
        items = self.queue.popChunk(nbItems)
        self._index += len(items)
        return items

    def insertBackChunk(self, items: list[Any]) -> list[Any] | None:
        self._index -= len(items)
        dropped = self.queue.insertBackChunk(items)
        if dropped:
            self._index += len(dropped)
        return dropped

    def save(self) -> None:
        self.queue.save()

    def items(self) -> list[Any]:
        return self.queue.items()

    def nbItems(self) -> int:
        return self.queue.nbItems()

    def maxItems(self) -> int:
        return self.queue.maxItems()

    def __getattr__(self, name: str) -> Any:
        # 0.8 copied every other public method of the queue it wrapped.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.queue, name)


def ToIndexedQueue(queue: Any) -> IndexedQueue:
    """C{queue} as an L{IndexedQueue} (itself, if it already is one)."""
    if isinstance(queue, IndexedQueue):
        return queue
    return IndexedQueue(queue)
