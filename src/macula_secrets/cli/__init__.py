"""The ``macula-secrets`` command: parse arguments, run a command, report errors.

argparse rather than click: ``macula-secrets decrypt`` has to start about as
fast as the Go ``sops`` binary, and importing click costs more than the whole
budget that is left after Python and ``cryptography`` (docs/benchmarks.md).
Command implementations are imported only when their command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from . import exitcodes as X

__all__ = ["main"]

_FORMATS = ("yaml", "json", "dotenv", "ini", "binary")

_DESCRIPTION = """\
Secrets for machines that run without Kubernetes.

First run:
  init          set up an age identity, the store's master key and its recovery

SOPS-compatible file commands (flags as sops names them):
  keygen        make an age identity (private key); public key on stderr
  encrypt       encrypt a file for age recipients (--age or .sops.yaml)
  decrypt       decrypt a file (or --extract one value)
  edit          decrypt into $EDITOR, re-encrypt what changed
  set / unset   change or remove one value in place
  rotate        switch a file to a new data key
  updatekeys    re-wrap the data key for the recipients in .sops.yaml
  filestatus    tell whether a file is encrypted
  exec-env      run a command with the file's values in its environment
  exec-file     run a command with the decrypted file in a temporary file

age-encrypted env files (<app>.env.age, whole-file age, readable by `age -d`):
  envfile       encrypt, decrypt, edit

Nodes of a GitOps secrets folder (their age or ssh-ed25519 keys in .sops.yaml):
  node          add, remove (and rotate the data keys it had), list;
                pending, approve, reject: join requests on a bootstrap
  join          ask a bootstrap node to let this node in (pinned TLS, operator approval)

Runtime store commands (the node's encrypted store, versioned as Vault KV v2):
  get / put     read or write one secret of an app
  list          apps, or the keys of an app
  history       versions of a key;  rollback: make an old value current again
  delete        soft-delete (undelete restores);  destroy: erase versions for good
  sync          bring the store in line with the secrets folder or Vault (idempotent)
  run           run a command with an app's secrets as environment variables
  key           master key: rotate-master, migrate, escrow; split, combine (M-of-N shares)
  agent         unlock once per session: start, lock, stop, status;  unlock: from shares
  audit         the audit log: tail, verify
  token         tokens for the server: create (shown once), list, revoke
  leases        dynamic credentials' leases in Vault / OpenBao: list, revoke
  serve         the Vault KV v2 compatible HTTPS server (TLS or a Unix socket)
  tui           terminal UI: browse, reveal, edit, history, rollback, key wizard
  doctor        check key files, the store, audit chains, clock, TPM, Vault: what to fix
  completion    print a shell completion script: bash, zsh or fish

GitOps (from a commit to the running process):
  watch         sync the secrets folder whenever its files change
  gitops        resolve: an app spec's {secret: app/key} and {env: VAR} values
  diff          what changed between two encrypted files (or git revisions), key by key
  merge-driver  git merge driver: edits of different keys of one sops file merge

The store lives in $MACULA_SECRETS_HOME (default ~/.local/share/macula-secrets);
the secrets folder is $MACULA_SECRETS_DIR (or ./secrets when it exists).

Identities for decryption are found as sops finds them: SOPS_AGE_KEY_FILE,
SOPS_AGE_KEY, SOPS_AGE_KEY_CMD, SOPS_AGE_SSH_PRIVATE_KEY_FILE,
~/.config/sops/age/keys.txt and ~/.ssh/id_ed25519.

Exit status: 0 success, 1 error (one line on stderr), 2 usage error.
With --sops-exit-codes (or MACULA_SOPS_EXIT_CODES=1) errors use sops's numbers.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Help formatter that measures the terminal with ``os`` instead of ``shutil``.

    argparse builds a formatter for every ``add_argument`` and, without an
    explicit width, imports ``shutil`` (and with it bz2, lzma, zlib) to ask
    for the terminal size: milliseconds of start-up for nothing.
    """

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        if width is None:
            try:
                width = int(os.environ.get("COLUMNS", "")) - 2
            except ValueError:
                try:
                    width = os.get_terminal_size(2).columns - 2
                except OSError:
                    width = 78
        super().__init__(prog, indent_increment, max_help_position, width)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors in our format (exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"macula: error: {message}\n")
        sys.stderr.write(f"macula: hint: run '{self.prog} --help' for usage\n")
        raise SystemExit(X.USAGE)


def _add_formats(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-type", choices=_FORMATS, metavar="TYPE",
                   help="input format (yaml, json, dotenv, ini, binary); default from the "
                        "file extension, binary for other names")
    p.add_argument("--output-type", choices=_FORMATS, metavar="TYPE",
                   help="output format; default: same as the input")
    p.add_argument("--indent", type=int, metavar="N",
                   help="indentation of YAML/JSON output (default 4 for YAML, a TAB for JSON)")


def _add_rules(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--unencrypted-suffix", metavar="SUFFIX",
                   help="leave values clear whose key (or a parent's) ends with SUFFIX "
                        "(default: _unencrypted)")
    g.add_argument("--encrypted-suffix", metavar="SUFFIX",
                   help="encrypt only values whose key (or a parent's) ends with SUFFIX")
    g.add_argument("--unencrypted-regex", metavar="REGEX",
                   help="leave values clear whose key (or a parent's) matches REGEX")
    g.add_argument("--encrypted-regex", metavar="REGEX",
                   help="encrypt only values whose key (or a parent's) matches REGEX, "
                        "e.g. '^(data|stringData)$'")
    g.add_argument("--unencrypted-comment-regex", metavar="REGEX",
                   help="leave clear the value after a comment matching REGEX")
    g.add_argument("--encrypted-comment-regex", metavar="REGEX",
                   help="encrypt only the value after a comment matching REGEX")
    p.add_argument("--mac-only-encrypted", action="store_true",
                   help="compute the MAC over encrypted values only")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with ``command``, only that command's options are built
    (the others are listed by name), which saves start-up time."""
    parser = _Parser(
        prog="macula-secrets",
        description=_DESCRIPTION,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"macula-secrets {__version__}")
    parser.add_argument("--sops-exit-codes", action="store_true",
                        help="exit with sops's status numbers (51 MAC mismatch, 128 no key, ...)")
    parser.add_argument("--config", metavar="FILE",
                        help="use this .sops.yaml instead of searching from the working directory")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def cmd(name: str, help_: str, description: str) -> argparse.ArgumentParser:
        if command is not None and name != command:
            # A known command was named: the others are not needed at all
            # (an unknown word gets the full parser and its list of choices).
            return _Stub(None)  # type: ignore[return-value]
        return sub.add_parser(name, help=help_, description=description,
                              formatter_class=_Formatter)

    p = cmd("keygen", "make an age identity",
            "Make a new age X25519 identity in the age-keygen file format.\n"
            "Written to FILE with mode 0600 (never over an existing file), or to stdout.\n"
            "The public key (the recipient to encrypt to) is printed on stderr.")
    p.add_argument("-o", "--output", metavar="FILE", help="write the identity to FILE")
    p.set_defaults(run="keygen")

    p = cmd("encrypt", "encrypt a file",
            "Encrypt FILE (or stdin) for age recipients: --age, SOPS_AGE_RECIPIENTS, or the\n"
            "matching creation rule of .sops.yaml. Writes to stdout unless -i or --output.\n\n"
            "example:\n  macula-secrets encrypt --age age1... -i secrets/console.enc.yaml")
    p.add_argument("file", nargs="?", help="the plaintext file (stdin if omitted)")
    p.add_argument("-a", "--age", metavar="RECIPIENTS",
                   help="comma-separated age recipients (age1..., ssh-ed25519 ..., ssh-rsa ...)")
    p.add_argument("-i", "--in-place", action="store_true", help="replace FILE")
    p.add_argument("--output", metavar="FILE", help="write to FILE")
    p.add_argument("--filename-override", metavar="NAME",
                   help="name used for .sops.yaml rules and the format when reading stdin")
    p.add_argument("--shamir-secret-sharing-threshold", type=int, metavar="N",
                   help="key groups needed to decrypt (with several key groups)")
    _add_formats(p)
    _add_rules(p)
    p.set_defaults(run="encrypt")

    p = cmd("decrypt", "decrypt a file",
            "Decrypt FILE (or stdin) with the identities found as sops finds them.\n"
            "Writes to stdout unless -i or --output.\n\n"
            "examples:\n  macula-secrets decrypt secrets/console.enc.yaml\n"
            "  macula-secrets decrypt --extract '[\"db\"][\"password\"]' secrets/console.enc.yaml")
    p.add_argument("file", nargs="?", help="the encrypted file (stdin if omitted)")
    p.add_argument("--extract", metavar="PATH",
                   help='print only the value at PATH, e.g. \'["db"]["hosts"][0]\'')
    p.add_argument("-i", "--in-place", action="store_true", help="replace FILE")
    p.add_argument("--output", metavar="FILE", help="write to FILE (mode 0600 if new)")
    p.add_argument("--ignore-mac", action="store_true", help="do not check the MAC (dangerous)")
    p.add_argument("--filename-override", metavar="NAME",
                   help="name used to choose the format when reading stdin")
    _add_formats(p)
    p.set_defaults(run="decrypt")

    p = cmd("edit", "edit a file in $EDITOR",
            "Decrypt FILE into a private temporary file, open $SOPS_EDITOR or $EDITOR (else\n"
            "vim, nano or vi), and re-encrypt when the editor exits. Values that did not\n"
            "change keep their exact ciphertext, so git shows only what you changed.\n"
            "A FILE that does not exist starts from an example and a new data key.")
    p.add_argument("file")
    p.add_argument("-a", "--age", metavar="RECIPIENTS", help="recipients for a new file")
    p.add_argument("--ignore-mac", action="store_true", help="do not check the MAC (dangerous)")
    _add_formats(p)
    p.set_defaults(run="edit")

    p = cmd("set", "set one value in a file",
            "Set the value at PATH in FILE, in place. VALUE is JSON: '\"text\"', 5, true,\n"
            "'{\"k\": [1, 2]}'. Only the changed value gets new ciphertext.\n\n"
            "example:\n  macula-secrets set secrets/console.enc.yaml '[\"db\"][\"password\"]' "
            "'\"s3cr3t\"'")
    p.add_argument("file")
    p.add_argument("path", help='tree path, e.g. \'["db"]["password"]\'')
    p.add_argument("value", nargs="?", help="the new value as JSON")
    p.add_argument("--value-file", metavar="FILE", help="read the JSON value from FILE")
    p.add_argument("--value-stdin", action="store_true", help="read the JSON value from stdin")
    p.add_argument("--idempotent", action="store_true",
                   help="do not write the file when the value is already set")
    _add_formats(p)
    p.set_defaults(run="set")

    p = cmd("unset", "remove one value from a file",
            "Remove the key or list item at PATH from FILE, in place.")
    p.add_argument("file")
    p.add_argument("path", help='tree path, e.g. \'["db"]["password"]\'')
    p.add_argument("--idempotent", action="store_true",
                   help="succeed when PATH is already absent")
    _add_formats(p)
    p.set_defaults(run="unset")

    p = cmd("rotate", "switch a file to a new data key",
            "Re-encrypt FILE under a new data key (every value changes). Optionally add or\n"
            "remove age recipients. Writes to stdout unless -i or --output.")
    p.add_argument("file")
    p.add_argument("-i", "--in-place", action="store_true", help="replace FILE")
    p.add_argument("--output", metavar="FILE", help="write to FILE")
    p.add_argument("--add-age", metavar="RECIPIENTS", help="comma-separated recipients to add")
    p.add_argument("--rm-age", metavar="RECIPIENTS", help="comma-separated recipients to remove")
    _add_formats(p)
    p.set_defaults(run="rotate")

    p = cmd("updatekeys", "re-wrap the data key for the recipients in .sops.yaml",
            "Make the recipients of each FILE match its .sops.yaml creation rule. The data\n"
            "key and every value stay the same; only the wrapped keys change. A folder is\n"
            "processed recursively (every SOPS file in it).")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--shamir-secret-sharing-threshold", type=int, metavar="N",
                   help="key groups needed to decrypt")
    p.add_argument("--input-type", choices=_FORMATS, metavar="TYPE", help="input format")
    p.set_defaults(run="updatekeys")

    p = cmd("filestatus", "tell whether a file is encrypted",
            'Print {"encrypted":true} or {"encrypted":false} for FILE.')
    p.add_argument("file")
    p.add_argument("--input-type", choices=_FORMATS, metavar="TYPE", help="input format")
    p.set_defaults(run="filestatus")

    p = cmd("exec-env", "run a command with the file's values as environment variables",
            "Decrypt FILE and run COMMAND with each top-level key as an environment\n"
            "variable. One COMMAND argument runs through /bin/sh -c (as sops does); after\n"
            "'--' several arguments run directly. The child's exit status is returned.\n\n"
            "examples:\n  macula-secrets exec-env secrets/app.enc.env 'echo $DB_PASSWORD'\n"
            "  macula-secrets exec-env secrets/app.enc.yaml -- ./server --port 8080")
    p.add_argument("file")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")
    p.add_argument("--pristine", action="store_true",
                   help="start from an empty environment (only the decrypted values)")
    _add_formats(p)
    p.set_defaults(run="exec-env")

    p = cmd("exec-file", "run a command with the decrypted file in a temporary file",
            "Decrypt FILE into a temporary FIFO (or a 0600 file with --no-fifo) in a private\n"
            "folder, replace every {} in COMMAND with its path, run it, then remove it.\n\n"
            "example:\n  macula-secrets exec-file secrets/app.enc.json 'cat {}'")
    p.add_argument("file")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")
    p.add_argument("--no-fifo", action="store_true", help="use a regular file, not a FIFO")
    p.add_argument("--filename", metavar="NAME", help="name of the temporary file")
    _add_formats(p)
    p.set_defaults(run="exec-file")
    _add_store_commands(cmd, command)
    _add_audit_commands(cmd, command)
    _add_envfile_commands(cmd, command)
    _add_node_commands(cmd, command)
    _add_join_command(cmd)
    _add_init_command(cmd)
    _add_agent_commands(cmd, command)
    _add_token_commands(cmd, command)
    _add_leases_commands(cmd, command)
    _add_serve_command(cmd)
    _add_tui_command(cmd)
    _add_gitops_commands(cmd, command)
    _add_doctor_command(cmd)
    _add_completion_command(cmd)
    return parser


