"""Configuration: a TOML file, environment variables over it, embedded defaults under it.

The file is the first found of ``$MACULA_SECRETS_CONFIG``,
``./macula-secrets.toml`` and ``<home>/config.toml``; none at all is fine.
Every setting has a default, so ``Secrets.open()`` works on a bare machine::

    home = "/var/lib/macula-secrets"   # master.key, store.db
    secrets_dir = "/srv/gitops/secrets" # <app>.enc.yaml files (the sops source)
    source = "sops"                     # or "none": the store alone
    tenant = "default"
    max_versions = 10                   # versions kept per key
    max_value_size = 1048576            # bytes
    age_key_file = "/etc/macula/age.key" # identity for the sops files (else as sops finds one)

    [apps.console]
    max_versions = 20

    [vault]                             # for source = "vault" (docs/vault.md)
    address = "https://vault.example:8200"   # or a list; VAULT_ADDR / BAO_ADDR override
    mount = "secret"
    path = "macula/{app}/{key}"
    refresh = 30                        # seconds a confirmed value is served without asking
    max_stale = 3600                    # seconds a cached value may serve while unreachable
    ca_cert = "/etc/macula/vault-ca.pem"     # VAULT_CACERT overrides (else system CAs)
    client_cert = "/etc/macula/client.pem"   # mTLS, with client_key; VAULT_CLIENT_CERT /
    client_key = "/etc/macula/client-key.pem"  # VAULT_CLIENT_KEY override

    [master_key]                        # where the store's master key lives (docs/keys.md)
    provider = "file"                   # file | env | passphrase | identity | tpm | shares
    path = "/var/lib/macula-secrets/master.key"  # default <home>/master.key (.sealed if sealed)
    passphrase_file = "/run/secrets/pw" # passphrase: else $MACULA_SECRETS_PASSPHRASE or a prompt
    identity = "/etc/ssh/ssh_host_ed25519_key"   # identity: this node's age or ssh key
    tcti = "device:/dev/tpmrm0"         # tpm: which TPM; pcrs = "sha256:7" binds to PCRs
    recovery_recipients = ["age1..."]   # escrow copy in <home>/master.key.recovery.age

    [mesh]                              # joining nodes (docs/mesh.md)
    approvals = 2                       # M of the approvers must approve a join
    apps = ["console"]                  # values a joined node gets by default
    [mesh.approvers]
    alice = "age1..."                   # each approver's age or ssh-ed25519 public key

    [[audit.sinks]]                     # copies of the server's audit lines (docs/observability.md)
    type = "socket"                     # file | socket | syslog | journald | logging
    address = "unix:///run/vector/audit.sock"  # or tcp://host:port
    required = true                     # true: a line it does not take fails the request

Unknown settings are an error (a typo must not silently fall back to a
default), named with the file they came from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from . import _env
from .errors import ConfigError

__all__ = ["Config", "MasterKeyConfig", "MeshConfig", "SinkConfig", "VaultConfig", "load_config"]

_KNOWN: Final = frozenset({"home", "secrets_dir", "source", "tenant", "max_versions",
                           "max_value_size", "age_key_file", "apps", "vault", "master_key",
                           "audit", "mesh"})
_MESH_KNOWN: Final = frozenset({"approvals", "approvers", "request_ttl", "apps", "token_ttl"})
_APP_KNOWN: Final = frozenset({"max_versions"})
_VAULT_KNOWN: Final = frozenset({"address", "mount", "path", "namespace", "token_file",
                                 "role_id_file", "secret_id_file", "ca_cert", "client_cert",
                                 "client_key", "refresh",
                                 "max_stale", "timeout", "max_attempts"})
SOURCES: Final = ("sops", "vault", "none")
KEY_PROVIDERS: Final = ("file", "env", "passphrase", "identity", "tpm", "shares")
_KEY_KNOWN: Final = frozenset({"provider", "path", "passphrase_file", "identity", "recipient",
                               "tcti", "pcrs", "recovery_recipients"})
SINK_TYPES: Final = ("file", "socket", "syslog", "journald", "logging")
_SINK_KNOWN: Final = {
    "file": frozenset({"path"}),
    "socket": frozenset({"address", "timeout"}),
    "syslog": frozenset({"address", "facility"}),
    "journald": frozenset({"address"}),
    "logging": frozenset({"logger", "level"}),
}
_SINK_COMMON: Final = frozenset({"type", "name", "required"})
_LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")
SYSLOG_FACILITIES: Final = ("kern", "user", "daemon", "auth", "syslog", "authpriv",
                            *(f"local{i}" for i in range(8)))


@dataclass(frozen=True, slots=True)
class SinkConfig:
    """One ``[[audit.sinks]]`` table: where the server copies its audit lines."""

    type: str
    required: bool
    """``True``: a request fails (503) when this sink does not take its line."""
    name: str | None = None
    path: str | None = None
    """file: the file the lines are appended to."""
    address: str | None = None
    """socket: ``unix:///path`` or ``tcp://host:port``; syslog: a socket path (default
    ``/dev/log``) or ``udp://host:port``; journald: its socket path."""
    timeout: float = 5.0
    """socket: seconds a connect or send may take before the line counts as lost."""
    facility: str = "auth"
    logger: str = "macula_secrets.audit"
    level: str = "info"


