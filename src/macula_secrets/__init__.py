"""macula-secrets: secrets for machines that run without Kubernetes.

Secrets live in git as SOPS-compatible, age-encrypted files; this package
reads and writes them byte-compatibly with the real ``sops``. See
:mod:`macula_secrets.sops` for the file API.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
