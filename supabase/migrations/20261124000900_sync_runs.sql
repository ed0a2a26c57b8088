-- One row per function or command invocation, with an honest outcome and counts.
create table public.sync_runs (
  id uuid primary key default gen_random_uuid(),
  job text not null,                           -- mews_webhook, process_events, poll_changes, ...
  scope_id uuid,                               -- chain or enterprise, when the run has one
  status text not null default 'running'
    check (status in ('running', 'succeeded', 'partial', 'rate_limited', 'failed')),
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  counts jsonb not null default '{}'::jsonb,   -- fetched, upserted, unchanged, quarantined, ...
  error text,                                  -- redacted; never a token
  constraint sync_runs_finished check ((status = 'running') = (finished_at is null))
);
create index sync_runs_job_idx on public.sync_runs (job, started_at desc);

alter table public.sync_runs enable row level security;
grant select on public.sync_runs to authenticated;
grant all on public.sync_runs to service_role;
create policy sync_runs_read on public.sync_runs for select to authenticated
  using (scope_id = any ((select app.readable_enterprise_ids())::uuid[])
         or scope_id = any ((select app.readable_chain_ids())::uuid[]));
