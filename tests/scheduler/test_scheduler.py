"""scheduler.yaml → Job objects, and apply through the real client on an offline transport."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from google.auth.credentials import AnonymousCredentials
from google.cloud import scheduler_v1
from google.cloud.scheduler_v1.services.cloud_scheduler.transports.rest import (
    CloudSchedulerRestTransport,
)
from pydantic import ValidationError

import functions.main
from shared.scheduler.apply import apply_jobs
from shared.scheduler.config import load, parent, to_jobs

ROOT = Path(__file__).resolve().parents[2]
# every scheduled entry point (all but the webhook) has its job
FUNCTIONS = set(functions.main.__all__) - {"mews_webhook"}


class FakeSchedulerApi(requests.adapters.BaseAdapter):
    """The Cloud Scheduler REST API, in memory: records every call."""

    def __init__(self, existing: list[dict[str, Any]]) -> None:
        super().__init__()
        self.jobs = {job["name"]: job for job in existing}
        self.calls: list[tuple[str, str, Any]] = []

    def send(self, request: requests.PreparedRequest, **_: Any) -> requests.Response:
        body = json.loads(request.body) if request.body else None
        path = request.path_url.split("?")[0].removeprefix("/v1/")
        self.calls.append((request.method or "", request.path_url, body))
        if request.method == "GET":
            payload: Any = {"jobs": list(self.jobs.values())}
        elif request.method == "POST":
            self.jobs[body["name"]] = body
            payload = body
        else:  # PATCH
            self.jobs[path] = body
            payload = body
        response = requests.Response()
        response.status_code = 200
        response._content = json.dumps(payload).encode()
        response.headers["Content-Type"] = "application/json"
        response.request = request
        return response

    def close(self) -> None:
        return None


def offline_client(api: FakeSchedulerApi) -> scheduler_v1.CloudSchedulerClient:
    transport = CloudSchedulerRestTransport(credentials=AnonymousCredentials())
    transport._session.mount("https://", api)
    return scheduler_v1.CloudSchedulerClient(transport=transport)


def jobs() -> list[scheduler_v1.Job]:
    return to_jobs(
        load(ROOT / "scheduler.yaml", project="hotel-prod", region="europe-west1"),
        project="hotel-prod",
        region="europe-west1",
    )


def test_every_function_has_a_job_with_oidc_and_retries() -> None:
    built = jobs()
    assert {j.http_target.uri.rsplit("/", 1)[1] for j in built} == FUNCTIONS
    for job in built:
        assert job.name.startswith("projects/hotel-prod/locations/europe-west1/jobs/guesthub-")
        assert job.http_target.uri.startswith("https://europe-west1-hotel-prod.cloudfunctions.net/")
        assert job.http_target.http_method == scheduler_v1.HttpMethod.POST
        assert (
            job.http_target.oidc_token.service_account_email
            == "guesthub-scheduler@hotel-prod.iam.gserviceaccount.com"
        )
        assert job.http_target.oidc_token.audience == job.http_target.uri
        assert job.retry_config.retry_count >= 1
        assert job.time_zone
    reconcile = next(j for j in built if j.http_target.uri.endswith("/reconcile"))
    assert reconcile.time_zone == "Europe/London"
    assert reconcile.attempt_deadline.seconds == 1800


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('schedule: "* * * * *"', None),
        ('schedule: "every minute"', "cron"),
        ("attempt_deadline: 300s", None),
        ("attempt_deadline: 5m", "whole seconds"),
    ],
)
def test_validation_names_the_problem(tmp_path: Path, change: str, message: str | None) -> None:
    text = (ROOT / "scheduler.yaml").read_text()
    key = change.split(":", maxsplit=1)[0]
    first = next(
        line
        for line in text.splitlines()
        if line.strip().startswith(key + ":") and line.startswith("    ")
    )
    bad = tmp_path / "scheduler.yaml"
    bad.write_text(text.replace(first, "    " + change, 1))
    if message is None:
        load(bad, project="p", region="r")
        return
    with pytest.raises(ValidationError, match=message):
        load(bad, project="p", region="r")


def test_apply_creates_missing_and_updates_changed_jobs_only() -> None:
    built = jobs()
    unchanged = scheduler_v1.Job.to_dict(built[0])
    changed = scheduler_v1.Job.to_dict(built[1]) | {"schedule": "0 * * * *"}
    api = FakeSchedulerApi([unchanged, changed])
    plan = apply_jobs(
        offline_client(api), parent("hotel-prod", "europe-west1"), built, dry_run=False
    )
    assert plan.unchanged == [built[0].name]
    assert plan.update == {built[1].name: ["schedule"]}
    assert plan.create == [j.name for j in built[2:]]
    methods = [m for m, _, _ in api.calls]
    assert methods == ["GET", "PATCH"] + ["POST"] * (len(built) - 2)
    patch = next(c for c in api.calls if c[0] == "PATCH")
    assert "updateMask=schedule" in patch[1]
    assert patch[2]["schedule"] == built[1].schedule
    created = [c[2] for c in api.calls if c[0] == "POST"]
    assert [scheduler_v1.Job.from_json(json.dumps(c)) for c in created] == built[2:]


def test_a_dry_run_changes_nothing() -> None:
    api = FakeSchedulerApi([])
    plan = apply_jobs(
        offline_client(api), parent("hotel-prod", "europe-west1"), jobs(), dry_run=True
    )
    assert len(plan.create) == len(FUNCTIONS)
    assert [m for m, _, _ in api.calls] == ["GET"]
