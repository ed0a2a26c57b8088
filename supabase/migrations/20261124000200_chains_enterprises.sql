-- Tenancy: Mews chains group enterprises (properties) and share customer profiles.
create table public.chains (
  id uuid primary key,                 -- Mews ChainId
  name text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table public.enterprises (
  id uuid primary key,                 -- Mews EnterpriseId
  chain_id uuid not null references public.chains (id),
  name text not null,
  time_zone text,                      -- Enterprise.TimeZoneIdentifier (IANA)
  default_language_code text,
  mews_created_utc timestamptz,        -- where a first load walks back to
  raw jsonb,                           -- configuration/get Enterprise as Mews sent it
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index enterprises_chain_idx on public.enterprises (chain_id);

create trigger chains_touch before update on public.chains
  for each row execute function app.touch_updated_at();
create trigger enterprises_touch before update on public.enterprises
  for each row execute function app.touch_updated_at();

alter table public.chains enable row level security;
alter table public.enterprises enable row level security;

grant select on public.chains, public.enterprises to authenticated;
grant all on public.chains, public.enterprises to service_role;
-- policies come with memberships (next migration): who may read depends on them
