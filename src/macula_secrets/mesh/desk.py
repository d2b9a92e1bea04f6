"""The bootstrap's side of joining: join requests on disk, their approval and their delivery.

The server (``sys/macula/join``) and the operator's commands (``node
pending/approve/reject``) are different processes; they share
``<home>/join/``, a 0700 folder with one 0600 JSON file per request,
changed only under an ``flock`` of ``<home>/join/.lock`` and replaced
atomically. A request goes through::

    unproven --proof--> pending --approvals--> approved --poll--> delivered
        \\                  \\--reject--> rejected
         \\-- (2 min) --> expired      \\-- (request_ttl) --> expired

*Proof*: the node answers a challenge sealed to its public key, so a
request names a key its sender holds; polls carry the same proof. Only a
commitment (SHA-256) of the challenge is stored, so the files do not let
anyone poll as the node.

*Approvals*: with ``[mesh] approvals = M`` and ``[mesh.approvers]``
(name = age or ssh-ed25519 public key), each request gets one random nonce
per approver, sealed to that approver; an approval reveals the approver's
nonce, which only their private key can open. M approvals that match their
commitments complete it. One operator cannot approve for another, even with
write access to these files.

*Delivery*: the grant (what the node needs, see :mod:`.grant`) is sealed
to the node's key when the last approval is given and handed out once, to
the poll that proves the request; then it is dropped from the file.

Replays: every nonce the desk has seen is remembered for a day after its
request ended; a request older than :data:`~.protocol.CLOCK_SKEW` is
refused whatever it carries. Every step is written to the audit log.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets as _secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from .._config import MeshConfig
from .._fs import atomic_write
from ..errors import ConfigError, ConflictError, FormatError, LimitError, NotFoundError
from .protocol import (
    CHALLENGE_BYTES,
    CLOCK_SKEW,
    JoinMessage,
    b64,
    commitment,
    matches_commitment,
    open_sealed,
    seal,
    unb64,
)

if TYPE_CHECKING:
    from ..audit import AuditLog
    from ..keys.age import AgeIdentity

__all__ = ["JOIN_DIR", "GrantMaker", "JoinDesk", "JoinRecord", "Scope"]

JOIN_DIR: Final = "join"
PROOF_WINDOW: Final = 120.0
"""Seconds a request has to prove its key before it is dropped."""
KEEP_AFTER: Final = 86400.0
"""Seconds an ended request (and its nonce) is kept: replays within it are named."""
MAX_LIVE: Final = 64
"""Requests waiting at once; more are refused (a flood cannot fill the disk)."""
LIVE: Final = frozenset({"unproven", "pending", "approved"})


@dataclass(frozen=True, slots=True)
class Scope:
    """What an approval grants: the values of ``apps`` and, if asked, the master key."""

    apps: tuple[str, ...] = ()
    master_key: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"apps": list(self.apps), "master_key": self.master_key}


@dataclass(slots=True, repr=False)
class JoinRecord:
    """One request as stored (the file's JSON, typed)."""

    id: str
    message: JoinMessage
    received: float
    expires: float
    status: str
    challenge_commit: str
    required: int
    approvers: dict[str, dict[str, str]] = field(default_factory=dict)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    scope: Scope | None = None
    grant: str | None = None
    token_accessor: str | None = None
    ended: float | None = None

    def __repr__(self) -> str:
        # Not the dataclass repr: approvals hold revealed nonces, and the grant is
        # better left out of logs even sealed.
        return (f"JoinRecord({self.id[:8]!r}, name={self.name!r}, status={self.status!r}, "
                f"approvals={len(self.approvals)}/{self.required})")

    @property
    def name(self) -> str:
        return self.message.name

    @property
    def code(self) -> str:
        return self.message.code

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "message": self.message.to_json(), "received": self.received,
                "expires": self.expires, "status": self.status,
                "challenge_commit": self.challenge_commit, "required": self.required,
                "approvers": self.approvers, "approvals": self.approvals,
                "scope": None if self.scope is None else self.scope.to_json(),
                "grant": self.grant, "token_accessor": self.token_accessor,
                "ended": self.ended}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> JoinRecord:
        scope = doc.get("scope")
        return cls(
            id=str(doc["id"]), message=JoinMessage.parse(doc["message"]),
            received=float(doc["received"]), expires=float(doc["expires"]),
            status=str(doc["status"]), challenge_commit=str(doc["challenge_commit"]),
            required=int(doc["required"]), approvers=dict(doc.get("approvers") or {}),
            approvals=list(doc.get("approvals") or []),
            scope=None if scope is None else Scope(tuple(scope["apps"]),
                                                   bool(scope["master_key"])),
            grant=doc.get("grant"), token_accessor=doc.get("token_accessor"),
            ended=doc.get("ended"))


