"""The servers under test as subprocesses, and what the OS says they cost.

CPU time and memory are read from /proc for the server process alone (its
threads included, the load generator excluded): utime + stime from
/proc/<pid>/stat, resident memory (VmRSS) from /proc/<pid>/status. Linux only.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import resource
import secrets
import shutil
import signal
import sys
import time
from collections import Counter, deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Citizens' rate limits, lifted so that load (not the limiter) is measured.
LIFTED_LIMITS = {
    "TING_POST_BURST": "1000000",
    "TING_POST_RATE": "1000000",
    "TING_VOTE_BURST": "1000000",
    "TING_VOTE_RATE": "1000000",
}


def raise_open_files() -> int:
    """Lift the soft open-file limit to the hard one (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads, in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    # The command name may hold spaces; fields resume after the last ')'.
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    with open("/proc/stat", "rb") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


class Window:
    """CPU use over a span of time: the machine's, and a set of processes'."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.started = time.monotonic()
        self._machine = machine_busy()
        self._procs = self._cpu()
        self._load = os.getloadavg()[0]

    def _cpu(self) -> float:
        total = 0.0
        for pid in self.pids:
            with contextlib.suppress(OSError, ValueError):
                total += cpu_seconds(pid)
        return total

    def end(self) -> dict[str, float]:
        """Cores in use on average: the whole machine, and the watched processes."""
        wall = max(1e-9, time.monotonic() - self.started)
        busy, _total = machine_busy()
        return {
            "seconds": wall,
            "machine_busy_cores": (busy - self._machine[0]) / wall,
            "generator_cores": (self._cpu() - self._procs) / wall,
            "load_average": max(self._load, os.getloadavg()[0]),
        }


class CpuMeter:
    """Samples a process's CPU time every `interval` seconds.

    A window's CPU is read off the samples around its start and end, so that
    the wait for the load generator to notice the end adds no idle time.
    """

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self._times: list[float] = []
        self._cpu: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._sample()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _sample(self) -> None:
        try:
            cpu = cpu_seconds(self.pid)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            return
        self._times.append(time.monotonic())
        self._cpu.append(cpu)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self._sample()

    def at(self, t: float) -> float:
        """CPU seconds used up to monotonic time t (linear between samples)."""
        self._sample()
        times, cpu = self._times, self._cpu
        i = bisect.bisect_left(times, t)
        if i <= 0:
            return cpu[0]
        if i >= len(times):
            return cpu[-1]
        t0, t1 = times[i - 1], times[i]
        share = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
        return cpu[i - 1] + share * (cpu[i] - cpu[i - 1])

    def between(self, start: float, end: float) -> float:
        return max(0.0, self.at(end) - self.at(start))


class ServerProcess:
    """A server in a subprocess that prints a line with its port when ready."""

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        ready_prefix: str,
        label: str,
        cwd: Path = ROOT,
    ) -> None:
        self.label = label
        self.cwd = cwd
        self.argv = argv
        self.env = env
        self.ready_prefix = ready_prefix
        self.process: asyncio.subprocess.Process | None = None
        self.port = 0
        self.ready_at = 0.0
        self.output: deque[str] = deque(maxlen=200)
        # Tracebacks the server printed (errors it logged) since it started.
        self.tracebacks = 0
        self._drain: asyncio.Task[None] | None = None
        self._profiler: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self, limit: float = 60.0) -> float:
        """Start; returns the monotonic time at which the server said it was ready."""
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            cwd=self.cwd,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + limit
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                raw = await asyncio.wait_for(self.process.stdout.readline(), left)
            except TimeoutError:
                break
            if not raw:
                break
            line = raw.decode(errors="replace")
            self.output.append(line)
            if line.startswith(self.ready_prefix):
                self.ready_at = time.monotonic()
                self.port = int(line.rsplit("port ", 1)[1].split(")")[0])
                self._drain = asyncio.create_task(self._keep_draining())
                return self.ready_at
        await self.kill()
        raise RuntimeError("server did not start:\n" + "".join(self.output))

    async def start_profile(self, path: Path) -> None:
        """py-spy samples this process (collapsed stacks) until `end_profile`."""
        await self.end_profile()
        spy = os.environ.get("PY_SPY") or shutil.which("py-spy")
        if spy is None:
            raise RuntimeError("--profile needs py-spy (pip install py-spy, or set PY_SPY)")
        self._profiler = await asyncio.create_subprocess_exec(
            spy,
            "record",
            "--pid",
            str(self.pid),
            "--rate",
            "250",
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(path),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

    async def end_profile(self) -> None:
        """py-spy writes its output when interrupted (or when the process exits)."""
        profiler, self._profiler = self._profiler, None
        if profiler is None:
            return
        if profiler.returncode is None:
            profiler.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(profiler.wait(), 30)
        except TimeoutError:
            profiler.kill()
            await profiler.wait()

    async def _keep_draining(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while True:
            raw = await self.process.stdout.readline()
            if not raw:
                return
            line = raw.decode(errors="replace")
            self.output.append(line)
            if line.startswith("Traceback"):
                self.tracebacks += 1

    async def stop(self, limit: float = 20.0) -> None:
        """SIGTERM (a graceful shutdown), then SIGKILL if it takes too long."""
        if self.process is None:
            return
        await self.end_profile()
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), limit)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        await self._release()

    async def kill(self) -> None:
        """SIGKILL: no shutdown; what was acknowledged must be on disk."""
        if self.process is None:
            return
        await self.end_profile()
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        await self._release()

    async def _release(self) -> None:
        if self._drain is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._drain, 5)
            self._drain = None
        self.process = None


def ting_server(
    db_path: Path, admin_token: str, port: int = 0, root: Path | None = None, **env: str
) -> ServerProcess:
    """`python -m server serve` on its own database file, citizen limits lifted.

    `root`: a checkout whose `server` package to run (default: this one), to
    measure another version of the server with the same load generator.
    """
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TING_")}
    environ |= {"TING_ADMIN_TOKEN": admin_token, "TING_LOG_LEVEL": "warning"}
    environ |= LIFTED_LIMITS | env
    argv = [
        sys.executable,
        "-m",
        "server",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--database-url",
        f"sqlite+aiosqlite:///{db_path}",
    ]
    if root is not None:
        environ["PYTHONPATH"] = str(root)
    return ServerProcess(argv, environ, "Ting listening on", "ting", root or ROOT)


def baseline_server(port: int = 0) -> ServerProcess:
    argv = [sys.executable, str(ROOT / "bench" / "baseline_server.py"), "--port", str(port)]
    return ServerProcess(argv, dict(os.environ), "Baseline listening on", "baseline")


def new_admin_token() -> str:
    return secrets.token_urlsafe(24)


def summarize_profile(path: Path, top: int = 30) -> str:
    """The functions a py-spy raw profile spends its samples in, self and total."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not count.isdigit() or not stack:
                continue
            n = int(count)
            samples += n
            frames = [_short(frame) for frame in stack.split(";")]
            own[frames[-1]] += n
            for frame in set(frames):
                total[frame] += n
    lines = [f"{samples} samples", "", "self %  total %  function"]
    for name, n in own.most_common(top):
        lines.append(f"{100 * n / samples:6.1f}  {100 * total[name] / samples:7.1f}  {name}")
    lines += ["", "total %  function (inclusive, top)"]
    for name, n in total.most_common(top):
        lines.append(f"{100 * n / samples:7.1f}  {name}")
    return "\n".join(lines) + "\n"


def _short(frame: str) -> str:
    """`func (path/to/module.py:12)` -> `func (module.py)`: no local paths in reports."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    parts = where.split("/")
    for anchor in ("site-packages", "server", "bench", "asyncio", "python3.11"):
        if anchor in parts:
            where = "/".join(parts[parts.index(anchor) + (anchor == "site-packages") :])
            break
    else:
        where = parts[-1]
    return f"{name} ({where})"
