"""``macula_secrets.gitops``: app specs resolved against a real store and environment.

Also a Hypothesis round trip: any text values, written by ``to_dotenv``,
read back unchanged by python-dotenv (with and without interpolation), or
refused when python-dotenv would expand them.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from dotenv import dotenv_values
from hypothesis import given, settings
from hypothesis import strategies as st

from macula_secrets import Secrets
from macula_secrets.errors import ConfigError, FormatError, NotFoundError
from macula_secrets.gitops import (
    AppSpec,
    EnvRef,
    LiteralValue,
    SecretRef,
    load_spec,
    parse_spec,
    resolve,
    to_dotenv,
)

CANARY = "s3cr3t-gitops-CANARY-41d"


@pytest.fixture(autouse=True)
def _cwd(private_cwd: Path) -> None:
    """No ./macula-secrets.toml or ./secrets from wherever pytest was started."""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def secrets(home: Path) -> Iterator[Secrets]:
    s = Secrets.open(home=home, source="none", env={})
    yield s
    s.close()


SPEC = """\
name: console            # ignored, as are image and the rest
image: registry.example/console:1.4
app: console
env:
  LOG_LEVEL: info
  WORKERS: 4
  ZIP: 01234
  RATIO: 1.10
  DEBUG: false
  VERBOSE: True
  EMPTY: ""
  DATABASE_URL: {secret: database_url}
  STRIPE_KEY: {secret: "billing/stripe_key"}
  REGION: {env: NODE_REGION}
  ZONE: {env: NODE_ZONE, default: a}
"""


def test_resolves_literals_secrets_and_env_in_spec_order(secrets: Secrets) -> None:
    secrets.put("console", "database_url", "postgres://db/console")
    secrets.put("billing", "stripe_key", CANARY)
    values = resolve(parse_spec(SPEC), secrets=secrets, environ={"NODE_REGION": "eu-west"})
    assert values == {
        "LOG_LEVEL": "info",
        "WORKERS": "4",
        "ZIP": "01234",  # as written: not YAML 1.1's octal 668
        "RATIO": "1.10",  # as written: not the float 1.1
        "DEBUG": "false",
        "VERBOSE": "true",
        "EMPTY": "",
        "DATABASE_URL": "postgres://db/console",
        "STRIPE_KEY": CANARY,
        "REGION": "eu-west",
        "ZONE": "a",
    }
    assert list(values) == [e.name for e in parse_spec(SPEC).env]


def test_a_json_spec_and_the_environment_key(secrets: Secrets) -> None:
    secrets.put("web", "token", "t1")
    text = '{"environment": {"TOKEN": {"secret": "web/token"}, "PORT": 8080, "ON": true}}'
    assert resolve(parse_spec(text), secrets=secrets, environ={}) == {
        "TOKEN": "t1", "PORT": "8080", "ON": "true"}


def test_env_var_set_to_empty_counts_as_set_and_beats_the_default() -> None:
    spec = {"env": {"A": {"env": "X", "default": "d"}, "B": {"env": "Y", "default": 5}}}
    assert resolve(spec, environ={"X": ""}) == {"A": "", "B": "5"}


def test_secret_version_and_tenant(secrets: Secrets) -> None:
    secrets.put("app", "key", "one")
    secrets.put("app", "key", "two")
    secrets.with_tenant("acme").put("app", "key", "acme-value")
    spec = parse_spec("""
env:
  LATEST: {secret: app/key}
  FIRST: {secret: app/key, version: 1}
  ACME: {secret: app/key, tenant: acme}
