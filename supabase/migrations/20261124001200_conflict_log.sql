-- Two-way sync decisions staff should see: Mews won over a local edit, or Mews refused a push.
create table public.conflict_log (
  id bigint generated always as identity primary key,
  chain_id uuid not null,
  guest_mews_id uuid not null,
  field text,                                  -- null when the whole push was refused
  local_value jsonb,
  mews_value jsonb,
  resolution text not null check (resolution in ('mews_won', 'local_won', 'refused_by_mews')),
  detail text,                                 -- e.g. the Mews message for a refusal
  local_edited_at timestamptz,
  mews_updated_utc timestamptz,
  created_at timestamptz not null default now()
);
create index conflict_log_guest_idx on public.conflict_log (chain_id, guest_mews_id, created_at desc);

alter table public.conflict_log enable row level security;
grant select on public.conflict_log to authenticated;
grant all on public.conflict_log to service_role;
create policy conflict_log_read on public.conflict_log for select to authenticated
  using (chain_id = any ((select app.readable_chain_ids())::uuid[]));
