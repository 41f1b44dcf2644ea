"""Prometheus metrics of one app instance (its own registry, no globals)."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector


class FanoutCounts(Protocol):
    """What the hub counts as it fans events out (read at scrape time)."""

    frames_encoded: int
    frames_queued: int


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connections = Gauge(
            "ting_connections", "Open WebSocket connections", registry=self.registry
        )
        self.events = Counter(
            "ting_events_total", "Events committed to the log", ["kind"], registry=self.registry
        )
        self.errors = Counter(
            "ting_errors_total", "Errors returned to clients", ["code"], registry=self.registry
        )
        self.closes = Counter(
            "ting_socket_closes_total",
            "Sockets closed by the server",
            ["code"],
            registry=self.registry,
        )
        # Commands, counted by hand and exported at scrape time: a counter's
        # inc() and a histogram's observe() take a lock each and cost more
        # than the rest of an ack, thousands of times a second.
        self._commands: dict[tuple[str, str, str], int] = {}
        self._durations: dict[str, list[float]] = {}
        self.registry.register(_CommandCollector(self._commands, self._durations))

    def command_done(self, command: str, transport: str, seconds: float) -> None:
        """A command answered with an ack, `seconds` after it arrived."""
        key = (command, transport, "ok")
        self._commands[key] = self._commands.get(key, 0) + 1
        counts = self._durations.get(command)
        if counts is None:
            # One count per bucket (the last one: above them all), then the sum.
            counts = self._durations[command] = [0.0] * (len(COMMAND_BUCKETS) + 2)
        counts[bisect.bisect_left(COMMAND_BUCKETS, seconds)] += 1
        counts[-1] += seconds

    def command_failed(self, command: str, transport: str) -> None:
        """A command answered with an error."""
        key = (command, transport, "error")
        self._commands[key] = self._commands.get(key, 0) + 1

    def watch_fanout(self, fanout: FanoutCounts) -> None:
        """Export the hub's own counters, read when /metrics is scraped."""
        self.registry.register(_FanoutCollector(fanout))


# Upper bounds (seconds) of the buckets of ting_command_seconds.
COMMAND_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


class _CommandCollector(Collector):
    """ting_commands_total and ting_command_seconds, from Metrics' own counts."""

    def __init__(
        self, commands: dict[tuple[str, str, str], int], durations: dict[str, list[float]]
    ) -> None:
        self._commands = commands
        self._durations = durations

    def collect(self) -> Iterator[Metric]:
        total = CounterMetricFamily(
            "ting_commands", "Commands handled", labels=["command", "transport", "result"]
        )
        for labels, n in sorted(self._commands.items()):
            total.add_metric(list(labels), n)
        yield total
        seconds = HistogramMetricFamily(
            "ting_command_seconds",
            "Time from a command's arrival to its ack",
            labels=["command"],
        )
        for command, counts in sorted(self._durations.items()):
            buckets, running = [], 0.0
            for bound, count in zip((*COMMAND_BUCKETS, math.inf), counts[:-1], strict=True):
                running += count
                buckets.append(("+Inf" if bound == math.inf else repr(bound), running))
            seconds.add_metric([command], buckets, sum_value=counts[-1])
        yield seconds


class _FanoutCollector(Collector):
    """Event frames encoded vs queued, read from the hub at scrape time.

    An event is encoded once per audience (readers who see the same
    projection of it) and queued once per connection that may see it.
    """

    def __init__(self, fanout: FanoutCounts) -> None:
        self._fanout = fanout

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "ting_frames_encoded",
            "Event frames projected and encoded (once per audience of an event)",
            value=self._fanout.frames_encoded,
        )
        yield CounterMetricFamily(
            "ting_frames_queued",
            "Event frames queued to connections (once per connection that may see them)",
            value=self._fanout.frames_queued,
        )
