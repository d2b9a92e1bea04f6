"""Reprs of trees show keys and value types, never values (they may be secrets)."""

from __future__ import annotations

from macula_secrets.sops.tree import Branch, Comment, Timestamp


def test_branch_repr_hides_values() -> None:
    secret = "s3cr3t-CANARY-value"
    tree = Branch([
        ("db", Branch([("password", secret), ("port", 5432)])),
        (Comment(" " + secret), None),
        ("hosts", [secret, None, True]),
        ("when", Timestamp("2024-01-01T00:00:00Z")),
    ])
    text = repr(tree)
    assert secret not in text
    assert "5432" not in text
    assert "'db'" in text and "'password'" in text and "<str>" in text
    assert repr(Comment(secret)) == "Comment(***)"
