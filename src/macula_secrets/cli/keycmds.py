"""``agent``, ``unlock``, ``key migrate`` and ``key escrow``: where the keys live in a session.

``agent start`` runs the agent (in the background unless ``--foreground``),
``agent lock`` makes it forget, ``unlock`` hands it a master key restored
from recovery shares, ``key migrate`` moves the master key between
providers, ``key escrow`` writes the recovery copy now. Messages name
paths, key ids and providers, never key material.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import exitcodes as X
from .output import CommandError, note

if TYPE_CHECKING:
    from .._config import Config
    from ..agent import AgentClient

__all__ = ["parse_duration", "run"]

DEFAULT_TTL = 15 * 60


def run(args: argparse.Namespace) -> int:
    handlers = {
        "agent start": _agent_start, "agent stop": _agent_stop, "agent lock": _agent_lock,
        "agent status": _agent_status, "unlock": _unlock, "key migrate": _migrate,
        "key escrow": _escrow,
    }
    return handlers[args.run](args)


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h`` -> seconds (for ``--ttl``)."""
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (say 90s, 15m or 2h)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("a duration must be more than 0")
    return value


# -- agent -----------------------------------------------------------------------------


def _socket(args: argparse.Namespace) -> str:
    from ..agent import socket_path

    return str(getattr(args, "socket", None) or socket_path(os.environ))


def _client(args: argparse.Namespace) -> AgentClient:
    from ..agent import AgentClient

    client = AgentClient(_socket(args))
    try:
        if not os.path.exists(client.path):
            raise FileNotFoundError(client.path)
        client.status()  # a folder that is not private is a KeySourceError, and says so
    except OSError:
        raise CommandError(f"no agent runs on {client.path}",
                           hint="start one: macula-secrets agent start") from None
    return client


def _agent_start(args: argparse.Namespace) -> int:
    from ..agent import AgentClient
    from ..agent.server import serve

    path = _socket(args)
    ttl = args.ttl
    if args.foreground:
        serve(path, ttl, ready=lambda: note(
            f"agent ready on {path} (pid {os.getpid()}); it forgets keys {_human(ttl)} "
            "after they are unlocked"))
        return X.OK
    client = AgentClient(path)
    if os.path.exists(path) and client.running():
        raise CommandError(f"an agent already runs on {path}",
                           hint="macula-secrets agent lock, or agent stop")
    command = [sys.executable, "-m", "macula_secrets", "agent", "start", "--foreground",
               "--ttl", str(ttl), "--socket", path]
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    deadline = time.monotonic() + 10.0
    while not (os.path.exists(path) and client.running()):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise CommandError(f"the agent did not start on {path}",
                               hint="run `macula-secrets agent start --foreground` to see why")
        time.sleep(0.05)
    sys.stdout.write(f"{path}\n")
    note(f"agent started (pid {proc.pid}); it forgets keys {_human(ttl)} after they are "
         "unlocked, or at `macula-secrets agent lock`")
    from ..agent import socket_path

    if path != socket_path({k: v for k, v in os.environ.items()
                            if k != "MACULA_SECRETS_AGENT_SOCK"}):
        note(f"other commands find it with: export MACULA_SECRETS_AGENT_SOCK={path}")
    return X.OK


def _agent_stop(args: argparse.Namespace) -> int:
    client = _client(args)
    client.stop()
    note("agent stopped; it forgot every key")
    return X.OK


def _agent_lock(args: argparse.Namespace) -> int:
    client = _client(args)
    forgot = client.lock()
    note(f"agent locked: forgot {forgot} unlocked key{'s' if forgot != 1 else ''}")
    return X.OK


