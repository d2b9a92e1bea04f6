"""The runtime store against a plain-Python model of Vault's KV v2.

A hypothesis state machine drives ``Secrets.open(home=..., source="none")``
(two instances on one home, plus tenant views) with puts (with right and
wrong ``cas``), reads of the latest and of old versions, soft deletes and
undeletes, destroys, rollbacks, per-app ``max_versions`` (pruning), history,
list and load_all, closing and re-opening (persistence). Each operation goes
through one of the two instances, chosen at random, so a stale cache in
either shows up as a wrong read; after every step the whole store is checked
against the model, past the caches.

The model is Vault's: ``put`` makes version N+1, at most ``max_versions`` are
kept (pruned at the key's next write), ``delete``/``undelete`` flip a
version's deleted mark, ``destroy`` erases it for good (undelete cannot bring
it back), ``rollback`` writes an old live value as a new version.
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

Target = tuple[str, str, str]

# (tenant, app, key), weighted towards one key so that runs of operations on
# the same key (put, delete, destroy, rollback, ...) are common.
HOT: Target = ("default", "web", "token")
TARGETS: tuple[Target, ...] = (
    HOT, HOT, HOT, HOT,
    ("default", "web", "ключ.a"),
    ("default", "db", "token"),
    ("acme", "web", "token"),
)
targets = st.sampled_from(TARGETS)
app_targets = st.sampled_from(sorted({(t, a) for (t, a, _k) in TARGETS}))

# Any text but lone surrogates (a value must encode to UTF-8), the empty string included.
values = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=16),
    st.sampled_from(["", " ", "\n", "\x00", "é😀", "ENC[AES256_GCM,data:x]"]),
)
# Versions are drawn relative to the key's current one (0: the current
# version, 1: the next, not written yet), so most name a version the key has
# or recently had.
offsets = st.sampled_from((0, 0, -1, -1, -2, -3, -5, 1))
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

    @property
    def state(self) -> str:
        return "destroyed" if self.destroyed else "deleted" if self.deleted else "live"


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
        self.model: dict[Target, Key] = {}
        self.limits: dict[tuple[str, str], int] = {}

    # -- plumbing -------------------------------------------------------------------

    def _open(self) -> Secrets:
        return Secrets.open(home=self.home, source="none", env={})

    def view(self, which: int, tenant: str) -> Secrets:
        base = self.opened[which]
        return base if tenant == "default" else base.with_tenant(tenant)

    def current(self, at: Target) -> int:
        k = self.model.get(at)
        return k.current if k else 0

    def absolute(self, at: Target, rel: list[int] | None) -> list[int] | None:
        return None if rel is None else [self.current(at) + o for o in rel]

    def model_put(self, at: Target, value: str) -> int:
        k = self.model.setdefault(at, Key())
        k.current += 1
        k.versions[k.current] = Version(value)
        keep = self.limits.get(at[:2], DEFAULT_MAX_VERSIONS)
        if k.current - k.oldest + 1 > keep:
            k.oldest = k.current - keep + 1
            for v in [v for v in k.versions if v < k.oldest]:
                del k.versions[v]
        return k.current

    def model_limit(self, tenant: str, app: str, limit: int | None) -> None:
        if limit is None:
            self.limits.pop((tenant, app), None)
        else:
            self.limits[(tenant, app)] = limit

    @initialize(start=st.lists(st.tuples(app_targets, limits), max_size=3),
                seed=st.lists(st.tuples(targets, values), max_size=8))
    def open_store(self, start: list[tuple[tuple[str, str], int | None]],
                   seed: list[tuple[Target, str]]) -> None:
        self.opened = [self._open(), self._open()]
        # Some runs start with small limits, so pruning happens early and often.
        for (tenant, app), limit in start:
            self.view(0, tenant).set_max_versions(app, limit)
            self.model_limit(tenant, app, limit)
        # And with a few versions, so the rules below have history to work on.
        for at, value in seed:
            tenant, app, key = at
            assert self.view(0, tenant).put(app, key, value) == self.model_put(at, value)

    def teardown(self) -> None:
        for s in self.opened:
            s.close()
        shutil.rmtree(self.home, ignore_errors=True)

    # -- writes ---------------------------------------------------------------------

    @rule(w=instances, at=targets, value=values,
          cas_choice=st.one_of(st.none(), st.just("right"), st.integers(-1, 12)))
    def put(self, w: int, at: Target, value: str, cas_choice: int | str | None) -> None:
        tenant, app, key = at
        current = self.current(at)
        cas = current if cas_choice == "right" else cas_choice
        assert cas is None or isinstance(cas, int)
        s = self.view(w, tenant)
        if cas is not None and cas != current:
            with pytest.raises(ConflictError) as info:
                s.put(app, key, value, cas=cas)
            assert f"{app}/{key}" in str(info.value)
            assert f"is {current}, not {cas}" in str(info.value)
            return
        assert s.put(app, key, value, cas=cas) == self.model_put(at, value)

    @rule(w=instances, at=targets)
    def put_not_unicode(self, w: int, at: Target) -> None:
        tenant, app, key = at
        with pytest.raises(FormatError):
            self.view(w, tenant).put(app, key, "x\ud800y")

    @rule(w=instances, at=targets, rel=st.one_of(st.none(), offset_lists))
    def delete(self, w: int, at: Target, rel: list[int] | None) -> None:
        self._soft_delete(w, at, rel, deleted=True)

    @rule(w=instances, at=targets, rel=st.one_of(st.none(), offset_lists))
    def undelete(self, w: int, at: Target, rel: list[int] | None) -> None:
        self._soft_delete(w, at, rel, deleted=False)

    def _soft_delete(self, w: int, at: Target, rel: list[int] | None, *, deleted: bool) -> None:
        tenant, app, key = at
        versions = self.absolute(at, rel)
        s = self.view(w, tenant)
        call = s.delete if deleted else s.undelete
        k = self.model.get(at)
        if k is None:
            with pytest.raises(NotFoundError):
                call(app, key, versions=versions)
            return
        call(app, key, versions=versions)
        for v in [k.current] if versions is None else versions:
            if v in k.versions and not k.versions[v].destroyed:
                k.versions[v].deleted = deleted

    @rule(w=instances, at=targets, rel=offset_lists)
    def destroy(self, w: int, at: Target, rel: list[int]) -> None:
        tenant, app, key = at
        versions = [self.current(at) + o for o in rel]
        s = self.view(w, tenant)
        k = self.model.get(at)
        if k is None:
            with pytest.raises(NotFoundError):
                s.destroy(app, key, versions)
            return
        s.destroy(app, key, versions)
        for v in versions:
            if v in k.versions:
                k.versions[v].destroyed = True

    @rule(w=instances, at=targets, rel=offsets)
    def rollback(self, w: int, at: Target, rel: int) -> None:
        tenant, app, key = at
        version = self.current(at) + rel
        s = self.view(w, tenant)
        k = self.model.get(at)
        old = k.versions.get(version) if k else None
        if old is None or not old.live:
            with pytest.raises(NotFoundError) as info:
                s.rollback(app, key, version)
            assert f"{app}/{key}" in str(info.value)
            return
        assert s.rollback(app, key, version) == self.model_put(at, old.value)

    @rule(w=instances, app_target=app_targets, limit=limits)
    def set_max_versions(self, w: int, app_target: tuple[str, str], limit: int | None) -> None:
        tenant, app = app_target
        self.view(w, tenant).set_max_versions(app, limit)
        self.model_limit(tenant, app, limit)

    @rule(which=st.sampled_from((0, 1, 2)))
    def reopen(self, which: int) -> None:
        """Close and re-open one instance (2: both): everything persisted."""
        for i in (0, 1) if which == 2 else (which,):
            self.opened[i].close()
            self.opened[i] = self._open()

    # -- reads ----------------------------------------------------------------------

    @rule(r=instances, at=targets)
    def get_latest(self, r: int, at: Target) -> None:
        tenant, app, key = at
        k = self.model.get(at)
        assert self.view(r, tenant).get(app, key) == (k.latest() if k else None)

    @rule(r=instances, at=targets, rel=offsets)
    def get_version(self, r: int, at: Target, rel: int) -> None:
        tenant, app, key = at
        version = self.current(at) + rel
        k = self.model.get(at)
        old = k.versions.get(version) if k else None
        expected = old.value if old is not None and old.live else None
        assert self.view(r, tenant).get(app, key, version=version) == expected

    @rule(r=instances, at=targets)
    def history(self, r: int, at: Target) -> None:
        tenant, app, key = at
        s = self.view(r, tenant)
        k = self.model.get(at)
        if k is None:
            with pytest.raises(NotFoundError):
                s.history(app, key)
            return
        got = [(i.version, i.deleted is not None, i.destroyed, i.current, i.state)
               for i in s.history(app, key)]
        want = [(n, v.deleted, v.destroyed, n == k.current, v.state)
                for n, v in sorted(k.versions.items())]
        assert got == want
        # Kept versions are dense: oldest..current, no gap.
        assert [g[0] for g in got] == list(range(k.oldest, k.current + 1))

    @rule(r=instances, app_target=app_targets)
    def list_and_load_all(self, r: int, app_target: tuple[str, str]) -> None:
        tenant, app = app_target
        s = self.view(r, tenant)
        want = {key: v for (t, a, key), k in self.model.items()
                if t == tenant and a == app and (v := k.latest()) is not None}
        assert s.list(app) == sorted(want)
        assert s.load_all(app) == want

    @rule(w=instances, at=targets, value=values)
    def write_here_read_there(self, w: int, at: Target, value: str) -> None:
        """A write through one instance is what the other reads next, with a warm cache."""
        tenant, app, key = at
        there = self.view(1 - w, tenant)
        k = self.model.get(at)
        assert there.get(app, key) == (k.latest() if k else None)  # warms its cache
        version = self.view(w, tenant).put(app, key, value)
        assert version == self.model_put(at, value)
        assert there.get(app, key) == value
        assert there.get(app, key, version=version) == value

    @precondition(lambda self: bool(self.model))
    @invariant()
    def store_matches_model(self) -> None:
        """Every kept version's record and value, read past the caches."""
        store = self.opened[0].store
        assert store.list_tenants() == sorted({t for (t, _a, _k) in self.model})
        for (tenant, app, key), k in self.model.items():
            assert store.current_version(tenant, app, key) == k.current
            got = [(i.version, i.deleted is not None, i.destroyed, i.current)
                   for i in store.history(tenant, app, key)]
            assert got == [(n, v.deleted, v.destroyed, n == k.current)
                           for n, v in sorted(k.versions.items())]
            for n, v in k.versions.items():
                value = store.read_version(tenant, app, key, n)[1]
                assert value == (v.value if v.live else None)
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
