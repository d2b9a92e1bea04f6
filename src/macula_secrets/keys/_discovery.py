"""Where sops looks for age identities, and how it combines what it finds.

Part of the keys layer; the public names are re-exported by
:mod:`macula_secrets.keys.age`. This follows sops 3.11 (SOPS_FORMAT.md
section 6): every source is read and the identities are combined, a source
that fails is recorded and skipped, and decryption fails only when no
identity works. The sources, in the order they are tried:

1. ``SOPS_AGE_SSH_PRIVATE_KEY_FILE``, then ``~/.ssh/id_ed25519`` and
   ``~/.ssh/id_rsa`` whenever they exist;
2. ``SOPS_AGE_KEY`` (identities as text);
3. ``SOPS_AGE_KEY_FILE`` (a path, used as given);
4. ``$XDG_CONFIG_HOME/sops/age/keys.txt``, else ``~/.config/sops/age/keys.txt``;
5. ``SOPS_AGE_KEY_CMD``, run once per recipient with ``SOPS_AGE_RECIPIENT``.

(sops reads sources 2 to 5 in random order, Go map order; the order only
matters for speed and for when a passphrase is asked.)

A source whose content is an age file (it starts with ``age-encryption.org``
or ``-----BEGIN AGE``) is a passphrase-protected identity file; it is
unlocked only if no plain identity matched, with a passphrase asked on the
terminal. Linux paths only: sops uses other config directories on macOS and
Windows.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from macula_secrets import _env
from macula_secrets.errors import FormatError, KeySourceError, MaculaError, NoMatchingKeyError
from macula_secrets.keys import age as _age

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Final, TextIO

    from macula_secrets.keys.age import AgeIdentity

__all__ = ["IdentitySources", "read_passphrase_from_terminal"]

MAX_SOURCE_SIZE: Final = 16 * 1024 * 1024
"""Largest identity source read (sops reads at most as much of an encrypted one)."""

_DEFAULT_KEY_FILE: Final = ("sops", "age", "keys.txt")


def read_passphrase_from_terminal(prompt: str, *, stdin: TextIO | None = None) -> str:
    """Ask for a passphrase on the terminal, without echoing it.

    Raises:
        KeySourceError: standard input is not a terminal, so nobody can answer.
    """
    stream = sys.stdin if stdin is None else stdin
    askpass = os.environ.get(_env.MACULA_SECRETS_ASKPASS)
    if (stream is None or not stream.isatty()) and askpass:
        return _askpass(askpass, prompt)
    if stream is None or not stream.isatty():
        raise KeySourceError(
            "cannot ask for a passphrase: standard input is not a terminal",
            hint="run the command in a terminal, or use an identity file without a passphrase",
        )
    import getpass

    try:
        return getpass.getpass(prompt)
    except EOFError:
        raise KeySourceError("no passphrase given: end of input") from None


def _askpass(program: str, prompt: str) -> str:
    """The first line a passphrase program prints (``$MACULA_SECRETS_ASKPASS PROMPT``)."""
    import subprocess

    try:
        done = subprocess.run([program, prompt], capture_output=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KeySourceError(f"cannot run the passphrase program {program}: {exc}") from None
    if done.returncode != 0:
        raise KeySourceError(f"the passphrase program {program} exited with {done.returncode}")
    return done.stdout.decode("utf-8", "replace").split("\n", 1)[0].rstrip("\r")


class _Locked:
    """A passphrase-protected identity file, unlocked at most once."""

    __slots__ = ("contents", "error", "identities", "location")

    def __init__(self, location: str, contents: bytes) -> None:
        self.location = location
        self.contents = contents
        self.identities: list[AgeIdentity] | None = None
        self.error: KeySourceError | None = None


class _Loaded:
    """What reading some sources produced: identities, locked files, errors, empty places."""

    __slots__ = ("errors", "identities", "locked", "unused")

    def __init__(self) -> None:
        self.identities: list[AgeIdentity] = []
        self.locked: list[_Locked] = []
        self.errors: list[str] = []
        self.unused: list[str] = []

    def add_text(self, location: str, data: bytes) -> None:
        """Parse identity text from ``location``, as sops's ``unwrapIdentities``."""
        if data[:14] in (b"age-encryption", b"-----BEGIN AGE"):
            self.locked.append(_Locked(location, data))
            return
        try:
            found = _age.parse_identities(data.decode("utf-8", "surrogateescape"), source=location)
        except KeySourceError as exc:
            self.errors.append(str(exc))
            return
        self.identities += found
        if not found:
            self.unused.append(location)


