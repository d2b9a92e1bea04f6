"""The read-only env file backend over files made by our own encrypt.

``exercise_backend`` needs writes, which this backend refuses, so the read
path is tested here directly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from macula_secrets.backends.envfile import EnvFileBackend, encrypt_file, format_dotenv
from macula_secrets.errors import (
    ConfigError,
    FormatError,
    IntegrityError,
    NoMatchingKeyError,
    PermissionDeniedError,
)
from macula_secrets.keys import age
from tests.conftest import TEST_AGE_PUBLIC, TEST_AGE_SECRET

CANARY = "s3cr3t-CANARY-7f3a9c"
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)

SAMPLE = f"""\
# a comment line
export DATABASE_URL="postgres://app:{CANARY}@db/app"
API_TOKEN='single quoted # not a comment'
PLAIN=bare value   # inline comment
MULTI="line one
line two"
ESCAPED="tab\\there \\"quoted\\""
EMPTY=
BARE
HOME_REF=${{HOME}}/data
database.password={CANARY}
"""

EXPECTED = {
    "DATABASE_URL": f"postgres://app:{CANARY}@db/app",
    "API_TOKEN": "single quoted # not a comment",
    "PLAIN": "bare value",
    "MULTI": "line one\nline two",
    "ESCAPED": 'tab\there "quoted"',
    "EMPTY": "",
    "BARE": "",
    "HOME_REF": "${HOME}/data",
    "database.password": CANARY,
}


@pytest.fixture
def identity() -> age.AgeIdentity:
    return age.parse_identities(TEST_AGE_SECRET, source="test")[0]


def _write(folder: Path, app: str, text: str, *, armored: bool = False) -> Path:
    path = folder / f"{app}.env.age"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encrypt_file(text.encode(), [TEST_AGE_PUBLIC], armored=armored))
    return path


@pytest.mark.parametrize("armored", [False, True], ids=["binary", "armored"])
def test_reads_values(tmp_path: Path, identity: age.AgeIdentity, armored: bool) -> None:
    _write(tmp_path, "console", SAMPLE, armored=armored)
    backend = EnvFileBackend(tmp_path, identities=[identity])
    assert backend.load_all("console") == EXPECTED
    assert backend.list("console") == sorted(EXPECTED)
    assert backend.get("console", "MULTI") == "line one\nline two"
    assert backend.get("console", "BARE") == ""
    assert backend.get("console", "MISSING") is None
    assert backend.get("console", "PLAIN", version=1) is None
    assert backend.versions("console", "PLAIN") == []
    assert backend.get("other", "PLAIN") is None
    assert backend.list("other") == [] and backend.load_all("other") == {}
    backend.close()


def test_identities_found_as_sops_finds_them(tmp_path: Path, age_key_file: Path) -> None:
    _write(tmp_path, "console", SAMPLE)
    backend = EnvFileBackend(tmp_path, env={"SOPS_AGE_KEY_FILE": str(age_key_file)})
    assert backend.get("console", "PLAIN") == "bare value"


def test_apps_and_tenants(tmp_path: Path, identity: age.AgeIdentity) -> None:
    _write(tmp_path, "b", "X=1\n")
    _write(tmp_path, "a", "X=2\n")
    (tmp_path / "c.env").write_text("X=3\n")
    (tmp_path / ".env.age").write_bytes(b"")
    _write(tmp_path / "acme", "a", "X=tenant\n")
    assert EnvFileBackend(tmp_path, identities=[identity]).apps() == ["a", "b"]
    tenant = EnvFileBackend(tmp_path, tenant="acme", identities=[identity])
    assert tenant.apps() == ["a"]
    assert tenant.get("a", "X") == "tenant"
    assert EnvFileBackend(tmp_path / "missing", identities=[identity]).apps() == []


def test_interpolation_off_by_default_and_on_when_asked(
    tmp_path: Path, identity: age.AgeIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    _write(tmp_path, "app", 'BASE=/srv\nDATA="${BASE}/data"\nHOMEDIR=${HOME}\n')
    plain = EnvFileBackend(tmp_path, identities=[identity])
    assert plain.load_all("app") == {"BASE": "/srv", "DATA": "${BASE}/data",
                                     "HOMEDIR": "${HOME}"}
    expanded = EnvFileBackend(tmp_path, identities=[identity], interpolate=True)
    assert expanded.load_all("app") == {"BASE": "/srv", "DATA": "/srv/data",
                                        "HOMEDIR": "/home/someone"}


def test_read_only(tmp_path: Path, identity: age.AgeIdentity) -> None:
    path = _write(tmp_path, "app", "X=1\n")
    before = path.read_bytes()
    backend = EnvFileBackend(tmp_path, identities=[identity])
    for call in (lambda: backend.put("app", "X", "2"), lambda: backend.delete("app", "X")):
        with pytest.raises(PermissionDeniedError, match="is read-only: edit it with "
                                                        "`macula-secrets envfile edit`"):
            call()
    assert path.read_bytes() == before


def test_cache_follows_file_changes(tmp_path: Path, identity: age.AgeIdentity) -> None:
    backend = EnvFileBackend(tmp_path, identities=[identity])
    _write(tmp_path, "app", "X=1\n")
    assert backend.get("app", "X") == "1"
    _write(tmp_path, "app", "X=22\nY=3\n")
    assert backend.get("app", "X") == "22"
    (tmp_path / "app.env.age").unlink()
    assert backend.get("app", "X") is None


def _assert_clean(exc: BaseException) -> None:
    text = f"{exc} {getattr(exc, 'hint', '')}"
    assert CANARY not in text
    assert "AGE-SECRET-KEY" not in text


@pytest.mark.parametrize("armored", [False, True], ids=["binary", "armored"])
def test_tampered_file(tmp_path: Path, identity: age.AgeIdentity, armored: bool) -> None:
    path = _write(tmp_path, "app", SAMPLE, armored=armored)
    data = bytearray(path.read_bytes())
    if armored:
        # Change one base64 character in the middle of the payload.
        lines = bytes(data).split(b"\n")
        row = len(lines) // 2
        line = bytearray(lines[row])
        line[10] = ord("A") if line[10] != ord("A") else ord("B")
        lines[row] = bytes(line)
        data = bytearray(b"\n".join(lines))
    else:
        data[-20] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises((IntegrityError, FormatError)) as info:
        EnvFileBackend(tmp_path, identities=[identity]).get("app", "PLAIN")
    assert str(path) in str(info.value)
    _assert_clean(info.value)


def test_truncated_file(tmp_path: Path, identity: age.AgeIdentity) -> None:
    path = _write(tmp_path, "app", SAMPLE)
    path.write_bytes(path.read_bytes()[:-17])
    with pytest.raises(IntegrityError, match=r"app\.env\.age") as info:
        EnvFileBackend(tmp_path, identities=[identity]).load_all("app")
    _assert_clean(info.value)


def test_wrong_identity(tmp_path: Path) -> None:
    _write(tmp_path, "app", SAMPLE)
    other = age.generate_identity()
    with pytest.raises(NoMatchingKeyError, match=r"no age identity matches .*app\.env\.age") as i:
        EnvFileBackend(tmp_path, identities=[other]).get("app", "PLAIN")
    _assert_clean(i.value)
    # And with identities found from the environment: none at all.
    with pytest.raises(NoMatchingKeyError) as info:
        EnvFileBackend(tmp_path, env={}).get("app", "PLAIN")
    _assert_clean(info.value)


def test_not_an_age_file(tmp_path: Path, identity: age.AgeIdentity) -> None:
    (tmp_path / "app.env.age").write_text(f"X={CANARY}\n")
    with pytest.raises(FormatError, match="is not an age file") as info:
        EnvFileBackend(tmp_path, identities=[identity]).get("app", "X")
    _assert_clean(info.value)


@pytest.mark.parametrize("text", [
    f"GOOD=1\nthis line {CANARY} is not dotenv\n",
    f"https://user:{CANARY}@host/path\n",
    f"'../{CANARY}'=x\n",
])
def test_bad_dotenv_is_an_error_naming_the_file(
    tmp_path: Path, identity: age.AgeIdentity, text: str
) -> None:
    path = tmp_path / "app.env.age"
    path.write_bytes(encrypt_file(text.encode(), [TEST_AGE_PUBLIC], check=False))
    with pytest.raises(FormatError, match=r"line [12]") as info:
        EnvFileBackend(tmp_path, identities=[identity]).load_all("app")
    assert str(path) in str(info.value)
    _assert_clean(info.value)


def test_not_utf8(tmp_path: Path, identity: age.AgeIdentity) -> None:
    path = tmp_path / "app.env.age"
    path.write_bytes(encrypt_file(b"X=\xff\xfe\n", [TEST_AGE_PUBLIC], check=False))
    with pytest.raises(FormatError, match="not UTF-8"):
        EnvFileBackend(tmp_path, identities=[identity]).load_all("app")


def test_encrypt_file_checks_its_input() -> None:
    with pytest.raises(FormatError, match="line 1"):
        encrypt_file(b"not dotenv at all\n", [TEST_AGE_PUBLIC])
    with pytest.raises(ConfigError, match="no age recipients"):
        encrypt_file(b"X=1\n", [])


def test_format_dotenv_round_trips_awkward_values(tmp_path: Path,
                                                  identity: age.AgeIdentity) -> None:
    values = {"A": 'he said "hi"', "B": "it's = # 50%", "C": "back\\slash\\n", "D": "x\ny\r\n",
              "E": "  padded  ", "F": "ünïcödé ☃", "G": "", "H": "${NOT_EXPANDED}"}
    _write(tmp_path, "app", format_dotenv(values))
    assert EnvFileBackend(tmp_path, identities=[identity]).load_all("app") == values


def test_format_dotenv_refuses_unwritable_keys() -> None:
    for key in ("has space", "a=b", "#x", "'q'", "a/b", ""):
        with pytest.raises(ValueError):
            format_dotenv({key: "v"})


def test_wrong_identity_from_the_environment(tmp_path: Path) -> None:
    _write(tmp_path, "app", SAMPLE)
    keys = tmp_path / "keys.txt"
    keys.write_text(age.format_identity_file(age.generate_identity(), created=_EPOCH))
    backend = EnvFileBackend(tmp_path, env={"SOPS_AGE_KEY_FILE": str(keys)})
    with pytest.raises(NoMatchingKeyError) as info:
        backend.load_all("app")
    path = tmp_path / "app.env.age"
    assert str(info.value) == f"no age identity matches {path} (tried 1 identity)"
    assert info.value.hint is not None and f"an identity for {path}" in info.value.hint
    assert info.value.recipients == []
    _assert_clean(info.value)
