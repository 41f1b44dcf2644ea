"""The table of issue 4 from a run's results, the machine it ran on, and JSON."""

from __future__ import annotations

import math
import os
import platform
import subprocess
from dataclasses import asdict, dataclass
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from bench.procs import ROOT


@dataclass
class Row:
    figure: str
    workload: str
    server: str
    baseline: str
    ratio: str
    target: str
    met: bool | None


def _num(value: Any, fmt: str = "{:.1f}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def _get(d: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _delivered(run: dict[str, Any] | None) -> bool:
    return bool(
        run
        and run["complete"] == run["clients"]
        and run["exact"] == run["clients"]
        and run["order_errors"] == 0
        and run["acked"] == run["published"]
    )


def _delivery_text(run: dict[str, Any] | None) -> str:
    if not run:
        return "-"
    text = f"{run['complete']}/{run['clients']} complete, {run['order_errors']} out of order"
    if run["missing"]:
        text += f", {run['missing']} missing"
    return text


def _ok(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) and "error" not in value else None


def _errors(results: dict[str, Any], prefix: str = "") -> list[Row]:
    """A row for every workload that failed to run (and so met nothing)."""
    out = []
    for name, value in results.items():
        if isinstance(value, dict) and "error" in value:
            last = value["error"].strip().splitlines()[-1][:120]
            out.append(Row(prefix + name, "did not complete", last, "", "", "", False))
        elif isinstance(value, dict) and name in ("baseline", "ting", "ingest", "join"):
            out.extend(_errors(value, f"{name} "))
    return out


def rows(results: dict[str, Any], clients: int) -> list[Row]:
    out: list[Row] = _errors(results)
    ting = {k: v for k, v in (_ok(results.get("ting")) or {}).items() if _ok(v)}
    base = {k: v for k, v in (_ok(results.get("baseline")) or {}).items() if _ok(v)}

    tf, bf = ting.get("fanout"), base.get("fanout")
    if tf or bf:
        t = _get(ting, "fanout", "cpu_per_delivery_us")
        b = _get(base, "fanout", "cpu_per_delivery_us")
        r = _ratio(t, b)
        out.append(
            Row(
                "fan-out CPU",
                f"{clients} clients, {tf['published'] if tf else '-'} questions at 10/s",
                _num(t, "{:.2f} µs/delivery"),
                _num(b, "{:.2f} µs/delivery"),
                _num(r, "{:.2f}x"),
                "≤ 1.25x",
                r is not None and r <= 1.25 and _delivered(tf),
            )
        )
        tl = _get(ting, "fanout", "latency_ms", "p99")
        bl = _get(base, "fanout", "latency_ms", "p99")
        r = _ratio(tl, bl)
        keeps_up = tf is not None and _delivered(tf) and not tf.get("close_codes")
        out.append(
            Row(
                "latency p99",
                "publish → client, the 10/s workload",
                _num(tl, "{:.1f} ms"),
                _num(bl, "{:.1f} ms"),
                _num(r, "{:.2f}x"),
                "≤ 1.5x and ≤ 200 ms",
                r is not None and r <= 1.5 and tl is not None and tl <= 200 and keeps_up,
            )
        )
        out.append(
            Row(
                "keeps up",
                "10/s: every client gets every event",
                _delivery_text(tf)
                + (f", max {_num(_get(tf, 'latency_ms', 'max'), '{:.0f}')} ms" if tf else ""),
                _delivery_text(bf)
                + (f", max {_num(_get(bf, 'latency_ms', 'max'), '{:.0f}')} ms" if bf else ""),
                "",
                "all, none closed",
                keeps_up,
            )
        )

    tb, bb = ting.get("burst"), base.get("burst")
    if tb or bb:
        t = _get(ting, "burst", "cpu_per_delivery_us")
        b = _get(base, "burst", "cpu_per_delivery_us")
        r = _ratio(t, b)
        out.append(
            Row(
                "burst CPU",
                f"{clients} clients, {tb['published'] if tb else '-'} events at 100/s",
                _num(t, "{:.2f} µs/delivery"),
                _num(b, "{:.2f} µs/delivery"),
                _num(r, "{:.2f}x"),
                "≤ 1.0x",
                r is not None and r <= 1.0 and _delivered(tb),
            )
        )
        out.append(
            Row(
                "burst delivery",
                "every event, in order",
                _delivery_text(tb) + (f", {_num(_get(tb, 'deliver_seconds'))} s" if tb else ""),
                _delivery_text(bb) + (f", {_num(_get(bb, 'deliver_seconds'))} s" if bb else ""),
                "",
                "all, in order",
                _delivered(tb),
            )
        )

    tm, bm = ting.get("memory"), base.get("memory")
    if tm or bm:
        t = _get(ting, "memory", "per_connection")
        b = _get(base, "memory", "per_connection")
        r = _ratio(t, b)
        out.append(
            Row(
                "memory",
                f"{clients} idle connections, RSS per connection",
                _num(t and t / 1024, "{:.1f} KiB"),
                _num(b and b / 1024, "{:.1f} KiB"),
                _num(r, "{:.2f}x"),
                "≤ 2x",
                r is not None and r <= 2.0,
            )
        )

    ingest = _ok(results.get("ingest")) or {}
    ing = _ok(ingest.get("ting"))
    if ing:
        ing = ing | {"raw": _ok(ingest.get("raw")) or {}}
        t = ing.get("posts_per_second")
        b = _get(ing, "raw", "rows_per_second")
        r = _ratio(t, b)
        rounds = _get(ing, "all_rounds", "ratios") or []
        of_rounds = (
            f"; median of {len(rounds)} rounds ({', '.join(f'{x:.2f}x' for x in rounds)})"
            if len(rounds) > 1
            else ""
        )
        out.append(
            Row(
                "ingest",
                f"{ing.get('clients')} clients posting into the moderation queue, "
                f"synchronous=FULL{of_rounds}",
                _num(t, "{:.0f} posts/s"),
                _num(b, "{:.0f} rows/s (raw)"),
                _num(r, "{:.2f}x"),
                "≥ 2,000/s and ≥ 2x",
                t is not None and b is not None and t >= 2000 and r is not None and r >= 2,
            )
        )
        p99 = _get(ing, "ack_latency_ms", "p99")
        out.append(
            Row(
                "ingest p99 ack",
                "send → ack",
                _num(p99, "{:.1f} ms"),
                _num(_get(ing, "raw", "p99_ms"), "{:.1f} ms (raw)"),
                "",
                "≤ 50 ms",
                p99 is not None and p99 <= 50,
            )
        )
        every = ing.get("all_rounds") or ing
        lost = every.get("lost_after_sigkill")
        out.append(
            Row(
                "ingest durability",
                "SIGKILL with posts in flight" + (" (every round)" if len(rounds) > 1 else ""),
                f"{lost} of {every.get('acked')} acked lost",
                "",
                "",
                "0 lost",
                lost == 0,
            )
        )
    everyone = _ok(ingest.get("ting_shown"))
    if everyone:
        # For the record, no target: ingest and a fan-out of posts/s times clients.
        t = everyone.get("posts_per_second")
        p99 = _get(everyone, "ack_latency_ms", "p99")
        lost = everyone.get("lost_after_sigkill")
        out.append(
            Row(
                "ingest, shown to all",
                f"same, each post sent at once to all {everyone.get('clients')} posters",
                f"{_num(t, '{:.0f} posts/s')}, p99 ack {_num(p99, '{:.1f} ms')}, "
                f"{lost} of {everyone.get('acked')} lost",
                _num(_get(ing or {}, "raw", "rows_per_second"), "{:.0f} rows/s (raw)"),
                _num(_ratio(t, _get(ing or {}, "raw", "rows_per_second")), "{:.2f}x"),
                "(reported)",
                None,
            )
        )

    tv = ting.get("votes")
    if tv:
        out.append(
            Row(
                "vote storm",
                f"{tv['clients']} clients vote once in {tv['storm_seconds']:.0f} s",
                f"{tv['stored']} stored, {tv['acked']} acked",
                "",
                "",
                f"all {tv['clients']} stored",
                tv["stored"] == tv["clients"] and tv["acked"] == tv["clients"],
            )
        )
        most = tv["vote_frames_per_second_max"]
        out.append(
            Row(
                "vote frames",
                "per client per second (max)",
                _num(most, "{:.0f}"),
                "",
                "",
                "≤ 5",
                most is not None and most <= 5,
            )
        )
        settle = _get(tv, "exact_after_last_vote_s", "max")
        out.append(
            Row(
                "vote counts exact",
                "after the last vote (max over clients)",
                _num(settle, "{:.2f} s") + f", {tv['exact_clients']}/{tv['clients']} exact",
                "",
                "",
                "≤ 1 s, every client",
                settle is not None
                and settle <= 1.0
                and tv["exact_clients"] == tv["clients"]
                and tv["own_vote_shown"] == tv["clients"],
            )
        )

    tr = ting.get("resume")
    if tr:
        p99 = _get(tr, "after_ready_s", "p99")
        ok = (
            tr["converged"] == tr["clients"]
            and tr["state_equals_snapshot"] == tr["clients"]
            and tr["order_errors"] == 0
        )
        out.append(
            Row(
                "resume storm",
                f"restart under {tr['clients']} clients",
                _num(p99, "p99 {:.2f} s") + f", {tr['converged']}/{tr['clients']} resumed, "
                f"{tr['state_equals_snapshot']} resumed = snapshot",
                "",
                "",
                "all converged, p99 ≤ 3 s",
                ok and p99 is not None and p99 <= 3.0,
            )
        )

    join = _ok(results.get("join"))
    if join:
        join = {k: v for k, v in join.items() if not isinstance(v, dict) or _ok(v)}
        raw = _get(join, "raw", "seconds", "p50")
        t = _get(join, "http", "seconds", "p50")
        r = _ratio(t, raw)
        out.append(
            Row(
                "join",
                f"snapshot of {join['messages']} messages (HTTP)",
                _num(t and t * 1000, "{:.0f} ms"),
                _num(raw and raw * 1000, "{:.0f} ms (raw)"),
                _num(r, "{:.2f}x"),
                "≤ 2x",
                r is not None and r <= 2.0,
            )
        )
        w = _get(join, "ws", "seconds", "p50")
        failures = _get(join, "ws", "failures") or {}
        r = _ratio(w, raw)
        shown = _num(w and w * 1000, "{:.0f} ms")
        if failures:
            shown += " (" + ", ".join(f"{n}x {k}" for k, n in failures.items()) + ")"
        out.append(
            Row(
                "join (socket)",
                "hello → snapshot frame",
                shown,
                _num(raw and raw * 1000, "{:.0f} ms (raw)"),
                _num(r, "{:.2f}x"),
                "≤ 2x",
                r is not None and r <= 2.0 and not failures,
            )
        )
    return out


def table(all_rows: list[Row]) -> str:
    head = ("figure", "workload", "Ting", "baseline", "ratio", "target", "met?")
    cells = [head] + [
        (
            r.figure,
            r.workload,
            r.server,
            r.baseline,
            r.ratio,
            r.target,
            "-" if r.met is None else ("yes" if r.met else "NO"),
        )
        for r in all_rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = []
    for n, c in enumerate(cells):
        lines.append("| " + " | ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def machine(data_dir: Path, server_root: Path | None = None) -> dict[str, Any]:
    """What the run ran on (no paths: only kinds and sizes)."""
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        info["cpu"] = models[0] if models else platform.machine()
    except OSError:
        info["cpu"] = platform.machine()
    try:
        with open("/proc/meminfo") as f:
            total = next(line for line in f if line.startswith("MemTotal"))
        info["memory_gib"] = round(int(total.split()[1]) / 1024 / 1024, 1)
    except (OSError, StopIteration):
        pass
    info["data_filesystem"] = _filesystem(data_dir)
    for package in ("websockets", "uvicorn", "starlette", "sqlalchemy", "aiosqlite", "orjson"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    info["generator_loop"] = "uvloop" if find_spec("uvloop") else "asyncio"
    info["commit"] = _commit(server_root or ROOT)
    return info


def _filesystem(path: Path) -> str:
    """The filesystem type under the databases (tmpfs would make fsync free)."""
    best, kind = "", "unknown"
    try:
        resolved = str(path.resolve())
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                mount, fstype = parts[1], parts[2]
                if resolved.startswith(mount) and len(mount) > len(best):
                    best, kind = mount, fstype
    except OSError:
        pass
    return kind


def _commit(root: Path) -> str:
    """The server's commit, marked when its code has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "server"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def as_json(all_rows: list[Row]) -> list[dict[str, Any]]:
    return [asdict(r) for r in all_rows]


def contention(results: dict[str, Any]) -> list[str]:
    """How busy the machine was in each measured window (it is shared and noisy)."""
    lines = []
    for phase, label in (("baseline", "baseline"), ("ting", "Ting"), ("ingest", "ingest")):
        section = _ok(results.get(phase)) or {}
        for name, value in section.items():
            m = _ok(value) and value.get("machine")
            if m:
                lines.append(
                    f"{label} {name}: machine busy {m['machine_busy_cores']:.2f} of "
                    f"{os.cpu_count()} cores, load generator {m['generator_cores']:.2f}, "
                    f"load average {m['load_average']:.1f}, {m['seconds']:.0f} s"
                )
    return lines
