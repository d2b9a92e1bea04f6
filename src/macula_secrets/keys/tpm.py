"""Seal a secret to a TPM 2.0 and unseal it again, with tpm2-tools.

Part of the keys layer. :class:`TpmSealer` is the ``tpm`` kind of
:class:`~macula_secrets.keys.sealed.Sealer`: it turns the store's master key
(or an age identity, as bytes) into a blob that only the same TPM can turn
back, and, with a PCR selection, only while those PCRs hold the values they
had when the secret was sealed. Most callers want
:class:`~macula_secrets.keys.sealed.SealedKeyFile`, which stores the blob.

How: a primary key is derived in the owner hierarchy from a fixed template
(``ecc256:aes128cfb``, sha256). A TPM derives the same primary from the
same template every time, until its owner hierarchy is cleared; another
TPM derives a different one. The secret becomes a sealed data object under
that primary (``tpm2_create -i -``), whose public and private parts (the
private part encrypted by the primary) go into the blob. Unsealing derives
the primary again, loads the object and runs ``tpm2_unseal``, satisfying
the PCR policy when there is one.

The tpm2-tools programs run as subprocesses, without a shell, in a private
temporary folder (mode 0700, removed afterwards) and with relative file
names. The secret goes in on standard input and comes out on standard
output: it never appears in a process's arguments, which any local user
can read in ``/proc/<pid>/cmdline``, and it is never written to a file.
The folder holds only TPM context files and the object's public and
(TPM-encrypted) private parts.

The blob is UTF-8 JSON, one object on one line::

    {"format": "macula-tpm-seal", "version": 1,
     "parent": "owner:ecc256:aes128cfb:sha256",
     "primary": "<sha256 of the primary's public point, hex>",
     "pcrs": "sha256:7" or null,
     "public": "<base64 TPM2B_PUBLIC>", "private": "<base64 TPM2B_PRIVATE>"}

``primary`` tells "sealed by another TPM" apart from "damaged" before the
TPM is asked to load anything. A reader refuses a version it does not know.

Not for: secrets longer than 128 bytes (the TPM's limit for sealed data),
or concurrent use with other programs of a TPM that has no resource manager
(the ``swtpm`` simulator, ``/dev/tpm0``): each tool leaves its objects
loaded there, so this module flushes all transient objects and sessions
after each command. With the kernel's resource manager (``/dev/tpmrm0``,
the default) those flushes touch only this process's own objects.
Commands cross the bus to the TPM unencrypted (no salted session), so an
attacker probing a discrete TPM's bus can read the secret while it moves.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from typing import Final

from ..errors import ConfigError, KeySourceError

__all__ = ["DEFAULT_TCTI", "MAX_SECRET_SIZE", "TpmSealer", "parse_pcrs"]

DEFAULT_TCTI: Final = "device:/dev/tpmrm0"
"""The kernel's TPM resource manager: the usual TPM 2.0 of a Linux machine."""

MAX_SECRET_SIZE: Final = 128
"""Largest secret a TPM seals (``MAX_SYM_DATA``): a 32-byte key or an age identity fit."""

_FORMAT: Final = "macula-tpm-seal"
_VERSION: Final = 1
_PARENT: Final = "owner:ecc256:aes128cfb:sha256"
_MAX_BLOB: Final = 64 * 1024
_TIMEOUT: Final = 120.0
_INSTALL_HINT: Final = "install tpm2-tools, e.g. apt install tpm2-tools"
_PCR_BANKS: Final = ("sha1", "sha256", "sha384", "sha512", "sm3_256")

# TPM 2.0 response codes (TPM 2.0 Part 2, 6.6). A format-one code carries the
# error number in its low 6 bits plus which parameter, handle or session failed:
# 0x1DF is TPM_RC_INTEGRITY for parameter 1, 0x99D TPM_RC_POLICY_FAIL for session 1.
_RC_FMT1: Final = 0x080
_RC_POLICY_FAIL: Final = 0x01D
_RC_INTEGRITY: Final = 0x01F
_RC_AUTH_FAIL: Final = 0x00E
_RC_BAD_AUTH: Final = 0x022
_RC_PCR_CHANGED: Final = 0x928  # a warning (format zero): PCRs changed during the policy
_RC_LOCKOUT: Final = 0x921

# One TPM operation at a time per process: without a resource manager the
# flushes after each step would remove another thread's objects.
_LOCK = threading.Lock()


