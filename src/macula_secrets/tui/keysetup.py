"""The wizard's answers turned into a set-up home, by ``cli/initcmd.py``'s own steps.

No key logic lives here: :func:`set_up` plans with ``initcmd``'s planner
(non-interactive, every answer given) and writes with its writer, so the
TUI makes exactly what ``macula-secrets init --yes`` makes;
:func:`restore_from_shares` restores with ``key combine``'s code. No
Textual either, so the tests call both directly. Summaries name paths,
public keys and providers, never key material or a passphrase.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ..keys.shares import ShareSet

__all__ = ["Method", "Outcome", "has_tpm", "restore_from_shares", "set_up"]

Method = Literal["generate", "import", "passphrase", "tpm"]


@dataclass(frozen=True, slots=True, repr=False)
class Outcome:
    """A finished setup: the environment to open the store with, and what was done.

    ``env`` may hold the passphrase just chosen (so the store opens without
    asking again); it stays in this process and is left out of the repr.
    """

    env: dict[str, str]
    summary: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Outcome(summary={self.summary!r})"


def has_tpm() -> bool:
    """Whether a TPM is present, as ``init`` decides it (the kernel's resource manager)."""
    from ..cli.initcmd import TPM_DEVICE

    return os.path.exists(TPM_DEVICE)


def set_up(home: str | None, env: dict[str, str], method: Method, *,
           import_path: str | None = None, passphrase: str | None = None,
           pcrs: str | None = None) -> Outcome:
    """Set up the home as ``init --yes`` would with these answers.

    ``generate``: a new age identity (an existing one is reused) and a key
    file; ``import``: the age identity file at ``import_path`` and a key
    file; ``passphrase``: the master key sealed with ``passphrase``;
    ``tpm``: sealed to the TPM (bound to ``pcrs`` when given).

    Raises:
        MaculaError: an answer was refused (``CommandError`` says what to do)
            or a step failed; what this run made in a new home was removed.
    """
    from .. import _env
    from ..cli import initcmd

    provider = {"generate": "file", "import": "file", "passphrase": "passphrase",
                "tpm": "tpm"}[method]
    args = argparse.Namespace(
        home=home, yes=True, force=False, identity_out=None,
        import_identity=import_path if method == "import" else None, provider=provider,
        passphrase_file=None, node_identity=None, tcti=None,
        pcrs=(pcrs or None) if method == "tpm" else None, shares=None, threshold=None,
        shares_dir=None, recovery_recipient=None)
    work = {k: v for k, v in env.items() if k != _env.MACULA_SECRETS_KEY_PROVIDER}
    if method == "passphrase":
        if not passphrase:
            from ..cli.output import CommandError

            raise CommandError("an empty passphrase cannot seal the key")
        work[_env.MACULA_SECRETS_PASSPHRASE] = passphrase
    plan = initcmd._make_plan(args, work, initcmd._Questions(False))
    if passphrase:
        # As if typed at init's prompt: the seal uses it and the summary says so.
        plan.passphrase = passphrase
    initcmd._write_identity(plan)
    initcmd._set_up_store(plan, work, initcmd._Done())
    where, backup = initcmd._describe_key(plan)
    verb = {"generate": "new", "import": "imported", "reuse": "existing, unchanged"}
    summary = [f"set up {plan.home}",
               f"age identity {plan.identity_path} ({verb[plan.identity_action]})",
               *(f"public key {k}" for k in plan.public_keys),
               f"master key: {where}"]
    if backup:
        summary.append(f"back up: {backup}")
    return Outcome(work, summary)


def restore_from_shares(home: str | None, env: dict[str, str], shares: ShareSet) -> Outcome:
    """Restore the master key (or an age identity) from enough recovery shares.

    As ``key combine`` does: a master key goes to the home's key file
    (never over another key), an identity to the default identity file.

    Raises:
        MaculaError: the shares do not combine, or the target holds another key.
    """
    from .._config import load_config
    from ..cli import sharecmds

    kind, secret = shares.combine()
    # key combine reads the process environment; the home is named from ``env`` here.
    args = argparse.Namespace(home=load_config(env, home=home, source="none").home,
                              output=None)
    if kind == "master-key":
        sharecmds._restore_master(args, secret)
        what = "master key restored to the home's key file from shares"
    else:
        sharecmds._restore_identity(args, secret)
        what = "age identity restored from shares; a new store key is made"
    return Outcome(dict(env), [what])
