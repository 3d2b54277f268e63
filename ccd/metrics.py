"""Prometheus metrics of the daemon (``[metrics] port``; 0 = off).

The daemon's loop refreshes a snapshot once a second; the HTTP endpoint (a thread of
prometheus-client) only reads that snapshot, never the live model.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)


class DaemonCollector(Collector):
    """Exposes the last snapshot taken by :meth:`refresh`."""

    def __init__(self) -> None:
        self.snapshot: dict[str, Any] = {}

    def refresh(self, status: dict[str, Any], agent_states: Counter[str],
                waiting: dict[str, int]) -> None:
        """Called on the daemon's loop: copy what the endpoint will show."""
        self.snapshot = {"status": status, "agents": dict(agent_states),
                         "waiting": dict(waiting)}

    def collect(self) -> Iterator[Any]:
        snap = self.snapshot
        if not snap:
            return
        st = snap["status"]
        ami, ev = st["ami"], st["events"]
        yield GaugeMetricFamily("ccd_ami_connected", "1 when the AMI link is up",
                                value=1.0 if ami["state"] == "connected" else 0.0)
        yield CounterMetricFamily("ccd_ami_reconnects", "AMI link (re)connections",
                                  value=ami["connects"])
        yield CounterMetricFamily("ccd_ami_events", "AMI events received", value=ev["total"])
        yield CounterMetricFamily("ccd_ami_malformed_frames", "malformed AMI frames skipped",
                                  value=ev["malformed"])
        yield CounterMetricFamily("ccd_ami_bad_timestamps",
                                  "AMI event Timestamps replaced by the link's time",
                                  value=ev.get("bad_timestamps", 0))
        yield CounterMetricFamily("ccd_handler_errors", "event handlers that failed",
                                  value=ev["handler_errors"])
        yield GaugeMetricFamily("ccd_calls_in_progress", "calls in progress",
                                value=st["calls_in_progress"])
        g = GaugeMetricFamily("ccd_queue_waiting", "callers waiting", labels=["queue"])
        for queue, n in sorted(snap["waiting"].items()):
            g.add_metric([queue], n)
        yield g
        g = GaugeMetricFamily("ccd_agents", "agents by state", labels=["state"])
        for state, n in sorted(snap["agents"].items()):
            g.add_metric([state], n)
        yield g
        store = st.get("store")
        if store:
            yield GaugeMetricFamily("ccd_store_pending", "events spooled, not yet in the "
                                    "database", value=store.get("spooled_pending", 0))
            yield CounterMetricFamily("ccd_store_written", "events written to the database",
                                      value=store.get("written", 0))
        agi = st.get("agi")
        if agi:
            yield GaugeMetricFamily("ccd_agi_active", "FastAGI sessions running",
                                    value=agi["active"])
            yield CounterMetricFamily("ccd_agi_fallbacks", "callers sent to the IVR fallback",
                                      value=agi["fallbacks"])


def serve(host: str, port: int) -> DaemonCollector:
    """Start the endpoint; returns the collector the daemon refreshes."""
    registry = CollectorRegistry()
    collector = DaemonCollector()
    registry.register(collector)
    start_http_server(port, addr=host, registry=registry)
    log.info("Prometheus metrics on http://%s:%d/metrics", host, port)
    return collector