""")
    assert resolve(spec, secrets=secrets, environ={}) == {
        "LATEST": "two", "FIRST": "one", "ACME": "acme-value"}
    assert spec.secret_refs() == [SecretRef("app", "key"), SecretRef("app", "key", version=1),
                                  SecretRef("app", "key", tenant="acme")]


def test_a_tenant_view_resolves_that_tenants_secrets(secrets: Secrets) -> None:
    secrets.with_tenant("acme").put("app", "key", "acme-value")
    spec = {"env": {"K": {"secret": "app/key"}}}
    assert resolve(spec, secrets=secrets.with_tenant("acme"), environ={}) == {"K": "acme-value"}
    with pytest.raises(NotFoundError, match=r"secret app/key not found"):
        resolve(spec, secrets=secrets, environ={})


def test_missing_secret_is_an_error_naming_the_entry(secrets: Secrets) -> None:
    secrets.put("console", "database_url", CANARY)
    with pytest.raises(NotFoundError) as info:
        resolve(parse_spec(SPEC.replace("billing/stripe_key", "billing/nope"),
                           source="deploy/console.yaml"),
                secrets=secrets, environ={"NODE_REGION": "x"})
    assert str(info.value) == ("deploy/console.yaml: env.STRIPE_KEY: secret billing/nope "
                               "not found")
    assert info.value.hint is not None and "macula-secrets put" in info.value.hint
    assert isinstance(info.value, LookupError)


def test_every_missing_entry_is_named_in_one_error(secrets: Secrets) -> None:
    secrets.put("a", "present", CANARY)
    spec = {"env": {
        "OK": {"secret": "a/present"},
        "GONE": {"secret": "a/gone"},
        "OLD": {"secret": "a/present", "version": 9},
        "OTHER": {"secret": "a/present", "tenant": "elsewhere"},
        "VAR": {"env": "UNSET_VAR"},
    }}
    with pytest.raises(NotFoundError) as info:
        resolve(spec, secrets=secrets, environ={})
    message = str(info.value)
    assert message.startswith("spec: 4 entries cannot be resolved: ")
    for fragment in ("env.GONE: secret a/gone not found",
                     "env.OLD: secret a/present version 9 not found",
                     "env.OTHER: secret a/present of tenant elsewhere not found",
                     "env.VAR: environment variable UNSET_VAR is not set"):
        assert fragment in message
    assert "env.OK" not in message
    assert CANARY not in message and CANARY not in (info.value.hint or "")
    assert "default" in (info.value.hint or "")


def test_missing_env_var_is_an_error_naming_the_entry() -> None:
    with pytest.raises(NotFoundError, match=r"^spec: env.REGION: environment variable "
                                            r"NODE_REGION is not set$"):
        resolve({"env": {"REGION": {"env": "NODE_REGION"}}}, environ={})


def test_resolve_opens_the_configured_store_when_none_is_given(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MACULA_SECRETS_HOME", str(home))
    monkeypatch.setenv("MACULA_SECRETS_SOURCE", "none")
    with Secrets.open() as s:
        s.put("app", "key", "stored")
    spec = {"env": {"K": {"secret": "app/key"}, "R": {"env": "REGION"}}}
    # `environ` is only where {env: VAR} looks: it does not choose the store.
    assert resolve(spec, environ={"REGION": "eu"}) == {"K": "stored", "R": "eu"}


def test_literal_only_specs_open_no_store(home: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    monkeypatch.setenv("MACULA_SECRETS_HOME", str(home))
    assert resolve({"env": {"A": "1", "B": {"env": "X"}}}, environ={"X": "y"}) == {
        "A": "1", "B": "y"}
    assert not home.exists()


def test_spec_from_a_path(tmp_path: Path, secrets: Secrets) -> None:
    secrets.put("console", "database_url", "u")
    secrets.put("billing", "stripe_key", "k")
    path = tmp_path / "console.yaml"
    path.write_text(SPEC)
    env = {"NODE_REGION": "r"}
    expected = resolve(parse_spec(SPEC), secrets=secrets, environ=env)
    assert resolve(path, secrets=secrets, environ=env) == expected
    assert resolve(str(path), secrets=secrets, environ=env) == expected
    assert load_spec(path).source == str(path)
    with pytest.raises(ConfigError, match=r"cannot read spec .*missing.yaml"):
        resolve(tmp_path / "missing.yaml", environ={})


BAD_SPECS = [
    ("", "the spec is empty"),
    ("- a\n- b\n", "the spec must be a mapping"),
    ("name: x\n", "the spec has no env section"),
    ("env: {}\nenvironment: {}\n", "both env and environment"),
    ("env: [{name: A, value: b}]\n", "env must be a mapping of NAME: value"),
    ("env: {A: [1, 2]}\n", "env.A: a list cannot be an environment value"),
    ("env: {A: null}\n", "env.A: the value is null"),
    ("env: {A: }\n", "env.A: the value is null"),
    ("env: {1A: x}\n", "'1A' is not a valid environment variable name"),
    ("env: {A-B: x}\n", "'A-B' is not a valid environment variable name"),
    ("env: {A: x, A: y}\n", "key 'A' appears twice"),
    ("env: {A: {secret: a/b, tenat: t}}\n", "env.A: unknown key 'tenat' in a secret reference"),
    ("env: {A: {env: X, dflt: t}}\n", "env.A: unknown key 'dflt' in a env reference"),
    ("env: {A: {secret: a/b, env: X}}\n", "env.A: the reference has both secret and env"),
    ("env: {A: {value: x}}\n", "env.A: the reference has neither secret nor env"),
    ("env: {A: {secret: key}}\n", "env.A: secret 'key' names no app"),
    ("env: {A: {secret: a/b/c}}\n", "env.A: secret 'a/b/c' is not app/key"),
    ("env: {A: {secret: ../b}}\n", "env.A: app name '..' contains '..'"),
    ("env: {A: {secret: [a, b]}}\n", "env.A: secret must be app/key text"),
    ("env: {A: {secret: a/b, version: 0}}\n", "env.A: version must be a whole number"),
    ("env: {A: {secret: a/b, version: two}}\n", "env.A: version must be a whole number"),
    ("env: {A: {secret: a/b, version: true}}\n", "env.A: version must be a whole number"),
    ("env: {A: {secret: a/b, tenant: {x: 1}}}\n", "env.A: tenant name must be a string"),
    ("env: {A: {env: \"\"}}\n", "env.A: env must name an environment variable"),
    ("env: {A: {env: X, default: null}}\n", "env.A: default: the value is null"),
    ('env: {A: "a\\0b"}\n', "env.A: the value contains a NUL byte"),
    ("app: ../x\nenv: {}\n", "bad.yaml: app: app name '../x' contains a path separator"),
    ("env: {A: [\n", "yaml: line"),
    ("env: {}\n---\nenv: {}\n", "holds 2 YAML documents"),
]


@pytest.mark.parametrize(("text", "fragment"), BAD_SPECS)
def test_bad_specs_are_format_errors_naming_the_entry(text: str, fragment: str) -> None:
    with pytest.raises(FormatError) as info:
        parse_spec(text, source="bad.yaml")
    assert str(info.value).startswith("bad.yaml: ")
    assert fragment in str(info.value)


def test_other_top_level_keys_may_hold_anything() -> None:
    text = "containers: [{name: a, env: [1]}]\nlimits: {cpu: null}\nenv: {A: b}\n"
    assert resolve(parse_spec(text), environ={}) == {"A": "b"}


def test_an_empty_env_section_is_an_app_without_variables() -> None:
    assert resolve(parse_spec("env:\n"), environ={}) == {}


def test_anchors_and_aliases_are_followed() -> None:
    text = "defaults: &d {env: R, default: eu}\nenv:\n  A: *d\n  B: &lit x\n  C: *lit\n"
    assert resolve(parse_spec(text), environ={}) == {"A": "eu", "B": "x", "C": "x"}


def test_mappings_are_checked_like_files() -> None:
    assert resolve({"env": {"F": 0.5, "I": 7, "B": False}}, environ={}) == {
        "F": "0.5", "I": "7", "B": "false"}
    with pytest.raises(FormatError, match=r"^spec: env.X: the value is null"):
        AppSpec.from_mapping({"env": {"X": None}})
    with pytest.raises(FormatError, match=r"env.X: a bytes cannot be"):
        resolve({"env": {"X": b"raw"}}, environ={})
    with pytest.raises(FormatError, match=r"the spec must be a mapping"):
        AppSpec.from_mapping(["env"])  # type: ignore[arg-type]


def test_no_value_appears_in_errors_or_reprs(secrets: Secrets) -> None:
    secrets.put("app", "nul", CANARY + "\x00")
    with pytest.raises(FormatError) as info:
        resolve({"env": {"N": {"secret": "app/nul"}}}, secrets=secrets, environ={})
    assert str(info.value) == ("spec: env.N: the value contains a NUL byte, which no "
                               "environment variable can hold")
    spec = parse_spec(f"env:\n  L: {CANARY}\n  E: {{env: X, default: {CANARY}}}\n")
    assert CANARY not in repr(spec)
    assert repr(LiteralValue(CANARY)) == "LiteralValue()"
    assert repr(EnvRef("X", CANARY)) == "EnvRef(var='X')"
    with pytest.raises(FormatError) as info:
        to_dotenv({"K": CANARY + "${HOME}"})
    assert CANARY not in str(info.value)


# -- dotenv output --------------------------------------------------------------------


def test_to_dotenv_escapes_what_python_dotenv_decodes() -> None:
    values = {"A": 'say "hi"', "B": "back\\slash", "C": "two\nlines\r", "D": "$HOME $ # x",
              "E": "${not:closed", "F": ""}
    text = to_dotenv(values)
    assert text.splitlines()[0] == 'A="say \\"hi\\""'
    assert dotenv_values(stream=io.StringIO(text)) == values


def test_to_dotenv_refuses_a_reference_python_dotenv_would_expand() -> None:
    for value in ("${HOME}", "a${X:-d}b", "${}"):
        with pytest.raises(FormatError, match=r"^cannot write K as dotenv: its value holds a"):
            to_dotenv({"K": value})


env_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)
awkward = st.sampled_from(['"', "'", "=", "#", " ", "\n", "\r", "\r\n", "\t", "\\", "$",
                           "${X}", "${", "}", ":-", "\\n", '\\"', "export ", "é", "\u2028",
                           "\U0001f510", "\x0b", "\x85"])
texts = st.lists(st.one_of(awkward, st.characters(exclude_categories=["Cs"],
                                                  exclude_characters="\x00")),
                 max_size=20).map("".join)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(env_names, texts, max_size=6))
def test_dotenv_output_round_trips_through_python_dotenv(values: dict[str, str]) -> None:
    from dotenv.variables import Variable, parse_variables

    resolved = resolve({"env": values}, environ={})
    assert resolved == values
    expands = any(isinstance(a, Variable) for v in values.values() for a in parse_variables(v))
    if expands:
        with pytest.raises(FormatError):
            to_dotenv(resolved)
        return
    text = to_dotenv(resolved)
    assert dotenv_values(stream=io.StringIO(text)) == values
    assert dotenv_values(stream=io.StringIO(text), interpolate=False) == values
    with tempfile.TemporaryDirectory() as folder:  # a file read with universal newlines
        path = Path(folder) / ".env"
        path.write_text(text, encoding="utf-8")
        assert dotenv_values(path) == values
