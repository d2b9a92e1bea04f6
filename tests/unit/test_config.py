"""``load_config``: arguments over the environment over the TOML file over the defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from macula_secrets import Secrets
from macula_secrets._config import load_config
from macula_secrets.errors import ConfigError


@pytest.fixture(autouse=True)
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory: ./secrets and ./macula-secrets.toml are ours to make."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def write_toml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- defaults -------------------------------------------------------------------------


def test_defaults_on_a_bare_machine() -> None:
    cfg = load_config({})
    assert cfg.home == os.path.join(os.path.expanduser("~"), ".local", "share", "macula-secrets")
    assert cfg.secrets_dir is None
    assert cfg.source == "none"
    assert cfg.tenant == "default"
    assert cfg.max_versions == 10
    assert cfg.max_value_size == 1024 * 1024
    assert cfg.age_key_file is None
    assert cfg.app_max_versions == {}
    assert cfg.config_file is None
    assert cfg.store_path == os.path.join(cfg.home, "store.db")
    assert cfg.master_key_path == os.path.join(cfg.home, "master.key")


def test_default_home_under_xdg_data_home(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert load_config({"XDG_DATA_HOME": str(data)}).home == str(data / "macula-secrets")
    # A relative XDG_DATA_HOME is ignored, as the XDG spec says.
    assert load_config({"XDG_DATA_HOME": "relative/data"}).home == os.path.join(
        os.path.expanduser("~"), ".local", "share", "macula-secrets")


def test_a_secrets_folder_in_the_working_directory_is_the_source(cwd: Path) -> None:
    (cwd / "secrets").mkdir()
    cfg = load_config({})
    assert cfg.secrets_dir == str(cwd / "secrets")
    assert cfg.source == "sops"
    # ... unless the source is set to none.
    assert load_config({}, source="none").source == "none"


def test_relative_home_is_made_absolute(cwd: Path) -> None:
    assert load_config({}, home="h").home == str(cwd / "h")


# -- precedence ----------------------------------------------------------------------


TOML_ALL = """\
home = "{home}"
secrets_dir = "{sdir}"
source = "sops"
tenant = "from-toml"
max_versions = 7
max_value_size = 100
age_key_file = "/toml/age.key"

[apps.web]
max_versions = 3

