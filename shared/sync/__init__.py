"""The sync engine: Mews → database (backfill, poll, events) and back (push)."""
