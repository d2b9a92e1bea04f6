"""The server's metrics: plain counters updated per request, rendered when scraped.

A cached read costs tens of microseconds, so nothing here runs per request
but a few dictionary updates and a ``bisect`` on the event loop
(:meth:`ServerMetrics.observe`); text is made only for a scrape of
``/v1/sys/metrics?format=prometheus`` (Prometheus exposition format 0.0.4,
as Vault serves it) or of ``/v1/sys/metrics`` (JSON).

Labels come from closed sets (:func:`operation`, the audit ``result``
words, configured sink names): never a path, a key name or a value, so a
scrape can neither leak a secret nor grow without bound.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

__all__ = ["BUCKETS", "Family", "ServerMetrics", "operation", "render_prometheus"]

BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                  0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Latency histogram bounds in seconds (the last bucket, +Inf, is implied)."""
CONTENT_TYPE: Final = b"text/plain; version=0.0.4; charset=utf-8"

_ACTIONS: Final = {"GET": "read", "HEAD": "read", "POST": "write", "PUT": "write",
                   "PATCH": "patch", "DELETE": "delete", "LIST": "list"}
_KV_OPS: Final = frozenset({"data", "metadata", "delete", "undelete", "destroy"})
_MACULA_ENDPOINTS: Final = frozenset({"watch", "join"})
_NAMED: Final = frozenset({"sys/health", "sys/metrics", "auth/token/lookup-self",
                           "sys/internal/specs/openapi", "sys/macula/watch"})


def operation(method: str, path: object) -> str:
    """The ``op`` label of a request: ``read data``, ``list metadata``, ``get sys/health``...

    Anything outside the known paths is ``other``: a label never carries a
    name from the request.
    """
    if not isinstance(path, str):
        return "other"
    parts = path.split("/", 2)
    if parts[0] == "secret" and len(parts) > 1 and parts[1] in _KV_OPS:
        action = _ACTIONS.get(method)
        return "other" if action is None else f"{action} {parts[1]}"
    if path in _NAMED:
        return f"{method.lower()} {path}" if method in _ACTIONS else "other"
    if path.startswith("sys/internal/ui/mounts"):
        return "get sys/internal/ui/mounts"
    if path.startswith("sys/macula/"):
        endpoint = path.split("/")[2]
        if method in _ACTIONS and endpoint in _MACULA_ENDPOINTS:
            return f"{method.lower()} sys/macula/{endpoint}"
    return "other"


class ServerMetrics:
    """Counters and latency histograms of one server; updated from its event loop only."""

    __slots__ = ("_buckets", "_sums", "cache_hits", "cache_misses", "requests")

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], int] = {}
        """(op, result) -> requests answered."""
        self._buckets: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}
        self.cache_hits = 0
        """Latest-version reads answered from the server's cache."""
        self.cache_misses = 0
        """Latest-version reads that went to the store."""

    def observe(self, op: str, result: str, seconds: float) -> None:
        """Count one answered request and its latency."""
        key = (op, result)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        counts = self._buckets.get(op)
        if counts is None:
            counts = self._buckets[op] = [0] * (len(BUCKETS) + 1)
            self._sums[op] = 0.0
        counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self._sums[op] += seconds

    def families(self) -> list[Family]:
        """The request, latency and cache metrics (the app adds its gauges)."""
        requests = Family("macula_requests_total", "counter",
                          "Requests answered, by operation and result")
        for (op, result), n in sorted(self.requests.items()):
            requests.add(n, op=op, result=result)
        latency = Family("macula_request_duration_seconds", "histogram",
                         "Time from a request's headers to its answer")
        for op, counts in sorted(self._buckets.items()):
            latency.histogram(counts, self._sums[op], op=op)
        cache = Family("macula_cache_requests_total", "counter",
                       "Latest-version reads answered from the server's cache, or not")
        cache.add(self.cache_hits, result="hit")
        cache.add(self.cache_misses, result="miss")
        total = self.cache_hits + self.cache_misses
        ratio = Family("macula_cache_hit_ratio", "gauge",
                       "Share of latest-version reads answered from the cache since start")
        ratio.add(self.cache_hits / total if total else 0.0)
        return [requests, latency, cache, ratio]


@dataclass
class Family:
    """One metric family: name, type, help and its samples."""

    name: str
    type: str
    help: str
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: object) -> Family:
        self.samples.append((self.name, {k: str(v) for k, v in labels.items()}, value))
        return self

    def histogram(self, counts: Sequence[int], total: float, **labels: object) -> None:
        text = {k: str(v) for k, v in labels.items()}
        running = 0
        for bound, n in zip((*BUCKETS, math.inf), counts, strict=True):
            running += n
            le = "+Inf" if bound == math.inf else repr(bound)
            self.samples.append((f"{self.name}_bucket", {**text, "le": le}, running))
        self.samples.append((f"{self.name}_sum", text, total))
        self.samples.append((f"{self.name}_count", text, running))

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "type": self.type,
                "samples": [{"name": n, "labels": labels, "value": v}
                            for n, labels, v in self.samples]}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def render_prometheus(families: Iterable[Family]) -> bytes:
    """The families in Prometheus's text exposition format (0.0.4)."""
    out: list[str] = []
    for family in families:
        out.append(f"# HELP {family.name} {family.help}")
        out.append(f"# TYPE {family.name} {family.type}")
        for name, labels, value in family.samples:
            if labels:
                inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
                out.append(f"{name}{{{inner}}} {_number(value)}")
            else:
                out.append(f"{name} {_number(value)}")
    return ("\n".join(out) + "\n").encode()
