"""What the read path keeps in memory: meetings, tokens, the public snapshot.

A hello used to cost three read transactions. These caches answer most of it
from memory, and each one says exactly when its copy stops being true:

- `MeetingCache`: a meeting as read from the database, valid while the hub's
  version of that meeting is unchanged. Every change of a meeting that a
  reader can see (phase, settings, title, spotlight) commits an event that
  the hub counts on delivery, before the command is acknowledged, so the
  next hello after an ack never sees the old phase.
- `TokenCache`: which participant a token hash stands for. A participant's
  role, meeting, name and in_room never change; only erasure ends a token,
  and erasure revokes it here (`revoke`) after its commit. Misses are looked
  up together (`BatchLoader`): a storm of hellos makes a few queries.
- `SnapshotCache`: the public projection of a meeting's messages, encoded,
  at one seq. Every change of a message commits an event and so a new seq,
  hence bytes read at seq N are the truth at N. Whether a reader may share
  them (nothing of their own) is read with the seq, in batches too.
- `HistoryWarmer`: fills the hub's memory of a meeting's recent events from
  the log once, for all the resumes that arrive together after a restart.

Nothing is cached for a key the database does not know (unknown meetings,
bad tokens): such a key may exist the next moment, and caching it would let
anyone fill the memory.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from server.domain.models import Meeting
from server.hub.history import History
from server.hub.hub import Hub
from server.store.reads import MAX_BATCH, Participant, Tail, recent_after

log = logging.getLogger("ting.caches")

# Meetings of a process: a few dozen a day; each holds its basis text (at most
# 50,000 characters), so a bound keeps a flood of ids from growing the memory.
MEETINGS_KEPT = 256
# Tokens of a process: a full hall is a few thousand people per meeting; a
# participant costs ~300 bytes, so 100,000 of them stay under ~30 MB.
TOKENS_KEPT = 100_000
# Encoded public snapshots, all meetings together: a meeting of 10,000
# messages encodes to ~5 MB.
SNAPSHOT_BYTES_KEPT = 64 * 1024 * 1024
# Batched lookups running at once: half the read pool (8 connections), so
# that snapshots and replays still find a connection during a storm.
BATCHES_AT_ONCE = 4

K = TypeVar("K")
V = TypeVar("V")
LoadMeeting = Callable[[str], Awaitable[Meeting | None]]
LoadTokens = Callable[[list[str]], Awaitable[dict[str, Participant]]]
LoadRecent = Callable[[str, int], Awaitable[Tail | None]]


class MeetingCache:
    def __init__(self, hub: Hub, load: LoadMeeting) -> None:
        self._hub = hub
        self._load = load
        self._known: OrderedDict[str, tuple[int, Meeting]] = OrderedDict()
        # One read per meeting and version, however many hellos wait for it.
        self._loading: dict[str, tuple[int, asyncio.Task[Meeting | None]]] = {}

    async def get(self, meeting_id: str) -> Meeting | None:
        """The meeting as it is now (its `last_seq` excepted), or None if there is none."""
        version = self._hub.meeting_version(meeting_id)
        known = self._known.get(meeting_id)
        if known is not None and known[0] == version:
            self._known.move_to_end(meeting_id)
            return known[1]
        loading = self._loading.get(meeting_id)
        if loading is None or loading[0] != version:
            # A read begun before a change may return the old meeting: the
            # hellos that come after the change start a read of their own.
            task = asyncio.create_task(self._fetch(meeting_id, version))
            loading = (version, task)
            self._loading[meeting_id] = loading
        return await asyncio.shield(loading[1])

    async def _fetch(self, meeting_id: str, version: int) -> Meeting | None:
        try:
            meeting = await self._load(meeting_id)
        finally:
            current = self._loading.get(meeting_id)
            if current is not None and current[0] == version:
                del self._loading[meeting_id]
        # Kept only if no change was delivered while it was read: otherwise
        # it may be the old meeting, and the next hello reads again.
        if meeting is not None and self._hub.meeting_version(meeting_id) == version:
            self._known[meeting_id] = (version, meeting)
            self._known.move_to_end(meeting_id)
            while len(self._known) > MEETINGS_KEPT:
                self._known.popitem(last=False)
        return meeting


class BatchLoader(Generic[K, V]):
    """Looks keys up together: a storm of hellos becomes a few queries.

    Up to BATCHES_AT_ONCE queries run at a time; while they run the next
    lookups gather, so the batches grow with the load: a query of one key
    for a lone hello, queries of MAX_BATCH keys in a storm. A lookup is
    answered by a query that starts after it arrived, never by one already
    running, so it sees what was committed before it asked.
    """

    def __init__(self, load: Callable[[list[K]], Awaitable[dict[K, V]]]) -> None:
        self._load = load
        self._wanted: dict[K, asyncio.Future[V | None]] = {}
        self._running: set[asyncio.Task[None]] = set()

    async def get(self, key: K) -> V | None:
        """The value for `key`, or None if the database has none."""
        wanted = self._wanted.get(key)
        if wanted is None:
            wanted = asyncio.get_running_loop().create_future()
            self._wanted[key] = wanted
            self._start()
        # Shielded: one waiter going away must not cancel the others' answer.
        return await asyncio.shield(wanted)

    def _start(self) -> None:
        while self._wanted and len(self._running) < BATCHES_AT_ONCE:
            batch = dict(itertools.islice(self._wanted.items(), MAX_BATCH))
            for key in batch:
                del self._wanted[key]
            task = asyncio.create_task(self._load_batch(batch))
            self._running.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._start()

    async def _load_batch(self, batch: dict[K, asyncio.Future[V | None]]) -> None:
        try:
            found = await self._load(list(batch))
        except BaseException as exc:
            # Nobody may wait for an answer that will not come.
            for future in batch.values():
                if not future.done():
                    if isinstance(exc, Exception):
                        future.set_exception(exc)
                    else:
                        future.cancel()
            if not isinstance(exc, Exception):
                raise
            return
        for key, future in batch.items():
            if not future.done():
                future.set_result(found.get(key))


class TokenCache:
    def __init__(self, load: LoadTokens) -> None:
        self._lookups = BatchLoader(load)
        self._known: OrderedDict[str, Participant] = OrderedDict()
        self._hash_of: dict[str, str] = {}
        # Participants erased while this process runs. Erasures are rare (a
        # person's request), so the set stays small; a lookup that was already
        # reading when the erasure committed must not bring the token back.
        self._revoked: set[str] = set()

    def is_revoked(self, participant_id: str) -> bool:
        return participant_id in self._revoked

    def revoke(self, participant_id: str) -> None:
        """Their token stops working at once (called after the erasure commits)."""
        self._revoked.add(participant_id)
        token_hash = self._hash_of.pop(participant_id, None)
        if token_hash is not None:
            self._known.pop(token_hash, None)

    async def find(self, token_hash: str) -> Participant | None:
        known = self._known.get(token_hash)
        if known is not None:
            self._known.move_to_end(token_hash)
            return known
        found = await self._lookups.get(token_hash)
        if found is None or found.id in self._revoked:
            return None
        self._known[token_hash] = found
        self._hash_of[found.id] = token_hash
        while len(self._known) > TOKENS_KEPT:
            _, dropped = self._known.popitem(last=False)
            self._hash_of.pop(dropped.id, None)
        return found


class SnapshotCache:
    def __init__(self, budget: int = SNAPSHOT_BYTES_KEPT) -> None:
        self._budget = budget
        self._size = 0
        self._by_meeting: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    def get(self, meeting_id: str, seq: int) -> bytes | None:
        """The encoded public messages of this meeting at exactly this seq."""
        kept = self._by_meeting.get(meeting_id)
        if kept is None or kept[0] != seq:
            return None
        self._by_meeting.move_to_end(meeting_id)
        return kept[1]

    def put(self, meeting_id: str, seq: int, encoded: bytes) -> None:
        kept = self._by_meeting.get(meeting_id)
        if kept is not None:
            if kept[0] > seq:
                return  # a slower reader of an older seq: keep the newer one
            self._size -= len(kept[1])
        self._by_meeting[meeting_id] = (seq, encoded)
        self._by_meeting.move_to_end(meeting_id)
        self._size += len(encoded)
        while self._size > self._budget and self._by_meeting:
            _, (_, dropped) = self._by_meeting.popitem(last=False)
            self._size -= len(dropped)

    def forget(self, meeting_id: str) -> None:
        kept = self._by_meeting.pop(meeting_id, None)
        if kept is not None:
            self._size -= len(kept[1])

    def lock(self, meeting_id: str) -> asyncio.Lock:
        """Held while the public projection of a meeting is computed, so that
        a crowd joining at once computes it once and the rest reuse it."""
        lock = self._locks.get(meeting_id)
        if lock is None:
            lock = self._locks[meeting_id] = asyncio.Lock()
        return lock


class HistoryWarmer:
    def __init__(self, hub: Hub, load: LoadRecent) -> None:
        self._hub = hub
        self._load = load
        self._filling: dict[str, asyncio.Task[None]] = {}

    async def warm(self, meeting_id: str) -> None:
        """Until the hub keeps the meeting's recent events, if it can.

        The first resume of a meeting reads the tail of the log; the others
        that come meanwhile wait for that one read instead of each reading.
        The read runs in a task of its own, so that the resume which started
        it may go away without failing the others.
        """
        task = self._filling.get(meeting_id)
        if task is None:
            history = self._hub.start_history(meeting_id)
            if history is None:
                return  # kept already, or nobody connected to resume
            task = asyncio.create_task(self._fill(meeting_id, history))
            self._filling[meeting_id] = task
        await asyncio.shield(task)

    async def _fill(self, meeting_id: str, history: History) -> None:
        try:
            tail = await self._load(meeting_id, history.limit)
        except Exception as exc:
            # The resumes that waited read the log each; the next one tries again.
            log.warning("reading the recent events of %s failed: %s", meeting_id, exc)
            self._hub.forget_history(meeting_id, history)
            return
        finally:
            del self._filling[meeting_id]
        if tail is None:
            self._hub.forget_history(meeting_id, history)
            return
        after = recent_after(tail.first_seq, tail.last_seq, history.limit)
        self._hub.fill_history(meeting_id, history, after, tail.last_seq, tail.events)
