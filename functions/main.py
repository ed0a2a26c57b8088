"""Entry points for Google Cloud Functions (Python runtime): deploy with --entry-point <name>.

Each function lives in its own module; this file re-exports them, as the runtime loads main.py.

One thing happens at import, on purpose: :func:`~functions.runtime.preflight` reads the settings
once. Everything else reads the environment on first use, but an invalid configuration (a
malformed TOKEN_ENCRYPTION_KEY above all: every IntegrationCreated would fail) must stop the
instance at start-up, where the deployment reports it as one clear line, rather than surface as
failed requests. It only validates; nothing is opened or connected.
"""

from functions.mews_webhook import mews_webhook
from functions.poll_changes import poll_changes
from functions.process_events import process_events
from functions.purge_inbox import purge_inbox
from functions.push_changes import push_changes
from functions.reconcile import reconcile
from functions.runtime import preflight
from functions.score_profiles import score_profiles

preflight()

__all__ = [
    "mews_webhook",
    "poll_changes",
    "process_events",
    "purge_inbox",
    "push_changes",
    "reconcile",
    "score_profiles",
]
