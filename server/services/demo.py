"""A demo meeting: a Danish municipal budget hearing, live, with some life in it."""

from __future__ import annotations

import secrets
from typing import Any

from server.domain.errors import DomainError
from server.domain.models import Actor, Answered, Kind, Phase
from server.protocol import Floor, MarkAnswered, Post, SetPhase, Spotlight, Vote
from server.services import commands, meetings
from server.services.context import Services, authenticate

DEMO_ID = "budget-2027"

BASIS = """\
## Budget 2027: hvor skal vi spare 38 mio. kr.?

Byrådet skal i efteråret vedtage budgettet for 2027. Kommunens indtægter
falder, og udgifterne til ældre og til det specialiserede børneområde stiger.
Derfor skal der findes **38 mio. kr.** i varige besparelser.

### Hvad er besluttet
- Skatten hæves ikke i 2027.
- Folkeskolernes undervisningstimer holdes på det nuværende niveau.

### Hvad er åbent, og hvad vi gerne vil høre jer om
| område | forslag til besparelse |
| --- | --- |
| Skoler og dagtilbud | 14 mio. kr. (samling af to skoler i Nordby) |
| Ældre og sundhed | 11 mio. kr. (færre faste vikarer, ny visitation) |
| Kultur og fritid | 8 mio. kr. (kortere åbningstid på biblioteker) |
| Administration | 5 mio. kr. |

### Spilleregler for dialogen
1. Stil ét spørgsmål ad gangen, og hold en god tone.
2. Stem de spørgsmål op, du gerne vil have svar på.
3. Moderatorerne kan skjule indlæg, der er personangreb eller ikke handler om budgettet.
4. Spørgsmål, der ikke når at blive besvaret i aften, besvares skriftligt inden 14 dage.
"""

TOPICS = ("Skoler og dagtilbud", "Ældre og sundhed", "Kultur og fritid")

QUESTIONS = (
    (0, "Hvorfor skal netop Nordby Skole lukkes, når elevtallet stiger i området?", "Mette"),
    (0, "Hvor langt får børnene til skole, hvis skolerne samles?", None),
    (
        1,
        "Hvordan sikrer I, at de ældre stadig møder faste ansigter, når vikarerne skæres væk?",
        "Jens",
    ),
    (2, "Kan frivillige holde biblioteket åbent om aftenen i stedet for at lukke?", None),
    (1, "Hvad koster den nye visitationsmodel at indføre?", "Aisha"),
)


async def seed(services: Services) -> dict[str, Any]:
    """Create the demo meeting (or hand out new keys to the existing one)."""
    try:
        created = await meetings.create_meeting(
            services,
            {
                "id": DEMO_ID,
                "title": "Borgermøde om budget 2027",
                "basis": BASIS,
                "language": "da",
                "settings": {"moderation": "post", "anonymous": False, "public": True},
            },
        )
    except DomainError:
        return await meetings.rotate_keys(services, DEMO_ID)
    moderator = await _join(services, created["moderator_key"], "Moderator Lise")
    speaker = await _join(services, created["speaker_key"], "Borgmester Hansen")
    topic_ids = []
    for title in TOPICS:
        result = await _run(services, moderator, Post(None, None, title, _cid(), Kind.TOPIC))
        topic_ids.append(result["message"]["id"])
    await _run(services, moderator, SetPhase(None, Phase.OPEN))
    citizens = [
        await _join(services, None, name) for name in ("Mette", "Jens", "Aisha", None, None)
    ]
    question_ids = []
    for i, (topic, body, _name) in enumerate(QUESTIONS):
        result = await _run(services, citizens[i], Post(None, topic_ids[topic], body, _cid(), None))
        question_ids.append(result["message"]["id"])
    for voter_index, votes in enumerate(((0, 1, 2), (0, 2), (0, 3), (0, 1), (2, 4))):
        for q in votes:
            await _run(services, citizens[voter_index], Vote(None, question_ids[q], 1))
    await _run(services, moderator, SetPhase(None, Phase.LIVE))
    await _run(
        services,
        moderator,
        Floor(
            None,
            "Hvad sker der med skolebussen, hvis Nordby Skole lukker?",
            topic_ids[0],
            "Forælder fra Nordby",
            None,
            None,
        ),
    )
    await _run(
        services,
        speaker,
        Post(
            None,
            question_ids[3],
            "Det er en god idé. Vi undersøger en model med frivillige "
            "aftenvagter sammen med bibliotekets venneforening og vender tilbage inden budgetforliget.",
            _cid(),
            None,
        ),
    )
    await _run(services, speaker, MarkAnswered(None, question_ids[3], Answered.WRITTEN, None))
    await _run(services, moderator, Spotlight(None, question_ids[0]))
    await services.votes.flush()
    return created


def _cid() -> str:
    return "demo-" + secrets.token_hex(6)


async def _join(services: Services, key: str | None, name: str | None) -> Actor:
    body: dict[str, Any] = {"name": name, "in_room": key is None and name is not None}
    if key:
        body["key"] = key
    joined = await meetings.join(services, DEMO_ID, body)
    return await authenticate(services, DEMO_ID, joined["token"])


async def _run(services: Services, actor: Actor, command: Any) -> dict[str, Any]:
    return await commands.dispatch(services, actor, command, "demo")