def _read_file(path: str | os.PathLike[str], *, label: str) -> bytes:
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_SOURCE_SIZE + 1)
    except OSError as exc:
        raise KeySourceError(f"{label}: cannot read {path}: {exc.strerror}") from exc
    if len(data) > MAX_SOURCE_SIZE:
        raise KeySourceError(f"{label}: {path} is larger than {MAX_SOURCE_SIZE} bytes")
    return data


class IdentitySources:
    """The age identities available to one process, found as sops finds them.

    Build it with :meth:`from_environment`. Static sources (SSH keys, the
    variables and files) are read once, on first use, and cached; the
    ``SOPS_AGE_KEY_CMD`` command runs again for every recipient. Not
    thread-safe: use one per thread, or lock around it.
    """

    __slots__ = (
        "_config_dir",
        "_config_error",
        "_env",
        "_home",
        "_read_passphrase",
        "_static",
    )

    def __init__(
        self,
        env: Mapping[str, str],
        home: str | os.PathLike[str],
        *,
        read_passphrase: Callable[[str], str] | None = read_passphrase_from_terminal,
    ) -> None:
        # Plain strings, not pathlib: importing pathlib costs more start-up
        # time than a decrypt can spare.
        self._env = dict(env)
        self._home = os.fspath(home)
        self._read_passphrase = read_passphrase
        self._static: _Loaded | None = None
        xdg = self._env.get(_env.XDG_CONFIG_HOME, "")
        self._config_error: str | None = None
        if not xdg:
            self._config_dir: str | None = os.path.join(self._home, ".config")
        elif not os.path.isabs(xdg):
            self._config_dir = None
            self._config_error = (
                f"user config directory is unknown: {_env.XDG_CONFIG_HOME} is relative"
            )
        else:
            self._config_dir = xdg

    @classmethod
    def from_environment(
        cls,
        env: Mapping[str, str],
        home: str | os.PathLike[str],
        *,
        read_passphrase: Callable[[str], str] | None = read_passphrase_from_terminal,
    ) -> IdentitySources:
        """Find identities as sops does, given the environment and the home directory.

        Nothing is read until the identities are first needed.
        ``read_passphrase(prompt)`` unlocks passphrase-protected identity files;
        it defaults to asking on the terminal, and ``None`` means never ask.
        """
        return cls(env, home, read_passphrase=read_passphrase)

    @property
    def default_key_file(self) -> str | None:
        """``<config dir>/sops/age/keys.txt``, or ``None`` if the config dir is unknown."""
        return None if self._config_dir is None else os.path.join(
            self._config_dir, *_DEFAULT_KEY_FILE
        )

    def _load_static(self) -> _Loaded:
        if self._static is not None:
            return self._static
        loaded = _Loaded()
        env = self._env
        ssh_file = env.get(_env.SOPS_AGE_SSH_PRIVATE_KEY_FILE)
        if ssh_file is not None:
            self._add_ssh(loaded, ssh_file, label=_env.SOPS_AGE_SSH_PRIVATE_KEY_FILE)
        else:
            loaded.unused.append(_env.SOPS_AGE_SSH_PRIVATE_KEY_FILE)
        for name in ("id_ed25519", "id_rsa"):
            path = os.path.join(self._home, ".ssh", name)
            if os.path.exists(path):
                self._add_ssh(loaded, str(path), label=str(path))
            else:
                loaded.unused.append(str(path))

        key_text = env.get(_env.SOPS_AGE_KEY)
        if key_text is not None:
            loaded.add_text(_env.SOPS_AGE_KEY, key_text.encode("utf-8", "surrogateescape"))
        else:
            loaded.unused.append(_env.SOPS_AGE_KEY)

        key_file = env.get(_env.SOPS_AGE_KEY_FILE)
        if key_file is not None:
            try:
                data = _read_file(key_file, label=_env.SOPS_AGE_KEY_FILE)
            except KeySourceError as exc:
                loaded.errors.append(str(exc))
            else:
                loaded.add_text(_env.SOPS_AGE_KEY_FILE, data)
        else:
            loaded.unused.append(_env.SOPS_AGE_KEY_FILE)

        if _env.SOPS_AGE_KEY_CMD not in env:
            loaded.unused.append(_env.SOPS_AGE_KEY_CMD)

        default = self.default_key_file
        if default is not None:
            try:
                data = _read_file(default, label="default identity file")
            except KeySourceError as exc:
                if os.path.exists(default):
                    loaded.errors.append(str(exc))
            else:
                loaded.add_text(str(default), data)
        self._static = loaded
        return loaded

    @staticmethod
    def _add_ssh(loaded: _Loaded, path: str, *, label: str) -> None:
        try:
            data = _read_file(path, label=label)
            loaded.identities.append(_age.parse_ssh_identity(data, source=path))
        except KeySourceError as exc:
            loaded.errors.append(str(exc))

    def _run_command(self, recipient: str) -> _Loaded:
        loaded = _Loaded()
        command = self._env.get(_env.SOPS_AGE_KEY_CMD)
        if command is None:
            return loaded
        import shlex
        import subprocess

        label = _env.SOPS_AGE_KEY_CMD
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            loaded.errors.append(f"{label}: cannot split the command: {exc}")
            return loaded
        if not argv:
            loaded.errors.append(f"{label}: the command is empty")
            return loaded
        env = dict(self._env)
        env[_env.SOPS_AGE_RECIPIENT] = recipient
        try:
            # Like Go's exec.Command(...).Output(): no shell, no stdin, and
            # stderr captured rather than shown.
            result = subprocess.run(
                argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False
            )
        except OSError as exc:
            loaded.errors.append(f"{label}: cannot run {argv[0]}: {exc.strerror}")
            return loaded
        if result.returncode != 0:
            loaded.errors.append(f"{label}: {argv[0]} exited with status {result.returncode}")
            return loaded
        if len(result.stdout) > MAX_SOURCE_SIZE:
            loaded.errors.append(f"{label}: output is larger than {MAX_SOURCE_SIZE} bytes")
            return loaded
        loaded.add_text(label, result.stdout)
        return loaded

    def identities_for(self, recipient: str) -> list[AgeIdentity]:
        """Return the unlocked identities to try for ``recipient``.

        The cached static identities plus, when ``SOPS_AGE_KEY_CMD`` is set,
        what the command prints for this recipient. Passphrase-protected files
        are not unlocked here; :meth:`unwrap_data_key` does that when needed.
        """
        return self._load_static().identities + self._run_command(recipient).identities

    @property
    def errors(self) -> list[str]:
        """One line per static source that failed to load (no secrets)."""
        return list(self._load_static().errors)

    def _unlock(self, locked: _Locked) -> list[AgeIdentity]:
        # One attempt per file, so one prompt: a failure is remembered and reported again.
        if locked.error is not None:
            raise locked.error
        if locked.identities is None:
            try:
                locked.identities = self._try_unlock(locked)
            except KeySourceError as exc:
                locked.error = exc
                raise
        return locked.identities

    def _try_unlock(self, locked: _Locked) -> list[AgeIdentity]:
        try:
            _, stanzas = _age._inspect(locked.contents, max_size=None)
        except FormatError as exc:  # LimitError too
            raise KeySourceError(
                f"malformed encrypted identity file {locked.location}: {exc}"
            ) from exc
        if len(stanzas) != 1 or not stanzas[0].startswith(b"scrypt "):
            raise KeySourceError(
                f"identity file {locked.location} is encrypted, but not with a passphrase"
            )
        from macula_secrets.keys import _unlocked

        plaintext = _unlocked.recall("age-identity-file", locked.contents)
        if plaintext is None:
            plaintext = self._decrypt_locked(locked)
            _unlocked.remember("age-identity-file", locked.contents, plaintext)
        found = _age.parse_identities(
            plaintext.decode("utf-8", "surrogateescape"), source=locked.location
        )
        if not found:
            raise KeySourceError(f"no identities in encrypted identity file {locked.location}")
        return found

    def _decrypt_locked(self, locked: _Locked) -> bytes:
        """Ask for the passphrase and decrypt a passphrase-protected identity file."""
        if self._read_passphrase is None:
            raise KeySourceError(
                f"identity file {locked.location} is protected by a passphrase",
                hint="run the command in a terminal to be asked for it",
            )
        passphrase = self._read_passphrase(f"Enter passphrase for identity '{locked.location}':")
        try:
            return _age.decrypt_with_passphrase(locked.contents, passphrase)
        except NoMatchingKeyError:
            raise KeySourceError(
                f"incorrect passphrase for identity file {locked.location}"
            ) from None
        except MaculaError as exc:  # FormatError, IntegrityError, LimitError
            raise KeySourceError(f"cannot decrypt identity file {locked.location}: {exc}") from exc

    def unwrap_data_key(self, enc: str, *, recipient: str) -> bytes:
        """Unwrap one age ``enc`` field with every identity found, as sops does.

        ``recipient`` is the entry's ``recipient`` field: it is passed to
        ``SOPS_AGE_KEY_CMD`` and named in errors, not used to choose a key.

        Raises:
            NoMatchingKeyError: no identity was found, or none matches. The
                message lists the locations without keys; ``errors`` holds one
                line per source that failed.
            FormatError, LimitError, IntegrityError: from
                :func:`~macula_secrets.keys.age.unwrap_data_key`.
        """
        return self._attempt(
            lambda identities: _age.unwrap_data_key(enc, identities, recipient=recipient),
            recipient=recipient, target=f"recipient {recipient}",
        )

    def decrypt(self, data: bytes, *, source: str,
                max_size: int | None = _age.MAX_FILE_SIZE) -> bytes:
        """Decrypt a whole age file (binary or armored) with every identity found.

        For age-encrypted files that are not SOPS files (``<app>.env.age``).
        An age file does not name its recipients, so ``SOPS_AGE_KEY_CMD`` runs
        with an empty ``SOPS_AGE_RECIPIENT``. ``source`` names the file in
        messages. The header is checked before any identity is loaded, so a
        file that is not age fails as a format error, not as a missing key.

        Raises:
            FormatError, LimitError: not an age file, or over the limits of
                :func:`~macula_secrets.keys.age.decrypt`.
            NoMatchingKeyError: no identity was found, or none matches.
            IntegrityError: an identity matched but the file failed to verify.
        """
        _age._inspect(data, max_size=max_size)
        return self._attempt(
            lambda identities: _age.decrypt(data, identities, max_size=max_size),
            recipient="", target=source,
        )

    def _attempt(self, attempt: Callable[[list[AgeIdentity]], bytes], *, recipient: str,
                 target: str) -> bytes:
        """Run ``attempt`` with the plain identities, then with each unlocked file's."""
        static = self._load_static()
        command = self._run_command(recipient)
        errors = static.errors + command.errors
        identities = static.identities + command.identities
        tried = 0
        if identities:
            tried += len(identities)
            try:
                return attempt(identities)
            except NoMatchingKeyError:
                pass
        for locked in static.locked + command.locked:
            try:
                unlocked = self._unlock(locked)
            except KeySourceError as exc:
                errors.append(str(exc))
                continue
            if not unlocked:
                continue
            tried += len(unlocked)
            try:
                return attempt(unlocked)
            except NoMatchingKeyError:
                pass
        unused = static.unused + command.unused
        if self._config_error is not None and tried == 0 and not static.locked + command.locked:
            errors.append(self._config_error)
        default = self.default_key_file
        if default is not None and tried == 0 and not os.path.exists(default):
            unused.append(str(default))
        raise self._failure(recipient, target=target, tried=tried, errors=errors, unused=unused)

    def _failure(
        self, recipient: str, *, target: str, tried: int, errors: list[str], unused: list[str]
    ) -> NoMatchingKeyError:
        details = list(errors)
        if unused:
            details.append(f"did not find keys in {_locations(unused)}")
        default = self.default_key_file
        where = f"SOPS_AGE_KEY_FILE, SOPS_AGE_KEY or {default}" if default else "SOPS_AGE_KEY_FILE"
        if tried == 0:
            message = "failed to load age identities"
            if errors:
                message += f" ({len(errors)} {'source' if len(errors) == 1 else 'sources'} failed)"
            if unused:
                message += f": did not find keys in {_locations(unused)}"
        else:
            plural = "identity" if tried == 1 else "identities"
            message = f"no age identity matches {target} (tried {tried} {plural})"
        error = NoMatchingKeyError(message, recipients=[recipient] if recipient else [],
                                   errors=details)
        wanted = f"the identity for {recipient}" if recipient else f"an identity for {target}"
        error.hint = f"put {wanted} in {where}"
        return error


def _locations(names: list[str]) -> str:
    """Quote and join as sops does: ``'a'``, ``'a' and 'b'``, ``'a', 'b', and 'c'``."""
    quoted = [f"'{name}'" for name in names]
    if len(quoted) == 1:
        return f"location {quoted[0]}"
    if len(quoted) == 2:
        return f"locations {quoted[0]} and {quoted[1]}"
    return f"locations {', '.join(quoted[:-1])}, and {quoted[-1]}"
