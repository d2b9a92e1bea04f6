"""The runtime store against a plain-Python model of Vault's KV v2.

A hypothesis state machine drives ``Secrets.open(home=..., source="none")``
(two instances on one home, plus tenant views) with puts (with right and
wrong ``cas``), reads of the latest and of old versions, soft deletes and
undeletes, destroys, rollbacks, per-app ``max_versions`` (pruning), history,
list and load_all, closing and re-opening (persistence). Every write goes
through one instance chosen at random and every read through another, so a
stale cache in either shows up as a wrong read.

The model is Vault's: ``put`` makes version N+1, at most ``max_versions`` are
kept (pruned at the key's next write), ``delete``/``undelete`` flip a
version's deleted mark, ``destroy`` erases it for good, ``rollback`` writes
an old live value as a new version.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from macula_secrets import Secrets
from macula_secrets.errors import ConflictError, FormatError, NotFoundError

DEFAULT_MAX_VERSIONS = 10

TENANTS = ("default", "acme")
APPS = ("web", "db")
KEYS = ("token", "ключ.a")

tenants = st.sampled_from(TENANTS)
apps = st.sampled_from(APPS)
keys = st.sampled_from(KEYS)
# Any text but lone surrogates (a value must encode to UTF-8), the empty string included.
values = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=16),
    st.sampled_from(["", " ", "\n", "\x00", "é😀", "ENC[AES256_GCM,data:x]"]),
)
# Versions are drawn relative to the key's current one (0: the current version,
# 1: the next, not yet written), so most of them name a version the key has
# or recently had.
offsets = st.integers(min_value=-5, max_value=1)
offset_lists = st.lists(offsets, min_size=1, max_size=3)
instances = st.sampled_from((0, 1))
limits = st.sampled_from((1, 2, 3, None))


@dataclass
class Version:
    value: str
    deleted: bool = False
    destroyed: bool = False

    @property
    def live(self) -> bool:
        return not (self.deleted or self.destroyed)


@dataclass
class Key:
    current: int = 0
    oldest: int = 1
    versions: dict[int, Version] = field(default_factory=dict)

    def latest(self) -> str | None:
        v = self.versions[self.current]
        return v.value if v.live else None


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.home = tempfile.mkdtemp(prefix="macula-model-")
        self.opened: list[Secrets] = []
        self.model: dict[tuple[str, str, str], Key] = {}
        self.limits: dict[tuple[str, str], int] = {}

    # -- plumbing -------------------------------------------------------------------

    def _open(self) -> Secrets:
        return Secrets.open(home=self.home, source="none", env={})

    def view(self, which: int, tenant: str) -> Secrets:
        base = self.opened[which]
        return base if tenant == "default" else base.with_tenant(tenant)

    def current(self, tenant: str, app: str, key: str) -> int:
        k = self.model.get((tenant, app, key))
        return k.current if k else 0

    def keep(self, tenant: str, app: str) -> int:
        return self.limits.get((tenant, app), DEFAULT_MAX_VERSIONS)

    def absolute(self, tenant: str, app: str, key: str, offsets: list[int] | None
                 ) -> list[int] | None:
        if offsets is None:
            return None
        current = self.current(tenant, app, key)
        return [current + o for o in offsets]

    def model_put(self, tenant: str, app: str, key: str, value: str) -> int:
        k = self.model.setdefault((tenant, app, key), Key())
        k.current += 1
        k.versions[k.current] = Version(value)
        keep = self.keep(tenant, app)
        if k.current - k.oldest + 1 > keep:
            k.oldest = k.current - keep + 1
            for v in [v for v in k.versions if v < k.oldest]:
                del k.versions[v]
        return k.current

    @initialize(limits=st.lists(st.tuples(tenants, apps, limits), max_size=3))
    def open_store(self, limits: list[tuple[str, str, int | None]]) -> None:
        self.opened = [self._open(), self._open()]
        # Some runs start with small limits so pruning happens early and often.
        for tenant, app, limit in limits:
            self.view(0, tenant).set_max_versions(app, limit)
            if limit is None:
                self.limits.pop((tenant, app), None)
            else:
                self.limits[(tenant, app)] = limit

    def teardown(self) -> None:
        for s in self.opened:
            s.close()
        shutil.rmtree(self.home, ignore_errors=True)

    # -- writes ---------------------------------------------------------------------

    @rule(w=instances, tenant=tenants, app=apps, key=keys, value=values,
          cas=st.one_of(st.none(), st.just("right"), st.integers(-1, 12)))
    def put(self, w: int, tenant: str, app: str, key: str, value: str,
            cas: int | str | None) -> None:
        k = self.model.get((tenant, app, key))
        current = k.current if k else 0
        s = self.view(w, tenant)
        if cas == "right":
            cas = current
        if cas is not None and cas != current:
            with pytest.raises(ConflictError) as info:
                s.put(app, key, value, cas=cas)
            message = str(info.value)
            assert f"{app}/{key}" in message
            assert f"is {current}, not {cas}" in message
            return
        assert s.put(app, key, value, cas=cas) == self.model_put(tenant, app, key, value)

    @rule(w=instances, tenant=tenants, app=apps, key=keys)
    def put_not_unicode(self, w: int, tenant: str, app: str, key: str) -> None:
        with pytest.raises(FormatError):
            self.view(w, tenant).put(app, key, "x\ud800y")

    @rule(w=instances, tenant=tenants, app=apps, key=keys,
          offsets=st.one_of(st.none(), offset_lists))
    def delete(self, w: int, tenant: str, app: str, key: str, offsets: list[int] | None
               ) -> None:
        versions = self.absolute(tenant, app, key, offsets)
        s = self.view(w, tenant)
        k = self.model.get((tenant, app, key))
        if k is None:
            with pytest.raises(NotFoundError):
                s.delete(app, key, versions=versions)
            return
        s.delete(app, key, versions=versions)
        for v in [k.current] if versions is None else versions:
            if v in k.versions and not k.versions[v].destroyed:
                k.versions[v].deleted = True

    @rule(w=instances, tenant=tenants, app=apps, key=keys,
          offsets=st.one_of(st.none(), offset_lists))
    def undelete(self, w: int, tenant: str, app: str, key: str, offsets: list[int] | None
                 ) -> None:
        versions = self.absolute(tenant, app, key, offsets)
        s = self.view(w, tenant)
        k = self.model.get((tenant, app, key))
        if k is None:
            with pytest.raises(NotFoundError):
                s.undelete(app, key, versions=versions)
            return
        s.undelete(app, key, versions=versions)
        for v in [k.current] if versions is None else versions:
            if v in k.versions and not k.versions[v].destroyed:
                k.versions[v].deleted = False

    @rule(w=instances, tenant=tenants, app=apps, key=keys, offsets=offset_lists)
    def destroy(self, w: int, tenant: str, app: str, key: str, offsets: list[int]) -> None:
        versions = self.absolute(tenant, app, key, offsets)
        assert versions is not None
        s = self.view(w, tenant)
        k = self.model.get((tenant, app, key))
        if k is None:
            with pytest.raises(NotFoundError):
                s.destroy(app, key, versions)
            return
        s.destroy(app, key, versions)
        for v in versions:
            if v in k.versions:
                k.versions[v].destroyed = True

    @rule(w=instances, tenant=tenants, app=apps, key=keys, offset=offsets)
    def rollback(self, w: int, tenant: str, app: str, key: str, offset: int) -> None:
        version = self.current(tenant, app, key) + offset
        s = self.view(w, tenant)
        k = self.model.get((tenant, app, key))
        old = k.versions.get(version) if k else None
        if old is None or not old.live:
            with pytest.raises(NotFoundError) as info:
                s.rollback(app, key, version)
            assert f"{app}/{key}" in str(info.value)
            return
        assert k is not None
        assert s.rollback(app, key, version) == self.model_put(tenant, app, key, old.value)

    @rule(w=instances, tenant=tenants, app=apps, limit=limits)
    def set_max_versions(self, w: int, tenant: str, app: str, limit: int | None) -> None:
        self.view(w, tenant).set_max_versions(app, limit)
        if limit is None:
            self.limits.pop((tenant, app), None)
        else:
            self.limits[(tenant, app)] = limit

    @rule(which=st.sampled_from((0, 1, "both")))
    def reopen(self, which: int | str) -> None:
        for i in (0, 1) if which == "both" else (which,):
            assert isinstance(i, int)
            self.opened[i].close()
            self.opened[i] = self._open()

    # -- reads ----------------------------------------------------------------------

    @rule(r=instances, tenant=tenants, app=apps, key=keys)
    def get_latest(self, r: int, tenant: str, app: str, key: str) -> None:
        k = self.model.get((tenant, app, key))
        expected = k.latest() if k else None
        assert self.view(r, tenant).get(app, key) == expected

    @rule(r=instances, tenant=tenants, app=apps, key=keys, offset=offsets)
    def get_version(self, r: int, tenant: str, app: str, key: str, offset: int) -> None:
        version = self.current(tenant, app, key) + offset
        k = self.model.get((tenant, app, key))
        old = k.versions.get(version) if k else None
        expected = old.value if old is not None and old.live else None
        assert self.view(r, tenant).get(app, key, version=version) == expected

    @rule(r=instances, tenant=tenants, app=apps, key=keys)
    def history(self, r: int, tenant: str, app: str, key: str) -> None:
        s = self.view(r, tenant)
        k = self.model.get((tenant, app, key))
        if k is None:
            with pytest.raises(NotFoundError):
                s.history(app, key)
            return
        got = [(i.version, i.deleted is not None, i.destroyed, i.current, i.state)
               for i in s.history(app, key)]
        want = [(n, v.deleted, v.destroyed, n == k.current,
                 "destroyed" if v.destroyed else "deleted" if v.deleted else "live")
                for n, v in sorted(k.versions.items())]
        assert got == want
        # Kept versions are dense: oldest..current with no gap.
        assert [g[0] for g in got] == list(range(k.oldest, k.current + 1))

    @rule(r=instances, tenant=tenants, app=apps)
    def list_and_load_all(self, r: int, tenant: str, app: str) -> None:
        s = self.view(r, tenant)
        want = {key: v for (t, a, key), k in self.model.items()
                if t == tenant and a == app and (v := k.latest()) is not None}
        assert s.list(app) == sorted(want)
        assert s.load_all(app) == want

    @rule(w=instances, tenant=tenants, app=apps, key=keys, value=values)
    def write_here_read_there(self, w: int, tenant: str, app: str, key: str, value: str
                              ) -> None:
        """A write through one instance is what the other reads next, with a warm cache."""
        there = self.view(1 - w, tenant)
        k = self.model.get((tenant, app, key))
        assert there.get(app, key) == (k.latest() if k else None)  # warms its cache
        version = self.view(w, tenant).put(app, key, value)
        assert version == self.model_put(tenant, app, key, value)
        assert there.get(app, key) == value
        assert there.get(app, key, version=version) == value

    @precondition(lambda self: bool(self.model))
    @invariant()
    def store_matches_model(self) -> None:
        """Every kept version's record and value, read past the caches, after every step."""
        store = self.opened[0].store
        assert store.list_tenants() == sorted({t for (t, _a, _k) in self.model})
        for (tenant, app, key), k in self.model.items():
            assert store.current_version(tenant, app, key) == k.current
            got = [(i.version, i.state) for i in store.history(tenant, app, key)]
            assert got == [(n, "destroyed" if v.destroyed else "deleted" if v.deleted
                            else "live") for n, v in sorted(k.versions.items())]
            for n, v in k.versions.items():
                assert store.read_version(tenant, app, key, n)[1] == (v.value if v.live
                                                                      else None)
            for gone in (k.oldest - 1, k.current + 1):
                with pytest.raises(NotFoundError):
                    store.read_version(tenant, app, key, gone)


StoreMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestStoreModel = StoreMachine.TestCase
