"""`macula-secrets node add/remove/list`: behaviour and errors, black-box.

Every refused command prints one error line (plus a hint), exits 1 and
leaves every file of the repository byte for byte as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from macula_secrets.keys import age
from tests.cli._support import CANARY, run_cli

CONFIG = (
    "# rules for the secrets folder\n"
    "creation_rules:\n"
    "  # every file\n"
    "  - path_regex: secrets/\n"
    "    age:\n"
    "      - {admin}  # admin laptop\n"
    "# end of rules\n"
)


def _identity(folder: Path, name: str) -> tuple[Path, str]:
    identity = age.generate_identity()
    path = folder / f"{name}.txt"
    age.write_identity_file(path, identity)
    return path, identity.to_recipient().text


@pytest.fixture
def repo(tmp_path: Path) -> dict[str, Path | str]:
    admin_file, admin = _identity(tmp_path, "admin")
    root = tmp_path / "repo"
    (root / "secrets").mkdir(parents=True)
    (root / ".sops.yaml").write_text(CONFIG.format(admin=admin))
    for name, text in (("a.enc.yaml", f"password: {CANARY}\n"), ("b.enc.env", "K=v\n")):
        (root / "secrets" / name).write_text(text)
        run_cli("encrypt", "-i", root / "secrets" / name, cwd=root,
                env={"SOPS_AGE_KEY_FILE": str(admin_file)}).assert_ok()
    return {"root": root, "secrets": root / "secrets", "admin": admin_file, "tmp": tmp_path}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def node(repo: dict[str, Path | str], *args: str, key: Path | None = None):  # type: ignore[no-untyped-def]
    return run_cli("node", *args, "--dir", repo["secrets"],
                   env={"SOPS_AGE_KEY_FILE": str(key or repo["admin"])})


def test_add_keeps_comments_and_order(repo: dict[str, Path | str]) -> None:
    root: Path = repo["root"]  # type: ignore[assignment]
    before = (root / ".sops.yaml").read_text().splitlines()
    _, pub = _identity(repo["tmp"], "n1")  # type: ignore[arg-type]
    result = node(repo, "add", "edge-1", pub).assert_ok()
    assert result.out == b""
    assert "node edge-1 added to 1 creation rule" in result.err
    assert "2 files re-wrapped" in result.err
    after = (root / ".sops.yaml").read_text().splitlines()
    # Every original line is still there, in order; the node's line follows the admin's.
    it = iter(after)
    assert all(line in it for line in before)
    assert f"      - {pub}  # node: edge-1" in after
    assert after[after.index(f"      - {pub}  # node: edge-1") - 1].endswith("# admin laptop")
    assert after[-2:] == ["nodes:", f"  edge-1: {pub}"]


def test_list_json_and_text(repo: dict[str, Path | str]) -> None:
    empty = node(repo, "list").assert_ok()
    assert empty.out == b"" and "no nodes enrolled" in empty.err
    _, pub = _identity(repo["tmp"], "n1")  # type: ignore[arg-type]
    node(repo, "add", "edge-1", pub).assert_ok()
    data = json.loads(node(repo, "list", "--json").assert_ok().out)
    assert data["files"] == ["a.enc.yaml", "b.enc.env"]
    assert data["nodes"] == [{"name": "edge-1", "recipient": pub, "rules": [0],
                              "files": ["a.enc.yaml", "b.enc.env"]}]
    text = node(repo, "list").assert_ok().text
    assert text.startswith("edge-1\n") and f"recipient: {pub}" in text
    assert "files: 2 of 2" in text


def test_remove_updates_list_and_rotates(repo: dict[str, Path | str]) -> None:
    tmp: Path = repo["tmp"]  # type: ignore[assignment]
    one, pub1 = _identity(tmp, "n1")
    _, pub2 = _identity(tmp, "n2")
    node(repo, "add", "edge-1", pub1).assert_ok()
    node(repo, "add", "edge-2", pub2).assert_ok()
    result = node(repo, "remove", "edge-1").assert_ok()
    assert "2 files rotated to a new data key" in result.err
    data = json.loads(node(repo, "list", "--json").assert_ok().out)
    assert [n["name"] for n in data["nodes"]] == ["edge-2"]
    config = (repo["root"] / ".sops.yaml").read_text()  # type: ignore[operator]
    assert pub1 not in config and "# admin laptop" in config
    denied = run_cli("decrypt", repo["secrets"] / "a.enc.yaml",  # type: ignore[operator]
                     env={"SOPS_AGE_KEY_FILE": str(one)})
    assert "no identity matches" in denied.assert_one_error()


def _refused(repo: dict[str, Path | str], *args: str, expect: str,
             key: Path | None = None) -> None:
    root: Path = repo["root"]  # type: ignore[assignment]
    before = _snapshot(root)
    line = node(repo, *args, key=key).assert_one_error()
    assert expect in line, line
    assert _snapshot(root) == before


def test_unknown_node_name(repo: dict[str, Path | str]) -> None:
    _refused(repo, "remove", "ghost", expect="no node named ghost")


def test_malformed_public_key(repo: dict[str, Path | str]) -> None:
    _refused(repo, "add", "edge-1", "age1notakey", expect="invalid age recipient")
    _refused(repo, "add", "edge-1", "ssh-dss AAAAB3", expect="unsupported ssh recipient")
    _refused(repo, "add", "edge-1", "AGE-SECRET-KEY-1" + "Q" * 58, expect="private key")


def test_duplicate_name_and_key(repo: dict[str, Path | str]) -> None:
    tmp: Path = repo["tmp"]  # type: ignore[assignment]
    _, pub1 = _identity(tmp, "n1")
    _, pub2 = _identity(tmp, "n2")
    node(repo, "add", "edge-1", pub1).assert_ok()
    _refused(repo, "add", "edge-1", pub2, expect="node edge-1 is already enrolled")
    _refused(repo, "add", "edge-2", pub1, expect="already enrolled as node edge-1")


def test_bad_node_name(repo: dict[str, Path | str]) -> None:
    _, pub = _identity(repo["tmp"], "n1")  # type: ignore[arg-type]
    _refused(repo, "add", "../x", pub, expect="invalid node name")


def test_file_that_cannot_be_opened_changes_nothing(repo: dict[str, Path | str]) -> None:
    tmp: Path = repo["tmp"]  # type: ignore[assignment]
    stranger, _ = _identity(tmp, "stranger")
    _, pub = _identity(tmp, "n1")
    _refused(repo, "add", "edge-1", pub, key=stranger,
             expect="nothing changed: 2 of 2 files could not be updated")


def test_remove_refuses_to_empty_a_rule(repo: dict[str, Path | str]) -> None:
    root: Path = repo["root"]  # type: ignore[assignment]
    _, pub = _identity(repo["tmp"], "n1")  # type: ignore[arg-type]
    node(repo, "add", "edge-1", pub).assert_ok()
    admin = (root / ".sops.yaml").read_text().split("      - ", 2)[1].split()[0]
    # Enroll the admin key under a name too, then try to remove the only other key.
    text = (root / ".sops.yaml").read_text().replace(f"      - {pub}  # node: edge-1\n", "")
    (root / ".sops.yaml").write_text(text.replace("nodes:\n", f"nodes:\n  admin: {admin}\n"))
    _refused(repo, "remove", "admin", expect="without recipients")


def test_no_config_and_no_folder(repo: dict[str, Path | str], tmp_path: Path) -> None:
    (repo["root"] / ".sops.yaml").unlink()  # type: ignore[operator]
    _, pub = _identity(tmp_path, "n1")
    line = node(repo, "add", "edge-1", pub).assert_one_error()
    assert "no .sops.yaml" in line
    missing = run_cli("node", "list", "--dir", tmp_path / "nope")
    assert "does not exist" in missing.assert_one_error()
