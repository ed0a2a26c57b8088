"""Settings for every entry point, read from the environment (or a `.env` file) on demand.

Nothing is read at import: an entry point calls :func:`load_settings` and passes the result
down. Every secret is a :class:`~pydantic.SecretStr`, so it prints as ``**********``, and a
value that fails validation is never echoed (``hide_input_in_errors``; :class:`SettingsError`
is one line naming the variable).
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The public demo environment (docs/MEWS.md#environments). Its tokens are published by Mews for
# everyone; they are defaults so that the same settings work against the simulator and demo.
DEMO_PLATFORM_URL = "https://api.mews-demo.com"
DEMO_WEBSOCKET_URL = "wss://ws.mews-demo.com"
DEMO_CLIENT_TOKEN = "E0D439EE522F44368DC78E1BFB03710C-D24FB11DBE31D4621C4817E028D9E1D"  # noqa: S105
DEMO_ACCESS_TOKEN = "C66EF7B239D24632943D115EDE9CB810-EA00F8FD8294692C940F6B5A8F9453D"  # noqa: S105

INVALID_ENCRYPTION_KEY_MESSAGE = (
    "TOKEN_ENCRYPTION_KEY is not a valid Fernet key (32 bytes, URL-safe base64); generate one"
    ' with: python -c "from cryptography.fernet import Fernet;'
    ' print(Fernet.generate_key().decode())"'
)


def default_data_dir() -> Path:
    """The embedded database's home, the same from every folder: ``$GUESTHUB_HOME``, else the
    platform's user data folder (``~/.local/share/guesthub`` on Linux) when platformdirs is
    installed, else ``~/.guesthub``."""
    home = os.environ.get("GUESTHUB_HOME")
    if home:
        return Path(home).expanduser()
    try:
        from platformdirs import user_data_path
    except ImportError:
        return Path.home() / ".guesthub"
    return user_data_path("guesthub", appauthor=False)


class SettingsError(ValueError):
    """The environment's settings are invalid; one line naming each variable, never a value."""


class Settings(BaseSettings):
    """Configuration of one deployment."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", hide_input_in_errors=True
    )

    # database: a direct connection (local, embedded, tests, or Supabase's direct URL) ...
    database_url: SecretStr | None = None
    # ... or the Supabase API with the service-role key
    supabase_url: str | None = None
    supabase_service_role_key: SecretStr | None = None
    # where the embedded default database keeps its files when no database is configured
    data_dir: Path = Field(default_factory=default_data_dir)

    # Mews
    mews_platform_url: str = DEMO_PLATFORM_URL
    mews_websocket_url: str = DEMO_WEBSOCKET_URL
    mews_client_token: SecretStr = SecretStr(DEMO_CLIENT_TOKEN)
    mews_access_token: SecretStr = SecretStr(DEMO_ACCESS_TOKEN)
    mews_client_name: str = "Guest Data Hub 0.1.0"
    mews_timeout_seconds: float = 60.0

    # the shared request budget per AccessToken (Mews: 200 per sliding 30 s)
    mews_rate_limit: int = Field(default=200, ge=1)
    mews_rate_window_seconds: float = Field(default=30.0, gt=0)
    mews_rate_safety_margin: float = Field(default=0.05, ge=0, lt=1)

    # webhooks: the secret Mews appends to our URL as ?Token=...
    webhook_secret: SecretStr | None = None
    # key that encrypts Mews access tokens stored from Integration webhooks (Fernet, base64)
    token_encryption_key: SecretStr | None = None

    # every call of the service over a direct connection (rescoring, dry runs, upserts) runs
    # under this statement timeout, as Supabase bounds its API roles (2 min globally)
    database_statement_timeout_seconds: float = Field(default=120.0, gt=0)
    # a lost database connection (a restart, a failover) is reopened and a call that is safe to
    # repeat is tried again for this long before it fails (shared/db/reconnect.py)
    database_reconnect_seconds: float = Field(default=30.0, gt=0)

    # a scheduled job serves the due connections within this many seconds (below the
    # function's timeout), this many at once, and hands the rest to the next invocation
    job_time_budget_seconds: float = Field(default=240.0, gt=0)
    job_concurrency: int = Field(default=4, ge=1, le=64)

    # runs prove they are alive: a heartbeat this often (it also extends the run's leases, which
    # last lease_seconds); a run without one for run_stale_seconds is hung and the next job marks
    # it abandoned. A run whose process died is seen at once on a direct connection (its session
    # lock is gone); over the Supabase API alone, only by these two. A command that finds work
    # held by a live run waits for it, asking again every lease_poll_seconds.
    run_heartbeat_seconds: float = Field(default=15.0, gt=0)
    run_stale_seconds: int = Field(default=90, ge=1)
    lease_seconds: int = Field(default=120, ge=1)
    lease_poll_seconds: float = Field(default=1.0, gt=0)

    # processed (done) and refused (rejected) inbox rows are purged after this many days
    inbox_retention_days: int = Field(default=30, ge=1)
    # finished runs are purged after this many days by the same daily job (the newest run of
    # each job, scope and connection is kept)
    runs_retention_days: int = Field(default=90, ge=1)

    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON when stdout is not a terminal

    @model_validator(mode="after")
    def _liveness(self) -> Settings:
        """A run must heartbeat more often than it is found hung or its leases expire."""
        if min(self.run_stale_seconds, self.lease_seconds) <= self.run_heartbeat_seconds:
            raise ValueError(
                "RUN_STALE_SECONDS and LEASE_SECONDS must exceed RUN_HEARTBEAT_SECONDS"
            )
        return self

    @field_validator("token_encryption_key")
    @classmethod
    def _fernet_key(cls, value: SecretStr | None) -> SecretStr | None:
        """A set key must be one Fernet accepts (an empty variable counts as not set)."""
        if value is None or not value.get_secret_value():
            return None
        try:
            Fernet(value.get_secret_value().encode())
        except ValueError:
            raise ValueError(INVALID_ENCRYPTION_KEY_MESSAGE) from None
        return value


def load_settings(**overrides: object) -> Settings:
    """Read the environment now; explicit overrides win (tests pass everything explicitly).

    Raises :class:`SettingsError` (one line, no value) when a setting is invalid.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(describe(exc)) from None


def describe(error: ValidationError) -> str:
    """A validation error as one line: each variable and what is wrong, never its value."""
    parts = []
    for item in error.errors(include_input=False, include_url=False):
        name = "_".join(str(part) for part in item["loc"]).upper() or "settings"
        message = " ".join(str(item["msg"]).removeprefix("Value error, ").split())
        parts.append(message if message.startswith(name) else f"{name}: {message}")
    return "; ".join(parts)


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
