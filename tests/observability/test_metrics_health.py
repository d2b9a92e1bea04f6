"""``/v1/sys/metrics`` parses with prometheus_client and its counters follow the
requests; ``sys/health`` and ``doctor`` report integrity, sinks and the last sync."""

from __future__ import annotations

import json
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from macula_secrets._config import load_config
from macula_secrets.doctor import check_observability
from tests.observability._support import Server, serve

METRICS = "/v1/sys/metrics?format=prometheus"


def scrape(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, body = server.call("GET", METRICS)
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_move_with_requests(tmp_path: Path) -> None:
    with serve(tmp_path / "home") as server:
        assert server.put("web", "db", "v1") == 200
        first = scrape(server)
        for _ in range(5):
            assert server.read("web", "db")[0] == 200
        assert server.read("web", "missing")[0] == 404
        assert server.call("GET", "/v1/secret/data/macula/web/db", token="s.nobody")[0] == 403
        second = scrape(server)

        def moved(name: str, **labels: str) -> float:
            return value(second, name, **labels) - value(first, name, **labels)

        assert moved("macula_requests_total", op="read data", result="ok") == 5
        assert moved("macula_requests_total", op="read data", result="not found") == 1
        assert moved("macula_requests_total", op="read data", result="denied") == 1
        assert moved("macula_requests_total", op="get sys/metrics", result="ok") == 1
        assert value(first, "macula_requests_total", op="write data", result="ok") == 1
        assert moved("macula_request_duration_seconds_count", op="read data") == 7
        assert moved("macula_cache_requests_total", result="hit") >= 4
        assert 0 < value(second, "macula_cache_hit_ratio") <= 1
        # Every audited request is a line; the scrape's own line lands after it is made.
        assert moved("macula_audit_lines_total") == 8
        assert value(second, "macula_audit_failures_total") == 0
        assert value(second, "macula_store_size_bytes") > 0
        assert value(second, "macula_master_key_age_seconds") >= 0
        assert ("macula_master_key_age_seconds", ()) in second

        # Without a token there are no metrics; the JSON form carries the same families.
        assert server.call("GET", METRICS, token=None)[0] == 403
        status, body = server.call("GET", "/v1/sys/metrics")
        names = {f["name"] for f in json.loads(body)["metrics"]}
        assert status == 200 and "macula_requests_total" in names


def test_metrics_off_answers_404(tmp_path: Path) -> None:
    with serve(tmp_path / "home", metrics=False) as server:
        assert server.call("GET", METRICS)[0] == 404
        assert server.read("web", "db")[0] == 404


def test_health_and_doctor_report_integrity_sinks_and_last_sync(tmp_path: Path) -> None:
    config = f"""
[[audit.sinks]]
type = "file"
name = "shipper"
path = "{tmp_path / 'shipped.jsonl'}"
required = true
"""
    with serve(tmp_path / "home", config) as server:
        assert server.put("web", "db", "v1") == 200
        for _ in range(500):   # the check runs in the background at start
            health = json.loads(server.call("GET", "/v1/sys/health")[1])
            if health["macula"]["integrity"]["status"] != "running":
                break
            time.sleep(0.01)
        macula = health["macula"]
        assert health["sealed"] is False and macula["locked"] is False
        assert macula["integrity"]["status"] == "ok"
        assert macula["audit"]["file"]["failing"] is False
        assert [(s["name"], s["type"], s["required"]) for s in macula["audit"]["sinks"]] == [
            ("shipper", "file", True)]
        assert macula["audit"]["sinks"][0]["lines"] >= 1
        assert macula["last_sync"]["commit"] is None

    cfg = load_config({}, home=str(tmp_path / "home"))
    results = check_observability(cfg)
    texts = [r.message for r in results]
    assert any("shipper" in t and "required" in t for t in texts), texts
    assert any("no sync --git" in t for t in texts), texts
    assert all(r.status in ("ok", "info") for r in results), results
