-- Data quality: rule sets an admin edits, enrichment settings, per-guest facts and enrichments,
-- scores with reasons, score history, daily snapshots, duplicate suggestions.

-- Versioned rule sets per enterprise. Rules are edited only while their set is a draft;
-- enabling a set (public.quality_enable_rule_set) retires the previous one and rescores.
create table public.quality_rule_sets (
  id uuid primary key default gen_random_uuid(),
  enterprise_id uuid not null references public.enterprises (id) on delete cascade,
  version integer not null,
  status text not null default 'draft' check (status in ('draft', 'enabled', 'retired')),
  note text,
  created_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  enabled_at timestamptz,
  compiled_sql text,                           -- the scoring query, cached once the set is frozen
  unique (enterprise_id, version)
);
create unique index quality_rule_sets_one_enabled on public.quality_rule_sets (enterprise_id)
  where status = 'enabled';

create table public.quality_rules (
  id bigint generated always as identity primary key,
  rule_set_id uuid not null references public.quality_rule_sets (id) on delete cascade,
  enterprise_id uuid not null,                 -- the set's, for row-level security
  field text not null,
  kind text not null check (kind in ('required', 'email', 'phone', 'not_ota_email', 'pattern',
    'allowed_values', 'length', 'date_range', 'cross_field')),
  params jsonb not null default '{}'::jsonb,
  severity text not null default 'warning' check (severity in ('info', 'warning', 'error')),
  weight integer not null check (weight between 0 and 100),
  -- filled when the set is enabled (app.quality_freeze): what a failure costs and says
  cost numeric(10, 4),
  reason_kind text,
  message text
);
create index quality_rules_set_idx on public.quality_rules (rule_set_id);

-- Auto-enrichment rules, on or off per enterprise; pushing to Mews only where enabled.
create table public.enrichment_settings (
  enterprise_id uuid not null references public.enterprises (id) on delete cascade,
  rule text not null check (rule in ('normalize_email', 'normalize_phone', 'nationality_from_document',
                                     'language_from_mews', 'stays_from_reservations', 'company_from_reservations')),
  enabled boolean not null default true,
  push_to_mews boolean not null default false,
  updated_at timestamptz not null default now(),
  primary key (enterprise_id, rule)
);

-- What scoring needs about a guest beyond the mirror row, derived by the enrichment job.
create table public.guest_facts (
  chain_id uuid not null,
  guest_mews_id uuid not null,
  email_normalized text,
  email_valid boolean,                         -- null: no e-mail to judge
  phone_e164 text,
  phone_valid boolean,
  has_address boolean not null default false,
  has_document boolean not null default false,
  document_country text,
  enriched_nationality text,                   -- from an identity document's issuing country
  enriched_language text,                      -- from Mews' derived LanguageCode
  stay_count integer not null default 0,
  nights integer not null default 0,
  first_stay date,
  last_stay date,
  company_id uuid,                             -- the company on most of their reservations
  source_synced_at timestamptz,                -- guests.synced_at these facts were computed from
  computed_at timestamptz not null default now(),
  primary key (chain_id, guest_mews_id)
);
create index guest_facts_email_idx on public.guest_facts (chain_id, email_normalized) where email_normalized is not null;
create index guest_facts_phone_idx on public.guest_facts (chain_id, phone_e164) where phone_e164 is not null;

-- Every enriched value with its source. The mirror row is never overwritten: what staff typed
-- (or Mews holds) wins; an enriched value only fills a gap.
create table public.guest_enrichments (
  chain_id uuid not null,
  guest_mews_id uuid not null,
  field text not null,
  value text not null,
  source text not null,                        -- e.g. identity_document.IssuingCountryCode
  rule text not null,
  created_at timestamptz not null default now(),
  queued_for_push_at timestamptz,
  primary key (chain_id, guest_mews_id, field)
);

create table public.guest_scores (
  enterprise_id uuid not null,
  chain_id uuid not null,
  guest_mews_id uuid not null,
  score smallint not null check (score between 0 and 100),
  failed_rules bigint[] not null,              -- quality_rules ids: the reasons (see app.quality_reasons)
  rule_set_id uuid not null,
  scored_at timestamptz not null default now(),
  primary key (enterprise_id, guest_mews_id)
) with (fillfactor = 70);  -- rescoring rewrites rows in place (HOT): no index holds a score