GrantMaker = Callable[[JoinRecord, Scope], tuple[bytes, str | None]]
"""Makes the grant of an approved request: ``(plaintext JSON, token accessor)``.

Called under the desk's lock, once, when the last approval comes; what it
raises leaves the request pending and the approval unrecorded.
"""


class JoinDesk:
    """Join requests of one bootstrap home; safe across processes (``flock``)."""

    def __init__(self, home: str, *, fingerprint: str | None, config: MeshConfig,
                 audit: AuditLog | None = None,
                 is_enrolled: Callable[[str], bool] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.folder = os.path.join(home, JOIN_DIR)
        self.fingerprint = fingerprint
        """The server certificate's fingerprint (64 hex): requests must name it."""
        self.config = config
        self.audit = audit
        self.is_enrolled = is_enrolled
        self.clock = clock

    def __repr__(self) -> str:
        return f"JoinDesk({self.folder!r})"

    # -- the server's side -----------------------------------------------------------

    def submit(self, body: object) -> dict[str, Any]:
        """A new request from a node: checked, stored unproven; the challenge to answer.

        Raises:
            FormatError: a malformed request, the wrong bootstrap, a stale time.
            ConflictError: a replay, a name already waiting or enrolled.
            LimitError: too many requests are waiting.
        """
        message = JoinMessage.parse(body)
        now = self.clock()
        if self.fingerprint is None or message.bootstrap != self.fingerprint:
            raise FormatError("the join request names another bootstrap's certificate",
                              hint="pin the fingerprint this server prints at start")
        if abs(now - message.created) > CLOCK_SKEW:
            raise FormatError("the join request is too old or from the future",
                              hint="check both machines' clocks")
        from ..keys.age import parse_recipient

        parse_recipient(message.recipient)  # a key age can encrypt to, or ConfigError
        challenge = _secrets.token_bytes(CHALLENGE_BYTES)
        with self._locked():
            records = self._load_all(now)
            if any(r.message.nonce == message.nonce for r in records):
                self._audit("join-refused", {"name": message.name, "reason": "replayed"},
                            result="denied")
                raise ConflictError("this join request was seen before (a replay)")
            if any(r.name == message.name and r.status in LIVE for r in records):
                raise ConflictError(f"a join request of {message.name} is already waiting",
                                    hint="approve or reject it on the bootstrap first")
            if sum(r.status in LIVE for r in records) >= MAX_LIVE:
                raise LimitError("too many join requests are waiting")
            if self.is_enrolled is not None and self.is_enrolled(message.name):
                raise ConflictError(f"node {message.name} is enrolled already",
                                    hint="remove it first (node remove) or pick another name")
            record = JoinRecord(
                id=_secrets.token_hex(16), message=message, received=now,
                expires=now + PROOF_WINDOW, status="unproven",
                challenge_commit=commitment(challenge), required=self.config.approvals)
            for approver, recipient in sorted(self.config.approvers.items()):
                nonce = _secrets.token_bytes(CHALLENGE_BYTES)
                record.approvers[approver] = {
                    "sealed": seal(_approval_payload(record, nonce), recipient),
                    "commit": commitment(nonce)}
            # Audit first, everywhere here: no step without its line (fail closed).
            self._audit("join-request", {"name": message.name, "code": message.code,
                                         "recipient": message.recipient,
                                         "request": record.id[:8]})
            self._save(record)
        return {"request_id": record.id, "code": message.code,
                "challenge": seal(challenge, message.recipient),
                "expires_at": int(record.expires)}

    def poll(self, request_id: str, proof: object) -> dict[str, Any]:
        """The state of a request, for the node that proves it holds the key.

        The first valid proof makes the request pending (``node pending``
        lists it); the poll after approval gets the sealed grant, once.

        Raises:
            NotFoundError: no such request, or the proof does not match
                (the two are not told apart).
        """
        secret = unb64(proof, "the proof")
        now = self.clock()
        with self._locked():
            record = self._load(request_id)
            if record is None or not matches_commitment(secret, record.challenge_commit):
                raise NotFoundError("no such join request")
            record = self._expire(record, now)
            answer: dict[str, Any] = {"status": record.status, "code": record.code,
                                      "approvals": len(record.approvals),
                                      "required": record.required,
                                      "expires_at": int(record.expires)}
            if record.status == "unproven":
                record.status = "pending"
                record.expires = now + self.config.request_ttl
                answer.update(status="pending", expires_at=int(record.expires))
                self._audit("join-proven", {"name": record.name, "code": record.code})
                self._save(record)
            elif record.status == "approved":
                answer["grant"] = record.grant
                record.status, record.grant, record.ended = "delivered", None, now
                self._audit("join-deliver", {"name": record.name, "code": record.code})
                self._save(record)
            return answer

    # -- the operator's side ---------------------------------------------------------

    def requests(self, *, waiting_only: bool = True) -> list[JoinRecord]:
        """Requests by arrival; only those an operator can act on unless ``waiting_only`` is off."""
        now = self.clock()
        with self._locked():
            records = self._load_all(now)
        if waiting_only:
            records = [r for r in records if r.status == "pending"]
        return sorted(records, key=lambda r: r.received)

    def approve(self, name: str, *, make_grant: GrantMaker, code: str | None = None,
                approver: str | None = None, identities: Sequence[AgeIdentity] = (),
                scope: Scope | None = None) -> JoinRecord:
        """Record one approval of ``name``'s pending request; the last one makes the grant.

        With approvers configured, ``approver`` names who approves and
        ``identities`` must open that approver's sealed nonce. The first
        approval fixes the scope; later ones must ask for the same or none.

        Raises:
            NotFoundError: no pending request of ``name``.
            ConflictError: a wrong ``code``, a second approval by the same
                approver, a different scope than the first approval.
            ConfigError: an approver is needed, or unknown.
            NoMatchingKeyError: ``identities`` cannot open the approver's nonce.
        """
        now = self.clock()
        with self._locked():
            record = self._pending(name, now)
            if code is not None and code.strip() != record.code:
                raise ConflictError(f"the code of {name}'s request is not {code.strip()}",
                                    hint="compare again: reject the request if they differ")
            if record.scope is not None and scope is not None and scope != record.scope:
                raise ConflictError(
                    f"{name}'s request was approved for {_describe(record.scope)} already",
                    hint="approve the same scope, or reject the request")
            final_scope = record.scope or scope or Scope(self.config.apps)
            entry: dict[str, Any] = {"approver": None, "at": now}
            if record.approvers:
                entry.update(self._check_approver(record, approver, identities))
            elif approver is not None:
                raise ConfigError("no approvers are configured: approve without --approver")
            done = len(record.approvals) + 1 >= record.required
            if done:
                grant, accessor = make_grant(record, final_scope)
                record.grant = seal(grant, record.message.recipient)
                record.token_accessor = accessor
                record.status = "approved"
            record.approvals.append(entry)
            record.scope = final_scope
            self._audit("join-approve", {"name": name, "code": record.code,
                                         "approver": entry["approver"],
                                         "approvals": len(record.approvals),
                                         "required": record.required,
                                         "apps": list(final_scope.apps),
                                         "master_key": final_scope.master_key,
                                         "complete": done})
            self._save(record)
        return record

    def reject(self, name: str) -> JoinRecord:
        """Refuse ``name``'s waiting request; its next poll is told so."""
        now = self.clock()
        with self._locked():
            record = self._pending(name, now)
            record.status, record.ended = "rejected", now
            self._audit("join-reject", {"name": name, "code": record.code})
            self._save(record)
        return record

    def removed(self, name: str) -> list[str]:
        """Mark ``name``'s delivered requests removed; their token accessors (to revoke)."""
        now = self.clock()
        accessors = []
        with self._locked():
            for record in self._load_all(now):
                if record.name == name and record.status in ("delivered", "approved"):
                    record.status, record.grant, record.ended = "removed", None, now
                    if record.token_accessor:
                        accessors.append(record.token_accessor)
                    self._save(record)
        return accessors

    # -- storage ---------------------------------------------------------------------

    def _check_approver(self, record: JoinRecord, approver: str | None,
                        identities: Sequence[AgeIdentity]) -> dict[str, Any]:
        if approver is None:
            raise ConfigError("this request needs named approvals: give --approver NAME "
                              "and --identity FILE", hint="approvers: "
                              + ", ".join(sorted(record.approvers)))
        sealed = record.approvers.get(approver)
        if sealed is None:
            raise ConfigError(f"{approver} is not an approver of this request",
                              hint="approvers: " + ", ".join(sorted(record.approvers)))
        if any(a.get("approver") == approver for a in record.approvals):
            raise ConflictError(f"{approver} approved {record.name}'s request already")
        payload = json.loads(open_sealed(sealed["sealed"], identities,
                                         f"{approver}'s approval nonce"))
        nonce = unb64(payload.get("nonce"), "the approval nonce")
        if payload.get("request") != record.id or payload.get("code") != record.code \
                or not matches_commitment(nonce, sealed["commit"]):
            raise ConflictError(f"{approver}'s approval nonce does not belong to this request")
        return {"approver": approver, "nonce": b64(nonce)}

    def _pending(self, name: str, now: float) -> JoinRecord:
        for record in self._load_all(now):
            if record.name == name and record.status == "pending":
                return record
        raise NotFoundError(f"no pending join request of {name}",
                            hint="node pending lists them; a request expires unanswered")

    def _expire(self, record: JoinRecord, now: float) -> JoinRecord:
        if record.status in ("unproven", "pending") and now >= record.expires:
            record.status, record.ended = "expired", now
            self._save(record)
            self._audit("join-expired", {"name": record.name, "code": record.code})
        return record

    def _load_all(self, now: float) -> list[JoinRecord]:
        out = []
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.folder):
                if not entry.name.endswith(".json"):
                    continue
                record = self._load(entry.name[:-5])
                if record is None:
                    continue
                record = self._expire(record, now)
                if record.ended is not None and now - record.ended > KEEP_AFTER:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                    continue
                out.append(record)
        return out

    def _load(self, request_id: str) -> JoinRecord | None:
        if not request_id or not all(c in "0123456789abcdef" for c in request_id):
            return None
        try:
            with open(os.path.join(self.folder, f"{request_id}.json"), "rb") as f:
                return JoinRecord.from_json(json.load(f))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise FormatError(f"join request file {request_id}.json is damaged "
                              f"({exc.__class__.__name__})") from None

    def _save(self, record: JoinRecord) -> None:
        atomic_write(os.path.join(self.folder, f"{record.id}.json"),
                     json.dumps(record.to_json(), indent=1, sort_keys=True).encode())

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(self.folder, ".lock"),
                     os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _audit(self, op: str, fields: dict[str, object], *, result: str = "ok") -> None:
        if self.audit is not None:
            self.audit.record(op, fields, result=result)


def _approval_payload(record: JoinRecord, nonce: bytes) -> bytes:
    """What an approver opens: the nonce, bound to this request and its code."""
    return json.dumps({"request": record.id, "code": record.code, "name": record.name,
                       "nonce": b64(nonce)}).encode()


def _describe(scope: Scope) -> str:
    apps = ", ".join(scope.apps) if scope.apps else "no apps"
    return apps + (" and the master key" if scope.master_key else "")
