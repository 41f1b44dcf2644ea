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

from server.domain.models import Event
from server.domain.views import Viewer, event_audience, project_event_for
from server.hub.backends import Backend
from server.hub.subscriber import Subscriber
from server.protocol import event_frame


class Hub:
    def __init__(self, backend: Backend, *, presence_interval: float = 1.0) -> None:
        self._backend = backend
        self._meetings: dict[str, set[Subscriber]] = {}
        self._presence_interval = presence_interval
        self._presence_dirty: set[str] = set()
        self._presence_task: asyncio.Task[None] | None = None
        self.frames_encoded = 0
        self.frames_queued = 0

    async def start(self) -> None:
        await self._backend.start(self._deliver)
        self._presence_task = asyncio.create_task(self._presence_loop(), name="ting-presence")

    async def stop(self) -> None:
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
        self, meeting_id: str, viewer: Viewer, *, budget: int, in_room: bool
    ) -> Subscriber:
        sub = Subscriber(meeting_id, viewer, budget=budget, in_room=in_room)
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
        self._push_events(sub, held, {})

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
        by_meeting: dict[str, list[Event]] = {}
        for event in events:
            by_meeting.setdefault(event.meeting_id, []).append(event)
        for meeting_id, meeting_events in by_meeting.items():
            subs = self._meetings.get(meeting_id)
            if not subs:
                continue
            cache: dict[tuple[int, Hashable], bytes | None] = {}
            for sub in subs:
                if sub.syncing:
                    sub.held.extend(meeting_events)
                else:
                    self._push_events(sub, meeting_events, cache)

    def _push_events(
        self, sub: Subscriber, events: list[Event], cache: dict[tuple[int, Hashable], bytes | None]
    ) -> None:
        for event in events:
            if event.seq <= sub.last_seq:
                continue  # already in the replay or snapshot it was sent
            sub.last_seq = event.seq
            key = (event.seq, event_audience(event, sub.viewer))
            if key in cache:
                frame = cache[key]
            else:
                data = project_event_for(event, key[1])
                frame = None if data is None else event_frame(event.seq, event.kind.value, data)
                cache[key] = frame
                self.frames_encoded += 1
            if frame is not None:
                sub.push(frame)
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
                for sub in subs:
                    if not sub.syncing:
                        sub.push(frame)
