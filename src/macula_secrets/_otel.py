"""The OpenTelemetry side of :mod:`._telemetry`: the tracer, the instruments and the
instrumented wrappers it swaps onto the library. Imported only by ``enable()``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ._telemetry import _OPEN, _SINK_STATS, COUNTS, SCOPE, lease_renewals, store_size

if TYPE_CHECKING:
    from .client import Secrets
    from .localstore.store import LocalStore

__all__ = ["Instrumentation"]


def _backend(secrets: Secrets) -> str:
    if secrets._vault is not None:
        return "vault"
    if secrets._source is not None:
        return "sops"
    return "store"


class Instrumentation:
    """The tracer, the instruments and the originals the wrappers replaced."""

    def __init__(self, tracer_provider: Any, meter_provider: Any) -> None:
        from opentelemetry import metrics, trace
        from opentelemetry.trace import Status, StatusCode

        self._status = Status
        self._error = StatusCode.ERROR
        tp = tracer_provider or trace.get_tracer_provider()
        mp = meter_provider or metrics.get_meter_provider()
        from . import __version__

        self.tracer = tp.get_tracer(SCOPE, __version__)
        meter = mp.get_meter(SCOPE, __version__)
        self.requests = meter.create_counter(
            "macula.requests", unit="{request}",
            description="Library calls by operation and result")
        self.duration = meter.create_histogram(
            "macula.request.duration", unit="s", description="Library call latency")
        self.cache = meter.create_counter(
            "macula.cache.requests", unit="{request}",
            description="Latest-version reads answered from the store's memory cache (hit) "
                        "or not (miss)")
        meter.create_observable_counter(
            "macula.sync.runs", [self._observe_count("sync_runs")], unit="{run}",
            description="Syncs from the secrets folder, git or Vault")
        meter.create_observable_counter(
            "macula.sync.failures", [self._observe_count("sync_failures")], unit="{run}",
            description="Syncs that raised or reported a failing app")
        meter.create_observable_counter(
            "macula.lease.renewals", [self._observe_leases], unit="{renewal}",
            description="Lease renewals by the LeaseKeepers of open Secrets")
        meter.create_observable_gauge(
            "macula.master_key.age", [self._observe_key_age], unit="s",
            description="Seconds since the store's master key was made or rotated")
        meter.create_observable_gauge(
            "macula.store.size", [self._observe_store_size], unit="By",
            description="Bytes of store.db and its WAL")
        meter.create_observable_counter(
            "macula.audit.sink.failures", [self._observe_sinks], unit="{line}",
            description="Audit lines a server's sink did not take")
        self._originals: list[tuple[object, str, object]] = []

    # -- observable callbacks -----------------------------------------------------------

    def _observe_count(self, name: str) -> Callable[[Any], Iterator[Any]]:
        from opentelemetry.metrics import Observation

        def observe(_options: Any) -> Iterator[Any]:
            yield Observation(COUNTS[name])

        return observe

    @staticmethod
    def _observe_leases(_options: Any) -> Iterator[Any]:
        from opentelemetry.metrics import Observation

        yield Observation(lease_renewals())

    @staticmethod
    def _stores() -> dict[str, LocalStore]:
        return {s.store.path: s.store for s in list(_OPEN) if not s.store._closed}

    def _observe_key_age(self, _options: Any) -> Iterator[Any]:
        from opentelemetry.metrics import Observation

        now = time.time()
        for path, store in self._stores().items():
            made = store.master_key_created()
            if made is not None:
                yield Observation(max(0.0, now - made), {"macula.store": path})

    def _observe_store_size(self, _options: Any) -> Iterator[Any]:
        from opentelemetry.metrics import Observation

        for path in self._stores():
            yield Observation(store_size(path), {"macula.store": path})

    @staticmethod
    def _observe_sinks(_options: Any) -> Iterator[Any]:
        from opentelemetry.metrics import Observation

        for fanout in list(_SINK_STATS):
            for stats in fanout.stats:
                yield Observation(stats.failures, {"macula.sink": stats.name,
                                                   "macula.sink.required": stats.required})

    # -- wrappers -----------------------------------------------------------------------

    def _span(self, name: str, attributes: dict[str, Any]) -> Any:
        return self.tracer.start_as_current_span(name, attributes=attributes,
                                                 record_exception=False,
                                                 set_status_on_exception=False)

    def _failed(self, span: Any, op: str, exc: BaseException, started: float) -> None:
        result = exc.__class__.__name__
        span.set_attribute("macula.result", result)
        span.set_status(self._status(self._error, result))
        self.requests.add(1, {"macula.operation": op, "macula.result": result})
        self.duration.record(time.perf_counter() - started, {"macula.operation": op})

    def _done(self, span: Any, op: str, result: str, started: float) -> None:
        span.set_attribute("macula.result", result)
        self.requests.add(1, {"macula.operation": op, "macula.result": result})
        self.duration.record(time.perf_counter() - started, {"macula.operation": op})

    def install(self) -> None:
        from . import sync as sync_module
        from .backends import sops as sops_module
        from .client import Secrets

        plain_get = Secrets.get
        plain_put = Secrets.put
        plain_sync = Secrets.sync
        plain_decrypt = sops_module.decrypt_app_file
        plain_sync_git = sync_module.sync_git
        me = self

        def get(self: Secrets, app: str, key: str, default: str | None = None, *,
                version: int | None = None) -> str | None:
            hit = version is None and (self.tenant, app, key) in self._store._cache
            attrs = {"macula.tenant": self.tenant, "macula.app": app, "macula.key": key,
                     "macula.backend": _backend(self), "macula.cache_hit": hit}
            if version is not None:
                attrs["macula.version"] = version
            started = time.perf_counter()
            with me._span("macula.get", attrs) as span:
                try:
                    value = plain_get(self, app, key, None, version=version)
                except Exception as exc:
                    me._failed(span, "get", exc, started)
                    raise
                me._done(span, "get", "ok" if value is not None else "not found", started)
            if version is None:
                me.cache.add(1, {"macula.cache.result": "hit" if hit else "miss"})
            return default if value is None else value

        def put(self: Secrets, app: str, key: str, value: str, *, cas: int | None = None,
                _audit_as: tuple[str, int] | None = None) -> int:
            attrs = {"macula.tenant": self.tenant, "macula.app": app, "macula.key": key,
                     "macula.backend": _backend(self)}
            started = time.perf_counter()
            with me._span("macula.put", attrs) as span:
                try:
                    version = plain_put(self, app, key, value, cas=cas, _audit_as=_audit_as)
                except Exception as exc:
                    me._failed(span, "put", exc, started)
                    raise
                span.set_attribute("macula.version", version)
                me._done(span, "put", "ok", started)
            return version

        def sync(self: Secrets, *, progress: Callable[[int, int], None] | None = None
                 ) -> Any:
            attrs = {"macula.tenant": self.tenant, "macula.backend": _backend(self)}
            started = time.perf_counter()
            with me._span("macula.sync", attrs) as span:
                try:
                    report = plain_sync(self, progress=progress)
                except Exception as exc:
                    me._failed(span, "sync", exc, started)
                    raise
                me._sync_done(span, report, started)
            return report

        def decrypt_app_file(data: bytes, *, name: str, identities: Any) -> Any:
            attrs = {"macula.file": os.path.basename(name), "macula.backend": "sops"}
            started = time.perf_counter()
            with me._span("macula.decrypt", attrs) as span:
                try:
                    found = plain_decrypt(data, name=name, identities=identities)
                except Exception as exc:
                    me._failed(span, "decrypt", exc, started)
                    raise
                me._done(span, "decrypt", "ok", started)
            return found

        def sync_git(store: Any, repo: Any, rev: str = "HEAD", **kwargs: Any) -> Any:
            attrs = {"macula.tenant": kwargs.get("tenant", ""), "macula.backend": "git",
                     "macula.rev": rev}
            started = time.perf_counter()
            with me._span("macula.sync", attrs) as span:
                try:
                    report = plain_sync_git(store, repo, rev, **kwargs)
                except Exception as exc:
                    me._failed(span, "sync", exc, started)
                    raise
                me._sync_done(span, report, started)
            return report

        for owner, name, wrapper in ((Secrets, "get", get), (Secrets, "put", put),
                                     (Secrets, "sync", sync),
                                     (sops_module, "decrypt_app_file", decrypt_app_file),
                                     (sync_module, "sync_git", sync_git)):
            original = getattr(owner, name)
            self._originals.append((owner, name, original))
            wrapper.__doc__ = original.__doc__
            setattr(wrapper, "__wrapped__", original)  # noqa: B010 - a union of functions
            setattr(owner, name, wrapper)

    def _sync_done(self, span: Any, report: Any, started: float) -> None:
        failed = len(report.errors)
        span.set_attribute("macula.sync.apps", len(report.apps))
        span.set_attribute("macula.sync.failed_apps", failed)
        if failed:
            span.set_status(self._status(self._error, "app failed"))
        self._done(span, "sync", "failed" if failed else "ok", started)

    def uninstall(self) -> None:
        for owner, name, original in reversed(self._originals):
            setattr(owner, name, original)
        self._originals.clear()
