"""The metric catalogue: every name, label set and bucket layout Passthru exports, in one place.

The objects are created in the process that records into them (a worker, or the single serving
process), never in the supervisor: in multiprocess mode an unlabelled metric writes a file for
the creating process at once, and a supervisor's zero in a ``livemin`` gauge would hide the
workers' values. They are not registered anywhere: ``/metrics`` reads the per-process files.

Label values are bounded by construction: route names and protocol names come from the config
and identifier files, backends are configured addresses, and every other label is a word from
a fixed vocabulary in Passthru's code. Nothing a client sends becomes a label.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

#: 10 µs (a hello that fits one read) ... 5 s (above any sensible ``timeouts.identify``).
IDENTIFY_BUCKETS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


class Metrics:
    """One process's metric objects (see the README section "Metrics and health" for meanings)."""

    def __init__(self) -> None:
        self.connections = Counter(
            "passthru_connections",
            "Finished connections by route, identified protocol and how they ended.",
            ["route", "protocol", "ended"],
            registry=None,
        )
        self.opened = Counter(
            "passthru_connections_opened",
            "Accepted connections (what the status page's connections per second counts).",
            registry=None,
        )
        self.route_open = Gauge(
            "passthru_route_connections_open",
            "Connections open now per route (dialing or relaying), summed over live workers.",
            ["route"],
            registry=None,
            multiprocess_mode="livesum",
        )
        self.protocol_open = Gauge(
            "passthru_protocol_connections_open",
            "Routed connections open now per identified protocol, summed over live workers.",
            ["protocol"],
            registry=None,
            multiprocess_mode="livesum",
        )
        self.active = Gauge(
            "passthru_connections_active",
            "Connections open now (identifying or relaying), summed over live workers.",
            registry=None,
            multiprocess_mode="livesum",
        )
        self.bytes = Counter(
            "passthru_bytes",
            "Bytes relayed, counted when a connection ends; up = client to backend.",
            ["route", "direction"],
            registry=None,
        )
        self.identify_seconds = Histogram(
            "passthru_identify_seconds",
            "Time from accept to an identification verdict (identify timeouts are not observed here).",
            buckets=IDENTIFY_BUCKETS,
            registry=None,
        )
        self.identify_timeouts = Counter(
            "passthru_identify_timeouts",
            "Connections whose identification was cut short by timeouts.identify.",
            ["prefix"],
            registry=None,
        )
        self.unmatched = Counter(
            "passthru_unmatched",
            "Connections that sent bytes no route matched, handed to `default` (an address, a route or reject).",
            ["protocol"],
            registry=None,
        )
        self.upstream_failures = Counter(
            "passthru_upstream_connect_failures",
            "Failed attempts to reach a backend (connect failed, or closed before answering); the next may succeed.",
            ["route", "backend", "reason"],
            registry=None,
        )
        self.reloads = Counter(
            "passthru_reloads",
            "Config reloads per serving process (with N workers one SIGHUP counts N).",
            ["result"],
            registry=None,
        )
        self.reload_timestamp = Gauge(
            "passthru_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful config load (start or reload).",
            registry=None,
            multiprocess_mode="max",
        )
        self.reload_successful = Gauge(
            "passthru_config_last_reload_successful",
            "1 when every live worker's last config (re)load succeeded, else 0.",
            registry=None,
            multiprocess_mode="livemin",
        )
        self.identifier_errors = Counter(
            "passthru_user_identifier_errors",
            "Errors of user identifier files, by identifier and kind.",
            ["identifier", "kind"],
            registry=None,
        )
        self.limit_rejections = Counter(
            "passthru_limit_rejections",
            "Connections refused by a configured limit, by limit.",
            ["kind"],
            registry=None,
        )
        self.serving = Gauge(
            "passthru_serving_processes",
            "Processes with their listeners bound and not draining (what /readyz reads).",
            registry=None,
            multiprocess_mode="livesum",
        )
