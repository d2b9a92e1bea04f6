"""Exit statuses of the command line.

By default every handled error exits 1 and usage errors exit 2 (DESIGN.md).
Scripts written for sops can ask for sops's own numbers instead with
``--sops-exit-codes`` or ``MACULA_SOPS_EXIT_CODES=1``; the numbers below are
sops's (``cmd/sops/codes``).
"""

from __future__ import annotations

from typing import Final

OK: Final = 0
ERROR: Final = 1
USAGE: Final = 2
INTERRUPTED: Final = 130

# sops's numbers, used with --sops-exit-codes.
SOPS_GENERIC: Final = 1
SOPS_COULD_NOT_READ_INPUT: Final = 2
SOPS_COULD_NOT_WRITE_OUTPUT: Final = 3
SOPS_ERROR_DUMPING_TREE: Final = 4
SOPS_INVALID_SET_FORMAT: Final = 7
SOPS_CONFLICTING_PARAMETERS: Final = 8
SOPS_ERROR_ENCRYPTING_TREE: Final = 23
SOPS_ERROR_DECRYPTING_TREE: Final = 25
SOPS_MAC_MISMATCH: Final = 51
SOPS_INVALID_TREE_PATH: Final = 91
SOPS_NEED_AT_LEAST_ONE_DOCUMENT: Final = 92
SOPS_NO_FILE: Final = 100
SOPS_COULD_NOT_RETRIEVE_KEY: Final = 128
SOPS_FILE_NOT_MODIFIED: Final = 200
SOPS_NO_EDITOR: Final = 201
SOPS_ALREADY_ENCRYPTED: Final = 203