[apps.db]
max_versions = 20
"""


def test_toml_over_defaults(cwd: Path, tmp_path: Path) -> None:
    path = write_toml(cwd / "macula-secrets.toml",
                      TOML_ALL.format(home=tmp_path / "th", sdir=tmp_path / "ts"))
    cfg = load_config({})
    assert cfg.config_file == str(path)
    assert (cfg.home, cfg.secrets_dir, cfg.source, cfg.tenant) == (
        str(tmp_path / "th"), str(tmp_path / "ts"), "sops", "from-toml")
    assert (cfg.max_versions, cfg.max_value_size, cfg.age_key_file) == (7, 100, "/toml/age.key")
    assert cfg.app_max_versions == {"web": 3, "db": 20}


def test_environment_over_toml(cwd: Path, tmp_path: Path) -> None:
    write_toml(cwd / "macula-secrets.toml",
               TOML_ALL.format(home=tmp_path / "th", sdir=tmp_path / "ts"))
    env = {
        "MACULA_SECRETS_HOME": str(tmp_path / "eh"),
        "MACULA_SECRETS_DIR": str(tmp_path / "es"),
        "MACULA_SECRETS_SOURCE": "none",
        "MACULA_SECRETS_TENANT": "from-env",
        "MACULA_SECRETS_MAX_VALUE_SIZE": "200",
    }
    cfg = load_config(env)
    assert (cfg.home, cfg.secrets_dir, cfg.source, cfg.tenant, cfg.max_value_size) == (
        str(tmp_path / "eh"), str(tmp_path / "es"), "none", "from-env", 200)
    # Settings without a variable still come from the file.
    assert cfg.max_versions == 7 and cfg.app_max_versions == {"web": 3, "db": 20}
    # An empty variable counts as unset.
    cfg = load_config({name: "" for name in env})
    assert (cfg.tenant, cfg.source, cfg.max_value_size) == ("from-toml", "sops", 100)


def test_arguments_over_environment(cwd: Path, tmp_path: Path) -> None:
    write_toml(cwd / "macula-secrets.toml",
               TOML_ALL.format(home=tmp_path / "th", sdir=tmp_path / "ts"))
    env = {
        "MACULA_SECRETS_HOME": str(tmp_path / "eh"),
        "MACULA_SECRETS_DIR": str(tmp_path / "es"),
        "MACULA_SECRETS_SOURCE": "none",
        "MACULA_SECRETS_TENANT": "from-env",
    }
    cfg = load_config(env, home=str(tmp_path / "ah"), secrets_dir=str(tmp_path / "as"),
                      source="sops", tenant="from-arg")
    assert (cfg.home, cfg.secrets_dir, cfg.source, cfg.tenant) == (
        str(tmp_path / "ah"), str(tmp_path / "as"), "sops", "from-arg")


def test_config_variable_names_the_file(cwd: Path, tmp_path: Path) -> None:
    write_toml(cwd / "macula-secrets.toml", 'tenant = "from-cwd"\n')
    chosen = write_toml(tmp_path / "elsewhere" / "chosen.toml", 'tenant = "from-var"\n')
    cfg = load_config({"MACULA_SECRETS_CONFIG": str(chosen)})
    assert cfg.tenant == "from-var" and cfg.config_file == str(chosen)
    # Without it, ./macula-secrets.toml wins over <home>/config.toml.
    home = tmp_path / "home"
    write_toml(home / "config.toml", 'tenant = "from-home"\n')
    assert load_config({}, home=str(home)).tenant == "from-cwd"
    (cwd / "macula-secrets.toml").unlink()
    assert load_config({}, home=str(home)).tenant == "from-home"
    assert load_config({"MACULA_SECRETS_HOME": str(home)}).tenant == "from-home"


def test_missing_config_file_from_the_variable_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config({"MACULA_SECRETS_CONFIG": str(missing)})
    assert str(missing) in str(info.value)
    assert "MACULA_SECRETS_CONFIG" in str(info.value)


# -- malformed files ----------------------------------------------------------------


def test_unknown_setting_is_named(cwd: Path) -> None:
    path = write_toml(cwd / "macula-secrets.toml", 'max_version = 3\ntenant = "x"\n')
    with pytest.raises(ConfigError) as info:
        load_config({})
    assert "'max_version'" in str(info.value)
    assert str(path) in str(info.value)
    assert info.value.hint is not None and "max_versions" in info.value.hint


def test_unknown_app_setting_is_an_error(cwd: Path) -> None:
    write_toml(cwd / "macula-secrets.toml", "[apps.web]\nmax_version = 3\n")
    with pytest.raises(ConfigError, match=r"\[apps\.web\]"):
        load_config({})


def test_bad_toml_names_the_file(cwd: Path) -> None:
    path = write_toml(cwd / "macula-secrets.toml", 'tenant = "unterminated\n')
    with pytest.raises(ConfigError) as info:
        load_config({})
    assert str(path) in str(info.value)
    assert "TOML" in str(info.value)


@pytest.mark.parametrize("text, fragment", [
    ("max_versions = 0\n", "max_versions"),
    ('max_versions = "ten"\n', "max_versions"),
    ("max_versions = true\n", "max_versions"),
    ("max_value_size = -1\n", "max_value_size"),
    ('source = "consul"\n', "source"),
    ("home = 5\n", "home"),
    ("tenant = []\n", "tenant"),
    ("age_key_file = 1\n", "age_key_file"),
    ("apps = 3\n", "apps"),
    ("[apps.web]\nmax_versions = 0\n", "apps.web.max_versions"),
])
def test_malformed_settings(cwd: Path, text: str, fragment: str) -> None:
    path = write_toml(cwd / "macula-secrets.toml", text)
    with pytest.raises(ConfigError) as info:
        load_config({})
    assert fragment in str(info.value)
    assert str(path) in str(info.value)


def test_bad_value_size_in_the_environment() -> None:
    with pytest.raises(ConfigError, match="max_value_size"):
        load_config({"MACULA_SECRETS_MAX_VALUE_SIZE": "lots"})


def test_sops_source_without_a_folder_is_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        load_config({}, source="sops")
    assert "secrets folder" in str(info.value)
    assert info.value.hint is not None and "MACULA_SECRETS_DIR" in info.value.hint
    with pytest.raises(ConfigError):
        load_config({"MACULA_SECRETS_SOURCE": "sops"})
    with pytest.raises(ConfigError):
        Secrets.open(source="sops", env={})


# -- Secrets.open applies the configuration ------------------------------------------


def test_open_applies_app_max_versions(cwd: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_toml(cwd / "macula-secrets.toml",
               f'home = "{home}"\nmax_versions = 4\n[apps.web]\nmax_versions = 2\n')
    with Secrets.open(env={}) as s:
        assert s.store.path == str(home / "store.db")
        assert s.store.get_max_versions("default", "web") == 2
        assert s.store.get_max_versions("default", "db") == 4
        for i in range(5):
            s.put("web", "k", str(i))
            s.put("db", "k", str(i))
        assert [i.version for i in s.history("web", "k")] == [4, 5]
        assert [i.version for i in s.history("db", "k")] == [2, 3, 4, 5]
    # A changed limit in the file is applied at the next open.
    write_toml(cwd / "macula-secrets.toml",
               f'home = "{home}"\nmax_versions = 4\n[apps.web]\nmax_versions = 3\n')
    with Secrets.open(env={}) as s:
        assert s.store.get_max_versions("default", "web") == 3


def test_open_takes_the_tenant_and_size_from_the_environment(tmp_path: Path) -> None:
    env = {"MACULA_SECRETS_HOME": str(tmp_path / "home"), "MACULA_SECRETS_TENANT": "acme",
           "MACULA_SECRETS_MAX_VALUE_SIZE": "8"}
    with Secrets.open(env=env) as s:
        assert s.tenant == "acme"
        assert s.store.path == str(tmp_path / "home" / "store.db")
        assert s.store.max_value_size == 8
        assert s.config is not None and s.config.source == "none"


def test_an_explicit_empty_tenant_is_an_error_not_the_default(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tenant name is empty"):
        load_config({}, home=str(tmp_path), tenant="")


def test_a_relative_secrets_dir_is_made_absolute(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config({"MACULA_SECRETS_DIR": "gitops/secrets"}, home=str(tmp_path / "h"))
    assert cfg.secrets_dir == str(tmp_path / "gitops" / "secrets")


# -- [vault] --------------------------------------------------------------------------


def test_vault_table_with_defaults(cwd: Path) -> None:
    write_toml(cwd / "macula-secrets.toml",
               'source = "vault"\n[vault]\naddress = "http://127.0.0.1:8200"\n')
    cfg = load_config({})
    assert cfg.source == "vault"
    assert cfg.vault is not None
    assert cfg.vault.addresses == ("http://127.0.0.1:8200",)
    assert cfg.vault.mount == "secret"
    assert cfg.vault.path == "macula/{app}/{key}"
    assert cfg.vault.namespace is None
    assert (cfg.vault.refresh, cfg.vault.max_stale) == (30.0, 3600.0)
    assert (cfg.vault.timeout, cfg.vault.max_attempts) == (10.0, 3)


def test_vault_table_in_full(cwd: Path) -> None:
    write_toml(cwd / "macula-secrets.toml", """\
