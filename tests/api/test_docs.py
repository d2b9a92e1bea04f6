"""The Python examples in the docs run as written (placeholders filled in)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from macula_secrets import sops
from tests.conftest import TEST_AGE_PUBLIC

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def _blocks(doc: str) -> list[str]:
    return _BLOCK.findall((ROOT / doc).read_text())


@pytest.fixture
def workspace(tmp_path: Path, age_key_file: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(age_key_file))
    monkeypatch.setenv("MACULA_SECRETS_HOME", str(tmp_path / "store"))
    for name in ("MACULA_SECRETS_DIR", "MACULA_SECRETS_CONFIG", "MACULA_SECRETS_SOURCE",
                 "MACULA_SECRETS_TENANT"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "secrets").mkdir()
    data = {"database": {"password": "s3cr3t"}, "db": {"password": "s3cr3t"},
            "api_token": "tok_live_0123", "old_key": "x", "database_url": "postgres://db/x"}
    for name in ("console.yaml", "console.enc.yaml"):
        (tmp_path / "secrets" / name).write_bytes(sops.encrypt(data, recipients=[TEST_AGE_PUBLIC]))
    (tmp_path / "secrets" / "new.yaml").write_text("hello: world\n")
    (tmp_path / ".sops.yaml").write_text(f"creation_rules:\n  - age: {TEST_AGE_PUBLIC}\n")
    return tmp_path


@pytest.mark.parametrize("doc", ["README.md", "docs/python-api.md"])
def test_python_examples_run(doc: str, workspace: Path) -> None:
    blocks = _blocks(doc)
    assert blocks, f"no python example in {doc}"
    for code in blocks:
        code = code.replace('"age1..."', repr(TEST_AGE_PUBLIC))
        exec(compile(code, doc, "exec"), {})  # noqa: S102 - our own documentation
    assert os.path.exists("secrets/console.enc.yaml")
