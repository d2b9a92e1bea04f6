"""Every environment variable macula-secrets reads or sets, declared in one place.

The ``SOPS_*`` names are the ones the real ``sops`` (3.11) honours, with the
same meaning, so one shell setup serves both tools. Code that needs a value
takes the environment as a parameter (a ``Mapping[str, str]``) and looks the
name up with these constants; nothing reads ``os.environ`` deep inside the
library. Only the shells (``cli/``, ``server/``) pass ``os.environ`` in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Final

__all__ = [
    "BAO_ADDR",
    "MACULA_DEBUG",
    "MACULA_MAX_INPUT_SIZE",
    "MACULA_SECRETS_CONFIG",
    "MACULA_SECRETS_DIR",
    "MACULA_SECRETS_HOME",
    "MACULA_SECRETS_MAX_VALUE_SIZE",
    "MACULA_SECRETS_OTEL",
    "MACULA_SECRETS_SOURCE",
    "MACULA_SECRETS_TENANT",
    "MACULA_SOPS_EXIT_CODES",
    "SOPS_AGE_KEY",
    "SOPS_AGE_KEY_CMD",
    "SOPS_AGE_KEY_FILE",
    "SOPS_AGE_RECIPIENT",
    "SOPS_AGE_RECIPIENTS",
    "SOPS_AGE_SSH_PRIVATE_KEY_FILE",
    "VAULT_ADDR",
    "VAULT_CACERT",
    "VAULT_CLIENT_CERT",
    "VAULT_CLIENT_KEY",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
]

SOPS_AGE_KEY: Final = "SOPS_AGE_KEY"
"""age identities as text: one ``AGE-SECRET-KEY-1...`` per line.

Empty lines and lines starting with ``#`` are ignored; any other line, even
with stray whitespace, makes the whole variable unusable (sops 3.11 rules).
"""

SOPS_AGE_KEY_FILE: Final = "SOPS_AGE_KEY_FILE"
"""Path of an age identity file (same syntax as ``SOPS_AGE_KEY``).

The path is used as given: no ``~`` expansion, relative to the working
directory. A passphrase-protected identity file (an age file encrypted with
``age -p``) is accepted; the passphrase is asked for on the terminal.
"""

SOPS_AGE_KEY_CMD: Final = "SOPS_AGE_KEY_CMD"
"""A command whose standard output is an age identity file.

Split like a shell would (quotes honoured) and run without a shell, once per
age recipient of the file being decrypted, with ``SOPS_AGE_RECIPIENT`` set.
"""

SOPS_AGE_RECIPIENT: Final = "SOPS_AGE_RECIPIENT"
"""Set (not read) for ``SOPS_AGE_KEY_CMD``: the recipient whose identity is wanted."""

SOPS_AGE_RECIPIENTS: Final = "SOPS_AGE_RECIPIENTS"
"""Comma-separated age recipients to encrypt to when no ``--age`` and no rule apply."""

SOPS_AGE_SSH_PRIVATE_KEY_FILE: Final = "SOPS_AGE_SSH_PRIVATE_KEY_FILE"
"""Path of an OpenSSH private key (ed25519 or RSA) to use as an age identity.

``~/.ssh/id_ed25519`` and ``~/.ssh/id_rsa`` are tried as well, whether or not
this is set.
"""

XDG_CONFIG_HOME: Final = "XDG_CONFIG_HOME"
"""Base of the default identity file ``$XDG_CONFIG_HOME/sops/age/keys.txt``.

When unset or empty, ``~/.config`` is used; a relative path is an error, as
in Go's ``os.UserConfigDir``.
"""

MACULA_MAX_INPUT_SIZE: Final = "MACULA_MAX_INPUT_SIZE"
"""Largest file (bytes) the command line reads; default 64 MiB.

A guard against hostile or mistaken input (a log file passed instead of a
secrets file); raise it for unusually large binary secrets.
"""

MACULA_SOPS_EXIT_CODES: Final = "MACULA_SOPS_EXIT_CODES"
"""Set to ``1`` to exit with sops's status numbers (as ``--sops-exit-codes``)."""

MACULA_DEBUG: Final = "MACULA_DEBUG"
"""Set to show Python tracebacks instead of one-line errors (for bug reports)."""

MACULA_SECRETS_HOME: Final = "MACULA_SECRETS_HOME"
"""Folder holding the master key, ``store.db`` and ``audit.log``.

Default: ``$XDG_DATA_HOME/macula-secrets``, else ``~/.local/share/macula-secrets``.
Overrides ``home`` in the configuration file.
"""

