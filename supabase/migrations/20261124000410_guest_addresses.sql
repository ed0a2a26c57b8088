-- Account addresses of guests (addresses/getAll), the replacement of the deprecated
-- Customer.Address.
create table public.guest_addresses (
  chain_id uuid not null references public.chains (id),
  mews_id uuid not null,                       -- Address.Id
  guest_mews_id uuid not null,                 -- Address.AccountId
  line1 text,
  line2 text,
  city text,
  postal_code text,
  country_code text,
  country_subdivision_code text,
  is_active boolean not null default true,
  mews_updated_utc timestamptz,
  raw jsonb not null,
  raw_hash text not null,
  synced_at timestamptz not null default now(),
  primary key (chain_id, mews_id)
);
create index guest_addresses_guest_idx on public.guest_addresses (guest_mews_id);

alter table public.guest_addresses enable row level security;
grant select on public.guest_addresses to authenticated;
grant all on public.guest_addresses to service_role;
create policy guest_addresses_read on public.guest_addresses for select to authenticated
  using (chain_id = any ((select app.readable_chain_ids())::uuid[]));
