"""The ``run`` command: an app's secrets for one process.

Three ways out, all thin shells over :meth:`Secrets.load_all`:

- exec (the default): CMD replaces this process with the secrets as
  environment variables, so its signals and exit status are its own;
- ``--credentials-dir DIR``: each secret is a 0400 file in a fresh 0700
  directory, as systemd's ``LoadCredential=`` does, and this process stays
  to forward signals and remove the directory when CMD ends;
- ``--format dotenv|json|shell``: the variables are printed, for tools that
  want a file; nothing is run.

``--lease NAME=PATH`` adds a dynamic credential (:meth:`Secrets.lease`) as
``NAME_<FIELD>`` variables; this process then stays, as with
``--credentials-dir``, to keep the lease renewed and revoke it when CMD ends.

See docs/run.md and docs/leases.md. Messages name apps, keys, leases and
variables, never values.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
from typing import TYPE_CHECKING, Final, NoReturn

from . import exitcodes as X
from .output import CommandError, note

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from types import TracebackType

    from ..client import Secrets
    from ..leases import Lease

__all__ = ["FORWARDED_SIGNALS", "env_name", "exec_command", "parse_lease", "run",
           "supervise"]

FORWARDED_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
                            signal.SIGUSR1, signal.SIGUSR2)
"""What ``--credentials-dir`` passes on to the child (the rest of the signals
that ask a process to stop, reload or report)."""

# Linux's si_code for a signal the kernel sent, which includes the terminal's
# ^C, ^\ and hang-up: those go to the whole foreground process group, so the
# child has its own copy and forwarding would deliver it twice.
_SI_KERNEL: Final = 0x80

# Python ignores these at start-up, and an ignored signal stays ignored across
# exec: without a reset, `run ... -- yes | head -1` would leave `yes` writing
# to a closed pipe instead of dying of SIGPIPE as it would from a shell.
_RESET_SIGNALS: Final = (signal.SIGPIPE, signal.SIGXFSZ)

_QUOTE: Final = "'"
_QUOTED_QUOTE: Final = "'\\''"  # end the quoted text, a backslashed quote, quote again
_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FRESH_DIR_HINT: Final = ("name a directory that does not exist yet, on a tmpfs such as "
                          "$XDG_RUNTIME_DIR or /run")

_Item = tuple[str, str, str]
"""One secret: (app, key, value)."""


def env_name(key: str, *, prefix: str = "", keep_case: bool = False) -> str:
    """The environment variable for a key: ``database.password`` -> ``DATABASE_PASSWORD``."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", key)
    if not keep_case:
        name = name.upper()
    name = prefix + name
    if not _ENV_NAME.fullmatch(name):
        name = "_" + name
    return name


def parse_lease(text: str) -> tuple[str, str]:
    """``--lease NAME=PATH`` -> ``(NAME, PATH)``; NAME is a variable name, PATH not empty."""
    name, sep, path = text.partition("=")
    path = path.strip("/")
    if not sep or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, not {text!r} "
                                         "(e.g. DB=database/creds/readonly)")
    if not _ENV_NAME.fullmatch(name):
        raise argparse.ArgumentTypeError(f"{name!r} cannot start an environment variable "
                                         "name (letters, digits and '_')")
    return name, path


def run(args: argparse.Namespace) -> int:
    """``run``: check the flag combination, load the secrets, hand them over."""
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    problem = _conflict(args, command)
    if problem is not None:
        return _usage(*problem)
    items = _load(args) if args.app else []
    if args.lease:
        return _run_leased(command, items, args)
    if args.format is not None:
        return _print(items, args)
    if args.credentials_dir is not None:
        files = credential_files(items)
        env: dict[str, str] = {} if args.pristine else dict(os.environ)
        if args.also_env:
            env.update(_env_values(items, args))
        return run_with_credentials(command, env, files, args.credentials_dir)
    env = {} if args.pristine else dict(os.environ)
    env.update(_env_values(items, args))
    exec_command(command, env)