def _home_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", metavar="DIR",
                   help="store folder (default: $MACULA_SECRETS_HOME, else "
                        "~/.local/share/macula-secrets)")


def _store_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tenant", metavar="NAME",
                   help="tenant (namespace above apps; default: $MACULA_SECRETS_TENANT or "
                        "'default')")
    _home_option(p)


def _operations(p: argparse.ArgumentParser, command: str
                ) -> Callable[[str, str, str], argparse.ArgumentParser]:
    """Sub-operations of ``command`` (``key rotate-master``, ``audit tail``): returns
    ``op(name, help, description)``, which adds one and routes it to ``run="command name"``."""
    ops = p.add_subparsers(dest=f"{command}_command", metavar="OPERATION", parser_class=_Parser)
    ops.required = True

    def op(name: str, help_: str, description: str) -> argparse.ArgumentParser:
        q = ops.add_parser(name, help=help_, description=description, formatter_class=_Formatter)
        q.set_defaults(run=f"{command} {name}")
        return q

    return op


def _lease_spec(text: str) -> tuple[str, str]:
    """``run --lease NAME=PATH``, checked while parsing (a bad one is a usage error)."""
    from .runcmd import parse_lease

    return parse_lease(text)


def _add_store_commands(cmd: Callable[[str, str, str], argparse.ArgumentParser],
                        command: str | None) -> None:
    p = cmd("get", "print one secret",
            "Print the value of KEY of APP (the latest version, or --version N).\n"
            "Read from the store, else from the app's file in the secrets folder.\n\n"
            "examples:\n  macula-secrets get console database_url\n"
            "  macula-secrets get console database_url --version 2 --json")
    p.add_argument("app")
    p.add_argument("key")
    p.add_argument("--version", type=int, metavar="N", help="read version N")
    p.add_argument("--json", action="store_true",
                   help="print {tenant, app, key, version, value} as JSON")
    p.add_argument("-n", "--no-newline", action="store_true",
                   help="print the value without a final newline")
    _store_options(p)
    p.set_defaults(run="get")

    p = cmd("put", "store a new version of a secret",
            "Store VALUE as a new version of KEY of APP; without VALUE, read it from\n"
            "standard input (a single trailing newline is dropped), which keeps the value\n"
            "out of your shell history and the process list. When APP has a file in the\n"
            "secrets folder, that one value is changed in the file too.\n\n"
            "examples:\n  printf %s \"$TOKEN\" | macula-secrets put console api_token\n"
            "  macula-secrets put console log_level debug --cas 3")
    p.add_argument("app")
    p.add_argument("key")
    p.add_argument("value", nargs="?", help="the value (default: read standard input)")
    p.add_argument("--cas", type=int, metavar="N",
                   help="write only if the current version is N (0: only if the key is new)")
    p.add_argument("--json", action="store_true", help="print {app, key, version} as JSON")
    _store_options(p)
    p.set_defaults(run="put")

    for name, help_, desc in (
        ("delete", "soft-delete a secret",
         "Mark the latest version of KEY (or --versions) deleted. Reads then find\n"
         "nothing; 'undelete' brings it back. Also removes KEY from the app's file."),
        ("undelete", "restore soft-deleted versions",
         "Undo 'delete' for the latest version of KEY (or --versions)."),
        ("destroy", "erase versions of a secret for good",
         "Erase the stored ciphertext of the given versions of KEY; their records\n"
         "stay in the history, marked destroyed. This cannot be undone."),
    ):
        p = cmd(name, help_, desc)
        p.add_argument("app")
        p.add_argument("key")
        p.add_argument("--versions", metavar="N,M", required=name == "destroy",
                       help="comma-separated version numbers"
                            + ("" if name == "destroy" else " (default: the latest)"))
        _store_options(p)
        p.set_defaults(run=name)

    p = cmd("list", "list apps, or the keys of an app",
            "Without APP, list the apps of the tenant; with APP, its live keys\n"
            "(--all: deleted ones too). Names only, never values.")
    p.add_argument("app", nargs="?")
    p.add_argument("--all", action="store_true", help="include keys whose latest is deleted")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    _store_options(p)
    p.set_defaults(run="list")

    p = cmd("history", "list the versions of a secret",
            "One line per kept version of KEY: number, creation time, state\n"
            "(live, deleted, destroyed), and which one is current.")
    p.add_argument("app")
    p.add_argument("key")
    p.add_argument("--json", action="store_true", help="print the versions as JSON")
    _store_options(p)
    p.set_defaults(run="history")

    p = cmd("rollback", "make an old value current again",
            "Write the value of VERSION as a new version of KEY (history is kept).")
    p.add_argument("app")
    p.add_argument("key")
    p.add_argument("version", type=int)
    _store_options(p)
    p.set_defaults(run="rollback")

    p = cmd("sync", "bring the store in line with the secrets folder (or Vault)",
            "Decrypt every app file (<app>.enc.yaml, .json, .env, .ini) of the secrets\n"
            "folder and store what changed: a new version only where a value changed,\n"
            "a soft delete for keys that left their file. Running it twice changes\n"
            "nothing the second time. A file that fails is named; the others still sync\n"
            "and the exit status is 1.\n\n"
            "With source = vault (MACULA_SECRETS_SOURCE=vault), every app Vault has\n"
            "under the path template is read and the store brought in line the same\n"
            "way (keys Vault no longer has are soft-deleted). When Vault cannot be\n"
            "reached, nothing changes and the exit status is 1.")
    p.add_argument("--json", action="store_true", help="print what changed per app as JSON")
    p.add_argument("--git", metavar="REPO",
                   help="read the app files from this git repository at --rev (no checkout)")
    p.add_argument("--rev", metavar="REV",
                   help="the commit, branch or tag to read with --git (default HEAD)")
    p.add_argument("--path", metavar="DIR", dest="git_path",
                   help="the secrets folder inside the repository (default: secrets)")
    p.add_argument("--force", action="store_true",
                   help="with --git: accept a commit older than the one synced last")
    _store_options(p)
    p.set_defaults(run="sync")

    p = cmd("run", "run a command with an app's secrets as environment variables",
            "Run CMD with every live secret of APP as an environment variable: the name\n"
            "is the key in upper case with other characters as '_' (database.password\n"
            "-> DATABASE_PASSWORD), after --prefix. CMD replaces this process, so its\n"
            "exit status and signals are its own.\n\n"
            "With --credentials-dir DIR, each secret is instead a file DIR/KEY (the key\n"
            "as stored, mode 0400) in a new 0700 directory, and CMD gets\n"
            "CREDENTIALS_DIRECTORY=DIR, as under systemd. This process stays to forward\n"
            "SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2, removes DIR when CMD\n"
            "ends and exits with CMD's status (128+N if signal N ended it). SIGKILL\n"
            "leaves DIR behind: put it on a tmpfs such as /run.\n\n"
            "With --format, the variables are printed (plaintext!) and nothing is run.\n\n"
            "With --lease NAME=PATH (vault source), a dynamic credential is read from\n"
            "PATH and each of its fields passed as NAME_FIELD (DB=database/creds/ro ->\n"
            "DB_USERNAME, DB_PASSWORD); this process stays, as with --credentials-dir,\n"
            "renews the lease while CMD runs and revokes it when CMD ends. --app is\n"
            "optional then. See docs/run.md and docs/leases.md.\n\n"
            "examples:\n  macula-secrets run --app console -- ./server --port 8080\n"
            "  macula-secrets run --app console --app billing --prefix APP_ -- env\n"
            "  macula-secrets run --app console --credentials-dir \"$XDG_RUNTIME_DIR/c\" \\\n"
            "      -- ./server\n"
            "  eval \"$(macula-secrets run --app console --format shell --quiet)\"\n"
            "  macula-secrets run --lease DB=database/creds/readonly -- ./report")
    p.add_argument("--app", action="append", metavar="APP",
                   help="app whose secrets to pass (repeatable; required without --lease)")
    p.add_argument("--lease", action="append", metavar="NAME=PATH", type=_lease_spec,
                   help="pass a dynamic credential read from PATH (vault source) as NAME_FIELD "
                        "variables, renewed while CMD runs and revoked when it ends "
                        "(repeatable)")
    p.add_argument("--prefix", metavar="PREFIX", help="put PREFIX before every variable name")
    p.add_argument("--only", action="append", metavar="KEY",
                   help="pass only this key (repeatable)")
    p.add_argument("--keep-case", action="store_true",
                   help="do not upper-case the names")
    p.add_argument("--pristine", action="store_true",
                   help="start from an empty environment (only the secrets)")
    p.add_argument("--credentials-dir", metavar="DIR",
                   help="pass the secrets as files DIR/KEY (systemd credentials), not as "
                        "variables; DIR must be new or empty and is removed afterwards")
    p.add_argument("--also-env", action="store_true",
                   help="with --credentials-dir: pass the variables too")
    p.add_argument("--format", choices=("dotenv", "json", "shell"),
                   help="print the variables in this format instead of running CMD")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="with --format: no plaintext warning on stderr")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD",
                   help="the command and its arguments, after '--'")
    _store_options(p)
    p.set_defaults(run="run")

    p = cmd("key", "master key operations",
            "Operations on the store's master key.")
    if command is not None and command != "key":
        return  # p is a stub: the key subcommands are not needed
    op = _operations(p, "key")
    k = op("rotate-master", "replace the master key",
           "Make a new master key and re-wrap every data key with it, in one\ntransaction. "
           "Processes that have the store open keep working.\nWith --reencrypt, every app "
           "also gets a new data key and every value\nis re-encrypted (a progress bar shows "
           "how far it got).")
    k.add_argument("--reencrypt", action="store_true",
                   help="also replace data keys and re-encrypt every value")
    _store_options(k)
    _add_share_operations(op)
    _add_key_move_operations(op)


