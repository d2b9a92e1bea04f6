"""Integrations with application frameworks: a shell layer, like ``cli/`` and ``server/``.

Each submodule imports one optional framework and translates between it and
the API: :mod:`.pydantic` (a pydantic-settings source, extra ``pydantic``)
and :mod:`.django` (a Django app with a system check, extra ``django``).
Nothing inside the library imports this package; a plain settings module
wants :func:`macula_secrets.config.secret`, which needs no framework.
"""

from __future__ import annotations

__all__: list[str] = []
