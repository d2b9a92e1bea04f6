"""The argument parser built for one command equals the full one for that command."""

from __future__ import annotations

import argparse

import pytest

from macula_secrets.cli import _COMMANDS, build_parser


def _choices(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def test_known_commands_are_the_parsers_commands() -> None:
    assert set(_choices(build_parser())) == _COMMANDS


@pytest.mark.parametrize("command", sorted(_COMMANDS))
def test_single_command_parser_matches_the_full_one(command: str) -> None:
    full = _choices(build_parser())[command]
    single = _choices(build_parser(command))[command]
    assert single.format_help() == full.format_help()
