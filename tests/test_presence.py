"""Presence counts, kept socket by socket: each person once, each viewer socket once."""

from __future__ import annotations

from server.hub.presence import Presence


def test_a_person_with_several_sockets_counts_once_until_the_last_closes() -> None:
    presence = Presence()
    presence.add("p1", "citizen", True)
    presence.add("p1", "citizen", True)
    presence.add(None, "viewer", False)
    presence.add(None, "viewer", False)
    presence.add("p2", "moderator", False)
    assert presence.counts() == {
        "online": 4, "in_room": 1, "by_role": {"citizen": 1, "viewer": 2, "moderator": 1}
    }
    presence.remove("p1", "citizen", True)
    assert presence.counts()["online"] == 4
    presence.remove("p1", "citizen", True)
    presence.remove(None, "viewer", False)
    assert presence.counts() == {"online": 2, "in_room": 0,
                                 "by_role": {"viewer": 1, "moderator": 1}}
    presence.remove(None, "viewer", False)
    presence.remove("p2", "moderator", False)
    assert presence.counts() == {"online": 0, "in_room": 0, "by_role": {}}