def _agent_status(args: argparse.Namespace) -> int:
    client = _client(args)
    status = client.status()
    if getattr(args, "json", False):
        import json

        doc = {"socket": client.path, "pid": status["pid"], "held": status["held"],
               "ttl_seconds": float(status["ttl"])}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return X.OK
    sys.stdout.write(f"agent on {client.path}: pid {status['pid']}, holds {status['held']} "
                     f"unlocked key{'s' if status['held'] != 1 else ''}, forgets each "
                     f"{_human(float(status['ttl']))} after it was unlocked\n")
    return X.OK


def _human(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"


# -- unlock ----------------------------------------------------------------------------


def _unlock(args: argparse.Namespace) -> int:
    """Restore the master key from shares into the agent only: no key file is written."""
    from ..keys.sealed import FixedKey, HeldKey
    from ..localstore import barrier
    from ..localstore.store import LocalStore
    from .sharecmds import read_shares

    cfg = _config(args)
    client = _client(args)
    if not os.path.exists(cfg.store_path):
        raise CommandError(f"no store at {cfg.store_path} to unlock")
    kind, secret = read_shares(args.files)
    if kind != "master-key":
        raise CommandError("these shares restore an age identity, not a master key",
                           hint="restore it with `macula-secrets key combine`")
    LocalStore(cfg.store_path, FixedKey(secret, "the key from the recovery shares")).close()
    client.put(HeldKey(cfg.store_path).name, secret)
    note(f"store {cfg.store_path} unlocked (key id {barrier.key_id(secret).hex()[:16]}): the "
         "agent holds its master key, no key file was written")
    return X.OK


# -- key migrate / key escrow ----------------------------------------------------------


def _migrate(args: argparse.Namespace) -> int:
    from .._masterkey import chosen_kind, migrate

    cfg = _config(args)
    env = os.environ
    before = chosen_kind(cfg, env)
    old, new = migrate(cfg, env, args.to, keep_old=args.keep_old, ask=_asker(before))
    note(f"master key moved from {old} to {new}")
    if cfg.master_key.provider is not None and cfg.master_key.provider != args.to:
        note(f"set [master_key] provider = \"{args.to}\" in {cfg.config_file} (it names "
             f"{cfg.master_key.provider})")
    elif args.keep_old:
        note(f"the old key was kept: set [master_key] provider = \"{args.to}\", or the old "
             "one is still used")
    return X.OK


def _asker(before: str) -> Callable[[str], str]:
    """Passphrase prompts in the order ``migrate`` needs them: old, new, new again."""
    from ..keys._discovery import read_passphrase_from_terminal

    prompts = (["current master key passphrase: "] if before == "passphrase" else []) + [
        "new master key passphrase: ", "new master key passphrase again: "]
    asked = iter(prompts)

    def ask(_prompt: str) -> str:
        return read_passphrase_from_terminal(next(asked, "master key passphrase: "))

    return ask


def _escrow(args: argparse.Namespace) -> int:
    from .._masterkey import RECOVERY_NAME, open_provider
    from ..keys.age import parse_recipient
    from ..keys.escrow import write_escrow
    from ..localstore import barrier

    cfg = _config(args)
    recipients = args.recipient or list(cfg.master_key.recovery_recipients)
    if not recipients:
        raise CommandError("no recovery recipient",
                           hint="give --recipient age1..., or set [master_key] "
                                "recovery_recipients")
    parsed = [parse_recipient(r) for r in recipients]
    key = open_provider(cfg, os.environ).candidates()[0]
    path = os.path.join(cfg.home, RECOVERY_NAME)
    write_escrow(path, key, parsed)
    sys.stdout.write(path + "\n")
    note(f"escrow copy of the master key (key id {barrier.key_id(key).hex()[:16]}) written "
         f"for {len(parsed)} recovery recipient{'s' if len(parsed) != 1 else ''}; recover "
         f"with: age -d -i RECOVERY_IDENTITY {path} > master.key")
    return X.OK


def _config(args: argparse.Namespace) -> Config:
    from .._config import load_config

    return load_config(os.environ, home=getattr(args, "home", None))