@dataclass(frozen=True, slots=True)
class MeshConfig:
    """The ``[mesh]`` table: how a bootstrap approves join requests and what nodes get."""

    approvals: int = 1
    """Approvals a join request needs (M of the approvers)."""
    approvers: Mapping[str, str] = field(default_factory=dict)
    """``[mesh.approvers]``: name -> age or ssh-ed25519 public key; empty: any operator."""
    request_ttl: float = 900.0
    """Seconds a proven request waits for approval before it expires."""
    apps: tuple[str, ...] = ()
    """Apps whose values a node gets when ``node approve`` names none."""
    token_ttl: float | None = 30 * 86400.0
    """Seconds a node's read token on the bootstrap lives (0 in the file: until revoked)."""

    def __post_init__(self) -> None:
        # Here rather than in the file's reader alone: a desk made in code gets the
        # same rule (approvals above 1 are counted only from named approvers).
        n = len(self.approvers)
        if self.approvals < 1 or (n and self.approvals > n) or (self.approvals > 1 and not n):
            raise ConfigError(f"mesh.approvals must be from 1 to the number of "
                              f"[mesh.approvers] ({n})")


@dataclass(frozen=True, slots=True)
class MasterKeyConfig:
    """The ``[master_key]`` table: where the store's master key comes from."""

    provider: str | None = None
    """``None``: chosen by what exists (docs/keys.md, "Choosing a provider")."""
    path: str | None = None
    passphrase_file: str | None = None
    identity: str | None = None
    recipient: str | None = None
    tcti: str | None = None
    pcrs: str | None = None
    recovery_recipients: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class VaultConfig:
    """The ``[vault]`` table, with ``VAULT_ADDR`` / ``BAO_ADDR`` over its address and
    ``VAULT_CACERT`` / ``VAULT_CLIENT_CERT`` / ``VAULT_CLIENT_KEY`` over its TLS files."""

    addresses: tuple[str, ...] = ()
    mount: str = "secret"
    path: str = "macula/{app}/{key}"
    namespace: str | None = None
    token_file: str | None = None
    role_id_file: str | None = None
    secret_id_file: str | None = None
    ca_cert: str | None = None
    """CA bundle the server certificate is checked with (``None``: the system CAs)."""
    client_cert: str | None = None
    """Client certificate (PEM) for a server that requires one; with ``client_key``."""
    client_key: str | None = None
    refresh: float = 30.0
    """Seconds a value confirmed with Vault is served without asking again."""
    max_stale: float = 3600.0
    """Seconds a cached value may be served while Vault is unreachable (0: never)."""
    timeout: float = 10.0
    """Seconds per HTTP request."""
    max_attempts: int = 3
    """Attempts per request for transient failures (the backend's RetryPolicy)."""


