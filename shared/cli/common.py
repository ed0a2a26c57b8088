"""What every command needs: settings read once, logging configured, secrets known to the
masker."""

from __future__ import annotations

from shared.logs import configure_logging
from shared.settings import Settings, load_settings


def command_settings() -> Settings:
    """Read the environment (the CLI is an entry point) and set up logging."""
    settings = load_settings()
    configure_logging(
        level=settings.log_level, json=settings.log_json, secrets=secret_values(settings)
    )
    return settings


def secret_values(settings: Settings) -> list[str]:
    """Every configured secret, so the log masker can redact it wherever it appears."""
    values = [
        settings.mews_client_token,
        settings.mews_access_token,
        settings.supabase_service_role_key,
        settings.webhook_secret,
        settings.token_encryption_key,
        settings.database_url,
    ]
    return [v.get_secret_value() for v in values if v is not None]
