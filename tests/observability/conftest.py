"""Every test leaves the library uninstrumented, whatever happened in it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from macula_secrets import _telemetry


@pytest.fixture(autouse=True)
def _plain_library() -> Iterator[None]:
    yield
    _telemetry.disable()
