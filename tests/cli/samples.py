"""Plaintext documents used by the CLI tests, one per format.

Each one has something for every selection rule to act on: keys matching
``^(data|password)$`` and ``^(user|note)``, an ``_enc`` and a ``_plain``
suffix, ``_unencrypted`` keys, comments holding ``sops:enc`` and
``sops:clear``, and the secret :data:`CANARY`.
"""

from __future__ import annotations

from tests.cli._support import CANARY

YAML = f"""\
# top comment
user: admin
password: {CANARY}
data:
    # inside data
    token: t0k3n
    port: 5432
    ratio: 0.5
    enabled: true
    when: 2024-01-01
list:
    - one
    - password: p1
      other: o1
    - 3
db_enc:
    host: db.local
url_plain: https://example.org
note_unencrypted: visible
# sops:enc
marked: m1
after_marked: m2
# sops:clear
cleared: c1
after_cleared: c2
empty: ""
nothing: null
multi: |
    line1
    line2
unicode: "grüße ✓"
""".encode()

JSON = f"""\
{{
\t"user": "admin",
\t"password": "{CANARY}",
\t"data": {{
\t\t"token": "t0k3n",
\t\t"port": 5432,
\t\t"ratio": 0.5,
\t\t"enabled": true
\t}},
\t"list": [
\t\t"one",
\t\t{{
\t\t\t"password": "p1",
\t\t\t"other": "o1"
\t\t}},
\t\t3
\t],
\t"db_enc": {{
\t\t"host": "db.local"
\t}},
\t"url_plain": "https://example.org",
\t"note_unencrypted": "visible",
\t"empty": "",
\t"nothing": null,
\t"multi": "line1\\nline2",
\t"unicode": "grüße ✓ <&>"
}}
""".encode()

DOTENV = f"""\
# top comment
user=admin
password={CANARY}
data=d4t4
token_enc=t0k3n
url_plain=https://example.org
note_unencrypted=visible
# sops:enc
marked=m1
after_marked=m2
# sops:clear
cleared=c1
after_cleared=c2
empty=
multi=line1\\nline2
unicode=grüße ✓
""".encode()

INI = f"""\
; top comment
[data]
password = {CANARY}
token    = t0k3n
; sops:enc
marked   = m1
after    = m2

[server]
user = admin
host_enc = db.local
url_plain = https://example.org
; sops:clear
cleared = c1
after_cleared = c2

[note_unencrypted]
visible = yes
""".encode()

BINARY = b"raw\x00\xff bytes " + CANARY.encode() + b"\n\x01\x02"

PLAINTEXTS = {"yaml": YAML, "json": JSON, "dotenv": DOTENV, "ini": INI, "binary": BINARY}

#: Ten keys, flat: for the minimal-diff tests.
TEN_YAML = "".join(f"key{i}: value-{i}-{CANARY}\n" for i in range(10)).encode()
TEN_JSON = (
    "{\n" + ",\n".join(f'\t"key{i}": "value-{i}-{CANARY}"' for i in range(10)) + "\n}\n"
).encode()
TEN_DOTENV = "".join(f"key{i}=value-{i}-{CANARY}\n" for i in range(10)).encode()
TEN_INI = (
    "[main]\n" + "".join(f"key{i} = value-{i}-{CANARY}\n" for i in range(10))
).encode()
TEN = {"yaml": TEN_YAML, "json": TEN_JSON, "dotenv": TEN_DOTENV, "ini": TEN_INI}
