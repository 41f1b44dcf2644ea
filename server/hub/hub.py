"""The hub: who is connected to which meeting, and what each of them receives.

Each committed event is encoded once per audience (readers who may see the
same projection of it), and the same bytes are queued for every connection
of that audience. Presence counts are pushed at most once per interval.

The hub also remembers what it saw, for the read path: the recent events of
each meeting that has connections (`History`, so that a resume inside it
needs no database), and a version of each meeting that changes whenever an
event changes the meeting itself (so that a cached copy is known stale).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections.abc import Hashable, Iterable
from typing import Any

import orjson

from server.domain.models import Event, EventKind
from server.domain.views import PUBLIC_VIEWER, Viewer, event_audience, project_event_for
from server.hub.backends import Backend
from server.hub.history import History
from server.hub.presence import Presence
from server.hub.subscriber import Sink, Subscriber
from server.protocol import batch_frame, event_frame, ws_text_frame

# Events of one meeting closer together than this go out as one batch frame.
BATCH_WINDOW = 0.025
# Events kept in memory per meeting for resumes. A phone that drops off for a
# minute of a busy meeting (a few events a second, vote counts coalesced to
# four a second) misses a few hundred; older resumes read the database.
HISTORY_EVENTS = 2048
# Events that change the meeting itself (its phase, settings, spotlight).
MEETING_CHANGES = frozenset({EventKind.MEETING_UPDATED, EventKind.SPOTLIGHT_CHANGED})


class Hub:
    def __init__(
        self,
        backend: Backend,
        *,
        presence_interval: float = 1.0,
        history_events: int = HISTORY_EVENTS,
    ) -> None:
        self._backend = backend
        self._history_events = history_events
        self._histories: dict[str, History] = {}
        self._meeting_versions: dict[str, int] = {}
        self._meetings: dict[str, set[Subscriber]] = {}
        self._presence: dict[str, Presence] = {}
        self._presence_interval = presence_interval
        self._presence_dirty: set[str] = set()
        self._presence_task: asyncio.Task[None] | None = None
        self._pending: dict[str, list[Event]] = {}
        # The encoder of each meeting's pending events, while a flush waits.
        self._encoders: dict[str, _Encoder] = {}
        self._scheduled: dict[str, asyncio.TimerHandle] = {}
        # meeting -> participant -> their connections: those named in new
        # events get them at once, while the flush for the others waits.
        self._named: dict[str, dict[str, list[Subscriber]]] = {}
        self._last_flush: dict[str, float] = {}
        # Fan-out counters (exported by /metrics): payloads encoded, frames queued.
        self.frames_encoded = 0
        self.frames_queued = 0

    async def start(self) -> None:
        await self._backend.start(self._deliver)
        self._presence_task = asyncio.create_task(self._presence_loop(), name="ting-presence")

    async def stop(self) -> None:
        for handle in self._scheduled.values():
            handle.cancel()
        self._scheduled.clear()
        if self._presence_task is not None:
            self._presence_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._presence_task
        await self._backend.stop()
        for subs in self._meetings.values():
            for sub in subs:
                sub.close(1001, "server going away")

    # --- subscriptions ---

    def subscribe(
        self,
        meeting_id: str,
        viewer: Viewer,
        *,
        budget: int,
        in_room: bool,
        sink: Sink | None = None,
    ) -> Subscriber:
        sub = Subscriber(meeting_id, viewer, budget=budget, in_room=in_room, sink=sink)
        self._meetings.setdefault(meeting_id, set()).add(sub)
        if viewer.participant_id is not None:
            named = self._named.setdefault(meeting_id, {})
            named.setdefault(viewer.participant_id, []).append(sub)
        presence = self._presence.get(meeting_id)
        if presence is None:
            presence = self._presence[meeting_id] = Presence()
        presence.add(sub.participant_id, viewer.role.value, in_room)
        self._presence_dirty.add(meeting_id)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        subs = self._meetings.get(sub.meeting_id)
        if subs is not None and sub in subs:
            subs.discard(sub)
            pid = sub.participant_id
            named = self._named.get(sub.meeting_id)
            if pid is not None and named is not None and sub in named.get(pid, ()):
                named[pid].remove(sub)
                if not named[pid]:
                    del named[pid]
            self._presence[sub.meeting_id].remove(
                sub.participant_id, sub.viewer.role.value, sub.in_room
            )
            if not subs:
                del self._meetings[sub.meeting_id]
                del self._presence[sub.meeting_id]
                self._named.pop(sub.meeting_id, None)
                # Nobody left to resume soon: memory follows the live meetings.
                self._histories.pop(sub.meeting_id, None)
        self._presence_dirty.add(sub.meeting_id)

    def start_live(self, sub: Subscriber, seq: int, frames: Iterable[bytes]) -> None:
        """End the sync: queue what was read at `seq`, then what came since."""
        for frame in frames:
            sub.push(frame)
        sub.last_seq = seq
        held, sub.held = sub.held, []
        sub.syncing = False
        newer = [e for e in held if e.seq > seq]
        if newer:
            sub.last_seq = newer[-1].seq
            self._push_for(sub, newer, _Encoder(self, newer))

    def connections(self, meeting_id: str) -> int:
        return len(self._meetings.get(meeting_id, ()))

    def total_connections(self) -> int:
        return sum(len(s) for s in self._meetings.values())

    def close_participant(
        self, meeting_id: str, participant_id: str, code: int, reason: str
    ) -> None:
        for sub in list(self._meetings.get(meeting_id, ())):
            if sub.participant_id == participant_id:
                sub.close(code, reason)

    def close_all(self, code: int, reason: str) -> None:
        for subs in self._meetings.values():
            for sub in subs:
                sub.close(code, reason)

    # --- what the hub remembers ---

    def meeting_version(self, meeting_id: str) -> int:
        """Changes whenever an event that changes the meeting itself is delivered."""
        return self._meeting_versions.get(meeting_id, 0)

    def recent_events(
        self, meeting_id: str, after: int, limit: int
    ) -> tuple[int, list[Event], bool] | None:
        """(seq reached, the events in (after, after + limit], more to come) from
        memory, or None when memory does not hold them all: read the log then.

        "More" is measured against the last event delivered here; one
        committed and not yet delivered comes live, after these.
        """
        history = self._histories.get(meeting_id)
        if history is None:
            return None
        upto = min(history.last, after + limit)
        events = history.between(after, upto)
        if events is None:
            return None
        return upto, events, upto < history.last

    def start_history(self, meeting_id: str) -> History | None:
        """A history to fill from the log, collecting deliveries meanwhile.

        None when there is no need: it is kept or being filled already, or the
        meeting has no connections to resume.
        """
        if meeting_id in self._histories or not self._meetings.get(meeting_id):
            return None
        history = History(self._history_events)
        self._histories[meeting_id] = history
        return history

    def fill_history(
        self, meeting_id: str, history: History, after: int, last: int, events: list[Event]
    ) -> None:
        """Complete a history with the log's events in (after, last]; ignored if
        it was dropped meanwhile (an erasure, or everybody left)."""
        if self._histories.get(meeting_id) is history:
            history.fill(after, last, events)

    def forget_history(self, meeting_id: str, history: History | None = None) -> None:
        """Drop what is kept of a meeting's events (all of it, or only `history`):
        an erasure rewrote the log, so the copies are stale."""
        if history is None or self._histories.get(meeting_id) is history:
            self._histories.pop(meeting_id, None)

    # --- events ---

    def publish(self, events: list[Event]) -> None:
        """Called after commit, in seq order."""
        self._backend.publish(events)

    def _deliver(self, events: list[Event]) -> None:
        """Events arrive; each meeting's go out now or, in a burst, a little later.

        When events of a meeting come faster than one per BATCH_WINDOW, those
        of the window go out together, one frame per connection: fewer, larger
        writes, which is what a phone can usefully take in a burst. Except to
        the people the new events name (their authors, above all): they get
        what is pending at once, in the same turn as the acks of their
        commands, and both leave in one write.
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        for event in events:
            self._pending.setdefault(event.meeting_id, []).append(event)
            history = self._histories.get(event.meeting_id)
            if history is not None:
                history.add(event)
            if event.kind in MEETING_CHANGES:
                self._meeting_versions[event.meeting_id] = (
                    self._meeting_versions.get(event.meeting_id, 0) + 1
                )
        for meeting_id in {e.meeting_id for e in events}:
            if meeting_id not in self._scheduled:
                wait = self._last_flush.get(meeting_id, 0.0) + BATCH_WINDOW - now
                if wait <= 0:
                    self._flush(meeting_id)
                    continue
                self._scheduled[meeting_id] = loop.call_later(wait, self._flush, meeting_id)
            self._flush_named(meeting_id, [e for e in events if e.meeting_id == meeting_id])

    def _encoder(self, meeting_id: str) -> _Encoder:
        encoder = self._encoders.get(meeting_id)
        if encoder is None:
            encoder = self._encoders[meeting_id] = _Encoder(self, self._pending[meeting_id])
        return encoder

    def _flush_named(self, meeting_id: str, new: list[Event]) -> None:
        """Those named in `new` get every pending event they have not had yet."""
        named = self._named.get(meeting_id)
        if not named:
            return
        encoder: _Encoder | None = None
        for pid in _special_participants(new):
            for sub in named.get(pid, ()):
                if sub.syncing:
                    continue
                if encoder is None:
                    encoder = self._encoder(meeting_id)
                self._send_from(sub, encoder, encoder.after(sub.last_seq))

    def _flush(self, meeting_id: str) -> None:
        self._scheduled.pop(meeting_id, None)
        encoder = self._encoders.pop(meeting_id, None)
        events = self._pending.pop(meeting_id, [])
        self._last_flush[meeting_id] = asyncio.get_running_loop().time()
        subs = self._meetings.get(meeting_id)
        if not events or not subs:
            return
        if encoder is None:
            encoder = _Encoder(self, events)
        # People for whom some event reads differently than for the public.
        special = encoder.special()
        first_seq, last_seq = events[0].seq, events[-1].seq
        # This loop runs for every connection of the meeting, per event: what
        # does not depend on the connection is worked out once, outside it.
        public: tuple[bytes, bytes] | None = None
        public_done = False
        queued = 0
        for sub in subs:
            if sub.syncing:
                sub.held.extend(events)
                continue
            if sub.last_seq >= first_seq:
                # Has some of these already: named in them (sent at once), or
                # just came live with them in its snapshot or replay.
                if sub.last_seq < last_seq:
                    self._send_from(sub, encoder, encoder.after(sub.last_seq))
                continue
            sub.last_seq = last_seq
            if sub.staff:
                self._push_for(sub, events, encoder)
                continue
            if special and (pid := sub.viewer.participant_id) is not None and pid in special:
                framed = encoder.named(sub.viewer, special[pid])
                if framed is not None:
                    sub.push(framed[0], framed[1])
                    queued += 1
                continue
            if not public_done:
                public = encoder.public()
                public_done = True
            if public is not None:
                sub.push(public[0], public[1])
                queued += 1
        self.frames_queued += queued

    def _send_from(self, sub: Subscriber, encoder: _Encoder, start: int) -> None:
        """What the connection lacks of the encoder's events: those from `start` on."""
        events = encoder.events
        if start >= len(events):
            return
        sub.last_seq = events[-1].seq
        if sub.staff:
            self._push_for(sub, events[start:], encoder)
            return
        pid = sub.viewer.participant_id
        positions = encoder.special().get(pid) if pid is not None else None
        framed = encoder.named(sub.viewer, positions or [], start)
        if framed is not None:
            sub.push(framed[0], framed[1])
            self.frames_queued += 1

    def _push_for(self, sub: Subscriber, events: list[Event], encoder: _Encoder) -> None:
        framed = encoder.personal(events, sub.viewer)
        if framed is not None:
            sub.push(*framed)
            self.frames_queued += 1

    # --- presence ---

    def presence(self, meeting_id: str) -> dict[str, Any]:
        """Counts only, never identities: people online, in the hall, by role."""
        presence = self._presence.get(meeting_id)
        if presence is None:
            return {"online": 0, "in_room": 0, "by_role": {}}
        return presence.counts()

    async def _presence_loop(self) -> None:
        while True:
            await asyncio.sleep(self._presence_interval)
            dirty, self._presence_dirty = self._presence_dirty, set()
            for meeting_id in dirty:
                subs = self._meetings.get(meeting_id)
                if not subs:
                    continue
                frame = orjson.dumps({"type": "presence", **self.presence(meeting_id)})
                wire = ws_text_frame(frame)
                for sub in subs:
                    if not sub.syncing:
                        sub.push(frame, wire)


