"""Health checks of a node: what ``macula-secrets doctor`` runs, as plain functions.

Each ``check_*`` function looks at one thing (key file permissions, the
store's integrity, the audit chains, the clock, the TPM, Vault, the secrets
folder) and returns :class:`Result` records: ``ok``, ``info`` (nothing to
check here), ``warn`` (works, but should be fixed) or ``fail`` (broken, or
unsafe). :func:`run_checks` runs them all. The command line only prints
the records, so every check is testable without it.

Nothing here prints or returns a value or key material: results name
files, tenants, apps, keys and versions. A check that cannot run says why
instead of raising, so one broken thing never hides the others.

Not for: repairing anything. The checks only read (opening the store may
finish an interrupted master key rotation, as any open does); each failure
carries a hint that says what to run.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from . import _env
from ._config import Config, SinkConfig
from .errors import MaculaError

if TYPE_CHECKING:
    from .localstore.store import LocalStore

__all__ = [
    "Result",
    "Status",
    "check_audit",
    "check_clock",
    "check_observability",
    "check_permissions",
    "check_secrets_folder",
    "check_store",
    "check_tpm",
    "check_vault",
    "run_checks",
]

Status = Literal["ok", "info", "warn", "fail"]

TOKENS_FILE: Final = "tokens.db"
"""The server's token store in the home (``server.tokens.TOKENS_FILE``; not imported:
the library does not import the server shell)."""
SERVER_AUDIT_FILE: Final = "audit-server.log"
"""The server's audit log in the home (``server.run.AUDIT_FILE``)."""
SERVER_TLS_KEY: Final = os.path.join("server-tls", "key.pem")
"""The private key of the server's self-signed certificate."""

CLOCK_TOLERANCE: Final = 300.0
"""Seconds the clock may lag behind the last recorded write before it counts as wrong
(file systems, NTP steps and other machines' clocks all jitter a little)."""
EARLIEST_SANE_TIME: Final = 1735689600.0
"""2025-01-01T00:00:00Z: a clock before this was never set (a board without a
real-time clock boots at 1970 or at the last fake-hwclock save)."""
VAULT_SKEW: Final = 60.0
"""Seconds of difference from Vault's clock that are reported (token TTLs drift)."""
MAX_ROWS_NAMED: Final = 20
"""Damaged store rows named one per line; the rest are counted."""

_VAULT_STATES: Final = {200: "active", 429: "standby", 472: "DR secondary",
                        473: "performance standby", 501: "not initialised", 503: "sealed"}


@dataclass(frozen=True, slots=True)
class Result:
    """One finding: which check, how it went, what it saw, what to do about it."""

    check: str
    """The check's name: keys, files, store, audit, clock, tpm, vault, secrets."""
    status: Status
    message: str
    """Names things (paths, tenant/app/key/version), never a value."""
    hint: str | None = None
    """What to run or change; for ``warn`` and ``fail``."""

    def to_json(self) -> dict[str, object]:
        return {"check": self.check, "status": self.status, "message": self.message,
                "hint": self.hint}


def _ok(check: str, message: str) -> Result:
    return Result(check, "ok", message)


# -- permissions ------------------------------------------------------------------------


