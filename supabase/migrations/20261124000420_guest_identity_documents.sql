-- Identity documents of guests (identityDocuments/getAll). Mews offers no time filter for them:
-- they are refetched per changed customer.
create table public.guest_identity_documents (
  chain_id uuid not null references public.chains (id),
  mews_id uuid not null,                       -- IdentityDocument.Id
  guest_mews_id uuid not null,                 -- IdentityDocument.CustomerId
  type text not null,
  number text,                                 -- may be '' where numbers are not collected
  expiration_date date,
  issuance_date date,
  issuing_country_code text,
  is_verified boolean not null default false,
  mews_updated_utc timestamptz,                -- Mews has no clock here: always null
  raw jsonb not null,
  raw_hash text not null,
  synced_at timestamptz not null default now(),
  primary key (chain_id, mews_id)
);
create index guest_identity_documents_guest_idx on public.guest_identity_documents (guest_mews_id);

alter table public.guest_identity_documents enable row level security;
grant select on public.guest_identity_documents to authenticated;
grant all on public.guest_identity_documents to service_role;
create policy guest_identity_documents_read on public.guest_identity_documents
  for select to authenticated
  using (chain_id = any ((select app.readable_chain_ids())::uuid[]));
