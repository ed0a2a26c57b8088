"""Settings are read when asked, never at import, keep secrets secret, and refuse a malformed
TOKEN_ENCRYPTION_KEY without echoing it."""

from __future__ import annotations

import importlib.util

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

import shared.settings
from shared.settings import (
    DEMO_ACCESS_TOKEN,
    DEMO_PLATFORM_URL,
    INVALID_ENCRYPTION_KEY_MESSAGE,
    Settings,
    SettingsError,
    load_settings,
)


def test_importing_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEWS_PLATFORM_URL", "http://127.0.0.1:9")
    # a fresh copy of the module: reloading shared.settings itself would replace its classes
    # under every module that imported them
    spec = importlib.util.spec_from_file_location("settings_copy", shared.settings.__file__)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert not any(isinstance(value, module.Settings) for value in vars(module).values())


def test_defaults_are_the_public_demo_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEWS_PLATFORM_URL", raising=False)
    monkeypatch.delenv("MEWS_ACCESS_TOKEN", raising=False)
    settings = load_settings(_env_file=None)
    assert settings.mews_platform_url == DEMO_PLATFORM_URL
    assert settings.mews_access_token.get_secret_value() == DEMO_ACCESS_TOKEN


def test_the_environment_is_read_when_settings_are_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEWS_PLATFORM_URL", "http://127.0.0.1:8123")
    monkeypatch.setenv("WEBHOOK_SECRET", "s3cret")
    settings = load_settings(_env_file=None)
    assert settings.mews_platform_url == "http://127.0.0.1:8123"
    assert settings.webhook_secret is not None
    assert str(settings.webhook_secret) == "**********"


BAD_KEY = "not-a-fernet-key-but-a-secret-VALUE-1234"


@pytest.mark.parametrize(
    "bad",
    [BAD_KEY, "c2hvcnQ=", Fernet.generate_key().decode()[:-4] + "!!!!"],
    ids=["not base64", "too short", "a key with a bad end"],  # the same in every xdist worker
)
def test_a_malformed_encryption_key_fails_loading_in_one_line_without_its_value(
    monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEY", bad)
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None)
    message = str(caught.value)
    assert message == INVALID_ENCRYPTION_KEY_MESSAGE
    assert "TOKEN_ENCRYPTION_KEY" in message
    assert "Fernet.generate_key().decode()" in message
    assert "\n" not in message
    assert bad not in message


def test_pydantic_never_echoes_a_malformed_key_either() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(token_encryption_key=BAD_KEY, _env_file=None)  # type: ignore[call-arg]
    assert "TOKEN_ENCRYPTION_KEY is not a valid Fernet key" in str(caught.value)
    assert BAD_KEY not in str(caught.value)
    assert BAD_KEY not in repr(caught.value)


def test_a_valid_encryption_key_is_accepted_and_an_empty_one_is_no_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEY", key)
    settings = load_settings(_env_file=None)
    assert settings.token_encryption_key is not None
    assert settings.token_encryption_key.get_secret_value() == key
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEY", "")
    assert load_settings(_env_file=None).token_encryption_key is None


def test_every_invalid_setting_is_named_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEY", BAD_KEY)
    monkeypatch.setenv("MEWS_RATE_LIMIT", "0")
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None)
    assert str(caught.value) == (
        "MEWS_RATE_LIMIT: Input should be greater than or equal to 1; "
        + INVALID_ENCRYPTION_KEY_MESSAGE
    )


def test_the_liveness_settings_reach_runs_and_must_leave_room_for_a_heartbeat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shared.sync.liveness import Liveness

    monkeypatch.setenv("RUN_HEARTBEAT_SECONDS", "0.5")
    monkeypatch.setenv("RUN_STALE_SECONDS", "3")
    monkeypatch.setenv("LEASE_SECONDS", "4")
    monkeypatch.setenv("LEASE_POLL_SECONDS", "0.1")
    liveness = Liveness.of(load_settings(), wait=True)
    assert (
        liveness.heartbeat_seconds,
        liveness.stale_seconds,
        liveness.lease_seconds,
        liveness.poll_seconds,
        liveness.wait,
    ) == (0.5, 3, 4, 0.1, True)
    monkeypatch.setenv("RUN_HEARTBEAT_SECONDS", "5")
    with pytest.raises(SettingsError, match="must exceed RUN_HEARTBEAT_SECONDS"):
        load_settings()
