"""After requests with known secret values, no sink's output, metric label or span
holds one of them (nor a token): every sink kind at once, real sockets and loggers."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from macula_secrets import telemetry
from tests.observability._support import ROOT, Collector, Datagrams, serve
from tests.server.conftest import READER

VALUES = ("pa55word-alpha-7f3e", "pa55word-beta-91c2", "pa55word-gamma-d00d")
TOKENS = (ROOT, READER, "s.unknown-token-9a8b")


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record)


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("macula_secrets.audit.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def test_no_secret_in_any_sink_metric_or_span(tmp_path: Path, records: Records) -> None:
    collector = Collector(tmp_path / "c.sock")
    syslog = Datagrams(tmp_path / "log.sock")
    journal = Datagrams(tmp_path / "journal.sock")
    config = f"""
[[audit.sinks]]
type = "socket"
address = "unix://{tmp_path / 'c.sock'}"
required = true
[[audit.sinks]]
type = "file"
path = "{tmp_path / 'copy.jsonl'}"
required = true
[[audit.sinks]]
type = "syslog"
address = "{tmp_path / 'log.sock'}"
facility = "local3"
required = true
[[audit.sinks]]
type = "journald"
address = "{tmp_path / 'journal.sock'}"
required = false
[[audit.sinks]]
type = "logging"
logger = "macula_secrets.audit.test"
required = true
"""
    try:
        _run_and_scan(tmp_path, config, records, collector, syslog, journal)
    finally:
        for thing in (collector, syslog, journal):
            thing.close()


def _run_and_scan(tmp_path: Path, config: str, records: Records, collector: Collector,
                  syslog: Datagrams, journal: Datagrams) -> None:
    exporter = InMemorySpanExporter()
    traces = TracerProvider()
    traces.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    telemetry.enable(tracer_provider=traces, meter_provider=meters)
    try:
        with serve(tmp_path / "home", config) as server:
            for i, value in enumerate(VALUES):
                assert server.put("console", f"key{i}", value) == 200
                assert server.read("console", f"key{i}")[0] == 200
                assert server.read("console", f"key{i}")[0] == 200
            # A value in a refused write, in a bad body and in a query; three tokens.
            assert server.call("POST", "/v1/secret/data/macula/console/key0",
                               {"data": {"value": VALUES[0]}}, token=READER)[0] == 403
            assert server.call("POST", "/v1/secret/data/macula/console/key0",
                               {"data": {"value": VALUES[1], "x": 1}})[0] == 400
            assert server.call("GET", f"/v1/secret/data/macula/console/key0?v={VALUES[2]}",
                               token=TOKENS[2])[0] == 403
            # An unknown path is audited as sent, but is no metric label.
            assert server.call("GET", "/v1/sys/some-unknown-path")[0] == 404
            assert server.call("PATCH", "/v1/secret/data/macula/console/key1",
                               {"data": {"value": VALUES[2]}})[0] == 200
            scraped = [server.call("GET", "/v1/sys/metrics?format=prometheus")[1],
                       server.call("GET", "/v1/sys/metrics")[1],
                       server.call("GET", "/v1/sys/health")[1]]
            server.serving.audit.sinks.close()  # type: ignore[union-attr]  # flush
            file_lines = server.audit_lines()
            stats = server.serving.audit.sinks.stats  # type: ignore[union-attr]
    finally:
        telemetry.disable()
        traces.shutdown()
    data = reader.get_metrics_data()
    meters.shutdown()

    n = len(file_lines)
    assert n >= 14 and all(s.failures == 0 for s in stats)
    socket_lines = collector.lines(n)
    copy_lines = (tmp_path / "copy.jsonl").read_bytes().splitlines(keepends=True)
    assert socket_lines == copy_lines == file_lines
    sys_msgs = syslog.drain(n)
    assert len(sys_msgs) == n and sys_msgs[0].startswith(b"<158>macula-secrets[")
    assert [m.split(b": ", 1)[1] + b"\n" for m in sys_msgs] == file_lines
    jn = journal.drain(n)
    assert len(jn) == n and b"\nMACULA_AUDIT_OP=write data\n" in jn[0]
    assert [r.getMessage().encode() + b"\n" for r in records.seen] == file_lines
    assert records.seen[0].macula_audit["op"] == "write data"  # type: ignore[attr-defined]
    # The lines carry the values' HMACs: the copies are useful, and they match.
    assert sum(b'"value_hmac":"hmac-sha256:' in line for line in file_lines) >= 9

    outputs = [b"".join(file_lines), b"".join(socket_lines), b"".join(copy_lines),
               b"".join(sys_msgs), b"".join(jn),
               "".join(r.getMessage() + json.dumps(r.macula_audit)  # type: ignore[attr-defined]
                       for r in records.seen).encode(),
               *scraped,
               json.dumps([json.loads(s.to_json()) for s in exporter.get_finished_spans()]
                          ).encode(),
               (data.to_json() if data is not None else "").encode()]
    assert exporter.get_finished_spans(), "cache-miss reads and writes make spans"
    assert data is not None
    sink_points = [p for rm in data.resource_metrics for sm in rm.scope_metrics
                   for m in sm.metrics if m.name == "macula.audit.sink.failures"
                   for p in m.data.data_points]
    # (Servers of earlier tests may still be reported until they are collected.)
    reported = {(p.attributes["macula.sink"], p.value) for p in sink_points}
    assert reported >= {("file1", 0), ("journald3", 0), ("logging4", 0), ("socket0", 0),
                        ("syslog2", 0)}
    assert b'op="other",result="not found"' in scraped[0]
    assert b"some-unknown-path" not in scraped[0] + scraped[1]
    for output in outputs:
        for secret in (*VALUES, *TOKENS):
            assert secret.encode() not in output
