"""Switch the library's OpenTelemetry spans and metrics on or off from the application.

Usually nothing needs calling: ``Secrets.open`` switches them on by itself
when the application has set a global tracer provider, or when
``MACULA_SECRETS_OTEL=on`` (docs/observability.md). This module is for an
application that passes its own providers (tests pass the SDK's in-memory
ones), or that wants the instrumentation off again::

    from macula_secrets import telemetry

    telemetry.enable(tracer_provider=provider, meter_provider=meters)
    ...
    telemetry.disable()

The work is done in the internal ``_telemetry`` and ``_otel`` modules;
without ``opentelemetry-api`` installed, :func:`enable` raises
``ConfigError`` and the library's methods stay the plain ones.
"""

from __future__ import annotations

from ._telemetry import disable, enable, is_enabled

__all__ = ["disable", "enable", "is_enabled"]
