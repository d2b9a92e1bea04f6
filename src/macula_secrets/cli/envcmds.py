"""The ``envfile`` commands: encrypt, decrypt and edit age-encrypted env files.

Thin shells over :mod:`macula_secrets.backends.envfile`: parse, call, write.
Plaintext goes to stdout only for ``decrypt``, whose job is to print it, and
to disk only in ``edit``'s private temporary file (an editor needs a file).
Messages name files, recipients and line numbers, never a value.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from . import exitcodes as X
from .output import CommandError

if TYPE_CHECKING:
    from ..keys._discovery import IdentitySources
    from ..keys.age import AgeRecipient

__all__ = ["run"]

_NEW_FILE = b"# KEY=value, one per line; quote values with spaces, '#' or newlines\n"


def run(args: argparse.Namespace) -> int:
    handler = {"envfile encrypt": _encrypt, "envfile decrypt": _decrypt,
               "envfile edit": _edit}[args.run]
    return handler(args)


def _recipients(args: argparse.Namespace) -> list[AgeRecipient]:
    """-r and -R, else SOPS_AGE_RECIPIENTS; an error when there are none."""
    from ..keys import age

    found: list[AgeRecipient] = [age.parse_recipient(text) for text in args.recipient or ()]
    for path in args.recipients_file or ():
        with open(path, encoding="utf-8", errors="replace") as file:
            lines = file.read(age.MAX_ARMORED_SIZE + 1)
        if len(lines) > age.MAX_ARMORED_SIZE:
            raise CommandError(f"recipients file {path} is larger than "
                               f"{age.MAX_ARMORED_SIZE} characters")
        for line in lines.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                found.append(age.parse_recipient(line))
    if not args.recipient and not args.recipients_file:
        found = age.parse_recipients(os.environ.get("SOPS_AGE_RECIPIENTS", ""),
                                     skip_empty=False)
    if not found:
        raise CommandError(
            "no age recipients given",
            hint="pass -r age1... or -R FILE, or set SOPS_AGE_RECIPIENTS; age files do not "
                 "record their recipients")
    return list(dict.fromkeys(found))


def _read(path: str) -> bytes:
    from ..backends.envfile import MAX_FILE_SIZE

    with open(path, "rb") as file:
        data = file.read(MAX_FILE_SIZE + 1)
    if len(data) > MAX_FILE_SIZE:
        raise CommandError(f"{path} is larger than {MAX_FILE_SIZE} bytes")
    return data


def _identities() -> IdentitySources:
    from ..keys._discovery import IdentitySources

    return IdentitySources.from_environment(os.environ, os.path.expanduser("~"))


def _decrypt_bytes(path: str) -> bytes:
    from ..backends.envfile import decrypt_file

    return decrypt_file(_read(path), _identities(), source=path)


def _write_stdout(data: bytes) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _encrypt(args: argparse.Namespace) -> int:
    from .._fs import atomic_write
    from ..backends.envfile import encrypt_file

    recipients = _recipients(args)
    plaintext = _read(args.file)
    if plaintext.startswith((b"age-encryption.org/", b"-----BEGIN AGE ENCRYPTED FILE-----")):
        raise CommandError(f"{args.file} is already an age file",
                           hint="decrypt it first, or edit it with `macula-secrets envfile edit`")
    if not args.output and not args.in_place and not args.armor and sys.stdout.isatty():
        raise CommandError("refusing to write binary age output to a terminal",
                           hint="pass -a for armored output, or -o FILE")
    data = encrypt_file(plaintext, recipients, armored=args.armor, source=args.file)
    if args.in_place:
        atomic_write(args.file, data)
    elif args.output:
        atomic_write(args.output, data)
    else:
        _write_stdout(data)
    return X.OK


def _decrypt(args: argparse.Namespace) -> int:
    from .._fs import atomic_write

    plaintext = _decrypt_bytes(args.file)
    if args.output:
        atomic_write(args.output, plaintext)
    else:
        _write_stdout(plaintext)
    return X.OK


def _edit(args: argparse.Namespace) -> int:
    from .._fs import atomic_write
    from ..backends.envfile import decrypt_file, encrypt_file, parse_dotenv
    from ..errors import FormatError

    path = str(args.file)
    # Recipients first: an edit that cannot be saved should not be started.
    recipients = _recipients(args)
    if os.path.exists(path):
        data = _read(path)
        armored = args.armor or data.lstrip().startswith(b"-----BEGIN AGE")
        plain = decrypt_file(data, _identities(), source=path)
    else:
        armored = args.armor
        plain = _NEW_FILE
    def check(edited: bytes) -> bytes:
        try:
            text = edited.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError("it is not UTF-8 text") from None
        parse_dotenv(text, source="the edited file")
        return edited

    from .editing import edit_privately

    edited = edit_privately(
        plain, filename=os.path.basename(path).removesuffix(".age") or "secrets.env",
        prefix="macula-envedit-", check=check,
        invalid="the edited file is not valid dotenv; nothing was saved")
    if edited is not None:
        atomic_write(path, encrypt_file(edited, recipients, armored=armored, check=False))
    return X.OK