source = "vault"
[vault]
address = ["https://a:8200", "https://b:8200"]
mount = "kv"
path = "apps/{app}/{key}"
namespace = "team"
token_file = "/run/vault/token"
role_id_file = "/etc/role_id"
secret_id_file = "/etc/secret_id"
ca_cert = "/etc/ca.pem"
refresh = 0.5
max_stale = 0
timeout = 2
max_attempts = 1
""")
    v = load_config({}).vault
    assert v is not None
    assert v.addresses == ("https://a:8200", "https://b:8200")
    assert (v.mount, v.path, v.namespace) == ("kv", "apps/{app}/{key}", "team")
    assert (v.token_file, v.role_id_file, v.secret_id_file, v.ca_cert) == (
        "/run/vault/token", "/etc/role_id", "/etc/secret_id", "/etc/ca.pem")
    assert (v.refresh, v.max_stale, v.timeout, v.max_attempts) == (0.5, 0.0, 2.0, 1)


def test_vault_address_from_the_environment(cwd: Path) -> None:
    write_toml(cwd / "macula-secrets.toml", '[vault]\naddress = "http://toml:8200"\n')
    cfg = load_config({"MACULA_SECRETS_SOURCE": "vault", "BAO_ADDR": "http://bao:8200"})
    assert cfg.vault is not None and cfg.vault.addresses == ("http://bao:8200",)
    cfg = load_config({"MACULA_SECRETS_SOURCE": "vault", "BAO_ADDR": "http://bao:8200",
                       "VAULT_ADDR": "http://vault:8200"})
    assert cfg.vault is not None and cfg.vault.addresses == ("http://vault:8200",)
    # No table at all: the environment is enough.
    (cwd / "macula-secrets.toml").unlink()
    cfg = load_config({"VAULT_ADDR": "http://v:8200"}, source="vault")
    assert cfg.vault is not None and cfg.vault.addresses == ("http://v:8200",)


def test_vault_tls_files_from_the_table_and_the_environment(cwd: Path) -> None:
    write_toml(cwd / "macula-secrets.toml", """\
