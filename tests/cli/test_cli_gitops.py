"""Black-box tests of ``macula-secrets gitops resolve``: JSON, dotenv, --exec, errors."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from dotenv import dotenv_values

from macula_secrets import sops as sopslib
from tests.cli._support import CANARY, Result, run_cli, run_proc
from tests.conftest import TEST_AGE_PUBLIC

SPEC = """\
name: console
app: console
env:
  DATABASE_URL: {secret: database_url}
  API_TOKEN: {secret: console/api_token}
  LOG_LEVEL: info
  WORKERS: 4
  REGION: {env: NODE_REGION, default: eu-west-1}
"""


@pytest.fixture
def store_env(store_env: dict[str, str]) -> dict[str, str]:
    """The CLI tests' home and folder, with NODE_REGION unset for the spec's default."""
    return {**store_env, "NODE_REGION": ""}


@pytest.fixture
def spec(tmp_path: Path, store_env: dict[str, str]) -> Path:
    """The console spec, its two secrets in the store."""
    cli(store_env, "put", "console", "database_url", 'postgres://u:p"w@db/console').assert_ok()
    cli(store_env, "put", "console", "api_token", CANARY).assert_ok()
    path = tmp_path / "console.yaml"
    path.write_text(SPEC)
    return path


def cli(env: dict[str, str], *args: str | Path, input: bytes = b"") -> Result:
    return run_cli(*args, env=env, input=input)


EXPECTED = {
    "API_TOKEN": CANARY,
    "DATABASE_URL": 'postgres://u:p"w@db/console',
    "LOG_LEVEL": "info",
    "REGION": "eu-west-1",
    "WORKERS": "4",
}


def test_json_output_is_sorted_and_complete(store_env: dict[str, str], spec: Path) -> None:
    r = cli(store_env, "gitops", "resolve", spec).assert_ok()
    assert r.err == ""
    assert json.loads(r.out) == EXPECTED
    assert r.text == json.dumps(EXPECTED, indent=2, sort_keys=True) + "\n"
    assert list(json.loads(r.out)) == sorted(EXPECTED)


def test_env_references_read_this_process_environment(store_env: dict[str, str],
                                                      spec: Path) -> None:
    r = cli({**store_env, "NODE_REGION": "ap-south"}, "gitops", "resolve", spec).assert_ok()
    assert json.loads(r.out)["REGION"] == "ap-south"


def test_dotenv_output_reads_back_through_python_dotenv(store_env: dict[str, str],
                                                        tmp_path: Path) -> None:
    awkward = "line one\nline \"two\" \\ $HOME # not a comment\r\n'single'"
    cli(store_env, "put", "web", "cert", awkward).assert_ok()
    path = tmp_path / "web.yaml"
    path.write_text("env:\n  CERT: {secret: web/cert}\n  B: plain\n")
    r = cli(store_env, "gitops", "resolve", path, "--format", "dotenv").assert_ok()
    assert r.err == ""
    assert r.text.startswith('B="plain"\nCERT="line one\\nline')  # sorted, one line each
    assert dotenv_values(stream=io.StringIO(r.text)) == {"B": "plain", "CERT": awkward}
    assert dotenv_values(stream=io.StringIO(r.text), interpolate=False) == {
        "B": "plain", "CERT": awkward}


def test_spec_from_stdin(store_env: dict[str, str], spec: Path) -> None:
    r = cli(store_env, "gitops", "resolve", "-", input=spec.read_bytes()).assert_ok()
    assert json.loads(r.out) == EXPECTED


def test_secrets_come_from_the_gitops_folder(store_env: dict[str, str], tmp_path: Path) -> None:
    folder = Path(store_env["MACULA_SECRETS_DIR"])
    (folder / "billing.enc.yaml").write_bytes(
        sopslib.encrypt({"stripe_key": CANARY}, recipients=[TEST_AGE_PUBLIC]))
    path = tmp_path / "billing.yaml"
    path.write_text('{"env": {"STRIPE_KEY": {"secret": "billing/stripe_key"}}}')
    r = cli(store_env, "gitops", "resolve", path).assert_ok()
    assert json.loads(r.out) == {"STRIPE_KEY": CANARY}


def test_tenant_and_version(store_env: dict[str, str], tmp_path: Path) -> None:
    cli(store_env, "put", "app", "k", "v1", "--tenant", "acme").assert_ok()
    cli(store_env, "put", "app", "k", "v2", "--tenant", "acme").assert_ok()
    path = tmp_path / "app.yaml"
    path.write_text("env:\n  K: {secret: app/k}\n  OLD: {secret: app/k, version: 1}\n")
    r = cli(store_env, "gitops", "resolve", path, "--tenant", "acme").assert_ok()
    assert json.loads(r.out) == {"K": "v2", "OLD": "v1"}
    line = cli(store_env, "gitops", "resolve", path).assert_one_error()
    assert "env.K: secret app/k not found" in line


def test_reads_are_audited(store_env: dict[str, str], spec: Path) -> None:
    cli(store_env, "gitops", "resolve", spec).assert_ok()
    tail = cli(store_env, "audit", "tail", "--json").assert_ok().text.splitlines()
    reads = [json.loads(line) for line in tail if json.loads(line)["op"] == "read"]
    assert {(e["app"], e["key"], e["version"]) for e in reads} == {
        ("console", "database_url", 1), ("console", "api_token", 1)}


def test_exec_runs_the_command_with_the_values(store_env: dict[str, str], spec: Path) -> None:
    env = {**os.environ, **store_env, "LOG_LEVEL": "overridden-by-the-spec"}
    env.pop("NODE_REGION")
    script = 'printf "%s|%s|%s" "$API_TOKEN" "$LOG_LEVEL" "$REGION"; exit 7'
    r = run_proc("gitops", "resolve", spec, "--exec", "--", "sh", "-c", script, env=env)
    assert r.rc == 7, r.err
    assert r.out == f"{CANARY}|info|eu-west-1".encode()
    assert r.err == ""


def test_exec_passes_options_through_to_the_command(store_env: dict[str, str],
                                                    spec: Path) -> None:
    env = {**os.environ, **store_env}
    env.pop("NODE_REGION")
    r = run_proc("gitops", "resolve", spec, "--tenant", "default", "--exec", "--",
                 "sh", "-c", 'printf "%s" "$1"', "sh", "--format", env=env)
    assert r.rc == 0, r.err
    assert r.out == b"--format"


def test_missing_secret_is_one_error_line_naming_the_entry(store_env: dict[str, str],
                                                           spec: Path) -> None:
    spec.write_text(SPEC.replace("console/api_token", "console/missing"))
    r = cli(store_env, "gitops", "resolve", spec)
    line = r.assert_one_error()  # exit 1, nothing on stdout, no value in stderr
    assert line == f"macula: error: {spec}: env.API_TOKEN: secret console/missing not found"
    assert "macula-secrets put" in r.err
    assert 'p"w' not in r.err  # nor the secret that did resolve


def test_missing_secret_with_exec_runs_nothing(store_env: dict[str, str], spec: Path,
                                               tmp_path: Path) -> None:
    spec.write_text(SPEC.replace("console/api_token", "console/missing"))
    marker = tmp_path / "ran"
    env = {**os.environ, **store_env}
    r = run_proc("gitops", "resolve", spec, "--exec", "--", "touch", marker, env=env)
    assert "env.API_TOKEN" in r.assert_one_error()
    assert not marker.exists()


def test_all_missing_entries_in_one_line(store_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("env:\n  A: {secret: x/a}\n  B: {env: NOT_SET_ANYWHERE}\n  C: ok\n")
    line = cli(store_env, "gitops", "resolve", path, "--format", "dotenv").assert_one_error()
    assert "2 entries cannot be resolved" in line
    assert "env.A: secret x/a not found" in line
    assert "env.B: environment variable NOT_SET_ANYWHERE is not set" in line


@pytest.mark.parametrize(("text", "fragment"), [
    ("env: {A: null}\n", "env.A: the value is null"),
    ("env: {A: {secret: a/b, versoin: 2}}\n", "unknown key 'versoin'"),
    ("env: {bad-name: x}\n", "'bad-name' is not a valid environment variable name"),
    ("env: [a]\n", "env must be a mapping"),
    ("name: x\n", "no env section"),
])
def test_bad_spec_is_one_error(store_env: dict[str, str], tmp_path: Path, text: str,
                               fragment: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    line = cli(store_env, "gitops", "resolve", path).assert_one_error()
    assert line.startswith(f"macula: error: {path}: ") and fragment in line
    assert not Path(store_env["MACULA_SECRETS_HOME"]).exists()  # no store was needed


def test_dotenv_refuses_a_value_dotenv_would_expand(store_env: dict[str, str],
                                                    tmp_path: Path) -> None:
    cli(store_env, "put", "a", "k", CANARY + "${HOME}").assert_ok()
    path = tmp_path / "s.yaml"
    path.write_text("env:\n  K: {secret: a/k}\n")
    line = cli(store_env, "gitops", "resolve", path, "--format", "dotenv").assert_one_error()
    assert "cannot write K as dotenv" in line
    assert json.loads(cli(store_env, "gitops", "resolve", path).assert_ok().out) == {
        "K": CANARY + "${HOME}"}


def test_usage_errors(store_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("env: {A: b}\n")
    assert "no command given" in cli(store_env, "gitops", "resolve", path,
                                     "--exec").assert_one_error()
    assert "unexpected argument 'env'" in cli(store_env, "gitops", "resolve", path, "--",
                                              "env").assert_one_error()
    line = cli(store_env, "gitops", "resolve", tmp_path / "nope.yaml").assert_one_error()
    assert "cannot read spec" in line and "nope.yaml" in line
    env = {**os.environ, **store_env}
    r = run_proc("gitops", "resolve", path, "--exec", "--", "no-such-command-xyz", env=env)
    assert "command not found: no-such-command-xyz" in r.assert_one_error()
    assert cli(store_env, "gitops", "resolve", path, "--format", "yaml").rc == 2
