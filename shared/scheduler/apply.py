"""Create missing jobs and update changed ones (a dry run only reports; without a client, a
dry run compares nothing and plans every job)."""

from __future__ import annotations

from dataclasses import dataclass, field

from google.cloud import scheduler_v1

from shared.scheduler.config import changed_fields, update_mask


@dataclass
class Plan:
    create: list[str] = field(default_factory=list)
    update: dict[str, list[str]] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    # a dry run without a client (no credentials): to create or update, not compared
    planned: list[str] = field(default_factory=list)


def apply_jobs(
    client: scheduler_v1.CloudSchedulerClient | None,
    parent: str,
    jobs: list[scheduler_v1.Job],
    *,
    dry_run: bool,
) -> Plan:
    if client is None:
        if not dry_run:
            raise ValueError("applying jobs needs a Cloud Scheduler client")
        return Plan(planned=[job.name for job in jobs])
    existing = {job.name: job for job in client.list_jobs(parent=parent)}
    plan = Plan()
    for job in jobs:
        current = existing.get(job.name)
        if current is None:
            plan.create.append(job.name)
            if not dry_run:
                client.create_job(parent=parent, job=job)
            continue
        fields = changed_fields(job, current)
        if not fields:
            plan.unchanged.append(job.name)
            continue
        plan.update[job.name] = fields
        if not dry_run:
            client.update_job(job=job, update_mask=update_mask(fields))
    return plan