def _conflict(args: argparse.Namespace, command: list[str]) -> tuple[str, str] | None:
    """The first usage error in the flags, as (message, hint), or None.

    Raises:
        CommandError: no command and no ``--format``: exit 1, as ``run``
            always reported it (scripts may test for that status).
    """
    if not args.app and not args.lease:
        return "give --app, --lease or both", "e.g. run --app APP -- CMD ARGS"
    if args.only and not args.app:
        return "--only goes with --app", "--only picks among the app's secrets"
    names = [name for name, _ in args.lease or ()]
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        return f"--lease {twice} is given twice", "give each lease its own NAME"
    if args.format is not None:
        if args.lease:
            return ("--format and --lease do not go together",
                    "a leased credential is revoked when CMD ends: run a command with it")
        if command:
            return ("--format prints the variables and runs no command",
                    "drop the command, or drop --format to run it")
        if args.credentials_dir is not None:
            return ("--format and --credentials-dir do not go together",
                    "--format prints the variables; --credentials-dir runs a command")
        if args.pristine:
            return ("--pristine goes with a command, not --format",
                    "--format prints only the secrets anyway")
    elif args.quiet:
        return "--quiet goes with --format", "e.g. run --app APP --format dotenv --quiet"
    if args.also_env and args.credentials_dir is None:
        return ("--also-env goes with --credentials-dir",
                "without --credentials-dir the secrets are environment variables already")
    if args.format is None and not command:
        raise CommandError("no command given",
                           hint="put the command after '--': run --app APP -- CMD ARGS")
    return None


def _usage(message: str, hint: str) -> int:
    sys.stderr.write(f"macula: error: {message}\nmacula: hint: {hint}\n")
    return X.USAGE


def _load(args: argparse.Namespace) -> list[_Item]:
    """Every live secret of ``--app`` (in order), narrowed to ``--only``."""
    from ..client import Secrets

    items: list[_Item] = []
    with Secrets.open(home=args.home, tenant=args.tenant) as secrets:
        for app in args.app:
            for key, value in secrets.load_all(app).items():
                if not args.only or key in args.only:
                    items.append((app, key, value))
    found = {key for _, key, _ in items}
    missing = [k for k in args.only or () if k not in found]
    if missing:
        if len(args.app) == 1:
            raise CommandError(f"{args.app[0]} has no secret {missing[0]}")
        raise CommandError(f"no app given has a secret {missing[0]}")
    return items


def _env_values(items: Iterable[_Item], args: argparse.Namespace) -> dict[str, str]:
    """``{variable: value}``; two keys with one name, or a NUL byte, are errors."""
    env: dict[str, str] = {}
    origin: dict[str, str] = {}
    for app, key, value in items:
        name = env_name(key, prefix=args.prefix or "", keep_case=args.keep_case)
        if name in origin:
            raise CommandError(f"{origin[name]} and {app}/{key} both become ${name}",
                               hint="use --prefix, or --only to pick one")
        if "\x00" in value:
            raise CommandError(f"{app}/{key} contains a NUL byte and cannot be an "
                               "environment variable")
        origin[name] = f"{app}/{key}"
        env[name] = value
    return env


def credential_files(items: Iterable[_Item]) -> dict[str, str]:
    """``{file name: value}``: a credential is named by its key, exactly as stored.

    ``database.password`` stays ``database.password`` (no upper-casing, no
    prefix): that is the name ``get APP KEY`` uses and the kind of name a
    systemd unit gives ``LoadCredential=``. Key names are valid file names by
    construction (no ``/``, no ``..``, at most 255 bytes), checked again here
    because the directory is written by name.
    """
    from .._names import check_name
    from ..errors import ConfigError

    files: dict[str, str] = {}
    origin: dict[str, str] = {}
    for app, key, value in items:
        try:
            check_name("key", key)
        except ConfigError:
            raise CommandError(f"{app} has a key that cannot be a file name") from None
        if key in origin:
            raise CommandError(f"{origin[key]} and {app}/{key} both become the credential "
                               f"{key}", hint="use --only, or one --app per command")
        origin[key] = f"{app}/{key}"
        files[key] = value
    return files


