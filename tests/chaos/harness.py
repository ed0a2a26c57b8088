"""The chaos scenario runner: the real processes against the Mews simulator while faults land.

What runs, all on this machine (Postgres on a Unix socket, everything else on 127.0.0.1):

- its own embedded PostgreSQL in a temporary folder (so restarting it harms no other test),
  migrated by the project's runner;
- the Mews simulator in-process, generated from a seed, sending General Webhooks and WebSocket
  events;
- the ``mews_webhook`` Cloud Function served by functions-framework in a subprocess;
- every worker as a subprocess of the real CLI (``guesthub sync backfill|poll|push|reconcile``,
  ``guesthub events process``, ``guesthub listen``), so that ``kill -9`` is real. The listener
  runs its real-time worker (its default), which drains the inbox and pushes staff edits as
  they happen; the scheduled jobs run beside it as its safety net.

A seeded :class:`random.Random` decides the schedule: kill -9 of a worker at a random point of
its progress (counted in the Mews requests it made), a Postgres restart mid-backfill, 429 storms,
408/5xx bursts, slow responses, dropped WebSockets, a killed listener or webhook function,
the listener killed (kill -9) or stopped (SIGTERM) while its worker holds claimed events and
Postgres restarted while changes stream to it, concurrent duplicate invocations, duplicate and
reordered webhooks, poison records, and staff edits racing changes made in Mews. Then clean
passes (events, push, poll, a final reconcile) until the database equals the simulator's truth,
and the listener's SIGTERM; :mod:`tests.chaos.truth` judges it.

Every wait is a condition with a deadline (:func:`wait_for`); every loop is bounded.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from cryptography.fernet import Fernet
from psycopg import sql

from shared.db.connect import ensure_database
from shared.db.embedded import database_url, stop_embedded
from shared.db.migrations import migrate
from shared.mews.windows import plan_windows
from shared.settings import DEMO_ACCESS_TOKEN, Settings
from shared.simulator.running import Simulator, running_simulator
from shared.simulator.server import FIXTURE_ACCESS_TOKEN, FIXTURE_CLIENT_TOKEN, SimulatorConfig
from shared.sync.engine import SyncEngine
from tests.chaos import truth

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# the CLI's engine keeps this distance from Mews' NowUtc (records still committing in Mews)
LAG = inspect.signature(SyncEngine.__init__).parameters["lag"].default
DATABASE = "chaos"
WORKER_SECONDS = 180.0  # a worker that runs longer is hung: killed and reported
# the listener's SIGTERM: its real-time worker finishes what it holds within 30 s
LISTENER_STOP_SECONDS = 60.0
STATUS_FAULTS = (408, 500, 502, 503, 504)
# a run the next job cannot take over yet: its process is alive (its session lock held), or it
# has no session lock (the Supabase API) and its heartbeat is younger than the staleness (%s)
LIVE_RUN = (
    "r.status = 'running' and ((r.session_id is not null and app.session_alive(r.session_id))"
    " or (r.session_id is null and r.heartbeat_at > now() - make_interval(secs => %s)))"
)
PLAIN_COLUMNS = ("notes", "loyalty_code", "car_registration_number", "dietary_requirements")

# fault kinds: the rows of the table
KILL_BACKFILL = "kill -9 sync backfill"
KILL_POLL = "kill -9 sync poll"
KILL_EVENTS = "kill -9 events process"
KILL_PUSH = "kill -9 sync push"
KILL_LISTENER = "kill -9 listener"
KILL_WORKER = "kill -9 listener mid-drain"  # the real-time worker holding claimed events
STOP_WORKER = "SIGTERM listener mid-drain"
PG_RESTART_STREAMING = "Postgres restart while changes stream"
KILL_FUNCTION = "kill -9 mews_webhook"
PG_RESTART = "Postgres restart"
STORM = "429 storm"
BURST = "408/5xx burst"
SLOW = "slow responses"
WS_DROP = "WebSocket dropped"
DUPLICATE_RUNS = "duplicate invocations"
DUPLICATE_HOOKS = "duplicate/reordered webhooks"
POISON = "poison records"
MALFORMED_BODY = "malformed response body"
STAFF_EDITS = "staff edits vs Mews edits"

# (kind, can the steady phase repeat it)
STEADY_KINDS = (
    KILL_POLL,
    KILL_EVENTS,
    KILL_PUSH,
    KILL_LISTENER,
    KILL_WORKER,
    STOP_WORKER,
    KILL_FUNCTION,
    PG_RESTART,
    PG_RESTART_STREAMING,
    STORM,
    BURST,
    SLOW,
    WS_DROP,
    DUPLICATE_RUNS,
    DUPLICATE_HOOKS,
    POISON,
    STAFF_EDITS,
)
NOT_INJECTABLE = {
    MALFORMED_BODY: "not injectable yet: the simulator's Faults cannot corrupt a response body",
}


def _lastname_cleared(guest: str) -> dict[str, Any]:
    customer = {"LastName": {"Value": None}}
    return {"AccountUpdates": [{"Id": guest, "Discriminator": "Customer", "Customer": customer}]}


def _company_cleared(guest: str) -> dict[str, Any]:
    customer = {"CompanyId": {"Value": None}}
    return {"AccountUpdates": [{"Id": guest, "Discriminator": "Customer", "Customer": customer}]}


# poison written through the Connector API: (kind, operation, body for a guest)
POISONS: tuple[tuple[str, str, Callable[[str], dict[str, Any]]], ...] = (
    ("wrong type", "customers/update", lambda g: {"CustomerId": g, "LastName": 12345}),
    ("missing required", "accounts/update", _lastname_cleared),
    ("NUL character", "customers/update", lambda g: {"CustomerId": g, "Notes": "bad\u0000notes"}),
    ("malformed id", "customers/update", lambda g: {"CustomerId": g, "CompanyId": "not-a-uuid"}),
)
# what Mews writes later to correct each kind
HEALS: dict[str, tuple[str, Callable[[str], dict[str, Any]]]] = {
    "wrong type": ("customers/update", lambda g: {"CustomerId": g, "LastName": "Healed"}),
    "missing required": ("customers/update", lambda g: {"CustomerId": g, "LastName": "Healed"}),
    "NUL character": ("customers/update", lambda g: {"CustomerId": g, "Notes": "healed"}),
    "malformed id": ("accounts/update", _company_cleared),
}


NOT_EDITED: Any = object()  # staff_update found no such guest


class ChaosError(RuntimeError):
    """The scenario could not go on (a condition missed its deadline, a process would not
    start)."""


def wait_for(
    what: str, predicate: Callable[[], bool], timeout: float, *, interval: float = 0.05
) -> None:
    """Poll ``predicate`` until it holds; :class:`ChaosError` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise ChaosError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ChaosConfig:
    seed: int = 1125
    customers: int = 300
    minutes: float = 0.0  # steady phase beyond one round of every fault kind
    latency_ms: float = 30.0
    per_item_ms: float = 0.05
    rate_limit: int = 1000  # the simulator's and the workers' budget per token per 30 s
    kill_push: bool = False  # the push round makes staff edits first: the soak does it
    # the workers' liveness settings (RUN_HEARTBEAT_SECONDS, RUN_STALE_SECONDS, LEASE_SECONDS):
    # a killed worker is seen dead at once by its session lock; these bound only hung ones
    heartbeat_seconds: float = Settings.model_fields["run_heartbeat_seconds"].default
    stale_seconds: int = Settings.model_fields["run_stale_seconds"].default
    lease_seconds: int = Settings.model_fields["lease_seconds"].default
    strict: bool = True  # count known gaps (bugs already reported) as lost; none is open now
    converge_seconds: float = 420.0
    workdir: Path | None = None
    keep: bool = False
    echo: Callable[[str], None] | None = None


# -- processes -------------------------------------------------------------------------------


