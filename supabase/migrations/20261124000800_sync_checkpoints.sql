-- Where each (scope, entity) sync stands. A scope is a chain (customers, companies, addresses)
-- or an enterprise (reservations, resources). The high-water mark is a window end, moved only
-- after that window's rows commit.
create table public.sync_checkpoints (
  scope_id uuid not null,                      -- chain or enterprise id
  entity text not null,                        -- customers, companies, reservations, ...
  phase text not null default 'poll' check (phase in ('backfill', 'poll', 'reconcile')),
  high_water_utc timestamptz,                  -- end of the last committed window
  low_water_utc timestamptz,                   -- backfill: start of the oldest committed window
  state jsonb not null default '{}'::jsonb,    -- e.g. windows done while a backfill runs
  updated_at timestamptz not null default now(),
  primary key (scope_id, entity, phase)
);

create trigger sync_checkpoints_touch before update on public.sync_checkpoints
  for each row execute function app.touch_updated_at();

alter table public.sync_checkpoints enable row level security;
grant select on public.sync_checkpoints to authenticated;
grant all on public.sync_checkpoints to service_role;
create policy sync_checkpoints_read on public.sync_checkpoints for select to authenticated
  using (scope_id = any ((select app.readable_enterprise_ids())::uuid[])
         or scope_id = any ((select app.readable_chain_ids())::uuid[]));
