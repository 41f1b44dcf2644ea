"""Who is connected to a meeting, as counts kept up to date socket by socket.

Counting over every connection each time was quadratic: every snapshot
carries the counts, so a hall of 5,000 joining counted 5,000 sockets 5,000
times. The counts change by one as a socket opens or closes instead.

Counts only, never identities (Guarantee 10): each participant once however
many sockets they have, each viewer socket once.
"""

from __future__ import annotations

from collections import Counter
from typing import Any


class Presence:
    def __init__(self) -> None:
        self.online = 0
        self.in_room = 0
        self._by_role: Counter[str] = Counter()
        # Open sockets per participant: a person counts while one is open.
        self._sockets: Counter[str] = Counter()

    def add(self, participant_id: str | None, role: str, in_room: bool) -> None:
        if participant_id is not None:
            self._sockets[participant_id] += 1
            if self._sockets[participant_id] > 1:
                return
        self.online += 1
        self.in_room += in_room
        self._by_role[role] += 1

    def remove(self, participant_id: str | None, role: str, in_room: bool) -> None:
        if participant_id is not None:
            self._sockets[participant_id] -= 1
            if self._sockets[participant_id] > 0:
                return
            del self._sockets[participant_id]
        self.online -= 1
        self.in_room -= in_room
        self._by_role[role] -= 1
        if not self._by_role[role]:
            del self._by_role[role]

    def counts(self) -> dict[str, Any]:
        return {"online": self.online, "in_room": self.in_room, "by_role": dict(self._by_role)}
