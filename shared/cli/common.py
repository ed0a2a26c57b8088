"""What every command needs: settings read once, logging configured, secrets known to the
masker."""

from __future__ import annotations

from shared.logs import configure_logging
from shared.settings import Settings, load_settings, secret_values


def command_settings() -> Settings:
    """Read the environment (the CLI is an entry point) and set up logging."""
    settings = load_settings()
    configure_logging(
        level=settings.log_level, json=settings.log_json, secrets=secret_values(settings)
    )
    return settings