def _special_participants(events: list[Event], offset: int = 0) -> dict[str, list[int]]:
    """Who is named in these events (author, recipient, restricted-count
    author), and at which positions (plus `offset`), in order: only there
    does their projection differ from the public one."""
    special: dict[str, list[int]] = {}
    for i, event in enumerate(events, offset):
        named: set[str] = set()
        if event.recipient is not None:
            named.add(event.recipient)
        author = event.data.get("author_id")
        if author is not None:
            named.add(author)
        restricted = event.data.get("restricted")
        if restricted:
            named.update(n for n in restricted.values() if n is not None)
        for pid in named:
            special.setdefault(pid, []).append(i)
    return special


class _Encoder:
    """Encodes each (event, audience) once, and each distinct batch once.

    Its list of events may grow (the hub's pending events of a meeting, while
    a flush waits): what it worked out for the events so far is kept and
    extended.
    """

    def __init__(self, hub: Hub, events: list[Event]) -> None:
        self._hub = hub
        self.events = events
        self._payloads: dict[tuple[int, Hashable], bytes | None] = {}
        self._batches: dict[tuple[tuple[int, Hashable], ...], tuple[bytes, bytes] | None] = {}
        self._public_payloads: list[bytes | None] = []
        # Whether the public sees any of the events so far.
        self._public_seen = False
        self._special: dict[str, list[int]] = {}
        self._special_upto = 0
        # Public frames of the events from a position on, with the count they cover.
        self._public_frames: dict[int, tuple[int, tuple[bytes, bytes] | None]] = {}

    def _payload(self, event: Event, audience: Hashable) -> bytes | None:
        key = (event.seq, audience)
        if key not in self._payloads:
            data = project_event_for(event, audience)
            self._payloads[key] = None if data is None else event_frame(event.seq, event.kind, data)
            self._hub.frames_encoded += 1
        return self._payloads[key]

    def after(self, seq: int) -> int:
        """The position of the first event after `seq`."""
        return bisect.bisect_right(self.events, seq, key=_seq)

    def special(self) -> dict[str, list[int]]:
        """Who is named in the events, and at which positions (see _special_participants)."""
        if self._special_upto < len(self.events):
            more = _special_participants(self.events[self._special_upto :], self._special_upto)
            for pid, positions in more.items():
                self._special.setdefault(pid, []).extend(positions)
            self._special_upto = len(self.events)
        return self._special

    def _public_list(self) -> list[bytes | None]:
        """Each event's payload as the public sees it (None: no frame)."""
        done = len(self._public_payloads)
        if done < len(self.events):
            more = [self._payload(e, event_audience(e, PUBLIC_VIEWER)) for e in self.events[done:]]
            self._public_payloads.extend(more)
            self._public_seen = self._public_seen or any(p is not None for p in more)
        return self._public_payloads

    def public(self, start: int = 0) -> tuple[bytes, bytes] | None:
        """The frame, for everybody neither staff nor named in them, of the events from `start`."""
        count = len(self.events)
        self._public_list()
        if not self._public_seen:
            return None  # nothing of these is public (a pre-moderation queue)
        cached = self._public_frames.get(start)
        if cached is None or cached[0] != count:
            cached = (count, _framed(self._public_list()[start:]))
            self._public_frames[start] = cached
        return cached[1]

    def named(
        self, viewer: Viewer, positions: list[int], start: int = 0
    ) -> tuple[bytes, bytes] | None:
        """The frame, for a reader who is not staff, of the events from `start`,
        among which they are named at `positions`.

        Such a reader sees every other event as the public does, so the public
        payloads are reused and only those few are projected for them. When
        many people post at once, each author's frame then costs a join, not a
        projection of every event in the batch.
        """
        own_positions = [i for i in positions if i >= start]
        if not own_positions:
            return self.public(start)
        public = self._public_list()
        events = self.events
        if not self._public_seen:
            # Nothing of these events is public (a pre-moderation queue): only
            # their own, with no list of the whole batch per reader.
            return _framed(
                [self._payload(events[i], event_audience(events[i], viewer)) for i in own_positions]
            )
        own = public[start:]
        for i in own_positions:
            own[i - start] = self._payload(events[i], event_audience(events[i], viewer))
        return _framed(own)

    def personal(self, events: list[Event], viewer: Viewer) -> tuple[bytes, bytes] | None:
        """The frame for staff, or for a reader who came live amid `events`."""
        keys = tuple((e.seq, event_audience(e, viewer)) for e in events)
        if keys not in self._batches:
            self._batches[keys] = _framed(
                [self._payload(e, a) for e, (_, a) in zip(events, keys, strict=True)]
            )
        return self._batches[keys]


def _seq(event: Event) -> int:
    return event.seq


def _framed(payloads: list[bytes | None]) -> tuple[bytes, bytes] | None:
    """One frame (a batch if several) of the payloads that exist, and its wire bytes."""
    present = [p for p in payloads if p is not None]
    if not present:
        return None
    payload = present[0] if len(present) == 1 else batch_frame(present)
    return payload, ws_text_frame(payload)
