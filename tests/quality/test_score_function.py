"""score_profiles through functions-framework on data the sync engine brought from the
simulator; enrichment records its sources and never overwrites the mirror; the report."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import functions_framework
import httpx
import psycopg
import pytest

from functions import runtime
from shared.db.store import PsycopgTransport, Store
from shared.mews.client import MewsClient
from shared.mews.ratelimit import UnlimitedRateLimiter
from shared.quality.job import facts_for
from shared.settings import load_settings
from shared.simulator.running import Simulator, running_simulator
from shared.simulator.server import SimulatorConfig
from shared.sync.engine import SyncEngine
from shared.sync.entities import SPECS


@pytest.fixture
def loaded(database_url: str) -> Iterator[tuple[str, Simulator]]:
    with running_simulator(SimulatorConfig(customers=300, rate_limit=None)) as sim:

        async def load() -> None:
            store = Store(await PsycopgTransport.connect(database_url))
            async with httpx.AsyncClient() as http:
                engine = SyncEngine(
                    store,
                    MewsClient.from_settings(
                        load_settings(mews_platform_url=sim.url), http, UnlimitedRateLimiter()
                    ),
                )
                for spec in SPECS.values():
                    await engine.backfill(spec)
            await store.aclose()

        asyncio.run(load())
        runtime.reset(database_url=database_url)
        yield database_url, sim
        runtime.reset()


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def test_score_profiles_scores_every_active_guest_and_records_its_run(
    loaded: tuple[str, Simulator],
) -> None:
    url, sim = loaded
    client = functions_framework.create_app(
        target="score_profiles", source="functions/score_profiles.py"
    ).test_client()
    answer = client.post("/")
    assert answer.status_code == 200, answer.get_json()
    summary = answer.get_json()
    active = sum(1 for c in sim.data.customers.values() if c["IsActive"])
    assert summary["status"] == "succeeded"
    assert summary["counts"]["scored"] == active
    assert rows(url, "select count(*) from public.guest_scores") == [(active,)]
    assert rows(url, "select job, status from public.sync_runs where job = 'score_profiles'") == [
        ("score_profiles", "succeeded")
    ]
    # nothing changed: a second run rewrites nothing
    again = client.post("/").get_json()
    assert again["counts"]["scores_changed"] == 0
    assert again["counts"].get("facts_refreshed", 0) == 0
    # duplicates the simulator planted are suggested, with evidence
    assert rows(url, "select count(*) > 0 from public.guest_duplicates") == [(True,)]


def test_enrichment_records_sources_and_never_overwrites_the_mirror(
    loaded: tuple[str, Simulator],
) -> None:
    url, sim = loaded
    before = rows(
        url,
        "select mews_id, email, phone, nationality_code, preferred_language_code from public.guests order by mews_id",
    )
    client = functions_framework.create_app(
        target="score_profiles", source="functions/score_profiles.py"
    ).test_client()
    assert client.post("/").status_code == 200
    assert (
        rows(
            url,
            "select mews_id, email, phone, nationality_code, preferred_language_code from public.guests order by mews_id",
        )
        == before
    )
    enriched = rows(
        url,
        "select e.field, e.source, g.nationality_code, g.preferred_language_code from public.guest_enrichments e"
        " join public.guests g on g.mews_id = e.guest_mews_id",
    )
    assert enriched
    for field, source, nationality, language in enriched:
        assert source
        if field == "nationality_code":
            assert nationality is None  # only fills a gap
        if field == "preferred_language_code":
            assert language is None
    # nothing is pushed to Mews unless an admin enabled it
    assert rows(url, "select count(*) from public.guests where push_status = 'pending'") == [(0,)]
    enterprise = sim.data.enterprises[0]["Id"]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "insert into public.enrichment_settings (enterprise_id, rule, enabled, push_to_mews)"
            " values (%s, 'language_from_mews', true, true)",
            (enterprise,),
        )
    assert client.post("/").status_code == 200
    pending = rows(url, "select local_changes from public.guests where push_status = 'pending'")
    assert pending
    assert all(set(changes) == {"preferred_language_code"} for (changes,) in pending)  # type: ignore[arg-type]


def test_facts_normalise_with_the_libraries() -> None:
    facts = facts_for(
        {
            "guest_mews_id": "g",
            "email": " Ana.Novak@Example.COM ",
            "phone": "020 7946 0958",
            "nationality_code": "GB",
            "address_country": None,
            "synced_at": "t",
        }
    )
    assert facts["email_normalized"] == "ana.novak@example.com"
    assert facts["email_valid"] is True
    assert facts["phone_e164"] == "+442079460958"
    bad = facts_for(
        {
            "guest_mews_id": "g",
            "email": "ana@@example.com",
            "phone": "12",
            "nationality_code": None,
            "address_country": None,
            "synced_at": "t",
        }
    )
    assert (bad["email_valid"], bad["phone_valid"]) == (False, False)


def test_the_report_is_a_self_contained_page(loaded: tuple[str, Simulator], tmp_path: Path) -> None:
    url, _ = loaded
    from typer.testing import CliRunner

    from shared.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["score"], env={"DATABASE_URL": url}).exit_code == 0
    target = tmp_path / "report.html"
    result = runner.invoke(app, ["report", "--html", str(target)], env={"DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    page = target.read_text()
    for heading in (
        "Score distribution",
        "Gaps by field",
        "Average score over time",
        "Arrivals at risk",
        "Worst profiles",
    ):
        assert heading in page
    assert "<svg" in page
    assert "http://" not in page
    assert "https://" not in page
