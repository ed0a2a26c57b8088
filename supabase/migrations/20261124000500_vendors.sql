-- Vendors: the mirror of Mews companies (chain-level, like customers).
create table public.vendors (
  chain_id uuid not null references public.chains (id),
  mews_id uuid not null,                       -- Company.Id
  name text not null,
  number numeric(20, 0),                       -- Company.Number: up to 19 digits
  is_active boolean not null default true,
  mother_company_id uuid,
  invoicing_email text,
  telephone text,
  contact_person text,
  tax_identifier text,
  iata text,
  merge_target_id uuid,
  mews_created_utc timestamptz,
  mews_updated_utc timestamptz,                -- documented optional for companies
  raw jsonb not null,
  raw_hash text not null,
  synced_at timestamptz not null default now(),
  primary key (chain_id, mews_id)
);
create index vendors_updated_idx on public.vendors (chain_id, mews_updated_utc);

alter table public.vendors enable row level security;
grant select on public.vendors to authenticated;
grant all on public.vendors to service_role;
create policy vendors_read on public.vendors for select to authenticated
  using (chain_id = any ((select app.readable_chain_ids())::uuid[]));
