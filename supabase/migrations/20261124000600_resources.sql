-- Resources (rooms, beds, ...) belong to an enterprise.
create table public.resources (
  enterprise_id uuid not null references public.enterprises (id),
  mews_id uuid not null,                       -- Resource.Id
  name text not null,
  state text not null,
  is_active boolean not null default true,
  parent_resource_id uuid,
  floor_number text,
  mews_created_utc timestamptz,
  mews_updated_utc timestamptz not null,
  raw jsonb not null,
  raw_hash text not null,
  synced_at timestamptz not null default now(),
  primary key (enterprise_id, mews_id)
);

alter table public.resources enable row level security;
grant select on public.resources to authenticated;
grant all on public.resources to service_role;
create policy resources_read on public.resources for select to authenticated
  using (enterprise_id = any ((select app.readable_enterprise_ids())::uuid[]));
