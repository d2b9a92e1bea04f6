"""``manage.py macula_secrets_check``."""