@dataclass(frozen=True, slots=True)
class Config:
    """Settings after the file, the environment and the defaults were combined."""

    home: str
    secrets_dir: str | None
    source: str
    tenant: str = "default"
    max_versions: int = 10
    max_value_size: int = 1024 * 1024
    age_key_file: str | None = None
    app_max_versions: dict[str, int] = field(default_factory=dict)
    config_file: str | None = None
    vault: VaultConfig | None = None
    """The vault settings when ``source`` is ``vault`` (else ``None``)."""
    master_key: MasterKeyConfig = field(default_factory=MasterKeyConfig)
    audit_sinks: tuple[SinkConfig, ...] = ()
    """``[[audit.sinks]]``: copies of the server's audit lines, in order."""
    mesh: MeshConfig = field(default_factory=MeshConfig)

    @property
    def store_path(self) -> str:
        return os.path.join(self.home, "store.db")

    @property
    def audit_path(self) -> str:
        return os.path.join(self.home, "audit.log")

    @property
    def master_key_path(self) -> str:
        return os.path.join(self.home, "master.key")


def default_home(env: Mapping[str, str]) -> str:
    """``$XDG_DATA_HOME/macula-secrets``, else ``~/.local/share/macula-secrets``."""
    base = env.get(_env.XDG_DATA_HOME, "")
    if not base or not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "macula-secrets")


def _read_toml(path: str) -> dict[str, object]:
    import tomllib

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration {path}: {exc.strerror}") from None
    return data


def _find_file(env: Mapping[str, str], home: str | None) -> str | None:
    explicit = env.get(_env.MACULA_SECRETS_CONFIG, "")
    if explicit:
        if not os.path.exists(explicit):
            raise ConfigError(f"configuration file {explicit} does not exist "
                              f"(from {_env.MACULA_SECRETS_CONFIG})")
        return explicit
    if os.path.exists("macula-secrets.toml"):
        return os.path.abspath("macula-secrets.toml")
    if home is not None:
        candidate = os.path.join(home, "config.toml")
        if os.path.exists(candidate):
            return candidate
    return None


def _int(value: object, name: str, where: str, *, minimum: int = 1) -> int:
    try:
        number = int(value)  # type: ignore[call-overload]
        assert isinstance(number, int)  # noqa: S101 - for mypy: int() of Any
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {name} must be a whole number") from None
    if isinstance(value, bool) or number < minimum:
        raise ConfigError(f"{where}: {name} must be a whole number of at least {minimum}")
    return number


