"""Where the Supabase project files are: inside the package when installed from a wheel, the
repository's own `supabase/` folder in a checkout (see :mod:`shared.package_data`)."""

from __future__ import annotations

from pathlib import Path

from shared.package_data import data_file


def supabase_dir() -> Path:
    """The `supabase/` folder holding migrations/, bootstrap/ and privileges.yaml."""
    return data_file("supabase")


def migrations_dir() -> Path:
    return data_file("supabase", "migrations")


def bootstrap_file() -> Path:
    return data_file("supabase", "bootstrap", "plain_postgres.sql")
