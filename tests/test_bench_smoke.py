"""The benchmark suite, small: every workload runs and nothing is lost.

This keeps `python -m bench` working. It asserts correctness only (every
event delivered once and in order, every vote stored, every acked post on
disk after SIGKILL, every client resumed to the snapshot's state), never
timings: those belong to a full run on a known machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import report
from bench.workloads import Config, run_suite

CLIENTS = 24

pytestmark = pytest.mark.timeout(300)


def _delivered_in_order(run: dict[str, Any]) -> None:
    assert "error" not in run, run.get("error")
    assert run["acked"] == run["published"], run["publish_errors"]
    assert run["clients"] == CLIENTS
    assert run["complete"] == CLIENTS, run
    assert run["exact"] == CLIENTS, run
    assert run["missing"] == 0
    assert run["order_errors"] == 0


async def test_bench_suite_runs_every_workload_and_loses_nothing(tmp_path: Path) -> None:
    cfg = Config(
        clients=CLIENTS,
        workers=2,
        fanout_seconds=1.0,
        burst_seconds=0.5,
        vote_seconds=1.0,
        vote_questions=3,
        ingest_clients=6,
        ingest_seconds=1.0,
        ingest_rounds=2,
        join_messages=120,
        join_repeats=2,
        publishers=2,
        settle=0.3,
        drain_timeout=30.0,
        data_dir=tmp_path,
    )
    results = (await run_suite(cfg)).results

    baseline, ting = results["baseline"], results["ting"]
    for phase in (baseline, ting):
        assert phase["memory"]["connect"]["ok"] == CLIENTS
        _delivered_in_order(phase["fanout"])
        _delivered_in_order(phase["burst"])

    votes = ting["votes"]
    assert "error" not in votes, votes.get("error")
    assert votes["acked"] == votes["stored"] == CLIENTS
    assert votes["exact_clients"] == CLIENTS
    assert votes["own_vote_shown"] == CLIENTS

    resume = ting["resume"]
    assert "error" not in resume, resume.get("error")
    assert resume["converged"] == CLIENTS
    assert resume["modes"] == {"replay": CLIENTS}
    assert resume["state_equals_snapshot"] == CLIENTS
    assert resume["order_errors"] == 0

    ingest = results["ingest"]
    # Two rounds, each the raw baseline and then the server; the median one
    # is reported, and durability counts the posts of every round.
    assert len(ingest["rounds"]) == 2
    assert all(r["ting"]["lost_after_sigkill"] == 0 for r in ingest["rounds"])
    every = ingest["ting"]["all_rounds"]
    assert every["acked"] == sum(r["ting"]["acked"] for r in ingest["rounds"])
    assert every["lost_after_sigkill"] == 0
    assert len(every["ratios"]) == 2
    assert ingest["ting"] in [r["ting"] | {"all_rounds": every} for r in ingest["rounds"]]
    for run in ("ting", "ting_shown"):
        assert "error" not in ingest[run], ingest[run].get("error")
        assert ingest[run]["acked"] > 0
        assert ingest[run]["lost_after_sigkill"] == 0
        # The moderator's console saw the posts live, in order (those of the
        # last moments may still have been on their way when it was killed).
        assert ingest[run]["moderator"]["last_seq"] >= ingest[run]["acked"] // 2
        assert ingest[run]["moderator"]["order_errors"] == 0
    assert ingest["raw"]["rows"] > 0

    join = results["join"]
    assert join["http"]["messages"] == cfg.join_messages
    assert join["raw"]["rows"] == cfg.join_messages
    assert join["ws"]["failures"] == {}

    # The table renders, and no row reports a workload that did not complete.
    rows = report.rows(results, CLIENTS)
    assert not [r for r in rows if r.workload == "did not complete"]
    assert "fan-out CPU" in report.table(rows)
