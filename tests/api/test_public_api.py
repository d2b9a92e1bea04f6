"""The public surface: what `macula_secrets` and its public modules export.

Changing these lists is a decision about the public API: make it on purpose.
"""

from __future__ import annotations

import macula_secrets
from macula_secrets import errors, sops


def test_package_exports() -> None:
    assert sorted(macula_secrets.__all__) == ["__version__"]


def test_sops_exports() -> None:
    assert sorted(sops.__all__) == [
        "FORMATS", "SopsFile", "decrypt", "encrypt", "encrypt_file", "load", "open_file",
    ]
    for name in sops.__all__:
        assert hasattr(sops, name), name


def test_errors_exports_the_documented_tree() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.MaculaError), name
    assert issubclass(errors.IntegrityError, errors.DecryptionError)
    assert issubclass(errors.NoMatchingKeyError, errors.DecryptionError)
    assert issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.NotFoundError, LookupError)
