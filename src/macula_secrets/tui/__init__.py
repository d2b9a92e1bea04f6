"""``macula-secrets tui``: a terminal UI over :class:`~macula_secrets.Secrets` [extra: tui].

A shell like ``cli/``: ``model`` is the Textual-free layer of calls on the
API, ``app`` the main screen, ``screens`` its dialogs, ``widgets`` its panes,
``wizard`` the first-run key setup and ``keysetup`` the Textual-free steps
under it (``cli/initcmd.py``'s and ``key combine``'s own code); ``base`` is
the App base class that keeps secrets out of crash reports. Import it only
when Textual is installed; ``cli/tuicmd.py`` checks that first.
"""
