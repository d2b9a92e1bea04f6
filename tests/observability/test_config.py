"""``[[audit.sinks]]`` in the TOML configuration: checked, with errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from macula_secrets._config import load_config
from macula_secrets.errors import ConfigError


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    (tmp_path / "config.toml").write_text(text)
    return load_config({}, home=str(tmp_path))


def test_sinks_are_read_in_order(tmp_path: Path) -> None:
    cfg = load(tmp_path, """
[[audit.sinks]]
type = "socket"
address = "tcp://127.0.0.1:5170"
required = true
timeout = 1.5
[[audit.sinks]]
type = "syslog"
name = "local"
required = false
""")
    assert [(s.type, s.name, s.required) for s in cfg.audit_sinks] == [
        ("socket", "socket0", True), ("syslog", "local", False)]
    assert cfg.audit_sinks[0].timeout == 1.5
    assert cfg.audit_sinks[1].address is None and cfg.audit_sinks[1].facility == "auth"
    assert load(tmp_path, "").audit_sinks == ()


@pytest.mark.parametrize(("table", "message"), [
    ('type = "kafka"\nrequired = true', "audit.sinks[0].type must be one of file, socket"),
    ('type = "socket"\naddress = "tcp://h:1"', "audit.sinks[0].required must be true or false"),
    ('type = "socket"\naddress = "/run/x.sock"\nrequired = true',
     "audit.sinks[0].address must be unix:///path or tcp://host:port"),
    ('type = "file"\npath = "audit.jsonl"\nrequired = true',
     "audit.sinks[0].path must be an absolute file path"),
    ('type = "file"\npath = "/x"\nrequired = true\naddress = "tcp://h:1"',
     "unknown setting 'address' in audit.sinks[0] (type file)"),
    ('type = "syslog"\nfacility = "mail2"\nrequired = true',
     "audit.sinks[0].facility must be one of"),
    ('type = "logging"\nlevel = "loud"\nrequired = true', "audit.sinks[0].level must be one of"),
    ('type = "socket"\naddress = "tcp://h:1"\nrequired = true\ntimeout = 0',
     "audit.sinks[0].timeout must be a number of seconds"),
])
def test_a_bad_sink_is_one_line_naming_the_field(tmp_path: Path, table: str,
                                                  message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, f"[[audit.sinks]]\n{table}\n")
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith(str(tmp_path / "config.toml"))


def test_unknown_audit_setting_and_duplicate_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown setting 'sink' in \[audit\]"):
        load(tmp_path, "[audit]\nsink = 1\n")
    with pytest.raises(ConfigError, match=r"audit\.sinks\[1\]\.name 'a' is used by another"):
        load(tmp_path, '[[audit.sinks]]\ntype = "logging"\nname = "a"\nrequired = false\n'
                       '[[audit.sinks]]\ntype = "logging"\nname = "a"\nrequired = false\n')
