"""The fault tests use the command-line fixtures."""

from tests.cli.conftest import age_keys, keyed, sops, test_key

__all__ = ["age_keys", "keyed", "sops", "test_key"]
