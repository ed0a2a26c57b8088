"""Settings are read when asked, never at import, and keep secrets secret."""

from __future__ import annotations

import importlib

import pytest

import shared.settings
from shared.settings import DEMO_ACCESS_TOKEN, DEMO_PLATFORM_URL, Settings, load_settings


def test_importing_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEWS_PLATFORM_URL", "http://127.0.0.1:9")
    module = importlib.reload(shared.settings)
    assert not any(isinstance(value, Settings) for value in vars(module).values())


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
