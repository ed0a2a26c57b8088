"""Installed as users install it: the wheel carries its migrations, bootstrap, privilege matrix
and scheduler jobs, and `guesthub db migrate` from a plain install migrates a fresh database.

The wheel is built with the project's own build backend (hatchling, a dev dependency: no
download) and installed with ``--no-deps`` into a new virtualenv of its own. Its dependencies
come from the project's .venv through a ``.pth`` file: Python adds that folder to the path
without reading its ``.pth`` files, so the editable install of this checkout stays invisible
and ``shared`` is imported from the installed wheel alone (the test checks it). The commands run
from an empty folder, with nothing of the checkout on the path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
from pathlib import Path

import psycopg
import pytest

from shared.db.migrations import discover

ROOT = Path(__file__).resolve().parents[2]


class Installed:
    """A virtualenv holding the built wheel, and an empty folder to run its commands from."""

    def __init__(self, root: Path, work: Path) -> None:
        self.root = root
        self.work = work
        self.bin = root / "bin"

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        home = self.work / "home"
        return subprocess.run(  # noqa: S603 - the executables we just installed
            [str(self.bin / args[0]), *args[1:]],
            cwd=self.work,
            env={
                "PATH": os.environ.get("PATH", ""),
                "HOME": str(home),
                "GUESTHUB_HOME": str(home / "guesthub"),
                "CLOUDSDK_CONFIG": str(home / "gcloud"),
                "NO_GCE_CHECK": "true",
                "LOG_JSON": "true",
                **env,
            },
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(  # noqa: S603 - pip of this interpreter
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(dist),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    (built,) = dist.glob("guesthub-*.whl")
    return built


def install(wheel: Path, root: Path, work: Path) -> Installed:
    """A new virtualenv at ``root`` with ``wheel`` installed and the project's dependencies."""
    venv.EnvBuilder(with_pip=False).create(root)
    subprocess.run(  # noqa: S603 - pip of this interpreter, installing for the new one
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(root / "bin" / "python"),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    (site_packages(root) / "project_dependencies.pth").write_text(
        sysconfig.get_path("purelib") + "\n", encoding="utf-8"
    )
    return Installed(root, work)


def site_packages(root: Path) -> Path:
    return Path(sysconfig.get_path("purelib", vars={"base": str(root), "platbase": str(root)}))


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return install(wheel, tmp_path_factory.mktemp("venv"), tmp_path_factory.mktemp("work"))


def test_the_installed_package_is_the_wheel_with_its_data(installed: Installed) -> None:
    result = installed.run(
        "python",
        "-c",
        "import shared, shared.package_data as d; print(shared.__file__); print(d.data_root())",
    )
    assert result.returncode == 0, result.stderr
    module, data = result.stdout.splitlines()
    assert Path(module).is_relative_to(installed.root), module
    assert Path(data) == Path(module).parent / "_data"
    shipped = sorted(p.name for p in (Path(data) / "supabase" / "migrations").glob("*.sql"))
    assert shipped == [m.path.name for m in discover()]
    for name in ("supabase/bootstrap/plain_postgres.sql", "supabase/privileges.yaml"):
        assert (Path(data) / name).read_bytes() == (ROOT / name).read_bytes(), name
    assert (Path(data) / "scheduler.yaml").read_bytes() == (ROOT / "scheduler.yaml").read_bytes()


def test_a_plain_install_migrates_a_fresh_database(
    installed: Installed, empty_database_url: str
) -> None:
    every = discover()
    status = installed.run("guesthub", "db", "status", DATABASE_URL=empty_database_url)
    assert status.returncode == 0, status.stderr
    assert f"0 applied, {len(every)} pending" in status.stdout

    migrate = installed.run("guesthub", "db", "migrate", DATABASE_URL=empty_database_url)
    assert migrate.returncode == 0, migrate.stderr
    assert migrate.stdout.count("applied ") == len(every)
    with psycopg.connect(empty_database_url) as conn:
        versions = [
            v
            for (v,) in conn.execute(
                "select version from supabase_migrations.schema_migrations order by 1"
            )
        ]
    assert versions == [m.version for m in every]

    # the privilege matrix it ships matches what its migrations granted
    privileges = installed.run("guesthub", "db", "privileges", DATABASE_URL=empty_database_url)
    assert privileges.returncode == 0, privileges.stdout + privileges.stderr
    status = installed.run("guesthub", "db", "status", DATABASE_URL=empty_database_url)
    assert f"{len(every)} applied, 0 pending" in status.stdout


def test_the_scheduler_jobs_ship_with_the_package(installed: Installed) -> None:
    # no scheduler.yaml in the working folder: the one in the wheel is used
    assert not (installed.work / "scheduler.yaml").exists()
    result = installed.run(
        "guesthub", "scheduler", "apply", "--project", "p", "--region", "r", "--dry-run"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("would create or update projects/p/locations/r/jobs/") >= 1


def test_an_install_without_its_migrations_says_where_it_looked(
    wheel: Path, installed: Installed, empty_database_url: str, tmp_path: Path
) -> None:
    broken = install(wheel, tmp_path / "venv", installed.work)
    missing = site_packages(broken.root) / "shared" / "_data" / "supabase" / "migrations"
    shutil.rmtree(missing)
    result = broken.run("guesthub", "db", "status", DATABASE_URL=empty_database_url)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "pending" not in result.stdout
    assert result.stderr.startswith("error: supabase/migrations is missing: looked for ")
    assert str(missing) in result.stderr.replace("\n", "")


def test_the_image_installs_the_wheel_with_everything_it_carries() -> None:
    """The Dockerfile builds the wheel from what it copies: every package-data source of
    pyproject.toml must be among them, and the image installs that wheel, not the source."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    build = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    sources = build["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    copied = {
        item.rstrip("/")
        for line in dockerfile.splitlines()
        if line.startswith("COPY ") and "--from" not in line
        for item in line.split()[1:-1]
    }
    for source in sources:
        assert source in copied or source.split("/")[0] in copied, source
    assert "pip wheel --no-deps --wheel-dir /dist ." in dockerfile
    assert "pip install /dist/*.whl" in dockerfile
    assert "pip install ." not in dockerfile
