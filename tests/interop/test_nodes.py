"""Node enrollment against the real sops 3.11: `node add` / `node remove` on a folder.

After `node add`, the node's identity alone opens every file, here and in
`sops -d`; after `node remove`, it opens none of the rotated files, while the
other nodes still open all of them. sops keeps reading the edited .sops.yaml
(with its `nodes:` mapping) as its config.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from macula_secrets import sops as msops
from macula_secrets.errors import NoMatchingKeyError
from macula_secrets.keys import age
from tests.cli._support import run_cli
from tests.conftest import run_sops

pytestmark = pytest.mark.interop

PLAIN = {
    "app.enc.yaml": b"db:\n    password: hunter2\n    port: 5432\n# note\ntoken: abc\n",
    "web.enc.json": b'{\n\t"api_key": "k-123",\n\t"debug": true\n}\n',
    "worker.enc.env": b"QUEUE_URL=amqp://x\nSECRET=s3\n",
}


def _identity(folder: Path, name: str) -> tuple[Path, str]:
    identity = age.generate_identity()
    path = folder / f"{name}.txt"
    age.write_identity_file(path, identity)
    return path, identity.to_recipient().text


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPS_")}
    env.update(extra)
    return env


@pytest.fixture
def gitops(tmp_path: Path, sops_bin: str) -> dict[str, object]:
    """A repo: .sops.yaml (comments, two rules) and three files, one written by sops."""
    keys = tmp_path / "keys"
    keys.mkdir()
    admin_file, admin = _identity(keys, "admin")
    repo = tmp_path / "repo"
    secrets = repo / "secrets"
    secrets.mkdir(parents=True)
    (repo / ".sops.yaml").write_text(
        "# GitOps rules\n"
        "creation_rules:\n"
        "  # app files\n"
        "  - path_regex: secrets/.*\\.yaml$\n"
        f"    age: {admin}  # admin\n"
        "  - path_regex: secrets/.*\n"
        "    age:\n"
        f"      - {admin}  # admin\n"
    )
    for name, data in PLAIN.items():
        (secrets / name).write_bytes(data)
    # One file encrypted by the real sops, the others by us.
    proc = run_sops(sops_bin, "encrypt", "-i", "secrets/app.enc.yaml",
                    env=_env(SOPS_AGE_KEY_FILE=str(admin_file)), cwd=repo)
    assert proc.returncode == 0, proc.stderr
    for name in ("web.enc.json", "worker.enc.env"):
        run_cli("encrypt", "-i", secrets / name, cwd=repo,
                env={"SOPS_AGE_KEY_FILE": str(admin_file)}).assert_ok()
    return {"repo": repo, "secrets": secrets, "keys": keys, "admin": admin_file}


def _sops_decrypt(sops_bin: str, path: Path, **env: str) -> subprocess.CompletedProcess[bytes]:
    return run_sops(sops_bin, "decrypt", str(path), env=_env(**env))


def _ours(path: Path, key_file: Path) -> dict[str, object]:
    return msops.load(path, identities=[key_file.read_text()])


def _node(gitops: dict[str, object], *args: str) -> None:
    run_cli("node", *args, "--dir", gitops["secrets"],
            env={"SOPS_AGE_KEY_FILE": str(gitops["admin"])}).assert_ok()


def test_added_node_alone_decrypts_every_file(gitops: dict[str, object], sops_bin: str) -> None:
    secrets: Path = gitops["secrets"]  # type: ignore[assignment]
    repo: Path = gitops["repo"]  # type: ignore[assignment]
    before = {p.name: _ours(p, gitops["admin"]) for p in secrets.iterdir()}  # type: ignore[arg-type]
    node_file, node_pub = _identity(gitops["keys"], "edge1")  # type: ignore[arg-type]
    _node(gitops, "add", "edge-1", node_pub)
    for path in secrets.iterdir():
        assert _ours(path, node_file) == before[path.name]
        proc = _sops_decrypt(sops_bin, path, SOPS_AGE_KEY_FILE=str(node_file))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == PLAIN[path.name]
    config = (repo / ".sops.yaml").read_text()
    assert config.startswith("# GitOps rules\ncreation_rules:\n  # app files\n")
    assert f"edge-1: {node_pub}" in config
    # sops still reads the edited config (the `nodes:` key is ignored): its
    # updatekeys finds the files already in line with the rules.
    for path in secrets.iterdir():
        proc = run_sops(sops_bin, "updatekeys", "-y", str(path.relative_to(repo)),
                        env=_env(SOPS_AGE_KEY_FILE=str(gitops["admin"])), cwd=repo)
        assert proc.returncode == 0, proc.stderr
        assert b"already up to date" in proc.stderr


def test_removed_node_opens_no_rotated_file(gitops: dict[str, object], sops_bin: str) -> None:
    secrets: Path = gitops["secrets"]  # type: ignore[assignment]
    keys: Path = gitops["keys"]  # type: ignore[assignment]
    one_file, one_pub = _identity(keys, "edge1")
    two_file, two_pub = _identity(keys, "edge2")
    _node(gitops, "add", "edge-1", one_pub)
    _node(gitops, "add", "edge-2", two_pub)
    old = {p.name: p.read_bytes() for p in secrets.iterdir()}
    _node(gitops, "remove", "edge-1")
    for path in secrets.iterdir():
        # Rotated: a new data key, so every value's ciphertext changed.
        assert path.read_bytes() != old[path.name]
        with pytest.raises(NoMatchingKeyError):
            _ours(path, one_file)
        proc = _sops_decrypt(sops_bin, path, SOPS_AGE_KEY_FILE=str(one_file))
        assert proc.returncode == 128, proc.stderr
        for key_file in (two_file, gitops["admin"]):
            proc = _sops_decrypt(sops_bin, path, SOPS_AGE_KEY_FILE=str(key_file))
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout == PLAIN[path.name]
    assert one_pub not in (gitops["repo"] / ".sops.yaml").read_text()  # type: ignore[operator]


def test_ssh_ed25519_node(gitops: dict[str, object], sops_bin: str) -> None:
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        pytest.skip("ssh-keygen is not installed")
    keys: Path = gitops["keys"]  # type: ignore[assignment]
    secrets: Path = gitops["secrets"]  # type: ignore[assignment]
    private = keys / "host_ed25519"
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", "edge@site", "-f",
                    str(private)], check=True, timeout=30)
    public = (keys / "host_ed25519.pub").read_text().strip()
    _node(gitops, "add", "edge-ssh", public)
    for path in secrets.iterdir():
        proc = _sops_decrypt(sops_bin, path, SOPS_AGE_SSH_PRIVATE_KEY_FILE=str(private))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == PLAIN[path.name]
        got = run_cli("decrypt", path, env={"SOPS_AGE_SSH_PRIVATE_KEY_FILE": str(private)})
        assert got.assert_ok().out == PLAIN[path.name]
    _node(gitops, "remove", "edge-ssh")
    for path in secrets.iterdir():
        proc = _sops_decrypt(sops_bin, path, SOPS_AGE_SSH_PRIVATE_KEY_FILE=str(private))
        assert proc.returncode == 128, proc.stderr