def _key_files(cfg: Config, env: Mapping[str, str], user_home: str
               ) -> list[tuple[str, str, bool]]:
    """``(path, what, secret)`` of every file doctor checks the permissions of.

    ``secret``: it holds key material or a credential, so others reading it
    is a failure; otherwise (ciphertext, names) it is a warning.
    """
    from ._masterkey import RECOVERY_NAME, sealed_path
    from .keys._discovery import IdentitySources
    from .keys.sealed import sealed_kind

    files: list[tuple[str, str, bool]] = []
    plain = cfg.master_key.path or cfg.master_key_path
    sealed = sealed_path(cfg)
    for path in dict.fromkeys((plain, sealed)):
        what = "sealed master key" if sealed_kind(path) is not None else "master key file"
        files += [(path, what, True), (path + ".next", f"pending {what}", True)]
    files.append((os.path.join(cfg.home, RECOVERY_NAME), "master key escrow copy", False))
    identities = [env.get(_env.SOPS_AGE_KEY_FILE), env.get(_env.SOPS_AGE_SSH_PRIVATE_KEY_FILE),
                  os.path.join(user_home, ".ssh", "id_ed25519"),
                  os.path.join(user_home, ".ssh", "id_rsa"),
                  IdentitySources(env, user_home).default_key_file, cfg.age_key_file]
    files += [(p, "age identity file", True) for p in identities if p]
    mk = cfg.master_key
    if mk.identity:
        files.append((mk.identity, "node identity (master key seal)", True))
    if mk.passphrase_file:
        files.append((mk.passphrase_file, "master key passphrase file", True))
    files.append((os.path.join(cfg.home, TOKENS_FILE), "token store", True))
    files.append((os.path.join(cfg.home, SERVER_TLS_KEY), "server TLS private key", True))
    if cfg.vault is not None:
        for credential, what in ((cfg.vault.token_file, "vault token file"),
                                 (cfg.vault.secret_id_file, "vault AppRole secret_id file"),
                                 (cfg.vault.client_key, "vault client key")):
            if credential:
                files.append((credential, what, True))
    files += [(cfg.store_path, "store", False), (cfg.audit_path, "audit log", False),
              (os.path.join(cfg.home, SERVER_AUDIT_FILE), "server audit log", False)]
    seen: set[str] = set()
    unique = []
    for path, what, secret in files:
        full = os.path.abspath(os.path.expanduser(path))
        if full not in seen:
            seen.add(full)
            unique.append((full, what, secret))
    return unique


def check_permissions(cfg: Config, env: Mapping[str, str], *,
                      user_home: str | None = None, uid: int | None = None) -> list[Result]:
    """Key files, identities and credentials: mode 0600 (or stricter), owned by this user.

    Checked where they exist: the master key file or sealed key (and a
    pending ``.next``), the age identity files sops would read
    (``SOPS_AGE_KEY_FILE``, ``SOPS_AGE_SSH_PRIVATE_KEY_FILE``, ``~/.ssh``,
    the default ``keys.txt``, ``age_key_file``), the node identity and
    passphrase file of ``[master_key]``, ``tokens.db``, the server's TLS
    key and Vault credential files. A key file others can read is a
    failure (the store refuses to open with it, as ssh does). The home
    folder, the store and the audit logs only warn: they hold ciphertext
    and names.
    """
    user_home = user_home if user_home is not None else os.path.expanduser("~")
    uid = os.getuid() if uid is None else uid
    results: list[Result] = []
    home_mode = _mode(cfg.home)
    if home_mode is not None and home_mode & 0o077:
        results.append(Result("files", "warn", f"home folder {cfg.home}: mode {home_mode:04o}, "
                              "others can list it", hint=f"chmod 700 {cfg.home}"))
    for path, what, secret in _key_files(cfg, env, user_home):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            results.append(Result("keys", "fail", f"{what} {path}: cannot be read "
                                  f"({exc.strerror})", hint=f"check {path} and its folder"))
            continue
        check = "keys" if secret else "files"
        mode = stat.S_IMODE(st.st_mode)
        bad: Status = "fail" if secret else "warn"
        if mode & 0o077:
            can = " and ".join(verb for verb, bits in (("read", 0o044), ("change", 0o022))
                               if mode & bits) or "open"
            results.append(Result(check, bad, f"{what} {path}: mode {mode:04o}, others can "
                                  f"{can} it", hint=f"chmod 600 {path}"))
        elif st.st_uid != uid:
            status: Status = "warn" if st.st_uid == 0 else bad
            results.append(Result(check, status, f"{what} {path}: owned by uid {st.st_uid}, "
                                  f"not by this user (uid {uid})",
                                  hint=f"chown {uid} {path}, or run doctor as the user "
                                       "that runs the service"))
        else:
            results.append(_ok(check, f"{what} {path}: mode {mode:04o}, owned by this user"))
    return results


def _mode(path: str) -> int | None:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


# -- store --------------------------------------------------------------------------------


def _connect_ro(path: str) -> sqlite3.Connection:
    """A read-only connection: doctor never writes to the store through SQLite."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


def _integrity(path: str) -> Result:
    """SQLite's own check of pages, indexes and records (``PRAGMA integrity_check``)."""
    from ._health import sqlite_check

    try:
        rows = sqlite_check(path, "integrity_check")
    except sqlite3.Error as exc:
        return Result("store", "fail", f"{path}: SQLite cannot check it ({exc})",
                      hint="restore store.db from a backup, then run sync")
    if rows == ["ok"]:
        return _ok("store", f"{path}: SQLite integrity check passed")
    more = f" (and {len(rows) - 1} more)" if len(rows) > 1 else ""
    return Result("store", "fail", f"{path}: SQLite integrity check failed: {rows[0]}{more}",
                  hint="restore store.db from a backup, then run sync")


