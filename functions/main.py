"""Entry points for Google Cloud Functions (Python runtime): deploy with --entry-point <name>.

Each function lives in its own module; this file exports them, as the runtime loads main.py and
asks it for one name (``getattr(main, "process_events")``). A module ``__getattr__`` (PEP 562)
imports only the module of the function asked for, so an instance of ``mews_webhook`` never
imports the scoring libraries nor the sync engine's jobs it does not run.

One thing happens at import, on purpose: :func:`~functions.runtime.preflight` reads the settings
once. Everything else reads the environment on first use, but an invalid configuration (a
malformed TOKEN_ENCRYPTION_KEY above all: every IntegrationCreated would fail) must stop the
instance at start-up, where the deployment reports it as one clear line, rather than surface as
failed requests. It only validates; nothing is opened or connected.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from functions.runtime import preflight

if TYPE_CHECKING:  # what __getattr__ returns, for type checkers and linters
    from functions.mews_webhook import mews_webhook
    from functions.poll_changes import poll_changes
    from functions.process_events import process_events
    from functions.purge_inbox import purge_inbox
    from functions.push_changes import push_changes
    from functions.reconcile import reconcile
    from functions.score_profiles import score_profiles

__all__ = [
    "mews_webhook",
    "poll_changes",
    "process_events",
    "purge_inbox",
    "push_changes",
    "reconcile",
    "score_profiles",
]

preflight()


def __getattr__(name: str) -> Any:
    """``functions.<name>.<name>`` for an entry point, imported on first use."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    function = getattr(importlib.import_module(f"functions.{name}"), name)
    globals()[name] = function
    return function


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
