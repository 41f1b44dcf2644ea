"""The recent events of one meeting, kept in memory so that resumes need no database.

A history holds every event of its meeting with a seq in (`after`, `last`]:
all of them, in order, or it does not claim the range. The database event
log stays the truth (Guarantee 7); a history is a copy of its tail that a
resume inside it reads instead of querying, and anything older falls back to
the log. Projection for the reader happens afterwards, exactly as for the
events read from the log (Guarantee 4).

It starts from the log (`fill`: the tail read in one transaction) while
the events delivered meanwhile wait in `_early`; from then on each delivered
event is appended. A seq that does not follow on empties it and starts over
from that event, so it never claims a range it does not hold.
"""

from __future__ import annotations

from collections import deque

from server.domain.models import Event


class History:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        # Every event with seq in (after, last] is in `_events`, once filled.
        self.after = 0
        self.last = 0
        self.filled = False
        self._events: deque[Event] = deque()
        self._early: list[Event] = []

    def fill(self, after: int, last: int, events: list[Event]) -> None:
        """Start from the log's events in (after, last], as read in one transaction.

        Seqs missing from them are gone from the log for good (erased
        personal events), so the range is whole all the same.
        """
        self.after, self.last = after, last
        self._events = deque(e for e in events if after < e.seq <= last)
        self.filled = True
        early, self._early = self._early, []
        for event in early:
            self.add(event)
        self._trim()

    def add(self, event: Event) -> None:
        """A committed event, delivered in seq order."""
        if not self.filled:
            self._early.append(event)
            return
        if event.seq <= self.last:
            return  # committed before the fill read the log: already here
        if event.seq != self.last + 1:
            # A gap (news lost between processes): only what follows is known.
            self._events.clear()
            self.after = event.seq - 1
        self._events.append(event)
        self.last = event.seq
        self._trim()

    def _trim(self) -> None:
        while len(self._events) > self.limit:
            self.after = self._events.popleft().seq

    def between(self, after: int, upto: int) -> list[Event] | None:
        """The events in (after, upto], or None if this history does not hold them all."""
        if not self.filled or after < self.after or upto > self.last or after > upto:
            return None
        # Seqs are dense here but for holes of the log: skip from the right end.
        out = []
        for event in reversed(self._events):
            if event.seq <= after:
                break
            if event.seq <= upto:
                out.append(event)
        out.reverse()
        return out
