"""The files the package reads at run time besides its code: the migrations, the plain-Postgres
bootstrap, the privilege matrix and the Cloud Scheduler jobs.

An installed wheel carries them inside the package, in ``shared/_data/`` (``force-include`` in
pyproject.toml), found through :mod:`importlib.resources`. A checkout (editable install) has no
``shared/_data/``: it reads the repository's own files, ``supabase/`` where the Supabase CLI
expects it and ``scheduler.yaml`` at the root. Neither there is an error that names both places,
never an empty folder taken for "nothing to do".
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

PACKAGE = "shared"
DATA_FOLDER = "_data"


class PackageDataError(RuntimeError):
    """A file the package needs is not where an install or a checkout keeps it."""


def data_root() -> Path:
    """The folder holding ``supabase/`` and ``scheduler.yaml``: the installed package's data,
    else the checkout this package was imported from."""
    packaged = resources.files(PACKAGE).joinpath(DATA_FOLDER)
    if packaged.is_dir():
        if not isinstance(packaged, Path):  # a zip import: the runner needs real files
            raise PackageDataError(
                f"{packaged} is not on the file system; install guesthub unzipped"
            )
        return packaged
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "supabase").is_dir():
        return checkout
    raise PackageDataError(
        f"guesthub's data files are missing: neither {packaged} (an installed wheel) nor"
        f" {checkout / 'supabase'} (a checkout) exists; reinstall guesthub from its wheel"
    )


def data_file(*parts: str) -> Path:
    """A file or folder of the package data; an error naming where it looked when it is absent."""
    path = data_root().joinpath(*parts)
    if not path.exists():
        raise PackageDataError(f"{'/'.join(parts)} is missing: looked for {path}")
    return path


def supabase_dir() -> Path:
    """The ``supabase/`` folder: migrations/, bootstrap/ and privileges.yaml."""
    return data_file("supabase")


def scheduler_file() -> Path:
    """The Cloud Scheduler jobs (``scheduler.yaml``)."""
    return data_file("scheduler.yaml")