def _has_key_id(path: str) -> bool:
    conn = _connect_ro(path)
    try:
        return conn.execute("SELECT 1 FROM meta WHERE name = 'key_id'").fetchone() is not None
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def check_store(cfg: Config, env: Mapping[str, str], *, tenants: Sequence[str] | None = None,
                ask: Callable[[str], str] | None = None) -> list[Result]:
    """The store's integrity: SQLite's check, then every live version decrypted.

    Every kept live version of every key of every app in every tenant (or
    only ``tenants``) is read through the barrier: a row whose sealed value,
    nonce, tag, data key or names were changed fails its AES-GCM tag and is
    named as tenant/app/key version N. Values are dropped as soon as they
    are decrypted. Opening needs the master key (``ask`` reads a
    passphrase; the agent is used when it runs). A missing store is not an
    error: it is made on first use.
    """
    path = cfg.store_path
    if not os.path.exists(path):
        return [Result("store", "info", f"no store at {path} yet (made by the first put or "
                       "sync)")]
    results = [_integrity(path)]
    if results[0].status == "fail":
        return results
    if not _has_key_id(path):
        results.append(Result("store", "warn", f"{path} has no master key yet (a first "
                              "open was interrupted, or is running now)",
                              hint="run doctor again; if it stays, move store.db away"))
        return results
    from ._masterkey import open_provider
    from .localstore.store import LocalStore

    try:
        store = LocalStore(path, open_provider(cfg, env, ask=ask))
    except MaculaError as exc:
        results.append(Result("store", "fail", f"cannot unlock the store: {exc}",
                              hint=exc.hint or "see docs/keys.md"))
        return results
    try:
        results += _decrypt_all(store, tenants)
    except sqlite3.Error as exc:  # a page damaged past what integrity_check saw
        results.append(Result("store", "fail", f"{path} could not be read to the end ({exc})",
                              hint="restore store.db from a backup, then run sync"))
    finally:
        store.close()
    return results


def _decrypt_all(store: LocalStore, tenants: Sequence[str] | None) -> list[Result]:
    bad: list[str] = []
    versions = keys = 0
    chosen = store.list_tenants() if tenants is None else [
        t for t in tenants if t in store.list_tenants()]
    for tenant in chosen:
        for app in store.list_apps(tenant):
            for key in store.list_keys(tenant, app, include_deleted=True):
                keys += 1
                for info in store.history(tenant, app, key):
                    if info.state != "live":
                        continue
                    versions += 1
                    try:
                        store.read_version(tenant, app, key, info.version)
                    except MaculaError:  # IntegrityError, or a damaged name
                        bad.append(f"{tenant}/{app}/{key} version {info.version}")
    if not bad:
        where = ", ".join(chosen) if chosen else "no tenants"
        return [_ok("store", f"{_count(versions, 'live version')} of {_count(keys, 'key')} "
                    f"decrypt (tenants: {where})")]
    hint = ("restore store.db from a backup; or destroy the version and write it again "
            "(macula-secrets destroy APP KEY --versions N; sync restores file-born keys)")
    out = [Result("store", "fail", f"row {row} fails its integrity check (changed on disk)",
                  hint=hint) for row in bad[:MAX_ROWS_NAMED]]
    if len(bad) > MAX_ROWS_NAMED:
        out.append(Result("store", "fail", f"{len(bad) - MAX_ROWS_NAMED} more rows fail "
                          "their integrity check", hint=hint))
    return out


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# -- audit ----------------------------------------------------------------------------------


def check_audit(cfg: Config) -> list[Result]:
    """The hash chains of the store's audit log and the server's, where they exist."""
    from .audit import verify

    results = []
    for path, what in ((cfg.audit_path, "audit log"),
                       (os.path.join(cfg.home, SERVER_AUDIT_FILE), "server audit log")):
        if not os.path.exists(path):
            if what == "audit log":
                results.append(Result("audit", "info", f"no {what} at {path} yet"))
            continue
        try:
            found = verify(path)
        except OSError as exc:
            results.append(Result("audit", "fail", f"{what} {path}: cannot be read "
                                  f"({exc.strerror})", hint=f"check the permissions of {path}"))
            continue
        if found.ok:
            results.append(_ok("audit", f"{what} {path}: {found.lines} entries, hash chain "
                               "intact"))
        else:
            results.append(Result(
                "audit", "fail", f"{what} {path}: line {found.bad_line} {found.reason}",
                hint="the log was changed after it was written: keep this copy as evidence; "
                     "a new log starts when it is moved away"))
    return results