def _add_share_operations(op: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    """``key split`` and ``key combine``: recovery shares (cli/sharecmds.py)."""
    s = op("split", "split the master key into M-of-N recovery shares",
           "Split the store's master key (or, with --identity, an age identity) into\n"
           "N shares, any M of which restore it; fewer than M reveal nothing about it.\n"
           "Give each share to a different custodian, printed or as a file. Each share\n"
           "is one line, macula-share-1-XXXX-XXXX-..., with a checksum: a mistyped\n"
           "character is caught and the share named. The first two groups are the\n"
           "split id, the same on every share of one split; shares of different splits\n"
           "never combine. After `key rotate-master`, split the new key: shares of the\n"
           "old one no longer open the store.\n\n"
           "examples:\n"
           "  macula-secrets key split --shares 5 --threshold 3\n"
           "  macula-secrets key split --shares 3 --threshold 2 --out-dir /media/usb\n"
           "  macula-secrets key split --shares 3 --threshold 2 --identity keys.txt")
    s.add_argument("--shares", type=int, required=True, metavar="N",
                   help="how many shares to make (2 to 255)")
    s.add_argument("--threshold", type=int, required=True, metavar="M",
                   help="how many shares restore the key (2 to N)")
    s.add_argument("--identity", metavar="FILE",
                   help="split the age identity in FILE (one AGE-SECRET-KEY-1 line) instead "
                        "of the master key")
    s.add_argument("--out-dir", metavar="DIR",
                   help="write one file per share into DIR (mode 0600) instead of printing "
                        "them")
    _home_option(s)
    c = op("combine", "restore the master key from recovery shares",
           "Restore what `key split` split from M of its shares: from FILEs (share\n"
           "files, '#' lines ignored), else typed or pasted at a hidden prompt one by\n"
           "one (a mistyped share is named and asked for again), else one share per\n"
           "line of standard input. Case, spaces and dashes do not matter.\n\n"
           "A master key is written to <home>/master.key (mode 0600), and the store is\n"
           "opened with it to check that it fits; an existing different key file is\n"
           "never replaced. An age identity is written (mode 0600) to\n"
           "$SOPS_AGE_KEY_FILE, else ~/.config/sops/age/keys.txt, if that does not\n"
           "exist yet. --output FILE writes either somewhere else.\n\n"
           "examples:\n"
           "  macula-secrets key combine\n"
           "  macula-secrets key combine share-1.txt share-4.txt share-5.txt\n"
           "  macula-secrets key combine --output /tmp/master.key < shares.txt")
    c.add_argument("files", nargs="*", metavar="FILE", help="share files (default: ask)")
    c.add_argument("--output", metavar="FILE",
                   help="write the restored key to FILE (mode 0600; never over another key)")
    _home_option(c)


def _add_key_move_operations(op: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    """``key migrate`` and ``key escrow`` (cli/keycmds.py)."""
    m = op("migrate", "move the master key to another provider",
           "Move the store's master key to another provider: a sealed file\n"
           "(<home>/master.key.sealed) for passphrase, identity (the node's age or\n"
           "ssh-ed25519 key, [master_key] identity) or tpm ([master_key] tcti, pcrs),\n"
           "or back to a plain key file. The new copy is read back before the old\n"
           "file is zeroed and removed; every secret stays readable. A passphrase is\n"
           "asked twice on the terminal (or taken from MACULA_SECRETS_PASSPHRASE).\n"
           "With no [master_key] provider set, the store then finds the new file by\n"
           "itself.\n\n"
           "examples:\n"
           "  macula-secrets key migrate --to passphrase\n"
           "  macula-secrets key migrate --to tpm      # with [master_key] pcrs = \"sha256:7\"\n"
           "  macula-secrets key migrate --to file     # back to a plain key file")
    m.add_argument("--to", required=True, choices=("file", "passphrase", "identity", "tpm"),
                   help="the new provider")
    m.add_argument("--keep-old", action="store_true",
                   help="keep the old key file (as <file>.old when sealed to sealed)")
    _home_option(m)
    e = op("escrow", "write the recovery copy of the master key now",
           "Write <home>/master.key.recovery.age: the master key encrypted to offline\n"
           "recovery recipients (age), so losing this node's TPM or passphrase is not\n"
           "losing the data. Stores with [master_key] recovery_recipients keep it up\n"
           "to date on every rotation; this writes it now (for a store made before).\n"
           "Recover with: age -d -i RECOVERY_IDENTITY master.key.recovery.age > master.key")
    e.add_argument("--recipient", action="append", metavar="AGE_RECIPIENT",
                   help="a recovery recipient (repeat for several; default: "
                        "[master_key] recovery_recipients)")
    _home_option(e)


def _add_agent_operations(p: argparse.ArgumentParser) -> None:
    from .keycmds import DEFAULT_TTL, parse_duration

    op = _operations(p, "agent")
    s = op("start", "start the agent (in the background)",
           "Start the agent, in the background unless --foreground (for systemd).")
    s.add_argument("--ttl", type=parse_duration, default=float(DEFAULT_TTL), metavar="TIME",
                   help="forget each key this long after it was unlocked: 90s, 15m, 2h "
                        "(default 15m)")
    s.add_argument("--foreground", action="store_true", help="stay in the foreground")
    s.add_argument("--socket", metavar="PATH",
                   help="the socket (default: $MACULA_SECRETS_AGENT_SOCK, see agent --help)")
    for name, summary in (("stop", "stop the agent (it forgets everything)"),
                          ("lock", "forget every unlocked key now"),
                          ("status", "show what the agent holds (counts, never keys)")):
        q = op(name, summary, summary[0].upper() + summary[1:] + ".")
        if name == "status":
            q.add_argument("--json", action="store_true",
                           help="print {socket, pid, held, ttl_seconds} as JSON")


def _add_agent_commands(cmd: Callable[[str, str, str], argparse.ArgumentParser],
                        command: str | None) -> None:
    p = cmd("agent", "unlock once: hold unlocked keys for a session (start, lock, ...)",
            "The agent keeps unsealed master keys and unlocked age identities in memory\n"
            "for --ttl after they were unlocked, on a Unix socket only its user can open\n"
            "(a 0700 folder; the peer's uid is checked). Every command and Secrets.open\n"
            "use it when it runs, so a passphrase, TPM or hardware key is asked once per\n"
            "session, not once per file. Its socket: $MACULA_SECRETS_AGENT_SOCK, else\n"
            "$XDG_RUNTIME_DIR/macula-secrets/agent.sock, else\n"
            "/tmp/macula-secrets-<uid>/agent.sock.\n\n"
            "examples:\n"
            "  macula-secrets agent start --ttl 30m\n"
            "  macula-secrets agent lock      # forget everything now\n"
            "  macula-secrets agent stop")
    if command is None or command == "agent":
        _add_agent_operations(p)
    u = cmd("unlock", "open a store whose key is only in recovery shares (via the agent)",
            "Vault-style unseal: combine M recovery shares (from FILEs, a hidden prompt,\n"
            "or standard input, as `key combine`), check that the key opens the store,\n"
            "and hand it to the running agent. No key file is written: the store opens\n"
            "while the agent holds the key (until --ttl, `agent lock` or a reboot).\n\n"
            "examples:\n"
            "  macula-secrets agent start && macula-secrets unlock\n"
            "  macula-secrets unlock share-1.txt share-3.txt")
    u.add_argument("files", nargs="*", metavar="FILE", help="share files (default: ask)")
    u.set_defaults(run="unlock")
    _home_option(u)


def _add_audit_commands(cmd: Callable[[str, str, str], argparse.ArgumentParser],
                        command: str | None) -> None:
    p = cmd("audit", "read and check the audit log",
            "The audit log (<home>/audit.log) has one JSON line per change and per\n"
            "command-line read: who, what (tenant/app/key/version; values only as HMACs),\n"
            "when, result, in a SHA-256 hash chain.")
    if command is not None and command != "audit":
        return
    op = _operations(p, "audit")
    t = op("tail", "print the last entries",
           "Print the last N entries of the audit log, oldest first.")
    t.add_argument("-n", "--lines", type=int, default=20, metavar="N",
                   help="how many entries (default 20)")
    t.add_argument("--json", action="store_true", help="print the raw JSON lines")
    _home_option(t)
    v = op("verify", "check the hash chain",
           "Check every line's hash and its link to the line before.\n"
           "Exit 1 naming the first line that breaks the chain.")
    _home_option(v)
    for q in (t, v):
        q.add_argument("--server", action="store_true",
                       help="the server's log (<home>/audit-server.log, one line per request, "
                            "and a request line before each change)")


def _add_recipient_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-r", "--recipient", action="append", metavar="RECIPIENT",
                   help="encrypt to RECIPIENT: age1..., or an ssh-ed25519/ssh-rsa public key "
                        "(repeatable)")
    p.add_argument("-R", "--recipients-file", action="append", metavar="FILE",
                   help="encrypt to the recipients in FILE, one per line; '#' lines are "
                        "comments (repeatable)")


def _add_envfile_commands(cmd: Callable[[str, str, str], argparse.ArgumentParser],
                          command: str | None) -> None:
    p = cmd("envfile", "age-encrypted env files: encrypt, decrypt, edit",
            "An env file is a .env (KEY=value lines, python-dotenv's rules) encrypted\n"
            "whole with age, named <app>.env.age in the secrets folder. The real age\n"
            "reads and writes the same files. Identities for decryption are found as\n"
            "sops finds them (SOPS_AGE_KEY_FILE and friends).\n\n"
            "examples:\n"
            "  macula-secrets envfile encrypt -r age1... -o secrets/console.env.age console.env\n"
            "  macula-secrets envfile decrypt secrets/console.env.age\n"
            "  macula-secrets envfile edit -R recipients.txt secrets/console.env.age")
    if command is not None and command != "envfile":
        return
    op = _operations(p, "envfile")
    e = op(
        "encrypt", "encrypt a .env file with age",
        "Encrypt FILE (it must parse as dotenv) to age recipients: -r and -R,\n"
        "else SOPS_AGE_RECIPIENTS (comma-separated). Binary age unless -a.\n"
        "Writes to stdout unless -o or -i; a new file gets mode 0600.\n\n"
        "examples:\n"
        "  macula-secrets envfile encrypt -r age1... -o console.env.age console.env\n"
        "  macula-secrets envfile encrypt -a -R recipients.txt -i console.env")
    e.add_argument("file", metavar="FILE", help="the plaintext .env file")
    _add_recipient_options(e)
    e.add_argument("-a", "--armor", action="store_true",
                   help="write ASCII-armored age (-----BEGIN AGE ENCRYPTED FILE-----)")
    out = e.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", metavar="OUT", help="write to OUT (atomically)")
    out.add_argument("-i", "--in-place", action="store_true",
                     help="replace FILE with its encrypted form")
    d = op(
        "decrypt", "print a decrypted env file",
        "Decrypt FILE (binary or armored age) and print the .env text, or\n"
        "write it to OUT (mode 0600 if new). This is the plaintext: prefer\n"
        "`macula-secrets get` or `run` to reading it into a file.\n\n"
        "example:\n  macula-secrets envfile decrypt secrets/console.env.age")
    d.add_argument("file", metavar="FILE", help="the age-encrypted env file")
    d.add_argument("-o", "--output", metavar="OUT", help="write to OUT instead of stdout")
    t = op(
        "edit", "edit an env file in $EDITOR",
        "Decrypt FILE into a 0600 file in a private 0700 temporary folder, open\n"
        "$SOPS_EDITOR or $EDITOR (else vim, nano or vi), check that the result\n"
        "parses as dotenv, and re-encrypt it atomically. The editor needs a\n"
        "file, so this is the one command that puts plaintext on disk; the\n"
        "folder is removed when the editor exits. An unchanged file is not\n"
        "rewritten. A missing FILE starts empty.\n\n"
        "age files do not record their recipients: give them again with -r/-R\n"
        "(or SOPS_AGE_RECIPIENTS), or the file could become unreadable to some.\n\n"
        "example:\n"
        "  macula-secrets envfile edit -R recipients.txt secrets/console.env.age")
    t.add_argument("file", metavar="FILE", help="the age-encrypted env file")
    _add_recipient_options(t)
    t.add_argument("-a", "--armor", action="store_true",
                   help="write ASCII-armored age (default: as FILE was; binary for a new one)")


def _add_node_commands(cmd: Callable[[str, str, str], argparse.ArgumentParser],
                       command: str | None) -> None:
    p = cmd("node", "enroll or remove nodes of a secrets folder: add, remove, list",
            "A node is a machine that decrypts the secrets folder with its own age key\n"
            "(age1...) or ssh-ed25519 host key. Its key is a recipient in the .sops.yaml\n"
            "creation rules (found from the folder upwards, or --config), its name is in\n"
            "the file's 'nodes:' mapping (sops ignores that key).\n\n"
            "examples:\n"
            "  macula-secrets node add edge-7 age1... --dir secrets\n"
            "  macula-secrets node add edge-8 \"$(cat /etc/ssh/ssh_host_ed25519_key.pub)\"\n"
            "  macula-secrets node remove edge-7\n"
            "  macula-secrets node list --json\n"
            "  macula-secrets node pending                  # join requests, with their codes\n"
            "  macula-secrets node approve edge-9 --code 1234-5678-9012 --app console")
    if command is not None and command != "node":
        return
    op = _operations(p, "node")
    a = op("add", "enroll a node and re-wrap every file for it",
           "Add PUBKEY (age1... or an ssh-ed25519 public key line) to the creation rules\n"
           "that match the folder's SOPS files, record NAME, and re-wrap the data key of\n"
           "every file for its new recipients (as updatekeys: values unchanged). Every\n"
           "file must open with the identities found as sops finds them. If one cannot\n"
           "be opened or written, nothing changes.")
    a.add_argument("name", metavar="NAME", help="the node's name (letters, digits, . _ -)")
    a.add_argument("pubkey", metavar="PUBKEY", help="age1... or 'ssh-ed25519 AAAA... [comment]'")
    r = op("remove", "remove a node and rotate the files it could read",
           "Remove NAME's key from every creation rule and give each file it could read\n"
           "a new data key (every value re-encrypted, as rotate), so the data keys the\n"
           "node may have kept open nothing new. If one file cannot be opened or\n"
           "written, nothing changes.")
    r.add_argument("name", metavar="NAME")
    ls = op("list", "list the nodes, their keys, rules and files",
            "List the enrolled nodes: public key, creation rules (by index) that hold\n"
            "it, and the folder's files whose metadata lists it. Reads no secrets.")
    ls.add_argument("--json", action="store_true", help="print JSON")
    pe = op("pending", "join requests waiting for approval, with their codes",
            "List the join requests this bootstrap holds (macula-secrets join on a new\n"
            "node): name, the code the node printed, its public key, approvals so far\n"
            "and when the request expires. Compare the code with the node's before\n"
            "approving. See docs/mesh.md.")
    pe.add_argument("--json", action="store_true", help="print JSON")
    ap = op("approve", "approve a join request: enroll the node and hand it its grant",
            "Approve NAME's pending join request. The last approval it needs enrolls\n"
            "the node in the secrets folder (as node add), makes a read token on this\n"
            "server for the granted apps and seals the grant (their values, the token,\n"
            "the server certificate) to the node's key; the node's join picks it up.\n"
            "With [mesh] approvers, each approver runs this with --approver and the\n"
            "--identity that opens their part; [mesh] approvals of them are needed.")
    ap.add_argument("name", metavar="NAME")
    ap.add_argument("--code", metavar="CODE",
                    help="the code the node printed: refused when it differs")
    ap.add_argument("--app", action="append", default=None, metavar="APP",
                    help="grant this app's values and a read token for it (repeat; "
                         "default: [mesh] apps)")
    ap.add_argument("--master-key", action="store_true",
                    help="also hand over this store's master key (for a node that runs a "
                         "copy of this store)")
    ap.add_argument("--approver", metavar="NAME", help="who approves ([mesh.approvers])")
    ap.add_argument("--identity", metavar="FILE",
                    help="the approver's age identity or ssh-ed25519 private key")
    rj = op("reject", "reject a join request",
            "Reject NAME's pending join request: nothing is enrolled or handed over;\n"
            "the node's join ends with an error.")
    rj.add_argument("name", metavar="NAME")
    for q in (a, r, ls, ap):
        q.add_argument("--dir", metavar="SECRETS_DIR",
                       help="the secrets folder (default: $MACULA_SECRETS_DIR, or ./secrets)")
    for q in (pe, ap, rj, r):
        _home_option(q)


def _add_join_command(cmd: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    p = cmd("join", "ask a bootstrap node to let this node in",
            "Send a join request to the bootstrap's server and wait for an operator to\n"
            "approve it there (node pending / node approve). The connection is trusted\n"
            "only if the server's certificate has the SHA-256 --fingerprint that serve\n"
            "printed on the bootstrap: otherwise nothing is sent. This node's identity\n"
            "is <home>/node.key (age, made 0600 if missing) or --ssh-key; only its\n"
            "public key is sent. A code is printed: the operator compares it with the\n"
            "one node pending shows. When approved, the granted values are written to\n"
            "this node's store and the token for the bootstrap to <home>/bootstrap/.\n"
            "Interrupted, the same command picks the same request up. See docs/mesh.md.\n\n"
            "example:\n"
            "  macula-secrets join https://10.0.0.1:8200 --name edge-9 \\\n"
            "      --fingerprint AB:CD:...:EF")
    p.add_argument("url", metavar="URL", help="the bootstrap's server, https://HOST:PORT")
    p.add_argument("--name", required=True, help="this node's name (letters, digits, . _ -)")
    p.add_argument("--fingerprint", required=True, metavar="SHA256",
                   help="the bootstrap certificate's SHA-256 fingerprint, as serve prints it")
    p.add_argument("--ssh-key", metavar="FILE",
                   help="join with this ssh-ed25519 private key (e.g. the host key) "
                        "instead of <home>/node.key")
    p.add_argument("--timeout", type=float, default=900.0, metavar="SECONDS",
                   help="how long to wait for approval (default 900)")
    p.add_argument("--poll", type=float, default=2.0, metavar="SECONDS",
                   help="seconds between asks (default 2)")
    p.add_argument("--configure", action="store_true",
                   help="when this node has no config file yet, write <home>/config.toml "
                        "reading the granted apps live from the bootstrap (source = vault)")
    _store_options(p)
    p.set_defaults(run="join")



def _add_leases_commands(cmd: Callable[[str, str, str], argparse.ArgumentParser],
                         command: str | None) -> None:
    """``leases list/revoke``: leases of dynamic credentials in Vault (cli/leasecmds.py)."""
    p = cmd("leases", "dynamic credentials' leases in Vault / OpenBao: list, revoke",
            "The leases the vault source holds under a prefix (LIST sys/leases/lookup),\n"
            "and revoking one or all of them: to clean up after a process that was\n"
            "killed before it could revoke its own (run --lease, Secrets.lease). The\n"
            "token must be allowed on sys/leases/lookup, sys/leases/revoke and (sudo)\n"
            "sys/leases/revoke-prefix. Lease ids are shortened unless --full-ids.\n"
            "See docs/leases.md.\n\n"
            "examples:\n"
            "  macula-secrets leases list database/creds/readonly\n"
            "  macula-secrets leases list database/ --json --full-ids\n"
            "  macula-secrets leases revoke --prefix database/creds/readonly")
    if command is not None and command != "leases":
        return
    op = _operations(p, "leases")
    c = op("list", "the leases under a prefix, with their TTL and expiry",
           "List the leases under PREFIX (e.g. database/creds/readonly), walking its\n"
           "sub-prefixes; ids are shortened (database/creds/readonly/Ab12…) unless\n"
           "--full-ids. On a terminal, or with --long, each lease is looked up\n"
           "(sys/leases/lookup) and shown with its TTL left, expiry, whether it is\n"
           "renewable and its last renewal; piped, one id a line. Nothing under\n"
           "PREFIX prints nothing.")
    c.add_argument("prefix", nargs="?", default="", metavar="PREFIX",
                   help="the path the leases were read from, or part of it (default: all)")
    c.add_argument("-l", "--long", action="store_true",
                   help="look each lease up: TTL, expiry, renewable, last renewal")
    c.add_argument("--json", action="store_true",
                   help="print JSON: a list of ids, or of objects with --long")
    c.add_argument("--full-ids", action="store_true",
                   help="print whole lease ids (they let a suitable token revoke the lease)")
    _store_options(c)
    c = op("revoke", "revoke one lease, or every lease under --prefix",
           "Revoke the lease LEASE_ID (sys/leases/revoke), or every lease under\n"
           "--prefix PREFIX (sys/leases/revoke-prefix, which needs sudo). The\n"
           "credential stops working at once (the database engine drops the role).")
    c.add_argument("lease_id", nargs="?", metavar="LEASE_ID", help="the whole lease id")
    c.add_argument("--prefix", metavar="PREFIX",
                   help="revoke every lease under this path, e.g. database/creds/readonly")
    _store_options(c)


def _add_token_commands(cmd: Callable[[str, str, str], argparse.ArgumentParser],
                        command: str | None) -> None:
    """``token create/list/revoke``: the server's tokens (cli/tokencmds.py)."""
    p = cmd("token", "tokens for the server: create, list, revoke",
            "Tokens let clients call `macula-secrets serve` (X-Vault-Token). A token is\n"
            "random, shown once when it is made, and stored only as a hash in\n"
            "<home>/tokens.db. Each carries one policy (read: read+list; write: also\n"
            "create, update, delete; admin: everything) on app and key globs in one\n"
            "tenant; anything else is denied. Revoke and list by accessor, the token's\n"
            "public name in the audit log.\n\n"
            "examples:\n"
            "  macula-secrets token create --app console --policy read --ttl 30d\n"
            "  macula-secrets token create --app 'billing-*' --key 'db_*' --policy write\n"
            "  macula-secrets token list\n"
            "  macula-secrets token revoke 5f0c2a9e41d7b8c3a6e0f912")
    if command is not None and command != "token":
        return
    op = _operations(p, "token")
    c = op("create", "make a token (printed once, on stdout)",
           "Make a token for POLICY on the apps matching each --app glob and the keys\n"
           "matching each --key glob (default '*'), in one tenant. The token is printed\n"
           "once on stdout; its accessor, rules and expiry go to stderr. Globs use\n"
           "* ? [...] and never contain '/' or '..'.")
    c.add_argument("--app", action="append", required=True, metavar="GLOB",
                   help="apps the token reaches (repeatable), e.g. console or 'billing-*'")
    c.add_argument("--key", action="append", metavar="GLOB",
                   help="keys the token reaches within those apps (repeatable; default '*')")
    c.add_argument("--policy", required=True, choices=("read", "write", "admin"),
                   help="read (read, list), write (also create, update, delete) or admin "
                        "(everything, with destroy and metadata)")
    c.add_argument("--tenant", metavar="NAME",
                   help="the one tenant the token reaches (default: $MACULA_SECRETS_TENANT "
                        "or 'default')")
    c.add_argument("--all-tenants", action="store_true",
                   help="reach every tenant (only with --policy admin)")
    c.add_argument("--ttl", metavar="DURATION",
                   help="expire after DURATION: 90s, 30m, 1h, 7d (default: never)")
    c.add_argument("--name", metavar="NAME",
                   help="display name in listings and the audit log (default: policy and apps)")
    c.add_argument("--uid", type=int, metavar="UID",
                   help="also bind the token to this Unix user: a peer of `serve "
                        "--unix-socket` running as UID gets its rights without sending it")
    c.add_argument("--json", action="store_true",
                   help="print the token and its record as JSON on stdout")
    ls = op("list", "list tokens (never the tokens themselves)",
            "One entry per token: accessor, state (active, expired, revoked), expiry,\n"
            "display name and rules. Tokens are not stored, so they cannot be shown.")
    ls.add_argument("--json", action="store_true", help="print JSON")
    r = op("revoke", "revoke a token by its accessor",
           "Revoke the token with ACCESSOR (from `token list` or `token create`). A\n"
           "running server refuses it within a second.")
    r.add_argument("accessor", metavar="ACCESSOR")
    for q in (c, ls, r):
        _home_option(q)


def _add_gitops_commands(cmd: Callable[[str, str, str], argparse.ArgumentParser],
                         command: str | None) -> None:
    """``watch``, ``gitops resolve``, ``diff``, ``merge-driver``: the GitOps path."""
    p = cmd("watch", "sync the secrets folder whenever its files change",
            "Watch the secrets folder and sync each app file that is changed, added\n"
            "or removed (as `sync` does), so that subscribers and `Secrets.get` see the\n"
            "new values within a second of a `git pull`. A file that fails to decrypt\n"
            "or parse is named on stderr and its last good values stay in service.\n"
            "Runs until SIGTERM or Ctrl-C.\n\n"
            "example:\n  macula-secrets watch --dir /srv/gitops/secrets")
    p.add_argument("--dir", metavar="DIR",
                   help="the secrets folder (default: $MACULA_SECRETS_DIR, or ./secrets)")
    p.add_argument("--debounce", type=int, default=50, metavar="MS",
                   help="wait this long for a burst of writes to settle (default 50)")
    p.add_argument("--json", action="store_true", help="print one JSON line per sync")
    _store_options(p)
    p.set_defaults(run="watch")

    p = cmd("gitops", "resolve an app spec's secret and env references",
            "GitOps helpers for reconcilers and deploy scripts.\n\n"
            "examples:\n"
            "  macula-secrets gitops resolve deploy/console.yaml\n"
            "  macula-secrets gitops resolve deploy/console.yaml --format dotenv\n"
            "  macula-secrets gitops resolve deploy/console.yaml --exec -- ./server")
    if command is None or command == "gitops":
        op = _operations(p, "gitops")
        r = op("resolve", "turn a spec's environment into concrete values",
               "Read SPEC (YAML or JSON) and resolve its environment: a value is a\n"
               "literal, {secret: \"app/key\"} (from the store) or {env: \"VAR\"} (from\n"
               "this process's environment). A missing secret or variable is an error\n"
               "that names the entry; nothing is printed then. Output as JSON (default)\n"
               "or dotenv, or run a command with the values added to its environment.")
        r.add_argument("spec", metavar="SPEC", help="the app spec file ('-' for stdin)")
        r.add_argument("--format", choices=("json", "dotenv"), default="json",
                       help="output format (default json)")
        # --exec is a flag and CMD a positional: an option with nargs=REMAINDER
        # cannot take the '--' that must come before a command with options.
        r.add_argument("--exec", dest="exec", action="store_true",
                       help="run CMD (after '--') with the values in its environment")
        r.add_argument("command", nargs="+", metavar="CMD",
                       help="the command and its arguments, after --exec --").required = False
        r.usage = ("%(prog)s [-h] [--format {json,dotenv}] [--tenant NAME] [--home DIR] "
                   "SPEC [--exec -- CMD [ARG ...]]")
        _store_options(r)

    p = cmd("diff", "show what changed between two encrypted files, key by key",
            "Decrypt A and B (files, or REV:path from git) and print the keys that were\n"
            "added, removed or changed, without printing values that did not change.\n"
            "Exit status 0 when they hold the same values, 1 when they differ, 2 when\n"
            "one cannot be read or decrypted (as diff(1)).\n\n"
            "examples:\n"
            "  macula-secrets diff secrets/console.enc.yaml /tmp/console.enc.yaml\n"
            "  macula-secrets diff HEAD~1:secrets/console.enc.yaml "
            "HEAD:secrets/console.enc.yaml")
    p.add_argument("a", metavar="A", help="a file, or REV:path in the git repository here")
    p.add_argument("b", metavar="B", help="a file, or REV:path")
    p.add_argument("--show-values", action="store_true",
                   help="also print the old and new values of changed keys")
    p.set_defaults(run="diff")

    p = cmd("merge-driver", "git merge driver for sops files (edits of different keys merge)",
            "Merge OURS and THEIRS of one sops-encrypted file against their common\n"
            "ancestor BASE, key by key: edits of different keys merge cleanly and the\n"
            "result is re-encrypted (new MAC) into OURS, as git expects. Edits of the\n"
            "same key to different values are a conflict (exit 1; OURS unchanged);\n"
            "a side that cannot be decrypted exits 2. See docs/git.md.\n\n"
            "set up (once per clone):\n"
            "  git config merge.sops.name 'sops files, key by key'\n"
            "  git config merge.sops.driver 'macula-secrets merge-driver %O %A %B %P'\n"
            "  echo '*.enc.yaml merge=sops' >> .gitattributes")
    p.add_argument("base", metavar="BASE", help="the common ancestor's version (%%O)")
    p.add_argument("ours", metavar="OURS", help="our version, replaced by the result (%%A)")
    p.add_argument("theirs", metavar="THEIRS", help="their version (%%B)")
    p.add_argument("path", metavar="PATH", nargs="?",
                   help="the file's path in the repository (%%P), for .sops.yaml and format")
    p.set_defaults(run="merge-driver")


def _add_serve_command(cmd: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    """``serve``: the Vault KV v2 compatible server (cli/servecmd.py, server/run.py)."""
    p = cmd("serve", "serve the store over the Vault KV v2 HTTP API",
            "Serve the store as Vault's KV v2 API (secret/data/macula/<app>/<key>, the\n"
            "value in the field 'value'), so hvac and the vault/bao CLIs work unchanged.\n"
            "Tokens come from `token create`; the tenant is X-Vault-Namespace. TLS by\n"
            "default: without --tls-cert a self-signed certificate is made in\n"
            "<home>/server-tls/ and its SHA-256 fingerprint printed. Every request is\n"
            "written to <home>/audit-server.log before it is answered (fsynced within\n"
            "0.1 s; --audit-sync always: before the answer). SIGTERM or\n"
            "Ctrl-C stops it after the requests in flight.\n\n"
            "examples:\n"
            "  macula-secrets serve\n"
            "  BAO_CACERT=~/.local/share/macula-secrets/server-tls/cert.pem \\\n"
            "      BAO_ADDR=https://127.0.0.1:8200 bao kv get -mount=secret macula/console/db\n"
            "  macula-secrets serve --address 0.0.0.0:8200 --tls-cert c.pem --tls-key k.pem\n"
            "  macula-secrets serve --unix-socket /run/macula/secrets.sock")
    p.add_argument("--address", default="127.0.0.1:8200", metavar="HOST:PORT",
                   help="where to listen (default 127.0.0.1:8200)")
    p.add_argument("--tls-cert", metavar="FILE", help="server certificate (PEM), with --tls-key")
    p.add_argument("--tls-key", metavar="FILE", help="its private key (PEM)")
    p.add_argument("--tls-client-ca", metavar="FILE",
                   help="require client certificates signed by this CA (mTLS)")
    p.add_argument("--tls-disable", action="store_true",
                   help="plain HTTP; allowed only on a loopback address")
    p.add_argument("--unix-socket", metavar="PATH",
                   help="listen on a Unix socket instead; the peer's uid identifies it "
                        "when it sends no token")
    p.add_argument("--unix-socket-mode", default="0600", choices=("0600", "0660"),
                   help="permissions of the socket (default 0600)")
    p.add_argument("--grace", type=float, default=10.0, metavar="SECONDS",
                   help="on SIGTERM, time requests in flight get to finish (default 10)")
    p.add_argument("--audit-sync", default="interval", choices=("interval", "always"),
                   help="interval (default): each request's audit line is written before "
                        "the answer and fsynced within 0.1 s; always: the answer waits "
                        "for the fsync")
    _home_option(p)
    p.set_defaults(run="serve")


def _add_tui_command(cmd: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    """``tui``: the terminal UI (cli/tuicmd.py, tui/)."""
    p = cmd("tui", "terminal UI: browse, reveal, edit, history, rollback, key wizard",
            "Browse tenants, apps and keys of the store in the terminal; reveal a value\n"
            "(masked again after --reveal-seconds or when the selection moves), add,\n"
            "edit, delete, undelete, history and rollback, sync, master key rotation and\n"
            "a live audit tail. On a home without a store it starts the key-setup\n"
            "wizard. Needs the tui extra: pip install 'macula-secrets[tui]'. See\n"
            "docs/tui.md.\n\n"
            "examples:\n"
            "  macula-secrets tui\n"
            "  macula-secrets tui --tenant acme --reveal-seconds 5")
    p.add_argument("--tenant", help="tenant selected at start (default: the configured one)")
    p.add_argument("--reveal-seconds", type=float, default=15.0, metavar="SECONDS",
                   help="a revealed value is masked again after this long (default 15)")
    _home_option(p)
    p.set_defaults(run="tui")


def _add_init_command(cmd: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    """``init``: the first-run wizard (cli/initcmd.py)."""
    p = cmd("init", "first run: age identity, master key, recovery",
            "Set up this machine: (1) an age identity for the SOPS files (new, or\n"
            "--import-identity; an existing file is reused, never overwritten), whose\n"
            "public key goes into .sops.yaml; (2) the store and where its master key\n"
            "lives (file, passphrase, identity, tpm), written to [master_key] in\n"
            "<home>/config.toml; (3) optionally recovery shares and an escrow copy.\n"
            "On a terminal it asks, with defaults in brackets; otherwise (or with\n"
            "--yes) flags and defaults answer. An initialised home is refused unless\n"
            "--force, which only does the missing steps and never replaces a key.\n\n"
            "examples:\n"
            "  macula-secrets init\n"
            "  macula-secrets init --yes --provider tpm --pcrs sha256:7 \\\n"
            "      --shares 3 --threshold 2 --shares-dir /media/usb\n"
            "  MACULA_SECRETS_PASSPHRASE=... macula-secrets init --yes --provider passphrase\n"
            "  macula-secrets init --yes --provider identity \\\n"
            "      --node-identity /etc/ssh/ssh_host_ed25519_key --recovery-recipient age1...")
    p.add_argument("-y", "--yes", action="store_true",
                   help="ask nothing: flags, else the defaults (a passphrase is still asked "
                        "on a terminal when no other source is given)")
    p.add_argument("--force", action="store_true",
                   help="run on an initialised home: only the missing steps, no key replaced")
    p.add_argument("--identity-out", metavar="FILE",
                   help="the age identity file (default: $SOPS_AGE_KEY_FILE, else "
                        "~/.config/sops/age/keys.txt)")
    p.add_argument("--import-identity", metavar="FILE",
                   help="copy the age identity in FILE there instead of making a new one")
    p.add_argument("--provider", metavar="KIND",
                   help="where the master key lives: file (default), passphrase, identity, "
                        "tpm (when a TPM is present)")
    p.add_argument("--passphrase-file", metavar="FILE",
                   help="passphrase: read it from FILE (mode 0600), else "
                        "$MACULA_SECRETS_PASSPHRASE, else asked twice")
    p.add_argument("--node-identity", metavar="FILE",
                   help="identity: the age identity or ssh key to seal to (default: the "
                        "identity of step 1), e.g. /etc/ssh/ssh_host_ed25519_key")
    p.add_argument("--tcti", metavar="TCTI",
                   help="tpm: which TPM (default device:/dev/tpmrm0)")
    p.add_argument("--pcrs", metavar="SELECTION",
                   help="tpm: bind the key to these PCRs, e.g. sha256:7")
    p.add_argument("--shares", type=int, metavar="N", help="split the master key into N shares")
    p.add_argument("--threshold", type=int, metavar="M", help="of which M restore it")
    p.add_argument("--shares-dir", metavar="DIR",
                   help="write the shares as 0600 files into DIR (default: print them)")
    p.add_argument("--recovery-recipient", action="append", metavar="RECIPIENT",
                   help="age1... recipient of an escrow copy of the master key (repeatable)")
    _home_option(p)
    p.set_defaults(run="init")


def _add_doctor_command(cmd: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    """``doctor``: the node's health checks (cli/doctorcmd.py, doctor.py)."""
    p = cmd("doctor", "check keys, store, audit chains, clock, TPM, Vault: what to fix",
            "Check this node and print one line per finding (ok, info, warn, FAIL), with\n"
            "what to run under each problem: key file permissions (0600, owned by you),\n"
            "the store's integrity (SQLite's check, and every live version decrypted:\n"
            "a changed row is named tenant/app/key/version), the audit logs' hash\n"
            "chains, the clock, the TPM (tpm provider), each Vault address (vault\n"
            "source) and the secrets folder's files. Never prints a value. Exit 1 when\n"
            "a check failed. See docs/doctor.md.\n\n"
            "examples:\n"
            "  macula-secrets doctor\n"
            "  macula-secrets doctor --json | jq '.checks[] | select(.status == \"fail\")'")
    p.add_argument("--json", action="store_true",
                   help="print {ok, home, checks: [{check, status, message, hint}]}")
    _store_options(p)
    p.set_defaults(run="doctor")


def _add_completion_command(cmd: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    """``completion``: shell completion scripts made from this parser (cli/completion.py)."""
    p = cmd("completion", "print a shell completion script (bash, zsh, fish)",
            "Print a completion script for SHELL: commands, their operations and\n"
            "options, and choices such as --input-type, completed as you type.\n\n"
            "examples:\n"
            "  source <(macula-secrets completion bash)         # in ~/.bashrc\n"
            "  macula-secrets completion zsh > \"${fpath[1]}/_macula-secrets\"\n"
            "  macula-secrets completion fish > ~/.config/fish/completions/"
            "macula-secrets.fish")
    p.add_argument("shell", choices=("bash", "zsh", "fish"), metavar="SHELL",
                   help="bash, zsh or fish")
    p.set_defaults(run="completion")


_STORE_COMMANDS = frozenset((
    "get", "put", "delete", "undelete", "destroy", "list", "history", "rollback", "sync",
    "run", "key", "audit",
))


class _Stub:
    """Stands in for a subparser that is not selected: accepts and drops definitions."""

    def __init__(self, parser: argparse.ArgumentParser | None) -> None:
        self._parser = parser

    def add_argument(self, *args: object, **kwargs: object) -> None:
        return None

    def add_mutually_exclusive_group(self) -> _Stub:
        return self

    def set_defaults(self, **kwargs: object) -> None:
        if self._parser is not None:
            self._parser.set_defaults(**kwargs)


_COMMANDS = frozenset((
    "keygen", "encrypt", "decrypt", "edit", "set", "unset", "rotate", "updatekeys",
    "filestatus", "exec-env", "exec-file", "envfile", "node", "join", "init", "agent",
    "unlock",
    "token", "leases", "serve", "tui", "watch", "gitops", "diff", "merge-driver",
    "doctor", "completion", *_STORE_COMMANDS,
))


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is not an option)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--config":
            skip = True
            continue
        if arg.startswith("-"):
            if arg in ("-h", "--help"):
                return None
            continue
        return arg
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_in(argv)
    args = build_parser(command if command in _COMMANDS else None).parse_args(argv)
    from .output import report, set_sops_codes

    set_sops_codes(bool(args.sops_exit_codes))

    try:
        if args.run == "init":
            from . import initcmd

            return initcmd.run(args)
        if args.run == "serve":
            from . import servecmd

            return servecmd.run(args)
        if args.run == "tui":
            from . import tuicmd  # imports textual only now: the CLI's start-up stays fast

            return tuicmd.run(args)
        if args.run == "completion":
            from . import completion  # the parser alone: no store, no agent

            return completion.run(args)
        if args.run in ("diff", "merge-driver"):
            from . import diffcmds  # files and age identities only: no store, no agent

            return diffcmds.run(args)
        if args.run.startswith("token "):
            from . import tokencmds  # tokens need no master key: no agent, no unlock

            return tokencmds.run(args)
        if not args.run.startswith("agent "):
            from ..agent import use_if_running

            use_if_running(os.environ)  # unlock once: keys the agent holds are not asked for
        if args.run == "doctor":
            from . import doctorcmd

            return doctorcmd.run(args)
        if args.run == "watch":
            from . import watchcmd

            return watchcmd.run(args)
        if args.run.startswith("leases "):
            from . import leasecmds

            return leasecmds.run(args)
        if args.run.startswith("gitops "):
            from . import gitopscmds

            return gitopscmds.run(args)
        if args.run.startswith("agent ") or args.run in ("unlock", "key migrate", "key escrow"):
            from . import keycmds

            return keycmds.run(args)
        if args.run in ("key split", "key combine"):
            from . import sharecmds

            return sharecmds.run(args)
        if args.run in _STORE_COMMANDS or args.run.startswith(("key ", "audit ")):
            from . import storecmds

            return storecmds.run(args)
        if args.run == "join":
            from . import joincmds

            return joincmds.run(args)
        if args.run.startswith("node "):
            from . import nodecmds

            return nodecmds.run(args)
        if args.run.startswith("envfile "):
            from . import envcmds

            return envcmds.run(args)
        if args.run in ("exec-env", "exec-file"):
            from . import execcmds

            return execcmds.run(args)
        from . import filecmds

        return filecmds.run(args)
    except KeyboardInterrupt:
        sys.stderr.write("macula: interrupted\n")
        return X.INTERRUPTED
    except BrokenPipeError:
        return X.ERROR
    except Exception as exc:
        if os.environ.get("MACULA_DEBUG"):
            raise
        return report(exc)


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
