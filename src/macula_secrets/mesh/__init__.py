"""Joining nodes through a bootstrap: a new node asks, an operator approves, keys never move.

:mod:`.protocol` holds the messages, the join code and the age seals;
:mod:`.desk` the bootstrap's requests and approvals (M of N approvers);
:mod:`.grant` what an approved node is given and how it is applied;
:mod:`.joiner` the node's side over TLS pinned to the bootstrap's
certificate. The server's endpoint is :mod:`macula_secrets.server.join`;
the commands are ``join`` and ``node pending/approve/reject/remove``
(docs/mesh.md).
"""