def _seconds(value: object, name: str, where: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 \
            or (positive and value == 0):
        least = "more than 0" if positive else "0 or more"
        raise ConfigError(f"{where}: vault.{name} must be a number of seconds ({least})")
    return float(value)


def _vault_config(data: object, env: Mapping[str, str], where: str) -> VaultConfig:
    """The ``[vault]`` table checked, with the address from the environment over it."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: [vault] must be a table")
    unknown = set(data) - _VAULT_KNOWN
    if unknown:
        raise ConfigError(f"{where}: unknown setting {sorted(unknown)[0]!r} in [vault]",
                          hint="known settings: " + ", ".join(sorted(_VAULT_KNOWN)))
    text: dict[str, str | None] = {}
    for name in ("mount", "path", "namespace", "token_file", "role_id_file",
                 "secret_id_file", "ca_cert", "client_cert", "client_key"):
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{where}: vault.{name} must be a string")
        text[name] = value
    for name, var in (("ca_cert", _env.VAULT_CACERT), ("client_cert", _env.VAULT_CLIENT_CERT),
                      ("client_key", _env.VAULT_CLIENT_KEY)):
        if env.get(var):
            text[name] = env[var]
    if (text["client_cert"] is None) != (text["client_key"] is None):
        raise ConfigError(f"{where}: vault.client_cert and vault.client_key go together (mTLS)",
                          hint=f"set both, in [vault] or as {_env.VAULT_CLIENT_CERT} and "
                               f"{_env.VAULT_CLIENT_KEY}")
    if (text["role_id_file"] is None) != (text["secret_id_file"] is None):
        raise ConfigError(f"{where}: vault.role_id_file and vault.secret_id_file go together "
                          "(AppRole)")
    raw = data.get("address")
    addresses: tuple[str, ...]
    if raw is None:
        addresses = ()
    elif isinstance(raw, str):
        addresses = (raw,)
    elif isinstance(raw, list) and raw and all(isinstance(a, str) for a in raw):
        addresses = tuple(raw)
    else:
        raise ConfigError(f"{where}: vault.address must be a string or a list of strings")
    env_address = env.get(_env.VAULT_ADDR) or env.get(_env.BAO_ADDR)
    if env_address:
        addresses = (env_address,)
    defaults = VaultConfig()
    return VaultConfig(
        addresses=addresses,
        mount=text["mount"] or defaults.mount,
        path=text["path"] or defaults.path,
        namespace=text["namespace"] or None,
        token_file=text["token_file"],
        role_id_file=text["role_id_file"],
        secret_id_file=text["secret_id_file"],
        ca_cert=text["ca_cert"] or None,
        client_cert=text["client_cert"],
        client_key=text["client_key"],
        refresh=_seconds(data.get("refresh", defaults.refresh), "refresh", where),
        max_stale=_seconds(data.get("max_stale", defaults.max_stale), "max_stale", where),
        timeout=_seconds(data.get("timeout", defaults.timeout), "timeout", where,
                         positive=True),
        max_attempts=_int(data.get("max_attempts", defaults.max_attempts),
                          "vault.max_attempts", where),
    )


def _master_key_config(data: object, env: Mapping[str, str], where: str) -> MasterKeyConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: [master_key] must be a table")
    unknown = set(data) - _KEY_KNOWN
    if unknown:
        raise ConfigError(f"{where}: unknown setting {sorted(unknown)[0]!r} in [master_key]",
                          hint="known settings: " + ", ".join(sorted(_KEY_KNOWN)))
    text: dict[str, str | None] = {}
    for name in ("provider", "path", "passphrase_file", "identity", "recipient", "tcti",
                 "pcrs"):
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{where}: master_key.{name} must be a string")
        text[name] = value or None
    provider = env.get(_env.MACULA_SECRETS_KEY_PROVIDER) or text["provider"]
    if provider is not None and provider not in KEY_PROVIDERS:
        raise ConfigError(f"{where}: master_key.provider must be one of "
                          f"{', '.join(KEY_PROVIDERS)}, not {provider!r}")
    raw = data.get("recovery_recipients", [])
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(r, str) for r in raw):
        raise ConfigError(f"{where}: master_key.recovery_recipients must be a list of strings")
    return MasterKeyConfig(provider=provider, path=text["path"],
                           passphrase_file=text["passphrase_file"], identity=text["identity"],
                           recipient=text["recipient"], tcti=text["tcti"], pcrs=text["pcrs"],
                           recovery_recipients=tuple(raw))


def _mesh_config(data: object, where: str) -> MeshConfig:
    """The ``[mesh]`` table, checked; errors name the field (docs/mesh.md)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: [mesh] must be a table")
    unknown = set(data) - _MESH_KNOWN
    if unknown:
        raise ConfigError(f"{where}: unknown setting {sorted(unknown)[0]!r} in [mesh]",
                          hint="known settings: " + ", ".join(sorted(_MESH_KNOWN)))
    defaults = MeshConfig()
    approvals = _int(data.get("approvals", 1), "mesh.approvals", where)
    approvers = data.get("approvers", {})
    if not isinstance(approvers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in approvers.items()):
        raise ConfigError(f"{where}: [mesh.approvers] must map names to public keys "
                          "(age1... or ssh-ed25519 ...)")
    for who, key in approvers.items():
        if not key.startswith(("age1", "ssh-ed25519 ")):
            raise ConfigError(f"{where}: mesh.approvers.{who} must be an age1... or "
                              "ssh-ed25519 public key")
    apps = data.get("apps", [])
    if not isinstance(apps, list) or not all(isinstance(a, str) for a in apps):
        raise ConfigError(f"{where}: mesh.apps must be a list of app names")
    token_ttl = _seconds(data.get("token_ttl", defaults.token_ttl), "mesh.token_ttl", where)
    request_ttl = _seconds(data.get("request_ttl", defaults.request_ttl), "mesh.request_ttl",
                           where, positive=True)
    try:
        return MeshConfig(approvals=approvals, approvers=dict(approvers),
                          request_ttl=request_ttl, apps=tuple(apps), token_ttl=token_ttl or None)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _audit_sinks(data: object, where: str) -> tuple[SinkConfig, ...]:
    """The ``[audit]`` table's ``[[audit.sinks]]``, checked; errors name the field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: [audit] must be a table")
    unknown = set(data) - {"sinks"}
    if unknown:
        raise ConfigError(f"{where}: unknown setting {sorted(unknown)[0]!r} in [audit]",
                          hint="known settings: sinks")
    raw = data.get("sinks", [])
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise ConfigError(f"{where}: audit.sinks must be an array of tables ([[audit.sinks]])")
    sinks = []
    names: set[str] = set()
    for i, table in enumerate(raw):
        at = f"audit.sinks[{i}]"
        kind = table.get("type")
        if kind not in SINK_TYPES:
            raise ConfigError(f"{where}: {at}.type must be one of {', '.join(SINK_TYPES)}, "
                              f"not {kind!r}")
        known = _SINK_COMMON | _SINK_KNOWN[kind]
        unknown = set(table) - known
        if unknown:
            raise ConfigError(f"{where}: unknown setting {sorted(unknown)[0]!r} in {at} "
                              f"(type {kind})", hint="known settings: " + ", ".join(sorted(known)))
        required = table.get("required")
        if not isinstance(required, bool):
            raise ConfigError(f"{where}: {at}.required must be true or false",
                              hint="true fails requests when the sink does not take a line; "
                                   "false only counts the failure")
        text: dict[str, str | None] = {}
        for name in ("name", "path", "address", "facility", "logger", "level"):
            value = table.get(name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{where}: {at}.{name} must be a non-empty string")
            text[name] = value
        if kind == "file" and (text["path"] is None or not os.path.isabs(text["path"])):
            raise ConfigError(f"{where}: {at}.path must be an absolute file path")
        address = text["address"]
        if kind == "socket" and not (address or "").startswith(("unix:///", "tcp://")):
            raise ConfigError(f"{where}: {at}.address must be unix:///path or tcp://host:port")
        if kind in ("syslog", "journald") and address is not None \
                and not address.startswith(("/", "udp://")):
            raise ConfigError(f"{where}: {at}.address must be a socket path or udp://host:port")
        if kind == "syslog" and (text["facility"] or "auth") not in SYSLOG_FACILITIES:
            raise ConfigError(f"{where}: {at}.facility must be one of "
                              f"{', '.join(SYSLOG_FACILITIES)}")
        level = (text["level"] or "info").lower()
        if level not in _LOG_LEVELS:
            raise ConfigError(f"{where}: {at}.level must be one of {', '.join(_LOG_LEVELS)}")
        timeout = table.get("timeout", 5.0)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigError(f"{where}: {at}.timeout must be a number of seconds (more than 0)")
        name = text["name"] or f"{kind}{i}"
        if name in names:
            raise ConfigError(f"{where}: {at}.name {name!r} is used by another sink")
        names.add(name)
        sinks.append(SinkConfig(
            type=kind, required=required, name=name, path=text["path"],
            address=text["address"], timeout=float(timeout),
            facility=text["facility"] or "auth",
            logger=text["logger"] or "macula_secrets.audit", level=level))
    return tuple(sinks)


def load_config(
    env: Mapping[str, str] | None = None,
    *,
    home: str | None = None,
    secrets_dir: str | None = None,
    source: str | None = None,
    tenant: str | None = None,
) -> Config:
    """Combine arguments (strongest), environment, the TOML file and defaults.

    Raises:
        ConfigError: the file is unreadable or has unknown or malformed settings.
    """
    env = os.environ if env is None else env
    env_home = env.get(_env.MACULA_SECRETS_HOME) or None
    path = _find_file(env, home or env_home)
    data = _read_toml(path) if path else {}
    where = path or "configuration"
    unknown = set(data) - _KNOWN
    if unknown:
        raise ConfigError(f"{where}: unknown setting {sorted(unknown)[0]!r}",
                          hint="known settings: " + ", ".join(sorted(_KNOWN)))

    def pick(arg: str | None, var: str, key: str) -> str | None:
        if arg is not None:
            return arg
        if env.get(var):
            return env[var]
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{where}: {key} must be a string")
        return value

    home_value = pick(home, _env.MACULA_SECRETS_HOME, "home") or default_home(env)
    sdir = pick(secrets_dir, _env.MACULA_SECRETS_DIR, "secrets_dir")
    if sdir is None and os.path.isdir("secrets"):
        sdir = os.path.abspath("secrets")
    if sdir is not None:
        sdir = os.path.abspath(sdir)  # messages and reports name it in full
    src = pick(source, _env.MACULA_SECRETS_SOURCE, "source")
    if src is None:
        src = "sops" if sdir else "none"
    if src not in SOURCES:
        raise ConfigError(f"{where}: source must be one of {', '.join(SOURCES)}, not {src!r}")
    vault = None
    if src == "vault" or "vault" in data:
        vault = _vault_config(data.get("vault", {}), env, where)
        if src == "vault" and not vault.addresses:
            raise ConfigError("source is vault but no vault address is configured",
                              hint=f"set address in [vault], or {_env.VAULT_ADDR}")
        if src != "vault":
            vault = None
    if src == "sops" and sdir is None:
        raise ConfigError("source is sops but no secrets folder is configured",
                          hint=f"set secrets_dir, or {_env.MACULA_SECRETS_DIR}")
    if tenant is not None:
        from ._names import check_name

        check_name("tenant", tenant)  # an explicit "" is an error, not the default
    ten = pick(tenant, _env.MACULA_SECRETS_TENANT, "tenant") or "default"
    max_versions = _int(data.get("max_versions", 10), "max_versions", where)
    size_text = env.get(_env.MACULA_SECRETS_MAX_VALUE_SIZE) or data.get("max_value_size",
                                                                        1024 * 1024)
    max_value_size = _int(size_text, "max_value_size", where)
    age_key_file = data.get("age_key_file")
    if age_key_file is not None and not isinstance(age_key_file, str):
        raise ConfigError(f"{where}: age_key_file must be a string")
    apps = data.get("apps", {})
    if not isinstance(apps, dict):
        raise ConfigError(f"{where}: [apps] must be a table")
    app_max: dict[str, int] = {}
    for app, settings in apps.items():
        if not isinstance(settings, dict) or set(settings) - _APP_KNOWN:
            raise ConfigError(f"{where}: [apps.{app}] accepts only "
                              + ", ".join(sorted(_APP_KNOWN)))
        if "max_versions" in settings:
            app_max[app] = _int(settings["max_versions"], f"apps.{app}.max_versions", where)
    master_key = _master_key_config(data.get("master_key", {}), env, where)
    audit_sinks = _audit_sinks(data.get("audit", {}), where)
    mesh = _mesh_config(data.get("mesh", {}), where)
    return Config(home=os.path.abspath(home_value), secrets_dir=sdir, source=src, tenant=ten,
                  max_versions=max_versions, max_value_size=max_value_size,
                  age_key_file=age_key_file, app_max_versions=app_max, config_file=path,
                  vault=vault, master_key=master_key, audit_sinks=audit_sinks, mesh=mesh)