source = "vault"
[vault]
address = "https://a:8200"
ca_cert = "/etc/ca.pem"
client_cert = "/etc/client.pem"
client_key = "/etc/client-key.pem"
""")
    v = load_config({}).vault
    assert v is not None
    assert (v.ca_cert, v.client_cert, v.client_key) == (
        "/etc/ca.pem", "/etc/client.pem", "/etc/client-key.pem")
    v = load_config({"VAULT_CACERT": "/env/ca.pem", "VAULT_CLIENT_CERT": "/env/c.pem",
                     "VAULT_CLIENT_KEY": "/env/k.pem"}).vault
    assert v is not None
    assert (v.ca_cert, v.client_cert, v.client_key) == (
        "/env/ca.pem", "/env/c.pem", "/env/k.pem")
    # No table entries: the environment alone gives them.
    (cwd / "macula-secrets.toml").unlink()
    v = load_config({"VAULT_ADDR": "https://v", "VAULT_CACERT": "/env/ca.pem",
                     "VAULT_CLIENT_CERT": "/env/c.pem", "VAULT_CLIENT_KEY": "/env/k.pem"},
                    source="vault").vault
    assert v is not None
    assert (v.ca_cert, v.client_cert, v.client_key) == (
        "/env/ca.pem", "/env/c.pem", "/env/k.pem")
    v = load_config({"VAULT_ADDR": "https://v"}, source="vault").vault
    assert v is not None and (v.ca_cert, v.client_cert, v.client_key) == (None, None, None)


@pytest.mark.parametrize(("toml", "env"), [
    ('client_cert = "/c.pem"\n', {}),
    ('client_key = "/k.pem"\n', {}),
    ("", {"VAULT_CLIENT_CERT": "/c.pem"}),
    ('client_cert = "/c.pem"\n', {"VAULT_CLIENT_CERT": "/other.pem"}),
])
def test_vault_client_cert_and_key_go_together(cwd: Path, toml: str,
                                               env: dict[str, str]) -> None:
    write_toml(cwd / "macula-secrets.toml",
               'source = "vault"\n[vault]\naddress = "https://a"\n' + toml)
    with pytest.raises(ConfigError, match=r"client_cert and vault\.client_key go together") \
            as info:
        load_config(env)
    assert info.value.hint is not None and "VAULT_CLIENT_KEY" in info.value.hint


def test_vault_table_is_ignored_for_other_sources(cwd: Path) -> None:
    write_toml(cwd / "macula-secrets.toml", '[vault]\naddress = "http://a:8200"\n')
    assert load_config({}).vault is None


def test_vault_source_needs_an_address() -> None:
    with pytest.raises(ConfigError, match="no vault address") as info:
        load_config({}, source="vault")
    assert info.value.hint is not None and "VAULT_ADDR" in info.value.hint


def test_unknown_vault_setting_is_named(cwd: Path) -> None:
    path = write_toml(cwd / "macula-secrets.toml",
                      'source = "vault"\n[vault]\naddress = "http://a"\nrefesh = 3\n')
    with pytest.raises(ConfigError) as info:
        load_config({})
    assert "'refesh'" in str(info.value) and "[vault]" in str(info.value)
    assert str(path) in str(info.value)
    assert info.value.hint is not None and "refresh" in info.value.hint


@pytest.mark.parametrize(("text", "fragment"), [
    ('vault = "x"', "[vault] must be a table"),
    ('[vault]\naddress = 3', "vault.address must be a string or a list"),
    ('[vault]\naddress = []', "vault.address must be a string or a list"),
    ('[vault]\nmount = 1', "vault.mount must be a string"),
    ('[vault]\nrefresh = -1', "vault.refresh must be a number of seconds"),
    ('[vault]\nmax_stale = "1h"', "vault.max_stale must be a number of seconds"),
    ('[vault]\nmax_stale = true', "vault.max_stale must be a number of seconds"),
    ('[vault]\ntimeout = 0', "vault.timeout must be a number of seconds (more than 0)"),
    ('[vault]\nmax_attempts = 0', "vault.max_attempts must be a whole number"),
    ('[vault]\nrole_id_file = "/r"', "go together"),
])
def test_malformed_vault_settings(cwd: Path, text: str, fragment: str) -> None:
    write_toml(cwd / "macula-secrets.toml", 'source = "vault"\n' + text + "\n")
    with pytest.raises(ConfigError) as info:
        load_config({"VAULT_ADDR": "http://a:8200"})
    assert fragment in str(info.value)


def test_open_with_a_vault_source_builds_the_backend(tmp_path: Path) -> None:
    env = {"VAULT_ADDR": "http://127.0.0.1:1", "VAULT_TOKEN": "t"}
    with Secrets.open(home=tmp_path / "home", source="vault", env=env) as secrets:
        vault = secrets._vault
        assert vault is not None
        assert vault.address == "http://127.0.0.1:1"
        assert (vault.refresh, vault.max_stale) == (30.0, 3600.0)
        assert secrets.source is None
    with pytest.raises(ConfigError, match="no vault token"):
        Secrets.open(home=tmp_path / "home", source="vault", env={"VAULT_ADDR": "http://a:1"})
