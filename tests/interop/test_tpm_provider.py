"""The ``tpm`` master key provider end to end, against swtpm: a store moves from a key
file to its TPM, keeps every secret, rotates, and opens on no other TPM."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from macula_secrets import Secrets
from macula_secrets._config import load_config
from macula_secrets._masterkey import chosen_kind, migrate
from macula_secrets.errors import KeySourceError
from tests._swtpm import Swtpm, missing_tools, start_swtpm

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def tpms() -> Iterator[tuple[Swtpm, Swtpm]]:
    if missing_tools():
        pytest.fail(f"missing {', '.join(missing_tools())}: run scripts/test, which installs "
                    "swtpm and tpm2-tools")
    with start_swtpm() as first, start_swtpm() as second:
        yield first, second


def _home(tmp_path: Path, tcti: str, pcrs: str | None = None) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    table = f'[master_key]\ntcti = "{tcti}"\n' + (f'pcrs = "{pcrs}"\n' if pcrs else "")
    (home / "config.toml").write_text(table)
    return home


def test_file_to_tpm_keeps_every_secret_and_rotates(tpms: tuple[Swtpm, Swtpm],
                                                    tmp_path: Path) -> None:
    tpm, other = tpms
    home = _home(tmp_path, tpm.tcti)
    values = {f"k{i}": f"value {i}" for i in range(4)}
    with Secrets.open(home=home, source="none", env={}) as secrets:
        for k, v in values.items():
            secrets.put("app", k, v)
    cfg = load_config({}, home=str(home))
    migrate(cfg, {}, "tpm")
    assert not (home / "master.key").exists()
    assert chosen_kind(load_config({}, home=str(home)), {}) == "tpm"
    with Secrets.open(home=home, source="none", env={}) as secrets:
        assert secrets.load_all("app") == values
        secrets.rotate_master_key()
        assert secrets.load_all("app") == values
    with Secrets.open(home=home, source="none", env={}) as secrets:
        assert secrets.load_all("app") == values
    # The sealed file on another machine (another TPM) opens nothing, and says why.
    (home / "config.toml").write_text(f'[master_key]\ntcti = "{other.tcti}"\n')
    with pytest.raises(KeySourceError, match="sealed by another TPM"):
        Secrets.open(home=home, source="none", env={})


def test_a_pcr_bound_store_stops_opening_after_a_pcr_change(tpms: tuple[Swtpm, Swtpm],
                                                           tmp_path: Path) -> None:
    tpm, _ = tpms
    home = _home(tmp_path, tpm.tcti, pcrs="sha256:16")
    with Secrets.open(home=home, source="none", env={"MACULA_SECRETS_KEY_PROVIDER": "tpm"}
                      ) as secrets:
        secrets.put("app", "k", "v")
    with Secrets.open(home=home, source="none", env={}) as secrets:
        assert secrets.get("app", "k") == "v"
    subprocess.run(["tpm2_pcrextend", "-T", tpm.tcti, "16:sha256=" + "ab" * 32], check=True,
                   capture_output=True)
    with pytest.raises(KeySourceError, match=r"PCR values \(sha256:16\) changed"):
        Secrets.open(home=home, source="none", env={})
