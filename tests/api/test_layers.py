"""Imports point inward: the file format and key layers never import the shells."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "macula_secrets"
INNER = ["sops", "keys", "localstore", "backends", "_crypto.py", "_fs.py", "_lazyre.py",
         "errors.py", "client.py", "sync.py", "_config.py", "_names.py", "records.py",
         "_default.py"]
SHELLS = ("macula_secrets.cli", "macula_secrets.server", "macula_secrets.integrations")
# Modules an inner layer must not import at module level: they cost start-up
# time on the decrypt path (see docs/design.md).
HEAVY = {"pathlib", "datetime", "dataclasses", "hashlib", "hmac", "click", "rich", "yaml",
         "ruamel", "subprocess", "shlex", "getpass", "json"}


def _modules(entry: str) -> list[Path]:
    p = SRC / entry
    return sorted(p.rglob("*.py")) if p.is_dir() else [p]


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out: set[str] = set()
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    for node in nodes:
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                out.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                out.add(node.module)
    return out


@pytest.mark.parametrize("path", [p for e in INNER for p in _modules(e)], ids=str)
def test_inner_layers_do_not_import_shells(path: Path) -> None:
    for name in _imports(path, top_level_only=False):
        assert not any(name == s or name.startswith(s + ".") for s in SHELLS), (
            f"{path} imports {name}")


_DECRYPT_PATH = [
    "sops/__init__.py", "sops/cipher.py", "sops/walk.py", "sops/document.py",
    "sops/metadata.py", "sops/keygroups.py", "sops/tree.py", "sops/_gofmt.py",
    "sops/stores/__init__.py", "sops/stores/yaml.py", "sops/stores/_yaml/fast.py",
    "sops/stores/_yaml/fastemit.py", "sops/stores/_yaml/scalars.py",
    "sops/stores/_yaml/resolve.py", "sops/stores/_yaml/nodes.py", "sops/stores/_yaml/text.py",
    "keys/age.py", "keys/_discovery.py", "cli/__init__.py", "cli/filecmds.py",
]


@pytest.mark.parametrize("rel", _DECRYPT_PATH)
def test_decrypt_path_stays_light(rel: str) -> None:
    heavy = {n.split(".")[0] for n in _imports(SRC / rel, top_level_only=True)} & HEAVY
    assert not heavy, f"{rel} imports {sorted(heavy)} at module level"


def test_decrypt_imports_no_heavy_module(tmp_path: Path, age_key_file: Path) -> None:
    """What `macula-secrets decrypt` loads, measured in a fresh interpreter."""
    import subprocess
    import sys

    from macula_secrets import sops
    from tests.conftest import TEST_AGE_PUBLIC

    enc = tmp_path / "s.yaml"
    enc.write_bytes(sops.encrypt({"a": "b"}, recipients=[TEST_AGE_PUBLIC]))
    code = (
        "import sys, io\n"
        "from macula_secrets.cli import main\n"
        "out = io.StringIO(); real = sys.stdout\n"
        "class W:\n"
        "    buffer = io.BytesIO()\n"
        "    def write(self, s): pass\n"
        "    def flush(self): pass\n"
        "sys.stdout = W()\n"
        f"rc = main(['decrypt', {str(enc)!r}])\n"
        "sys.stdout = real\n"
        "print(rc, ' '.join(sorted(sys.modules)))\n"
    )
    env = {"SOPS_AGE_KEY_FILE": str(age_key_file), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          check=True)
    rc, modules = proc.stdout.split(" ", 1)
    assert rc == "0"
    loaded = set(modules.split())
    unwanted = {"shutil", "pathlib", "datetime", "dataclasses", "hashlib", "hmac", "click",
                "rich", "yaml", "subprocess", "json", "tempfile", "bz2", "lzma",
                "macula_secrets.sops.stores._yaml.parser",
                "macula_secrets.sops.stores._yaml.emitter"}
    assert not loaded & unwanted, sorted(loaded & unwanted)
