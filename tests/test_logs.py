"""The log masker: secrets never reach a log line."""

from __future__ import annotations

import io
import json
import sys

import pytest

from shared.logs import REDACTED, SecretMasker, configure_logging, get_logger, redact_text
from shared.settings import DEMO_ACCESS_TOKEN, load_settings


def test_values_under_secret_keys_are_masked() -> None:
    masked = SecretMasker()(None, "info", {"event": "x", "access_token": "abc", "api_key": "k"})
    assert masked == {"event": "x", "access_token": REDACTED, "api_key": REDACTED}


def test_a_known_secret_is_masked_anywhere_in_text() -> None:
    masked = SecretMasker(["s3cr3t-value"])(None, "info", {"event": "failed with s3cr3t-value!"})
    assert masked["event"] == f"failed with {REDACTED}!"


def test_mews_shaped_tokens_are_masked_even_when_not_configured() -> None:
    assert redact_text(f"body had {DEMO_ACCESS_TOKEN} in it") == f"body had {REDACTED} in it"


def test_the_webhook_secret_in_a_url_is_masked() -> None:
    assert redact_text("POST /hook?Token=abcdef&x=1") == f"POST /hook?Token={REDACTED}&x=1"


def test_a_database_password_in_a_url_is_masked() -> None:
    assert (
        redact_text("postgresql://postgres:hunter2@db.example:5432/postgres")
        == f"postgresql://postgres:{REDACTED}@db.example:5432/postgres"
    )


def test_nested_structures_are_masked() -> None:
    masked = SecretMasker()(
        None, "info", {"event": "e", "request": {"AccessToken": "t", "Count": 1}}
    )
    assert masked["request"] == {"AccessToken": REDACTED, "Count": 1}


def test_settings_never_print_their_secrets() -> None:
    settings = load_settings(webhook_secret="hook-secret", database_url="postgresql://u:pw@h/d")
    text = repr(settings) + str(settings.model_dump())
    assert "hook-secret" not in text
    assert "pw@" not in text
    assert DEMO_ACCESS_TOKEN not in text


def test_logging_survives_a_closed_stream_from_an_earlier_runner(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # a CLI runner swaps sys.stdout, configures logging, then closes its stream
    swapped = io.StringIO()
    monkeypatch.setattr(sys, "stdout", swapped)
    configure_logging(json=True)
    swapped.close()
    monkeypatch.undo()

    get_logger().info("still works", access_token="tok")

    line = json.loads(capsys.readouterr().out)
    assert line["event"] == "still works"
    assert line["access_token"] == REDACTED
