"""The example Django project: settings, URLs and views reading secrets through macula-secrets."""