MACULA_SECRETS_CONFIG: Final = "MACULA_SECRETS_CONFIG"
"""Path of the TOML configuration file; when unset, ``./macula-secrets.toml``
and then ``<home>/config.toml`` are tried. No file at all is fine."""

MACULA_SECRETS_DIR: Final = "MACULA_SECRETS_DIR"
"""The GitOps secrets folder (``<app>.enc.yaml`` files); overrides ``secrets_dir``.

Default: ``./secrets`` when that folder exists, else no sops source.
"""

MACULA_SECRETS_SOURCE: Final = "MACULA_SECRETS_SOURCE"
"""Source backend behind the store: ``sops`` or ``none``; overrides ``source``."""

MACULA_SECRETS_TENANT: Final = "MACULA_SECRETS_TENANT"
"""Tenant used when none is named (default ``default``); overrides ``tenant``."""

MACULA_SECRETS_MAX_VALUE_SIZE: Final = "MACULA_SECRETS_MAX_VALUE_SIZE"
"""Largest secret value in bytes (default 1 MiB); overrides ``max_value_size``."""

MACULA_SECRETS_KEY_PROVIDER: Final = "MACULA_SECRETS_KEY_PROVIDER"
"""Where the master key comes from: ``file``, ``env``, ``passphrase``, ``identity`` or
``tpm``; overrides ``[master_key] provider`` (docs/keys.md)."""

MACULA_SECRETS_MASTER_KEY: Final = "MACULA_SECRETS_MASTER_KEY"
"""The master key itself (``MACULA-MASTER-KEY-1...``) for the ``env`` provider: for
containers whose orchestrator injects it. Chosen automatically when set."""

MACULA_SECRETS_PASSPHRASE: Final = "MACULA_SECRETS_PASSPHRASE"  # noqa: S105 - a name
"""Passphrase of a passphrase-sealed master key, for scripts; otherwise it is read from
``[master_key] passphrase_file`` or asked on the terminal (never echoed)."""

MACULA_SECRETS_AGENT_SOCK: Final = "MACULA_SECRETS_AGENT_SOCK"
"""Socket of ``macula-secrets agent`` (default ``$XDG_RUNTIME_DIR/macula-secrets/agent.sock``,
else ``/tmp/macula-secrets-<uid>/agent.sock``); the CLI and ``Secrets.open`` use the agent
when it is there."""

MACULA_SECRETS_ASKPASS: Final = "MACULA_SECRETS_ASKPASS"
"""A program that prints a passphrase (its prompt is its argument), used when there is no
terminal to ask on, as ``SSH_ASKPASS`` is for ssh."""

MACULA_SECRETS_OTEL: Final = "MACULA_SECRETS_OTEL"
"""``on``: spans and metrics through OpenTelemetry (needs the ``otel`` extra); ``off``:
never. Unset: on when the application has set a global OpenTelemetry tracer provider
before ``Secrets.open`` (docs/observability.md)."""

XDG_DATA_HOME: Final = "XDG_DATA_HOME"
"""Base of the default home, ``$XDG_DATA_HOME/macula-secrets``."""

VAULT_ADDR: Final = "VAULT_ADDR"
"""Address of the Vault server for ``source = "vault"``; overrides ``[vault] address``.

The token comes from ``VAULT_TOKEN`` or ``BAO_TOKEN`` unless ``token_file`` or
AppRole files are configured (see :mod:`macula_secrets.backends.vault`).
"""

BAO_ADDR: Final = "BAO_ADDR"
"""OpenBao's name for ``VAULT_ADDR``; used when ``VAULT_ADDR`` is unset or empty."""

VAULT_CACERT: Final = "VAULT_CACERT"
"""CA bundle (PEM) the Vault server certificate is checked with; overrides
``[vault] ca_cert``. Unset: the system CAs. Verification is never switched off."""

VAULT_CLIENT_CERT: Final = "VAULT_CLIENT_CERT"
"""Client certificate (PEM) for a Vault server that requires one (mTLS);
overrides ``[vault] client_cert``. Goes with ``VAULT_CLIENT_KEY``."""

VAULT_CLIENT_KEY: Final = "VAULT_CLIENT_KEY"
"""Private key (PEM, unencrypted) of the client certificate; overrides
``[vault] client_key``."""