# -- clock -----------------------------------------------------------------------------------


def _last_recorded(cfg: Config) -> tuple[float, str] | None:
    """The latest time this node wrote down, and where: file times, store rows, audit lines."""
    found: list[tuple[float, str]] = []
    for path in (cfg.store_path, cfg.audit_path, os.path.join(cfg.home, SERVER_AUDIT_FILE),
                 os.path.join(cfg.home, TOKENS_FILE)):
        with contextlib.suppress(OSError):
            found.append((os.stat(path).st_mtime, f"the modification time of {path}"))
    if os.path.exists(cfg.store_path):
        with contextlib.suppress(sqlite3.Error):
            conn = _connect_ro(cfg.store_path)
            try:
                for sql, what in (
                        ("SELECT max(updated_at) FROM secrets", "the store's last write"),
                        ("SELECT value FROM meta WHERE name = 'created_at'",
                         "the store's creation")):
                    row = conn.execute(sql).fetchone()
                    if row is not None and isinstance(row[0], int | float):
                        found.append((float(row[0]), what))
            finally:
                conn.close()
    from .audit import tail

    for path in (cfg.audit_path, os.path.join(cfg.home, SERVER_AUDIT_FILE)):
        with contextlib.suppress(OSError):
            for entry in tail(path, 1):
                stamp = _parse_utc(str(entry.get("time", "")))
                if stamp is not None:
                    found.append((stamp, f"the last line of {path}"))
    return max(found) if found else None


def _parse_utc(text: str) -> float | None:
    """Seconds since the epoch of an RFC 3339 UTC time (``2026-01-02T03:04:05.123456Z``)."""
    import calendar

    try:
        parsed = time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    return float(calendar.timegm(parsed))


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def check_clock(cfg: Config, *, now: float) -> list[Result]:
    """The system clock is set, and not behind what this node already wrote down.

    Token expiry, Vault's ``max_stale``, TLS certificate checks and the
    audit log's timestamps all trust the clock. An edge board without a
    real-time clock boots with a time from the past until NTP answers, so
    the clock is compared with the latest time the node recorded: the
    store's rows and creation, the audit logs' last lines and the files'
    modification times. Being more than :data:`CLOCK_TOLERANCE` behind
    any of them means the clock went backwards.
    """
    hint = ("set the clock: enable NTP (timedatectl set-ntp true, or chronyc makestep); "
            "token expiry, TLS checks and Vault's max_stale depend on it")
    if now < EARLIEST_SANE_TIME:
        return [Result("clock", "fail", f"the system clock says {_utc(now)}: it was never "
                       "set", hint=hint)]
    last = _last_recorded(cfg)
    if last is None:
        return [_ok("clock", f"system clock {_utc(now)} (nothing recorded yet to compare "
                    "with)")]
    stamp, where = last
    if stamp - now > CLOCK_TOLERANCE:
        return [Result("clock", "fail", f"the system clock ({_utc(now)}) is "
                       f"{_duration(stamp - now)} behind {where} ({_utc(stamp)})", hint=hint)]
    return [_ok("clock", f"system clock {_utc(now)} is not behind the last recorded write "
                f"({_utc(stamp)})")]


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


# -- TPM ------------------------------------------------------------------------------------