def parse_pcrs(text: str) -> str:
    """Check a PCR selection like ``sha256:0,7`` and return it normalised.

    Banks are joined with ``+`` (``sha1:7+sha256:7``); PCR numbers are 0-23,
    sorted and without repeats in the result.

    Raises:
        ConfigError: the selection is malformed.
    """
    banks: list[str] = []
    seen: set[str] = set()
    for part in text.strip().split("+"):
        bank, sep, numbers = part.strip().partition(":")
        bank = bank.strip().lower()
        if not sep or bank not in _PCR_BANKS or bank in seen:
            raise ConfigError(f"bad PCR selection {text!r}",
                              hint="write it like sha256:0,7 (banks: " + ", ".join(_PCR_BANKS)
                              + "; join banks with +)")
        seen.add(bank)
        pcrs: set[int] = set()
        for item in (n.strip() for n in numbers.split(",")):
            if not item.isdecimal() or not 0 <= int(item) <= 23:
                raise ConfigError(f"bad PCR selection {text!r}: PCR numbers are 0 to 23",
                                  hint="write it like sha256:0,7")
            pcrs.add(int(item))
        banks.append(f"{bank}:" + ",".join(str(n) for n in sorted(pcrs)))
    return "+".join(banks)


class TpmSealer:
    """Seals secrets to one TPM 2.0, optionally bound to PCR values.

    ``tcti`` selects the TPM as tpm2-tools' ``-T`` option does:
    ``device:/dev/tpmrm0`` (the default), or ``swtpm:host=127.0.0.1,port=2321``
    for the simulator. ``TPM2TOOLS_TCTI`` in the environment is ignored, since
    ``-T`` is always given. ``pcrs`` (``sha256:0,7``) binds new seals to the current
    values of those PCRs; ``None`` binds to nothing. Unsealing uses the PCR
    selection stored in the blob, whatever ``pcrs`` is.

    Methods may be called from any thread; TPM operations are serialised
    within the process.
    """

    kind = "tpm"

    def __init__(self, tcti: str | None = None, pcrs: str | None = None) -> None:
        self.tcti = tcti.strip() if tcti and tcti.strip() else DEFAULT_TCTI
        self.pcrs = parse_pcrs(pcrs) if pcrs is not None and pcrs.strip() else None
        self.description = f"TPM at {self.tcti}" + (f" (PCRs {self.pcrs})" if self.pcrs else "")

    def __repr__(self) -> str:
        return f"TpmSealer(tcti={self.tcti!r}, pcrs={self.pcrs!r})"

    def seal(self, secret: bytes) -> bytes:
        """Seal ``secret`` (1 to 128 bytes) to this TPM; the blob is JSON text.

        The secret reaches ``tpm2_create`` on its standard input only.

        Raises:
            ValueError: the secret is empty or longer than 128 bytes.
            KeySourceError: tpm2-tools are missing, the TPM cannot be reached
                or refuses (the PCR bank does not exist, for example).
        """
        if not 0 < len(secret) <= MAX_SECRET_SIZE:
            raise ValueError(f"a TPM seals 1 to {MAX_SECRET_SIZE} bytes")
        with self._workdir() as work:
            primary = self._create_primary(work)
            attributes = "fixedtpm|fixedparent"
            policy: list[str] = []
            if self.pcrs is not None:
                self._run(work, "tpm2_createpolicy", "-Q", "--policy-pcr", "-l", self.pcrs,
                          "-L", "policy.digest", sessions=True)
                policy = ["-L", "policy.digest"]
            else:
                attributes += "|userwithauth"
            # Attributes are spelled out rather than left to tpm2-tools' defaults:
            # with a PCR policy, userwithauth must be clear, or an empty password
            # would unseal the object whatever the PCRs hold.
            self._run(work, "tpm2_create", "-Q", "-C", "primary.ctx", "-g", "sha256",
                      "-a", attributes, *policy, "-i", "-", "-u", "seal.pub", "-r", "seal.priv",
                      input=secret)
            public = _read(work, "seal.pub")
            private = _read(work, "seal.priv")
        record = {
            "format": _FORMAT,
            "version": _VERSION,
            "parent": _PARENT,
            "primary": primary,
            "pcrs": self.pcrs,
            "public": base64.b64encode(public).decode("ascii"),
            "private": base64.b64encode(private).decode("ascii"),
        }
        return (json.dumps(record, separators=(", ", ": ")) + "\n").encode("ascii")

    def unseal(self, blob: bytes) -> bytes:
        """The secret sealed in ``blob``; it comes back on ``tpm2_unseal``'s standard output.

        Raises:
            KeySourceError: the blob is damaged or of an unknown version; it was
                sealed by another TPM (or this TPM's owner hierarchy was cleared);
                the PCR values changed since the secret was sealed; tpm2-tools
                are missing or the TPM cannot be reached.
        """
        sealed = _parse_blob(blob)
        with self._workdir() as work:
            primary = self._create_primary(work)
            if sealed.primary != primary:
                raise KeySourceError(
                    f"the key was sealed by another TPM, not the TPM at {self.tcti}",
                    hint="unseal it on the machine that sealed it (a cleared TPM "
                    "counts as another one), or restore the key from a backup")
            _write(work, "seal.pub", sealed.public)
            _write(work, "seal.priv", sealed.private)
            try:
                self._run(work, "tpm2_load", "-Q", "-C", "primary.ctx", "-u", "seal.pub",
                          "-r", "seal.priv", "-c", "seal.ctx")
            except _TpmError as exc:
                # The primary is the one that sealed, so a blob that does not load
                # was changed after sealing (the TPM checks an HMAC over it).
                if exc.is_transient() or exc.is_unreachable():
                    raise
                detail = "integrity check failed" if exc.number == _RC_INTEGRITY else exc.detail
                raise KeySourceError(f"the TPM-sealed key is damaged: the TPM at "
                                     f"{self.tcti} cannot load it ({detail})",
                                     hint="restore the key from a backup") from None
            auth = ["-p", f"pcr:{sealed.pcrs}"] if sealed.pcrs else []
            try:
                return self._run(work, "tpm2_unseal", "-c", "seal.ctx", *auth, sessions=True)
            except _TpmError as exc:
                if sealed.pcrs and (exc.number == _RC_POLICY_FAIL
                                    or exc.code == _RC_PCR_CHANGED):
                    raise KeySourceError(
                        f"the PCR values ({sealed.pcrs}) changed since the key was sealed: "
                        f"the TPM at {self.tcti} refuses to unseal it",
                        hint="boot the configuration the key was sealed in, or restore "
                        "the key from a backup and seal it again") from None
                raise

    # Plumbing.

    @contextlib.contextmanager
    def _workdir(self) -> Iterator[str]:
        """Hold the TPM lock, make a private folder, and translate tpm2-tools' failures.

        ``mkdtemp`` makes the folder 0700 (checked again here), so the context
        files in it stay private to this user; it is removed on the way out.
        """
        try:
            with _LOCK, tempfile.TemporaryDirectory(prefix="macula-tpm-") as work:
                os.chmod(work, 0o700)
                yield work
        except _TpmError as exc:
            raise exc.to_key_source_error() from None

    def _create_primary(self, work: str) -> str:
        """Derive the owner-hierarchy primary; return a fingerprint of its public key."""
        out = self._run(work, "tpm2_createprimary", "-C", "o", "-g", "sha256",
                        "-G", "ecc256:aes128cfb", "-c", "primary.ctx")
        point = re.findall(rb"^([xy]): *([0-9a-fA-F]+)\s*$", out, re.MULTILINE)
        coordinates = dict(point)
        if set(coordinates) != {b"x", b"y"}:
            raise KeySourceError(f"unexpected output from tpm2_createprimary for the "
                                 f"{self.description}", hint="is tpm2-tools 5 or newer installed?")
        point_bytes = bytes.fromhex((coordinates[b"x"] + coordinates[b"y"]).decode("ascii"))
        return hashlib.sha256(point_bytes).hexdigest()

    def _run(self, work: str, tool: str, *args: str, input: bytes = b"",
             sessions: bool = False) -> bytes:
        """Run one tool against this TPM in ``work``; its standard output.

        The arguments name files relative to ``work`` and never hold a secret
        (they are public in ``/proc/<pid>/cmdline``); secrets travel in
        ``input`` and the returned output only.
        """
        try:
            return self._call(work, tool, *args, "-T", self.tcti, input=input)
        finally:
            # Without a resource manager (swtpm, /dev/tpm0) objects and sessions
            # stay loaded after a tool exits and the TPM soon runs out of slots.
            flushes = ["-t", "-s", "-l"] if sessions else ["-t"]
            for flag in flushes:
                with contextlib.suppress(KeySourceError, _TpmError):
                    self._call(work, "tpm2_flushcontext", flag, "-T", self.tcti)

    def _call(self, work: str, tool: str, *args: str, input: bytes = b"") -> bytes:
        path = shutil.which(tool)
        if path is None:
            raise KeySourceError(f"tpm2-tools is not installed ({tool} not found on PATH)",
                                 hint=_INSTALL_HINT)
        try:
            proc = subprocess.run([path, *args], input=input, capture_output=True, cwd=work,
                                  timeout=_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise KeySourceError(f"the {self.description} did not answer within "
                                 f"{_TIMEOUT:.0f} s ({tool})") from None
        except OSError as exc:
            raise KeySourceError(f"cannot run {tool}: {exc.strerror}", hint=_INSTALL_HINT) from None
        if proc.returncode != 0:
            raise _TpmError(self, tool, proc.stderr.decode("utf-8", "replace"))
        return proc.stdout


class _TpmError(Exception):
    """A tpm2-tools program failed; ``number`` is the TPM error number, if any."""

    def __init__(self, sealer: TpmSealer, tool: str, stderr: str) -> None:
        super().__init__(tool)
        self.sealer = sealer
        self.tool = tool
        self.stderr = stderr
        codes = re.findall(r"ErrorCode \(0x([0-9a-fA-F]+)\)", stderr)
        self.code: int | None = int(codes[-1], 16) if codes else None
        self.number: int | None = None
        """The error number of a format-one TPM code (layer 0); ``None`` otherwise."""
        if self.code is not None and self.code < 0x10000 and self.code & _RC_FMT1:
            self.number = self.code & 0x03F
        lines = [line.strip() for line in stderr.splitlines()
                 if line.startswith("ERROR: ") and "Unable to run" not in line]
        self.detail = lines[-1][len("ERROR: "):] if lines else "no error message"
        """tpm2-tools' own summary, e.g. ``Esys_Unseal(0x99D) - tpm:session(1):...``."""

    def is_unreachable(self) -> bool:
        """The TCTI could not be opened: no TPM there."""
        return "Could not load tcti" in self.stderr or "Failed to instantiate TCTI" in self.stderr

    def is_transient(self) -> bool:
        """A TPM warning (format zero, 0x900 set): busy, out of memory, locked out."""
        return (self.code is not None and self.code < 0x10000
                and not self.code & _RC_FMT1 and (self.code & 0x900) == 0x900)

    def to_key_source_error(self) -> KeySourceError:
        """The error for people: names the TPM and what tpm2-tools said, never a secret."""
        where = self.sealer.tcti
        if self.is_unreachable():
            hint: str | None = f"check that a TPM 2.0 answers at {where}"
            if "No such file or directory" in self.stderr:
                hint = ("this machine shows no TPM 2.0 device there (is the TPM enabled "
                        "in the firmware?), or choose another TCTI")
            elif "Permission denied" in self.stderr:
                hint = "add the user to the tss group (or run as a user who may use the TPM)"
            elif "Connection refused" in self.stderr:
                hint = "is the TPM simulator (swtpm) running on that port?"
            return KeySourceError(f"no TPM reachable at {where}", hint=hint)
        hint = None  # what to do is clear only for the cases below
        if self.number in (_RC_BAD_AUTH, _RC_AUTH_FAIL) and self.tool == "tpm2_createprimary":
            hint = ("the TPM's owner hierarchy has a password; macula-secrets needs it "
                    "empty (the default), see tpm2_changeauth -c owner")
        elif self.code == _RC_LOCKOUT:
            hint = ("the TPM is in dictionary-attack lockout; wait, or reset it with "
                    "tpm2_dictionarylockout")
        elif self.code is not None and self.is_transient():
            hint = "the TPM is busy or out of memory; try again"
        return KeySourceError(f"{self.tool} failed with the {self.sealer.description}: "
                              f"{self.detail}", hint=hint)


class _Sealed:
    __slots__ = ("pcrs", "primary", "private", "public")

    def __init__(self, primary: str, pcrs: str | None, public: bytes, private: bytes) -> None:
        self.primary = primary
        self.pcrs = pcrs
        self.public = public
        self.private = private


def _parse_blob(blob: bytes) -> _Sealed:
    corrupt = KeySourceError("the TPM-sealed key is damaged or is not a macula-secrets TPM seal")
    if len(blob) > _MAX_BLOB:
        raise corrupt
    try:
        record = json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise corrupt from None
    if not isinstance(record, dict) or record.get("format") != _FORMAT:
        raise corrupt
    version = record.get("version")
    if version != _VERSION:
        raise KeySourceError(f"the TPM-sealed key has format version {version!r}; "
                             f"this macula-secrets reads version {_VERSION}",
                             hint="upgrade macula-secrets")
    if record.get("parent") != _PARENT:
        raise KeySourceError(f"the TPM-sealed key is under an unknown parent key "
                             f"{record.get('parent')!r}", hint="upgrade macula-secrets")
    primary, pcrs = record.get("primary"), record.get("pcrs")
    public, private = record.get("public"), record.get("private")
    if not (isinstance(primary, str) and re.fullmatch(r"[0-9a-f]{64}", primary)
            and isinstance(public, str) and isinstance(private, str)
            and (pcrs is None or isinstance(pcrs, str))):
        raise corrupt
    try:
        pcrs = parse_pcrs(pcrs) if pcrs is not None else None
        public_bytes = base64.b64decode(public, validate=True)
        private_bytes = base64.b64decode(private, validate=True)
    except (ConfigError, binascii.Error):
        raise corrupt from None
    if not public_bytes or not private_bytes:
        raise corrupt
    return _Sealed(primary, pcrs, public_bytes, private_bytes)


def _read(work: str, name: str) -> bytes:
    with open(os.path.join(work, name), "rb") as f:
        return f.read()


def _write(work: str, name: str, data: bytes) -> None:
    fd = os.open(os.path.join(work, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
