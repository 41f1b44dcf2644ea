"""The hub: who is connected to which meeting, and what each of them receives.

Each committed event is encoded once per audience (readers who may see the
same projection of it), and the same bytes are queued for every connection
of that audience. Presence counts are pushed at most once per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Hashable, Iterable
from typing import Any

import orjson

from server.domain.models import Event, Role
from server.domain.views import Viewer, event_audience, project_event_for
from server.hub.backends import Backend
from server.hub.subscriber import Sink, Subscriber
from server.protocol import batch_frame, event_frame, ws_text_frame

# Events of one meeting closer together than this go out as one batch frame.
BATCH_WINDOW = 0.025


class Hub:
    def __init__(self, backend: Backend, *, presence_interval: float = 1.0) -> None:
        self._backend = backend
        self._meetings: dict[str, set[Subscriber]] = {}
        self._presence_interval = presence_interval
        self._presence_dirty: set[str] = set()
        self._presence_task: asyncio.Task[None] | None = None
        self._pending: dict[str, list[Event]] = {}
        self._scheduled: dict[str, asyncio.TimerHandle] = {}
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
        self._presence_dirty.add(meeting_id)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        subs = self._meetings.get(sub.meeting_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._meetings[sub.meeting_id]
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
            self._push_for(sub, newer, _Encoder(self))

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

    # --- events ---

    def publish(self, events: list[Event]) -> None:
        """Called after commit, in seq order."""
        self._backend.publish(events)

    def _deliver(self, events: list[Event]) -> None:
        """Events arrive; each meeting's go out now or, in a burst, a little later.

        When events of a meeting come faster than one per BATCH_WINDOW, those
        of the window go out together, one frame per connection: fewer, larger
        writes, which is what a phone can usefully take in a burst.
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        for event in events:
            self._pending.setdefault(event.meeting_id, []).append(event)
        for meeting_id in {e.meeting_id for e in events}:
            if meeting_id in self._scheduled:
                continue
            wait = self._last_flush.get(meeting_id, 0.0) + BATCH_WINDOW - now
            if wait <= 0:
                self._flush(meeting_id)
            else:
                self._scheduled[meeting_id] = loop.call_later(wait, self._flush, meeting_id)

    def _flush(self, meeting_id: str) -> None:
        self._scheduled.pop(meeting_id, None)
        events = self._pending.pop(meeting_id, [])
        self._last_flush[meeting_id] = asyncio.get_running_loop().time()
        subs = self._meetings.get(meeting_id)
        if not events or not subs:
            return
        encoder = _Encoder(self)
        # People for whom some event reads differently than for the public.
        special = _special_participants(events)
        first_seq, last_seq = events[0].seq, events[-1].seq
        for sub in subs:
            if sub.syncing:
                sub.held.extend(events)
                continue
            viewer = sub.viewer
            if sub.last_seq >= first_seq:
                # Just came live with some of these in its snapshot or replay.
                newer = [e for e in events if e.seq > sub.last_seq]
                if newer:
                    sub.last_seq = newer[-1].seq
                    self._push_for(sub, newer, encoder)
                continue
            sub.last_seq = last_seq
            if viewer.is_staff or (
                viewer.participant_id is not None and viewer.participant_id in special
            ):
                self._push_for(sub, events, encoder)
            else:
                framed = encoder.public(events)
                if framed is not None:
                    sub.push(*framed)
                    self.frames_queued += 1

    def _push_for(self, sub: Subscriber, events: list[Event], encoder: _Encoder) -> None:
        framed = encoder.personal(events, sub.viewer)
        if framed is not None:
            sub.push(*framed)
            self.frames_queued += 1

    # --- presence ---

    def presence(self, meeting_id: str) -> dict[str, Any]:
        """Counts only, never identities: people online, in the hall, by role."""
        seen: set[str] = set()
        by_role: Counter[str] = Counter()
        online = in_room = 0
        for sub in self._meetings.get(meeting_id, ()):
            pid = sub.participant_id
            if pid is not None:
                if pid in seen:
                    continue
                seen.add(pid)
            online += 1
            in_room += sub.in_room
            by_role[sub.viewer.role.value] += 1
        return {"online": online, "in_room": in_room, "by_role": dict(by_role)}

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


def _special_participants(events: list[Event]) -> set[str]:
    """Authors, recipients and restricted-count authors named in these events."""
    special: set[str] = set()
    for event in events:
        if event.recipient is not None:
            special.add(event.recipient)
        author = event.data.get("author_id")
        if author is not None:
            special.add(author)
        restricted = event.data.get("restricted")
        if restricted:
            special.update(a for a in restricted.values() if a is not None)
    return special


class _Encoder:
    """Encodes each (event, audience) once, and each distinct batch once."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._payloads: dict[tuple[int, Hashable], bytes | None] = {}
        self._batches: dict[tuple[tuple[int, Hashable], ...], tuple[bytes, bytes] | None] = {}
        self._public: tuple[bytes, bytes] | None = None
        self._public_done = False

    def _payload(self, event: Event, audience: Hashable) -> bytes | None:
        key = (event.seq, audience)
        if key not in self._payloads:
            data = project_event_for(event, audience)
            self._payloads[key] = (
                None if data is None else event_frame(event.seq, event.kind.value, data)
            )
            self._hub.frames_encoded += 1
        return self._payloads[key]

    def _frame(
        self, keys: tuple[tuple[int, Hashable], ...], events: list[Event]
    ) -> tuple[bytes, bytes] | None:
        if keys not in self._batches:
            payloads = [
                p
                for e, (_, a) in zip(events, keys, strict=True)
                if (p := self._payload(e, a)) is not None
            ]
            if not payloads:
                self._batches[keys] = None
            else:
                payload = payloads[0] if len(payloads) == 1 else batch_frame(payloads)
                self._batches[keys] = (payload, ws_text_frame(payload))
        return self._batches[keys]

    def public(self, events: list[Event]) -> tuple[bytes, bytes] | None:
        """The frame for everybody who is neither staff nor named in the events."""
        if not self._public_done:
            keys = tuple((e.seq, event_audience(e, _PUBLIC_VIEWER)) for e in events)
            self._public = self._frame(keys, events)
            self._public_done = True
        return self._public

    def personal(self, events: list[Event], viewer: Viewer) -> tuple[bytes, bytes] | None:
        keys = tuple((e.seq, event_audience(e, viewer)) for e in events)
        return self._frame(keys, events)


# A reader who is neither staff nor named in any event.
_PUBLIC_VIEWER = Viewer(Role.VIEWER)
