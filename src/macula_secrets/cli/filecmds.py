"""The SOPS-compatible file commands: keygen, encrypt, decrypt, edit, set, unset,
rotate, updatekeys, filestatus.

Thin shells: parse what argparse gave, call :mod:`macula_secrets.sops`, write
the result. Writes to files are atomic (temp file, fsync, rename), so a
failed command leaves the original untouched.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from ..errors import (
    AlreadyEncryptedError,
    ConfigError,
    FormatError,
    LimitError,
    MaculaError,
    PathError,
)
from ..sops.stores import format_for_path, get_store
from . import exitcodes as X
from .output import CommandError, note

if TYPE_CHECKING:
    from pathlib import Path

MAX_INPUT = 64 * 1024 * 1024


def _max_input() -> int:
    """The input size limit: ``MACULA_MAX_INPUT_SIZE`` if set, else ``MAX_INPUT``."""
    raw = os.environ.get("MACULA_MAX_INPUT_SIZE", "")
    if raw:
        try:
            value = int(raw)
        except ValueError:
            raise CommandError(
                f"MACULA_MAX_INPUT_SIZE is not a number of bytes: {raw!r}"
            ) from None
        if value > 0:
            return value
    return MAX_INPUT


def run(args: argparse.Namespace) -> int:
    handler = _HANDLERS[args.run]
    return handler(args)


# -- shared helpers ----------------------------------------------------------------


def _identities() -> object:
    from ..keys._discovery import IdentitySources

    return IdentitySources.from_environment(os.environ, os.path.expanduser("~"))


def _read(path: str | None, *, what: str = "input") -> bytes:
    limit = _max_input()
    if path is None or path == "-":
        data = sys.stdin.buffer.read(limit + 1)
    else:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    if len(data) > limit:
        raise LimitError(
            f"{what} is larger than {limit} bytes",
            hint="set MACULA_MAX_INPUT_SIZE to allow larger files",
        )
    return data


def _name(args: argparse.Namespace) -> str:
    override = getattr(args, "filename_override", None)
    if override:
        return str(override)
    return str(args.file) if args.file not in (None, "-") else ""


def _formats(args: argparse.Namespace, name: str) -> tuple[str, str]:
    """Input and output formats.

    As sops: from the flags, else from the file extension, else binary. One
    deliberate difference: with ``--input-type`` and no ``--output-type`` the
    output has the input's format (sops would fall back to the extension,
    so ``decrypt --input-type yaml < f`` fails there).
    """
    fmt_in = args.input_type or (format_for_path(name) if name else "binary")
    fmt_out = getattr(args, "output_type", None) or fmt_in
    return fmt_in, fmt_out


def _config(args: argparse.Namespace) -> object:
    from ..sops.config import find_config, load_config

    env = dict(os.environ)
    if args.config:
        env["SOPS_CONFIG"] = args.config
    return load_config(find_config(env=env))


def _stores_config(args: argparse.Namespace) -> object | None:
    """The config, for its ``stores`` section only (read once per command).

    sops applies ``stores`` indentation to every output, decrypt and in-place
    edits included. A config whose creation rules we cannot use (pgp keys,
    say) must not stop a decrypt, so errors here mean "no stores section".
    """
    cached = getattr(args, "_stores_config", False)
    if cached is not False:
        return cached
    try:
        config = _config(args)
    except ConfigError:
        config = None
    args._stores_config = config
    return config


def _store(fmt: str, args: argparse.Namespace, config: object | None = None) -> object:
    indent = getattr(args, "indent", None)
    if indent is None:
        if config is None:
            config = _stores_config(args)
        if config is not None:
            key = "json_binary" if fmt == "binary" else fmt
            indent = config.store_indent.get(key)  # type: ignore[attr-defined]
    return get_store(fmt, indent=indent)


def _write(args: argparse.Namespace, data: bytes, *, plaintext: bool) -> None:
    from .._fs import atomic_write

    if getattr(args, "in_place", False) and getattr(args, "output", None):
        raise CommandError(
            "cannot use --in-place and --output together",
            sops_code=X.SOPS_CONFLICTING_PARAMETERS,
        )
    target = None
    if getattr(args, "in_place", False):
        if args.file in (None, "-"):
            raise CommandError("--in-place needs a file, not stdin")
        target = args.file
    elif getattr(args, "output", None):
        target = args.output
    if target is None:
        out = sys.stdout.buffer
        out.write(data)
        out.flush()
        return
    atomic_write(target, data, mode=0o600 if plaintext else 0o644)


def _selection_rule(args: argparse.Namespace) -> tuple[str, str] | None:
    for name in (
        "unencrypted_suffix", "encrypted_suffix", "unencrypted_regex", "encrypted_regex",
        "unencrypted_comment_regex", "encrypted_comment_regex",
    ):
        value = getattr(args, name, None)
        if value:
            return name, value
    return None


def _recipients_from(text: str | None) -> list[str]:
    if not text:
        return []
    return [r.strip() for r in text.split(",") if r.strip()]


def _encryption_settings(
    args: argparse.Namespace, name: str, config: object
) -> tuple[list[list[str]], int, tuple[str, str] | None, bool]:
    """Key groups, threshold, selection rule and mac_only from flags and .sops.yaml."""
    cli_keys = _recipients_from(getattr(args, "age", None) or os.environ.get("SOPS_AGE_RECIPIENTS"))
    target = name or os.path.join(os.getcwd(), "stdin")
    use_rules = bool(name) or config.has_rules  # type: ignore[attr-defined]
    rule = config.rule_for(target) if use_rules else None  # type: ignore[attr-defined]
    if cli_keys:
        groups = [cli_keys]
    elif rule is not None and rule.key_groups:
        groups = rule.key_groups
    else:
        raise CommandError(
            "config file not found, or has no creation rules, and no keys provided "
            "through command line options",
            hint="pass --age age1... or add a creation rule to .sops.yaml",
        )
    threshold = getattr(args, "shamir_secret_sharing_threshold", None) or (
        rule.shamir_threshold if rule is not None else 0
    )
    cli_rule = _selection_rule(args)
    cfg_rule = rule.rule if rule is not None else None
    # The same rule on both sides: the command line wins (as in sops).
    if cli_rule and cfg_rule and cli_rule[0] != cfg_rule[0]:
        raise ConfigError(
            "cannot use more than one of encrypted_suffix, unencrypted_suffix, "
            "encrypted_regex, unencrypted_regex, encrypted_comment_regex, or "
            "unencrypted_comment_regex: the command line and .sops.yaml disagree"
        )
    mac_only = bool(getattr(args, "mac_only_encrypted", False)) or bool(
        rule is not None and rule.mac_only_encrypted
    )
    return groups, threshold, cli_rule or cfg_rule, mac_only


def _decrypt(args: argparse.Namespace, data: bytes, name: str, fmt: str,
             *, ignore_mac: bool = False, editable: bool = True) -> object:
    from ..sops.document import decrypt_bytes

    return decrypt_bytes(
        data,
        format=fmt,
        unwrapper=_identities(),  # type: ignore[arg-type]
        ignore_mac=ignore_mac,
        name=name or "stdin",
        store=_store(fmt, args),  # type: ignore[arg-type]
        editable=editable,
    )


# -- keygen -------------------------------------------------------------------------------


def cmd_keygen(args: argparse.Namespace) -> int:
    from datetime import datetime

    from ..keys import age

    identity = age.generate_identity()
    public = identity.to_recipient().text
    if args.output:
        age.write_identity_file(args.output, identity)
        sys.stderr.write(f"Public key: {public}\n")
        return X.OK
    text = age.format_identity_file(identity, created=datetime.now().astimezone())
    sys.stdout.write(text)
    sys.stdout.flush()
    if not sys.stdout.isatty():
        sys.stderr.write(f"Public key: {public}\n")
    return X.OK


# -- encrypt / decrypt -------------------------------------------------------------------


def _check_not_empty(fmt: str, data: bytes) -> None:
    if fmt == "yaml" and not data:
        raise CommandError(
            "file cannot be completely empty, it must contain at least one document",
            sops_code=X.SOPS_NEED_AT_LEAST_ONE_DOCUMENT,
        )


def cmd_encrypt(args: argparse.Namespace) -> int:
    from ..sops.document import encrypt_new

    name = _name(args)
    fmt_in, fmt_out = _formats(args, name)
    data = _read(args.file)
    config = _config(args)
    store_in = _store(fmt_in, args, config)
    _check_not_empty(fmt_in, data)
    branches = store_in.load_plain(data)  # type: ignore[attr-defined]
    if store_in.has_metadata(branches):  # type: ignore[attr-defined]
        raise AlreadyEncryptedError(
            "the file already has SOPS metadata (a top-level 'sops' key, or 'sops_' keys "
            "in flat formats): it is probably encrypted already",
        )
    groups, threshold, rule, mac_only = _encryption_settings(args, name, config)
    if fmt_in == "binary" and rule is not None:
        note("selection rules are ignored for binary files")
    doc = encrypt_new(
        branches,
        format=fmt_out,
        groups=groups,
        threshold=threshold,
        rule=rule,
        mac_only_encrypted=mac_only,
        name=name or "stdin",
    )
    # sops decides by the input store: binary input stores no rule, whatever
    # the output format, and other input keeps its rule even as binary output.
    doc.metadata.rule = None if fmt_in == "binary" else (
        rule or ("unencrypted_suffix", "_unencrypted")
    )
    out = doc.encrypt(_store(fmt_out, args, config))  # type: ignore[arg-type]
    _write(args, out, plaintext=False)
    return X.OK


def cmd_decrypt(args: argparse.Namespace) -> int:
    from ..sops.paths import get_path, parse_path
    from ..sops.tree import Branch

    name = _name(args)
    fmt_in, fmt_out = _formats(args, name)
    path = parse_path(args.extract) if args.extract else None
    data = _read(args.file)
    doc = _decrypt(args, data, name, fmt_in, ignore_mac=args.ignore_mac, editable=False)
    store_out = _store(fmt_out, args)
    value: object = None
    if path is not None:
        value = get_path(doc.branches[0], path)  # type: ignore[attr-defined]
        if isinstance(value, Branch):
            doc.branches[0] = value  # type: ignore[attr-defined]
    try:
        if path is None or isinstance(value, Branch):
            out = store_out.emit_plain(doc.branches)  # type: ignore[attr-defined]
        elif isinstance(value, str):
            out = value.encode("utf-8")
        elif isinstance(value, bytes):
            out = value
        else:
            out = store_out.emit_value(value)  # type: ignore[attr-defined]
    except FormatError as exc:
        # The input was fine; it cannot be printed in the output format.
        raise CommandError(str(exc), sops_code=X.SOPS_ERROR_DUMPING_TREE, hint=exc.hint) from None
    _write(args, out, plaintext=True)
    return X.OK


# -- in-place edits ----------------------------------------------------------------------


def _open_for_change(args: argparse.Namespace) -> tuple[object, object, str]:
    name = str(args.file)
    fmt_in, _ = _formats(args, name)
    data = _read(args.file)
    doc = _decrypt(args, data, name, fmt_in, ignore_mac=getattr(args, "ignore_mac", False))
    return doc, _store(fmt_in, args), name


def _json_value(text: str) -> object:
    import json

    from ..sops.tree import Branch

    try:
        return json.loads(
            text,
            object_pairs_hook=Branch,
            parse_int=float,
            parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)),
        )
    except ValueError:
        raise CommandError(
            "value for set is not valid JSON", sops_code=X.SOPS_INVALID_SET_FORMAT,
            hint="quote strings as JSON: '\"text\"'",
        ) from None


def cmd_set(args: argparse.Namespace) -> int:
    from .._fs import atomic_write
    from ..sops.paths import parse_path, set_path

    sources = [args.value is not None, bool(args.value_file), bool(args.value_stdin)]
    if sum(sources) != 1:
        raise CommandError(
            "give the value as an argument, or with exactly one of --value-file, --value-stdin",
            sops_code=X.SOPS_INVALID_SET_FORMAT,
        )
    path = parse_path(args.path)
    if args.value_file:
        text = _read(args.value_file, what="value file").decode("utf-8")
    elif args.value_stdin:
        text = _read(None, what="value").decode("utf-8")
    else:
        text = args.value
    value = _json_value(text)
    doc, store, name = _open_for_change(args)
    changed = set_path(doc.branches[0], path, value)  # type: ignore[attr-defined]
    if not changed and args.idempotent:
        return X.OK
    atomic_write(name, doc.encrypt(store), mode=0o644)  # type: ignore[attr-defined]
    return X.OK


def cmd_unset(args: argparse.Namespace) -> int:
    from .._fs import atomic_write
    from ..sops.paths import parse_path, unset_path

    path = parse_path(args.path)
    doc, store, name = _open_for_change(args)
    try:
        unset_path(doc.branches[0], path)  # type: ignore[attr-defined]
    except PathError:
        if args.idempotent:
            return X.OK
        raise
    atomic_write(name, doc.encrypt(store), mode=0o644)  # type: ignore[attr-defined]
    return X.OK


def cmd_rotate(args: argparse.Namespace) -> int:
    name = str(args.file)
    fmt_in, fmt_out = _formats(args, name)
    data = _read(args.file)
    doc = _decrypt(args, data, name, fmt_in)
    doc.rotate(add=_recipients_from(args.add_age),  # type: ignore[attr-defined]
               remove=_recipients_from(args.rm_age))
    out = doc.encrypt(_store(fmt_out, args))  # type: ignore[attr-defined]
    _write(args, out, plaintext=False)
    return X.OK


# -- edit -------------------------------------------------------------------------------

_EXAMPLES = {
    "yaml": b"hello: Welcome to SOPS! Edit this file as you please!\nexample_key: example_value\n"
            b"# Example comment\nexample_array:\n    - example_value1\n    - example_value2\n"
            b"example_number: 1234.56789\nexample_booleans:\n    - true\n    - false\n",
    "json": b'{\n\t"hello": "Welcome to SOPS! Edit this file as you please!",\n'
            b'\t"example_key": "example_value",\n\t"example_array": [\n\t\t"example_value1",\n'
            b'\t\t"example_value2"\n\t],\n\t"example_number": 1234.56789,\n'
            b'\t"example_booleans": [\n\t\ttrue,\n\t\tfalse\n\t]\n}\n',
    "dotenv": b"# This is an example file.\nhello=Welcome to SOPS! Edit this file as you please!\n"
              b"example_key=example_value\nexample_multiline=foo\\nbar\\nbaz\n",
    "ini": b"; This is an example file.\n[Welcome!]\n"
           b"hello       = Welcome to SOPS! Edit this file as you please!\n"
           b"example_key = example_value\n",
    "binary": b"Welcome to SOPS! Edit this file as you please!",
}


def _editor_argv() -> list[str]:
    import shlex
    import shutil

    for var in ("SOPS_EDITOR", "EDITOR"):
        value = os.environ.get(var)
        if value:
            return shlex.split(value)
    for candidate in ("vim", "nano", "vi"):
        found = shutil.which(candidate)
        if found:
            return [found]
    raise CommandError(
        "no editor found", sops_code=X.SOPS_NO_EDITOR, hint="set $EDITOR or $SOPS_EDITOR"
    )


def cmd_edit(args: argparse.Namespace) -> int:
    from .._fs import atomic_write
    from ..sops.document import encrypt_new
    from ..sops.metadata import SOPS_VERSION

    name = str(args.file)
    fmt, _ = _formats(args, name)
    store = _store(fmt, args)
    if os.path.exists(name):
        doc, _, _ = _open_for_change(args)
        plain = doc.plaintext(store)  # type: ignore[attr-defined]
    else:
        config = _config(args)
        groups, threshold, rule, mac_only = _encryption_settings(args, name, config)
        plain = _EXAMPLES[fmt]
        doc = encrypt_new(store.load_plain(plain), format=fmt, groups=groups,  # type: ignore[attr-defined]
                          threshold=threshold, rule=rule, mac_only_encrypted=mac_only, name=name)
    def check(edited: bytes) -> list[object]:
        branches: list[object] = store.load_plain(edited)  # type: ignore[attr-defined]
        if store.has_metadata(branches):  # type: ignore[attr-defined]
            raise FormatError("the edited file has a top-level 'sops' key")
        return branches

    from .editing import edit_privately

    branches = edit_privately(
        plain, filename=os.path.basename(name), prefix="macula-edit-", check=check,
        invalid="the edited file is not valid; nothing was saved")
    if branches is None:
        # As sops: an unchanged new file is not written either.
        return X.SOPS_FILE_NOT_MODIFIED if _sops_codes() else X.OK
    doc.branches = branches  # type: ignore[attr-defined]
    md = doc.metadata  # type: ignore[attr-defined]
    if _version_tuple(md.version) < _version_tuple(SOPS_VERSION):
        md.version = SOPS_VERSION
    atomic_write(name, doc.encrypt(store), mode=0o644)  # type: ignore[attr-defined]
    return X.OK


def _sops_codes() -> bool:
    from .output import use_sops_codes

    return use_sops_codes()


def _version_tuple(v: str) -> tuple[int, ...]:
    core = v.split("-", 1)[0].split("+", 1)[0]
    try:
        return tuple(int(p) for p in core.split("."))
    except ValueError:
        return (0,)


# -- updatekeys --------------------------------------------------------------------------


def _sops_files_under(root: Path) -> list[Path]:
    from pathlib import Path

    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in (".git",))
        for fn in sorted(filenames):
            if fn == ".sops.yaml":
                continue
            out.append(Path(dirpath) / fn)
    return out


def _is_sops_file(path: Path, fmt: str) -> bool:
    try:
        data = _read(str(path))
        get_store(fmt).load_encrypted(data)
    except (MaculaError, OSError, UnicodeDecodeError):
        return False
    return True


def cmd_updatekeys(args: argparse.Namespace) -> int:
    from pathlib import Path

    config = _config(args)
    if not config.has_rules:  # type: ignore[attr-defined]
        raise ConfigError("updatekeys needs a .sops.yaml with creation rules",
                          hint="create .sops.yaml in this folder or a parent")
    targets: list[Path] = []
    for item in args.files:
        p = Path(item)
        if p.is_dir():
            for f in _sops_files_under(p):
                fmt = args.input_type or format_for_path(str(f))
                if _is_sops_file(f, fmt):
                    targets.append(f)
        else:
            targets.append(p)
    if not targets:
        note("no SOPS files found")
        return X.OK
    progress = None
    if len(targets) > 5 and args.yes and sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import Progress

        # On stderr, the terminal we checked: rich's default console is stdout,
        # which may be a pipe (the bar would then be lost and stdout polluted).
        progress = Progress(console=Console(stderr=True), transient=True)
    failures = 0
    changed = 0
    if progress is not None:
        progress.start()
        task = progress.add_task("updatekeys", total=len(targets))
    try:
        for target in targets:
            try:
                if _updatekeys_one(args, config, target):
                    changed += 1
            except MaculaError as exc:
                failures += 1
                from .output import report

                if len(targets) == 1:
                    raise
                report(exc)
            if progress is not None:
                progress.advance(task)
    finally:
        if progress is not None:
            progress.stop()
    if len(targets) > 1:
        note(f"{changed} of {len(targets)} files updated, {failures} failed")
    return X.ERROR if failures else X.OK


def _updatekeys_one(args: argparse.Namespace, config: object, target: Path) -> bool:
    from .._fs import atomic_write
    from ..sops.document import read_encrypted
    from ..sops.keygroups import unwrap_data_key, wrap_data_key
    from ..sops.metadata import AgeKey

    fmt = args.input_type or format_for_path(str(target))
    store = _store(fmt, args, config)
    data = _read(str(target))
    enc, metadata = read_encrypted(data, store)  # type: ignore[arg-type]
    rule = config.rule_for(target)  # type: ignore[attr-defined]
    if rule is None or not rule.key_groups:
        raise ConfigError(f"no keys for {target} in {config.path}")  # type: ignore[attr-defined]
    new_groups = rule.key_groups
    current = [[k.recipient if isinstance(k, AgeKey) else k.label for k in g]
               for g in metadata.key_groups]
    threshold = args.shamir_secret_sharing_threshold or metadata.shamir_threshold or \
        rule.shamir_threshold
    if len(new_groups) > 1:
        threshold = min(threshold or len(new_groups), len(new_groups))
    else:
        threshold = metadata.shamir_threshold if len(current) == 1 else 0
    if current == new_groups and (len(new_groups) == 1 or threshold == metadata.shamir_threshold):
        note(f"file {target} already up to date")
        return False
    # Open the data key before showing the plan and asking: a change that
    # cannot be made fails with one error line, not after a confirmation.
    key = unwrap_data_key(metadata, _identities(), name=str(target))  # type: ignore[arg-type]
    lines = ["The following changes will be made to the file's groups:"]
    for i in range(max(len(current), len(new_groups))):
        old = current[i] if i < len(current) else []
        new = new_groups[i] if i < len(new_groups) else []
        lines.append(f"Group {i + 1}")
        lines += [f"    {k}" for k in old if k in new]
        lines += [f"+++ {k}" for k in new if k not in old]
        lines += [f"--- {k}" for k in old if k not in new]
    sys.stderr.write("\n".join(lines) + "\n")
    if not args.yes:
        if not sys.stdin.isatty():
            raise CommandError("refusing to change keys without confirmation",
                               hint="pass -y to confirm non-interactively")
        sys.stderr.write("Is this okay? (y/n): ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            note("no changes made")
            return False
    wrapped, recorded = wrap_data_key(key, new_groups, threshold=threshold)
    metadata.key_groups = wrapped
    metadata.shamir_threshold = recorded if len(new_groups) > 1 else threshold
    atomic_write(target, store.emit_encrypted(enc, metadata.to_branch()),  # type: ignore[attr-defined]
                 mode=0o644)
    note(f"file {target} synchronized with new keys")
    return True


# -- filestatus --------------------------------------------------------------------------


def cmd_filestatus(args: argparse.Namespace) -> int:
    from ..sops.metadata import Metadata

    name = str(args.file)
    fmt = args.input_type or format_for_path(name)
    data = _read(args.file)
    store = get_store(fmt)
    try:
        _, raw = store.load_encrypted(data)
        md = Metadata.from_branch(raw)
        encrypted = bool(md.mac) and bool(md.version)
    except FormatError as exc:
        if "metadata not found" not in str(exc) and "no keys" not in str(exc):
            raise
        encrypted = False
    sys.stdout.write('{"encrypted":%s}\n' % ("true" if encrypted else "false"))
    return X.OK


_HANDLERS = {
    "keygen": cmd_keygen,
    "encrypt": cmd_encrypt,
    "decrypt": cmd_decrypt,
    "edit": cmd_edit,
    "set": cmd_set,
    "unset": cmd_unset,
    "rotate": cmd_rotate,
    "updatekeys": cmd_updatekeys,
    "filestatus": cmd_filestatus,
}
