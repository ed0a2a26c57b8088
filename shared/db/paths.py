"""Where the Supabase project folder is: inside the package when installed from a wheel,
beside it in a checkout (editable install)."""

from __future__ import annotations

from pathlib import Path


def supabase_dir() -> Path:
    """The `supabase/` folder holding config.toml, migrations/ and bootstrap/."""
    packaged = Path(__file__).resolve().parents[1] / "supabase"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "supabase"


def migrations_dir() -> Path:
    return supabase_dir() / "migrations"


def bootstrap_file() -> Path:
    return supabase_dir() / "bootstrap" / "plain_postgres.sql"
