"""OpenTelemetry in-process: spans and metrics reach the SDK's in-memory exporter and
reader, with names and no values; without it, ``Secrets.get`` is the plain method."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from macula_secrets import Secrets, telemetry
from macula_secrets import sops as sopslib
from macula_secrets.errors import ConfigError
from tests.conftest import TEST_AGE_PUBLIC

VALUES = ("v4lue-from-the-sops-file", "v4lue-put-by-the-test")


@pytest.fixture
def otel() -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader]]:
    exporter = InMemorySpanExporter()
    traces = TracerProvider()
    traces.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    telemetry.enable(tracer_provider=traces, meter_provider=meters)
    try:
        yield exporter, reader
    finally:
        telemetry.disable()
        traces.shutdown()
        meters.shutdown()


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, list[Any]] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def test_spans_and_metrics_name_things_never_values(
        tmp_path: Path, age_key_file: Path, private_cwd: Path,
        otel: tuple[InMemorySpanExporter, InMemoryMetricReader]) -> None:
    exporter, reader = otel
    plain_get = Secrets.get.__wrapped__  # type: ignore[attr-defined]
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "console.enc.yaml").write_bytes(
        sopslib.encrypt({"db": VALUES[0]}, recipients=[TEST_AGE_PUBLIC], format="yaml"))
    with Secrets.open(home=tmp_path / "home", secrets_dir=folder,
                      env={"SOPS_AGE_KEY_FILE": str(age_key_file)}) as secrets:
        assert secrets.get("console", "db") == VALUES[0]       # miss: decrypts the file
        assert secrets.get("console", "db") == VALUES[0]       # hit
        assert secrets.get("console", "nope", "dflt") == "dflt"
        assert secrets.put("console", "api", VALUES[1]) == 1
        assert secrets.sync().errors == []
        data = points(reader)

    spans = exporter.get_finished_spans()
    names = [s.name for s in spans]
    assert {"macula.get", "macula.put", "macula.sync", "macula.decrypt"} <= set(names)
    gets = [s for s in spans if s.name == "macula.get"]
    assert [dict(s.attributes or {}) for s in gets[:2]] == [
        {"macula.tenant": "default", "macula.app": "console", "macula.key": "db",
         "macula.backend": "sops", "macula.cache_hit": hit, "macula.result": "ok"}
        for hit in (False, True)]
    assert gets[2].attributes["macula.result"] == "not found"  # type: ignore[index]
    decrypt = next(s for s in spans if s.name == "macula.decrypt")
    assert decrypt.parent is not None and decrypt.parent.span_id == gets[0].context.span_id
    assert decrypt.attributes["macula.file"] == "console.enc.yaml"  # type: ignore[index]

    # No value anywhere in a span: names, attributes, events, status.
    text = json.dumps([json.loads(s.to_json()) for s in spans])
    for value in VALUES:
        assert value not in text

    requests = {(p.attributes["macula.operation"], p.attributes["macula.result"]): p.value
                for p in data["macula.requests"]}
    assert requests[("get", "ok")] == 2 and requests[("get", "not found")] == 1
    assert requests[("put", "ok")] == 1 and requests[("sync", "ok")] == 1
    cache = {p.attributes["macula.cache.result"]: p.value for p in data["macula.cache.requests"]}
    assert cache == {"hit": 1, "miss": 2}
    assert sum(p.count for p in data["macula.request.duration"]) >= 5
    assert data["macula.sync.runs"][0].value >= 1
    assert data["macula.store.size"][0].value > 0
    assert data["macula.master_key.age"][0].value >= 0
    assert "macula.lease.renewals" in data
    for point_list in data.values():
        for p in point_list:
            for value in VALUES:
                assert value not in json.dumps(dict(p.attributes or {}))

    telemetry.disable()
    assert Secrets.get is plain_get   # the plain method is back: no cost left behind


def test_switched_on_by_the_environment_not_by_an_import(tmp_path: Path) -> None:
    # OpenTelemetry is imported here, but no global tracer provider is set.
    with Secrets.open(home=tmp_path / "home", source="none", env={}):
        assert not telemetry.is_enabled()
    with Secrets.open(home=tmp_path / "home", source="none",
                      env={"MACULA_SECRETS_OTEL": "on"}):
        assert telemetry.is_enabled() and hasattr(Secrets.get, "__wrapped__")
    telemetry.disable()
    with pytest.raises(ConfigError, match="MACULA_SECRETS_OTEL must be on or off, not 'yes'"):
        Secrets.open(home=tmp_path / "home", source="none", env={"MACULA_SECRETS_OTEL": "yes"})
    assert not telemetry.is_enabled()


def test_without_opentelemetry_nothing_is_imported_or_wrapped(tmp_path: Path) -> None:
    script = f"""
import sys
from macula_secrets import Secrets
with Secrets.open(home={str(tmp_path / 'home')!r}, source="none", env={{}}) as s:
    s.put("a", "k", "v")
    assert s.get("a", "k") == "v"
assert "opentelemetry" not in sys.modules, "imported without being asked"
assert not hasattr(Secrets.get, "__wrapped__"), "get is wrapped"
sys.modules["opentelemetry"] = None   # as if the otel extra were not installed
from macula_secrets.errors import ConfigError
try:
    Secrets.open(home={str(tmp_path / 'home')!r}, source="none",
                 env={{"MACULA_SECRETS_OTEL": "on"}})
except ConfigError as exc:
    print(exc, "|", exc.hint)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MACULA_SECRETS_")}
    env["MACULA_SECRETS_AGENT_SOCK"] = str(tmp_path / "no-agent.sock")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("opentelemetry-api is not installed | "
                                   "pip install 'macula-secrets[otel]'")
    assert done.stderr == ""