create table public.guest_score_history (
  id bigint generated always as identity primary key,
  enterprise_id uuid not null,
  guest_mews_id uuid not null,
  score smallint not null,
  previous_score smallint,
  rule_set_id uuid not null,
  scored_at timestamptz not null default now()
);
create index guest_score_history_guest_idx on public.guest_score_history (enterprise_id, guest_mews_id, scored_at);

create table public.quality_daily (
  enterprise_id uuid not null,
  day date not null,
  guests integer not null,
  average numeric(5, 2) not null,
  median numeric(5, 2) not null,
  below_50 integer not null,
  complete integer not null,                   -- score 100
  primary key (enterprise_id, day)
);

create table public.guest_duplicates (
  chain_id uuid not null,
  guest_a uuid not null,
  guest_b uuid not null,
  evidence jsonb not null,                     -- [{"match": "email", "value": "..."}]
  found_at timestamptz not null default now(),
  primary key (chain_id, guest_a, guest_b),
  check (guest_a < guest_b)
);

-- row-level security: staff read their enterprises (or chains); only admins edit rules
alter table public.quality_rule_sets enable row level security;
alter table public.quality_rules enable row level security;
alter table public.enrichment_settings enable row level security;
alter table public.guest_facts enable row level security;
alter table public.guest_enrichments enable row level security;
alter table public.guest_scores enable row level security;
alter table public.guest_score_history enable row level security;
alter table public.quality_daily enable row level security;
alter table public.guest_duplicates enable row level security;

grant all on public.quality_rule_sets, public.quality_rules, public.enrichment_settings,
  public.guest_facts, public.guest_enrichments, public.guest_scores, public.guest_score_history,
  public.quality_daily, public.guest_duplicates to service_role;
grant select on public.quality_rule_sets, public.quality_rules, public.enrichment_settings,
  public.guest_facts, public.guest_enrichments, public.guest_scores, public.guest_score_history,
  public.quality_daily, public.guest_duplicates to authenticated;
grant insert, update, delete on public.quality_rules, public.enrichment_settings to authenticated;
grant insert, delete on public.quality_rule_sets to authenticated;
grant update (note) on public.quality_rule_sets to authenticated;

create policy quality_rule_sets_read on public.quality_rule_sets for select to authenticated
  using (enterprise_id = any ((select app.readable_enterprise_ids())::uuid[]));
create policy quality_rule_sets_admin_insert on public.quality_rule_sets for insert to authenticated
  with check (enterprise_id = any ((select app.admin_enterprise_ids())::uuid[]) and status = 'draft');
create policy quality_rule_sets_admin_update on public.quality_rule_sets for update to authenticated
  using (enterprise_id = any ((select app.admin_enterprise_ids())::uuid[]));
create policy quality_rule_sets_admin_delete on public.quality_rule_sets for delete to authenticated
  using (enterprise_id = any ((select app.admin_enterprise_ids())::uuid[]) and status = 'draft');

create policy quality_rules_read on public.quality_rules for select to authenticated
  using (enterprise_id = any ((select app.readable_enterprise_ids())::uuid[]));
create policy quality_rules_admin_write on public.quality_rules for all to authenticated
  using (enterprise_id = any ((select app.admin_enterprise_ids())::uuid[]))
  with check (enterprise_id = any ((select app.admin_enterprise_ids())::uuid[]));

create policy enrichment_settings_read on public.enrichment_settings for select to authenticated
  using (enterprise_id = any ((select app.readable_enterprise_ids())::uuid[]));
create policy enrichment_settings_admin_write on public.enrichment_settings for all to authenticated
  using (enterprise_id = any ((select app.admin_enterprise_ids())::uuid[]))
  with check (enterprise_id = any ((select app.admin_enterprise_ids())::uuid[]));

create policy guest_facts_read on public.guest_facts for select to authenticated
  using (chain_id = any ((select app.readable_chain_ids())::uuid[]));
create policy guest_enrichments_read on public.guest_enrichments for select to authenticated
  using (chain_id = any ((select app.readable_chain_ids())::uuid[]));
create policy guest_duplicates_read on public.guest_duplicates for select to authenticated
  using (chain_id = any ((select app.readable_chain_ids())::uuid[]));
create policy guest_scores_read on public.guest_scores for select to authenticated
  using (enterprise_id = any ((select app.readable_enterprise_ids())::uuid[]));
create policy guest_score_history_read on public.guest_score_history for select to authenticated
  using (enterprise_id = any ((select app.readable_enterprise_ids())::uuid[]));
create policy quality_daily_read on public.quality_daily for select to authenticated
  using (enterprise_id = any ((select app.readable_enterprise_ids())::uuid[]));

