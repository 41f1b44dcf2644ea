"""The recent events a hub keeps per meeting: a range it claims is whole.

`History` is pure bookkeeping (no I/O), so these tests drive it directly; the
tests of resume (test_resume.py, test_live_equals_replay.py) hold the server
that uses it to the log.
"""

from __future__ import annotations

from server.domain.models import Event, EventKind
from server.hub.history import History


def event(seq: int, recipient: str | None = None) -> Event:
    return Event("m", seq, EventKind.SPOTLIGHT_CHANGED, {"message_id": None}, None, recipient)


def seqs(events: list[Event] | None) -> list[int] | None:
    return None if events is None else [e.seq for e in events]


def test_a_history_answers_nothing_until_it_is_filled_from_the_log() -> None:
    history = History(limit=10)
    history.add(event(5))
    assert history.between(0, 5) is None
    history.fill(2, 4, [event(3), event(4)])
    assert seqs(history.between(2, 5)) == [3, 4, 5]


def test_events_delivered_while_the_log_was_read_are_neither_lost_nor_doubled() -> None:
    history = History(limit=10)
    # Committed before the read (so in it) but delivered after; then newer.
    history.add(event(4))
    history.add(event(5))
    history.fill(1, 4, [event(2), event(3), event(4)])
    assert seqs(history.between(1, 5)) == [2, 3, 4, 5]
    assert history.last == 5


def test_seqs_missing_from_the_log_do_not_break_the_range() -> None:
    # Erasure deletes the personal events of the erased person for good.
    history = History(limit=10)
    history.fill(0, 5, [event(1), event(3), event(5)])
    assert seqs(history.between(0, 5)) == [1, 3, 5]
    assert seqs(history.between(3, 5)) == [5]
    history.add(event(6))
    assert seqs(history.between(2, 6)) == [3, 5, 6]


def test_a_resume_before_the_kept_range_or_ahead_of_it_is_not_answered() -> None:
    history = History(limit=10)
    history.fill(10, 12, [event(11), event(12)])
    assert history.between(9, 12) is None
    assert history.between(10, 13) is None
    assert seqs(history.between(10, 12)) == [11, 12]
    assert seqs(history.between(12, 12)) == []


def test_the_oldest_events_go_when_the_limit_is_reached() -> None:
    history = History(limit=3)
    history.fill(0, 0, [])
    for seq in range(1, 6):
        history.add(event(seq))
    assert history.after == 2
    assert history.between(1, 5) is None
    assert seqs(history.between(2, 5)) == [3, 4, 5]


def test_a_gap_in_the_delivered_seqs_starts_the_range_over() -> None:
    history = History(limit=10)
    history.fill(0, 2, [event(1), event(2)])
    history.add(event(5))  # 3 and 4 never arrived
    assert history.between(2, 5) is None
    assert seqs(history.between(4, 5)) == [5]
