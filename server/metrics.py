"""Prometheus metrics of one app instance (its own registry, no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connections = Gauge(
            "ting_connections", "Open WebSocket connections", registry=self.registry
        )
        self.events = Counter(
            "ting_events_total", "Events committed to the log", ["kind"], registry=self.registry
        )
        self.commands = Counter(
            "ting_commands_total",
            "Commands handled",
            ["command", "transport", "result"],
            registry=self.registry,
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
        self.command_seconds = Histogram(
            "ting_command_seconds",
            "Time from a command's arrival to its ack",
            ["command"],
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
            registry=self.registry,
        )
