-- Reservations (Mews 2023-06-06 shape) belong to an enterprise.
create table public.reservations (
  enterprise_id uuid not null references public.enterprises (id),
  mews_id uuid not null,                       -- Reservation.Id
  service_id uuid,
  account_id uuid not null,                    -- owner: a customer or a company
  account_type text not null,
  booker_id uuid,
  number text,
  state text not null,
  origin text,
  purpose text,
  scheduled_start_utc timestamptz,
  scheduled_end_utc timestamptz,
  actual_start_utc timestamptz,
  actual_end_utc timestamptz,
  cancelled_utc timestamptz,
  assigned_resource_id uuid,
  partner_company_id uuid,
  travel_agency_id uuid,
  person_count integer,
  mews_created_utc timestamptz,
  mews_updated_utc timestamptz not null,
  raw jsonb not null,
  raw_hash text not null,
  synced_at timestamptz not null default now(),
  primary key (enterprise_id, mews_id)
);
create index reservations_account_idx on public.reservations (account_id);
create index reservations_arrival_idx on public.reservations (enterprise_id, scheduled_start_utc);

alter table public.reservations enable row level security;
grant select on public.reservations to authenticated;
grant all on public.reservations to service_role;
create policy reservations_read on public.reservations for select to authenticated
  using (enterprise_id = any ((select app.readable_enterprise_ids())::uuid[]));
