"""Management commands of the macula-secrets Django app."""