# -- leases ------------------------------------------------------------------------------


def _run_leased(command: list[str], items: list[_Item], args: argparse.Namespace) -> int:
    """Run ``command`` with each ``--lease`` as variables; revoke the leases when it ends.

    The app's secrets go as in the other modes (variables, or files with
    ``--credentials-dir``). The leases are read once the signals are held,
    so a SIGTERM that comes while they are issued still ends with them
    revoked; their renewal thread starts with those signals blocked too.
    """
    env: dict[str, str] = {} if args.pristine else dict(os.environ)
    directory: str | None = args.credentials_dir
    files = credential_files(items) if directory is not None else {}
    app_env = _env_values(items, args) if directory is None or args.also_env else {}
    env.update(app_env)

    def prepare(stack: contextlib.ExitStack, env: dict[str, str]) -> None:
        from ..client import Secrets

        if directory is not None:
            credentials = stack.enter_context(CredentialsDir(directory))
            credentials.write(files)
            env["CREDENTIALS_DIRECTORY"] = credentials.path
        # Closed before the directory goes: Secrets.close() revokes every lease.
        secrets = stack.enter_context(Secrets.open(home=args.home, tenant=args.tenant))
        env.update(_lease_env(secrets, args.lease, taken=app_env, keep_case=args.keep_case))

    return supervise(command, env, prepare)


def _lease_env(secrets: Secrets, leases: Iterable[tuple[str, str]], *,
               taken: Mapping[str, str], keep_case: bool) -> dict[str, str]:
    """``{NAME_FIELD: value}`` for each lease's credential, read now and kept renewed.

    A field that is not a string (a number, a list) is passed as JSON.
    """
    import json

    env: dict[str, str] = {}
    origin = {name: "a secret of --app" for name in taken}
    for name, path in leases:
        keeper = secrets.lease(path, on_change=_reissued(name, path))
        for field, value in keeper.get().items():
            variable = env_name(f"{name}_{field}", keep_case=keep_case)
            if variable in origin:
                raise CommandError(f"{origin[variable]} and the field {field} of --lease "
                                   f"{name} both become ${variable}",
                                   hint="give the lease another NAME")
            text = value if isinstance(value, str) else json.dumps(value)
            if "\x00" in text:
                raise CommandError(f"the field {field} of --lease {name} contains a NUL "
                                   "byte and cannot be an environment variable")
            origin[variable] = f"the field {field} of --lease {name}"
            env[variable] = text
    return env


def _reissued(name: str, path: str) -> Callable[[Lease], None]:
    """The warning for a lease re-issued mid-run: CMD's environment cannot follow it."""
    def warn(lease: Lease) -> None:
        # From the renewal thread. The new lease is kept renewed and revoked at
        # the end like the first; the one CMD has runs out at its TTL.
        note(f"warning: --lease {name} ({path}) has a new credential (renewal was refused "
             "or the lease reached its max TTL); CMD keeps the previous one, which stops working "
             "when its lease ends: restart CMD to use the new one")

    return warn


# -- export formats ----------------------------------------------------------------------


def _print(items: list[_Item], args: argparse.Namespace) -> int:
    env = _env_values(items, args)
    if args.format == "dotenv":
        from ..backends.envfile import format_dotenv

        text = format_dotenv(env)
    elif args.format == "json":
        import json

        text = json.dumps(env, indent=2, ensure_ascii=False) + "\n"
    else:
        text = format_shell(env)
    if not args.quiet:
        # Said before the values go out, so it is not lost when stdout is a file.
        note("warning: the output holds secret values in plaintext (--quiet to not say this)")
    sys.stdout.write(text)
    return X.OK