-- A rule is checked where it is written (admins write through PostgREST, not through our
-- Python), with the same limits as shared/quality/rules.py.
create or replace function app.quality_rule_check() returns trigger
language plpgsql set search_path = ''
as $$
declare
  v_status text;
  v_type text;
  v_other_type text;
  v_set_enterprise uuid;
begin
  if tg_op = 'DELETE' then
    select status into v_status from public.quality_rule_sets where id = old.rule_set_id;
    if v_status is distinct from 'draft' and current_user = 'authenticated' then
      raise exception 'rules of an enabled or retired rule set cannot change; create a new version'
        using errcode = '42501';
    end if;
    return old;
  end if;
  select status, enterprise_id into v_status, v_set_enterprise
    from public.quality_rule_sets where id = new.rule_set_id;
  if v_status is distinct from 'draft' and current_user = 'authenticated' then
    raise exception 'rules of an enabled or retired rule set cannot change; create a new version'
      using errcode = '42501';
  end if;
  new.enterprise_id := v_set_enterprise;
  v_type := app.quality_field_type(new.field);
  if v_type is null then
    raise exception 'unknown field %', new.field using errcode = '22023';
  end if;
  if new.kind in ('email', 'not_ota_email') and new.field <> 'email'
     or new.kind = 'phone' and new.field <> 'phone' then
    raise exception '% applies to the % field', new.kind, case when new.kind = 'phone' then 'phone' else 'email' end
      using errcode = '22023';
  end if;
  if new.kind in ('pattern', 'allowed_values', 'length') and v_type <> 'text' then
    raise exception '% applies to text fields', new.kind using errcode = '22023';
  end if;
  if new.kind = 'pattern' then
    if jsonb_typeof(new.params->'regex') <> 'string' or length(new.params->>'regex') > 200 then
      raise exception 'pattern needs a regex of at most 200 characters' using errcode = '22023';
    end if;
    if new.params->>'regex' ~ '\\[1-9]|\(\?|\([^)]*[+*?}][^)]*\)[+*?{]' then
      raise exception 'patterns may not use back-references, look-arounds or nested quantifiers'
        using errcode = '22023';
    end if;
    perform '' ~ (new.params->>'regex');  -- compiles it: an invalid pattern raises here
  elsif new.kind = 'allowed_values' then
    if jsonb_typeof(new.params->'values') <> 'array' or jsonb_array_length(new.params->'values') not between 1 and 500 then
      raise exception 'allowed_values needs 1..500 values' using errcode = '22023';
    end if;
  elsif new.kind = 'length' then
    if coalesce((new.params->>'min')::int, 0) not between 0 and 1000
       or coalesce((new.params->>'max')::int, 0) not between 0 and 1000
       or (new.params ? 'min') is false and (new.params ? 'max') is false then
      raise exception 'length needs min and/or max in 0..1000' using errcode = '22023';
    end if;
  elsif new.kind = 'date_range' then
    if v_type <> 'date' or coalesce((new.params->>'min_years_ago')::int, 0) not between 0 and 200
       or coalesce((new.params->>'max_years_ago')::int, 0) not between 0 and 200 then
      raise exception 'date_range applies to date fields, bounds in whole years 0..200' using errcode = '22023';
    end if;
  elsif new.kind = 'cross_field' then
    v_other_type := app.quality_field_type(new.params->>'other');
    if v_other_type is null or new.params->>'other' = new.field
       or coalesce(new.params->>'op', '') not in ('differs', 'equals', 'before', 'after')
       or new.params->>'op' in ('before', 'after') and (v_type <> 'date' or v_other_type <> 'date') then
      raise exception 'cross_field needs another known field and an op (differs, equals; before, after for dates)'
        using errcode = '22023';
    end if;
  end if;
  return new;
end
$$;

create or replace function app.quality_field_type(p_field text) returns text
language sql immutable set search_path = ''
as $$
  select case p_field
    when 'first_name' then 'text' when 'last_name' then 'text' when 'email' then 'text'
    when 'phone' then 'text' when 'birth_date' then 'date' when 'nationality_code' then 'text'
    when 'address' then 'bool' when 'identity_document' then 'bool' when 'language' then 'text'
    when 'title' then 'text' when 'sex' then 'text' when 'loyalty_code' then 'text'
    when 'company' then 'text' end
$$;

create trigger quality_rules_check before insert or update or delete on public.quality_rules
  for each row execute function app.quality_rule_check();
