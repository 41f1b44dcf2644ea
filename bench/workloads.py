"""The whole run: the workloads of issue 4's table, each against Ting and, where
the table asks for one, against its baseline in the same run.

Phases, each with its own server process so that one cannot disturb another:
the baseline's fan-out, Ting's fan-out with the vote and resume storms
(`bench.fanout`), then ingest and join (`bench.storage`). A phase or workload
that fails is recorded in the results and the run goes on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bench.common import Config, attempt
from bench.fanout import baseline_phase, ting_phase
from bench.fleet import Fleet
from bench.procs import new_admin_token, raise_open_files
from bench.storage import ingest_phase, join_phase

__all__ = ["Config", "Outcome", "run_suite"]


@dataclass
class Outcome:
    config: Config
    results: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


async def run_suite(cfg: Config) -> Outcome:
    raise_open_files()
    outcome = Outcome(cfg)
    started = time.monotonic()
    admin = new_admin_token()
    fanout_needed = cfg.wants("memory", "fanout", "latency", "burst", "votes", "resume")
    fleet = Fleet(cfg.workers) if fanout_needed or cfg.wants("ingest") else None
    try:
        if fleet is not None:
            await fleet.start()
        results = outcome.results
        if fleet is not None and cfg.wants("memory", "fanout", "latency", "burst"):
            await attempt(results, "baseline", baseline_phase(fleet, cfg))
        if fleet is not None and fanout_needed:
            await attempt(results, "ting", ting_phase(fleet, cfg, admin))
        if fleet is not None and cfg.wants("ingest"):
            await attempt(results, "ingest", ingest_phase(fleet, cfg, admin))
        if cfg.wants("join"):
            await attempt(results, "join", join_phase(cfg, admin))
    finally:
        if fleet is not None:
            await fleet.stop()
    outcome.seconds = time.monotonic() - started
    return outcome
