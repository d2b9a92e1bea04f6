"""The server imports uvicorn's serving parts without its command line (start-up time),
and the package still behaves as usual for other code in the process."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          check=False, capture_output=True, text=True, timeout=60)


def test_serving_parts_load_without_click_and_the_package_completes_on_use() -> None:
    done = _python("""
        import sys
        from macula_secrets.server.run import _server_classes
        server, protocol = _server_classes()
        assert "uvicorn.main" not in sys.modules and "click" not in sys.modules, "CLI loaded"
        import uvicorn
        from uvicorn.server import Server
        assert issubclass(server, Server)
        assert uvicorn.Config.__module__ == "uvicorn.config"
        run = uvicorn.run                      # a name only the real __init__ defines
        assert "uvicorn.main" in sys.modules and callable(run)
        assert uvicorn.Server is Server and not hasattr(uvicorn, "nothing_like_this")
        print("ok")
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_an_already_imported_uvicorn_is_used_as_it_is() -> None:
    done = _python("""
        import sys
        import uvicorn
        before = sys.modules["uvicorn"]
        from macula_secrets.server.run import _server_classes
        _server_classes()
        assert sys.modules["uvicorn"] is before and "uvicorn.main" in sys.modules
        print("ok")
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
