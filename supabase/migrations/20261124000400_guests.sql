-- Guests: the mirror of Mews customers. Customers belong to a chain (shared by its
-- enterprises), so rows are keyed by (chain_id, mews_id).
create table public.guests (
  chain_id uuid not null references public.chains (id),
  mews_id uuid not null,                       -- Customer.Id
  number text,                                 -- Customer.Number: up to 19 digits, kept as text
  title text,
  sex text,
  first_name text,
  last_name text not null,
  second_last_name text,
  nationality_code text,
  preferred_language_code text,
  language_code text,
  birth_date date,
  birth_place text,
  birth_country_code text,
  occupation text,
  email text,
  has_ota_email boolean not null default false,
  phone text,
  loyalty_code text,
  tax_identification_number text,
  notes text,
  car_registration_number text,
  dietary_requirements text,
  company_id uuid,
  address_id uuid,
  classifications text[] not null default '{}',
  options text[] not null default '{}',
  preferred_space_features text[] not null default '{}',
  merge_target_id uuid,
  is_active boolean not null default true,
  creator_profile_id uuid,
  updater_profile_id uuid,
  mews_created_utc timestamptz,
  mews_updated_utc timestamptz not null,       -- Customer.UpdatedUtc: the order clock
  raw jsonb not null,                          -- the customer exactly as Mews sent it
  raw_hash text not null,                      -- md5 of raw: breaks UpdatedUtc ties
  synced_at timestamptz not null default now(),
  primary key (chain_id, mews_id)
);
create unique index guests_mews_id_key on public.guests (mews_id);
create index guests_updated_idx on public.guests (chain_id, mews_updated_utc);
create index guests_email_idx on public.guests (lower(email)) where email is not null;

alter table public.guests enable row level security;
grant select on public.guests to authenticated;
grant all on public.guests to service_role;

create policy guests_read on public.guests for select to authenticated
  using (chain_id = any ((select app.readable_chain_ids())::uuid[]));
