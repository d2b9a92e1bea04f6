"""The ``doctor`` command: run the node's health checks and print what to fix.

A thin shell over :mod:`macula_secrets.doctor`: one line per finding
(``ok``, ``info``, ``warn``, ``FAIL``), an indented ``fix:`` line under each
warning and failure, a summary, exit status 1 when anything failed. With
``--json`` the findings go to stdout as one JSON document instead. Colours
only on a terminal and never with ``NO_COLOR`` set, so piped output is
plain text.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Final

from . import exitcodes as X

if TYPE_CHECKING:
    from ..doctor import Result

__all__ = ["run"]

_LABELS: Final = {"ok": "ok", "info": "info", "warn": "warn", "fail": "FAIL"}
_COLOURS: Final = {"ok": "32", "info": "2", "warn": "33", "fail": "1;31"}


def format_results(results: list[Result], *, colour: bool = False) -> str:
    """The human report: status, check and message aligned; ``fix:`` lines under problems."""
    width = max((len(r.check) for r in results), default=0)
    lines = []
    for r in results:
        label = f"{_LABELS[r.status]:<4}"
        if colour:
            label = f"\x1b[{_COLOURS[r.status]}m{label}\x1b[0m"
        lines.append(f"{label}  {r.check:<{width}}  {r.message}")
        if r.hint and r.status in ("warn", "fail"):
            lines.append(f"{'':4}  {'':<{width}}  fix: {r.hint}")
    fails = sum(r.status == "fail" for r in results)
    warns = sum(r.status == "warn" for r in results)
    if fails or warns:
        lines.append(f"{fails} failed, {warns} warning{'s' if warns != 1 else ''}, "
                     f"{len(results)} checks")
    else:
        lines.append(f"all {len(results)} checks passed")
    return "".join(line + "\n" for line in lines)


def run(args: argparse.Namespace) -> int:
    from .._config import load_config
    from ..doctor import failed, run_checks
    from .storecmds import use_colour

    cfg = load_config(home=args.home, tenant=args.tenant)
    results = run_checks(cfg, os.environ, tenant=args.tenant, now=time.time())
    if args.json:
        doc = {"ok": not failed(results), "home": cfg.home,
               "checks": [r.to_json() for r in results]}
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(format_results(results, colour=use_colour(sys.stdout)))
    return X.ERROR if failed(results) else X.OK
