"""The public surface: what `macula_secrets` and its public modules export.

Changing these lists is a decision about the public API: make it on purpose.
"""

from __future__ import annotations

import macula_secrets
from macula_secrets import errors, sops


def test_package_exports() -> None:
    assert sorted(macula_secrets.__all__) == [
        "SecretRef", "Secrets", "Subscription", "SyncReport", "VersionInfo", "__version__",
        "delete", "get", "list", "load_all", "put", "require",
    ]
    for name in macula_secrets.__all__:
        assert getattr(macula_secrets, name) is not None, name


def test_importing_the_package_loads_no_store_code() -> None:
    """`import macula_secrets` stays cheap: the store is loaded on first use."""
    import subprocess
    import sys

    code = ("import sys, macula_secrets\n"
            "print(','.join(m for m in ('sqlite3', 'macula_secrets.client', "
            "'macula_secrets.localstore.store') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""


def test_unknown_attribute_is_an_attribute_error() -> None:
    import pytest

    with pytest.raises(AttributeError):
        macula_secrets.no_such_name  # noqa: B018


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


def test_testing_exports() -> None:
    from macula_secrets import testing

    assert testing.__all__ == ["exercise_backend"]


def test_backend_protocol_is_met_by_every_backend_module() -> None:
    from macula_secrets.backends import Backend
    from macula_secrets.backends.local import LocalBackend
    from macula_secrets.backends.sops import SopsBackend
    from macula_secrets.backends.vault import VaultBackend

    methods = [n for n in dir(Backend) if not n.startswith("_")]
    for cls in (LocalBackend, SopsBackend, VaultBackend):
        missing = [m for m in methods if not hasattr(cls, m)]
        assert not missing, (cls.__name__, missing)
