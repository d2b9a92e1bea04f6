"""A YAML reader and writer that behave like go-yaml v3, the library inside sops.

Why not PyYAML or ruamel.yaml: sops decides a value's type, a comment's place
and a string's quoting the way go-yaml v3 does (YAML 1.2 typing with 1.1
quirks, head/line/foot comments), and byte-compatible output needs the same
decisions. No Python library makes them; ruamel and PyYAML resolve scalars
by YAML 1.1 rules and attach comments differently. Importing either also
costs more start-up time than ``macula-secrets decrypt`` can spare.

The reader (``scanner.py``, ``parser.py``) follows the token and event
grammar that libyaml and go-yaml share, including go-yaml's comment
placement, so that a comment lands in the same place of the tree as it does
in sops. The writer (``emitter.py``) prints the node trees sops builds.
Scalar typing is in ``resolve.py``.

Internal: use :mod:`macula_secrets.sops.stores.yaml`.
"""