def format_shell(env: Mapping[str, str]) -> str:
    """``export NAME='value'`` lines that ``eval`` in a POSIX shell reads back exactly.

    Inside single quotes every character is literal (newlines, ``$``, ``\\``,
    backquotes, Unicode) except ``'`` itself, written as ``'\\''``: close the
    quotes, an escaped quote, reopen. Command substitution strips trailing
    newlines of the whole output only, and the last character is ``\\n``
    after a closing quote, so values keep theirs.
    """
    return "".join(f"export {name}='{value.replace(_QUOTE, _QUOTED_QUOTE)}'\n"
                   for name, value in env.items())


# -- exec ----------------------------------------------------------------------------------


def exec_command(command: list[str], env: dict[str, str]) -> NoReturn:
    """Replace this process with ``command`` in ``env`` (``run``, ``gitops resolve --exec``).

    Signals reach the command directly, its exit status is ours, and no
    parent lingers holding the values. SIGPIPE and SIGXFSZ get their default
    action back first (Python ignores them, and exec would pass that on).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {sig: signal.signal(sig, signal.SIG_DFL) for sig in _RESET_SIGNALS}
    try:
        os.execvpe(command[0], command, env)  # noqa: S606
    except FileNotFoundError:
        raise CommandError(f"command not found: {command[0]}") from None
    except PermissionError:
        raise CommandError(f"command not executable: {command[0]}") from None
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


# -- credentials directory -----------------------------------------------------------------


def run_with_credentials(command: list[str], env: dict[str, str], files: Mapping[str, str],
                         directory: str) -> int:
    """Run ``command`` with ``files`` in ``directory``; remove it when the command ends.

    See :func:`supervise` for signals and the exit status.

    Raises:
        CommandError: the directory exists and is not empty, is a link, is
            another user's, or the command cannot be started.
    """
    def prepare(stack: contextlib.ExitStack, env: dict[str, str]) -> None:
        credentials = stack.enter_context(CredentialsDir(directory))
        credentials.write(files)
        env["CREDENTIALS_DIRECTORY"] = credentials.path

    return supervise(command, env, prepare)


def supervise(command: list[str], env: dict[str, str],
              prepare: Callable[[contextlib.ExitStack, dict[str, str]], None]) -> int:
    """Run ``command`` as our child, with what ``prepare`` set up around it; undo it after.

    ``prepare(stack, env)`` makes what the child needs (a credentials
    directory, leases), adds to ``env`` and pushes the undoing on ``stack``,
    which is closed when the child has ended. The forwarded signals and
    SIGCHLD are blocked from before ``prepare`` runs until the stack is
    closed, and taken with ``sigtimedwait``: a SIGTERM that comes at any
    point is forwarded or, before the child starts or after it ended, waits
    for the clean-up. Threads ``prepare`` starts inherit that mask, so none
    of them takes a signal meant for the child. The child starts with the
    signal mask this process had. Returns the child's exit status, or
    128 + N when signal N ended it (as a shell reports it).

    Raises:
        CommandError: the command cannot be started.
    """
    waited = {*FORWARDED_SIGNALS, signal.SIGCHLD}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, waited)
    try:
        with contextlib.ExitStack() as stack:
            prepare(stack, env)
            pid = _spawn(command, env, old_mask)
            status = _wait_forwarding(pid, waited)
    finally:
        # A signal that came after the child ended has nobody to go to.
        while signal.sigtimedwait(waited, 0) is not None:
            pass
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def _spawn(command: list[str], env: dict[str, str], mask: Iterable[int]) -> int:
    import shutil

    # Looked up in the command's PATH, as execvpe does in exec mode
    # (posix_spawnp would use ours, which --pristine does not pass on).
    path = command[0]
    if "/" not in path:
        path = shutil.which(path, path=os.pathsep.join(os.get_exec_path(env))) or ""
        if not path:
            raise CommandError(f"command not found: {command[0]}")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        # posix_spawn sets the child's mask and signal defaults without
        # running Python code between fork and exec (preexec_fn would).
        return os.posix_spawn(path, command, env, setsigmask=mask, setsigdef=_RESET_SIGNALS)
    except FileNotFoundError:
        raise CommandError(f"command not found: {command[0]}") from None
    except PermissionError:
        raise CommandError(f"command not executable: {command[0]}") from None


def _wait_forwarding(pid: int, waited: Iterable[int]) -> int:
    """Forward signals to ``pid`` until it exits; return its wait status."""
    while True:
        # The timeout is a safety net: SIGCHLD is what normally wakes us.
        info = signal.sigtimedwait(waited, 1.0)
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if info is None or info.si_signo == signal.SIGCHLD:
            continue
        if info.si_pid == pid:
            continue  # the child signalled us: sending it back would loop
        if info.si_code == _SI_KERNEL and os.getpgid(pid) == os.getpgrp():
            continue  # ^C and friends: the terminal sent the child its own copy
        # Not reaped yet, so the pid is still the child's (a zombie at worst).
        os.kill(pid, info.si_signo)


class CredentialsDir:
    """A private directory of 0400 credential files that removes itself on exit.

    The directory is made with mode 0700, or may exist already if it is an
    empty directory of ours (then it is set to 0700). Every step after that
    goes through a descriptor of the directory (``openat`` with
    ``O_EXCL | O_NOFOLLOW``), so a link swapped in under its name is never
    followed. On exit everything in it is removed, what the child left there
    too, and then the directory itself.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._parent, self._name = os.path.split(self.path)
        self._parent_fd = -1
        self._fd = -1

    def __enter__(self) -> CredentialsDir:
        try:
            self._parent_fd = os.open(self._parent, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise CommandError(f"--credentials-dir {self.path}: cannot open {self._parent} "
                               f"({exc.strerror})") from None
        try:
            self._open()
        except BaseException:
            os.close(self._parent_fd)
            raise
        return self

    def _open(self) -> None:
        try:
            os.mkdir(self._name, 0o700, dir_fd=self._parent_fd)
        except FileExistsError:
            pass  # checked below, through a descriptor, like a new one
        except OSError as exc:
            raise CommandError(f"cannot create --credentials-dir {self.path} "
                               f"({exc.strerror})") from None
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
        try:
            fd = os.open(self._name, flags, dir_fd=self._parent_fd)
        except OSError as exc:
            if os.path.islink(self.path):
                what = "is a symbolic link"
            elif isinstance(exc, NotADirectoryError):
                what = "is not a directory"
            else:
                what = f"cannot be opened ({exc.strerror})"
            raise CommandError(f"--credentials-dir {self.path} {what}",
                               hint=_FRESH_DIR_HINT) from None
        try:
            if os.fstat(fd).st_uid != os.geteuid():
                raise CommandError(f"--credentials-dir {self.path} belongs to another user",
                                   hint=_FRESH_DIR_HINT)
            if os.listdir(fd):
                raise CommandError(f"--credentials-dir {self.path} is not empty",
                                   hint=_FRESH_DIR_HINT)
            os.fchmod(fd, 0o700)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def write(self, files: Mapping[str, str]) -> None:
        """Write each value to a new 0400 file named by its key."""
        for name, value in files.items():
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            fd = os.open(name, flags, 0o400, dir_fd=self._fd)
            try:
                os.fchmod(fd, 0o400)  # the umask may have taken bits; never adds any
                data = memoryview(value.encode("utf-8"))
                while data:
                    data = data[os.write(fd, data):]
            finally:
                os.close(fd)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self._remove()
        except OSError as error:
            if exc is not None:
                return  # the first error is the one to report
            raise CommandError(
                f"could not remove the credentials directory {self.path} "
                f"({error.strerror or error.__class__.__name__})",
                hint=f"remove it by hand: rm -rf {self.path}") from None
        finally:
            os.close(self._fd)
            os.close(self._parent_fd)

    def _remove(self) -> None:
        import shutil

        os.fchmod(self._fd, 0o700)  # in case the child took the write bit away
        for name in os.listdir(self._fd):
            try:
                os.unlink(name, dir_fd=self._fd)  # a link is removed, never followed
            except IsADirectoryError:
                shutil.rmtree(name, dir_fd=self._fd)
        os.rmdir(self._name, dir_fd=self._parent_fd)
