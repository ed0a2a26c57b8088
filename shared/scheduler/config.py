"""scheduler.yaml → google-cloud-scheduler ``Job`` objects (pure: no network)."""

from __future__ import annotations

import re
from pathlib import Path
from string import Template
from typing import Any

import yaml
from google.cloud import scheduler_v1
from google.protobuf import duration_pb2, field_mask_pb2
from pydantic import BaseModel, ConfigDict, Field, field_validator

_DURATION = re.compile(r"^\d+s$")
_CRON = re.compile(r"^(\S+\s+){4}\S+$")


def _seconds(text: str) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=int(text.removesuffix("s")))


class Retry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    retry_count: int = Field(ge=0, le=5)
    max_retry_duration: str
    min_backoff: str
    max_backoff: str
    max_doublings: int = Field(ge=0, le=16)

    @field_validator("max_retry_duration", "min_backoff", "max_backoff")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not _DURATION.match(value):
            raise ValueError(f"durations are whole seconds like '300s', got {value!r}")
        return value


class Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    time_zone: str
    base_url: str
    service_account: str
    attempt_deadline: str
    retry: Retry


class JobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,500}$")
    description: str = ""
    function: str = Field(pattern=r"^[a-z_]+$")
    schedule: str
    time_zone: str | None = None
    attempt_deadline: str | None = None
    retry: Retry | None = None

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not _CRON.match(value.strip()):
            raise ValueError(f"schedule must be a five-field cron expression, got {value!r}")
        return value

    @field_validator("attempt_deadline")
    @classmethod
    def _deadline(cls, value: str | None) -> str | None:
        if value is not None and not _DURATION.match(value):
            raise ValueError(f"attempt_deadline is whole seconds like '300s', got {value!r}")
        return value


class SchedulerFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    defaults: Defaults
    jobs: list[JobSpec]

    @field_validator("jobs")
    @classmethod
    def _unique(cls, jobs: list[JobSpec]) -> list[JobSpec]:
        names = [j.name for j in jobs]
        if len(names) != len(set(names)):
            raise ValueError("job names must be unique")
        return jobs


def load(path: Path, *, project: str, region: str) -> SchedulerFile:
    text = Template(path.read_text(encoding="utf-8")).substitute(PROJECT=project, REGION=region)
    data: Any = yaml.safe_load(text)
    return SchedulerFile.model_validate(data)


def parent(project: str, region: str) -> str:
    return f"projects/{project}/locations/{region}"


def to_jobs(config: SchedulerFile, *, project: str, region: str) -> list[scheduler_v1.Job]:
    jobs = []
    for spec in config.jobs:
        retry = spec.retry or config.defaults.retry
        url = f"{config.defaults.base_url.rstrip('/')}/{spec.function}"
        jobs.append(
            scheduler_v1.Job(
                name=f"{parent(project, region)}/jobs/{spec.name}",
                description=spec.description,
                schedule=spec.schedule,
                time_zone=spec.time_zone or config.defaults.time_zone,
                attempt_deadline=_seconds(
                    spec.attempt_deadline or config.defaults.attempt_deadline
                ),
                retry_config=scheduler_v1.RetryConfig(
                    retry_count=retry.retry_count,
                    max_retry_duration=_seconds(retry.max_retry_duration),
                    min_backoff_duration=_seconds(retry.min_backoff),
                    max_backoff_duration=_seconds(retry.max_backoff),
                    max_doublings=retry.max_doublings,
                ),
                http_target=scheduler_v1.HttpTarget(
                    uri=url,
                    http_method=scheduler_v1.HttpMethod.POST,
                    oidc_token=scheduler_v1.OidcToken(
                        service_account_email=config.defaults.service_account, audience=url
                    ),
                ),
            )
        )
    return jobs


COMPARED = (
    "description",
    "schedule",
    "time_zone",
    "attempt_deadline",
    "retry_config",
    "http_target",
)


def changed_fields(wanted: scheduler_v1.Job, existing: scheduler_v1.Job) -> list[str]:
    return [f for f in COMPARED if getattr(wanted, f) != getattr(existing, f)]


def update_mask(fields: list[str]) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=fields)
