"""``python -m macula_secrets``: the command line."""

from .cli import entry

entry()