def check_tpm(cfg: Config, env: Mapping[str, str], *, timeout: float = 20.0) -> list[Result]:
    """With the tpm provider: the TPM answers (``tpm2_getrandom``). Otherwise informational.

    The unseal itself is exercised by :func:`check_store` (opening the store
    unseals the key); this check tells "no TPM" apart from "wrong TPM".
    """
    from ._masterkey import chosen_kind
    from .keys.tpm import DEFAULT_TCTI

    try:
        kind = chosen_kind(cfg, env)
    except MaculaError as exc:
        return [Result("tpm", "warn", f"cannot tell the master key provider: {exc}",
                       hint=exc.hint)]
    tcti = (cfg.master_key.tcti or "").strip() or DEFAULT_TCTI
    if kind != "tpm":
        present = any(os.path.exists(d) for d in ("/dev/tpmrm0", "/dev/tpm0"))
        extra = ("; a TPM is present: `macula-secrets key migrate --to tpm` can seal the key "
                 "to it") if present else ""
        return [Result("tpm", "info", f"master key provider is {kind}: no TPM needed{extra}")]
    import shutil
    import subprocess

    tool = shutil.which("tpm2_getrandom")
    if tool is None:
        return [Result("tpm", "fail", "the master key is sealed to a TPM but tpm2-tools is "
                       "not installed", hint="install tpm2-tools, e.g. apt install tpm2-tools")]
    try:
        # The random bytes are thrown away: this only asks whether the TPM answers.
        done = subprocess.run([tool, "8", "-T", tcti], capture_output=True, timeout=timeout,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [Result("tpm", "fail",
                       f"the TPM at {tcti} did not answer ({exc.__class__.__name__})",
                       hint="check the device or simulator, and [master_key] tcti")]
    if done.returncode != 0:
        first = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return [Result("tpm", "fail", f"the TPM at {tcti} did not answer"
                       + (f" ({first[-1][:160]})" if first else ""),
                       hint="check the device (ls -l /dev/tpmrm0) or simulator, and "
                            "[master_key] tcti")]
    return [_ok("tpm", f"the TPM at {tcti} answers")]


# -- Vault -----------------------------------------------------------------------------------


def _health(address: str, *, ca_cert: str | None, client_cert: str | None,
            client_key: str | None, timeout: float) -> tuple[int, dict[str, object]] | str:
    """``sys/health`` of one node: (status, body), or why it could not be asked.

    The standard library, not hvac: ``sys/health`` needs no token, and
    doctor must work when the token is the thing that is wrong.
    """
    import http.client
    import ssl
    import urllib.parse

    url = urllib.parse.urlsplit(address)
    host = url.hostname or ""
    conn: http.client.HTTPConnection
    try:
        if url.scheme == "https":
            if ca_cert and os.path.isdir(ca_cert):
                context = ssl.create_default_context(capath=ca_cert)
            else:
                context = ssl.create_default_context(cafile=ca_cert or None)
            if client_cert and client_key:
                context.load_cert_chain(client_cert, client_key)
            conn = http.client.HTTPSConnection(host, url.port, timeout=timeout,
                                               context=context)
        else:
            conn = http.client.HTTPConnection(host, url.port, timeout=timeout)
        try:
            prefix = url.path.rstrip("/")
            conn.request("GET", f"{prefix}/v1/sys/health")
            resp = conn.getresponse()
            body = resp.read(65536)
        finally:
            conn.close()
    except ssl.SSLError as exc:
        return f"TLS failed: {exc.reason or exc.__class__.__name__}"
    except (OSError, http.client.HTTPException) as exc:
        return f"unreachable: {getattr(exc, 'strerror', None) or exc.__class__.__name__}"
    try:
        doc = json.loads(body)
    except ValueError:
        doc = {}
    return resp.status, doc if isinstance(doc, dict) else {}


def check_vault(cfg: Config, *, now: float, timeout: float = 5.0) -> list[Result]:
    """With a vault source: each address's ``sys/health``, named active, standby, sealed...

    A sealed, uninitialised or unreachable node fails when no node is active
    (nothing can be read or written), and warns otherwise (the cluster runs,
    degraded). The active node's clock is compared with ours.
    """
    if cfg.source != "vault" or cfg.vault is None:
        return [Result("vault", "info", f"source is {cfg.source}: no Vault to reach")]
    v = cfg.vault
    answers = [(a, _health(a, ca_cert=v.ca_cert, client_cert=v.client_cert,
                           client_key=v.client_key, timeout=timeout)) for a in v.addresses]
    active = any(isinstance(r, tuple) and r[0] == 200 for _a, r in answers)
    results = []
    for address, answer in answers:
        if isinstance(answer, str):
            results.append(Result("vault", "warn" if active else "fail", f"{address}: {answer}",
                                  hint="check the address, the network and [vault] ca_cert"))
            continue
        code, doc = answer
        state = _VAULT_STATES.get(code, f"HTTP {code}")
        version = f" (version {doc['version']})" if isinstance(doc.get("version"), str) else ""
        if code == 200:
            results.append(_ok("vault", f"{address}: active{version}"))
            server_time = doc.get("server_time_utc")
            if isinstance(server_time, int | float) and abs(server_time - now) > VAULT_SKEW:
                results.append(Result(
                    "vault", "warn", f"{address}: this clock differs from Vault's by "
                    f"{_duration(abs(server_time - now))}",
                    hint="enable NTP here and on the Vault nodes; token TTLs and max_stale "
                         "drift otherwise"))
        elif code in (429, 473):
            results.append(_ok("vault", f"{address}: {state}{version}"))
        else:
            hint = ("unseal it (vault operator unseal / bao operator unseal)" if code == 503
                    else "initialise it (vault operator init)" if code == 501
                    else "check the node's logs")
            results.append(Result("vault", "warn" if active else "fail",
                                  f"{address}: {state}{version}", hint=hint))
    return results


# -- secrets folder --------------------------------------------------------------------------


def check_secrets_folder(cfg: Config, env: Mapping[str, str], *,
                         tenants: Sequence[str] = ("default",)) -> list[Result]:
    """The secrets folder is readable, and each app file opens with the identities found.

    Identities are found as sops finds them (``age_key_file`` first), never
    asking for a passphrase. Each file is decrypted and its MAC checked;
    the values are dropped. A file that fails is named with the reason
    (which recipients it is encrypted to, a MAC mismatch, a parse error).
    """
    folder = cfg.secrets_dir
    if cfg.source != "sops" or folder is None:
        return [Result("secrets", "info", "no secrets folder configured (source "
                       f"{cfg.source})")]
    if not os.path.isdir(folder) or not os.access(folder, os.R_OK | os.X_OK):
        return [Result("secrets", "fail", f"secrets folder {folder} cannot be read",
                       hint="check MACULA_SECRETS_DIR / secrets_dir and the folder's "
                            "permissions")]
    from .backends._folder import default_identities
    from .backends.envfile import EnvFileBackend
    from .backends.sops import SopsBackend

    source_env = dict(env)
    if cfg.age_key_file:
        source_env[_env.SOPS_AGE_KEY_FILE] = cfg.age_key_file
    identities = default_identities(source_env)
    results: list[Result] = []
    files = 0
    for tenant in tenants:
        sops = SopsBackend(folder, tenant=tenant, identities=identities)
        envfiles = EnvFileBackend(folder, tenant=tenant, identities=identities)
        jobs: list[tuple[str, Callable[[], dict[str, str]]]] = []
        for app in sops.apps():
            jobs.append((sops.path_for(app) or app, _reader(sops.read_app, app)))
        for app in envfiles.apps():
            jobs.append((envfiles.path_for(app), _reader(envfiles.load_all, app)))
        for path, read in jobs:
            files += 1
            try:
                count = len(read())
            except (MaculaError, OSError) as exc:
                hint = getattr(exc, "hint", None) or (
                    "add an identity that matches (SOPS_AGE_KEY_FILE), or re-encrypt the "
                    "file for this node (macula-secrets node add)")
                results.append(Result("secrets", "fail", f"{path}: {_message(exc)}",
                                      hint=hint))
            else:
                results.append(_ok("secrets", f"{path}: decrypts ({count} keys)"))
    if files == 0:
        results.append(Result("secrets", "info", f"secrets folder {folder}: no app files"))
    return results


def _reader(read: Callable[[str], dict[str, str]], app: str) -> Callable[[], dict[str, str]]:
    return lambda: read(app)


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return f"cannot be read ({exc.strerror or exc.__class__.__name__})"
    return " ".join((str(exc) or exc.__class__.__name__).split("\n"))


# -- observability ---------------------------------------------------------------------------


def _sink_reachable(sink: SinkConfig, *, timeout: float) -> str | None:
    """Why ``sink`` cannot take a line now, or ``None`` when it looks ready."""
    import socket

    if sink.type == "file":
        folder = os.path.dirname(sink.path or "/")
        if not os.path.isdir(folder):
            return f"the folder {folder} does not exist"
        target = sink.path if sink.path and os.path.exists(sink.path) else folder
        return None if os.access(target, os.W_OK) else f"{target} is not writable"
    if sink.type == "logging":
        return None
    address = sink.address or ("/dev/log" if sink.type == "syslog"
                               else "/run/systemd/journal/socket")
    if address.startswith("unix://"):
        address = address[len("unix://"):]
    if address.startswith("/"):
        try:
            if not stat.S_ISSOCK(os.stat(address).st_mode):
                return f"{address} is not a socket"
        except OSError as exc:
            return f"{address}: {exc.strerror}"
        if sink.type != "socket":
            return None
        family, target = socket.AF_UNIX, address
    else:
        if sink.type != "socket":
            return None   # UDP: nothing to ask before sending
        host, _, port = address.split("://", 1)[1].rpartition(":")
        return _connects(socket.AF_INET6 if ":" in host else socket.AF_INET,
                         (host.strip("[]"), int(port)), timeout)
    return _connects(family, target, timeout)


def _connects(family: int, target: str | tuple[str, int], timeout: float) -> str | None:
    import socket

    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(target)
        except OSError as exc:
            return f"cannot connect: {exc.strerror or exc.__class__.__name__}"
    return None


def check_observability(cfg: Config, *, timeout: float = 2.0) -> list[Result]:
    """What the server's ``sys/health`` reports besides the store: the audit sinks of the
    configuration (can each take a line now?) and the last ``sync --git`` per tenant."""
    results = []
    if not cfg.audit_sinks:
        results.append(Result("observe", "info", "no audit sinks configured: the server's "
                              "audit lines go to its hash-chained file only"))
    for sink in cfg.audit_sinks:
        what = f"audit sink {sink.name} ({sink.type}, " \
               f"{'required' if sink.required else 'best-effort'})"
        problem = _sink_reachable(sink, timeout=timeout)
        if problem is None:
            results.append(_ok("observe", f"{what}: ready"))
        elif sink.required:
            results.append(Result("observe", "fail", f"{what}: {problem}",
                                  hint="a running server refuses every request (503) until "
                                       "this sink takes lines: start its collector or fix "
                                       "[[audit.sinks]]"))
        else:
            results.append(Result("observe", "warn", f"{what}: {problem}",
                                  hint="its lines are counted as failures "
                                       "(macula_audit_sink_failures_total)"))
    synced: list[tuple[str, str, float]] = []
    if os.path.exists(cfg.store_path):
        with contextlib.suppress(sqlite3.Error):
            conn = _connect_ro(cfg.store_path)
            try:
                synced = [(str(t), str(c), float(at)) for t, c, at in conn.execute(
                    "SELECT tenant, commit_id, synced_at FROM synced_commits ORDER BY tenant")]
            finally:
                conn.close()
    for tenant, commit, at in synced:
        results.append(_ok("observe", f"tenant {tenant}: last sync --git applied commit "
                           f"{commit[:12]} at {_utc(at)}"))
    if not synced:
        results.append(Result("observe", "info", "no sync --git recorded in the store yet"))
    return results


# -- all ---------------------------------------------------------------------------------------


def run_checks(cfg: Config, env: Mapping[str, str], *, tenant: str | None = None,
               now: float | None = None, ask: Callable[[str], str] | None = None,
               vault_timeout: float = 5.0) -> list[Result]:
    """Every check, in the order a person fixes things: keys, store, audit, clock, TPM,
    Vault, secrets folder.

    ``tenant`` limits the store and secrets folder checks to one tenant;
    by default every tenant of the store is decrypted, and the folder is
    checked for the configured tenant and every tenant the store has.
    """
    now = time.time() if now is None else now
    results = check_permissions(cfg, env)
    results += check_store(cfg, env, tenants=None if tenant is None else [tenant], ask=ask)
    results += check_audit(cfg)
    results += check_clock(cfg, now=now)
    results += check_tpm(cfg, env)
    results += check_vault(cfg, now=now, timeout=vault_timeout)
    results += check_secrets_folder(cfg, env, tenants=_folder_tenants(cfg, tenant))
    results += check_observability(cfg)
    return results


def _folder_tenants(cfg: Config, tenant: str | None) -> list[str]:
    if tenant is not None:
        return [tenant]
    tenants = [cfg.tenant]
    if os.path.exists(cfg.store_path) and cfg.secrets_dir is not None:
        with contextlib.suppress(sqlite3.Error):
            conn = _connect_ro(cfg.store_path)
            try:
                rows = conn.execute("SELECT DISTINCT tenant FROM secrets").fetchall()
            finally:
                conn.close()
            tenants += sorted(str(r[0]) for r in rows if str(r[0]) != cfg.tenant
                              and os.path.isdir(os.path.join(cfg.secrets_dir, str(r[0]))))
    return tenants


def failed(results: Iterable[Result]) -> bool:
    """Whether any result is a failure (``doctor`` exits 1)."""
    return any(r.status == "fail" for r in results)
