"""``macula-secrets serve``: the Vault KV v2 compatible secret server (needs the ``server`` extra).

Layout: :mod:`.auth` (who is calling: the :class:`~.auth.Identity` a token
or a Unix peer maps to, and what it may do), :mod:`.tokens` (the token
store), :mod:`.policy` (capabilities on tenant/app/key globs), :mod:`.app`
(the ASGI application: Vault's paths, JSON shapes and status codes),
:mod:`.audit` (one hash-chained line per request, fail closed), :mod:`.run`
(serving: TLS, Unix socket, graceful shutdown).
"""
