"""The QR code of the join URL, Prometheus metrics and the liveness probe."""

from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ET
from typing import Any

import zxingcpp
from prometheus_client.parser import text_string_to_metric_families

from tests.support import ADMIN_TOKEN, Api, ServerProcess, connect, new_meeting

SVG = "{http://www.w3.org/2000/svg}"
PIXELS_PER_MODULE = 4


def qr_modules(svg: str) -> tuple[int, set[tuple[int, int]]]:
    """The dark modules of a QR code drawn as one SVG path of horizontal strokes.

    Returns the size of the viewBox in modules and the (x, y) of each dark
    module. The path is read with its own commands (M, m, h, H, v, V, z), so
    any drawing of the modules as runs of 1-wide strokes decodes.
    """
    root = ET.fromstring(svg)
    assert root.tag in ("svg", SVG + "svg"), root.tag
    box = [float(v) for v in root.attrib["viewBox"].split()]
    scale = 1.0
    group = root.find(f"{SVG}g") if root.find(f"{SVG}g") is not None else root.find("g")
    if group is not None and "transform" in group.attrib:
        found = re.fullmatch(r"scale\(([\d.]+)\)", group.attrib["transform"])
        assert found, group.attrib["transform"]
        scale = float(found.group(1))
    paths = [p for p in root.iter() if p.tag in ("path", SVG + "path") and "stroke" in p.attrib]
    assert len(paths) == 1, "expected one stroked path of dark modules"
    dark: set[tuple[int, int]] = set()
    x = y = 0.0
    for command, args in re.findall(r"([MmHhVvZz])\s*([-\d.\s,]*)", paths[0].attrib["d"]):
        numbers = [float(n) for n in re.findall(r"-?[\d.]+", args)]
        if command == "M":
            x, y = numbers
        elif command == "m":
            x, y = x + numbers[0], y + numbers[1]
        elif command in "Hh":
            end = numbers[0] if command == "H" else x + numbers[0]
            for column in range(round(min(x, end)), round(max(x, end))):
                dark.add((column, int(y)))
            x = end
        elif command in "Vv":
            y = numbers[0] if command == "V" else y + numbers[0]
    return round(box[2] / scale), dark


def rasterise(size: int, dark: set[tuple[int, int]]) -> memoryview:
    """A grayscale image (0 dark, 255 light) of the modules, for a decoder."""
    side = size * PIXELS_PER_MODULE
    pixels = bytearray(b"\xff" * side * side)
    for mx, my in dark:
        for row in range(my * PIXELS_PER_MODULE, (my + 1) * PIXELS_PER_MODULE):
            start = row * side + mx * PIXELS_PER_MODULE
            pixels[start:start + PIXELS_PER_MODULE] = b"\x00" * PIXELS_PER_MODULE
    return memoryview(bytes(pixels)).cast("B", (side, side))


def decode_qr(svg: str) -> str:
    size, dark = qr_modules(svg)
    results = zxingcpp.read_barcodes(rasterise(size, dark))
    assert len(results) == 1, "exactly one code expected"
    assert results[0].format == zxingcpp.BarcodeFormat.QRCode
    return str(results[0].text)


async def test_qr_svg_encodes_the_join_url_of_the_meeting(api: Api) -> None:
    m = await new_meeting(api)
    other = await new_meeting(api)
    response = await api.client.get(f"{api.server.url}/api/meetings/{m.id}/qr.svg")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert decode_qr(response.text) == f"{api.server.url}/j/{m.created['code']}"
    assert m.created["urls"]["join"] == f"{api.server.url}/j/{m.created['code']}"
    response = await api.client.get(f"{api.server.url}/api/meetings/{other.id}/qr.svg")
    assert decode_qr(response.text) == f"{api.server.url}/j/{other.created['code']}"


async def test_qr_svg_of_a_draft_or_unknown_meeting_is_not_found(api: Api) -> None:
    draft = await new_meeting(api, phase="draft")
    for meeting_id in (draft.id, "no-such-meeting"):
        body = await api.request("GET", f"/api/meetings/{meeting_id}/qr.svg",
                                 route="/api/meetings/{id}/qr.svg", expect=404)
        assert body["error"]["code"] == "not_found"


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, by name and labels."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def metrics(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await api.client.get(f"{api.server.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return scrape(response.text)


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_connections_events_commands_and_errors(
    make_server: Any, http_client: Any
) -> None:
    server: ServerProcess = make_server()
    api = Api(server, http_client)
    m = await new_meeting(api)
    citizen = await m.citizen()
    before = await metrics(api)
    assert value(before, "ting_connections") == 0
    async with connect(server, m.id, citizen["token"]) as sock, connect(server, m.id, None):
        await sock.recv()
        during = await metrics(api)
        assert value(during, "ting_connections") == 2
        health = await api.request("GET", "/healthz", route="/healthz")
        assert health == {"status": "ok", "connections": 2}
        for n in range(3):
            await m.post(citizen, f"Question {n}")
        reply = await sock.command("post", parent_id=None, body="Over the socket",
                                   client_id="ws-post-1")
        assert reply["type"] == "ack"
        refused = await sock.command("moderate", message_id=reply["result"]["message"]["id"],
                                     action="hide")
        assert refused["code"] == "forbidden"
        after = await metrics(api)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("ting_events_total", kind="message.created") == 4
    assert grew("ting_commands_total", command="post", transport="http", result="ok") == 3
    assert grew("ting_commands_total", command="post", transport="ws", result="ok") == 1
    assert grew("ting_commands_total", command="moderate", transport="ws", result="error") == 1
    assert grew("ting_errors_total", code="forbidden") == 1
    assert value(after, "ting_command_seconds_count", command="post") >= 4

    async def connections_closed() -> bool:
        return value(await metrics(api), "ting_connections") == 0

    for _ in range(40):
        if await connections_closed():
            break
        await asyncio.sleep(0.05)
    assert value(await metrics(api), "ting_connections") == 0
    assert (await api.request("GET", "/healthz", route="/healthz"))["connections"] == 0


async def test_metrics_count_http_errors_by_code(make_server: Any, http_client: Any) -> None:
    server: ServerProcess = make_server()
    api = Api(server, http_client)
    before = await metrics(api)
    await api.request("GET", "/api/meetings/no-such-meeting", route="/api/meetings/{id}",
                      expect=404)
    await api.request("POST", "/api/meetings", token="not-the-admin-token", json={"title": "X"},
                      route="/api/meetings", expect=401)
    after = await metrics(api)
    assert value(after, "ting_errors_total", code="not_found") - value(
        before, "ting_errors_total", code="not_found") == 1
    assert value(after, "ting_errors_total", code="unauthorized") - value(
        before, "ting_errors_total", code="unauthorized") == 1
    # The organiser's token is not needed to read metrics, and none leaks into them.
    assert ADMIN_TOKEN not in (await api.client.get(f"{server.url}/metrics")).text


async def test_healthz_answers_ok(api: Api) -> None:
    health = await api.request("GET", "/healthz", route="/healthz")
    assert health["status"] == "ok"
    assert isinstance(health["connections"], int) and health["connections"] >= 0
