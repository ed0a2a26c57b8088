"""Entry points for Google Cloud Functions (Python runtime): deploy with --entry-point <name>.

Each function lives in its own module; this file re-exports them, as the runtime loads main.py.
"""

from functions.mews_webhook import mews_webhook
from functions.poll_changes import poll_changes
from functions.process_events import process_events
from functions.push_changes import push_changes
from functions.reconcile import reconcile
from functions.score_profiles import score_profiles

__all__ = [
    "mews_webhook",
    "poll_changes",
    "process_events",
    "push_changes",
    "reconcile",
    "score_profiles",
]
