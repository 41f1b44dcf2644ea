"""`python -m bench`: run the suite, print the table, write the results as JSON.

Examples:
    python -m bench                          # everything, issue 4's sizes
    python -m bench --only fanout,burst      # some workloads
    python -m bench --clients 1000 --quick   # small and fast
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench import report
from bench.workloads import Config, Outcome, run_suite

WORKLOADS = ("memory", "fanout", "latency", "burst", "votes", "resume", "ingest", "join")
RESULTS = Path(__file__).resolve().parent / "results"

# Small sizes for a quick look (and what the smoke test runs).
QUICK = {
    "clients": 200,
    "fanout_seconds": 3.0,
    "burst_seconds": 2.0,
    "vote_seconds": 2.0,
    "ingest_clients": 20,
    "ingest_seconds": 2.0,
    "ingest_rounds": 1,
    "join_messages": 500,
    "join_repeats": 3,
    "settle": 1.0,
    "drain_timeout": 30.0,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--only", help=f"comma-separated workloads out of {','.join(WORKLOADS)}")
    p.add_argument("--skip", help="comma-separated workloads to leave out")
    p.add_argument("--quick", action="store_true", help="small sizes (a minute or so)")
    p.add_argument("--clients", type=int, help="connected clients (default 5000)")
    p.add_argument("--workers", type=int, help="client processes (default 4)")
    p.add_argument("--body", type=int, help="bytes of each published message body (300)")
    p.add_argument("--fanout-seconds", type=float, help="length of the 10/s workload (20)")
    p.add_argument("--burst-seconds", type=float, help="length of the 100/s burst (10)")
    p.add_argument("--vote-seconds", type=float, help="window of the vote storm (10)")
    p.add_argument("--ingest-clients", type=int, help="posting clients (200)")
    p.add_argument("--ingest-seconds", type=float, help="length of the ingest window (10)")
    p.add_argument(
        "--ingest-rounds",
        type=int,
        help="ingest rounds, each the raw baseline then the server; the median is reported (3)",
    )
    p.add_argument("--join-messages", type=int, help="messages in the join meeting (10000)")
    p.add_argument("--data-dir", type=Path, help="where the databases go (a temporary dir)")
    p.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    p.add_argument(
        "--server-root",
        type=Path,
        help="run the `server` package of another checkout (to compare versions)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="sample the servers with py-spy during each workload (profile-*.txt in --out)",
    )
    return p.parse_args(argv)


def config_from(args: argparse.Namespace, data_dir: Path) -> Config:
    cfg = Config(data_dir=data_dir)
    if args.quick:
        cfg = replace(cfg, **QUICK)  # type: ignore[arg-type]
    chosen = list(WORKLOADS)
    if args.only:
        chosen = [w.strip() for w in args.only.split(",") if w.strip()]
    if args.skip:
        skipped = {w.strip() for w in args.skip.split(",")}
        chosen = [w for w in chosen if w not in skipped]
    unknown = set(chosen) - set(WORKLOADS)
    if unknown:
        raise SystemExit(f"unknown workloads: {', '.join(sorted(unknown))}")
    options = {
        "clients": args.clients,
        "workers": args.workers,
        "body": args.body,
        "fanout_seconds": args.fanout_seconds,
        "burst_seconds": args.burst_seconds,
        "vote_seconds": args.vote_seconds,
        "ingest_clients": args.ingest_clients,
        "ingest_seconds": args.ingest_seconds,
        "ingest_rounds": args.ingest_rounds,
        "join_messages": args.join_messages,
    }
    cfg = replace(cfg, **{k: v for k, v in options.items() if v is not None})
    if args.server_root:
        cfg = replace(cfg, server_root=args.server_root.resolve())
    if args.profile:
        args.out.mkdir(parents=True, exist_ok=True)
        cfg = replace(cfg, profile_dir=args.out.resolve())
    return replace(cfg, workloads=tuple(chosen))


def document(outcome: Outcome) -> dict[str, Any]:
    cfg = outcome.config
    paths = ("data_dir", "profile_dir", "server_root")
    settings = {k: v for k, v in asdict(cfg).items() if k not in paths}
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - outcome.seconds)),
        "seconds": round(outcome.seconds, 1),
        "machine": report.machine(cfg.data_dir, cfg.server_root),
        "config": settings,
        "table": report.as_json(report.rows(outcome.results, cfg.clients)),
        "results": outcome.results,
    }


def write(doc: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    stamp = doc["started"].replace(":", "").replace("-", "")
    path = out / f"bench-{stamp}.json"
    data = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    path.write_bytes(data)
    (out / "latest.json").write_bytes(data)
    return path


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ting-bench-", dir=args.data_dir) as tmp:
        cfg = config_from(args, Path(tmp))
        print(
            f"running {', '.join(cfg.workloads)} with {cfg.clients} clients "
            f"in {cfg.workers} client processes",
            flush=True,
        )
        outcome = asyncio.run(run_suite(cfg))
        doc = document(outcome)
    path = write(doc, args.out)
    m = doc["machine"]
    print()
    print(report.table(report.rows(outcome.results, cfg.clients)))
    print()
    print(
        f"{m.get('cpus')} CPUs ({m.get('cpu')}), {m.get('memory_gib')} GiB, "
        f"Python {m.get('python')}, databases on {m.get('data_filesystem')}; "
        f"{doc['seconds']:.0f} s; commit {m.get('commit')}"
    )
    for line in report.contention(outcome.results):
        print("  " + line)
    print(f"results: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")


if __name__ == "__main__":
    main()
