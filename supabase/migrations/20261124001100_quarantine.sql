-- Records that failed to parse or map, kept with the reason instead of being dropped.
create table public.quarantine (
  id bigint generated always as identity primary key,
  entity text not null,                        -- customers, companies, ..., webhook
  scope_id uuid,
  mews_id text,                                -- when the record had a readable id
  reason text not null,
  raw jsonb,
  raw_text text,                               -- when it was not even JSON
  run_id uuid references public.sync_runs (id) on delete set null,
  created_at timestamptz not null default now(),
  resolved_at timestamptz
);
create index quarantine_open_idx on public.quarantine (entity, created_at) where resolved_at is null;

alter table public.quarantine enable row level security;
grant select on public.quarantine to authenticated;
grant all on public.quarantine to service_role;
create policy quarantine_read on public.quarantine for select to authenticated
  using (scope_id = any ((select app.readable_enterprise_ids())::uuid[])
         or scope_id = any ((select app.readable_chain_ids())::uuid[]));
