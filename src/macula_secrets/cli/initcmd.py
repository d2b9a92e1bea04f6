"""``macula-secrets init``: the first-run wizard (age identity, master key, recovery).

A thin shell like the other commands. It collects the answers (flags, else
questions on a terminal, else the defaults), checks all of them, and only
then writes: the age identity (``keys.age``), the store with a plain key
file (``Secrets.open``), the move of the key to the chosen provider
(``_masterkey.migrate``), the escrow copy (``keys.escrow``), the recovery
shares (``sharecmds.emit_shares``) and last the ``[master_key]`` table of
``<home>/config.toml``. When a step after the store's creation fails on a
new home, what this run created in the home is removed again (key files are
zeroed first), so the command can simply be run again.

An initialised home (``store.db`` exists) is refused unless ``--force``,
which only does what is missing: it never replaces an identity, a key file,
a sealed key, an escrow copy or a ``[master_key]`` table, and it moves a
key only out of a plain key file (what an interrupted ``init`` leaves).

Messages and the summary name paths, public keys and providers; never key
material or a passphrase.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from typing import TYPE_CHECKING

from .. import _env
from . import exitcodes as X
from .output import CommandError, note

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .._config import Config
    from ..keys.age import AgeIdentity

__all__ = ["run"]

PROVIDERS = ("file", "passphrase", "identity", "tpm")
TPM_DEVICE = "/dev/tpmrm0"
"""A TPM is offered when this exists (the kernel's resource manager) or ``--tcti`` is given."""


@dataclasses.dataclass
class _Plan:
    """Every answer, checked, before anything is written."""

    home: str
    config_path: str
    initialised: bool
    identity_path: str
    identity_action: str  # "generate", "import" or "reuse"
    identity_text: str | None  # what to write for "import"
    new_identity: AgeIdentity | None
    public_keys: list[str]
    provider: str | None  # None: keep the [master_key] table that exists
    migrate: bool = False
    passphrase: str | None = None
    passphrase_file: str | None = None
    node_identity: str | None = None
    tcti: str | None = None
    pcrs: str | None = None
    shares: int | None = None
    threshold: int | None = None
    shares_dir: str | None = None
    recovery: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Done:
    """What the run wrote, for the summary."""

    share_files: list[str] = dataclasses.field(default_factory=list)
    shares_printed: bool = False
    escrow: str | None = None
    table_written: bool = False
    store_created: bool = False


def _stdin_is_tty() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _answer(prompt: str) -> str:
    """One line typed at the terminal; the question goes to stderr, like ssh-keygen's."""
    sys.stderr.write(prompt)
    sys.stderr.flush()
    try:
        return input()
    except EOFError:
        raise CommandError("no answer: end of input",
                           hint="run init with --yes and flags to answer without "
                                "questions") from None


def _read_hidden(prompt: str) -> str:
    """A passphrase typed at the terminal, not echoed (or from $MACULA_SECRETS_ASKPASS)."""
    from ..keys._discovery import read_passphrase_from_terminal

    return read_passphrase_from_terminal(prompt)


class _Questions:
    """Ask on a terminal; without one (or with ``--yes``) every answer is its default."""

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive

    def ask(self, question: str, default: str) -> str:
        if not self.interactive:
            return default
        return _answer(f"{question} [{default}]: ").strip() or default

    def choose(self, question: str, default: str, choices: tuple[str, ...]) -> str:
        if not self.interactive:
            return default
        for _ in range(3):
            answer = self.ask(question, default)
            if answer in choices:
                return answer
            sys.stderr.write(f"  please answer one of: {', '.join(choices)}\n")
        raise CommandError("no valid answer after three tries")

    def yes(self, question: str) -> bool:
        return self.ask(question, "y/N").lower() in ("y", "yes")


def run(args: argparse.Namespace) -> int:
    env = {k: v for k, v in os.environ.items() if k != _env.MACULA_SECRETS_KEY_PROVIDER}
    questions = _Questions(not args.yes and _stdin_is_tty())
    plan = _make_plan(args, env, questions)
    done = _Done()
    _write_identity(plan)
    _set_up_store(plan, env, done)
    _print_summary(plan, done, args)
    return X.OK


# -- planning: every answer checked before anything is written -------------------------


def _make_plan(args: argparse.Namespace, env: dict[str, str], q: _Questions) -> _Plan:
    from .._config import load_config

    if env.get(_env.MACULA_SECRETS_MASTER_KEY):
        raise CommandError(f"{_env.MACULA_SECRETS_MASTER_KEY} is set: the master key comes "
                           "from the environment, so there is nothing to set up",
                           hint="unset it to keep the key in the home folder instead")
    cfg = load_config(env, home=args.home, source="none")
    home = cfg.home
    config_path = os.path.join(home, "config.toml")
    if cfg.config_file is not None and os.path.abspath(cfg.config_file) != config_path:
        raise CommandError(f"the configuration in use is {cfg.config_file}, so the table init "
                           f"writes to {config_path} would not be read",
                           hint=f"unset {_env.MACULA_SECRETS_CONFIG} (or run init from another "
                                "folder than the one with macula-secrets.toml)")
    initialised = os.path.exists(cfg.store_path)
    if initialised and not args.force:
        raise CommandError(f"{home} is already initialised ({cfg.store_path} exists)",
                           hint="nothing was changed; `init --force` does only the steps that "
                                "are missing and never replaces a key")
    has_table = cfg.config_file is not None and _has_master_key_table(cfg.config_file)
    keep_table = has_table and initialised
    if has_table and not initialised:
        raise CommandError(f"{config_path} already has a [master_key] table; init does not "
                           "rewrite it", hint="remove the table to let init choose, or let any "
                                              "store command create the store as configured")
    path, action, text, new, public = _plan_identity(args, env, q)
    plan = _Plan(home=home, config_path=config_path, initialised=initialised,
                 identity_path=path, identity_action=action, identity_text=text,
                 new_identity=new, public_keys=public, provider=None)
    if keep_table:
        configured = cfg.master_key.provider
        if args.provider is not None and args.provider != configured:
            raise CommandError(f"{config_path} already names the master key provider "
                               f"{configured or '(found from the files)'}; init does not "
                               "change it", hint="use `macula-secrets key migrate` to move "
                                                 "the key")
        if args.recovery_recipient:
            raise CommandError(f"{config_path} already has a [master_key] table; init does "
                               "not add recovery_recipients to it",
                               hint="add them to the table by hand")
    else:
        _plan_provider(plan, args, env, q, cfg)
    _plan_recovery(plan, args, q)
    return plan


def _has_master_key_table(path: str) -> bool:
    import tomllib

    with open(path, "rb") as f:
        return "master_key" in tomllib.load(f)


def _default_identity_path(env: Mapping[str, str]) -> str:
    named = env.get(_env.SOPS_AGE_KEY_FILE)
    if named:
        return named
    config = env.get(_env.XDG_CONFIG_HOME, "")
    if not os.path.isabs(config):
        config = os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(config, "sops", "age", "keys.txt")


def _age_identities(path: str) -> tuple[str, list[str]]:
    """The text of an age identity file and its public keys; an error if it has none."""
    from ..keys.age import parse_identities

    with open(path, "rb") as f:
        data = f.read(1 << 20)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise CommandError(f"{path} is not an age identity file") from None
    found = parse_identities(text, source=path)
    if not found:
        raise CommandError(f"{path} holds no age identity",
                           hint="an age identity file has AGE-SECRET-KEY-1... lines "
                                "(age-keygen, macula-secrets keygen)")
    return text, [i.recipient for i in found if i.recipient is not None]


def _plan_identity(args: argparse.Namespace, env: Mapping[str, str], q: _Questions
                   ) -> tuple[str, str, str | None, AgeIdentity | None, list[str]]:
    target = os.path.abspath(os.path.expanduser(args.identity_out
                                                or _default_identity_path(env)))
    source = args.import_identity
    if source is None and not os.path.lexists(target):
        source = q.ask("Import an existing age identity file (empty: make a new one)", "") or None
    if source is None:
        if os.path.lexists(target):
            _, public = _age_identities(target)
            return target, "reuse", None, None, public
        from ..keys.age import generate_identity

        new = generate_identity()
        return target, "generate", None, new, [new.recipient or ""]
    source = os.path.abspath(os.path.expanduser(source))
    text, public = _age_identities(source)
    if os.path.lexists(target):
        if os.path.exists(source) and os.path.samefile(source, target):
            return target, "reuse", None, None, public
        _, present = _age_identities(target)
        if set(public) <= set(present):
            return target, "reuse", None, None, public
        raise CommandError(f"{target} exists and holds another age identity; it is not "
                           "replaced", hint="give --identity-out FILE for the imported one")
    return target, "import", text, None, public


def _plan_provider(plan: _Plan, args: argparse.Namespace, env: Mapping[str, str],
                   q: _Questions, cfg: Config) -> None:
    from .._masterkey import chosen_kind

    tpm_present = args.tcti is not None or os.path.exists(TPM_DEVICE)
    offered = PROVIDERS if tpm_present else PROVIDERS[:3]
    current = chosen_kind(cfg, env) if plan.initialised else None
    provider = args.provider
    if provider is None:
        default = current or os.environ.get(_env.MACULA_SECRETS_KEY_PROVIDER) or "file"
        provider = q.choose("Where should the master key live? (" + ", ".join(offered) + ")",
                            default if default in offered else "file", offered)
    if provider not in PROVIDERS:
        raise CommandError(f"unknown master key provider {provider!r}",
                           hint="one of: " + ", ".join(PROVIDERS))
    plan.provider = provider
    if current is not None:
        if current not in (provider, "file"):
            raise CommandError(f"the master key is kept by the {current} provider, not "
                               f"{provider}; init --force moves it only out of a key file",
                               hint=f"use `macula-secrets key migrate --to {provider}`")
        plan.migrate = current != provider
    else:
        plan.migrate = provider != "file"
    if provider == "passphrase":
        _plan_passphrase(plan, args, env)
    elif provider == "identity":
        _plan_node_identity(plan, args, q)
    elif provider == "tpm":
        _plan_tpm(plan, args, q, tpm_present)


def _plan_passphrase(plan: _Plan, args: argparse.Namespace, env: Mapping[str, str]) -> None:
    if args.passphrase_file is not None:
        from ..keys.master import read_private

        path = os.path.abspath(os.path.expanduser(args.passphrase_file))
        try:
            text = read_private(path, "passphrase file").rstrip("\r\n")
        except FileNotFoundError:
            raise CommandError(f"passphrase file {path} does not exist") from None
        if not text:
            raise CommandError(f"passphrase file {path} is empty")
        plan.passphrase_file = path
        return
    if env.get(_env.MACULA_SECRETS_PASSPHRASE):
        return
    if not plan.migrate:
        return  # --force on a store already sealed with a passphrase: nothing to seal
    if not _stdin_is_tty():
        raise CommandError("no passphrase for the master key",
                           hint=f"set {_env.MACULA_SECRETS_PASSPHRASE} or give "
                                "--passphrase-file FILE, or run init in a terminal")
    for _ in range(3):
        first = _read_hidden("passphrase for the master key: ")
        if not first:
            sys.stderr.write("  an empty passphrase cannot seal the key\n")
            continue
        if _read_hidden("the same passphrase again: ") == first:
            plan.passphrase = first
            return
        sys.stderr.write("  the passphrases differ\n")
    raise CommandError("no passphrase: the two entries did not match three times")


def _plan_node_identity(plan: _Plan, args: argparse.Namespace, q: _Questions) -> None:
    node = args.node_identity or q.ask("Node identity to seal the master key to",
                                       plan.identity_path)
    node = os.path.abspath(os.path.expanduser(node))
    plan.node_identity = node
    if node == plan.identity_path and plan.identity_action != "reuse":
        return  # written by this run, checked already
    from ..keys.sealed import IdentitySealer

    IdentitySealer(node).recipient()  # reads and parses it: KeySourceError names the problem


def _plan_tpm(plan: _Plan, args: argparse.Namespace, q: _Questions, present: bool) -> None:
    from ..keys.tpm import DEFAULT_TCTI, TpmSealer, parse_pcrs

    if not present:
        raise CommandError(f"no TPM found ({TPM_DEVICE} does not exist)",
                           hint="give --tcti for another TPM, e.g. "
                                "swtpm:host=127.0.0.1,port=2321, or choose another provider")
    plan.tcti = args.tcti or DEFAULT_TCTI
    pcrs = args.pcrs if args.pcrs is not None else q.ask(
        "PCRs to bind the key to, e.g. sha256:7 (empty: none)", "")
    plan.pcrs = parse_pcrs(pcrs) if pcrs else None
    if plan.migrate:
        # Seal a throw-away value now, so that a TPM that cannot be reached (or a
        # PCR bank it does not have) is found before anything is written.
        TpmSealer(tcti=plan.tcti, pcrs=plan.pcrs).seal(os.urandom(32))


def _plan_recovery(plan: _Plan, args: argparse.Namespace, q: _Questions) -> None:
    from ..keys.age import parse_recipient
    from .sharecmds import check_split_counts

    shares, threshold, folder = args.shares, args.threshold, args.shares_dir
    if (shares is None) != (threshold is None):
        raise CommandError("--shares and --threshold go together",
                           hint="e.g. --shares 3 --threshold 2")
    if shares is None and q.interactive and q.yes("Split the master key into recovery shares?"):
        shares = _number(q.ask("How many shares", "3"))
        threshold = _number(q.ask("How many of them restore the key", "2"))
        folder = folder or q.ask("Folder for the share files (empty: print them)", "") or None
    if shares is not None and threshold is not None:
        check_split_counts(shares, threshold)
        plan.shares, plan.threshold = shares, threshold
        plan.shares_dir = os.path.abspath(os.path.expanduser(folder)) if folder else None
    elif folder is not None:
        raise CommandError("--shares-dir needs --shares and --threshold")
    recipients = list(args.recovery_recipient or [])
    if not recipients and plan.provider is not None:
        answer = q.ask("Recovery recipients for an escrow copy of the master key "
                       "(age1..., comma-separated; empty: none)", "")
        recipients = [r for r in (a.strip() for a in answer.split(",")) if r]
    for text in recipients:
        parse_recipient(text)  # ConfigError quoting the public key (never a private one)
    if recipients and plan.initialised:
        from .._masterkey import RECOVERY_NAME

        escrow = os.path.join(plan.home, RECOVERY_NAME)
        if os.path.lexists(escrow):
            raise CommandError(f"{escrow} exists; init does not replace an escrow copy",
                               hint="move it away first if it is not needed")
    plan.recovery = [r.strip() for r in recipients]


def _number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise CommandError(f"not a whole number: {text!r}") from None


# -- writing ---------------------------------------------------------------------------


def _write_identity(plan: _Plan) -> None:
    from ..keys.master import write_new

    path = plan.identity_path
    if plan.identity_action == "reuse":
        note(f"using the age identity in {path} (it is not changed)")
        return
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    if plan.identity_action == "generate" and plan.new_identity is not None:
        from ..keys.age import write_identity_file

        write_identity_file(path, plan.new_identity)
        note(f"made a new age identity in {path}")
    elif plan.identity_text is not None:
        write_new(path, plan.identity_text)  # 0600, never over an existing file
        note(f"imported the age identity into {path}")


def _set_up_store(plan: _Plan, env: dict[str, str], done: _Done) -> None:
    from .. import Secrets

    home_existed = os.path.isdir(plan.home)
    before = set(os.listdir(plan.home)) if home_existed else set()
    try:
        if plan.provider is None or not plan.initialised:
            # A new store makes a plain key file; an initialised one is opened to
            # check that its key (as configured) still opens it.
            Secrets.open(home=plan.home, source="none", env=env).close()
            done.store_created = not plan.initialised
        if plan.provider is not None:
            cfg = _final_config(plan, env)
            ask = _fixed(plan.passphrase)
            if plan.migrate:
                from .._masterkey import migrate

                old, new = migrate(dataclasses.replace(
                    cfg, master_key=dataclasses.replace(cfg.master_key, provider=None)),
                    env, plan.provider, ask=ask)
                note(f"moved the master key from the {old} to the {new}")
            _recover(plan, cfg, env, done, ask)
            _append_table(plan.config_path, _table(plan))
            done.table_written = True
        elif plan.shares is not None:
            from .._config import load_config

            _recover(plan, load_config(env, home=plan.home, source="none"), env, done, None)
    except BaseException:
        if not plan.initialised:
            _undo(plan.home, before, home_existed, done.share_files)
        raise


def _fixed(passphrase: str | None) -> Callable[[str], str] | None:
    if passphrase is None:
        return None
    return lambda _prompt: passphrase


def _final_config(plan: _Plan, env: Mapping[str, str]) -> Config:
    from .._config import MasterKeyConfig, load_config

    cfg = load_config(env, home=plan.home, source="none")
    return dataclasses.replace(cfg, master_key=MasterKeyConfig(
        provider=plan.provider, passphrase_file=plan.passphrase_file,
        identity=plan.node_identity, tcti=plan.tcti, pcrs=plan.pcrs))


def _recover(plan: _Plan, cfg: Config, env: Mapping[str, str], done: _Done,
             ask: Callable[[str], str] | None) -> None:
    """The escrow copy and the shares, of the key the provider now gives back."""
    if not plan.recovery and plan.shares is None:
        return
    from .._masterkey import RECOVERY_NAME, open_provider

    key = open_provider(cfg, env, ask=ask).candidates()[0]
    if plan.recovery:
        from ..keys.age import parse_recipient
        from ..keys.escrow import write_escrow

        done.escrow = os.path.join(plan.home, RECOVERY_NAME)
        write_escrow(done.escrow, key, [parse_recipient(r) for r in plan.recovery])
        note(f"wrote the escrow copy {done.escrow}")
    if plan.shares is not None and plan.threshold is not None:
        from .sharecmds import emit_shares

        done.share_files = emit_shares(
            key, "master-key", shares=plan.shares, threshold=plan.threshold,
            what=f"the master key of {plan.home} on {os.uname().nodename}",
            out_dir=plan.shares_dir)
        done.shares_printed = plan.shares_dir is None


def _toml_string(text: str) -> str:
    """A TOML basic string (quotes, backslashes and control characters escaped)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch < " " or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _table(plan: _Plan) -> str:
    assert plan.provider is not None  # noqa: S101 - only called with a provider
    lines = ["[master_key]  # written by `macula-secrets init` (docs/keys.md)",
             f"provider = {_toml_string(plan.provider)}"]
    for name in ("passphrase_file", "node_identity", "tcti", "pcrs"):
        value = getattr(plan, name)
        if value is not None:
            key = "identity" if name == "node_identity" else name
            lines.append(f"{key} = {_toml_string(value)}")
    if plan.recovery:
        lines.append("recovery_recipients = ["
                     + ", ".join(_toml_string(r) for r in plan.recovery) + "]")
    return "\n".join(lines) + "\n"


def _append_table(path: str, table: str) -> None:
    """Create ``path`` (0600) with ``table``, or add it after the text that is there."""
    import tomllib

    if not os.path.exists(path):
        _replace(path, table, 0o600)
        return
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text and not text.endswith("\n"):
        text += "\n"
    new = text + ("\n" if text.strip() else "") + table
    tomllib.loads(new)  # the appended table must not break the file
    _replace(path, new, os.stat(path).st_mode & 0o777)


def _replace(path: str, text: str, mode: int) -> None:
    """Write ``text`` to ``path`` atomically (a temporary file renamed over it)."""
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, mode)
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _undo(home: str, before: set[str], home_existed: bool, share_files: list[str]) -> None:
    """Remove what this run created in a new home (key files zeroed first)."""
    from .._masterkey import _remove_key_file

    for path in share_files:
        _remove_key_file(path)
    if not os.path.isdir(home):
        return
    for name in sorted(set(os.listdir(home)) - before):
        path = os.path.join(home, name)
        if os.path.isfile(path) and not os.path.islink(path):
            with contextlib.suppress(OSError):
                _remove_key_file(path)
    if not home_existed:
        with contextlib.suppress(OSError):
            os.rmdir(home)


# -- the summary -----------------------------------------------------------------------


def _describe_key(plan: _Plan) -> tuple[str, str]:
    """Where the master key is, and what to back up for it."""
    from .._masterkey import SEALED_NAME

    sealed = os.path.join(plan.home, SEALED_NAME)
    if plan.provider == "file":
        return (f"plain key file {os.path.join(plan.home, 'master.key')} (mode 0600)",
                "the key file, or the shares/escrow copy: without one the store cannot be "
                "opened on another disk")
    if plan.provider == "passphrase":
        source = ("asked on the terminal" if plan.passphrase is not None
                  else plan.passphrase_file or f"${_env.MACULA_SECRETS_PASSPHRASE}")
        return (f"sealed with a passphrase in {sealed} (passphrase: {source})",
                "the passphrase (somewhere other than this machine)")
    if plan.provider == "identity":
        return (f"sealed to the node identity {plan.node_identity} in {sealed}",
                f"the node identity {plan.node_identity}")
    if plan.provider == "tpm":
        pcrs = f", bound to PCRs {plan.pcrs}" if plan.pcrs else ""
        return (f"sealed to the TPM at {plan.tcti}{pcrs} in {sealed}",
                "nothing opens the key off this TPM: keep the shares or the escrow copy")
    return ("as configured in " + plan.config_path + " (unchanged)", "")


def _print_summary(plan: _Plan, done: _Done, args: argparse.Namespace) -> None:
    where, backup = _describe_key(plan)
    home_flag = f" --home {plan.home}" if args.home else ""
    verb = {"generate": "new", "import": "imported", "reuse": "existing, unchanged"}
    lines = [
        "" if done.shares_printed else None,
        f"macula-secrets is set up in {plan.home}",
        "",
        f"  age identity   {plan.identity_path} ({verb[plan.identity_action]})",
        *(f"  public key     {k}" for k in plan.public_keys),
        "                 (put it in .sops.yaml: creation_rules: - age: <public key>)",
        f"  store          {os.path.join(plan.home, 'store.db')}"
        + (" (new)" if done.store_created else ""),
        f"  master key     {where}",
    ]
    if done.table_written:
        lines.append(f"  configuration  {plan.config_path} ([master_key] provider = "
                     f"{plan.provider})")
    if done.share_files:
        lines.append(f"  shares         {len(done.share_files)} files in {plan.shares_dir} "
                     f"(any {plan.threshold} restore the key)")
    elif done.shares_printed:
        lines.append(f"  shares         {plan.shares}, printed above (any {plan.threshold} "
                     "restore the key)")
    if done.escrow:
        lines.append(f"  escrow copy    {done.escrow} (for {', '.join(plan.recovery)})")
    lines += ["", "Back up now, away from this machine:",
              f"  - the age identity {plan.identity_path}: without it nothing encrypted to "
              f"its public key can be decrypted"]
    if backup:
        lines.append(f"  - {backup}")
    if done.share_files:
        lines.append("  - the share files: one to each custodian, then delete the copies here")
    elif done.shares_printed:
        lines.append("  - the shares printed above: one to each custodian")
    if done.escrow:
        lines.append("  - keep the recovery identity for the escrow copy offline; "
                     "`age -d -i IDENTITY` turns the copy into a key file")
    lines += ["", "Next:",
              f"  macula-secrets put APP KEY{home_flag}      (the value from stdin)",
              f"  macula-secrets get APP KEY{home_flag}",
              f"  macula-secrets encrypt --age {plan.public_keys[0] if plan.public_keys else ''}"
              " -i secrets/APP.enc.yaml"]
    if plan.shares is None and not done.escrow:
        lines.append(f"  macula-secrets key split --shares 3 --threshold 2{home_flag}"
                     "   (recovery shares)")
    if plan.provider == "passphrase" and plan.passphrase_file is None:
        lines.append(f"  (each command asks for the passphrase, or reads "
                     f"${_env.MACULA_SECRETS_PASSPHRASE})")
    sys.stdout.write("\n".join(line for line in lines if line is not None) + "\n")