class Proc:
    """A subprocess this harness started (its own session, so kill -9 takes its children)."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self._log: Any = None
        self.returncode: int | None = None

    def start(self, log_path: Path) -> Proc:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.popen = subprocess.Popen(  # noqa: S603 - our own executables
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill9(self) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        self._reap(10)

    def terminate(self, timeout: float = 20.0) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
                return
        self._reap(5)

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if it is still running after ``timeout``."""
        if self.popen is None:
            return None
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._reap(1)
        return self.returncode

    def _reap(self, timeout: float) -> None:
        assert self.popen is not None
        self.popen.wait(timeout)
        self.returncode = self.popen.returncode
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_text(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


KEEPER = """
import sys
from pathlib import Path
from shared.db.embedded import start_embedded
print(start_embedded(Path(sys.argv[1]), keep_running=False), flush=True)
sys.stdin.read()
"""


class Postgres:
    """The harness's own embedded server, restartable: a keeper process starts it with
    ``start_embedded(dir, keep_running=False)`` and holds it until its stdin closes (the server
    then stops with the keeper, even if this process dies); a restart is ``stop_embedded`` and a
    new keeper on the same folder, so the same socket and data."""

    def __init__(self, root: Path, logs: Path) -> None:
        self.root = root
        self.logs = logs
        self.server_url: str | None = None
        self._keeper: subprocess.Popen[bytes] | None = None
        self._starts = 0

    def start(self, timeout: float = 60.0) -> str:
        self._starts += 1
        url_file = self.logs / f"postgres-{self._starts}.url"
        log = (self.logs / f"postgres-keeper-{self._starts}.log").open("wb")
        with url_file.open("wb") as out:
            self._keeper = subprocess.Popen(  # noqa: S603
                [sys.executable, "-c", KEEPER, str(self.root)],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=log,
                cwd=REPO,
                start_new_session=True,
            )
        log.close()
        wait_for(
            "the embedded Postgres to start",
            lambda: bool(url_file.read_text().strip()) or self._keeper_died(),
            timeout,
            interval=0.1,
        )
        if self._keeper_died():
            raise ChaosError(f"the Postgres keeper exited; see {self.logs}")
        url = url_file.read_text().strip()
        if self.server_url is not None and url != self.server_url:
            raise ChaosError(f"Postgres came back elsewhere: {url} (was {self.server_url})")
        self.server_url = url
        wait_for("Postgres to answer", self.answers, timeout, interval=0.1)
        return url

    def _keeper_died(self) -> bool:
        return self._keeper is not None and self._keeper.poll() is not None

    def answers(self) -> bool:
        if self.server_url is None:
            return False
        try:
            with psycopg.connect(self.server_url, connect_timeout=2) as conn:
                conn.execute("select 1")
        except psycopg.Error:
            return False
        return True

    def stop(self) -> None:
        stop_embedded(self.root)  # pg_ctl stop -m fast: every session is cut
        self._release_keeper()

    def restart(self) -> None:
        self.stop()
        self.start()

    def _release_keeper(self) -> None:
        if self._keeper is None:
            return
        keeper, self._keeper = self._keeper, None
        if keeper.stdin is not None:
            with contextlib.suppress(OSError):
                keeper.stdin.close()
        try:
            keeper.wait(60)
        except subprocess.TimeoutExpired:
            keeper.kill()
            keeper.wait(10)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            stop_embedded(self.root)
        self._release_keeper()


# -- what the run records ------------------------------------------------------------------------


@dataclass
class FaultStat:
    kind: str
    injected: int = 0
    exposed: set[tuple[str, str]] = field(default_factory=set)
    notes: Counter[str] = field(default_factory=Counter)


@dataclass
class ChaosReport:
    rows: list[truth.FaultRow]
    comparison: truth.Comparison
    edits: truth.EditCheck
    runs: dict[str, int]
    running: int
    duplicate_conflicts: int
    open_quarantine_of_good_records: int
    poison: tuple[int, int, int, int]  # injected, quarantined, healed, healed and resolved
    not_injected: dict[str, str]
    summary: list[str]
    seconds: float
    workdir: Path
    hung: list[str] = field(default_factory=list)  # workers killed after WORKER_SECONDS
    stop_problems: list[str] = field(default_factory=list)  # a SIGTERM left work unfinished

    @property
    def ok(self) -> bool:
        return (
            self.comparison.equal
            and self.edits.accounted
            and self.running == 0
            and self.duplicate_conflicts == 0
            and not self.hung
            and not self.stop_problems
        )

    def table(self) -> str:
        return truth.render_table(self.rows)

    def text(self) -> str:
        lines = [self.table(), "", *self.summary]
        lines.append(f"verdict: {'PASS' if self.ok else 'FAIL'} in {self.seconds:.0f} s")
        return "\n".join(lines)


# -- the scenario ----------------------------------------------------------------------------------


class Chaos:
    """One chaos scenario; :meth:`run` returns the :class:`ChaosReport`."""

    def __init__(self, config: ChaosConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed * 7919 + 17)
        self.faults: dict[str, FaultStat] = {}
        self._active: list[FaultStat] = []
        self.summary: list[str] = []
        self.workers: Counter[str] = Counter()  # "name rc" → count
        self.hung: list[str] = []
        self.staff_edits: dict[tuple[str, str], truth.StaffEdit] = {}
        self.mews_edits: dict[tuple[str, str], truth.MewsEdit] = {}
        self.touched: set[str] = set()  # guests edited or poisoned: not picked again
        self.poisoned: dict[tuple[str, str], str] = {}  # (entity, id) → kind, still poison
        self.poison_log: dict[tuple[str, str], str] = {}  # every invalid record injected
        self.healed: set[tuple[str, str]] = set()
        self._procs: list[Proc] = []
        self._counter = 0
        self.secret = "chaos-" + str(config.seed)
        self.fernet_key = Fernet.generate_key().decode()
        self.http = httpx.Client(trust_env=False, timeout=30)
        self.started = time.monotonic()
        # the parts run() starts
        self.workdir = Path()
        self.logs = Path()
        self.pg: Postgres | None = None
        self.db_url = ""
        self.sim: Simulator | None = None
        self.function: Proc | None = None
        self.function_port = 0
        self.listener: Proc | None = None
        self.listener_port = 0
        self.realtime = False  # the listener runs the real-time worker
        self.listener_stops = 0  # SIGTERMs whose stop was checked
        self.stop_problems: list[str] = []  # what a SIGTERM left unfinished
        self.edit_notes: Counter[str] = Counter()
        self.staff_user = ""

    # -- plumbing --------------------------------------------------------------------------

    def echo(self, message: str) -> None:
        if self.config.echo is not None:
            self.config.echo(f"[{time.monotonic() - self.started:6.1f}s] {message}")

    @property
    def simulator(self) -> Simulator:
        assert self.sim is not None
        return self.sim

    def _env(self, **extra: str) -> dict[str, str]:
        strip = ("MEWS_", "SUPABASE_", "DATABASE_", "WEBHOOK_", "TOKEN_ENCRYPTION", "PG")
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.upper().startswith(strip) and "PROXY" not in k.upper()
        }
        env.update(
            DATABASE_URL=self.db_url,
            MEWS_PLATFORM_URL=self.simulator.url,
            MEWS_WEBSOCKET_URL=self.simulator.ws_url,
            MEWS_RATE_LIMIT=str(self.config.rate_limit),
            MEWS_TIMEOUT_SECONDS="30",
            RUN_HEARTBEAT_SECONDS=str(self.config.heartbeat_seconds),
            RUN_STALE_SECONDS=str(self.config.stale_seconds),
            LEASE_SECONDS=str(self.config.lease_seconds),
            LOG_LEVEL="INFO",
            LOG_JSON="true",
            NO_PROXY="127.0.0.1,localhost",
            PYTHONUNBUFFERED="1",
            NO_COLOR="1",
            TERM="dumb",
            COLUMNS="160",
        )
        env.update(extra)
        return env

    def _proc(self, name: str, argv: Sequence[str], **env: str) -> Proc:
        self._counter += 1
        proc = Proc(name, argv, self._env(**env), self.workdir)
        proc.start(self.logs / f"{self._counter:03d}-{name.replace(' ', '-')}.log")
        self._procs.append(proc)
        return proc

    def _cli(self, *args: str) -> list[str]:
        exe = BIN / "guesthub"
        if exe.exists():
            return [str(exe), *args]
        return [sys.executable, "-c", "from shared.cli import main; main()", *args]

    def start_worker(self, name: str) -> Proc:
        commands = {
            "backfill": ("sync", "backfill"),
            "poll": ("sync", "poll"),
            "push": ("sync", "push"),
            "reconcile": ("sync", "reconcile"),
            "events": ("events", "process"),
        }
        return self._proc(name, self._cli(*commands[name]))

    def finish(self, proc: Proc, timeout: float = WORKER_SECONDS) -> int | None:
        """Wait for a worker to exit; a hung one is killed and reported."""
        code = proc.wait(timeout)
        if code is None:
            self.hung.append(f"{proc.name} ({proc.log_path})")
            proc.kill9()
            self.workers[f"{proc.name} hung"] += 1
            return None
        self.workers[f"{proc.name} exit {code}"] += 1
        return code

    def run_workers(self, *names: str) -> list[int | None]:
        """Start the workers together and wait for all of them."""
        procs = [self.start_worker(n) for n in names]
        return [self.finish(p) for p in procs]

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db_url, autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def sql_value(self, query: str, params: Any = None, default: Any = None) -> Any:
        """One value, or ``default`` while the database is away (predicates during a restart)."""
        try:
            rows = self.sql(query, params)
        except psycopg.Error:
            return default
        return rows[0][0] if rows else default

    def requests(self) -> int:
        """Mews requests the workers made (their token), as the simulator counted them."""
        return len(self.simulator.app.stats.accepted.get(DEMO_ACCESS_TOKEN, ()))

    def health(self) -> dict[str, Any] | None:
        try:
            answer = self.http.get(f"http://127.0.0.1:{self.listener_port}/healthz", timeout=2)
            data: dict[str, Any] = answer.json()
        except (httpx.HTTPError, ValueError):
            return None
        return data

    # -- fault bookkeeping -----------------------------------------------------------------

    @contextmanager
    def fault(self, kind: str, exposed: set[tuple[str, str]] | None = None) -> Iterator[FaultStat]:
        stat = self.faults.setdefault(kind, FaultStat(kind))
        if exposed:
            stat.exposed |= exposed
        self._active.append(stat)
        try:
            yield stat
        finally:
            self._active.remove(stat)

    def expose(self, entity: str, ids: Sequence[str]) -> None:
        for stat in self._active:
            stat.exposed.update((entity, i) for i in ids)

    def all_ids(self) -> set[tuple[str, str]]:
        data = self.simulator.data
        return {(spec.name, i) for spec in truth.ENTITIES for i in list(getattr(data, spec.name))}

    # -- Mews: its staff at work, another integration's writes, poison ---------------------

    def mews_activity(
        self, *, customers: bool = True, reservations: bool = True, scale: int = 1
    ) -> dict[str, list[str]]:
        """Mews staff change data (the simulator's mutate: webhooks and WebSocket events)."""
        r = self.rng
        counts = {
            "customers_added": r.randint(1, 3) * scale if customers else 0,
            "customers_updated": r.randint(2, 8) * scale if customers else 0,
            "reservations_updated": r.randint(1, 5) * scale if reservations else 0,
            "resources_updated": r.randint(0, 3) * scale if reservations else 0,
        }
        changed = self.simulator.mutate(**counts)
        self.expose("customers", changed["customers_added"] + changed["customers_updated"])
        self.expose("reservations", changed["reservations"])
        self.expose("resources", changed["resources"])
        for guest in changed["customers_updated"]:  # mutate changes the phone
            self.mews_edits.pop((guest, "phone"), None)
        return changed

    def mews_write(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        """A write through the Connector API with another integration's token (its own budget);
        retried while faults meant for the workers answer it."""
        payload = {
            **body,
            "ClientToken": FIXTURE_CLIENT_TOKEN,
            "AccessToken": FIXTURE_ACCESS_TOKEN,
            "Client": "chaos harness",
        }
        url = f"{self.simulator.url}/api/connector/v1/{operation}"
        answer: dict[str, Any] = {}

        def attempt() -> bool:
            response = self.http.post(url, json=payload)
            if response.status_code in (408, 429) or response.status_code >= 500:
                return False
            response.raise_for_status()
            answer.update(response.json())
            return True

        wait_for(f"Mews to take {operation}", attempt, 60, interval=0.2)
        return answer

    def update_customer(self, guest: str, **fields: Any) -> dict[str, Any]:
        return self.mews_write("customers/update", {"CustomerId": guest, **fields})

    # -- staff (Supabase, through row-level security) --------------------------------------

    def create_staff(self) -> None:
        enterprise = self.sql("select id::text from public.enterprises order by id limit 1")
        if not enterprise:
            raise ChaosError("no enterprise registered after the first load")
        user = self.sql(
            "insert into auth.users (id, email) values (gen_random_uuid(), 'chaos@hotel.example')"
            " returning id::text"
        )[0][0]
        self.sql(
            "insert into public.app_users (id, email) values (%s, 'chaos@hotel.example')", (user,)
        )
        self.sql(
            "insert into public.memberships (user_id, enterprise_id, role) values (%s, %s, 'staff')",
            (user, enterprise[0][0]),
        )
        self.staff_user = user

    def staff_update(self, guest: str, column: str, value: Any) -> Any:
        """The edit through row-level security; the value it replaced as the database recorded
        it (the base of the three-way merge), or :data:`NOT_EDITED`."""
        claims = json.dumps({"role": "authenticated", "sub": self.staff_user})
        with psycopg.connect(self.db_url, autocommit=True) as conn, conn.transaction():
            conn.execute("set local role authenticated")
            conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
            rows = conn.execute(
                sql.SQL(
                    "update public.guests set {} = %s where mews_id = %s returning local_base -> %s"
                ).format(sql.Identifier(column)),
                (value, guest, column),
            ).fetchall()
            return rows[0][0] if len(rows) == 1 else NOT_EDITED

    def edit_candidates(self) -> list[str]:
        """Active guests mirrored, with no edit waiting, not picked before, sane in Mews."""
        rows = self.sql(
            "select mews_id::text from public.guests where is_active and merge_target_id is null"
            " and push_status is null order by mews_id"
        )
        customers = self.simulator.data.customers
        return [
            guest
            for (guest,) in rows
            if guest not in self.touched
            and customers.get(guest, {}).get("IsActive")
            and isinstance(customers[guest].get("LastName"), str)
        ]

    def make_staff_edits(self, kinds: Sequence[str]) -> int:
        """Staff edits of the given kinds (see :class:`truth.StaffEdit`); returns how many."""
        candidates = self.edit_candidates()
        self.rng.shuffle(candidates)
        made = 0
        for kind in kinds:
            if not candidates:
                break
            guest = candidates.pop()
            self.touched.add(guest)
            n = len(self.staff_edits) + 1
            if kind == "refused":
                made += self._refused_edit(guest)
                continue
            if kind == "contested_local":
                # Mews first, unannounced (its webhook off: the real-time worker would mirror it
                # within the second, and the staff edit would then be made over it, its base),
                # then staff, a second later: the staff edit is the later write, over a value
                # Mews no longer holds
                self.wait_deliveries()  # switching webhooks off drops what is still queued
                self.hooks_off()
                try:
                    stamp = self.update_customer(guest, Occupation=f"mews-{n}")["UpdatedUtc"]
                finally:
                    self.hooks_on()
                self.mews_edits[(guest, "occupation")] = truth.MewsEdit(
                    guest, "occupation", f"mews-{n}"
                )
                self._wait_db_clock_past(stamp)
            column = (
                "occupation" if kind.startswith("contested") else self.rng.choice(PLAIN_COLUMNS)
            )
            value = f"staff-{self.config.seed}-{n}"
            # contested_mews: Mews changes the field after the staff edit and before its push;
            # the real-time worker pushes a second after the edit, so it is held still meanwhile
            # (on a loaded machine the Mews write could come after the push: a later Mews write
            # that rightly wins in Mews, with nothing to log, which this kind is not)
            with self.worker_paused() if kind == "contested_mews" else contextlib.nullcontext():
                saw = self.staff_update(guest, column, value)
                if saw is NOT_EDITED:
                    continue
                self.staff_edits[(guest, column)] = truth.StaffEdit(
                    guest, column, value, kind, saw=saw
                )
                made += 1
                self.expose("customers", [guest])
                if kind == "contested_mews":
                    self.update_customer(guest, Occupation=f"mews-{n}")
                    self.mews_edits[(guest, "occupation")] = truth.MewsEdit(
                        guest, "occupation", f"mews-{n}"
                    )
            if kind == "contested_local" and saw == f"mews-{n}":
                self.edit_notes["contested_local edit made over the Mews change (mirrored)"] += 1
            if kind == "other_field":  # Mews changes another field, before or after the push
                phone = f"+44 20 7946 {n % 10000:04d}"
                self.update_customer(guest, Phone=phone)
                self.mews_edits[(guest, "phone")] = truth.MewsEdit(guest, "phone", phone)
        return made

    @contextmanager
    def worker_paused(self) -> Iterator[None]:
        """The listener (and its real-time worker) stopped (SIGSTOP) for the block, if it runs
        the worker; SIGCONT after."""
        listener = self.listener
        if listener is None or not self.realtime or not listener.alive:
            yield
            return
        assert listener.popen is not None
        os.killpg(listener.popen.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(listener.popen.pid, signal.SIGCONT)

    def _wait_db_clock_past(self, stamp: str) -> None:
        wait_for(
            "the database clock to pass Mews' stamp by a second",
            lambda: bool(
                self.sql_value(
                    "select clock_timestamp() >= %s::timestamptz + interval '1 second'",
                    (stamp,),
                    False,
                )
            ),
            10,
        )

    def _refused_edit(self, guest: str) -> int:
        """An e-mail another active guest has: Mews refuses it (403)."""
        customers = self.simulator.data.customers
        taken = sorted(
            c["Email"]
            for c in customers.values()
            if c["IsActive"] and c["Id"] != guest and isinstance(c.get("Email"), str)
            if "@" in c["Email"] and "." in c["Email"].split("@")[-1]
        )
        if not taken:
            return 0
        value = self.rng.choice(taken)
        saw = self.staff_update(guest, "email", value)
        if saw is NOT_EDITED:
            return 0
        self.staff_edits[(guest, "email")] = truth.StaffEdit(
            guest, "email", value, "refused", saw=saw
        )
        self.expose("customers", [guest])
        return 1

    # -- poison ------------------------------------------------------------------------------

    def inject_poison(self, stat: FaultStat) -> None:
        """Records the mirror must not choke on: invalid ones are quarantined (the page goes
        on), unexpected but valid ones (unknown enum values, unknown fields) are mirrored."""
        candidates = self.edit_candidates()
        self.rng.shuffle(candidates)
        for kind, operation, body in POISONS:
            if not candidates:
                break
            guest = candidates.pop()
            self.touched.add(guest)
            self.mews_write(operation, body(guest))
            self.poisoned[("customers", guest)] = kind
            self.poison_log[("customers", guest)] = kind
            self.expose("customers", [guest])
            stat.injected += 1
            stat.notes[f"invalid: {kind}"] += 1
        if candidates:  # open enums: values nobody has seen yet are kept, not refused
            guest = candidates.pop()
            self.touched.add(guest)
            self.update_customer(guest, Sex="Unspecified", Classifications=["FutureClassification"])
            self.expose("customers", [guest])
            stat.injected += 1
            stat.notes["unknown enum values (valid)"] += 1
        if candidates:  # a field Mews added after our models were written
            guest = candidates.pop()
            self.touched.add(guest)
            self._data_change("customers", guest, {"FutureField": {"Nested": [1, "two"]}})
            stat.injected += 1
            stat.notes["unknown field (valid)"] += 1
        # valid for the model, refused by the database (integer overflow): isolated, quarantined
        reservation = self.rng.choice(sorted(self.simulator.data.reservations))
        counts = [{"AgeCategoryId": self.simulator.data.integration_id, "Count": 3_000_000_000}]
        self._data_change("reservations", reservation, {"PersonCounts": counts})
        self.poisoned[("reservations", reservation)] = "database refuses"
        self.poison_log[("reservations", reservation)] = "database refuses"
        stat.injected += 1
        stat.notes["refused by the database"] += 1

    def heal_some_poison(self, stat: FaultStat) -> None:
        """Mews corrects half of the poison: the good version must arrive (the quarantine
        blocks nothing), the rest stays poison to the end."""
        read = {(e, i) for e, i in self.sql("select entity, mews_id from public.quarantine")}
        entity_of = {spec.name: spec.quarantine for spec in truth.ENTITIES}
        # only what the sync has read and quarantined (a version nobody read proves nothing)
        poisoned = sorted(p for p in self.poisoned.items() if (entity_of[p[0][0]], p[0][1]) in read)
        for (entity, record), kind in self.rng.sample(poisoned, len(poisoned) // 2):
            if entity == "reservations":
                counts = [{"AgeCategoryId": self.simulator.data.integration_id, "Count": 2}]
                self._data_change("reservations", record, {"PersonCounts": counts})
            else:
                operation, body = HEALS[kind]
                self.mews_write(operation, body(record))
            del self.poisoned[(entity, record)]
            self.healed.add((entity, record))
            stat.notes["healed later"] += 1

    def poison_outcome(self) -> tuple[int, int, int]:
        """(poison records with a quarantine entry, healed ones whose entries are resolved,
        healed ones)."""
        entries = self.sql("select entity, mews_id, resolved_at is not null from public.quarantine")
        seen = {(e, i) for e, i, _ in entries}
        open_ = {(e, i) for e, i, resolved in entries if not resolved}
        entity_of = {spec.name: spec.quarantine for spec in truth.ENTITIES}
        quarantined = sum((entity_of[e], i) in seen for e, i in self.poison_log)
        missing = sorted(
            k for (e, i), k in self.poison_log.items() if (entity_of[e], i) not in seen
        )
        if missing:
            self.echo(f"poison never quarantined: {missing}")
        resolved = sum((entity_of[e], i) not in open_ for e, i in self.healed)
        return quarantined, resolved, len(self.healed)

    def _data_change(self, entity: str, record_id: str, values: dict[str, Any]) -> None:
        """Change a record in the simulator's data directly (what its API cannot express), with
        a new UpdatedUtc; polls and the reconcile find it."""
        data = self.simulator.data
        record = getattr(data, entity)[record_id]
        for key, value in values.items():
            record[key] = value
        record["UpdatedUtc"] = self.simulator.app.clock.stamp(record["UpdatedUtc"])
        data.version += 1  # the simulator's time indexes are rebuilt
        self.expose(entity, [record_id])

    # -- the pieces that run all the time --------------------------------------------------

    def start_function(self) -> None:
        exe = BIN / "functions-framework"
        argv = [
            *([str(exe)] if exe.exists() else [sys.executable, "-m", "functions_framework"]),
            "--target",
            "mews_webhook",
            "--source",
            str(REPO / "functions" / "mews_webhook.py"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.function_port),
        ]
        self.function = self._proc(
            "mews_webhook",
            argv,
            WEBHOOK_SECRET=self.secret,
            TOKEN_ENCRYPTION_KEY=self.fernet_key,
            WORKERS="1",
            THREADS="4",
        )

        def answers() -> bool:
            assert self.function is not None
            if not self.function.alive:
                raise ChaosError(f"mews_webhook exited: {self.function.log_text()[-2000:]}")
            try:
                response = self.http.post(f"{self.webhook_url}?Token=wrong", content=b"{}")
            except httpx.HTTPError:
                return False
            return response.status_code == 401

        wait_for("the mews_webhook function to answer", answers, 60, interval=0.1)

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.function_port}/"

    def hooks_on(self, *, duplicates: bool = False) -> None:
        self.simulator.set_webhook(
            f"{self.webhook_url}?Token={self.secret}",
            webhook_batch_size=25,
            webhook_duplicates=duplicates,
        )

    def hooks_off(self) -> None:
        self.simulator.set_webhook(None, webhook_duplicates=False)

    def start_listener(self, *, realtime: bool = True) -> None:
        """``guesthub listen``: the sockets and (its default) the real-time worker, which drains
        the inbox and pushes staff edits as they happen; ``realtime`` False: the sockets only
        (the scheduled jobs alone drain and push)."""
        argv = ["listen", "--port", str(self.listener_port)]
        if not realtime:
            argv.insert(1, "--no-realtime")
        self.listener = self._proc("listen", self._cli(*argv))
        self.realtime = realtime

        def ready() -> bool:
            assert self.listener is not None
            if not self.listener.alive:
                raise ChaosError(f"the listener exited: {self.listener.log_text()[-2000:]}")
            state = self.health()
            return bool(
                state
                and state.get("connected")
                and (not realtime or (state.get("realtime") or {}).get("listening"))
            )

        wait_for("the listener to connect (and its worker to LISTEN)", ready, 90, interval=0.1)

    def _owner(self, proc: Proc) -> str:
        """How the runs of ``proc`` name their owner (host and process id)."""
        assert proc.popen is not None
        return f"{socket.gethostname()}:{proc.popen.pid}"

    def stop_listener(self) -> None:
        """SIGTERM the listener and check that it finished what it held: it exits 0, the
        real-time runs it was running are ended (none left `running`) and no event it claimed
        is left `processing`."""
        listener = self.listener
        if listener is None or not listener.alive:
            return
        owner = self._owner(listener)
        live = [
            str(run_id)
            for (run_id,) in self.sql(
                "select id from public.sync_runs where job = 'realtime' and owner = %s"
                " and status = 'running' and app.session_alive(session_id)",
                (owner,),
            )
        ]
        listener.terminate(LISTENER_STOP_SECONDS)
        self.listener_stops += 1
        problems = []
        if listener.returncode != 0:
            problems.append(f"exit {listener.returncode}")
        running, processing = self.sql(
            "select (select count(*) from public.sync_runs"
            "         where id = any (%s::uuid[]) and status = 'running'),"
            "       (select count(*) from public.event_inbox"
            "         where locked_by = any (%s::uuid[]) and status = 'processing')",
            (live, live),
        )[0]
        if running:
            problems.append(f"{running} real-time run(s) left running")
        if processing:
            problems.append(f"{processing} claimed event(s) left processing")
        if problems:
            self.stop_problems.append(f"{', '.join(problems)} ({listener.log_path})")

    @contextmanager
    def worker_down(self) -> Iterator[None]:
        """The listener without its real-time worker for the block (a fault of a scheduled
        job's own: with the worker up there is nothing left for the job to do), then with it
        again; both stops by SIGTERM, checked."""
        if not self.realtime:
            yield
            return
        self.stop_listener()
        self.start_listener(realtime=False)
        try:
            yield
        finally:
            self.stop_listener()
            self.start_listener()

    def deliveries_done(self) -> bool:
        return not self.simulator.app._tasks  # the simulator's webhook tasks

    def wait_deliveries(self) -> None:
        wait_for("the simulator's webhook deliveries", self.deliveries_done, 60)

    def drain_faults(self) -> int:
        """Consume what is left of injected statuses and storms (with the harness's token);
        returns how many were left."""
        faults = self.simulator.app.faults
        left = len(faults.statuses) + faults.storm
        for _ in range(left + 5):
            if not faults.statuses and faults.storm <= 0:
                break
            with contextlib.suppress(httpx.HTTPError):
                self.http.post(
                    f"{self.simulator.url}/api/connector/v1/configuration/get",
                    json={
                        "ClientToken": FIXTURE_CLIENT_TOKEN,
                        "AccessToken": FIXTURE_ACCESS_TOKEN,
                        "Client": "chaos harness",
                    },
                )
        return left

    # -- kills at random points ------------------------------------------------------------

    def kill_at(self, proc: Proc, stat: FaultStat, after_requests: int, since: int) -> bool:
        """kill -9 ``proc`` once the workers made ``after_requests`` Mews requests since
        ``since`` (a point of its progress, whatever the machine's load); False when it exited
        first."""
        return self.kill_when(proc, stat, lambda: self.requests() - since >= after_requests)

    def kill_when(self, proc: Proc, stat: FaultStat, point: Callable[[], bool]) -> bool:
        """kill -9 ``proc`` as soon as ``point()`` holds; False when it exited first."""
        wait_for(
            f"{proc.name} to reach its kill point",
            lambda: not proc.alive or point(),
            WORKER_SECONDS,
            interval=0.005,
        )
        if not proc.alive:
            self.finish(proc, 1)
            stat.notes["exited before its kill point (tried again)"] += 1
            return False
        proc.kill9()
        self.workers[f"{proc.name} killed"] += 1
        stat.injected += 1
        return True

    # -- phase 1: the first load under fire ------------------------------------------------

    def first_load(self) -> None:
        data = self.simulator.data
        oldest = datetime.fromisoformat(data.enterprises[0]["CreatedUtc"].replace("Z", "+00:00"))
        windows = len(plan_windows(oldest, datetime.now(UTC)))
        expected = 4 * windows + len(data.customers) // 100 + 2
        initial = self.all_ids()

        with self.fault(KILL_BACKFILL, initial) as stat:
            since = self.requests()
            proc = self.start_worker("backfill")
            self.mews_activity()  # Mews changes data while the first load runs
            point = self.rng.randint(3, max(4, expected // 2))
            self.echo(f"backfill started; kill -9 after {point} of ~{expected} requests")
            self.kill_at(proc, stat, point, since)

        with self.fault(PG_RESTART, initial) as stat:
            since = self.requests()
            proc = self.start_worker("backfill")
            point = self.rng.randint(2, max(3, expected // 4))
            wait_for(
                "the backfill to progress",
                lambda: not proc.alive or self.requests() - since >= point,
                WORKER_SECONDS,
                interval=0.005,
            )
            if not proc.alive:
                stat.notes["backfill finished before the restart"] += 1
            self.echo(f"restarting Postgres after {self.requests() - since} backfill requests")
            assert self.pg is not None
            self.pg.restart()
            stat.injected += 1
            self.finish(proc)

        for _ in range(4):  # the first load, until it is complete (faults may still be pending)
            if self.run_workers("backfill") == [0] and self._first_load_state() == "complete":
                break
            # a backfill still held by a live worker is waited for; a killed one's is taken
            # over at once: nothing to wait for but live holders
            wait_for(
                "live backfills to end",
                lambda: self.live_leases("l.name like 'backfill:%%'") == 0,
                WORKER_SECONDS,
                interval=1.0,
            )
        self.create_staff()
        self.summary.insert(0, f"first load: {self._first_load_state()}")

    def _first_load_state(self) -> str:
        rows = self.sql(
            "select entity, high_water_utc is not null from public.sync_checkpoints"
            " where phase = 'backfill' order by entity"
        )
        done = [e for e, finished in rows if finished]
        pending = sorted({s.quarantine for s in truth.ENTITIES} - set(done))
        if not pending:
            return "complete"
        held = self.sql(
            "select name, extract(epoch from expires_at - now())::int from public.sync_leases"
            " where name like 'backfill:%%' and expires_at > now()"
        )
        return f"incomplete for {', '.join(pending)} (leases still held: {held or 'none'})"

    # -- phase 2: rounds of faults while Mews and staff work --------------------------------

    def round(self, kind: str) -> None:
        """One round: Mews and staff activity, the fault, the workers it hits, recovery."""
        rounds: dict[str, Callable[[FaultStat], None]] = {
            KILL_POLL: self._kill_poll,
            KILL_EVENTS: self._kill_events,
            KILL_PUSH: self._kill_push,
            KILL_LISTENER: self._kill_listener,
            KILL_WORKER: self._kill_worker,
            STOP_WORKER: self._stop_worker,
            KILL_FUNCTION: self._kill_function,
            PG_RESTART: self._pg_restart,
            PG_RESTART_STREAMING: self._pg_restart_streaming,
            STORM: self._storm,
            BURST: self._burst,
            SLOW: self._slow,
            WS_DROP: self._ws_drop,
            DUPLICATE_RUNS: self._duplicate_runs,
            DUPLICATE_HOOKS: self._duplicate_hooks,
            POISON: self._poison,
            STAFF_EDITS: self._edits,
        }
        self.echo(f"round: {kind}")
        with self.fault(kind) as stat:
            rounds[kind](stat)

    def _routine(self, stat: FaultStat, *, edits: bool = True) -> None:
        self.mews_activity()
        if edits and self.rng.random() < 0.6:
            self.make_staff_edits([self.rng.choice(("plain", "other_field"))])

    def _kill_poll(self, stat: FaultStat) -> None:
        point = self.rng.randint(1, 6)
        for _ in range(3):  # bounded: a worker that finishes first is tried again, earlier
            self._routine(stat)
            since = self.requests()
            if self.kill_at(self.start_worker("poll"), stat, point, since):
                return
            point = 1

    def _kill_events(self, stat: FaultStat) -> None:
        claimed = self.rng.random() < 0.5  # as soon as it holds a batch, or after k requests
        point = self.rng.randint(1, 3)
        with self.worker_down():  # the worker would drain the inbox first
            self._kill_events_job(stat, claimed, point)

    def _kill_events_job(self, stat: FaultStat, claimed: bool, point: int) -> None:
        for _ in range(3):
            self._routine(stat)
            self.wait_deliveries()
            held = self._processing()
            since = self.requests()
            proc = self.start_worker("events")
            if claimed:
                if self.kill_when(proc, stat, self._claimed_beyond(held)):
                    return
            elif self.kill_at(proc, stat, point, since):
                return
            point = 1

    def _claimed_beyond(self, held: int) -> Callable[[], bool]:
        return lambda: self._processing() > held

    def _processing(self) -> int:
        return int(
            self.sql_value(
                "select count(*) from public.event_inbox where status = 'processing'", default=0
            )
        )

    def _kill_push(self, stat: FaultStat) -> None:
        point = self.rng.randint(1, 5)
        with self.worker_down():  # the worker would push the edits first
            self._kill_push_job(stat, point)

    def _kill_push_job(self, stat: FaultStat, point: int) -> None:
        for _ in range(3):
            self.mews_activity()
            self.make_staff_edits(["plain", "other_field", "plain"])
            since = self.requests()
            if self.kill_at(self.start_worker("push"), stat, point, since):
                return
            point = 1

    def _kill_listener(self, stat: FaultStat) -> None:
        assert self.listener is not None
        self.hooks_off()  # only the WebSocket would tell us now
        self.listener.kill9()
        stat.injected += 1
        self.mews_activity(customers=False, scale=2)
        self.start_listener()
        self.hooks_on()
        self.run_workers("events")

    # -- the real-time worker's own faults, while changes stream -----------------------------

    @contextmanager
    def streaming(self, *, edits: bool = True) -> Iterator[None]:
        """Mews changes (and staff edits) in a steady trickle from a thread for the block. The
        database may be away meanwhile: a staff edit that fails is not recorded. The main
        thread must not draw from ``self.rng`` meanwhile."""
        stop = threading.Event()
        failures: Counter[str] = Counter()

        def trickle() -> None:
            while not stop.is_set():
                try:
                    changed = self.simulator.mutate(
                        customers_updated=self.rng.randint(1, 2),
                        reservations_updated=self.rng.randint(0, 2),
                        resources_updated=self.rng.randint(0, 1),
                    )
                    self.expose("customers", changed["customers_updated"])
                    self.expose("reservations", changed["reservations"])
                    self.expose("resources", changed["resources"])
                    for guest in changed["customers_updated"]:  # mutate changes the phone
                        self.mews_edits.pop((guest, "phone"), None)
                    if edits and self.rng.random() < 0.3:
                        self.make_staff_edits(["plain"])
                except (psycopg.Error, httpx.HTTPError) as exc:
                    failures[type(exc).__name__] += 1
                stop.wait(0.25)

        thread = threading.Thread(target=trickle, name="chaos-stream", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(90)
            if thread.is_alive():
                raise ChaosError("the stream of changes did not stop")
            for name, n in failures.items():
                self.summary.append(f"stream: {n} change(s) not made while faulted ({name})")

    def _worker_claims(self, conn: psycopg.Connection[Any]) -> int:
        """Events a live real-time run holds claimed (its drain in hand)."""
        try:
            row = conn.execute(
                "select count(*) from public.event_inbox i join public.sync_runs r"
                " on r.id = i.locked_by where i.status = 'processing' and r.job = 'realtime'"
                " and r.status = 'running' and app.session_alive(r.session_id)"
            ).fetchone()
        except psycopg.Error:
            return 0
        return int(row[0]) if row else 0

    def _when_draining(self, stat: FaultStat, act: Callable[[], None]) -> None:
        """While changes stream and Mews answers slowly (so each drain holds its claims a
        while): ``act`` as soon as the worker holds claimed events (or, bounded, after 30 s
        regardless, said in the table)."""
        delay = self.rng.randint(150, 400)
        self.simulator.set_faults(extra_delay_ms=delay)
        conn = psycopg.connect(self.db_url, autocommit=True)
        try:
            with self.streaming():
                deadline = time.monotonic() + 30
                caught = False
                while not caught and time.monotonic() < deadline:
                    caught = self._worker_claims(conn) > 0
                    if not caught:
                        time.sleep(0.005)
                stat.notes["mid-drain" if caught else "no drain caught (30 s)"] += 1
                act()
                time.sleep(1.0)  # changes go on arriving meanwhile
        finally:
            self.simulator.set_faults(extra_delay_ms=0)
            with contextlib.suppress(psycopg.Error):
                conn.close()
        self.wait_worker_idle(stat)

    def _kill_worker(self, stat: FaultStat) -> None:
        """kill -9 the listener while its worker drains; a new one takes over at once (the dead
        run's claims are free when its session lock is gone) while changes keep arriving."""
        if not self.realtime:
            stat.notes["the listener runs no worker"] += 1
            return

        def kill() -> None:
            assert self.listener is not None
            owner = self._owner(self.listener)
            self.listener.kill9()
            self.workers["listen killed"] += 1
            stat.injected += 1
            held = self.sql_value(
                "select count(*) from public.event_inbox i join public.sync_runs r"
                " on r.id = i.locked_by where i.status = 'processing' and r.owner = %s",
                (owner,),
                0,
            )
            stat.notes[f"killed holding {held} claimed event(s)"] += 1
            time.sleep(1.0)  # events pile up in the inbox with nobody draining
            self.start_listener()

        self._when_draining(stat, kill)

    def _stop_worker(self, stat: FaultStat) -> None:
        """SIGTERM the listener while its worker drains: the stop finishes the events and the
        push in hand (checked by :meth:`stop_listener`); a new one goes on."""
        if not self.realtime:
            stat.notes["the listener runs no worker"] += 1
            return

        def stop() -> None:
            before = len(self.stop_problems)
            self.stop_listener()
            stat.injected += 1
            stat.notes[
                "stop finished what it held" if len(self.stop_problems) == before else "UNFINISHED"
            ] += 1
            self.start_listener()

        self._when_draining(stat, stop)

    def _pg_restart_streaming(self, stat: FaultStat) -> None:
        """Postgres restarts while changes stream and the worker drains: the worker reconnects,
        LISTENs again and drains what arrived meanwhile (what the webhook function could not
        store while the database was away is Mews' to resend, or a poll's)."""
        before = (self.health() or {}).get("realtime") or {}

        def restart() -> None:
            assert self.pg is not None
            self.pg.restart()
            stat.injected += 1

        self._when_draining(stat, restart)
        if self.realtime:
            wait_for(
                "the worker to LISTEN again",
                lambda: bool(
                    (state := (self.health() or {}).get("realtime") or {}).get("listening")
                    and state.get("listens", 0) > before.get("listens", 0)
                ),
                90,
                interval=0.1,
            )
            self.wait_worker_idle(stat)

    def wait_worker_idle(self, stat: FaultStat) -> None:
        """Until the worker has drained the inbox (nothing pending or claimed) and pushed the
        staff edits (bounded: an edit whose push failed is the scheduled push's, noted)."""
        if not self.realtime:
            return
        self.wait_deliveries()
        wait_for(
            "the worker to drain the inbox",
            lambda: (
                self.sql_value(
                    "select count(*) from public.event_inbox where status in ('pending',"
                    " 'processing') or (status = 'failed' and available_at <= now())",
                    default=1,
                )
                == 0
            ),
            120,
            interval=0.2,
        )
        with contextlib.suppress(ChaosError):
            wait_for(
                "the worker to push the staff edits",
                lambda: (
                    self.sql_value(
                        "select count(*) from public.guests where push_status = 'pending'",
                        default=1,
                    )
                    == 0
                ),
                30,
                interval=0.2,
            )
            return
        stat.notes["staff edits left to the scheduled push"] += 1

    def _kill_function(self, stat: FaultStat) -> None:
        assert self.function is not None
        self.function.kill9()
        stat.injected += 1
        self._routine(stat, edits=False)
        self.wait_deliveries()  # Mews tried, failed and gave up
        self.start_function()
        self.run_workers("events")

    def _pg_restart(self, stat: FaultStat) -> None:
        self._routine(stat)
        since = self.requests()
        procs = [self.start_worker(n) for n in ("events", "poll", "push")]
        point = self.rng.randint(1, 8)
        wait_for(
            "the workers to progress",
            lambda: not any(p.alive for p in procs) or self.requests() - since >= point,
            WORKER_SECONDS,
            interval=0.005,
        )
        assert self.pg is not None
        self.pg.restart()
        stat.injected += 1
        for proc in procs:
            self.finish(proc)

    def _storm(self, stat: FaultStat) -> None:
        self._routine(stat)
        size = self.rng.randint(6, 16)
        self.simulator.set_faults(storm=size, storm_retry_after=1)
        stat.injected += 1
        stat.notes[f"{size} × 429"] += 1
        self.run_workers("events", "poll", "push")
        left = self.drain_faults()
        if left:
            stat.notes["429s no worker met (drained)"] += left

    def _burst(self, stat: FaultStat) -> None:
        self._routine(stat)
        statuses = [self.rng.choice(STATUS_FAULTS) for _ in range(self.rng.randint(4, 14))]
        self.simulator.set_faults(statuses=statuses)
        stat.injected += 1
        for status, n in sorted(Counter(statuses).items()):
            stat.notes[f"{status}"] += n
        self.run_workers("events", "poll", "push")
        left = self.drain_faults()
        if left:
            stat.notes["statuses no worker met (drained)"] += left

    def _slow(self, stat: FaultStat) -> None:
        self._routine(stat)
        delay = round(self.rng.uniform(100, 500))
        self.simulator.set_faults(extra_delay_ms=delay)
        stat.injected += 1
        try:
            self.run_workers("events", "poll", "push")
        finally:
            self.simulator.set_faults(extra_delay_ms=0)

    def _ws_drop(self, stat: FaultStat) -> None:
        before = self.health() or {}
        refuse = self.rng.uniform(1.0, 4.0)
        self.hooks_off()  # only the WebSocket (and its catch-up, and the polls) tell us now
        self.simulator.set_faults(drop_websockets=True, refuse_seconds=refuse)
        stat.injected += 1
        self.mews_activity(customers=False, scale=2)  # broadcast while nobody listens

        def back() -> bool:
            state = self.health() or {}
            return bool(
                state.get("connected")
                and state.get("connects", 0) > before.get("connects", 0)
                and state.get("catch_ups", 0) > before.get("catch_ups", 0)
            )

        wait_for("the listener to reconnect and catch up", back, refuse + 90, interval=0.1)
        self.hooks_on()
        self.run_workers("events")

    def _duplicate_runs(self, stat: FaultStat) -> None:
        self._routine(stat)
        self.make_staff_edits(["plain"])
        self.wait_deliveries()
        first = self.sql_value("select count(*) from public.sync_runs", default=0)
        for name in ("poll", "events", "push"):
            self.run_workers(name, name)
            stat.injected += 1
        skipped = self.sql_value(
            "select count(*) from (select * from public.sync_runs order by started_at offset %s) r"
            " where status = 'skipped'",
            (first,),
            0,
        )
        stat.notes[f"{skipped} run(s) skipped a held unit"] += 1

    def _duplicate_hooks(self, stat: FaultStat) -> None:
        self.hooks_on(duplicates=True)
        stat.injected += 1
        try:
            self._routine(stat)
            self.wait_deliveries()
        finally:
            self.hooks_on()
        self.run_workers("events")

    def _poison(self, stat: FaultStat) -> None:
        self.inject_poison(stat)
        self.wait_deliveries()
        self.run_workers("events", "poll")
        self.heal_some_poison(stat)
        self.wait_deliveries()
        self.run_workers("events")

    def _edits(self, stat: FaultStat) -> None:
        kinds = ["plain", "other_field", "contested_mews", "contested_local", "refused"]
        stat.injected += self.make_staff_edits(kinds)
        self.wait_deliveries()
        self.run_workers("push")
        self.run_workers("events")

    # -- phase 3: convergence --------------------------------------------------------------

    def quiesce(self) -> None:
        self.simulator.set_faults(extra_delay_ms=0)
        self.hooks_on()
        self.drain_faults()
        until = self.simulator.app.faults.refuse_websockets_until
        wait_for("the WebSocket refusal to end", lambda: time.monotonic() >= until, 60)
        self.wait_deliveries()
        wait_for(
            "the listener to be connected with nothing buffered (its worker listening)",
            lambda: bool(
                (state := self.health())
                and state.get("connected")
                and not state.get("buffered")
                and state.get("store_ok")
                and (not self.realtime or (state.get("realtime") or {}).get("listening"))
            ),
            120,
            interval=0.1,
        )

    def wait_visible(self, comparison: truth.Comparison, deadline: float) -> None:
        """Until a poll can see every record that still differs: Mews' NowUtc minus the
        engine's lag (whole seconds, half-open windows) has passed its last change."""
        world = self.simulator.data
        stamps = [
            truth.parse_utc(record.get(name))
            for entity, check in comparison.entities.items()
            if truth.SPECS[entity].clock
            for record_id, status in check.statuses.items()
            if status in (truth.MISSING, truth.STALE)
            for record in [getattr(world, entity).get(record_id, {})]
            for name in ("UpdatedUtc", "CreatedUtc")
        ]
        newest = max((s for s in stamps if s is not None), default=None)
        if newest is None:
            return
        ready = newest + LAG + timedelta(seconds=2)
        differing = {
            entity: [i for i, st in c.statuses.items() if st in (truth.MISSING, truth.STALE)]
            for entity, c in comparison.entities.items()
        }
        self.echo(
            f"waiting {max(0.0, (ready - datetime.now(UTC)).total_seconds()):.0f} s for Mews'"
            f" clock to pass the last differing change by {LAG}: "
            + ", ".join(f"{e} {len(ids)}" for e, ids in differing.items() if ids)
        )
        wait_for(
            f"Mews' clock to pass the last differing change by the engine's lag ({LAG})",
            lambda: datetime.now(UTC) >= ready,
            max(1.0, deadline - time.monotonic()),
            interval=0.2,
        )

    def wait_leases(self, deadline: float) -> None:
        """Until no live worker holds a unit a clean pass needs (push, reconcile); a killed
        worker's units are taken over at once (its session lock is gone)."""
        wait_for(
            "live workers to release push and reconcile",
            lambda: (
                self.live_leases("l.name like 'push_changes%%' or l.name like 'reconcile:%%'") == 0
            ),
            max(1.0, deadline - time.monotonic()),
            interval=0.5,
        )

    def live_leases(self, names: str) -> int:
        """Leases among ``names`` (a condition on ``l.name``) that a live run holds."""
        return int(
            self.sql_value(
                "select count(*) from public.sync_leases l"
                " join public.sync_runs r on r.id::text = l.holder"
                f" where l.released_at is null and l.expires_at > now() and ({names})"
                f" and {LIVE_RUN}",
                (self.config.stale_seconds + 1,),
                default=1,
            )
        )

    def wait_runs_reapable(self, deadline: float) -> None:
        """Until every run still `running` is dead (its session lock free) or, without a
        session, has a heartbeat older than the staleness: the next job marks it abandoned.
        The live listener's real-time run is not waited for: it runs as long as the listener
        (a run every few minutes) and holds a unit only while it pushes."""
        wait_for(
            "dead runs to be known dead",
            lambda: (
                self.sql_value(
                    f"select count(*) from public.sync_runs r where {LIVE_RUN}"
                    " and r.job <> 'realtime'",
                    (self.config.stale_seconds + 1,),
                    default=1,
                )
                == 0
            ),
            max(1.0, deadline - time.monotonic()),
            interval=0.5,
        )

    def converge(self) -> tuple[truth.Comparison, truth.EditCheck]:
        """Clean passes until the database equals the truth (or the deadline): what arrived
        by webhook and WebSocket is processed and pushed first; a pass of poll, push and the
        final reconcile then runs once a poll can see every record still differing (Mews'
        lag), no dead worker holds a unit it needs, and the dead runs are old enough for its
        first job to mark them abandoned. The listener's worker runs meanwhile (the scheduled
        jobs are its safety net and find little to do); at the end it is stopped by SIGTERM,
        checked, and the verdict is what the database then holds."""
        deadline = time.monotonic() + self.config.converge_seconds
        self.quiesce()
        self.echo("converging: events, push")
        self.run_workers("events", "push")
        self.run_workers("events")
        comparison, edits = self.check()
        for attempt in range(1, 4):
            self.wait_visible(comparison, deadline)
            self.wait_leases(deadline)
            self.wait_runs_reapable(deadline)
            self.echo(f"converging: clean pass {attempt} (poll, events, push; reconcile)")
            self.run_workers("poll", "events", "push")
            self.run_workers("reconcile", "events")
            comparison, edits = self.check()
            if comparison.equal and edits.accounted:
                break
            self.echo(
                f"not yet: lost {comparison.lost}, duplicated {comparison.duplicated}, "
                f"stale {comparison.stale}, edits accounted {edits.accounted}"
            )
        # the listener's SIGTERM, checked: its worker ends its run with nothing in hand; what
        # the database then holds is the verdict
        self.echo("stopping the listener (SIGTERM)")
        self.stop_listener()
        return self.check()

    # -- the verdict ---------------------------------------------------------------------------

    def snapshot_truth(self) -> dict[str, dict[str, dict[str, Any]]]:
        data = self.simulator.data
        return {
            spec.name: truth.normalized(dict(getattr(data, spec.name))) for spec in truth.ENTITIES
        }

    def check(self) -> tuple[truth.Comparison, truth.EditCheck]:
        world = self.snapshot_truth()
        mirror = {
            spec.name: [
                truth.MirrorRow(mews_id, updated, raw)
                for mews_id, updated, raw in self.sql(
                    sql.SQL("select mews_id::text, mews_updated_utc, raw from public.{}")
                    .format(sql.Identifier(spec.table))
                    .as_string()
                )
            ]
            for spec in truth.ENTITIES
        }
        quarantine = [
            truth.QuarantineEntry(entity, mews_id, raw, is_open)
            for entity, mews_id, raw, is_open in self.sql(
                "select entity, mews_id, raw, resolved_at is null from public.quarantine"
            )
        ]
        comparison = truth.compare(
            world, mirror, quarantine, known_gaps=() if self.config.strict else truth.KNOWN_GAPS
        )
        conflicts = [
            truth.ConflictEntry(*row)
            for row in self.sql(
                "select guest_mews_id::text, field, local_value, mews_value, resolution"
                " from public.conflict_log"
            )
        ]
        pending = self.sql_value(
            "select count(*) from public.guests where push_status = 'pending'", default=0
        )
        edits = truth.check_edits(
            list(self.staff_edits.values()),
            list(self.mews_edits.values()),
            world["customers"],
            conflicts,
            pending=pending,
        )
        return comparison, edits

    def report(
        self, comparison: truth.Comparison, edits: truth.EditCheck, seconds: float
    ) -> ChaosReport:
        rows = []
        for kind in (KILL_BACKFILL, *STEADY_KINDS):
            if kind == STAFF_EDITS:
                continue
            stat = self.faults.get(kind)
            if stat is None:
                rows.append(truth.FaultRow(kind, 0, 0, 0, 0, 0, "not scheduled in this run"))
                continue
            outcome = truth.exposure_outcome(comparison, stat.exposed)
            notes = [f"{k} ×{n}" if n > 1 else k for k, n in sorted(stat.notes.items())]
            if outcome[truth.QUARANTINED]:
                notes.insert(0, f"{outcome[truth.QUARANTINED]} quarantined")
            rows.append(
                truth.FaultRow(
                    kind,
                    stat.injected,
                    sum(outcome.values()),
                    outcome[truth.MISSING],
                    outcome[truth.DUPLICATED],
                    outcome[truth.STALE],
                    "; ".join(notes),
                )
            )
        for kind, reason in NOT_INJECTABLE.items():
            rows.append(truth.FaultRow(kind, 0, 0, 0, 0, 0, reason))
        duplicate_conflicts = int(
            self.sql_value(
                "select count(*) - count(distinct (guest_mews_id, field, local_edited_at, resolution))"
                " from public.conflict_log",
                default=0,
            )
        )
        rows.append(
            truth.FaultRow(
                STAFF_EDITS,
                edits.staff + edits.mews,
                edits.staff + edits.mews,
                len(edits.staff_unaccounted) + len(edits.mews_lost),
                duplicate_conflicts,
                edits.pending,
                f"staff: {edits.staff_in_mews} in Mews, {edits.staff_in_conflict_log} in the "
                f"conflict log; Mews: {edits.mews_kept} kept, {edits.mews_overruled_logged} "
                f"overruled and logged, {edits.mews_replaced_seen} replaced by an edit made over "
                "them",
            )
        )
        rows.append(
            truth.FaultRow(
                "(every record)",
                sum(s.injected for s in self.faults.values()),
                comparison.checked,
                comparison.lost,
                comparison.duplicated,
                comparison.stale,
                "; ".join(
                    [f"{comparison.quarantined} quarantined"]
                    + [f"{n} known gap: {name}" for name, n in comparison.known_gaps.items()]
                ),
            )
        )
        runs = dict(self.sql("select status, count(*) from public.sync_runs group by 1 order by 1"))
        running = int(runs.get("running", 0))
        good_but_held = int(
            self.sql_value(
                "select count(*) from public.quarantine q where q.resolved_at is null and exists"
                " (select 1 from public.guests g where g.mews_id::text = q.mews_id"
                "  and q.entity = 'customers' and g.raw->>'UpdatedUtc' > q.raw->>'UpdatedUtc')",
                default=0,
            )
        )
        summary = [*self.summary, *self._details(comparison, edits)]
        quarantined, resolved, healed = self.poison_outcome()
        summary.append(
            f"poison: {quarantined} of {len(self.poison_log)} invalid records quarantined when"
            f" read; {resolved} of {healed} healed ones have their entries resolved"
        )
        for gap in truth.KNOWN_GAPS:
            if comparison.known_gaps.get(gap.name):
                summary.append(
                    f"known gap ({comparison.known_gaps[gap.name]}): {gap.name}: {gap.bug}"
                )
        summary.append(f"sync runs: {runs} (left running: {running})")
        inbox = dict(
            self.sql("select status, count(*) from public.event_inbox group by 1 order by 1")
        )
        summary.append(f"event inbox: {inbox}")
        if good_but_held:
            summary.append(
                f"quarantine entries still open for records since mirrored: {good_but_held}"
            )
        stats = self.simulator.stats()
        summary.append(
            f"Mews: {stats['requests']} requests accepted, statuses {stats['statuses']}, "
            f"{stats['webhooks_sent']} webhook messages delivered, "
            f"{stats['websocket_messages_sent']} WebSocket messages"
        )
        summary.append(
            "workers: " + ", ".join(f"{k} ×{n}" for k, n in sorted(self.workers.items()))
        )
        if self.hung:
            summary.append(f"hung workers (killed at {WORKER_SECONDS:.0f} s): {self.hung}")
        summary.append(
            f"listener stopped by SIGTERM ×{self.listener_stops}: "
            + (
                "; ".join(self.stop_problems)
                if self.stop_problems
                else "each finished the runs and events it held"
            )
        )
        summary += [f"staff edits: {note} ×{n}" for note, n in sorted(self.edit_notes.items())]
        return ChaosReport(
            rows=rows,
            comparison=comparison,
            edits=edits,
            runs=runs,
            running=running,
            duplicate_conflicts=duplicate_conflicts,
            open_quarantine_of_good_records=good_but_held,
            poison=(len(self.poison_log), quarantined, healed, resolved),
            not_injected=dict(NOT_INJECTABLE),
            summary=summary,
            seconds=seconds,
            workdir=self.workdir,
            hung=list(self.hung),
            stop_problems=list(self.stop_problems),
        )

    @staticmethod
    def _details(comparison: truth.Comparison, edits: truth.EditCheck) -> list[str]:
        """Per entity counts, and examples of anything wrong."""
        summary = [
            "per entity: "
            + ", ".join(
                f"{name} {c.checked} (lost {c.lost}, dup {c.duplicated}, stale {c.stale}, "
                f"quarantined {c.quarantined})"
                for name, c in comparison.entities.items()
            )
        ]
        for name, check in comparison.entities.items():
            for status in (truth.MISSING, truth.DUPLICATED, truth.STALE):
                if check.count(status):
                    summary.append(f"  {name} {status}: e.g. {check.examples(status)}")
            if check.extra:
                summary.append(f"  {name} rows Mews does not have: {check.extra[:3]}")
        summary += [
            f"  staff edit neither in Mews nor in the conflict log: {e}"
            for e in edits.staff_unaccounted[:5]
        ]
        summary += [f"  Mews change lost: {c}" for c in edits.mews_lost[:5]]
        return summary

    # -- the whole scenario ----------------------------------------------------------------

    def schedule(self) -> list[str]:
        kinds = [k for k in STEADY_KINDS if k != KILL_PUSH or self.config.kill_push]
        # kills and restarts leave dead runs (hung ones reaped stale_seconds after their last
        # heartbeat; killed ones at once): first, so any wait for them overlaps the rest
        orphaning = [
            k for k in kinds if k.startswith("kill") or k in (PG_RESTART, PG_RESTART_STREAMING)
        ]
        # then the changes only a poll can bring (no webhook told us): the engine's lag
        # runs out for them while the other rounds go on
        unannounced = [WS_DROP, POISON]
        others = [k for k in kinds if k not in orphaning and k not in unannounced]
        for group in (orphaning, unannounced, others):
            self.rng.shuffle(group)
        return orphaning + unannounced + others

    def run(self) -> ChaosReport:
        started = time.monotonic()
        self.started = started
        root = self.config.workdir or Path(tempfile.mkdtemp(prefix="guesthub-chaos-"))
        self.workdir = root
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        failed = True
        try:
            with ExitStack() as stack:
                stack.callback(self._stop_everything)
                self.pg = Postgres(root / "pg", self.logs)
                (root / "pg").mkdir(exist_ok=True)
                server = self.pg.start()
                ensure_database(server, DATABASE)
                self.db_url = database_url(server, DATABASE)
                migrate(self.db_url)
                self.echo(f"embedded Postgres ready in {root / 'pg'}")
                config = SimulatorConfig(
                    seed=self.config.seed,
                    customers=self.config.customers,
                    latency_ms=self.config.latency_ms,
                    per_item_ms=self.config.per_item_ms,
                    rate_limit=self.config.rate_limit,
                )
                self.sim = stack.enter_context(running_simulator(config))
                self.function_port = free_port()
                self.listener_port = free_port()
                self.start_function()
                self.hooks_on()
                self.start_listener()
                self.echo(f"simulator on {self.simulator.url}; function and listener up")
                self.first_load()
                rounds = self.schedule()
                steady_until = time.monotonic() + self.config.minutes * 60
                for kind in rounds:
                    self.round(kind)
                limit = int(self.config.minutes * 60) + 1  # bounded: at most one a second
                for _ in range(limit):
                    if time.monotonic() >= steady_until:
                        break
                    kinds = [k for k in STEADY_KINDS if k != KILL_PUSH or self.config.kill_push]
                    self.round(self.rng.choice(kinds))
                    if self._first_load_state() != "complete":
                        self.run_workers("backfill")
                comparison, edits = self.converge()
                if self.summary[0] != "first load: complete":
                    self.summary.insert(1, f"first load at the end: {self._first_load_state()}")
                report = self.report(comparison, edits, time.monotonic() - started)
            failed = False
            return report
        finally:
            self.http.close()
            if not self.config.keep and not failed:
                shutil.rmtree(root, ignore_errors=True)
            elif failed:
                sys.stderr.write(f"chaos: logs kept in {self.logs}\n")

    def _stop_everything(self) -> None:
        for proc in reversed(self._procs):
            if proc.alive:
                if proc.name in ("listen", "mews_webhook"):
                    proc.terminate()
                else:
                    proc.kill9()
        if self.pg is not None:
            self.pg.close()


def run_chaos(config: ChaosConfig) -> ChaosReport:
    return Chaos(config).run()
