-- The schema as the migrations leave it: generated from a freshly migrated database's catalogue
-- by `make schema` (deploy/schema_sql.py). Do not edit: change the schema with a new migration in
-- supabase/migrations/, then run `make schema`; tests/db/test_schema_sql.py fails while this file
-- is stale. What Supabase provides (roles, the auth schema) is in supabase/bootstrap/.
-- Each object's grants list every role but its owner that holds a privilege on it (`public`:
-- every role); a function without a grant to `public` is executable by the listed roles only.

-- 67 migrations applied; the last: 20261206170100_duplicate_inputs_covered.sql


-- ================================================================================================
-- schema app
-- ================================================================================================

create schema app;
grant usage on schema app to authenticated;
grant usage on schema app to service_role;

-- app.duplicate_counts
create table app.duplicate_counts (
    chain_id uuid not null,
    key bigint not null,
    held integer not null
);
alter table app.duplicate_counts add constraint duplicate_counts_pkey PRIMARY KEY (chain_id, key);
alter table app.duplicate_counts enable row level security;
grant select, insert, update, delete on table app.duplicate_counts to service_role;

-- app.duplicate_guests
create table app.duplicate_guests (
    chain_id uuid not null,
    guest_mews_id uuid not null,
    digest bigint not null,
    keys bigint[] default '{}'::bigint[] not null
);
alter table app.duplicate_guests add constraint duplicate_guests_pkey PRIMARY KEY (chain_id, guest_mews_id);
alter table app.duplicate_guests add constraint duplicate_guests_keys_max_64 CHECK (cardinality(keys) <= 64);
alter table app.duplicate_guests enable row level security;
grant select, insert, update, delete on table app.duplicate_guests to service_role;

-- app.duplicate_keys
create table app.duplicate_keys (
    key bigint not null,
    guest_mews_id uuid not null
);
CREATE INDEX duplicate_keys_key_guest_idx ON app.duplicate_keys USING btree (key, guest_mews_id);
alter table app.duplicate_keys enable row level security;
grant select, insert, update, delete on table app.duplicate_keys to service_role;

-- app.duplicate_models
create table app.duplicate_models (
    chain_id uuid not null,
    model jsonb not null,
    guests integer not null,
    counts_digest text,
    estimated_at timestamp with time zone default now() not null,
    updated_at timestamp with time zone default now() not null
);
alter table app.duplicate_models add constraint duplicate_models_pkey PRIMARY KEY (chain_id);
alter table app.duplicate_models add constraint duplicate_models_counts_digest_max_64_chars CHECK (char_length(counts_digest) <= 64);
alter table app.duplicate_models add constraint duplicate_models_guests_check CHECK (guests >= 0);
alter table app.duplicate_models add constraint duplicate_models_model_max_65536_bytes CHECK (pg_column_size(model) <= 65536);
alter table app.duplicate_models enable row level security;
grant select, insert, update, delete on table app.duplicate_models to service_role;

-- app.quality_chain_state
create table app.quality_chain_state (
    chain_id uuid not null,
    facts_scanned_from timestamp with time zone not null
);
alter table app.quality_chain_state add constraint quality_chain_state_pkey PRIMARY KEY (chain_id);
alter table app.quality_chain_state add constraint quality_chain_state_chain_id_fkey FOREIGN KEY (chain_id) REFERENCES public.chains(id) ON DELETE CASCADE;
alter table app.quality_chain_state enable row level security;
grant select, insert, update on table app.quality_chain_state to service_role;

-- app.quality_compiled
create table app.quality_compiled (
    rule_set_id uuid not null,
    sql text not null,
    compiled_at timestamp with time zone default now() not null
);
alter table app.quality_compiled add constraint quality_compiled_pkey PRIMARY KEY (rule_set_id);
alter table app.quality_compiled add constraint quality_compiled_rule_set_id_fkey FOREIGN KEY (rule_set_id) REFERENCES public.quality_rule_sets(id) ON DELETE CASCADE;
alter table app.quality_compiled add constraint quality_compiled_sql_max_16777216_chars CHECK (char_length(sql) <= 16777216) NOT VALID;
alter table app.quality_compiled enable row level security;

-- app.quality_duplicate_queue
create table app.quality_duplicate_queue (
    chain_id uuid not null,
    guest_mews_id uuid not null,
    old_keys jsonb default '[]'::jsonb not null,
    queued_at timestamp with time zone default now() not null
);
alter table app.quality_duplicate_queue add constraint quality_duplicate_queue_pkey PRIMARY KEY (chain_id, guest_mews_id);
alter table app.quality_duplicate_queue add constraint quality_duplicate_queue_old_keys_max_1048576_bytes CHECK (pg_column_size(old_keys) <= 1048576) NOT VALID;
alter table app.quality_duplicate_queue enable row level security;
grant select, insert, update, delete on table app.quality_duplicate_queue to service_role;

-- app.quality_profile
create view app.quality_profile with (security_invoker=on) as
 SELECT g.chain_id,
    g.mews_id,
    g.is_active,
    g.first_name,
    g.last_name,
    g.email,
    f.email_valid,
    g.has_ota_email AS email_ota,
    g.phone,
    f.phone_valid,
    g.birth_date,
    g.nationality_code,
    f.enriched_nationality,
    COALESCE(f.has_address, false) AS address,
    COALESCE(f.has_document, false) AS identity_document,
    g.preferred_language_code AS language,
    f.enriched_language,
    g.title,
    g.sex,
    g.loyalty_code,
    COALESCE(g.company_id, f.company_id)::text AS company
   FROM public.guests g
     LEFT JOIN public.guest_facts f ON f.chain_id = g.chain_id AND f.guest_mews_id = g.mews_id;
grant select on table app.quality_profile to service_role;

create sequence app.quality_score_changes;

-- app.admin_chain_ids()
CREATE OR REPLACE FUNCTION app.admin_chain_ids()
 RETURNS uuid[]
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO ''
AS $function$
  select coalesce(array_agg(distinct m.chain_id), '{}')
  from public.memberships m
  where m.user_id = auth.uid() and m.role = 'admin' and m.chain_id is not null
$function$;
grant execute on function app.admin_chain_ids() to authenticated;
grant execute on function app.admin_chain_ids() to service_role;

-- app.admin_enterprise_ids()
CREATE OR REPLACE FUNCTION app.admin_enterprise_ids()
 RETURNS uuid[]
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO ''
AS $function$
  select coalesce(array_agg(distinct e.id), '{}')
  from public.memberships m
  join public.enterprises e on e.id = m.enterprise_id or e.chain_id = m.chain_id
  where m.user_id = auth.uid() and m.role = 'admin'
$function$;
grant execute on function app.admin_enterprise_ids() to authenticated;
grant execute on function app.admin_enterprise_ids() to service_role;

-- app.analyze_stale(jsonb)
CREATE OR REPLACE FUNCTION app.analyze_stale(p_tables jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_entry record;
  v_name text;
  v_table regclass;
  v_reltuples double precision;
  v_analyzed_before boolean;
  v_modified bigint;
  v_done text[] := '{}';
  v_checked integer := 0;
begin
  if jsonb_typeof(p_tables) is distinct from 'object' then
    raise exception 'tables: an object of table name -> rows written (or null)' using errcode = '22023';
  end if;
  for v_entry in select key, value from jsonb_each(p_tables) order by key loop
    v_name := case when v_entry.key like '%.%' then v_entry.key else 'public.' || v_entry.key end;
    if split_part(v_name, '.', 1) not in ('public', 'app') or v_name !~ '^[a-z_]+\.[a-z0-9_]+$' then
      raise exception 'analyze_tables: % is not a table of public or app', v_entry.key using errcode = '22023';
    end if;
    v_table := to_regclass(v_name);
    select c.reltuples into v_reltuples from pg_catalog.pg_class c
     where c.oid = v_table and c.relkind in ('r', 'p');
    if not found then
      raise exception 'analyze_tables: no table %', v_entry.key using errcode = '22023';
    end if;
    v_checked := v_checked + 1;
    select s.last_analyze is not null or s.last_autoanalyze is not null, s.n_mod_since_analyze
      into v_analyzed_before, v_modified
      from pg_catalog.pg_stat_user_tables s where s.relid = v_table;
    v_modified := greatest(coalesce(v_modified, 0),
                           case when jsonb_typeof(v_entry.value) = 'number' then (v_entry.value #>> '{}')::bigint end);
    if v_reltuples < 0 or not coalesce(v_analyzed_before, false)
       or v_modified >= least(10000, greatest(1, 0.1 * v_reltuples)) then
      execute format('analyze %s', v_table);
      v_done := v_done || v_name;
    end if;
  end loop;
  return jsonb_build_object('checked', v_checked, 'analyzed', to_jsonb(v_done));
end
$function$;

-- app.caller_is_trusted()
CREATE OR REPLACE FUNCTION app.caller_is_trusted()
 RETURNS boolean
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select app.caller_role() = 'service_role'
      or (app.caller_role() not in ('anon', 'authenticated', 'authenticator')
          and pg_catalog.pg_has_role(app.caller_role(),
                                     (select n.nspowner from pg_catalog.pg_namespace n where n.nspname = 'app'),
                                     'MEMBER'))
$function$;

-- app.caller_role()
CREATE OR REPLACE FUNCTION app.caller_role()
 RETURNS text
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select coalesce(nullif(current_setting('role', true), 'none'), session_user::text)
$function$;

-- app.duplicate_decision_holds(text,text,text,text,text)
CREATE OR REPLACE FUNCTION app.duplicate_decision_holds(p_decision text, p_fingerprint_a text, p_fingerprint_b text, p_now_a text, p_now_b text)
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO ''
AS $function$
  select case
    when p_decision is null then false
    when p_decision = 'same' then true
    else coalesce(p_fingerprint_a = p_now_a and p_fingerprint_b = p_now_b, false)
  end
$function$;
grant execute on function app.duplicate_decision_holds(text,text,text,text,text) to authenticated;
grant execute on function app.duplicate_decision_holds(text,text,text,text,text) to service_role;

-- app.duplicate_evidence_best_first(jsonb)
CREATE OR REPLACE FUNCTION app.duplicate_evidence_best_first(p_evidence jsonb)
 RETURNS jsonb
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO ''
AS $function$
  select case when jsonb_typeof(p_evidence) = 'array' then (
    select coalesce(jsonb_agg(e.value order by
             case when jsonb_typeof(e.value->'weight') = 'number' then (e.value->>'weight')::float8 end
             desc nulls last, e.ordinality), '[]'::jsonb)
    from jsonb_array_elements(p_evidence) with ordinality as e(value, ordinality))
  else p_evidence end
$function$;
grant execute on function app.duplicate_evidence_best_first(jsonb) to authenticated;
grant execute on function app.duplicate_evidence_best_first(jsonb) to service_role;

-- app.duplicate_input(public.guests,public.guest_facts)
CREATE OR REPLACE FUNCTION app.duplicate_input(g public.guests, f public.guest_facts)
 RETURNS jsonb
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO ''
AS $function$
  select jsonb_build_array(g.mews_id, g.first_name, g.last_name, g.birth_date,
                           case when not g.has_ota_email then f.email_normalized end, f.phone_e164)
$function$;
grant execute on function app.duplicate_input(public.guests,public.guest_facts) to service_role;

-- app.duplicate_keys_replace(uuid,uuid[],bigint[],text[],boolean)
CREATE OR REPLACE FUNCTION app.duplicate_keys_replace(p_chain_id uuid, p_ids uuid[], p_digests bigint[], p_keys text[], p_index boolean DEFAULT true)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_rows integer;
begin
  if coalesce(cardinality(p_ids), 0) <> coalesce(cardinality(p_digests), 0)
     or coalesce(cardinality(p_ids), 0) <> coalesce(cardinality(p_keys), 0) then
    raise exception 'p_ids, p_digests and p_keys must hold one entry per guest' using errcode = '22023';
  end if;
  -- each old key looked up by (key, guest): one index entry each, however common the key
  delete from app.duplicate_keys k
   where k.ctid = any (array(
     select x.ctid
     from app.duplicate_guests d
     cross join lateral unnest(d.keys) as o(key)
     cross join lateral (select k2.ctid from app.duplicate_keys k2
                          where k2.key = o.key and k2.guest_mews_id = d.guest_mews_id) x
     where d.chain_id = p_chain_id and d.guest_mews_id = any (p_ids)));
  insert into app.duplicate_guests as d (chain_id, guest_mews_id, digest, keys)
  select p_chain_id, n.id, n.digest, coalesce(string_to_array(n.keys, ' ')::bigint[], '{}')
  from unnest(p_ids, p_digests, p_keys) as n(id, digest, keys)
  on conflict (chain_id, guest_mews_id) do update set digest = excluded.digest, keys = excluded.keys;
  get diagnostics v_rows = row_count;
  if p_index then
    insert into app.duplicate_keys (key, guest_mews_id)
    select k.key, n.id
    from unnest(p_ids, p_keys) as n(id, keys),
         unnest(string_to_array(n.keys, ' ')::bigint[]) as k(key)
    order by k.key;
  end if;
  return v_rows;
end
$function$;
grant execute on function app.duplicate_keys_replace(uuid,uuid[],bigint[],text[],boolean) to service_role;

-- app.duplicate_may_decide(uuid)
CREATE OR REPLACE FUNCTION app.duplicate_may_decide(p_chain_id uuid)
 RETURNS boolean
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO ''
AS $function$
  select coalesce(
    app.caller_is_trusted()
    or (app.caller_role() = 'authenticated' and auth.uid() is not null
        and p_chain_id = any (app.readable_chain_ids())),
    false)
$function$;

-- app.event_inbox_redact()
CREATE OR REPLACE FUNCTION app.event_inbox_redact()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
begin
  new.body_raw := app.redact_body(new.body_raw);
  if new.body is not null then
    new.body := app.redact_jsonb(new.body);
  end if;
  return new;
end
$function$;

-- app.guarded_upsert_records(regclass,regprocedure,text,uuid,jsonb,integer)
CREATE OR REPLACE FUNCTION app.guarded_upsert_records(p_table regclass, p_derive regprocedure, p_entity text, p_scope_id uuid, p_records jsonb, p_max_records integer DEFAULT 1000)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_keys text;
  v_cols text[];
  v_updates text;
  v_result jsonb;
begin
  if p_records is null or jsonb_typeof(p_records) <> 'array' then
    raise exception 'p_records must be a JSON array of Mews records' using errcode = '22023';
  end if;
  if jsonb_array_length(p_records) > p_max_records then
    raise exception 'a page holds at most % records, got %', p_max_records, jsonb_array_length(p_records)
      using errcode = '22023';
  end if;
  -- a mirror write may lose its last fraction of a second in a crash, never a checkpoint (above)
  perform set_config('synchronous_commit', 'off', true);

  select string_agg(quote_ident(a.attname), ', ' order by array_position(i.indkey::int2[], a.attnum))
    into v_keys
  from pg_catalog.pg_index i
  join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = any (i.indkey)
  where i.indrelid = p_table and i.indisprimary;

  select array_agg(a.name order by a.ord) into v_cols
  from pg_catalog.pg_proc p
  cross join lateral unnest(p.proargnames, p.proargmodes) with ordinality as a(name, mode, ord)
  where p.oid = p_derive and a.mode = 't';
  if v_keys is null or v_cols is null or not 'raw' = any (v_cols) then
    raise exception '% cannot write % (no primary key, or no raw column derived)', p_derive, p_table
      using errcode = '22023';
  end if;
  v_cols := v_cols || array['raw_hash', 'synced_at'];

  select string_agg(format('%1$I = excluded.%1$I', c), ', ') into v_updates
  from unnest(v_cols) as c;

  execute format($f$
    with derived as (
      select d.*, md5(d.raw::text) as raw_hash, now() as synced_at from %4$s($2, $1) as d
    ),
    incoming as (
      select distinct on (%1$s) *
      from derived
      order by %1$s, coalesce(mews_updated_utc, '-infinity') desc, raw_hash desc
    ),
    written as (
      insert into %5$s as t (%2$s)
      select %2$s from incoming
      on conflict (%1$s) do update set %3$s
      where excluded.raw_hash is distinct from t.raw_hash
        and ((excluded.mews_updated_utc is null and t.mews_updated_utc is null)
             or (coalesce(excluded.mews_updated_utc, '-infinity'), excluded.raw_hash)
                > (coalesce(t.mews_updated_utc, '-infinity'), t.raw_hash))
      returning (xmax = 0) as inserted
    ),
    resolved as (
      update public.quarantine q
         set resolved_at = now()
       where q.entity = $3
         and q.resolved_at is null
         and (q.scope_id is null or $2 is null or q.scope_id = $2)
         and q.mews_id in (select i.mews_id::text from incoming i)
      returning 1
    )
    select jsonb_build_object(
      'received', jsonb_array_length($1),
      'inserted', count(*) filter (where inserted),
      'updated', count(*) filter (where not inserted),
      'unchanged', (select count(*) from incoming) - count(*),
      'resolved', (select count(*) from resolved)
    ) from written
  $f$, v_keys, (select string_agg(quote_ident(c), ', ') from unnest(v_cols) as c), v_updates,
       p_derive::oid::regproc, p_table)
  into v_result
  using p_records, p_scope_id, p_entity;
  return v_result;
end
$function$;
grant execute on function app.guarded_upsert_records(regclass,regprocedure,text,uuid,jsonb,integer) to service_role;

-- app.guest_addresses_from_records(uuid,jsonb)
CREATE OR REPLACE FUNCTION app.guest_addresses_from_records(p_scope_id uuid, p_records jsonb)
 RETURNS TABLE(chain_id uuid, mews_id uuid, guest_mews_id uuid, line1 text, line2 text, city text, postal_code text, country_code text, country_subdivision_code text, is_active boolean, mews_updated_utc timestamp with time zone, raw jsonb)
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select coalesce(r."ChainId", p_scope_id), r."Id", r."AccountId", r."Line1", r."Line2", r."City",
         r."PostalCode", r."CountryCode", r."CountrySubdivisionCode",
         case when e.raw ? 'IsActive' then r."IsActive" else true end,
         (case when left(r."UpdatedUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."UpdatedUtc"
               when length(r."UpdatedUtc") > 26 then regexp_replace(r."UpdatedUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."UpdatedUtc" end)::timestamptz,
         e.raw
  from jsonb_array_elements(p_records) as e(raw)
  cross join lateral jsonb_to_record(e.raw) as r(
    "Id" uuid, "AccountId" uuid, "ChainId" uuid, "AccountType" text, "Line1" text, "Line2" text,
    "City" text, "PostalCode" text, "CountryCode" text, "CountrySubdivisionCode" text,
    "IsActive" boolean, "UpdatedUtc" text)
  where coalesce(r."AccountType", 'Customer') = 'Customer' and r."AccountId" is not null
$function$;
grant execute on function app.guest_addresses_from_records(uuid,jsonb) to service_role;

-- app.guest_duplicates_hold_back_decided()
CREATE OR REPLACE FUNCTION app.guest_duplicates_hold_back_decided()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
begin
  -- the decisions of the pairs written first (a join), the rule then for those only
  -- (set-based: both guests' fingerprints of now from one join, not a query per pair)
  with decided as materialized (
    select x.chain_id, x.guest_a, x.guest_b,
           app.duplicate_decision_holds(
             x.decision, x.fingerprint_a, x.fingerprint_b,
             app.guest_match_fingerprint_of(ga.first_name, ga.last_name, ga.birth_date,
                                            ga.has_ota_email, fa.email_normalized, fa.phone_e164),
             app.guest_match_fingerprint_of(gb.first_name, gb.last_name, gb.birth_date,
                                            gb.has_ota_email, fb.email_normalized, fb.phone_e164)
           ) as holds
    from written w
    join public.duplicate_decisions x
      on x.chain_id = w.chain_id and x.guest_a = w.guest_a and x.guest_b = w.guest_b
    left join public.guests ga on ga.chain_id = x.chain_id and ga.mews_id = x.guest_a
    left join public.guest_facts fa on fa.chain_id = x.chain_id and fa.guest_mews_id = x.guest_a
    left join public.guests gb on gb.chain_id = x.chain_id and gb.mews_id = x.guest_b
    left join public.guest_facts fb on fb.chain_id = x.chain_id and fb.guest_mews_id = x.guest_b)
  delete from public.guest_duplicates d
   using decided x
   where d.chain_id = x.chain_id and d.guest_a = x.guest_a and d.guest_b = x.guest_b and x.holds;
  return null;
end
$function$;

-- app.guest_identity_documents_from_records(uuid,jsonb)
CREATE OR REPLACE FUNCTION app.guest_identity_documents_from_records(p_scope_id uuid, p_records jsonb)
 RETURNS TABLE(chain_id uuid, mews_id uuid, guest_mews_id uuid, type text, number text, expiration_date date, issuance_date date, issuing_country_code text, is_verified boolean, mews_updated_utc timestamp with time zone, raw jsonb)
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select p_scope_id, r."Id", r."CustomerId", r."Type",
         case when e.raw ? 'Number' then r."Number" else '' end,
         (case when left(r."ExpirationDate", 1) between '0' and '9'
               then split_part(r."ExpirationDate", 'T', 1)
               else 'not a Mews date: ' || r."ExpirationDate" end)::date,
         (case when left(r."IssuanceDate", 1) between '0' and '9'
               then split_part(r."IssuanceDate", 'T', 1)
               else 'not a Mews date: ' || r."IssuanceDate" end)::date,
         r."IssuingCountryCode", case when e.raw ? 'IsVerified' then r."IsVerified" else false end,
         null::timestamptz, e.raw
  from jsonb_array_elements(p_records) as e(raw)
  cross join lateral jsonb_to_record(e.raw) as r(
    "Id" uuid, "CustomerId" uuid, "Type" text, "Number" text, "ExpirationDate" text,
    "IssuanceDate" text, "IssuingCountryCode" text, "IsVerified" boolean)
$function$;
grant execute on function app.guest_identity_documents_from_records(uuid,jsonb) to service_role;

-- app.guest_match_fingerprint(uuid,uuid)
CREATE OR REPLACE FUNCTION app.guest_match_fingerprint(p_chain_id uuid, p_guest uuid)
 RETURNS text
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select app.guest_match_fingerprint_of(g.first_name, g.last_name, g.birth_date, g.has_ota_email,
                                        f.email_normalized, f.phone_e164)
  from public.guests g
  left join public.guest_facts f on f.chain_id = g.chain_id and f.guest_mews_id = g.mews_id
  where g.chain_id = p_chain_id and g.mews_id = p_guest
$function$;
grant execute on function app.guest_match_fingerprint(uuid,uuid) to authenticated;
grant execute on function app.guest_match_fingerprint(uuid,uuid) to service_role;

-- app.guest_match_fingerprint_of(text,text,date,boolean,text,text)
CREATE OR REPLACE FUNCTION app.guest_match_fingerprint_of(p_first_name text, p_last_name text, p_birth_date date, p_has_ota_email boolean, p_email_normalized text, p_phone_e164 text)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO ''
AS $function$
  select md5(jsonb_build_object(
           'first_name', p_first_name, 'last_name', p_last_name, 'birth_date', p_birth_date,
           'email', case when not p_has_ota_email then p_email_normalized end,
           'phone', p_phone_e164)::text)
$function$;
grant execute on function app.guest_match_fingerprint_of(text,text,date,boolean,text,text) to authenticated;
grant execute on function app.guest_match_fingerprint_of(text,text,date,boolean,text,text) to service_role;

-- app.guests_from_records(uuid,jsonb)
CREATE OR REPLACE FUNCTION app.guests_from_records(p_scope_id uuid, p_records jsonb)
 RETURNS TABLE(chain_id uuid, mews_id uuid, number text, title text, sex text, first_name text, last_name text, second_last_name text, nationality_code text, preferred_language_code text, language_code text, birth_date date, birth_place text, birth_country_code text, occupation text, email text, has_ota_email boolean, phone text, loyalty_code text, tax_identification_number text, notes text, car_registration_number text, dietary_requirements text, company_id uuid, address_id uuid, classifications text[], options text[], preferred_space_features text[], merge_target_id uuid, is_active boolean, creator_profile_id uuid, updater_profile_id uuid, mews_created_utc timestamp with time zone, mews_updated_utc timestamp with time zone, raw jsonb)
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select r."ChainId", r."Id", r."Number", r."Title", r."Sex", r."FirstName", r."LastName",
         r."SecondLastName", r."NationalityCode", r."PreferredLanguageCode", r."LanguageCode",
         (case when left(r."BirthDate", 1) between '0' and '9' then split_part(r."BirthDate", 'T', 1)
               else 'not a Mews date: ' || r."BirthDate" end)::date,
         r."BirthPlace", r."BirthCountryCode", r."Occupation", r."Email",
         case when e.raw ? 'HasOtaEmail' then r."HasOtaEmail" else false end,
         r."Phone", r."LoyaltyCode", r."TaxIdentificationNumber", r."Notes",
         r."CarRegistrationNumber", r."DietaryRequirements", r."CompanyId", r."AddressId",
         coalesce(r."Classifications", '{}'), coalesce(r."Options", '{}'),
         coalesce(r."PreferredSpaceFeatures", '{}'), r."MergeTargetId",
         case when e.raw ? 'IsActive' then r."IsActive" else true end, r."CreatorProfileId",
         r."UpdaterProfileId",
         (case when left(r."CreatedUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."CreatedUtc"
               when length(r."CreatedUtc") > 26 then regexp_replace(r."CreatedUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."CreatedUtc" end)::timestamptz,
         (case when left(r."UpdatedUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."UpdatedUtc"
               when length(r."UpdatedUtc") > 26 then regexp_replace(r."UpdatedUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."UpdatedUtc" end)::timestamptz,
         e.raw
  from jsonb_array_elements(p_records) as e(raw)
  cross join lateral jsonb_to_record(e.raw) as r(
    "Id" uuid, "ChainId" uuid, "Number" text, "Title" text, "Sex" text, "FirstName" text,
    "LastName" text, "SecondLastName" text, "NationalityCode" text,
    "PreferredLanguageCode" text, "LanguageCode" text, "BirthDate" text, "BirthPlace" text,
    "BirthCountryCode" text, "Occupation" text, "Email" text, "HasOtaEmail" boolean,
    "Phone" text, "LoyaltyCode" text, "TaxIdentificationNumber" text, "Notes" text,
    "CarRegistrationNumber" text, "DietaryRequirements" text, "CompanyId" uuid,
    "AddressId" uuid, "Classifications" text[], "Options" text[],
    "PreferredSpaceFeatures" text[], "MergeTargetId" uuid, "IsActive" boolean,
    "CreatorProfileId" uuid, "UpdaterProfileId" uuid, "CreatedUtc" text, "UpdatedUtc" text)
$function$;
grant execute on function app.guests_from_records(uuid,jsonb) to service_role;

-- app.guests_mark_local_edit()
CREATE OR REPLACE FUNCTION app.guests_mark_local_edit()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_changes jsonb := '{}'::jsonb;
  v_bases jsonb := '{}'::jsonb;
  v_new jsonb;
  v_old jsonb;
  v_col text;
begin
  if current_user <> 'authenticated' then
    return new;  -- sync writes (service_role) are Mews' data, not edits
  end if;
  v_new := to_jsonb(new);
  v_old := to_jsonb(old);
  foreach v_col in array array['first_name', 'last_name', 'email', 'phone', 'birth_date',
    'nationality_code', 'preferred_language_code', 'title', 'sex', 'notes', 'loyalty_code',
    'occupation', 'car_registration_number', 'dietary_requirements'] loop
    if v_new->v_col is distinct from v_old->v_col then
      v_changes := v_changes || jsonb_build_object(v_col, v_new->v_col);
      v_bases := v_bases || jsonb_build_object(v_col, v_old->v_col);
    end if;
  end loop;
  if v_changes = '{}'::jsonb then
    return new;
  end if;
  new.local_changes := coalesce(old.local_changes, '{}'::jsonb) || v_changes;
  -- right-hand side wins: a base already recorded for a column is kept
  new.local_base := v_bases || coalesce(old.local_base, '{}'::jsonb);
  new.local_base_updated_utc := case when old.push_status = 'pending'
                                     then old.local_base_updated_utc else old.mews_updated_utc end;
  new.local_edited_at := clock_timestamp();
  new.push_status := 'pending';
  new.push_error := null;
  return new;
end
$function$;

-- app.guests_push_notify()
CREATE OR REPLACE FUNCTION app.guests_push_notify()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
begin
  perform pg_notify('guesthub_push', new.chain_id::text);
  return null;
end
$function$;

-- app.holder_gone(text)
CREATE OR REPLACE FUNCTION app.holder_gone(p_holder text)
 RETURNS boolean
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  select case when p_holder ~ '@[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
              then pg_catalog.pg_try_advisory_xact_lock(
                     app.session_key(substring(p_holder from '@([0-9a-f-]{36})$')::uuid))
              else false end
$function$;
grant execute on function app.holder_gone(text) to service_role;

-- app.holder_run(text)
CREATE OR REPLACE FUNCTION app.holder_run(p_holder text)
 RETURNS public.sync_runs
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select r.* from public.sync_runs r
   where p_holder ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
     and r.id = p_holder::uuid
$function$;
grant execute on function app.holder_run(text) to service_role;

-- app.inbox_notify()
CREATE OR REPLACE FUNCTION app.inbox_notify()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
begin
  perform pg_notify('guesthub_inbox',
                    coalesce(new.enterprise_id::text, new.integration_id::text, ''));
  return null;
end
$function$;

-- app.inbox_unrouted()
CREATE OR REPLACE FUNCTION app.inbox_unrouted()
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select jsonb_build_object(
    'events', count(*),
    'enterprises', coalesce(jsonb_agg(distinct i.enterprise_id) filter (where i.enterprise_id is not null), '[]'::jsonb))
  from public.event_inbox i
  where i.status in ('pending', 'failed', 'processing')
    and (i.enterprise_id is not null or i.integration_id is not null)
    and not exists (
      select 1 from public.connections c
       where c.status = 'active'
         and (i.enterprise_id = any (c.enterprise_ids)
              or (i.integration_id = c.integration_id)))
$function$;
grant execute on function app.inbox_unrouted() to service_role;

-- app.is_secret_key(text)
CREATE OR REPLACE FUNCTION app.is_secret_key(p_key text)
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO ''
AS $function$ select lower(p_key) = any (select lower(k) from unnest(app.secret_keys()) k) $function$;
grant execute on function app.is_secret_key(text) to service_role;

-- app.json_string_text(text)
CREATE OR REPLACE FUNCTION app.json_string_text(p_raw text)
 RETURNS text
 LANGUAGE plpgsql
 IMMUTABLE
 SET search_path TO ''
AS $function$
begin
  return ('"' || p_raw || '"')::jsonb #>> '{}';
exception when others then
  return null;
end
$function$;
grant execute on function app.json_string_text(text) to service_role;

-- app.quality_compiled_rules(uuid)
CREATE OR REPLACE FUNCTION app.quality_compiled_rules(p_rule_set_id uuid)
 RETURNS TABLE(id bigint, field text, kind text, params jsonb, severity text, weight integer, cost numeric)
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  with rules as (
    select r.id, r.field, r.kind, r.params, r.severity, r.weight,
           case when r.kind = 'cross_field' then array[r.field, r.params->>'other'] else array[r.field] end as fields
    from public.quality_rules r where r.rule_set_id = p_rule_set_id
  ), weights as (
    select field, sum(weight) as w from rules where kind = 'required' group by field
  ), spent as (
    select f as field, sum(weight) as s from rules, unnest(fields) f where kind <> 'required' group by f
  )
  select r.id, r.field, r.kind, r.params, r.severity, r.weight,
         case when r.kind = 'required' then r.weight::numeric
              else round(r.weight * (select min(case when s.s <= coalesce(w.w, 0) then 1::numeric
                                                     else coalesce(w.w, 0)::numeric / s.s end)
                                       from unnest(r.fields) f
                                       join spent s on s.field = f
                                       left join weights w on w.field = f), 4) end as cost
  from rules r
  order by 7 desc, r.field, r.kind, r.id
$function$;
grant execute on function app.quality_compiled_rules(uuid) to service_role;

-- app.quality_compiled_sql(uuid)
CREATE OR REPLACE FUNCTION app.quality_compiled_sql(p_rule_set_id uuid)
 RETURNS text
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_sql text;
  v_status text;
begin
  select status into v_status from public.quality_rule_sets where id = p_rule_set_id;
  if v_status is null then
    raise exception 'no rule set %', p_rule_set_id using errcode = '22023';
  end if;
  select c.sql into v_sql from app.quality_compiled c where c.rule_set_id = p_rule_set_id;
  if v_sql is null then
    v_sql := app.quality_score_select(p_rule_set_id);
    if v_status <> 'draft' then
      insert into app.quality_compiled (rule_set_id, sql) values (p_rule_set_id, v_sql)
      on conflict (rule_set_id) do update set sql = excluded.sql, compiled_at = now();
    end if;
  end if;
  return v_sql;
end
$function$;
grant execute on function app.quality_compiled_sql(uuid) to service_role;

-- app.quality_duplicate_groups(uuid,jsonb,integer)
CREATE OR REPLACE FUNCTION app.quality_duplicate_groups(p_chain_id uuid, p_keys jsonb, p_cap integer)
 RETURNS TABLE(match text, value text, ids uuid[], size integer)
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select k.match, k.value, m.ids, m.size
  from (select distinct x.match, x.value from jsonb_to_recordset(p_keys) as x(match text, value text)
        where x.value is not null) k
  cross join lateral (
    select array_agg(h.guest_mews_id order by h.guest_mews_id) as ids, count(*)::integer as size
    from (
      (select f.guest_mews_id from public.guest_facts f
         join public.guests g on g.chain_id = f.chain_id and g.mews_id = f.guest_mews_id
        where k.match = 'email' and f.chain_id = p_chain_id and f.email_normalized = k.value
          and g.is_active and not g.has_ota_email
       union all
       select f.guest_mews_id from public.guest_facts f
         join public.guests g on g.chain_id = f.chain_id and g.mews_id = f.guest_mews_id
        where k.match = 'phone' and f.chain_id = p_chain_id and f.phone_e164 = k.value and g.is_active
       union all
       select f.guest_mews_id from public.guest_facts f
         join public.guests g on g.chain_id = f.chain_id and g.mews_id = f.guest_mews_id
        where k.match = 'name_and_birth_date' and f.chain_id = p_chain_id and f.name_key = k.value and g.is_active)
      limit p_cap + 1) h) m
  where m.size > 0
$function$;
grant execute on function app.quality_duplicate_groups(uuid,jsonb,integer) to service_role;

-- app.quality_duplicate_keys(uuid,uuid[],uuid,uuid)
CREATE OR REPLACE FUNCTION app.quality_duplicate_keys(p_chain_id uuid, p_ids uuid[], p_from uuid, p_to uuid)
 RETURNS TABLE(guest_mews_id uuid, match text, value text)
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
begin
  -- two queries, not one with "p_ids is null or ...": each keeps its index when its plan is cached
  if p_ids is not null then
    return query
      select f.guest_mews_id, k.match, k.value
      from public.guest_facts f
      join public.guests g on g.chain_id = f.chain_id and g.mews_id = f.guest_mews_id
      cross join lateral (values ('email', case when not g.has_ota_email then f.email_normalized end),
                                 ('phone', f.phone_e164), ('name_and_birth_date', f.name_key)) as k(match, value)
      where f.chain_id = p_chain_id and f.guest_mews_id = any (p_ids) and g.is_active and k.value is not null;
  else
    return query
      select f.guest_mews_id, k.match, k.value
      from public.guest_facts f
      join public.guests g on g.chain_id = f.chain_id and g.mews_id = f.guest_mews_id
      cross join lateral (values ('email', case when not g.has_ota_email then f.email_normalized end),
                                 ('phone', f.phone_e164), ('name_and_birth_date', f.name_key)) as k(match, value)
      where f.chain_id = p_chain_id and f.guest_mews_id >= coalesce(p_from, '00000000-0000-0000-0000-000000000000')
        and (p_to is null or f.guest_mews_id < p_to) and g.is_active and k.value is not null;
  end if;
end
$function$;
grant execute on function app.quality_duplicate_keys(uuid,uuid[],uuid,uuid) to service_role;

-- app.quality_duplicate_pairs(uuid,jsonb,uuid,uuid,uuid[])
CREATE OR REPLACE FUNCTION app.quality_duplicate_pairs(p_chain_id uuid, p_groups jsonb, p_from uuid, p_to uuid, p_within uuid[])
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_pairs integer;
begin
  with pairs as (
    select a, b, gr.match, gr.value
    from jsonb_to_recordset(p_groups) as gr(match text, value text, ids uuid[], size integer),
         unnest(gr.ids) a, unnest(gr.ids) b
    where gr.size between 2 and 20 and a < b
  ), kept as (
    select p.* from pairs p
    where p_within is null
      and p.a >= coalesce(p_from, '00000000-0000-0000-0000-000000000000') and (p_to is null or p.a < p_to)
    union all
    select p.* from pairs p
    join (select distinct unnest(p_within) as id) wa on wa.id = p.a
    join (select distinct unnest(p_within) as id) wb on wb.id = p.b
    where p_within is not null
  )
  insert into public.guest_duplicates as d (chain_id, guest_a, guest_b, evidence)
  select p_chain_id, a, b, jsonb_agg(jsonb_build_object('match', match, 'value', value) order by match)
  from kept
  group by a, b
  on conflict (chain_id, guest_a, guest_b) do update set evidence = excluded.evidence, found_at = now();
  get diagnostics v_pairs = row_count;
  return v_pairs;
end
$function$;
grant execute on function app.quality_duplicate_pairs(uuid,jsonb,uuid,uuid,uuid[]) to service_role;

-- app.quality_duplicates_around(uuid,uuid[],jsonb)
CREATE OR REPLACE FUNCTION app.quality_duplicates_around(p_chain_id uuid, p_ids uuid[], p_old jsonb)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_keys jsonb;
  v_around uuid[];
  v_groups jsonb;
begin
  if cardinality(p_ids) = 0 then
    return 0;
  end if;
  -- the groups they left or joined (a group bigger than 20 + their number was and stays too big)
  select coalesce(p_old, '[]'::jsonb) || coalesce(jsonb_agg(jsonb_build_object('match', k.match, 'value', k.value)), '[]'::jsonb)
    into v_keys from app.quality_duplicate_keys(p_chain_id, p_ids, null, null) k;
  select array(
    select unnest(p_ids)
    union select unnest(gr.ids) from app.quality_duplicate_groups(p_chain_id, v_keys, 20 + cardinality(p_ids)) gr
                                where gr.size <= 20 + cardinality(p_ids)
    union select d.guest_b from public.guest_duplicates d where d.chain_id = p_chain_id and d.guest_a = any (p_ids)
    union select d.guest_a from public.guest_duplicates d where d.chain_id = p_chain_id and d.guest_b = any (p_ids))
    into v_around;
  delete from public.guest_duplicates d
   using (select distinct unnest(v_around) as id) a, (select distinct unnest(v_around) as id) b
   where d.chain_id = p_chain_id and d.guest_a = a.id and d.guest_b = b.id;
  select coalesce(jsonb_agg(to_jsonb(gr)), '[]'::jsonb) into v_groups
    from app.quality_duplicate_groups(
           p_chain_id,
           (select coalesce(jsonb_agg(jsonb_build_object('match', k.match, 'value', k.value)), '[]'::jsonb)
              from app.quality_duplicate_keys(p_chain_id, v_around, null, null) k),
           20) gr
   where gr.size between 2 and 20;
  return app.quality_duplicate_pairs(p_chain_id, v_groups, null, null, v_around);
end
$function$;
grant execute on function app.quality_duplicates_around(uuid,uuid[],jsonb) to service_role;

-- app.quality_enabled_rule_set(uuid)
CREATE OR REPLACE FUNCTION app.quality_enabled_rule_set(p_enterprise_id uuid)
 RETURNS uuid
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$ select id from public.quality_rule_sets where enterprise_id = p_enterprise_id and status = 'enabled' $function$;
grant execute on function app.quality_enabled_rule_set(uuid) to service_role;

-- app.quality_facts_input(public.guests)
CREATE OR REPLACE FUNCTION app.quality_facts_input(g public.guests)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select jsonb_build_object(
    'guest_mews_id', g.mews_id, 'email', g.email, 'phone', g.phone,
    'nationality_code', g.nationality_code, 'synced_at', g.synced_at,
    'address_country', (select a.country_code from public.guest_addresses a
                         where a.chain_id = g.chain_id and a.guest_mews_id = g.mews_id and a.is_active limit 1))
$function$;
grant execute on function app.quality_facts_input(public.guests) to service_role;

-- app.quality_field_sql(text,uuid)
CREATE OR REPLACE FUNCTION app.quality_field_sql(p_field text, p_enterprise_id uuid)
 RETURNS text
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
declare
  v_enriched boolean;
begin
  if p_field = 'nationality_code' then
    select coalesce(bool_or(enabled), true) into v_enriched from public.enrichment_settings
     where enterprise_id = p_enterprise_id and rule = 'nationality_from_document';
    return case when v_enriched then 'coalesce(p.nationality_code, p.enriched_nationality)' else 'p.nationality_code' end;
  elsif p_field = 'language' then
    select coalesce(bool_or(enabled), true) into v_enriched from public.enrichment_settings
     where enterprise_id = p_enterprise_id and rule = 'language_from_mews';
    return case when v_enriched then 'coalesce(p.language, p.enriched_language)' else 'p.language' end;
  end if;
  if app.quality_field_type(p_field) is null then
    raise exception 'unknown field %', p_field using errcode = '22023';
  end if;
  return 'p.' || quote_ident(p_field);
end
$function$;
grant execute on function app.quality_field_sql(text,uuid) to service_role;

-- app.quality_field_type(text)
CREATE OR REPLACE FUNCTION app.quality_field_type(p_field text)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO ''
AS $function$
  select case p_field
    when 'first_name' then 'text' when 'last_name' then 'text' when 'email' then 'text'
    when 'phone' then 'text' when 'birth_date' then 'date' when 'nationality_code' then 'text'
    when 'address' then 'bool' when 'identity_document' then 'bool' when 'language' then 'text'
    when 'title' then 'text' when 'sex' then 'text' when 'loyalty_code' then 'text'
    when 'company' then 'text' end
$function$;
grant execute on function app.quality_field_type(text) to authenticated;
grant execute on function app.quality_field_type(text) to service_role;

-- app.quality_freeze(uuid)
CREATE OR REPLACE FUNCTION app.quality_freeze(p_rule_set_id uuid)
 RETURNS void
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  update public.quality_rules r
     set cost = c.cost,
         reason_kind = case c.kind when 'required' then 'missing' when 'not_ota_email' then 'weak' else 'invalid' end,
         message = case c.kind when 'required' then 'Missing' when 'not_ota_email' then 'Weak' else 'Invalid' end
                   || ': ' || replace(c.field, '_', ' ') || ' (−' || trim_scale(c.cost)::text || ')'
    from app.quality_compiled_rules(p_rule_set_id) c
   where r.id = c.id;
  insert into app.quality_compiled (rule_set_id, sql)
  values (p_rule_set_id, app.quality_score_select(p_rule_set_id))
  on conflict (rule_set_id) do update set sql = excluded.sql, compiled_at = now();
end
$function$;

-- app.quality_lane_start(integer,integer)
CREATE OR REPLACE FUNCTION app.quality_lane_start(p_lane integer, p_lanes integer)
 RETURNS uuid
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO ''
AS $function$
  select case when p_lane > 0 and p_lane < p_lanes
              then (lpad(to_hex((p_lane::bigint << 32) / p_lanes), 8, '0') || '-0000-0000-0000-000000000000')::uuid end
$function$;
grant execute on function app.quality_lane_start(integer,integer) to service_role;

-- app.quality_may_admin(uuid)
CREATE OR REPLACE FUNCTION app.quality_may_admin(p_enterprise_id uuid)
 RETURNS boolean
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO ''
AS $function$
  select coalesce(
    app.caller_is_trusted()
    or (app.caller_role() = 'authenticated' and auth.uid() is not null
        and p_enterprise_id = any (app.admin_enterprise_ids())),
    false)
$function$;

-- app.quality_pass_progress(uuid)
CREATE OR REPLACE FUNCTION app.quality_pass_progress(p_enterprise_id uuid)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select jsonb_build_object(
    'enterprise_id', s.enterprise_id,
    'rule_set_id', s.pass_rule_set_id,
    'done', s.scored_version >= s.version,
    'guests', s.pass_guests,
    'scored_so_far', coalesce(l.scored, 0),
    'changed_so_far', coalesce(l.changed, 0),
    'lanes', coalesce(l.lanes, 0),
    'lanes_done', coalesce(l.lanes_done, 0),
    'started_at', s.pass_started_at,
    'finished_at', s.pass_finished_at)
  from public.quality_score_state s
  left join lateral (select sum(scored) as scored, sum(changed) as changed, count(*) as lanes,
                            count(*) filter (where done) as lanes_done
                     from public.quality_score_lanes where enterprise_id = s.enterprise_id) l on true
  where s.enterprise_id = p_enterprise_id
$function$;

-- app.quality_pattern_alternation(text,integer)
CREATE OR REPLACE FUNCTION app.quality_pattern_alternation(p_pattern text, INOUT pos integer, OUT problem text, OUT nullable boolean, OUT first_set bit, OUT last_set bit, OUT char_set bit, OUT has_quantifier boolean, OUT has_alternation boolean, OUT starts_repeating boolean, OUT ends_repeating boolean, OUT degree integer)
 RETURNS record
 LANGUAGE plpgsql
 IMMUTABLE
 SET search_path TO ''
AS $function$
#variable_conflict use_variable
declare
  v_zero constant bit(129) := repeat('0', 129)::bit(129);
  v_all constant bit(129) := repeat('1', 129)::bit(129);
  v_quantifiers constant text[] := array['*', '+', '?', '{'];
  c text;
  g record;  -- a group's contents
  bk record;  -- a bracket expression
  e record;  -- an escape
  q record;  -- a quantifier
  k integer;
  -- the alternation so far
  v_branches integer := 0;
  v_seen bit(129) := repeat('0', 129)::bit(129);
  v_overlapping boolean := false;
  v_any_nullable boolean := false;
  -- the branch (sequence) being read
  b_nullable boolean;
  b_first bit(129);
  b_last bit(129);
  b_chars bit(129);
  b_quantifier boolean;
  b_alternation boolean;
  b_starts boolean;
  b_ends boolean;
  b_degree integer;
  -- its items so far
  i_first bit(129)[];
  i_last bit(129)[];
  i_chars bit(129)[];
  i_nullable boolean[];
  i_ends boolean[];
  i_chain integer[];
  -- the item being read
  t_nullable boolean;
  t_first bit(129);
  t_last bit(129);
  t_chars bit(129);
  t_quantifier boolean;
  t_alternation boolean;
  t_starts boolean;
  t_ends boolean;
  t_degree integer;
  v_repeating boolean;
  v_follow bit(129);
  v_fed integer;
  v_chain integer;
begin
  nullable := false;
  first_set := v_zero;
  last_set := v_zero;
  char_set := v_zero;
  has_quantifier := false;
  has_alternation := false;
  starts_repeating := false;
  ends_repeating := false;
  degree := 0;
  loop
    b_nullable := true;
    b_first := v_zero;
    b_last := v_zero;
    b_chars := v_zero;
    b_quantifier := false;
    b_alternation := false;
    b_starts := false;
    b_ends := false;
    b_degree := 0;
    i_first := '{}';
    i_last := '{}';
    i_chars := '{}';
    i_nullable := '{}';
    i_ends := '{}';
    i_chain := '{}';
    loop
      c := substr(p_pattern, pos, 1);
      exit when c in ('', '|', ')');
      if c = any (v_quantifiers) then
        select * into q from app.quality_pattern_quantifier(p_pattern, pos);
        problem := coalesce(q.problem, 'a quantifier needs something to repeat (not the start, (, | or an anchor)');
        return;
      end if;
      if c in ('^', '$') then
        pos := pos + 1;
        t_nullable := true;
        t_first := v_zero;
        t_last := v_zero;
        t_chars := v_zero;
        t_quantifier := false;
        t_alternation := false;
        t_starts := false;
        t_ends := false;
        t_degree := 0;
      else
        if c = '(' then
          pos := pos + 1;
          if substr(p_pattern, pos, 1) = '?' then
            problem := '(?…) groups — look-arounds, flags, non-capturing or named groups — are not allowed';
            return;
          end if;
          select * into g from app.quality_pattern_alternation(p_pattern, pos);
          if g.problem is not null then
            problem := g.problem;
            return;
          end if;
          pos := g.pos;
          if substr(p_pattern, pos, 1) <> ')' then
            problem := 'unbalanced parentheses: ( is never closed';
            return;
          end if;
          pos := pos + 1;
          t_nullable := g.nullable;
          t_first := g.first_set;
          t_last := g.last_set;
          t_chars := g.char_set;
          t_quantifier := g.has_quantifier;
          t_alternation := g.has_alternation;
          t_starts := g.starts_repeating;
          t_ends := g.ends_repeating;
          t_degree := g.degree;
        else
          if c = '[' then
            select * into bk from app.quality_pattern_bracket(p_pattern, pos);
            if bk.problem is not null then
              problem := bk.problem;
              return;
            end if;
            pos := bk.pos;
            t_first := bk.bits;
          elsif c = ']' then
            problem := 'unescaped ]; write \] for a literal bracket';
            return;
          elsif c = '}' then
            problem := 'unescaped }; write \} for a literal brace';
            return;
          elsif c = '\' then
            select * into e from app.quality_pattern_escape(p_pattern, pos);
            if e.problem is not null then
              problem := e.problem;
              return;
            end if;
            pos := e.pos;
            t_first := e.bits;
          elsif c = '.' then
            pos := pos + 1;
            t_first := v_all;
          else
            pos := pos + 1;
            t_first := app.quality_pattern_bits(ascii(c), ascii(c));
          end if;
          t_nullable := false;
          t_last := t_first;
          t_chars := t_first;
          t_quantifier := false;
          t_alternation := false;
          t_starts := false;
          t_ends := false;
          t_degree := 0;
        end if;
        if substr(p_pattern, pos, 1) = any (v_quantifiers) then
          select * into q from app.quality_pattern_quantifier(p_pattern, pos);
          if q.problem is not null then
            problem := q.problem;
            return;
          end if;
          pos := q.pos;
          if substr(p_pattern, pos, 1) = any (v_quantifiers) then
            select * into q from app.quality_pattern_quantifier(p_pattern, pos);
            problem := coalesce(q.problem, 'a quantifier may not follow another quantifier (lazy and possessive forms are not supported)');
            return;
          end if;
          v_repeating := q.high > 1;
          if v_repeating then
            if t_quantifier then
              problem := 'nested quantifiers: a repeated group may not contain a quantifier';
              return;
            elsif t_alternation then
              problem := 'a repeated group may not contain alternatives (|)';
              return;
            elsif t_nullable then
              problem := 'a repeated part may not match the empty string';
              return;
            end if;
          end if;
          t_nullable := t_nullable or q.low = 0;
          t_quantifier := true;
          -- only a variable count can overlap its neighbour: \d{3}\d{4} has one way to match
          t_starts := t_starts or (v_repeating and q.low < q.high);
          t_ends := t_ends or (v_repeating and q.low < q.high);
          if q.low < q.high then
            t_degree := greatest(t_degree, 1);
          end if;
        end if;
      end if;
      -- rule 4: no repeated part may start on what an earlier repeated neighbour ends with
      if t_starts then
        for k in reverse coalesce(array_length(i_first, 1), 0) .. 1 loop
          if i_ends[k] and (i_last[k] & t_first) <> v_zero then
            problem := 'overlapping quantifiers: two adjacent repeated parts can match the same characters';
            return;
          end if;
          exit when not i_nullable[k];
        end loop;
      end if;
      -- rule 5: the heaviest chain of feeding ambiguous items ending here weighs at most 2
      v_chain := 0;
      if t_degree > 0 then
        v_follow := t_first;
        v_fed := 0;
        for k in reverse coalesce(array_length(i_first, 1), 0) .. 1 loop
          if i_chain[k] > 0 and (i_chars[k] & v_follow) <> v_zero then
            v_fed := greatest(v_fed, i_chain[k]);
          end if;
          v_follow := case when i_nullable[k] then i_first[k] | v_follow else i_first[k] end;
        end loop;
        v_chain := t_degree + v_fed;
        if v_chain > 2 then
          problem := 'too many ambiguous parts: at most two optional, repeated or alternative parts may compete for the same characters';
          return;
        end if;
      end if;
      i_first := i_first || t_first;
      i_last := i_last || t_last;
      i_chars := i_chars || t_chars;
      i_nullable := i_nullable || t_nullable;
      i_ends := i_ends || t_ends;
      i_chain := i_chain || v_chain;
      if b_nullable then
        b_first := b_first | t_first;
        b_nullable := t_nullable;
      end if;
      b_last := case when t_nullable then b_last | t_last else t_last end;
      b_chars := b_chars | t_chars;
      b_quantifier := b_quantifier or t_quantifier;
      b_alternation := b_alternation or t_alternation;
      b_starts := b_starts or t_starts;
      b_ends := b_ends or t_ends;
      b_degree := greatest(b_degree, v_chain);
    end loop;
    v_branches := v_branches + 1;
    v_overlapping := v_overlapping or (b_first & v_seen) <> v_zero;
    v_seen := v_seen | b_first;
    v_any_nullable := v_any_nullable or b_nullable;
    nullable := nullable or b_nullable;
    first_set := first_set | b_first;
    last_set := last_set | b_last;
    char_set := char_set | b_chars;
    has_quantifier := has_quantifier or b_quantifier;
    has_alternation := has_alternation or b_alternation;
    starts_repeating := starts_repeating or b_starts;
    ends_repeating := ends_repeating or b_ends;
    degree := greatest(degree, b_degree);
    exit when substr(p_pattern, pos, 1) <> '|';
    pos := pos + 1;
  end loop;
  if v_branches > 1 then
    has_alternation := true;
    if v_overlapping or v_any_nullable then
      degree := greatest(degree, 1);
    end if;
  end if;
end
$function$;
grant execute on function app.quality_pattern_alternation(text,integer) to authenticated;
grant execute on function app.quality_pattern_alternation(text,integer) to service_role;

-- app.quality_pattern_bits(integer,integer)
CREATE OR REPLACE FUNCTION app.quality_pattern_bits(p_low integer, p_high integer)
 RETURNS bit
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO ''
AS $function$
  select ((case when p_low <= 127
                then repeat('0', p_low) || repeat('1', least(p_high, 127) - p_low + 1)
                     || repeat('0', 127 - least(p_high, 127))
                else repeat('0', 128) end)
          || (case when p_high > 127 then '1' else '0' end))::bit(129)
$function$;
grant execute on function app.quality_pattern_bits(integer,integer) to authenticated;
grant execute on function app.quality_pattern_bits(integer,integer) to service_role;

-- app.quality_pattern_bracket(text,integer)
CREATE OR REPLACE FUNCTION app.quality_pattern_bracket(p_pattern text, INOUT pos integer, OUT problem text, OUT bits bit)
 RETURNS record
 LANGUAGE plpgsql
 IMMUTABLE
 SET search_path TO ''
AS $function$
#variable_conflict use_variable
declare
  v_dash constant text := 'a - inside a bracket expression must come first, last, or between the two characters of a range';
  v_negated boolean;
  v_first_member boolean := true;
  c text;
  s record;
  v_start integer;
begin
  bits := repeat('0', 129)::bit(129);
  pos := pos + 1;
  v_negated := substr(p_pattern, pos, 1) = '^';
  if v_negated then
    pos := pos + 1;
  end if;
  if substr(p_pattern, pos, 1) = ']' then
    problem := 'a bracket expression may not be empty; write \] for a literal bracket';
    return;
  end if;
  loop
    c := substr(p_pattern, pos, 1);
    exit when c = ']';
    problem := app.quality_pattern_bracket_hazard(p_pattern, pos);
    if problem is not null then
      return;
    end if;
    if c = '-' then
      if not v_first_member and substr(p_pattern, pos + 1, 1) <> ']' then
        problem := v_dash;
        return;
      end if;
      pos := pos + 1;
      bits := bits | app.quality_pattern_bits(45, 45);
    else
      select * into s from app.quality_pattern_bracket_single(p_pattern, pos);
      if s.problem is not null then
        problem := s.problem;
        return;
      end if;
      pos := s.pos;
      if substr(p_pattern, pos, 1) <> '-' or substr(p_pattern, pos + 1, 1) in (']', '') then
        bits := bits | s.bits;
      else
        if s.is_class then
          problem := v_dash;
          return;
        end if;
        v_start := s.code;
        pos := pos + 1;
        problem := app.quality_pattern_bracket_hazard(p_pattern, pos);
        if problem is not null then
          return;
        end if;
        if substr(p_pattern, pos, 1) = '-' then
          problem := v_dash;
          return;
        end if;
        select * into s from app.quality_pattern_bracket_single(p_pattern, pos);
        if s.problem is not null then
          problem := s.problem;
          return;
        end if;
        pos := s.pos;
        if s.is_class then
          problem := v_dash;
          return;
        end if;
        if s.code < v_start then
          problem := 'a range in a bracket expression may not go from a higher to a lower character';
          return;
        end if;
        bits := bits | app.quality_pattern_bits(v_start, s.code);
      end if;
    end if;
    v_first_member := false;
  end loop;
  pos := pos + 1;
  if v_negated then
    bits := ~bits | app.quality_pattern_bits(128, 128);
  end if;
end
$function$;
grant execute on function app.quality_pattern_bracket(text,integer) to authenticated;
grant execute on function app.quality_pattern_bracket(text,integer) to service_role;

-- app.quality_pattern_bracket_hazard(text,integer)
CREATE OR REPLACE FUNCTION app.quality_pattern_bracket_hazard(p_pattern text, p_pos integer)
 RETURNS text
 LANGUAGE plpgsql
 IMMUTABLE
 SET search_path TO ''
AS $function$
declare
  c text := substr(p_pattern, p_pos, 1);
  n text := substr(p_pattern, p_pos + 1, 1);
begin
  if c = '' then
    return 'unterminated bracket expression [';
  elsif c = '[' then
    return case when n in (':', '=', '.')
                then 'POSIX classes ([:alpha:], [=a=], [.a.]) are not supported; use \d, \w, \s or ranges'
                else 'unescaped [ inside a bracket expression; write \[' end;
  elsif c in ('&', '~', '|') and n = c then
    return '&&, ~~ and || inside a bracket expression must be escaped';
  elsif c = '-' and n = '' then
    return 'unterminated bracket expression [';
  end if;
  return null;
end
$function$;
grant execute on function app.quality_pattern_bracket_hazard(text,integer) to authenticated;
grant execute on function app.quality_pattern_bracket_hazard(text,integer) to service_role;

-- app.quality_pattern_bracket_single(text,integer)
CREATE OR REPLACE FUNCTION app.quality_pattern_bracket_single(p_pattern text, INOUT pos integer, OUT problem text, OUT bits bit, OUT is_class boolean, OUT code integer)
 RETURNS record
 LANGUAGE plpgsql
 IMMUTABLE
 SET search_path TO ''
AS $function$
#variable_conflict use_variable
declare
  e record;
begin
  if substr(p_pattern, pos, 1) = '\' then
    select * into e from app.quality_pattern_escape(p_pattern, pos);
    pos := e.pos; problem := e.problem; bits := e.bits; is_class := e.is_class; code := e.code;
    return;
  end if;
  code := ascii(substr(p_pattern, pos, 1));
  pos := pos + 1;
  bits := app.quality_pattern_bits(code, code);
  is_class := false;
end
$function$;
grant execute on function app.quality_pattern_bracket_single(text,integer) to authenticated;
grant execute on function app.quality_pattern_bracket_single(text,integer) to service_role;

-- app.quality_pattern_escape(text,integer)
CREATE OR REPLACE FUNCTION app.quality_pattern_escape(p_pattern text, INOUT pos integer, OUT problem text, OUT bits bit, OUT is_class boolean, OUT code integer)
 RETURNS record
 LANGUAGE plpgsql
 IMMUTABLE
 SET search_path TO ''
AS $function$
#variable_conflict use_variable
declare
  c text;
  v_digit bit(129) := app.quality_pattern_bits(48, 57);
  v_word bit(129) := app.quality_pattern_bits(48, 57) | app.quality_pattern_bits(65, 90)
                     | app.quality_pattern_bits(95, 95) | app.quality_pattern_bits(97, 122)
                     | app.quality_pattern_bits(128, 128);
  v_space bit(129) := app.quality_pattern_bits(9, 13) | app.quality_pattern_bits(32, 32);
  v_bucket bit(129) := app.quality_pattern_bits(128, 128);
begin
  is_class := false;
  pos := pos + 1;
  c := substr(p_pattern, pos, 1);
  if c = '' then
    problem := 'the pattern ends with a lone backslash';
    return;
  end if;
  pos := pos + 1;
  code := ascii(c);
  if code between 48 and 57 then
    problem := 'back-references are not allowed';
    return;
  end if;
  if c in ('d', 'D', 'w', 'W', 's', 'S') then
    is_class := true;
    code := -1;
    bits := case c when 'd' then v_digit when 'w' then v_word when 's' then v_space
                   when 'D' then ~v_digit | v_bucket when 'W' then ~v_word | v_bucket
                   else ~v_space | v_bucket end;
    return;
  end if;
  if code > 127 or code between 65 and 90 or code between 97 and 122 then
    problem := format('escape \%s is not supported; use \d, \w, \s or escape punctuation', c);
    return;
  end if;
  bits := app.quality_pattern_bits(code, code);
end
$function$;
grant execute on function app.quality_pattern_escape(text,integer) to authenticated;
grant execute on function app.quality_pattern_escape(text,integer) to service_role;

-- app.quality_pattern_problem(text)
CREATE OR REPLACE FUNCTION app.quality_pattern_problem(p_pattern text)
 RETURNS text
 LANGUAGE plpgsql
 IMMUTABLE
 SET search_path TO ''
AS $function$
declare
  r record;
begin
  if p_pattern is null or p_pattern = '' then
    return 'the pattern is empty';
  end if;
  if length(p_pattern) > 200 then
    return 'the pattern is longer than 200 characters';
  end if;
  select * into r from app.quality_pattern_alternation(p_pattern, 1);
  if r.problem is not null then
    return r.problem;
  end if;
  if substr(p_pattern, r.pos, 1) = ')' then
    return 'unbalanced parentheses: ) without a matching (';
  end if;
  begin
    perform '' ~ p_pattern;  -- compiles it
  exception when invalid_regular_expression or program_limit_exceeded then
    return case when sqlerrm like 'invalid regular expression: %' then sqlerrm
                else 'invalid regular expression: ' || sqlerrm end;
  end;
  return null;
end
$function$;
grant execute on function app.quality_pattern_problem(text) to authenticated;
grant execute on function app.quality_pattern_problem(text) to service_role;

-- app.quality_pattern_quantifier(text,integer)
CREATE OR REPLACE FUNCTION app.quality_pattern_quantifier(p_pattern text, INOUT pos integer, OUT problem text, OUT low integer, OUT high integer)
 RETURNS record
 LANGUAGE plpgsql
 IMMUTABLE
 SET search_path TO ''
AS $function$
#variable_conflict use_variable
declare
  c text := substr(p_pattern, pos, 1);
  v_low text := '';
  v_high text;
  v_bad_brace constant text := '{ must start a bound {n}, {n,} or {n,m}; write \{ for a literal brace';
  v_limit constant text := 'repetition bounds must be between 0 and 255';
begin
  pos := pos + 1;
  if c = '*' then
    low := 0; high := 256; return;
  elsif c = '+' then
    low := 1; high := 256; return;
  elsif c = '?' then
    low := 0; high := 1; return;
  end if;
  while ascii(substr(p_pattern, pos, 1)) between 48 and 57 loop
    v_low := v_low || substr(p_pattern, pos, 1);
    pos := pos + 1;
  end loop;
  v_high := v_low;
  if v_low = '' then
    problem := v_bad_brace;
    return;
  end if;
  if substr(p_pattern, pos, 1) = ',' then
    pos := pos + 1;
    v_high := '';
    while ascii(substr(p_pattern, pos, 1)) between 48 and 57 loop
      v_high := v_high || substr(p_pattern, pos, 1);
      pos := pos + 1;
    end loop;
  end if;
  if substr(p_pattern, pos, 1) <> '}' then
    problem := v_bad_brace;
    return;
  end if;
  pos := pos + 1;
  if (case when length(v_low) > 3 then true else v_low::integer > 255 end) then
    problem := v_limit;
    return;
  end if;
  low := v_low::integer;
  if v_high = '' then
    high := 256;
  elsif (case when length(v_high) > 3 then true else v_high::integer > 255 end) then
    problem := v_limit;
    return;
  else
    high := v_high::integer;
  end if;
  if low > high then
    problem := 'in a bound {n,m}, n must not be greater than m';
  end if;
end
$function$;
grant execute on function app.quality_pattern_quantifier(text,integer) to authenticated;
grant execute on function app.quality_pattern_quantifier(text,integer) to service_role;

-- app.quality_pattern_size(text)
CREATE OR REPLACE FUNCTION app.quality_pattern_size(p_pattern text)
 RETURNS integer
 LANGUAGE plpgsql
 IMMUTABLE
 SET search_path TO ''
AS $function$
declare
  v_totals integer[] := '{}';
  v_total integer := 0;
  v_last integer := 0;
  v_i integer := 1;
  v_n integer := char_length(p_pattern);
  v_char text;
  v_end integer;
  v_body text;
  v_times integer;
begin
  while v_i <= v_n loop
    v_char := substr(p_pattern, v_i, 1);
    if v_char = '(' then
      v_totals := v_totals || v_total;
      v_total := 0;
      v_last := 0;
    elsif v_char = ')' then
      v_last := v_total;
      v_total := v_totals[cardinality(v_totals)] + v_total;
      v_totals := v_totals[1:cardinality(v_totals) - 1];
    elsif v_char in ('|', '^', '$', '?') then
      v_last := 0;
    elsif v_char in ('*', '+') then
      v_total := v_total + v_last;
      v_last := 0;
    elsif v_char = '{' then
      v_end := v_i + strpos(substr(p_pattern, v_i), '}') - 1;
      v_body := substr(p_pattern, v_i + 1, v_end - v_i - 1);
      v_times := case
        when strpos(v_body, ',') = 0 then v_body::integer
        when split_part(v_body, ',', 2) = '' then split_part(v_body, ',', 1)::integer + 2
        else 2 * split_part(v_body, ',', 2)::integer - split_part(v_body, ',', 1)::integer end;
      v_total := v_total + v_last * (v_times - 1);
      v_last := 0;
      v_i := v_end;
    else
      if v_char = '\' then
        v_i := v_i + 1;
      elsif v_char = '[' then
        v_i := v_i + 1;
        if substr(p_pattern, v_i, 1) = '^' then
          v_i := v_i + 1;
        end if;
        while v_i <= v_n and substr(p_pattern, v_i, 1) <> ']' loop
          v_i := v_i + case when substr(p_pattern, v_i, 1) = '\' then 2 else 1 end;
        end loop;
      end if;
      v_total := v_total + 1;
      v_last := 1;
    end if;
    v_i := v_i + 1;
  end loop;
  return v_total;
end
$function$;
grant execute on function app.quality_pattern_size(text) to authenticated;
grant execute on function app.quality_pattern_size(text) to service_role;

-- app.quality_present_sql(text,uuid)
CREATE OR REPLACE FUNCTION app.quality_present_sql(p_field text, p_enterprise_id uuid)
 RETURNS text
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select case app.quality_field_type(p_field)
    when 'bool' then format('coalesce(%s, false)', app.quality_field_sql(p_field, p_enterprise_id))
    when 'date' then format('(%s is not null)', app.quality_field_sql(p_field, p_enterprise_id))
    else format('(nullif(btrim(%s), '''') is not null)', app.quality_field_sql(p_field, p_enterprise_id)) end
$function$;
grant execute on function app.quality_present_sql(text,uuid) to service_role;

-- app.quality_reasons(bigint[])
CREATE OR REPLACE FUNCTION app.quality_reasons(p_failed bigint[])
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select coalesce(jsonb_agg(jsonb_build_object('field', r.field, 'kind', r.reason_kind, 'rule', r.kind,
                                               'cost', r.cost, 'severity', r.severity, 'message', r.message)
                            order by r.cost desc, r.field, r.kind, r.id), '[]'::jsonb)
  from public.quality_rules r where r.id = any (p_failed)
$function$;
grant execute on function app.quality_reasons(bigint[]) to authenticated;
grant execute on function app.quality_reasons(bigint[]) to service_role;

-- app.quality_rule_check()
CREATE OR REPLACE FUNCTION app.quality_rule_check()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_api_role boolean := current_user in ('anon', 'authenticated', 'service_role');
  v_problem text;
begin
  if v_api_role and tg_op in ('UPDATE', 'DELETE')
     and (select s.status from public.quality_rule_sets s where s.id = old.rule_set_id) is distinct from 'draft' then
    raise exception 'rules of an enabled or retired rule set cannot change; create a new version'
      using errcode = '42501';
  end if;
  if tg_op = 'DELETE' then
    return old;
  end if;
  if v_api_role and (select s.status from public.quality_rule_sets s where s.id = new.rule_set_id) is distinct from 'draft' then
    raise exception 'rules of an enabled or retired rule set cannot change; create a new version'
      using errcode = '42501';
  end if;
  if tg_op = 'UPDATE' and new.rule_set_id is distinct from old.rule_set_id then
    raise exception 'a rule cannot move to another rule set' using errcode = '42501';
  end if;
  new.enterprise_id := (select s.enterprise_id from public.quality_rule_sets s where s.id = new.rule_set_id);
  v_problem := app.quality_rule_problem(new.field, new.kind, new.params);
  if v_problem is not null then
    raise exception '%', v_problem using errcode = '22023';
  end if;
  -- an API role's write (a draft copied by the owner from an enabled set saved before the
  -- bounds is not refused: its admin can then delete rules until it fits, and enable it)
  if v_api_role then
    v_problem := app.quality_rule_set_problem(
      app.quality_rule_set_entries(new.rule_set_id, new.id)
      || jsonb_build_array(jsonb_build_object('field', new.field, 'kind', new.kind, 'params', new.params)));
    if v_problem is not null then
      raise exception '%', v_problem using errcode = '54000';
    end if;
  end if;
  return new;
end
$function$;

-- app.quality_rule_entry_problem(jsonb)
CREATE OR REPLACE FUNCTION app.quality_rule_entry_problem(p_rule jsonb)
 RETURNS text
 LANGUAGE plpgsql
 IMMUTABLE
 SET search_path TO ''
AS $function$
declare
  v_keys constant text[] := array['field', 'kind', 'params', 'severity', 'weight'];
  v_where text;
  v_key text;
begin
  if jsonb_typeof(p_rule) is distinct from 'object' then
    return 'a rule must be a mapping of field, kind, params, severity, weight';
  end if;
  v_where := case when jsonb_typeof(p_rule->'kind') = 'string' then p_rule->>'kind' else '?' end
             || ' rule on '
             || case when jsonb_typeof(p_rule->'field') = 'string' then p_rule->>'field' else '?' end
             || ': ';
  for v_key in select k from jsonb_object_keys(p_rule) k order by k collate "C" loop
    if not v_key = any (v_keys) then
      return v_where || 'unknown key ' || v_key || ' (keys: field, kind, params, severity, weight)';
    end if;
  end loop;
  foreach v_key in array array['field', 'kind', 'weight'] loop
    if not p_rule ? v_key or jsonb_typeof(p_rule->v_key) = 'null' then
      return v_where || 'key ' || v_key || ' is required';
    end if;
  end loop;
  if jsonb_typeof(p_rule->'field') <> 'string' or jsonb_typeof(p_rule->'kind') <> 'string' then
    return v_where || 'field and kind are texts';
  end if;
  if jsonb_typeof(p_rule->'weight') <> 'number' or (p_rule->>'weight') !~ '^[0-9]+$'
     or (p_rule->>'weight')::numeric > 100 then
    return v_where || 'weight must be a whole number from 0 to 100';
  end if;
  if p_rule ? 'severity' and (jsonb_typeof(p_rule->'severity') <> 'string'
                              or p_rule->>'severity' not in ('info', 'warning', 'error')) then
    return v_where || 'severity is one of info, warning, error';
  end if;
  return app.quality_rule_problem(p_rule->>'field', p_rule->>'kind',
                                  coalesce(p_rule->'params', '{}'::jsonb));
end
$function$;
grant execute on function app.quality_rule_entry_problem(jsonb) to authenticated;
grant execute on function app.quality_rule_entry_problem(jsonb) to service_role;

-- app.quality_rule_problem(text,text,jsonb)
CREATE OR REPLACE FUNCTION app.quality_rule_problem(p_field text, p_kind text, p_params jsonb)
 RETURNS text
 LANGUAGE plpgsql
 IMMUTABLE
 SET search_path TO ''
AS $function$
declare
  v_where text := coalesce(p_kind, '?') || ' rule on ' || coalesce(p_field, '?') || ': ';
  v_type text := app.quality_field_type(p_field);
  v_allowed text[];
  v_required text[];
  v_key text;
  v_value jsonb;
  v_problem text;
  v_min integer;
  v_max integer;
begin
  if p_kind is null or p_kind not in ('required', 'email', 'phone', 'not_ota_email', 'pattern',
                                      'allowed_values', 'length', 'date_range', 'cross_field') then
    return v_where || 'unknown kind (kinds: allowed_values, cross_field, date_range, email, length, not_ota_email, pattern, phone, required)';
  end if;
  if v_type is null then
    return v_where || 'unknown field ' || coalesce(p_field, 'null');
  end if;
  if p_params is null or jsonb_typeof(p_params) <> 'object' then
    return v_where || 'params must be an object';
  end if;
  v_allowed := case p_kind
    when 'pattern' then array['regex'] when 'allowed_values' then array['values']
    when 'length' then array['min', 'max'] when 'date_range' then array['min_years_ago', 'max_years_ago']
    when 'cross_field' then array['other', 'op'] else array[]::text[] end;
  v_required := case p_kind
    when 'pattern' then array['regex'] when 'allowed_values' then array['values']
    when 'cross_field' then array['other', 'op'] else array[]::text[] end;
  for v_key in select k from jsonb_object_keys(p_params) k order by k collate "C" loop
    if not v_key = any (v_allowed) then
      return v_where || 'unknown parameter ' || v_key || ' (' || case when cardinality(v_allowed) = 0
        then p_kind || ' takes no parameters' else 'allowed: ' || array_to_string(v_allowed, ', ') end || ')';
    end if;
  end loop;
  foreach v_key in array v_required loop
    if not p_params ? v_key then
      return v_where || 'parameter ' || v_key || ' is required';
    end if;
  end loop;
  if p_kind in ('email', 'not_ota_email') and p_field <> 'email' then
    return v_where || p_kind || ' applies to the email field only';
  elsif p_kind = 'phone' and p_field <> 'phone' then
    return v_where || 'phone applies to the phone field only';
  elsif p_kind in ('pattern', 'allowed_values', 'length') and v_type <> 'text' then
    return v_where || p_kind || ' applies to text fields only';
  elsif p_kind = 'date_range' and v_type <> 'date' then
    return v_where || 'date_range applies to date fields only';
  end if;
  if p_kind = 'pattern' then
    if jsonb_typeof(p_params->'regex') <> 'string' then
      return v_where || 'parameter regex must be a string';
    end if;
    v_problem := app.quality_pattern_problem(p_params->>'regex');
    if v_problem is not null then
      return v_where || 'parameter regex: ' || v_problem;
    end if;
  elsif p_kind = 'allowed_values' then
    v_value := p_params->'values';
    if jsonb_typeof(v_value) <> 'array' or jsonb_array_length(v_value) not between 1 and 200 then
      return v_where || 'parameter values must be a list of 1 to 200 texts';
    end if;
    if exists (select 1 from jsonb_array_elements(v_value) e
               where jsonb_typeof(e) <> 'string' or char_length(e #>> '{}') not between 1 and 100) then
      return v_where || 'parameter values: each value is a text of 1 to 100 characters';
    end if;
  elsif p_kind in ('length', 'date_range') then
    if not (p_params ? v_allowed[1] or p_params ? v_allowed[2]) then
      return v_where || 'parameter ' || v_allowed[1] || ' or ' || v_allowed[2] || ' is required';
    end if;
    foreach v_key in array v_allowed loop
      if p_params ? v_key and (jsonb_typeof(p_params->v_key) <> 'number' or (p_params->>v_key) !~ '^[0-9]+$'
                               or (p_params->>v_key)::numeric > case p_kind when 'length' then 1000 else 200 end) then
        return v_where || 'parameter ' || v_key || ' must be a whole number from 0 to '
               || case p_kind when 'length' then '1000' else '200' end;
      end if;
    end loop;
    v_min := (p_params->>v_allowed[1])::integer;
    v_max := (p_params->>v_allowed[2])::integer;
    if v_min > v_max then
      return v_where || v_allowed[1] || ' (' || v_min || ') is greater than ' || v_allowed[2] || ' (' || v_max || ')';
    end if;
  elsif p_kind = 'cross_field' then
    if jsonb_typeof(p_params->'other') <> 'string' or app.quality_field_type(p_params->>'other') is null then
      return v_where || 'parameter other must name a known field';
    end if;
    if p_params->>'other' = p_field then
      return v_where || 'parameter other must name another field';
    end if;
    if jsonb_typeof(p_params->'op') <> 'string' or p_params->>'op' not in ('differs', 'equals', 'before', 'after') then
      return v_where || 'parameter op is one of differs, equals, before, after';
    end if;
    if p_params->>'op' in ('before', 'after')
       and (v_type <> 'date' or app.quality_field_type(p_params->>'other') <> 'date') then
      return v_where || 'before and after compare two date fields';
    end if;
  end if;
  return null;
end
$function$;
grant execute on function app.quality_rule_problem(text,text,jsonb) to authenticated;
grant execute on function app.quality_rule_problem(text,text,jsonb) to service_role;

-- app.quality_rule_set_enable_check()
CREATE OR REPLACE FUNCTION app.quality_rule_set_enable_check()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_problem text;
begin
  if new.status = 'enabled' and old.status is distinct from 'enabled' then
    v_problem := app.quality_rule_set_problem(app.quality_rule_set_entries(new.id));
    if v_problem is not null then
      raise exception 'rule set version % cannot be enabled: %', new.version, v_problem using errcode = '54000';
    end if;
  end if;
  return new;
end
$function$;

-- app.quality_rule_set_enabled_threshold()
CREATE OR REPLACE FUNCTION app.quality_rule_set_enabled_threshold()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  if new.status = 'enabled' and old.status is distinct from 'enabled'
     and new.duplicate_threshold is not null then
    insert into public.duplicate_settings (enterprise_id, threshold)
    values (new.enterprise_id, new.duplicate_threshold)
    on conflict (enterprise_id) do update set threshold = excluded.threshold, updated_at = now();
  end if;
  return new;
end
$function$;

-- app.quality_rule_set_entries(uuid,bigint)
CREATE OR REPLACE FUNCTION app.quality_rule_set_entries(p_rule_set_id uuid, p_without bigint DEFAULT NULL::bigint)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select coalesce(jsonb_agg(jsonb_build_object('field', r.field, 'kind', r.kind, 'params', r.params)), '[]'::jsonb)
  from public.quality_rules r
  where r.rule_set_id = p_rule_set_id and r.id is distinct from p_without
$function$;
grant execute on function app.quality_rule_set_entries(uuid,bigint) to authenticated;
grant execute on function app.quality_rule_set_entries(uuid,bigint) to service_role;

-- app.quality_rule_set_problem(jsonb)
CREATE OR REPLACE FUNCTION app.quality_rule_set_problem(p_rules jsonb)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO ''
AS $function$
  with r as (
    select e->>'field' as field, e->>'kind' as kind, coalesce(e->'params', '{}'::jsonb) as params
    from jsonb_array_elements(p_rules) e
  ), patterns as (
    select distinct r.params->>'regex' as regex
    from r where r.kind = 'pattern' and jsonb_typeof(r.params->'regex') = 'string'
  ), m as (
    select
      (select count(*) from r) as rules,
      (select count(*) from patterns) as patterns,
      (select coalesce(sum(app.quality_pattern_size(p.regex)), 0) from patterns p) as size,
      6 * (select count(distinct f) from r,
             unnest(case when r.kind = 'cross_field' and jsonb_typeof(r.params->'other') = 'string'
                         then array[r.field, r.params->>'other'] else array[r.field] end) f)
        + (select coalesce(sum(case r.kind
                                 when 'required' then 1 when 'allowed_values' then 2
                                 when 'email' then 3 when 'phone' then 3 when 'not_ota_email' then 3
                                 when 'date_range' then 4 when 'length' then 10
                                 when 'cross_field' then 18 when 'pattern' then 16 else 0 end
                               + case when r.kind = 'pattern' and jsonb_typeof(r.params->'regex') = 'string'
                                      then app.quality_pattern_size(r.params->>'regex') / 2 else 0 end), 0)
           from r) as cost
  )
  select case
    when m.rules > 50 then format('a rule set holds at most 50 rules (this one: %s)', m.rules)
    when m.patterns > 10 then format('a rule set uses at most 10 distinct patterns (this one: %s)', m.patterns)
    when m.size > 300 then format('the patterns of a rule set may together be of size 300 at most (this one: %s; a bound {n,m} counts its part m + (m − n) times)', m.size)
    when m.cost > 200 then format('the rule set costs %s units to score, more than the limit of 200 (the default set costs 94; see docs/QUALITY.md)', m.cost)
  end
  from m
$function$;
grant execute on function app.quality_rule_set_problem(jsonb) to authenticated;
grant execute on function app.quality_rule_set_problem(jsonb) to service_role;

-- app.quality_score_changes_seen()
CREATE OR REPLACE FUNCTION app.quality_score_changes_seen()
 RETURNS bigint
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO ''
AS $function$ select last_value from app.quality_score_changes $function$;
grant execute on function app.quality_score_changes_seen() to service_role;

-- app.quality_score_select(uuid)
CREATE OR REPLACE FUNCTION app.quality_score_select(p_rule_set_id uuid)
 RETURNS text
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
declare
  v_enterprise uuid;
  v_rule record;
  v_fields text[] := '{}';
  v_field text;
  v_present text[] := '{}';
  v_flags text[] := '{}';
  v_index integer := 0;
  v_penalty text[] := '{}';
  v_reasons text[] := '{}';
  v_flips text[] := '{}';
  v_total bigint := 0;
  v_units bigint;
  v_value text;
  v_other text;
  v_same text;
  v_fail text;
  v_min integer;
  v_max integer;
begin
  select enterprise_id into v_enterprise from public.quality_rule_sets where id = p_rule_set_id;
  -- level 1: presence of every field a rule reads
  for v_field in
    select distinct f from app.quality_compiled_rules(p_rule_set_id) r,
      unnest(case when r.kind = 'cross_field' then array[r.field, r.params->>'other'] else array[r.field] end) f
    order by 1
  loop
    v_fields := v_fields || v_field;
    v_present := v_present || format('%s as present_%s', app.quality_present_sql(v_field, v_enterprise), v_field);
  end loop;
  -- level 2: each rule's verdict
  for v_rule in select * from app.quality_compiled_rules(p_rule_set_id) loop
    v_value := replace(app.quality_field_sql(v_rule.field, v_enterprise), 'p.', 'v.');
    v_units := (v_rule.cost * 10000)::bigint;        -- costs have four decimals
    v_index := v_index + 1;
    if v_rule.kind = 'required' then
      v_total := v_total + v_units;
      v_fail := format('not v.present_%s', v_rule.field);
    else
      v_other := replace(app.quality_field_sql(coalesce(v_rule.params->>'other', v_rule.field), v_enterprise), 'p.', 'v.');
      -- case-insensitive equality: lower() only when the lengths agree (lower keeps lengths)
      v_same := format('(char_length(btrim(%1$s::text)) = char_length(btrim(%2$s::text)) and lower(btrim(%1$s::text)) = lower(btrim(%2$s::text)))',
                       v_value, v_other);
      v_min := coalesce((v_rule.params->>'min_years_ago')::int, 0);
      v_max := coalesce((v_rule.params->>'max_years_ago')::int, 200);
      v_fail := case v_rule.kind
        when 'email' then 'v.email_valid is false'
        when 'phone' then 'v.phone_valid is false'
        when 'not_ota_email' then 'coalesce(v.email_ota, false)'
        when 'pattern' then format('left(%s, 255) !~ %L', v_value, v_rule.params->>'regex')
        when 'allowed_values' then format('not (%s = any (%L::text[]))', v_value,
          array(select jsonb_array_elements_text(v_rule.params->'values')))
        when 'length' then format('(char_length(%s) < %s or char_length(%s) > %s)', v_value,
          coalesce((v_rule.params->>'min')::int, 0), v_value, coalesce((v_rule.params->>'max')::int, 2147483647))
        when 'date_range' then format(
          'not (%s between (select (current_date - make_interval(years => %s))::date) and (select (current_date - make_interval(years => %s))::date))',
          v_value, v_max, v_min)
        when 'cross_field' then
          case v_rule.params->>'op'
            when 'differs' then v_same
            when 'equals' then format('not %s', v_same)
            when 'before' then format('not (%s < %s)', v_value, v_other)
            else format('not (%s > %s)', v_value, v_other) end
        end;
      v_fail := format('v.present_%s and %s coalesce(%s, false)', v_rule.field,
                       case when v_rule.kind = 'cross_field' then format('v.present_%s and', v_rule.params->>'other') else '' end,
                       v_fail);
      if v_rule.kind = 'date_range' then
        -- the days the verdict can change: the value becomes old enough, or too old (a day
        -- later on 29 February); the first of them after today
        v_flags := v_flags
          || format('(%s + make_interval(years => %s))::date as a%s', v_value, v_min, v_index)
          || format('(%s + make_interval(years => %s))::date + 1 as b%s', v_value, v_max, v_index);
        v_flips := v_flips
          || format('case when a%1$s > t.today then a%1$s when a%1$s + 1 > t.today then a%1$s + 1 end', v_index)
          || format('case when b%1$s > t.today then b%1$s when b%1$s + 1 > t.today then b%1$s + 1 end', v_index);
      end if;
    end if;
    v_flags := v_flags || format('%s as f%s', v_fail, v_index);
    v_penalty := v_penalty || format('case when f%s then %s else 0 end', v_index, v_units);
    v_reasons := v_reasons || format('case when f%s then %s end', v_index, v_rule.id);
  end loop;
  -- level 3: the score, round(100 * max(0, total - penalty) / total) half up in whole numbers,
  -- and the failed rules
  return format($q$
    select chain_id, guest_mews_id, %s as score, array_remove(array[%s]::bigint[], null) as failed_rules,
           %s as flips_on
    from (
      select v.chain_id, v.mews_id as guest_mews_id%s
      from (
        select p.*%s
        from (
          select g.chain_id, g.mews_id, g.is_active, g.first_name, g.last_name, g.email,
                 f.email_valid, g.has_ota_email as email_ota, g.phone, f.phone_valid, g.birth_date,
                 g.nationality_code, f.enriched_nationality, coalesce(f.has_address, false) as address,
                 coalesce(f.has_document, false) as identity_document, g.preferred_language_code as language,
                 f.enriched_language, g.title, g.sex, g.loyalty_code,
                 coalesce(g.company_id, f.company_id)::text as company
          from public.guests g
          left join public.guest_facts f on f.chain_id = g.chain_id and f.guest_mews_id = g.mews_id
                and ($2::uuid[] is null or f.guest_mews_id = any ($2::uuid[]))
                and ($3::uuid is null or f.guest_mews_id >= $3::uuid)
                and ($4::uuid is null or f.guest_mews_id < $4::uuid)
          where g.chain_id = $1 and g.is_active
            and ($2::uuid[] is null or g.mews_id = any ($2::uuid[]))
            and ($3::uuid is null or g.mews_id >= $3::uuid)
            and ($4::uuid is null or g.mews_id < $4::uuid)) p
        order by case when $2::uuid[] is not null then p.mews_id end
        offset 0) v
      offset 0) verdicts
    cross join (select current_date as today) t
  $q$,
    case when v_total = 0 then '100::smallint'
         else format('((200::bigint * greatest(0, %1$s - (%2$s)) + %1$s) / (2 * %1$s))::smallint', v_total,
                     coalesce(nullif(array_to_string(v_penalty, ' + '), ''), '0')) end,
    coalesce(nullif(array_to_string(v_reasons, ', '), ''), 'null'),
    case when cardinality(v_flips) = 0 then 'null::date'
         else format('least(%s)', array_to_string(v_flips, ', ')) end,
    coalesce(', ' || nullif(array_to_string(v_flags, ', '), ''), ''),
    coalesce(', ' || nullif(array_to_string(v_present, ', '), ''), ''));
end
$function$;
grant execute on function app.quality_score_select(uuid) to service_role;

-- app.quality_score_write(uuid,uuid[],uuid,uuid)
CREATE OR REPLACE FUNCTION app.quality_score_write(p_enterprise_id uuid, p_ids uuid[], p_from uuid, p_to uuid, OUT scored integer, OUT changed integer)
 RETURNS record
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
 SET jit TO 'off'
 SET work_mem TO '64MB'
 SET plan_cache_mode TO 'force_generic_plan'
 SET enable_mergejoin TO 'off'
AS $function$
declare
  v_rule_set uuid := app.quality_enabled_rule_set(p_enterprise_id);
  v_chain uuid;
  v_sql text;
  v_name text;
  v_prepare text;
  v_prepared text;
begin
  if v_rule_set is null then
    raise exception 'enterprise % has no enabled rule set', p_enterprise_id using errcode = '22023';
  end if;
  select chain_id into v_chain from public.enterprises where id = p_enterprise_id;
  v_sql := format($f$
    with scored as materialized (%s),
    old as materialized (
      select o.guest_mews_id, o.score, o.failed_rules, o.rule_set_id, o.flips_on, o.ctid as row_id
      from public.guest_scores o
      where o.enterprise_id = $5
        and ($2::uuid[] is null or o.guest_mews_id = any ($2::uuid[]))
        and ($3::uuid is null or o.guest_mews_id >= $3::uuid)
        and ($4::uuid is null or o.guest_mews_id < $4::uuid)
    ),
    history as (
      -- a score's history follows the profile; a new rule set starts a fresh baseline (its effect
      -- is in the dry run and in quality_daily)
      insert into public.guest_score_history (enterprise_id, guest_mews_id, score, previous_score, rule_set_id)
      select $5, s.guest_mews_id, s.score, o.score, $6
      from scored s join old o on o.guest_mews_id = s.guest_mews_id
      where o.rule_set_id = $6 and o.score <> s.score
    ),
    changes as materialized (
      select o.row_id, s.guest_mews_id, s.score, s.failed_rules, s.flips_on
      from scored s join old o on o.guest_mews_id = s.guest_mews_id
      where o.score <> s.score or o.failed_rules <> s.failed_rules or o.rule_set_id <> $6
         or o.flips_on is distinct from s.flips_on
    ),
    updated as (
      -- straight to each row (its ctid), whatever the planner thinks of the table's size
      update public.guest_scores t
         set score = c.score, failed_rules = c.failed_rules, rule_set_id = $6, flips_on = c.flips_on,
             scored_at = now()
        from changes c
       where t.ctid = any (array(select c2.row_id from changes c2)) and t.ctid = c.row_id
         and t.enterprise_id = $5 and t.guest_mews_id = c.guest_mews_id
      returning 1
    ),
    inserted as (
      insert into public.guest_scores (enterprise_id, chain_id, guest_mews_id, score, failed_rules,
                                       rule_set_id, flips_on, scored_at)
      select $5, s.chain_id, s.guest_mews_id, s.score, s.failed_rules, $6, s.flips_on, now()
      from scored s
      where not exists (select 1 from old o where o.guest_mews_id = s.guest_mews_id)
      /* on conflict */
      returning 1
    )
    select (select count(*) from scored)::integer,
           ((select count(*) from updated) + (select count(*) from inserted))::integer
  $f$, app.quality_compiled_sql(v_rule_set));
  if p_ids is not null then
    -- a few guests (one that changed): the statement is prepared once per session and rule set,
    -- so planning it (most of the cost) is not repeated at every call
    v_sql := regexp_replace(v_sql, '\(\$2::uuid\[\] is null or ([a-z]+\.[a-z_]+ = any \(\$2::uuid\[\]\))\)', '\1', 'g');
    v_sql := regexp_replace(v_sql, '\(\$[34]::uuid is null or [a-z]+\.[a-z_]+ [<>=]+ \$[34]::uuid\)', 'true', 'g');
    v_sql := replace(v_sql, 'order by case when $2::uuid[] is not null then p.mews_id end', 'order by p.mews_id');
    v_sql := replace(v_sql, '/* on conflict */', 'on conflict (enterprise_id, guest_mews_id) do nothing');
    v_name := 'guesthub_score_' || md5(v_sql);
    v_prepare := format('prepare %I (uuid, uuid[], uuid, uuid, uuid, uuid) as %s', v_name, v_sql);
    -- exactly this statement: one of that name the session made itself is replaced, never run
    select s.statement into v_prepared from pg_catalog.pg_prepared_statements s where s.name = v_name;
    if v_prepared is distinct from v_prepare then
      if v_prepared is not null then
        execute format('deallocate %I', v_name);
      end if;
      execute v_prepare;
    end if;
    execute format('execute %I(%L, %L, null, null, %L, %L)', v_name, v_chain, p_ids, p_enterprise_id, v_rule_set)
    into scored, changed;
  else
    begin
      -- a plain insert (a third cheaper than ON CONFLICT); a guest another writer scored
      -- meanwhile makes it fail whole, and the slice is written again, yielding to that score
      execute v_sql
      into scored, changed
      using v_chain, p_ids, p_from, p_to, p_enterprise_id, v_rule_set;
    exception when unique_violation then
      execute replace(v_sql, '/* on conflict */', 'on conflict (enterprise_id, guest_mews_id) do nothing')
      into scored, changed
      using v_chain, p_ids, p_from, p_to, p_enterprise_id, v_rule_set;
    end;
  end if;
  if changed > 0 then
    perform nextval('app.quality_score_changes');
  end if;
end
$function$;
grant execute on function app.quality_score_write(uuid,uuid[],uuid,uuid) to service_role;

-- app.quality_settings_changed()
CREATE OR REPLACE FUNCTION app.quality_settings_changed()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  delete from app.quality_compiled c
   using public.quality_rule_sets s
   where s.id = c.rule_set_id and s.enterprise_id = coalesce(new.enterprise_id, old.enterprise_id);
  perform app.quality_state_bump(coalesce(new.enterprise_id, old.enterprise_id));
  return null;
end
$function$;

-- app.quality_state(uuid)
CREATE OR REPLACE FUNCTION app.quality_state(p_enterprise_id uuid)
 RETURNS public.quality_score_state
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_state public.quality_score_state;
begin
  select * into v_state from public.quality_score_state where enterprise_id = p_enterprise_id;
  if not found then
    insert into public.quality_score_state (enterprise_id) values (p_enterprise_id)
    on conflict (enterprise_id) do nothing;
    select * into v_state from public.quality_score_state where enterprise_id = p_enterprise_id;
  end if;
  return v_state;
end
$function$;
grant execute on function app.quality_state(uuid) to service_role;

-- app.quality_state_bump(uuid)
CREATE OR REPLACE FUNCTION app.quality_state_bump(p_enterprise_id uuid)
 RETURNS void
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  insert into public.quality_score_state as s (enterprise_id, version) values (p_enterprise_id, 1)
  on conflict (enterprise_id) do update set version = s.version + 1, retry_at = null
$function$;

-- app.rate_limit_decreased(integer,integer,integer)
CREATE OR REPLACE FUNCTION app.rate_limit_decreased(p_limit integer, p_used integer, p_ceiling integer)
 RETURNS integer
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO ''
AS $function$
  select greatest(1, ceil(p_ceiling * 0.1)::integer, floor(least(p_limit, p_used) * 0.9)::integer)
$function$;
grant execute on function app.rate_limit_decreased(integer,integer,integer) to service_role;

-- app.rate_limit_increased(integer,integer)
CREATE OR REPLACE FUNCTION app.rate_limit_increased(p_limit integer, p_ceiling integer)
 RETURNS integer
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO ''
AS $function$
  select nullif(least(p_ceiling, p_limit + greatest(1, ceil(p_ceiling * 0.05)::integer)), p_ceiling)
$function$;
grant execute on function app.rate_limit_increased(integer,integer) to service_role;

-- app.readable_chain_ids()
CREATE OR REPLACE FUNCTION app.readable_chain_ids()
 RETURNS uuid[]
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO ''
AS $function$
  select coalesce(array_agg(distinct coalesce(m.chain_id, e.chain_id)), '{}')
  from public.memberships m
  left join public.enterprises e on e.id = m.enterprise_id
  where m.user_id = auth.uid()
$function$;
grant execute on function app.readable_chain_ids() to authenticated;
grant execute on function app.readable_chain_ids() to service_role;

-- app.readable_enterprise_ids()
CREATE OR REPLACE FUNCTION app.readable_enterprise_ids()
 RETURNS uuid[]
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO ''
AS $function$
  select coalesce(array_agg(distinct e.id), '{}')
  from public.memberships m
  join public.enterprises e on e.id = m.enterprise_id or e.chain_id = m.chain_id
  where m.user_id = auth.uid()
$function$;
grant execute on function app.readable_enterprise_ids() to authenticated;
grant execute on function app.readable_enterprise_ids() to service_role;

-- app.redact_body(text)
CREATE OR REPLACE FUNCTION app.redact_body(p_raw text)
 RETURNS text
 LANGUAGE plpgsql
 IMMUTABLE
 SET search_path TO ''
AS $function$
declare
  v_json jsonb;
  v_redacted jsonb;
begin
  if p_raw is null or p_raw !~* '(accesstoken|apikey|clienttoken|token=|\\u)' then
    return p_raw;
  end if;
  begin
    v_json := p_raw::jsonb;
  exception when others then
    return app.redact_text(p_raw);
  end;
  v_redacted := app.redact_jsonb(v_json);
  return case when v_redacted = v_json then p_raw else v_redacted::text end;
end
$function$;
grant execute on function app.redact_body(text) to service_role;

-- app.redact_jsonb(jsonb)
CREATE OR REPLACE FUNCTION app.redact_jsonb(p_value jsonb)
 RETURNS jsonb
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO ''
AS $function$
  select case jsonb_typeof(p_value)
    when 'object' then (
      select coalesce(jsonb_object_agg(e.key, case when app.is_secret_key(e.key) then to_jsonb('[redacted]'::text)
                                                   else app.redact_jsonb(e.value) end), '{}'::jsonb)
      from jsonb_each(p_value) e)
    when 'array' then (
      select coalesce(jsonb_agg(app.redact_jsonb(a.value) order by a.ordinality), '[]'::jsonb)
      from jsonb_array_elements(p_value) with ordinality a)
    else p_value end
$function$;
grant execute on function app.redact_jsonb(jsonb) to service_role;

-- app.redact_text(text)
CREATE OR REPLACE FUNCTION app.redact_text(p_raw text)
 RETURNS text
 LANGUAGE plpgsql
 IMMUTABLE
 SET search_path TO ''
AS $function$
declare
  v_keys text;
begin
  -- the member keys of the text, as written, that decode to a secret name: as regex literals
  select string_agg(distinct regexp_replace(m[1], '([\\^$.|?*+()\[\]{}])', '\\\1', 'g'), '|')
    into v_keys
    from regexp_matches(p_raw, '"((?:[^"\\]|\\.)*)"\s*:', 'g') m
   where app.is_secret_key(coalesce(app.json_string_text(m[1]), m[1]));
  if v_keys is not null then
    p_raw := regexp_replace(
      p_raw,
      '("(?:' || v_keys || ')"\s*:\s*)(?:"(?:[^"\\]|\\.)*"?|[{\[].*|[^\s,}\]"]+)',
      '\1"[redacted]"', 'g');
  end if;
  return regexp_replace(p_raw, '(^|[^[:alnum:]_%.~-])((?:accesstoken|apikey|clienttoken|token)=)[^&\s"''#<>]+',
                        '\1\2[redacted]', 'gi');
end
$function$;
grant execute on function app.redact_text(text) to service_role;

-- app.reservations_from_records(uuid,jsonb)
CREATE OR REPLACE FUNCTION app.reservations_from_records(p_scope_id uuid, p_records jsonb)
 RETURNS TABLE(enterprise_id uuid, mews_id uuid, service_id uuid, account_id uuid, account_type text, booker_id uuid, number text, state text, origin text, purpose text, scheduled_start_utc timestamp with time zone, scheduled_end_utc timestamp with time zone, actual_start_utc timestamp with time zone, actual_end_utc timestamp with time zone, cancelled_utc timestamp with time zone, assigned_resource_id uuid, partner_company_id uuid, travel_agency_id uuid, person_count integer, mews_created_utc timestamp with time zone, mews_updated_utc timestamp with time zone, raw jsonb)
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select p_scope_id, r."Id", r."ServiceId", r."AccountId", r."AccountType", r."BookerId",
         r."Number", r."State", r."Origin", r."Purpose",
         (case when left(r."ScheduledStartUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."ScheduledStartUtc"
               when length(r."ScheduledStartUtc") > 26 then regexp_replace(r."ScheduledStartUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."ScheduledStartUtc" end)::timestamptz,
         (case when left(r."ScheduledEndUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."ScheduledEndUtc"
               when length(r."ScheduledEndUtc") > 26 then regexp_replace(r."ScheduledEndUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."ScheduledEndUtc" end)::timestamptz,
         (case when left(r."ActualStartUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."ActualStartUtc"
               when length(r."ActualStartUtc") > 26 then regexp_replace(r."ActualStartUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."ActualStartUtc" end)::timestamptz,
         (case when left(r."ActualEndUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."ActualEndUtc"
               when length(r."ActualEndUtc") > 26 then regexp_replace(r."ActualEndUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."ActualEndUtc" end)::timestamptz,
         (case when left(r."CancelledUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."CancelledUtc"
               when length(r."CancelledUtc") > 26 then regexp_replace(r."CancelledUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."CancelledUtc" end)::timestamptz,
         r."AssignedResourceId", r."PartnerCompanyId", r."TravelAgencyId",
         (select coalesce(sum(trunc(coalesce(nullif(c->>'Count', ''), '0')::numeric)), 0)
            from jsonb_array_elements(case jsonb_typeof(e.raw->'PersonCounts')
                                      when 'array' then e.raw->'PersonCounts' else '[]' end) as c
           where jsonb_typeof(c) = 'object')::integer,
         (case when left(r."CreatedUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."CreatedUtc"
               when length(r."CreatedUtc") > 26 then regexp_replace(r."CreatedUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."CreatedUtc" end)::timestamptz,
         (case when left(r."UpdatedUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."UpdatedUtc"
               when length(r."UpdatedUtc") > 26 then regexp_replace(r."UpdatedUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."UpdatedUtc" end)::timestamptz,
         e.raw
  from jsonb_array_elements(p_records) as e(raw)
  cross join lateral jsonb_to_record(e.raw) as r(
    "Id" uuid, "ServiceId" uuid, "AccountId" uuid, "AccountType" text, "BookerId" uuid,
    "Number" text, "State" text, "Origin" text, "Purpose" text, "ScheduledStartUtc" text,
    "ScheduledEndUtc" text, "ActualStartUtc" text, "ActualEndUtc" text, "CancelledUtc" text,
    "AssignedResourceId" uuid, "PartnerCompanyId" uuid, "TravelAgencyId" uuid,
    "CreatedUtc" text, "UpdatedUtc" text)
$function$;
grant execute on function app.reservations_from_records(uuid,jsonb) to service_role;

-- app.resources_from_records(uuid,jsonb)
CREATE OR REPLACE FUNCTION app.resources_from_records(p_scope_id uuid, p_records jsonb)
 RETURNS TABLE(enterprise_id uuid, mews_id uuid, name text, state text, is_active boolean, parent_resource_id uuid, floor_number text, mews_created_utc timestamp with time zone, mews_updated_utc timestamp with time zone, raw jsonb)
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select r."EnterpriseId", r."Id", r."Name", r."State",
         case when e.raw ? 'IsActive' then r."IsActive" else true end,
         r."ParentResourceId",
         case when jsonb_typeof(e.raw->'Data'->'Value') = 'object'
              then e.raw->'Data'->'Value'->>'FloorNumber' end,
         (case when left(r."CreatedUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."CreatedUtc"
               when length(r."CreatedUtc") > 26 then regexp_replace(r."CreatedUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."CreatedUtc" end)::timestamptz,
         (case when left(r."UpdatedUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."UpdatedUtc"
               when length(r."UpdatedUtc") > 26 then regexp_replace(r."UpdatedUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."UpdatedUtc" end)::timestamptz,
         e.raw
  from jsonb_array_elements(p_records) as e(raw)
  cross join lateral jsonb_to_record(e.raw) as r(
    "Id" uuid, "EnterpriseId" uuid, "Name" text, "State" text, "IsActive" boolean,
    "ParentResourceId" uuid, "CreatedUtc" text, "UpdatedUtc" text)
$function$;
grant execute on function app.resources_from_records(uuid,jsonb) to service_role;

-- app.run_gone(public.sync_runs,integer)
CREATE OR REPLACE FUNCTION app.run_gone(p_run public.sync_runs, p_stale_seconds integer)
 RETURNS text
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  select case
    when p_run.status <> 'running' then 'over: ' || p_run.status
    when p_run.session_id is not null and pg_catalog.pg_try_advisory_xact_lock(app.session_key(p_run.session_id))
      then format('abandoned: its process (%s) ended; its database session is gone (last heartbeat %s)',
                  coalesce(p_run.owner, 'unknown'),
                  to_char(p_run.heartbeat_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
    when p_stale_seconds is not null
         and p_run.heartbeat_at < now() - make_interval(secs => greatest(p_stale_seconds, 1))
      then format('abandoned: no heartbeat since %s (process %s)',
                  to_char(p_run.heartbeat_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                  coalesce(p_run.owner, 'unknown'))
  end
$function$;
grant execute on function app.run_gone(public.sync_runs,integer) to service_role;

-- app.secret_keys()
CREATE OR REPLACE FUNCTION app.secret_keys()
 RETURNS text[]
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO ''
AS $function$ select array['AccessToken', 'ApiKey', 'ClientToken'] $function$;
grant execute on function app.secret_keys() to service_role;

-- app.session_alive(uuid)
CREATE OR REPLACE FUNCTION app.session_alive(p_session uuid)
 RETURNS boolean
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select exists (
    select 1 from pg_catalog.pg_locks l
     where l.locktype = 'advisory' and l.granted and l.objsubid = 1
       and l.database = (select d.oid from pg_catalog.pg_database d where d.datname = current_database())
       and ((l.classid::bigint << 32) | l.objid::bigint) = app.session_key(p_session))
$function$;
grant execute on function app.session_alive(uuid) to authenticated;
grant execute on function app.session_alive(uuid) to service_role;

-- app.session_key(uuid)
CREATE OR REPLACE FUNCTION app.session_key(p_session uuid)
 RETURNS bigint
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO ''
AS $function$ select pg_catalog.hashtextextended('guesthub.session:' || p_session::text, 0) $function$;
grant execute on function app.session_key(uuid) to authenticated;
grant execute on function app.session_key(uuid) to service_role;

-- app.sync_attention(jsonb)
CREATE OR REPLACE FUNCTION app.sync_attention(p_status jsonb)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select coalesce(jsonb_agg(a.item order by a.n, a.item->>'message'), '[]'::jsonb)
  from (
    select 1 as n, jsonb_build_object('check', 'dead_letters', 'message',
             (p_status->'inbox'->>'dead') || ' dead letter(s) in the inbox (guesthub events replay)') as item
     where (p_status->'inbox'->>'dead')::bigint > 0
    union all
    select 2, jsonb_build_object('check', 'token_unauthorized', 'message',
             'Mews refuses an access token (401) since '
             || to_char((t->>'unauthorized_since')::timestamptz at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')
             || ': its jobs are paused')
      from jsonb_array_elements(coalesce(p_status->'tokens', '[]'::jsonb)) t
     where t->>'unauthorized_since' is not null and not coalesce((t->>'superseded')::boolean, false)
    union all
    select 3, jsonb_build_object('check', 'failed_run', 'message',
             'the last ' || (r->>'job') || ' run ' || (r->>'status'))
      from jsonb_array_elements(coalesce(p_status->'runs', '[]'::jsonb)) r
     where r->>'status' in ('failed', 'abandoned')
    union all
    select 3, jsonb_build_object('check', 'partial_run', 'message',
             'the last ' || (r->>'job') || ' run was partial: it left work for the next run'
             || ' (guesthub status names what)')
      from jsonb_array_elements(coalesce(p_status->'runs', '[]'::jsonb)) r
     where r->>'status' = 'partial'
    union all
    select 4, jsonb_build_object('check', 'lag', 'message',
             round((p_status->'poll'->>'lag_seconds')::numeric / 60) || ' min behind Mews (newest poll high-water mark; more than 30 min)')
     where (p_status->'poll'->>'lag_seconds')::numeric > 1800
    union all
    select 5, jsonb_build_object('check', 'inbox_waiting', 'message',
             'the oldest inbox event has waited ' || round((p_status->'inbox'->>'oldest_waiting_seconds')::numeric / 60)
             || ' min (more than 15 min)')
     where (p_status->'inbox'->>'oldest_waiting_seconds')::numeric > 900
    union all
    select 6, jsonb_build_object('check', 'first_load', 'message',
             'the first load of ' || (f->>'entity') || ' has not completed (begun '
             || to_char((f->>'updated_at')::timestamptz at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')
             || ', ' || (f->>'windows_done') || ' window(s) done): the data is incomplete'
             || ' (guesthub sync backfill)')
      from jsonb_array_elements(app.sync_first_loads_open((p_status->>'id')::uuid,
                                                          (p_status->>'chain_id')::uuid)) f
    union all
    select 7, jsonb_build_object('check', 'dead_run', 'message',
             'the last ' || (r->>'job') || ' run is still recorded running but '
             || case when (r->>'gone')::boolean then 'its process is gone'
                     else 'has not heartbeat since '
                          || to_char((r->>'heartbeat_at')::timestamptz at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"') end
             || coalesce(' (' || (r->>'owner') || ')', '') || ': the next job marks it abandoned')
      from jsonb_array_elements(coalesce(p_status->'runs', '[]'::jsonb)) r
     where r->>'status' = 'running'
       and ((r->>'gone')::boolean or (r->>'heartbeat_at')::timestamptz < now() - interval '5 minutes')
  ) a
$function$;
grant execute on function app.sync_attention(jsonb) to authenticated;
grant execute on function app.sync_attention(jsonb) to service_role;

-- app.sync_first_loads_open(uuid,uuid)
CREATE OR REPLACE FUNCTION app.sync_first_loads_open(p_enterprise_id uuid, p_chain_id uuid)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select coalesce(jsonb_agg(jsonb_build_object(
           'entity', k.entity, 'since', k.low_water_utc, 'updated_at', k.updated_at,
           'windows_done', jsonb_array_length(coalesce(k.state->'done', '[]'::jsonb)))
           order by k.entity), '[]'::jsonb)
  from public.sync_checkpoints k
  where k.phase = 'backfill' and k.high_water_utc is null and k.scope_id in (p_enterprise_id, p_chain_id)
$function$;
grant execute on function app.sync_first_loads_open(uuid,uuid) to authenticated;
grant execute on function app.sync_first_loads_open(uuid,uuid) to service_role;

-- app.sync_last_runs(uuid[],boolean)
CREATE OR REPLACE FUNCTION app.sync_last_runs(p_scope_ids uuid[], p_with_errors boolean)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  with recursive jobs (job) as (
    (select r.job from public.sync_runs r order by r.job limit 1)
    union all
    select (select r.job from public.sync_runs r where r.job > j.job order by r.job limit 1)
    from jobs j where j.job is not null
  )
  select coalesce(jsonb_agg(jsonb_build_object(
           'job', l.job, 'status', l.status, 'started_at', l.started_at, 'finished_at', l.finished_at,
           'scope_id', l.scope_id, 'error', case when p_with_errors then l.error end)
           || case when l.status = 'running' then jsonb_build_object(
                'heartbeat_at', l.heartbeat_at,
                'gone', l.session_id is not null and not app.session_alive(l.session_id),
                'owner', case when p_with_errors then l.owner end) else '{}'::jsonb end
           order by l.job), '[]'::jsonb)
  from jobs j
  cross join lateral (
    select r.job, r.status, r.started_at, r.finished_at, r.scope_id, r.error, r.heartbeat_at,
           r.session_id, r.owner
    from public.sync_runs r
    where r.job = j.job
      and case when p_scope_ids is null then r.scope_id is null else r.scope_id = any (p_scope_ids) end
    order by r.started_at desc
    limit 1) l
  where j.job is not null
$function$;
grant execute on function app.sync_last_runs(uuid[],boolean) to authenticated;
grant execute on function app.sync_last_runs(uuid[],boolean) to service_role;

-- app.sync_last_unscoped_runs(uuid[],boolean)
CREATE OR REPLACE FUNCTION app.sync_last_unscoped_runs(p_connection_ids uuid[], p_with_errors boolean)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  with recursive jobs (job) as (
    (select r.job from public.sync_runs r order by r.job limit 1)
    union all
    select (select r.job from public.sync_runs r where r.job > j.job order by r.job limit 1)
    from jobs j where j.job is not null
  )
  select coalesce(jsonb_agg(jsonb_build_object(
           'job', l.job, 'status', l.status, 'started_at', l.started_at, 'finished_at', l.finished_at,
           'scope_id', null, 'error', case when p_with_errors then l.error end)
           || case when l.status = 'running' then jsonb_build_object(
                'heartbeat_at', l.heartbeat_at,
                'gone', l.session_id is not null and not app.session_alive(l.session_id),
                'owner', case when p_with_errors then l.owner end) else '{}'::jsonb end
           order by l.job), '[]'::jsonb)
  from jobs j
  cross join lateral (
    select r.job, r.status, r.started_at, r.finished_at, r.error, r.heartbeat_at, r.session_id, r.owner
    from public.sync_runs r
    where r.job = j.job and r.scope_id is null
      and (p_connection_ids is null or r.connection_id is null or r.connection_id = any (p_connection_ids))
    order by r.started_at desc
    limit 1) l
  where j.job is not null
$function$;

-- app.sync_private_health(uuid)
CREATE OR REPLACE FUNCTION app.sync_private_health(p_enterprise_id uuid)
 RETURNS jsonb
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO ''
AS $function$
  with caller as (select app.caller_is_trusted() as trusted),
  mine as (  -- the connections covering the enterprise, and their tokens' budget keys
    select coalesce(array_agg(c.integration_id), '{}') as ids,
           coalesce(array_agg(c.token_key) filter (where c.token_key is not null), '{}') as keys
    from public.connections c
    where p_enterprise_id = any (c.enterprise_ids) or c.enterprise_id = p_enterprise_id)
  select case when c.trusted or p_enterprise_id = any (app.readable_enterprise_ids()) then
    jsonb_build_object(
      'inbox', (
        select jsonb_build_object(
                 'waiting', count(*) filter (where i.status <> 'dead'),
                 'oldest_waiting_at', min(i.received_at) filter (where i.status <> 'dead'),
                 'oldest_waiting_seconds',
                   floor(extract(epoch from now() - min(i.received_at) filter (where i.status <> 'dead'))),
                 'dead', count(*) filter (where i.status = 'dead'))
        from public.event_inbox i
        where i.status in ('pending', 'processing', 'failed', 'dead')
          and (i.enterprise_id = p_enterprise_id
               or i.enterprise_id is null and (c.trusted or i.integration_id = any (m.ids)))),
      'runs', app.sync_last_unscoped_runs(case when not c.trusted then m.ids end, c.trusted),
      'quarantine_unscoped', (
        select count(*) from public.quarantine q
        where q.scope_id is null and q.resolved_at is null
          and (c.trusted or exists (select 1 from public.sync_runs r
                                    where r.id = q.run_id and r.connection_id = any (m.ids)))),
      'tokens', (
        select coalesce(jsonb_agg(t.token order by t.unauthorized_at desc nulls last, t.last_request_at desc nulls last), '[]'::jsonb)
        from (
          select s.unauthorized_at, h.last_request_at,
                 jsonb_build_object(
                   'unauthorized_since', s.unauthorized_at,
                   'superseded', s.unauthorized_at is not null
                                 and s.key <> all (m.keys)
                                 and exists (select 1 from public.rate_limit_hits o
                                             where o.key <> s.key and o.at > s.unauthorized_at),
                   'used_last_30s', h.recent,
                   'adapted_limit', s.adapted_limit,
                   'adapted_at', s.adapted_at,
                   'last_request_at', h.last_request_at,
                   'paused_until', case when s.paused_until > now() then s.paused_until end)
                 || case when c.trusted then jsonb_build_object('key', s.key, 'error', s.unauthorized_error)
                         else '{}'::jsonb end as token
          from public.rate_limit_state s
          cross join lateral (
            select max(x.at) as last_request_at,
                   count(*) filter (where x.at > now() - interval '30 seconds') as recent
            from public.rate_limit_hits x where x.key = s.key) h
          where (c.trusted or s.key = any (m.keys))
            and (s.unauthorized_at is not null or h.last_request_at > now() - interval '1 day')) t))
  end
  from caller c cross join mine m
$function$;
grant execute on function app.sync_private_health(uuid) to authenticated;
grant execute on function app.sync_private_health(uuid) to service_role;

-- app.touch_updated_at()
CREATE OR REPLACE FUNCTION app.touch_updated_at()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
begin
  new.updated_at := now();
  return new;
end
$function$;

-- app.uuids(jsonb)
CREATE OR REPLACE FUNCTION app.uuids(p_ids jsonb)
 RETURNS uuid[]
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO ''
AS $function$
  select coalesce(array(select (jsonb_array_elements_text(
           case when jsonb_typeof(p_ids) = 'array' then p_ids else '[]'::jsonb end))::uuid), '{}')
$function$;
grant execute on function app.uuids(jsonb) to service_role;

-- app.vendors_from_records(uuid,jsonb)
CREATE OR REPLACE FUNCTION app.vendors_from_records(p_scope_id uuid, p_records jsonb)
 RETURNS TABLE(chain_id uuid, mews_id uuid, name text, number numeric, is_active boolean, mother_company_id uuid, invoicing_email text, telephone text, contact_person text, tax_identifier text, iata text, merge_target_id uuid, mews_created_utc timestamp with time zone, mews_updated_utc timestamp with time zone, raw jsonb)
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select r."ChainId", r."Id", r."Name", r."Number",
         case when e.raw ? 'IsActive' then r."IsActive" else true end,
         r."MotherCompanyId", r."InvoicingEmail", r."Telephone",
         case when e.raw ? 'ContactPerson' then e.raw->>'ContactPerson' else e.raw->>'ContacPerson' end,
         r."TaxIdentifier", e.raw->>'Iata', r."MergeTargetId",
         (case when left(r."CreatedUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."CreatedUtc"
               when length(r."CreatedUtc") > 26 then regexp_replace(r."CreatedUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."CreatedUtc" end)::timestamptz,
         (case when left(r."UpdatedUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."UpdatedUtc"
               when length(r."UpdatedUtc") > 26 then regexp_replace(r."UpdatedUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."UpdatedUtc" end)::timestamptz,
         e.raw
  from jsonb_array_elements(p_records) as e(raw)
  cross join lateral jsonb_to_record(e.raw) as r(
    "Id" uuid, "ChainId" uuid, "Name" text, "Number" numeric, "IsActive" boolean,
    "MotherCompanyId" uuid, "InvoicingEmail" text, "Telephone" text, "TaxIdentifier" text,
    "MergeTargetId" uuid, "CreatedUtc" text, "UpdatedUtc" text)
$function$;
grant execute on function app.vendors_from_records(uuid,jsonb) to service_role;


-- ================================================================================================
-- schema public
-- ================================================================================================

grant usage on schema public to anon;
grant usage on schema public to authenticated;
grant usage on schema public to public;
grant usage on schema public to service_role;
comment on schema public is 'standard public schema';

-- public.app_users
create table public.app_users (
    id uuid not null,
    email text not null,
    display_name text,
    created_at timestamp with time zone default now() not null,
    updated_at timestamp with time zone default now() not null
);
alter table public.app_users add constraint app_users_pkey PRIMARY KEY (id);
alter table public.app_users add constraint app_users_id_fkey FOREIGN KEY (id) REFERENCES auth.users(id) ON DELETE CASCADE;
alter table public.app_users add constraint app_users_display_name_max_200_chars CHECK (char_length(display_name) <= 200) NOT VALID;
alter table public.app_users add constraint app_users_email_max_1000_chars CHECK (char_length(email) <= 1000) NOT VALID;
alter table public.app_users enable row level security;
create policy app_users_read on public.app_users as permissive for select to authenticated
    using (id = (( SELECT auth.uid() AS uid)) OR (EXISTS ( SELECT 1
   FROM public.memberships m
  WHERE m.user_id = app_users.id AND ((m.enterprise_id = ANY ((( SELECT app.readable_enterprise_ids() AS readable_enterprise_ids))::uuid[])) OR (m.chain_id = ANY ((( SELECT app.readable_chain_ids() AS readable_chain_ids))::uuid[]))))));
create policy app_users_update_self on public.app_users as permissive for update to authenticated
    using (id = (( SELECT auth.uid() AS uid)))
    with check (id = (( SELECT auth.uid() AS uid)));
CREATE TRIGGER app_users_touch BEFORE UPDATE ON public.app_users FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
grant select on table public.app_users to authenticated;
grant select, insert, update, delete on table public.app_users to service_role;
grant update (display_name) on table public.app_users to authenticated;

-- public.chains
create table public.chains (
    id uuid not null,
    name text not null,
    created_at timestamp with time zone default now() not null,
    updated_at timestamp with time zone default now() not null
);
alter table public.chains add constraint chains_pkey PRIMARY KEY (id);
alter table public.chains add constraint chains_name_max_1000_chars CHECK (char_length(name) <= 1000) NOT VALID;
alter table public.chains enable row level security;
create policy chains_read on public.chains as permissive for select to authenticated
    using (id = ANY ((( SELECT app.readable_chain_ids() AS readable_chain_ids))::uuid[]));
CREATE TRIGGER chains_touch BEFORE UPDATE ON public.chains FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
grant select on table public.chains to authenticated;
grant select, insert, update, delete on table public.chains to service_role;

-- public.conflict_log
create table public.conflict_log (
    id bigint generated always as identity not null,
    chain_id uuid not null,
    guest_mews_id uuid not null,
    field text,
    local_value jsonb,
    mews_value jsonb,
    resolution text not null,
    detail text,
    local_edited_at timestamp with time zone,
    mews_updated_utc timestamp with time zone,
    created_at timestamp with time zone default now() not null
);
alter table public.conflict_log add constraint conflict_log_pkey PRIMARY KEY (id);
alter table public.conflict_log add constraint conflict_log_detail_max_100000_chars CHECK (char_length(detail) <= 100000) NOT VALID;
alter table public.conflict_log add constraint conflict_log_field_max_1000_chars CHECK (char_length(field) <= 1000) NOT VALID;
alter table public.conflict_log add constraint conflict_log_local_value_max_1048576_bytes CHECK (pg_column_size(local_value) <= 1048576) NOT VALID;
alter table public.conflict_log add constraint conflict_log_mews_value_max_1048576_bytes CHECK (pg_column_size(mews_value) <= 1048576) NOT VALID;
alter table public.conflict_log add constraint conflict_log_resolution_check CHECK (resolution = ANY (ARRAY['mews_won'::text, 'local_won'::text, 'refused_by_mews'::text]));
CREATE INDEX conflict_log_guest_idx ON public.conflict_log USING btree (chain_id, guest_mews_id, created_at DESC);
alter table public.conflict_log enable row level security;
create policy conflict_log_read on public.conflict_log as permissive for select to authenticated
    using (chain_id = ANY ((( SELECT app.readable_chain_ids() AS readable_chain_ids))::uuid[]));
alter publication supabase_realtime add table public.conflict_log;
grant select on table public.conflict_log to authenticated;
grant select, insert, update, delete on table public.conflict_log to service_role;

-- public.connection_jobs
create table public.connection_jobs (
    integration_id uuid not null,
    job text not null,
    lease_holder text,
    lease_expires_at timestamp with time zone,
    last_started_at timestamp with time zone,
    last_finished_at timestamp with time zone,
    last_status text,
    last_succeeded_at timestamp with time zone,
    last_error text
);
alter table public.connection_jobs add constraint connection_jobs_pkey PRIMARY KEY (integration_id, job);
alter table public.connection_jobs add constraint connection_jobs_integration_id_fkey FOREIGN KEY (integration_id) REFERENCES public.connections(integration_id) ON DELETE CASCADE;
alter table public.connection_jobs add constraint connection_jobs_job_max_1000_chars CHECK (char_length(job) <= 1000) NOT VALID;
alter table public.connection_jobs add constraint connection_jobs_last_error_max_100000_chars CHECK (char_length(last_error) <= 100000) NOT VALID;
alter table public.connection_jobs add constraint connection_jobs_last_status_max_1000_chars CHECK (char_length(last_status) <= 1000) NOT VALID;
alter table public.connection_jobs add constraint connection_jobs_lease_holder_max_1000_chars CHECK (char_length(lease_holder) <= 1000) NOT VALID;
alter table public.connection_jobs enable row level security;
grant select, insert, update, delete on table public.connection_jobs to service_role;

-- public.connections
create table public.connections (
    integration_id uuid not null,
    enterprise_id uuid,
    enterprise_name text,
    access_token_encrypted text,
    status text default 'active'::text not null,
    last_action text not null,
    updated_at timestamp with time zone default now() not null,
    source text default 'webhook'::text not null,
    token_key text,
    enterprise_ids uuid[] default '{}'::uuid[] not null,
    chain_ids uuid[] default '{}'::uuid[] not null,
    is_portfolio boolean default false not null,
    discovered_at timestamp with time zone,
    created_at timestamp with time zone default now() not null
);
alter table public.connections add constraint connections_pkey PRIMARY KEY (integration_id);
alter table public.connections add constraint connections_access_token_encrypted_max_10000_chars CHECK (char_length(access_token_encrypted) <= 10000) NOT VALID;
alter table public.connections add constraint connections_enterprise_name_max_100000_chars CHECK (char_length(enterprise_name) <= 100000) NOT VALID;
alter table public.connections add constraint connections_last_action_max_1000_chars CHECK (char_length(last_action) <= 1000) NOT VALID;
alter table public.connections add constraint connections_source_check CHECK (source = ANY (ARRAY['webhook'::text, 'manual'::text, 'environment'::text]));
alter table public.connections add constraint connections_status_check CHECK (status = ANY (ARRAY['active'::text, 'disabled'::text, 'canceled'::text, 'deleted'::text]));
alter table public.connections add constraint connections_token_key_max_1000_chars CHECK (char_length(token_key) <= 1000) NOT VALID;
CREATE INDEX connections_enterprise_ids_idx ON public.connections USING gin (enterprise_ids);
alter table public.connections enable row level security;
create policy connections_read on public.connections as permissive for select to authenticated
    using (enterprise_ids <@ (( SELECT app.readable_enterprise_ids() AS readable_enterprise_ids)) AND (enterprise_id IS NULL OR (enterprise_id = ANY ((( SELECT app.readable_enterprise_ids() AS readable_enterprise_ids))::uuid[]))) AND (cardinality(enterprise_ids) > 0 OR enterprise_id IS NOT NULL));
grant select, insert, update, delete on table public.connections to service_role;
grant select (integration_id, enterprise_id, enterprise_name, status, last_action, updated_at, source, enterprise_ids, is_portfolio, discovered_at, created_at) on table public.connections to authenticated;

-- public.duplicate_decision_log
create table public.duplicate_decision_log (
    id bigint generated always as identity not null,
    chain_id uuid not null,
    guest_a uuid not null,
    guest_b uuid not null,
    event text not null,
    survivor uuid,
    fingerprint_a text,
    fingerprint_b text,
    note text,
    detail text,
    actor uuid,
    run_id uuid,
    at timestamp with time zone default now() not null
);
alter table public.duplicate_decision_log add constraint duplicate_decision_log_pkey PRIMARY KEY (id);
alter table public.duplicate_decision_log add constraint duplicate_decision_log_chain_id_fkey FOREIGN KEY (chain_id) REFERENCES public.chains(id) ON DELETE CASCADE;
alter table public.duplicate_decision_log add constraint duplicate_decision_log_detail_check CHECK (char_length(detail) <= 2000);
alter table public.duplicate_decision_log add constraint duplicate_decision_log_event_check CHECK (event = ANY (ARRAY['same'::text, 'different'::text, 'merged'::text, 'merge_failed'::text, 'merge_retry'::text]));
alter table public.duplicate_decision_log add constraint duplicate_decision_log_fingerprint_a_check CHECK (char_length(fingerprint_a) <= 64);
alter table public.duplicate_decision_log add constraint duplicate_decision_log_fingerprint_b_check CHECK (char_length(fingerprint_b) <= 64);
alter table public.duplicate_decision_log add constraint duplicate_decision_log_note_check CHECK (char_length(note) <= 1000);
CREATE INDEX duplicate_decision_log_pair_idx ON public.duplicate_decision_log USING btree (chain_id, guest_a, guest_b, at DESC);
alter table public.duplicate_decision_log enable row level security;
create policy duplicate_decision_log_read on public.duplicate_decision_log as permissive for select to authenticated
    using (chain_id = ANY ((( SELECT app.readable_chain_ids() AS readable_chain_ids))::uuid[]));
grant select on table public.duplicate_decision_log to authenticated;
grant select, insert on table public.duplicate_decision_log to service_role;

-- public.duplicate_decisions
create table public.duplicate_decisions (
    chain_id uuid not null,
    guest_a uuid not null,
    guest_b uuid not null,
    decision text not null,
    survivor uuid,
    fingerprint_a text not null,
    fingerprint_b text not null,
    note text,
    decided_by uuid,
    decided_at timestamp with time zone default now() not null,
    merge_status text,
    merge_error text,
    merge_attempts integer default 0 not null,
    merge_updated_at timestamp with time zone
);
alter table public.duplicate_decisions add constraint duplicate_decisions_pkey PRIMARY KEY (chain_id, guest_a, guest_b);
alter table public.duplicate_decisions add constraint duplicate_decisions_chain_id_fkey FOREIGN KEY (chain_id) REFERENCES public.chains(id) ON DELETE CASCADE;
alter table public.duplicate_decisions add constraint duplicate_decisions_check CHECK (guest_a < guest_b);
alter table public.duplicate_decisions add constraint duplicate_decisions_check1 CHECK (survivor IS NULL OR decision = 'same'::text AND (survivor = guest_a OR survivor = guest_b));
alter table public.duplicate_decisions add constraint duplicate_decisions_check2 CHECK ((survivor IS NULL) = (merge_status IS NULL));
alter table public.duplicate_decisions add constraint duplicate_decisions_decision_check CHECK (decision = ANY (ARRAY['same'::text, 'different'::text]));
alter table public.duplicate_decisions add constraint duplicate_decisions_fingerprint_a_check CHECK (char_length(fingerprint_a) <= 64);
alter table public.duplicate_decisions add constraint duplicate_decisions_fingerprint_b_check CHECK (char_length(fingerprint_b) <= 64);
alter table public.duplicate_decisions add constraint duplicate_decisions_merge_error_check CHECK (char_length(merge_error) <= 2000);
alter table public.duplicate_decisions add constraint duplicate_decisions_merge_status_check CHECK (merge_status = ANY (ARRAY['pending'::text, 'merged'::text, 'failed'::text]));
alter table public.duplicate_decisions add constraint duplicate_decisions_note_check CHECK (char_length(note) <= 1000);
CREATE INDEX duplicate_decisions_merge_idx ON public.duplicate_decisions USING btree (decided_at) WHERE (merge_status = 'pending'::text);
alter table public.duplicate_decisions enable row level security;
create policy duplicate_decisions_read on public.duplicate_decisions as permissive for select to authenticated
    using (chain_id = ANY ((( SELECT app.readable_chain_ids() AS readable_chain_ids))::uuid[]));
grant select on table public.duplicate_decisions to authenticated;
grant select, insert, update on table public.duplicate_decisions to service_role;

-- public.duplicate_settings
create table public.duplicate_settings (
    enterprise_id uuid not null,
    threshold real default 0.9 not null,
    updated_at timestamp with time zone default now() not null
);
alter table public.duplicate_settings add constraint duplicate_settings_pkey PRIMARY KEY (enterprise_id);
alter table public.duplicate_settings add constraint duplicate_settings_enterprise_id_fkey FOREIGN KEY (enterprise_id) REFERENCES public.enterprises(id) ON DELETE CASCADE;
alter table public.duplicate_settings add constraint duplicate_settings_threshold_check CHECK (threshold >= 0.5::double precision AND threshold < 1::double precision);
alter table public.duplicate_settings enable row level security;
create policy duplicate_settings_admin_insert on public.duplicate_settings as permissive for insert to authenticated
    with check (enterprise_id = ANY ((( SELECT app.admin_enterprise_ids() AS admin_enterprise_ids))::uuid[]));
create policy duplicate_settings_admin_update on public.duplicate_settings as permissive for update to authenticated
    using (enterprise_id = ANY ((( SELECT app.admin_enterprise_ids() AS admin_enterprise_ids))::uuid[]))
    with check (enterprise_id = ANY ((( SELECT app.admin_enterprise_ids() AS admin_enterprise_ids))::uuid[]));
create policy duplicate_settings_read on public.duplicate_settings as permissive for select to authenticated
    using (enterprise_id = ANY ((( SELECT app.readable_enterprise_ids() AS readable_enterprise_ids))::uuid[]));
grant select on table public.duplicate_settings to authenticated;
grant select, insert, update, delete on table public.duplicate_settings to service_role;
grant insert (enterprise_id, threshold) on table public.duplicate_settings to authenticated;
grant update (threshold) on table public.duplicate_settings to authenticated;

-- public.enrichment_settings
create table public.enrichment_settings (
    enterprise_id uuid not null,
    rule text not null,
    enabled boolean default true not null,
    push_to_mews boolean default false not null,
    updated_at timestamp with time zone default now() not null
);
alter table public.enrichment_settings add constraint enrichment_settings_pkey PRIMARY KEY (enterprise_id, rule);
alter table public.enrichment_settings add constraint enrichment_settings_enterprise_id_fkey FOREIGN KEY (enterprise_id) REFERENCES public.enterprises(id) ON DELETE CASCADE;
alter table public.enrichment_settings add constraint enrichment_settings_rule_check CHECK (rule = ANY (ARRAY['normalize_email'::text, 'normalize_phone'::text, 'nationality_from_document'::text, 'language_from_mews'::text, 'stays_from_reservations'::text, 'company_from_reservations'::text]));
alter table public.enrichment_settings enable row level security;
create policy enrichment_settings_admin_delete on public.enrichment_settings as permissive for delete to authenticated
    using (enterprise_id = ANY ((( SELECT app.admin_enterprise_ids() AS admin_enterprise_ids))::uuid[]));
create policy enrichment_settings_admin_insert on public.enrichment_settings as permissive for insert to authenticated
    with check (enterprise_id = ANY ((( SELECT app.admin_enterprise_ids() AS admin_enterprise_ids))::uuid[]));
create policy enrichment_settings_admin_update on public.enrichment_settings as permissive for update to authenticated
    using (enterprise_id = ANY ((( SELECT app.admin_enterprise_ids() AS admin_enterprise_ids))::uuid[]))
    with check (enterprise_id = ANY ((( SELECT app.admin_enterprise_ids() AS admin_enterprise_ids))::uuid[]));
create policy enrichment_settings_read on public.enrichment_settings as permissive for select to authenticated
    using (enterprise_id = ANY ((( SELECT app.readable_enterprise_ids() AS readable_enterprise_ids))::uuid[]));
CREATE TRIGGER enrichment_settings_changed AFTER INSERT OR DELETE OR UPDATE ON public.enrichment_settings FOR EACH ROW EXECUTE FUNCTION app.quality_settings_changed();
grant select, delete on table public.enrichment_settings to authenticated;
grant select, insert, update, delete on table public.enrichment_settings to service_role;
grant insert (enterprise_id, rule, enabled, push_to_mews) on table public.enrichment_settings to authenticated;
grant update (enabled, push_to_mews) on table public.enrichment_settings to authenticated;

-- public.enterprises
create table public.enterprises (
    id uuid not null,
    chain_id uuid not null,
    name text not null,
    time_zone text,
    default_language_code text,
    mews_created_utc timestamp with time zone,
    raw jsonb,
    created_at timestamp with time zone default now() not null,
    updated_at timestamp with time zone default now() not null
);
alter table public.enterprises add constraint enterprises_pkey PRIMARY KEY (id);
alter table public.enterprises add constraint enterprises_chain_id_fkey FOREIGN KEY (chain_id) REFERENCES public.chains(id);
alter table public.enterprises add constraint enterprises_default_language_code_max_1000_chars CHECK (char_length(default_language_code) <= 1000) NOT VALID;
alter table public.enterprises add constraint enterprises_name_max_1000_chars CHECK (char_length(name) <= 1000) NOT VALID;
alter table public.enterprises add constraint enterprises_raw_max_8388608_bytes CHECK (pg_column_size(raw) <= 8388608) NOT VALID;
alter table public.enterprises add constraint enterprises_time_zone_max_1000_chars CHECK (char_length(time_zone) <= 1000) NOT VALID;
CREATE INDEX enterprises_chain_idx ON public.enterprises USING btree (chain_id);
alter table public.enterprises enable row level security;
create policy enterprises_read on public.enterprises as permissive for select to authenticated
    using (id = ANY ((( SELECT app.readable_enterprise_ids() AS readable_enterprise_ids))::uuid[]));
CREATE TRIGGER enterprises_touch BEFORE UPDATE ON public.enterprises FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
grant select on table public.enterprises to authenticated;
grant select, insert, update, delete on table public.enterprises to service_role;

-- public.event_inbox
create table public.event_inbox (
    id bigint generated always as identity not null,
    source text not null,
    enterprise_id uuid,
    body_raw text not null,
    body jsonb,
    body_hash text not null,
    status text default 'pending'::text not null,
    attempts integer default 0 not null,
    error text,
    unknown_discriminators text[] default '{}'::text[] not null,
    received_at timestamp with time zone default now() not null,
    available_at timestamp with time zone default now() not null,
    locked_until timestamp with time zone,
    processed_at timestamp with time zone,
    integration_id uuid,
    locked_by uuid
);
alter table public.event_inbox add constraint event_inbox_pkey PRIMARY KEY (id);
alter table public.event_inbox add constraint event_inbox_body_hash_max_1000_chars CHECK (char_length(body_hash) <= 1000) NOT VALID;
alter table public.event_inbox add constraint event_inbox_body_max_16777216_bytes CHECK (pg_column_size(body) <= 16777216) NOT VALID;
alter table public.event_inbox add constraint event_inbox_body_raw_max_4194304_chars CHECK (char_length(body_raw) <= 4194304) NOT VALID;
alter table public.event_inbox add constraint event_inbox_error_max_100000_chars CHECK (char_length(error) <= 100000) NOT VALID;
alter table public.event_inbox add constraint event_inbox_source_check CHECK (source = ANY (ARRAY['general_webhook'::text, 'integration_webhook'::text, 'websocket'::text]));
alter table public.event_inbox add constraint event_inbox_status_check CHECK (status = ANY (ARRAY['pending'::text, 'processing'::text, 'done'::text, 'failed'::text, 'dead'::text, 'rejected'::text]));
alter table public.event_inbox add constraint event_inbox_unknown_discriminators_max_2097152_bytes CHECK (pg_column_size(unknown_discriminators) <= 2097152) NOT VALID;
CREATE INDEX event_inbox_hash_idx ON public.event_inbox USING btree (body_hash);
CREATE INDEX event_inbox_open_idx ON public.event_inbox USING btree (enterprise_id, received_at) WHERE (status = ANY (ARRAY['pending'::text, 'processing'::text, 'failed'::text, 'dead'::text]));
CREATE INDEX event_inbox_ready_idx ON public.event_inbox USING btree (available_at, id) WHERE (status = ANY (ARRAY['pending'::text, 'failed'::text]));
CREATE INDEX event_inbox_route_idx ON public.event_inbox USING btree (integration_id, enterprise_id, available_at, id) WHERE (status = ANY (ARRAY['pending'::text, 'failed'::text, 'processing'::text]));
alter table public.event_inbox enable row level security;
CREATE TRIGGER event_inbox_notify AFTER INSERT ON public.event_inbox FOR EACH ROW EXECUTE FUNCTION app.inbox_notify();
CREATE TRIGGER event_inbox_notify_replay AFTER UPDATE OF status ON public.event_inbox FOR EACH ROW WHEN (new.status = 'pending'::text AND old.status IS DISTINCT FROM 'pending'::text) EXECUTE FUNCTION app.inbox_notify();
CREATE TRIGGER event_inbox_redact BEFORE INSERT OR UPDATE OF body_raw, body ON public.event_inbox FOR EACH ROW EXECUTE FUNCTION app.event_inbox_redact();
grant select, insert, update, delete on table public.event_inbox to service_role;

-- public.guest_addresses
create table public.guest_addresses (
    chain_id uuid not null,
    mews_id uuid not null,
    guest_mews_id uuid not null,
    line1 text,
    line2 text,
    city text,
    postal_code text,
    country_code text,
    country_subdivision_code text,
    is_active boolean default true not null,
    mews_updated_utc timestamp with time zone,
    raw jsonb not null,
    raw_hash text not null,
    synced_at timestamp with time zone default now() not null
);
alter table public.guest_addresses add constraint guest_addresses_pkey PRIMARY KEY (chain_id, mews_id);
alter table public.guest_addresses add constraint guest_addresses_chain_id_fkey FOREIGN KEY (chain_id) REFERENCES public.chains(id);
alter table public.guest_addresses add constraint guest_addresses_city_max_1000_chars CHECK (char_length(city) <= 1000) NOT VALID;
alter table public.guest_addresses add constraint guest_addresses_country_code_max_1000_chars CHECK (char_length(country_code) <= 1000) NOT VALID;
alter table public.guest_addresses add constraint guest_addresses_country_subdivision_code_max_1000_chars CHECK (char_length(country_subdivision_code) <= 1000) NOT VALID;
alter table public.guest_addresses add constraint guest_addresses_line1_max_1000_chars CHECK (char_length(line1) <= 1000) NOT VALID;
alter table public.guest_addresses add constraint guest_addresses_line2_max_1000_chars CHECK (char_length(line2) <= 1000) NOT VALID;
alter table public.guest_addresses add constraint guest_addresses_postal_code_max_1000_chars CHECK (char_length(postal_code) <= 1000) NOT VALID;
alter table public.guest_addresses add constraint guest_addresses_raw_hash_max_1000_chars CHECK (char_length(raw_hash) <= 1000) NOT VALID;
alter table public.guest_addresses add constraint guest_addresses_raw_max_8388608_bytes CHECK (pg_column_size(raw) <= 8388608) NOT VALID;
CREATE INDEX guest_addresses_guest_idx ON public.guest_addresses USING btree (guest_mews_id);
alter table public.guest_addresses enable row level security;
create policy guest_addresses_read on public.guest_addresses as permissive for select to authenticated
    using (chain_id = ANY ((( SELECT app.readable_chain_ids() AS readable_chain_ids))::uuid[]));
grant select on table public.guest_addresses to authenticated;
grant select, insert, update, delete on table public.guest_addresses to service_role;

-- public.guest_duplicates
create table public.guest_duplicates (
    chain_id uuid not null,
    guest_a uuid not null,
    guest_b uuid not null,
    evidence jsonb not null,
    found_at timestamp with time zone default now() not null,
    probability real,
    match_weight real
);
alter table public.guest_duplicates add constraint guest_duplicates_pkey PRIMARY KEY (chain_id, guest_a, guest_b);
alter table public.guest_duplicates add constraint guest_duplicates_check CHECK (guest_a < guest_b);
alter table public.guest_duplicates add constraint guest_duplicates_evidence_max_1048576_bytes CHECK (pg_column_size(evidence) <= 1048576) NOT VALID;
alter table public.guest_duplicates add constraint guest_duplicates_probability_check CHECK (probability >= 0::double precision AND probability <= 1::double precision);
CREATE INDEX guest_duplicates_b_idx ON public.guest_duplicates USING btree (chain_id, guest_b);
CREATE INDEX guest_duplicates_best_idx ON public.guest_duplicates USING btree (chain_id, probability DESC);
alter table public.guest_duplicates enable row level security;
create policy guest_duplicates_read on public.guest_duplicates as permissive for select to authenticated
    using (chain_id = ANY ((( SELECT app.readable_chain_ids() AS readable_chain_ids))::uuid[]));
CREATE TRIGGER guest_duplicates_decided_insert AFTER INSERT ON public.guest_duplicates REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION app.guest_duplicates_hold_back_decided();
CREATE TRIGGER guest_duplicates_decided_update AFTER UPDATE ON public.guest_duplicates REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION app.guest_duplicates_hold_back_decided();
grant select on table public.guest_duplicates to authenticated;
grant select, insert, update, delete on table public.guest_duplicates to service_role;

-- public.guest_enrichments
create table public.guest_enrichments (
    chain_id uuid not null,
    guest_mews_id uuid not null,
    field text not null,
    value text not null,
    source text not null,
    rule text not null,
    created_at timestamp with time zone default now() not null,
    queued_for_push_at timestamp with time zone
);
alter table public.guest_enrichments add constraint guest_enrichments_pkey PRIMARY KEY (chain_id, guest_mews_id, field);
alter table public.guest_enrichments add constraint guest_enrichments_field_max_1000_chars CHECK (char_length(field) <= 1000) NOT VALID;
alter table public.guest_enrichments add constraint guest_enrichments_rule_max_1000_chars CHECK (char_length(rule) <= 1000) NOT VALID;
alter table public.guest_enrichments add constraint guest_enrichments_source_max_1000_chars CHECK (char_length(source) <= 1000) NOT VALID;
alter table public.guest_enrichments add constraint guest_enrichments_value_max_100000_chars CHECK (char_length(value) <= 100000) NOT VALID;
alter table public.guest_enrichments enable row level security;
create policy guest_enrichments_read on public.guest_enrichments as permissive for select to authenticated
    using (chain_id = ANY ((( SELECT app.readable_chain_ids() AS readable_chain_ids))::uuid[]));
grant select on table public.guest_enrichments to authenticated;
grant select, insert, update, delete on table public.guest_enrichments to service_role;

-- public.guest_facts
create table public.guest_facts (
    chain_id uuid not null,
    guest_mews_id uuid not null,
    email_normalized text,
    email_valid boolean,
    phone_e164 text,
    phone_valid boolean,
    has_address boolean default false not null,
    has_document boolean default false not null,
    document_country text,
    enriched_nationality text,
    enriched_language text,
    stay_count integer default 0 not null,
    nights integer default 0 not null,
    first_stay date,
    last_stay date,
    company_id uuid,
    source_synced_at timestamp with time zone,
    computed_at timestamp with time zone default now() not null,
    name_key text
);
alter table public.guest_facts add constraint guest_facts_pkey PRIMARY KEY (chain_id, guest_mews_id);
alter table public.guest_facts add constraint guest_facts_document_country_max_1000_chars CHECK (char_length(document_country) <= 1000) NOT VALID;
alter table public.guest_facts add constraint guest_facts_email_normalized_max_1000_chars CHECK (char_length(email_normalized) <= 1000) NOT VALID;
alter table public.guest_facts add constraint guest_facts_enriched_language_max_1000_chars CHECK (char_length(enriched_language) <= 1000) NOT VALID;
alter table public.guest_facts add constraint guest_facts_enriched_nationality_max_1000_chars CHECK (char_length(enriched_nationality) <= 1000) NOT VALID;
alter table public.guest_facts add constraint guest_facts_name_key_max_10000_chars CHECK (char_length(name_key) <= 10000) NOT VALID;
alter table public.guest_facts add constraint guest_facts_phone_e164_max_1000_chars CHECK (char_length(phone_e164) <= 1000) NOT VALID;
CREATE INDEX guest_facts_duplicate_input_idx ON public.guest_facts USING btree (chain_id, guest_mews_id) INCLUDE (email_normalized, phone_e164);
CREATE INDEX guest_facts_email_idx ON public.guest_facts USING btree (chain_id, email_normalized) WHERE (email_normalized IS NOT NULL);
CREATE INDEX guest_facts_name_key_idx ON public.guest_facts USING btree (chain_id, name_key) WHERE (name_key IS NOT NULL);
CREATE INDEX guest_facts_phone_idx ON public.guest_facts USING btree (chain_id, phone_e164) WHERE (phone_e164 IS NOT NULL);
alter table public.guest_facts enable row level security;
create policy guest_facts_read on public.guest_facts as permissive for select to authenticated
    using (chain_id = ANY ((( SELECT app.readable_chain_ids() AS readable_chain_ids))::uuid[]));
grant select on table public.guest_facts to authenticated;
grant select, insert, update, delete on table public.guest_facts to service_role;

-- public.guest_identity_documents
create table public.guest_identity_documents (
    chain_id uuid not null,
    mews_id uuid not null,
    guest_mews_id uuid not null,
    type text not null,
    number text,
    expiration_date date,
    issuance_date date,
    issuing_country_code text,
    is_verified boolean default false not null,
    mews_updated_utc timestamp with time zone,
    raw jsonb not null,
    raw_hash text not null,
    synced_at timestamp with time zone default now() not null
);
alter table public.guest_identity_documents add constraint guest_identity_documents_pkey PRIMARY KEY (chain_id, mews_id);
alter table public.guest_identity_documents add constraint guest_identity_documents_chain_id_fkey FOREIGN KEY (chain_id) REFERENCES public.chains(id);
alter table public.guest_identity_documents add constraint guest_identity_documents_issuing_country_code_max_1000_chars CHECK (char_length(issuing_country_code) <= 1000) NOT VALID;
alter table public.guest_identity_documents add constraint guest_identity_documents_number_max_1000_chars CHECK (char_length(number) <= 1000) NOT VALID;
alter table public.guest_identity_documents add constraint guest_identity_documents_raw_hash_max_1000_chars CHECK (char_length(raw_hash) <= 1000) NOT VALID;
alter table public.guest_identity_documents add constraint guest_identity_documents_raw_max_8388608_bytes CHECK (pg_column_size(raw) <= 8388608) NOT VALID;
alter table public.guest_identity_documents add constraint guest_identity_documents_type_max_1000_chars CHECK (char_length(type) <= 1000) NOT VALID;
CREATE INDEX guest_identity_documents_guest_idx ON public.guest_identity_documents USING btree (guest_mews_id);
alter table public.guest_identity_documents enable row level security;
create policy guest_identity_documents_read on public.guest_identity_documents as permissive for select to authenticated
    using (chain_id = ANY ((( SELECT app.readable_chain_ids() AS readable_chain_ids))::uuid[]));
grant select on table public.guest_identity_documents to authenticated;
grant select, insert, update, delete on table public.guest_identity_documents to service_role;

-- public.guest_score_history
create table public.guest_score_history (
    id bigint generated always as identity not null,
    enterprise_id uuid not null,
    guest_mews_id uuid not null,
    score smallint not null,
    previous_score smallint,
    rule_set_id uuid not null,
    scored_at timestamp with time zone default now() not null
);
alter table public.guest_score_history add constraint guest_score_history_pkey PRIMARY KEY (id);
CREATE INDEX guest_score_history_guest_idx ON public.guest_score_history USING btree (enterprise_id, guest_mews_id, scored_at);
alter table public.guest_score_history enable row level security;
create policy guest_score_history_read on public.guest_score_history as permissive for select to authenticated
    using (enterprise_id = ANY ((( SELECT app.readable_enterprise_ids() AS readable_enterprise_ids))::uuid[]));
alter publication supabase_realtime add table public.guest_score_history;
grant select on table public.guest_score_history to authenticated;
grant select, insert, update, delete on table public.guest_score_history to service_role;

-- public.guest_scores
create table public.guest_scores (
    enterprise_id uuid not null,
    chain_id uuid not null,
    guest_mews_id uuid not null,
    score smallint not null,
    failed_rules bigint[] not null,
    rule_set_id uuid not null,
    scored_at timestamp with time zone default now() not null,
    flips_on date
);
alter table public.guest_scores set (fillfactor=45);
alter table public.guest_scores add constraint guest_scores_pkey PRIMARY KEY (enterprise_id, guest_mews_id);
alter table public.guest_scores add constraint guest_scores_score_check CHECK (score >= 0 AND score <= 100);
CREATE INDEX guest_scores_flips_idx ON public.guest_scores USING btree (enterprise_id, flips_on) WHERE (flips_on IS NOT NULL);
alter table public.guest_scores enable row level security;
create policy guest_scores_read on public.guest_scores as permissive for select to authenticated
    using (enterprise_id = ANY ((( SELECT app.readable_enterprise_ids() AS readable_enterprise_ids))::uuid[]));
alter publication supabase_realtime add table public.guest_scores;
grant select on table public.guest_scores to authenticated;
grant select, insert, update, delete on table public.guest_scores to service_role;
comment on column public.guest_scores.flips_on is 'the next day a date_range verdict of this score changes by the calendar alone (null: never)';

-- public.guests
create table public.guests (
    chain_id uuid not null,
    mews_id uuid not null,
    number text,
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
    has_ota_email boolean default false not null,
    phone text,
    loyalty_code text,
    tax_identification_number text,
    notes text,
    car_registration_number text,
    dietary_requirements text,
    company_id uuid,
    address_id uuid,
    classifications text[] default '{}'::text[] not null,
    options text[] default '{}'::text[] not null,
    preferred_space_features text[] default '{}'::text[] not null,
    merge_target_id uuid,
    is_active boolean default true not null,
    creator_profile_id uuid,
    updater_profile_id uuid,
    mews_created_utc timestamp with time zone,
    mews_updated_utc timestamp with time zone not null,
    raw jsonb not null,
    raw_hash text not null,
    synced_at timestamp with time zone default now() not null,
    local_changes jsonb,
    local_edited_at timestamp with time zone,
    local_base_updated_utc timestamp with time zone,
    push_status text,
    push_error text,
    local_base jsonb
);
alter table public.guests add constraint guests_pkey PRIMARY KEY (chain_id, mews_id);
alter table public.guests add constraint guests_chain_id_fkey FOREIGN KEY (chain_id) REFERENCES public.chains(id);
alter table public.guests add constraint guests_birth_country_code_max_1000_chars CHECK (char_length(birth_country_code) <= 1000) NOT VALID;
alter table public.guests add constraint guests_birth_place_max_1000_chars CHECK (char_length(birth_place) <= 1000) NOT VALID;
alter table public.guests add constraint guests_car_registration_number_max_1000_chars CHECK (char_length(car_registration_number) <= 1000) NOT VALID;
alter table public.guests add constraint guests_classifications_max_65536_bytes CHECK (pg_column_size(classifications) <= 65536) NOT VALID;
alter table public.guests add constraint guests_dietary_requirements_max_100000_chars CHECK (char_length(dietary_requirements) <= 100000) NOT VALID;
alter table public.guests add constraint guests_email_max_1000_chars CHECK (char_length(email) <= 1000) NOT VALID;
alter table public.guests add constraint guests_first_name_max_1000_chars CHECK (char_length(first_name) <= 1000) NOT VALID;
alter table public.guests add constraint guests_language_code_max_1000_chars CHECK (char_length(language_code) <= 1000) NOT VALID;
alter table public.guests add constraint guests_last_name_max_1000_chars CHECK (char_length(last_name) <= 1000) NOT VALID;
alter table public.guests add constraint guests_local_base_max_1048576_bytes CHECK (pg_column_size(local_base) <= 1048576) NOT VALID;
alter table public.guests add constraint guests_local_changes_max_1048576_bytes CHECK (pg_column_size(local_changes) <= 1048576) NOT VALID;
alter table public.guests add constraint guests_loyalty_code_max_1000_chars CHECK (char_length(loyalty_code) <= 1000) NOT VALID;
alter table public.guests add constraint guests_nationality_code_max_1000_chars CHECK (char_length(nationality_code) <= 1000) NOT VALID;
alter table public.guests add constraint guests_notes_max_100000_chars CHECK (char_length(notes) <= 100000) NOT VALID;
alter table public.guests add constraint guests_number_max_1000_chars CHECK (char_length(number) <= 1000) NOT VALID;
alter table public.guests add constraint guests_occupation_max_1000_chars CHECK (char_length(occupation) <= 1000) NOT VALID;
alter table public.guests add constraint guests_options_max_65536_bytes CHECK (pg_column_size(options) <= 65536) NOT VALID;
alter table public.guests add constraint guests_phone_max_1000_chars CHECK (char_length(phone) <= 1000) NOT VALID;
alter table public.guests add constraint guests_preferred_language_code_max_1000_chars CHECK (char_length(preferred_language_code) <= 1000) NOT VALID;
alter table public.guests add constraint guests_preferred_space_features_max_65536_bytes CHECK (pg_column_size(preferred_space_features) <= 65536) NOT VALID;
alter table public.guests add constraint guests_push_error_max_100000_chars CHECK (char_length(push_error) <= 100000) NOT VALID;
alter table public.guests add constraint guests_push_status_check CHECK (push_status = ANY (ARRAY['pending'::text, 'pushed'::text, 'refused'::text, 'mews_won'::text]));
alter table public.guests add constraint guests_raw_hash_max_1000_chars CHECK (char_length(raw_hash) <= 1000) NOT VALID;
alter table public.guests add constraint guests_raw_max_8388608_bytes CHECK (pg_column_size(raw) <= 8388608) NOT VALID;
alter table public.guests add constraint guests_second_last_name_max_1000_chars CHECK (char_length(second_last_name) <= 1000) NOT VALID;
alter table public.guests add constraint guests_sex_max_1000_chars CHECK (char_length(sex) <= 1000) NOT VALID;
alter table public.guests add constraint guests_tax_identification_number_max_1000_chars CHECK (char_length(tax_identification_number) <= 1000) NOT VALID;
alter table public.guests add constraint guests_title_max_1000_chars CHECK (char_length(title) <= 1000) NOT VALID;
CREATE INDEX guests_duplicate_input_idx ON public.guests USING btree (chain_id, mews_id) INCLUDE (first_name, last_name, birth_date, has_ota_email) WHERE is_active;
CREATE INDEX guests_email_idx ON public.guests USING btree (lower(email)) WHERE (email IS NOT NULL);
CREATE UNIQUE INDEX guests_mews_id_key ON public.guests USING btree (mews_id);
CREATE INDEX guests_push_pending_idx ON public.guests USING btree (local_edited_at) WHERE (push_status = 'pending'::text);
CREATE INDEX guests_synced_idx ON public.guests USING btree (chain_id, synced_at, mews_id);
CREATE INDEX guests_updated_idx ON public.guests USING btree (chain_id, mews_updated_utc);
alter table public.guests enable row level security;
create policy guests_read on public.guests as permissive for select to authenticated
    using (chain_id = ANY ((( SELECT app.readable_chain_ids() AS readable_chain_ids))::uuid[]));
create policy guests_staff_edit on public.guests as permissive for update to authenticated
    using (chain_id = ANY ((( SELECT app.readable_chain_ids() AS readable_chain_ids))::uuid[]))
    with check (chain_id = ANY ((( SELECT app.readable_chain_ids() AS readable_chain_ids))::uuid[]));
CREATE TRIGGER guests_local_edit BEFORE UPDATE ON public.guests FOR EACH ROW EXECUTE FUNCTION app.guests_mark_local_edit();
CREATE TRIGGER guests_push_notify AFTER UPDATE ON public.guests FOR EACH ROW WHEN (new.push_status = 'pending'::text AND new.local_edited_at IS DISTINCT FROM old.local_edited_at) EXECUTE FUNCTION app.guests_push_notify();
alter publication supabase_realtime add table public.guests;
grant select on table public.guests to authenticated;
grant select, insert, update, delete on table public.guests to service_role;
grant update (title, sex, first_name, last_name, nationality_code, preferred_language_code, birth_date, occupation, email, phone, loyalty_code, notes, car_registration_number, dietary_requirements) on table public.guests to authenticated;
comment on column public.guests.local_base is 'Per column in local_changes: the value the staff member saw when first editing it (the base of the three-way merge).';

-- public.memberships
create table public.memberships (
    id bigint generated always as identity not null,
    user_id uuid not null,
    enterprise_id uuid,
    chain_id uuid,
    role text not null,
    created_at timestamp with time zone default now() not null
);
alter table public.memberships add constraint memberships_pkey PRIMARY KEY (id);
alter table public.memberships add constraint memberships_chain_id_fkey FOREIGN KEY (chain_id) REFERENCES public.chains(id) ON DELETE CASCADE;
alter table public.memberships add constraint memberships_enterprise_id_fkey FOREIGN KEY (enterprise_id) REFERENCES public.enterprises(id) ON DELETE CASCADE;
alter table public.memberships add constraint memberships_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.app_users(id) ON DELETE CASCADE;
alter table public.memberships add constraint memberships_role_check CHECK (role = ANY (ARRAY['staff'::text, 'admin'::text]));
alter table public.memberships add constraint memberships_scope CHECK ((enterprise_id IS NULL) <> (chain_id IS NULL));
CREATE INDEX memberships_chain_idx ON public.memberships USING btree (chain_id);
CREATE INDEX memberships_enterprise_idx ON public.memberships USING btree (enterprise_id);
CREATE UNIQUE INDEX memberships_user_chain ON public.memberships USING btree (user_id, chain_id) WHERE (chain_id IS NOT NULL);
CREATE UNIQUE INDEX memberships_user_enterprise ON public.memberships USING btree (user_id, enterprise_id) WHERE (enterprise_id IS NOT NULL);
alter table public.memberships enable row level security;
create policy memberships_admin_delete on public.memberships as permissive for delete to authenticated
    using ((enterprise_id = ANY ((( SELECT app.admin_enterprise_ids() AS admin_enterprise_ids))::uuid[])) OR (chain_id = ANY ((( SELECT app.admin_chain_ids() AS admin_chain_ids))::uuid[])));
create policy memberships_admin_insert on public.memberships as permissive for insert to authenticated
    with check ((enterprise_id = ANY ((( SELECT app.admin_enterprise_ids() AS admin_enterprise_ids))::uuid[])) OR (chain_id = ANY ((( SELECT app.admin_chain_ids() AS admin_chain_ids))::uuid[])));
create policy memberships_admin_update on public.memberships as permissive for update to authenticated
    using ((enterprise_id = ANY ((( SELECT app.admin_enterprise_ids() AS admin_enterprise_ids))::uuid[])) OR (chain_id = ANY ((( SELECT app.admin_chain_ids() AS admin_chain_ids))::uuid[])))
    with check ((enterprise_id = ANY ((( SELECT app.admin_enterprise_ids() AS admin_enterprise_ids))::uuid[])) OR (chain_id = ANY ((( SELECT app.admin_chain_ids() AS admin_chain_ids))::uuid[])));
create policy memberships_read on public.memberships as permissive for select to authenticated
    using ((enterprise_id = ANY ((( SELECT app.readable_enterprise_ids() AS readable_enterprise_ids))::uuid[])) OR (chain_id = ANY ((( SELECT app.readable_chain_ids() AS readable_chain_ids))::uuid[])));
grant select, delete on table public.memberships to authenticated;
grant select, insert, update, delete on table public.memberships to service_role;
grant insert (user_id, enterprise_id, chain_id, role) on table public.memberships to authenticated;
grant update (role) on table public.memberships to authenticated;

-- public.quality_daily
create table public.quality_daily (
    enterprise_id uuid not null,
    day date not null,
    guests integer not null,
    average numeric(5,2) not null,
    median numeric(5,2) not null,
    below_50 integer not null,
    complete integer not null
);
alter table public.quality_daily add constraint quality_daily_pkey PRIMARY KEY (enterprise_id, day);
alter table public.quality_daily enable row level security;
create policy quality_daily_read on public.quality_daily as permissive for select to authenticated
    using (enterprise_id = ANY ((( SELECT app.readable_enterprise_ids() AS readable_enterprise_ids))::uuid[]));
grant select on table public.quality_daily to authenticated;
grant select, insert, update, delete on table public.quality_daily to service_role;

-- public.quality_rule_sets
create table public.quality_rule_sets (
    id uuid default gen_random_uuid() not null,
    enterprise_id uuid not null,
    version integer not null,
    status text default 'draft'::text not null,
    note text,
    created_by uuid default auth.uid(),
    created_at timestamp with time zone default now() not null,
    enabled_at timestamp with time zone,
    duplicate_threshold real
);
alter table public.quality_rule_sets add constraint quality_rule_sets_pkey PRIMARY KEY (id);
alter table public.quality_rule_sets add constraint quality_rule_sets_enterprise_id_version_key UNIQUE (enterprise_id, version);
alter table public.quality_rule_sets add constraint quality_rule_sets_enterprise_id_fkey FOREIGN KEY (enterprise_id) REFERENCES public.enterprises(id) ON DELETE CASCADE;
alter table public.quality_rule_sets add constraint quality_rule_sets_duplicate_threshold_check CHECK (duplicate_threshold >= 0.5::double precision AND duplicate_threshold < 1::double precision);
alter table public.quality_rule_sets add constraint quality_rule_sets_note_max_10000_chars CHECK (char_length(note) <= 10000) NOT VALID;
alter table public.quality_rule_sets add constraint quality_rule_sets_status_check CHECK (status = ANY (ARRAY['draft'::text, 'enabled'::text, 'retired'::text]));
CREATE UNIQUE INDEX quality_rule_sets_one_enabled ON public.quality_rule_sets USING btree (enterprise_id) WHERE (status = 'enabled'::text);
alter table public.quality_rule_sets enable row level security;
create policy quality_rule_sets_read on public.quality_rule_sets as permissive for select to authenticated
    using (enterprise_id = ANY ((( SELECT app.readable_enterprise_ids() AS readable_enterprise_ids))::uuid[]));
CREATE TRIGGER quality_rule_sets_enable_check BEFORE UPDATE OF status ON public.quality_rule_sets FOR EACH ROW EXECUTE FUNCTION app.quality_rule_set_enable_check();
CREATE TRIGGER quality_rule_sets_enabled_threshold AFTER UPDATE OF status ON public.quality_rule_sets FOR EACH ROW EXECUTE FUNCTION app.quality_rule_set_enabled_threshold();
grant select on table public.quality_rule_sets to authenticated;
grant select on table public.quality_rule_sets to service_role;

-- public.quality_rules
create table public.quality_rules (
    id bigint generated always as identity not null,
    rule_set_id uuid not null,
    enterprise_id uuid not null,
    field text not null,
    kind text not null,
    params jsonb default '{}'::jsonb not null,
    severity text default 'warning'::text not null,
    weight integer not null,
    cost numeric(10,4),
    reason_kind text,
    message text
);
alter table public.quality_rules add constraint quality_rules_pkey PRIMARY KEY (id);
alter table public.quality_rules add constraint quality_rules_rule_set_id_fkey FOREIGN KEY (rule_set_id) REFERENCES public.quality_rule_sets(id) ON DELETE CASCADE;
alter table public.quality_rules add constraint quality_rules_field_max_1000_chars CHECK (char_length(field) <= 1000) NOT VALID;
alter table public.quality_rules add constraint quality_rules_kind_check CHECK (kind = ANY (ARRAY['required'::text, 'email'::text, 'phone'::text, 'not_ota_email'::text, 'pattern'::text, 'allowed_values'::text, 'length'::text, 'date_range'::text, 'cross_field'::text]));
alter table public.quality_rules add constraint quality_rules_message_max_10000_chars CHECK (char_length(message) <= 10000) NOT VALID;
alter table public.quality_rules add constraint quality_rules_params_max_262144_bytes CHECK (pg_column_size(params) <= 262144) NOT VALID;
alter table public.quality_rules add constraint quality_rules_reason_kind_max_1000_chars CHECK (char_length(reason_kind) <= 1000) NOT VALID;
alter table public.quality_rules add constraint quality_rules_severity_check CHECK (severity = ANY (ARRAY['info'::text, 'warning'::text, 'error'::text]));
alter table public.quality_rules add constraint quality_rules_weight_check CHECK (weight >= 0 AND weight <= 100);
CREATE INDEX quality_rules_set_idx ON public.quality_rules USING btree (rule_set_id);
alter table public.quality_rules enable row level security;
create policy quality_rules_admin_delete on public.quality_rules as permissive for delete to authenticated
    using (enterprise_id = ANY ((( SELECT app.admin_enterprise_ids() AS admin_enterprise_ids))::uuid[]));
create policy quality_rules_admin_insert on public.quality_rules as permissive for insert to authenticated
    with check (enterprise_id = ANY ((( SELECT app.admin_enterprise_ids() AS admin_enterprise_ids))::uuid[]));
create policy quality_rules_admin_update on public.quality_rules as permissive for update to authenticated
    using (enterprise_id = ANY ((( SELECT app.admin_enterprise_ids() AS admin_enterprise_ids))::uuid[]))
    with check (enterprise_id = ANY ((( SELECT app.admin_enterprise_ids() AS admin_enterprise_ids))::uuid[]));
create policy quality_rules_read on public.quality_rules as permissive for select to authenticated
    using (enterprise_id = ANY ((( SELECT app.readable_enterprise_ids() AS readable_enterprise_ids))::uuid[]));
CREATE TRIGGER quality_rules_check BEFORE INSERT OR DELETE OR UPDATE ON public.quality_rules FOR EACH ROW EXECUTE FUNCTION app.quality_rule_check();
grant select, delete on table public.quality_rules to authenticated;
grant select, insert, update, delete on table public.quality_rules to service_role;
grant insert (rule_set_id, field, kind, params, severity, weight) on table public.quality_rules to authenticated;
grant update (field, kind, params, severity, weight) on table public.quality_rules to authenticated;

-- public.quality_score_lanes
create table public.quality_score_lanes (
    enterprise_id uuid not null,
    lane integer not null,
    from_id uuid,
    to_id uuid,
    done boolean default false not null,
    scored bigint default 0 not null,
    changed bigint default 0 not null
);
alter table public.quality_score_lanes add constraint quality_score_lanes_pkey PRIMARY KEY (enterprise_id, lane);
alter table public.quality_score_lanes add constraint quality_score_lanes_enterprise_id_fkey FOREIGN KEY (enterprise_id) REFERENCES public.quality_score_state(enterprise_id) ON DELETE CASCADE;
alter table public.quality_score_lanes enable row level security;
create policy quality_score_lanes_read on public.quality_score_lanes as permissive for select to authenticated
    using (enterprise_id = ANY ((( SELECT app.readable_enterprise_ids() AS readable_enterprise_ids))::uuid[]));
grant select on table public.quality_score_lanes to authenticated;
grant select, insert, update, delete on table public.quality_score_lanes to service_role;

-- public.quality_score_state
create table public.quality_score_state (
    enterprise_id uuid not null,
    version bigint default 1 not null,
    scored_version bigint default 0 not null,
    pass_version bigint,
    pass_rule_set_id uuid,
    pass_guests bigint,
    pass_started_at timestamp with time zone,
    pass_finished_at timestamp with time zone,
    snapshot_at timestamp with time zone,
    snapshot_change bigint,
    failures integer default 0 not null,
    failed_at timestamp with time zone,
    last_failure text,
    retry_at timestamp with time zone
);
alter table public.quality_score_state add constraint quality_score_state_pkey PRIMARY KEY (enterprise_id);
alter table public.quality_score_state add constraint quality_score_state_enterprise_id_fkey FOREIGN KEY (enterprise_id) REFERENCES public.enterprises(id) ON DELETE CASCADE;
alter table public.quality_score_state add constraint quality_score_state_last_failure_check CHECK (char_length(last_failure) <= 500);
alter table public.quality_score_state enable row level security;
create policy quality_score_state_read on public.quality_score_state as permissive for select to authenticated
    using (enterprise_id = ANY ((( SELECT app.readable_enterprise_ids() AS readable_enterprise_ids))::uuid[]));
grant select on table public.quality_score_state to authenticated;
grant select, insert, update, delete on table public.quality_score_state to service_role;
comment on column public.quality_score_state.retry_at is 'the score job leaves the enterprise alone until then (it failed `failures` times in a row)';

-- public.quarantine
create table public.quarantine (
    id bigint generated always as identity not null,
    entity text not null,
    scope_id uuid,
    mews_id text,
    reason text not null,
    raw jsonb,
    raw_text text,
    run_id uuid,
    created_at timestamp with time zone default now() not null,
    resolved_at timestamp with time zone,
    raw_hash text generated always as (md5((COALESCE(raw::text, ''::text) || '|'::text) || COALESCE(raw_text, ''::text))) stored not null,
    sightings integer default 1 not null,
    first_seen_at timestamp with time zone default now() not null,
    last_seen_at timestamp with time zone default now() not null
);
alter table public.quarantine add constraint quarantine_pkey PRIMARY KEY (id);
alter table public.quarantine add constraint quarantine_run_id_fkey FOREIGN KEY (run_id) REFERENCES public.sync_runs(id) ON DELETE SET NULL;
alter table public.quarantine add constraint quarantine_entity_max_1000_chars CHECK (char_length(entity) <= 1000) NOT VALID;
alter table public.quarantine add constraint quarantine_mews_id_max_1000_chars CHECK (char_length(mews_id) <= 1000) NOT VALID;
alter table public.quarantine add constraint quarantine_raw_max_8388608_bytes CHECK (pg_column_size(raw) <= 8388608) NOT VALID;
alter table public.quarantine add constraint quarantine_raw_text_max_4194304_chars CHECK (char_length(raw_text) <= 4194304) NOT VALID;
alter table public.quarantine add constraint quarantine_reason_max_100000_chars CHECK (char_length(reason) <= 100000) NOT VALID;
alter table public.quarantine add constraint quarantine_sightings_check CHECK (sightings > 0);
CREATE INDEX quarantine_open_idx ON public.quarantine USING btree (entity, created_at) WHERE (resolved_at IS NULL);
CREATE INDEX quarantine_open_record_idx ON public.quarantine USING btree (entity, mews_id) WHERE (resolved_at IS NULL);
CREATE UNIQUE INDEX quarantine_record_version_key ON public.quarantine USING btree (entity, scope_id, mews_id, raw_hash) NULLS NOT DISTINCT;
CREATE INDEX quarantine_run_idx ON public.quarantine USING btree (run_id);
alter table public.quarantine enable row level security;
create policy quarantine_read on public.quarantine as permissive for select to authenticated
    using ((scope_id = ANY ((( SELECT app.readable_enterprise_ids() AS readable_enterprise_ids))::uuid[])) OR (scope_id = ANY ((( SELECT app.readable_chain_ids() AS readable_chain_ids))::uuid[])));
alter publication supabase_realtime add table public.quarantine;
grant select on table public.quarantine to authenticated;
grant select, insert, update, delete on table public.quarantine to service_role;

-- public.rate_limit_hits
create table public.rate_limit_hits (
    key text not null,
    at timestamp with time zone not null,
    id bigint generated always as identity not null,
    open_until timestamp with time zone
);
alter table public.rate_limit_hits add constraint rate_limit_hits_key_fkey FOREIGN KEY (key) REFERENCES public.rate_limit_state(key) ON DELETE CASCADE;
alter table public.rate_limit_hits add constraint rate_limit_hits_key_max_1000_chars CHECK (char_length(key) <= 1000) NOT VALID;
CREATE INDEX rate_limit_hits_key_at_idx ON public.rate_limit_hits USING btree (key, at);
CREATE INDEX rate_limit_hits_open_idx ON public.rate_limit_hits USING btree (key) WHERE (open_until IS NOT NULL);
alter table public.rate_limit_hits enable row level security;
grant select, insert, update, delete on table public.rate_limit_hits to service_role;

-- public.rate_limit_state
create table public.rate_limit_state (
    key text not null,
    paused_until timestamp with time zone,
    pauses integer default 0 not null,
    updated_at timestamp with time zone default now() not null,
    unauthorized_at timestamp with time zone,
    unauthorized_error text,
    unauthorized_count integer default 0 not null,
    adapted_limit integer,
    adapted_at timestamp with time zone,
    limited_at timestamp with time zone,
    confirmed integer,
    probe_due boolean default false not null,
    probe_until timestamp with time zone,
    event_refusals integer default 0 not null,
    event_limit integer,
    probe_ticket bigint
);
alter table public.rate_limit_state add constraint rate_limit_state_pkey PRIMARY KEY (key);
alter table public.rate_limit_state add constraint rate_limit_state_adapted_limit_check CHECK (adapted_limit >= 1);
alter table public.rate_limit_state add constraint rate_limit_state_key_max_1000_chars CHECK (char_length(key) <= 1000) NOT VALID;
alter table public.rate_limit_state add constraint rate_limit_state_unauthorized_error_max_100000_chars CHECK (char_length(unauthorized_error) <= 100000) NOT VALID;
alter table public.rate_limit_state enable row level security;
grant select, insert, update, delete on table public.rate_limit_state to service_role;

-- public.reservations
create table public.reservations (
    enterprise_id uuid not null,
    mews_id uuid not null,
    service_id uuid,
    account_id uuid not null,
    account_type text not null,
    booker_id uuid,
    number text,
    state text not null,
    origin text,
    purpose text,
    scheduled_start_utc timestamp with time zone,
    scheduled_end_utc timestamp with time zone,
    actual_start_utc timestamp with time zone,
    actual_end_utc timestamp with time zone,
    cancelled_utc timestamp with time zone,
    assigned_resource_id uuid,
    partner_company_id uuid,
    travel_agency_id uuid,
    person_count integer,
    mews_created_utc timestamp with time zone,
    mews_updated_utc timestamp with time zone not null,
    raw jsonb not null,
    raw_hash text not null,
    synced_at timestamp with time zone default now() not null
);
alter table public.reservations add constraint reservations_pkey PRIMARY KEY (enterprise_id, mews_id);
alter table public.reservations add constraint reservations_enterprise_id_fkey FOREIGN KEY (enterprise_id) REFERENCES public.enterprises(id);
alter table public.reservations add constraint reservations_account_type_max_1000_chars CHECK (char_length(account_type) <= 1000) NOT VALID;
alter table public.reservations add constraint reservations_number_max_1000_chars CHECK (char_length(number) <= 1000) NOT VALID;
alter table public.reservations add constraint reservations_origin_max_1000_chars CHECK (char_length(origin) <= 1000) NOT VALID;
alter table public.reservations add constraint reservations_purpose_max_1000_chars CHECK (char_length(purpose) <= 1000) NOT VALID;
alter table public.reservations add constraint reservations_raw_hash_max_1000_chars CHECK (char_length(raw_hash) <= 1000) NOT VALID;
alter table public.reservations add constraint reservations_raw_max_8388608_bytes CHECK (pg_column_size(raw) <= 8388608) NOT VALID;
alter table public.reservations add constraint reservations_state_max_1000_chars CHECK (char_length(state) <= 1000) NOT VALID;
CREATE INDEX reservations_account_idx ON public.reservations USING btree (account_id);
CREATE INDEX reservations_arrival_idx ON public.reservations USING btree (enterprise_id, scheduled_start_utc);
alter table public.reservations enable row level security;
create policy reservations_read on public.reservations as permissive for select to authenticated
    using (enterprise_id = ANY ((( SELECT app.readable_enterprise_ids() AS readable_enterprise_ids))::uuid[]));
grant select on table public.reservations to authenticated;
grant select, insert, update, delete on table public.reservations to service_role;

-- public.resources
create table public.resources (
    enterprise_id uuid not null,
    mews_id uuid not null,
    name text not null,
    state text not null,
    is_active boolean default true not null,
    parent_resource_id uuid,
    floor_number text,
    mews_created_utc timestamp with time zone,
    mews_updated_utc timestamp with time zone not null,
    raw jsonb not null,
    raw_hash text not null,
    synced_at timestamp with time zone default now() not null
);
alter table public.resources add constraint resources_pkey PRIMARY KEY (enterprise_id, mews_id);
alter table public.resources add constraint resources_enterprise_id_fkey FOREIGN KEY (enterprise_id) REFERENCES public.enterprises(id);
alter table public.resources add constraint resources_floor_number_max_1000_chars CHECK (char_length(floor_number) <= 1000) NOT VALID;
alter table public.resources add constraint resources_name_max_1000_chars CHECK (char_length(name) <= 1000) NOT VALID;
alter table public.resources add constraint resources_raw_hash_max_1000_chars CHECK (char_length(raw_hash) <= 1000) NOT VALID;
alter table public.resources add constraint resources_raw_max_8388608_bytes CHECK (pg_column_size(raw) <= 8388608) NOT VALID;
alter table public.resources add constraint resources_state_max_1000_chars CHECK (char_length(state) <= 1000) NOT VALID;
alter table public.resources enable row level security;
create policy resources_read on public.resources as permissive for select to authenticated
    using (enterprise_id = ANY ((( SELECT app.readable_enterprise_ids() AS readable_enterprise_ids))::uuid[]));
grant select on table public.resources to authenticated;
grant select, insert, update, delete on table public.resources to service_role;

-- public.sync_checkpoints
create table public.sync_checkpoints (
    scope_id uuid not null,
    entity text not null,
    phase text default 'poll'::text not null,
    high_water_utc timestamp with time zone,
    low_water_utc timestamp with time zone,
    state jsonb default '{}'::jsonb not null,
    updated_at timestamp with time zone default now() not null
);
alter table public.sync_checkpoints add constraint sync_checkpoints_pkey PRIMARY KEY (scope_id, entity, phase);
alter table public.sync_checkpoints add constraint sync_checkpoints_entity_max_1000_chars CHECK (char_length(entity) <= 1000) NOT VALID;
alter table public.sync_checkpoints add constraint sync_checkpoints_phase_check CHECK (phase = ANY (ARRAY['backfill'::text, 'poll'::text, 'reconcile'::text]));
alter table public.sync_checkpoints add constraint sync_checkpoints_state_max_8388608_bytes CHECK (pg_column_size(state) <= 8388608) NOT VALID;
alter table public.sync_checkpoints enable row level security;
create policy sync_checkpoints_read on public.sync_checkpoints as permissive for select to authenticated
    using ((scope_id = ANY ((( SELECT app.readable_enterprise_ids() AS readable_enterprise_ids))::uuid[])) OR (scope_id = ANY ((( SELECT app.readable_chain_ids() AS readable_chain_ids))::uuid[])));
CREATE TRIGGER sync_checkpoints_touch BEFORE UPDATE ON public.sync_checkpoints FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
grant select on table public.sync_checkpoints to authenticated;
grant select, insert, update, delete on table public.sync_checkpoints to service_role;

-- public.sync_leases
create table public.sync_leases (
    name text not null,
    holder text not null,
    acquired_at timestamp with time zone default now() not null,
    expires_at timestamp with time zone not null,
    released_at timestamp with time zone,
    outcome text
);
alter table public.sync_leases add constraint sync_leases_pkey PRIMARY KEY (name);
alter table public.sync_leases add constraint sync_leases_holder_max_1000_chars CHECK (char_length(holder) <= 1000) NOT VALID;
alter table public.sync_leases add constraint sync_leases_name_max_1000_chars CHECK (char_length(name) <= 1000) NOT VALID;
alter table public.sync_leases add constraint sync_leases_outcome_check CHECK (outcome = ANY (ARRAY['done'::text, 'failed'::text]));
alter table public.sync_leases enable row level security;
grant select, insert, update, delete on table public.sync_leases to service_role;

-- public.sync_runs
create table public.sync_runs (
    id uuid default gen_random_uuid() not null,
    job text not null,
    scope_id uuid,
    status text default 'running'::text not null,
    started_at timestamp with time zone default now() not null,
    finished_at timestamp with time zone,
    counts jsonb default '{}'::jsonb not null,
    error text,
    heartbeat_at timestamp with time zone default now() not null,
    owner text,
    abandoned_by text,
    connection_id uuid,
    session_id uuid
);
alter table public.sync_runs add constraint sync_runs_pkey PRIMARY KEY (id);
alter table public.sync_runs add constraint sync_runs_abandoned_by_max_1000_chars CHECK (char_length(abandoned_by) <= 1000) NOT VALID;
alter table public.sync_runs add constraint sync_runs_counts_max_1048576_bytes CHECK (pg_column_size(counts) <= 1048576) NOT VALID;
alter table public.sync_runs add constraint sync_runs_error_max_100000_chars CHECK (char_length(error) <= 100000) NOT VALID;
alter table public.sync_runs add constraint sync_runs_finished CHECK ((status = 'running'::text) = (finished_at IS NULL));
alter table public.sync_runs add constraint sync_runs_job_max_1000_chars CHECK (char_length(job) <= 1000) NOT VALID;
alter table public.sync_runs add constraint sync_runs_owner_max_1000_chars CHECK (char_length(owner) <= 1000) NOT VALID;
alter table public.sync_runs add constraint sync_runs_status_check CHECK (status = ANY (ARRAY['running'::text, 'succeeded'::text, 'partial'::text, 'rate_limited'::text, 'failed'::text, 'skipped'::text, 'abandoned'::text]));
CREATE INDEX sync_runs_connection_idx ON public.sync_runs USING btree (connection_id, job, started_at DESC) WHERE (connection_id IS NOT NULL);
CREATE INDEX sync_runs_job_idx ON public.sync_runs USING btree (job, started_at DESC);
CREATE INDEX sync_runs_running_idx ON public.sync_runs USING btree (heartbeat_at) WHERE (status = 'running'::text);
alter table public.sync_runs enable row level security;
create policy sync_runs_read on public.sync_runs as permissive for select to authenticated
    using ((scope_id = ANY ((( SELECT app.readable_enterprise_ids() AS readable_enterprise_ids))::uuid[])) OR (scope_id = ANY ((( SELECT app.readable_chain_ids() AS readable_chain_ids))::uuid[])));
alter publication supabase_realtime add table public.sync_runs;
grant select on table public.sync_runs to authenticated;
grant select, insert, update, delete on table public.sync_runs to service_role;

-- public.vendors
create table public.vendors (
    chain_id uuid not null,
    mews_id uuid not null,
    name text not null,
    number numeric(20,0),
    is_active boolean default true not null,
    mother_company_id uuid,
    invoicing_email text,
    telephone text,
    contact_person text,
    tax_identifier text,
    iata text,
    merge_target_id uuid,
    mews_created_utc timestamp with time zone,
    mews_updated_utc timestamp with time zone,
    raw jsonb not null,
    raw_hash text not null,
    synced_at timestamp with time zone default now() not null
);
alter table public.vendors add constraint vendors_pkey PRIMARY KEY (chain_id, mews_id);
alter table public.vendors add constraint vendors_chain_id_fkey FOREIGN KEY (chain_id) REFERENCES public.chains(id);
alter table public.vendors add constraint vendors_contact_person_max_1000_chars CHECK (char_length(contact_person) <= 1000) NOT VALID;
alter table public.vendors add constraint vendors_iata_max_1000_chars CHECK (char_length(iata) <= 1000) NOT VALID;
alter table public.vendors add constraint vendors_invoicing_email_max_1000_chars CHECK (char_length(invoicing_email) <= 1000) NOT VALID;
alter table public.vendors add constraint vendors_name_max_1000_chars CHECK (char_length(name) <= 1000) NOT VALID;
alter table public.vendors add constraint vendors_raw_hash_max_1000_chars CHECK (char_length(raw_hash) <= 1000) NOT VALID;
alter table public.vendors add constraint vendors_raw_max_8388608_bytes CHECK (pg_column_size(raw) <= 8388608) NOT VALID;
alter table public.vendors add constraint vendors_tax_identifier_max_1000_chars CHECK (char_length(tax_identifier) <= 1000) NOT VALID;
alter table public.vendors add constraint vendors_telephone_max_1000_chars CHECK (char_length(telephone) <= 1000) NOT VALID;
CREATE INDEX vendors_updated_idx ON public.vendors USING btree (chain_id, mews_updated_utc);
alter table public.vendors enable row level security;
create policy vendors_read on public.vendors as permissive for select to authenticated
    using (chain_id = ANY ((( SELECT app.readable_chain_ids() AS readable_chain_ids))::uuid[]));
grant select on table public.vendors to authenticated;
grant select, insert, update, delete on table public.vendors to service_role;

-- public.duplicate_suggestions
create view public.duplicate_suggestions with (security_invoker=on) as
 SELECT e.id AS enterprise_id,
    d.chain_id,
    d.guest_a,
    d.guest_b,
    d.probability,
    d.match_weight,
    app.duplicate_evidence_best_first(d.evidence) AS evidence,
    d.found_at,
    COALESCE(s.threshold, 0.9::real) AS threshold
   FROM public.guest_duplicates d
     JOIN public.enterprises e ON e.chain_id = d.chain_id
     LEFT JOIN public.duplicate_settings s ON s.enterprise_id = e.id
     JOIN public.guests ga ON ga.chain_id = d.chain_id AND ga.mews_id = d.guest_a
     JOIN public.guests gb ON gb.chain_id = d.chain_id AND gb.mews_id = d.guest_b
     LEFT JOIN public.duplicate_decisions x ON x.chain_id = d.chain_id AND x.guest_a = d.guest_a AND x.guest_b = d.guest_b
  WHERE d.probability >= COALESCE(s.threshold, 0.9::real) AND ga.is_active AND ga.merge_target_id IS NULL AND gb.is_active AND gb.merge_target_id IS NULL AND
        CASE
            WHEN x.chain_id IS NULL THEN true
            ELSE NOT app.duplicate_decision_holds(x.decision, x.fingerprint_a, x.fingerprint_b, app.guest_match_fingerprint(x.chain_id, x.guest_a), app.guest_match_fingerprint(x.chain_id, x.guest_b))
        END;
grant select on table public.duplicate_suggestions to authenticated;
grant select on table public.duplicate_suggestions to service_role;

-- public.guest_conflicts
create view public.guest_conflicts with (security_invoker=on) as
 SELECT c.id,
    c.chain_id,
    c.guest_mews_id,
    NULLIF(concat_ws(' '::text, g.first_name, g.last_name), ''::text) AS guest_name,
    c.field,
    c.local_value,
    c.mews_value,
    c.resolution,
    c.detail,
    c.local_edited_at,
    c.mews_updated_utc,
    c.created_at
   FROM public.conflict_log c
     LEFT JOIN public.guests g ON g.chain_id = c.chain_id AND g.mews_id = c.guest_mews_id;
grant select on table public.guest_conflicts to authenticated;
grant select on table public.guest_conflicts to service_role;

-- public.quality_field_gaps
create view public.quality_field_gaps with (security_invoker=on) as
 SELECT s.enterprise_id,
    r.field,
    count(*) FILTER (WHERE r.reason_kind = 'missing'::text) AS missing,
    count(*) FILTER (WHERE r.reason_kind = ANY (ARRAY['invalid'::text, 'weak'::text])) AS invalid,
    ( SELECT count(*) AS count
           FROM public.guest_scores t
          WHERE t.enterprise_id = s.enterprise_id) AS guests,
    round(count(*) FILTER (WHERE r.reason_kind = 'missing'::text)::numeric / NULLIF(( SELECT count(*) AS count
           FROM public.guest_scores t
          WHERE t.enterprise_id = s.enterprise_id), 0)::numeric, 4) AS missing_rate
   FROM public.guest_scores s
     CROSS JOIN LATERAL unnest(s.failed_rules) f(rule_id)
     JOIN public.quality_rules r ON r.id = f.rule_id
  GROUP BY s.enterprise_id, r.field;
grant select on table public.quality_field_gaps to authenticated;
grant select on table public.quality_field_gaps to service_role;

-- public.quality_guest_gaps
create view public.quality_guest_gaps with (security_invoker=on) as
 SELECT s.enterprise_id,
    s.chain_id,
    s.guest_mews_id,
    r.field,
    r.reason_kind AS kind,
    r.message,
    r.cost,
    r.severity,
    NULL::jsonb AS evidence
   FROM public.guest_scores s
     CROSS JOIN LATERAL unnest(s.failed_rules) f(rule_id)
     JOIN public.quality_rules r ON r.id = f.rule_id
UNION ALL
 SELECT s.enterprise_id,
    d.chain_id,
    s.guest_mews_id,
    'profile'::text AS field,
    'duplicate'::text AS kind,
    ((('Possible duplicate of '::text || d.other) || ' (p '::text) || round(d.probability::numeric, 2)) || ')'::text AS message,
    0 AS cost,
    'info'::text AS severity,
    d.evidence
   FROM public.guest_scores s
     CROSS JOIN LATERAL ( SELECT p.chain_id,
            p.guest_b AS other,
            p.probability,
            p.evidence
           FROM public.duplicate_suggestions p
          WHERE p.enterprise_id = s.enterprise_id AND p.chain_id = s.chain_id AND p.guest_a = s.guest_mews_id
        UNION ALL
         SELECT p.chain_id,
            p.guest_a,
            p.probability,
            p.evidence
           FROM public.duplicate_suggestions p
          WHERE p.enterprise_id = s.enterprise_id AND p.chain_id = s.chain_id AND p.guest_b = s.guest_mews_id) d;
grant select on table public.quality_guest_gaps to authenticated;
grant select on table public.quality_guest_gaps to service_role;

-- public.quality_worst_profiles
create view public.quality_worst_profiles with (security_invoker=on) as
 SELECT w.enterprise_id,
    w.guest_mews_id,
    g.first_name,
    g.last_name,
    w.score,
    app.quality_reasons(w.failed_rules) AS reasons,
    w.rank
   FROM ( SELECT s.enterprise_id,
            s.chain_id,
            s.guest_mews_id,
            s.score,
            s.failed_rules,
            row_number() OVER (PARTITION BY s.enterprise_id ORDER BY s.score, s.guest_mews_id) AS rank
           FROM public.guest_scores s) w
     JOIN public.guests g ON g.chain_id = w.chain_id AND g.mews_id = w.guest_mews_id
  WHERE w.rank <= 100;
grant select on table public.quality_worst_profiles to authenticated;
grant select on table public.quality_worst_profiles to service_role;

-- public.analyze_tables(jsonb)
CREATE OR REPLACE FUNCTION public.analyze_tables(p_tables jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  if not app.caller_is_trusted() then
    raise exception 'only the service may analyze tables' using errcode = '42501';
  end if;
  return app.analyze_stale(p_tables);
end
$function$;
grant execute on function public.analyze_tables(jsonb) to service_role;

-- public.checkpoint_get(uuid,text,text)
CREATE OR REPLACE FUNCTION public.checkpoint_get(p_scope_id uuid, p_entity text, p_phase text)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select coalesce(
    (select jsonb_build_object('high_water_utc', high_water_utc, 'low_water_utc', low_water_utc,
                               'state', state)
       from public.sync_checkpoints
      where scope_id = p_scope_id and entity = p_entity and phase = p_phase),
    jsonb_build_object('high_water_utc', null, 'low_water_utc', null, 'state', '{}'::jsonb))
$function$;
grant execute on function public.checkpoint_get(uuid,text,text) to service_role;

-- public.checkpoint_reset(uuid,text,text)
CREATE OR REPLACE FUNCTION public.checkpoint_reset(p_scope_id uuid, p_entity text, p_phase text)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  with reset as (
    update public.sync_checkpoints
       set high_water_utc = null, low_water_utc = null, state = '{}'::jsonb
     where scope_id = p_scope_id and entity = p_entity and phase = p_phase
    returning 1
  ) select jsonb_build_object('reset', count(*)) from reset
$function$;
grant execute on function public.checkpoint_reset(uuid,text,text) to service_role;

-- public.checkpoint_save(uuid,text,text,timestamp with time zone,timestamp with time zone,jsonb)
CREATE OR REPLACE FUNCTION public.checkpoint_save(p_scope_id uuid, p_entity text, p_phase text, p_high_water_utc timestamp with time zone DEFAULT NULL::timestamp with time zone, p_low_water_utc timestamp with time zone DEFAULT NULL::timestamp with time zone, p_state jsonb DEFAULT NULL::jsonb)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  insert into public.sync_checkpoints as c (scope_id, entity, phase, high_water_utc, low_water_utc, state)
  values (p_scope_id, p_entity, p_phase, p_high_water_utc, p_low_water_utc, coalesce(p_state, '{}'::jsonb))
  on conflict (scope_id, entity, phase) do update set
    high_water_utc = greatest(c.high_water_utc, excluded.high_water_utc),
    low_water_utc = coalesce(excluded.low_water_utc, c.low_water_utc),
    state = coalesce(p_state, c.state)
  returning jsonb_build_object('high_water_utc', high_water_utc, 'low_water_utc', low_water_utc, 'state', state)
$function$;
grant execute on function public.checkpoint_save(uuid,text,text,timestamp with time zone,timestamp with time zone,jsonb) to service_role;

-- public.checkpoint_window_done(uuid,text,text,text)
CREATE OR REPLACE FUNCTION public.checkpoint_window_done(p_scope_id uuid, p_entity text, p_phase text, p_window_start text)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  insert into public.sync_checkpoints as c (scope_id, entity, phase, state)
  values (p_scope_id, p_entity, p_phase, jsonb_build_object('done', jsonb_build_array(p_window_start)))
  on conflict (scope_id, entity, phase) do update set
    state = case
      when jsonb_typeof(c.state->'done') = 'array' and c.state->'done' @> jsonb_build_array(p_window_start)
        then c.state
      else jsonb_set(c.state, '{done}',
                     case when jsonb_typeof(c.state->'done') = 'array' then c.state->'done'
                          else '[]'::jsonb end || jsonb_build_array(p_window_start))
    end
  returning jsonb_build_object('done', jsonb_array_length(state->'done'))
$function$;
grant execute on function public.checkpoint_window_done(uuid,text,text,text) to service_role;

-- public.connection_apply(text,uuid,uuid,text,text,text)
CREATE OR REPLACE FUNCTION public.connection_apply(p_action text, p_integration_id uuid, p_enterprise_id uuid DEFAULT NULL::uuid, p_enterprise_name text DEFAULT NULL::text, p_token_encrypted text DEFAULT NULL::text, p_token_key text DEFAULT NULL::text)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  insert into public.connections as c (integration_id, enterprise_id, enterprise_name,
                                       access_token_encrypted, token_key, enterprise_ids, status, last_action)
  values (p_integration_id, p_enterprise_id, p_enterprise_name, p_token_encrypted, p_token_key,
          case when p_enterprise_id is null then '{}'::uuid[] else array[p_enterprise_id] end,
          case p_action when 'IntegrationDisabled' then 'disabled' when 'IntegrationCanceled' then 'canceled'
                        when 'IntegrationDeleted' then 'deleted' else 'active' end, p_action)
  on conflict (integration_id) do update set
    enterprise_id = coalesce(excluded.enterprise_id, c.enterprise_id),
    enterprise_name = coalesce(excluded.enterprise_name, c.enterprise_name),
    enterprise_ids = case when excluded.enterprise_id is null or excluded.enterprise_id = any (c.enterprise_ids)
                          then c.enterprise_ids else c.enterprise_ids || excluded.enterprise_id end,
    access_token_encrypted = case
      when p_action = 'IntegrationDeleted' then null
      when p_token_encrypted is not null then p_token_encrypted
      else c.access_token_encrypted end,
    token_key = case
      when p_action = 'IntegrationDeleted' then null
      when p_token_encrypted is not null then p_token_key
      else c.token_key end,
    status = case p_action
      when 'IntegrationDisabled' then 'disabled' when 'IntegrationCanceled' then 'canceled'
      when 'IntegrationDeleted' then 'deleted'
      when 'IntegrationEnabled' then 'active' when 'IntegrationReinstated' then 'active'
      when 'IntegrationCreated' then 'active'
      else c.status end,
    last_action = p_action, updated_at = now()
  returning jsonb_build_object('integration_id', integration_id, 'status', status,
                               'has_token', access_token_encrypted is not null)
$function$;
grant execute on function public.connection_apply(text,uuid,uuid,text,text,text) to service_role;

-- public.connection_claim(text,text,integer,integer,integer,uuid,jsonb)
CREATE OR REPLACE FUNCTION public.connection_claim(p_job text, p_holder text, p_limit integer DEFAULT 1, p_lease_seconds integer DEFAULT 600, p_every_seconds integer DEFAULT 0, p_integration_id uuid DEFAULT NULL::uuid, p_exclude jsonb DEFAULT '[]'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_claimed jsonb;
begin
  insert into public.connection_jobs (integration_id, job)
  select c.integration_id, p_job from public.connections c where c.status = 'active'
  on conflict do nothing;
  with due as (
    select j.integration_id
      from public.connection_jobs j
      join public.connections c on c.integration_id = j.integration_id
     where j.job = p_job
       and (p_integration_id is null or j.integration_id = p_integration_id)
       and not j.integration_id = any (app.uuids(p_exclude))  -- served by this invocation
       and c.status = 'active'
       and (c.access_token_encrypted is not null or c.source = 'environment')
       and c.token_key is not null
       and not exists (select 1 from public.rate_limit_state s
                        where s.key = c.token_key and s.unauthorized_at is not null)
       and (j.lease_expires_at is null or j.lease_expires_at < now() or app.holder_gone(j.lease_holder))
       and (j.last_started_at is null
            or j.last_started_at <= now() - make_interval(secs => greatest(p_every_seconds, 0)))
     order by j.last_started_at nulls first, j.integration_id
     limit least(greatest(p_limit, 0), 1000)
     for update of j skip locked
  ), leased as (
    update public.connection_jobs j
       set lease_holder = p_holder,
           lease_expires_at = now() + make_interval(secs => greatest(p_lease_seconds, 1)),
           last_started_at = now()
      from due where j.integration_id = due.integration_id and j.job = p_job
    returning j.integration_id
  )
  select coalesce(jsonb_agg(jsonb_build_object(
           'integration_id', c.integration_id, 'source', c.source, 'name', c.enterprise_name,
           'token_encrypted', c.access_token_encrypted, 'token_key', c.token_key,
           'enterprise_ids', to_jsonb(c.enterprise_ids), 'is_portfolio', c.is_portfolio,
           'discovered_at', c.discovered_at) order by c.integration_id), '[]'::jsonb)
    into v_claimed
    from leased l join public.connections c on c.integration_id = l.integration_id;
  return v_claimed;
end
$function$;
grant execute on function public.connection_claim(text,text,integer,integer,integer,uuid,jsonb) to service_role;

-- public.connection_discovered(uuid,text,jsonb,boolean)
CREATE OR REPLACE FUNCTION public.connection_discovered(p_integration_id uuid, p_token_key text, p_enterprises jsonb, p_is_portfolio boolean DEFAULT false)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  update public.connections c set
    enterprise_ids = coalesce((select array_agg(distinct (e->>'id')::uuid) from jsonb_array_elements(p_enterprises) e), '{}'),
    chain_ids = coalesce((select array_agg(distinct (e->>'chain_id')::uuid) from jsonb_array_elements(p_enterprises) e
                          where e->>'chain_id' is not null), '{}'),
    enterprise_id = coalesce(c.enterprise_id, (select (e->>'id')::uuid from jsonb_array_elements(p_enterprises) e limit 1)),
    enterprise_name = coalesce(c.enterprise_name,
                               (select string_agg(e->>'name', ', ' order by e->>'name') from jsonb_array_elements(p_enterprises) e)),
    is_portfolio = p_is_portfolio,
    token_key = coalesce(c.token_key, p_token_key),
    discovered_at = now()
  where c.integration_id = p_integration_id
  returning jsonb_build_object('integration_id', c.integration_id, 'enterprise_ids', c.enterprise_ids,
                               'chain_ids', c.chain_ids)
$function$;
grant execute on function public.connection_discovered(uuid,text,jsonb,boolean) to service_role;

-- public.connection_register(uuid,text,text,text,text)
CREATE OR REPLACE FUNCTION public.connection_register(p_integration_id uuid, p_source text, p_token_key text, p_token_encrypted text DEFAULT NULL::text, p_name text DEFAULT NULL::text)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_row public.connections;
  v_created boolean;
begin
  if p_source not in ('manual', 'environment') then
    raise exception 'a connection registered by hand is manual or environment, not %', p_source
      using errcode = '22023';
  end if;
  if p_token_key is null or p_token_key !~ '^mews:[0-9a-f]{64}$' then
    raise exception 'the token key is the hash of the token (mews:<sha256>)' using errcode = '22023';
  end if;
  if p_source = 'manual' and p_token_encrypted is null then
    raise exception 'a manual connection needs its encrypted token' using errcode = '22023';
  end if;
  insert into public.connections as c (integration_id, source, token_key, access_token_encrypted,
                                       enterprise_name, status, last_action)
  values (p_integration_id, p_source, p_token_key, p_token_encrypted, p_name, 'active',
          'registered:' || p_source)
  on conflict (integration_id) do update set
    token_key = excluded.token_key,
    access_token_encrypted = coalesce(excluded.access_token_encrypted, c.access_token_encrypted),
    enterprise_name = coalesce(excluded.enterprise_name, c.enterprise_name),
    -- a deleted connection registered again is active again; disabled stays disabled
    status = case when c.status = 'deleted' then 'active' else c.status end,
    updated_at = case when c.token_key is distinct from excluded.token_key
                        or c.status = 'deleted' then now() else c.updated_at end
  returning * into v_row;
  v_created := v_row.created_at = now();
  return jsonb_build_object('integration_id', v_row.integration_id, 'status', v_row.status,
                            'created', v_created);
end
$function$;
grant execute on function public.connection_register(uuid,text,text,text,text) to service_role;

-- public.connection_release(text,uuid,text,text,boolean,text)
CREATE OR REPLACE FUNCTION public.connection_release(p_job text, p_integration_id uuid, p_holder text, p_status text, p_completed boolean DEFAULT true, p_error text DEFAULT NULL::text)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  with released as (
    update public.connection_jobs set
      lease_holder = null, lease_expires_at = null, last_finished_at = now(), last_status = p_status,
      last_error = left(p_error, 1000),
      last_succeeded_at = case when p_completed and p_status = 'succeeded'
                               then now() else last_succeeded_at end,
      last_started_at = case when p_completed then last_started_at end
     where integration_id = p_integration_id and job = p_job and lease_holder = p_holder
    returning 1
  ) select jsonb_build_object('released', exists (select 1 from released))
$function$;
grant execute on function public.connection_release(text,uuid,text,text,boolean,text) to service_role;

-- public.connection_renew(text,integer)
CREATE OR REPLACE FUNCTION public.connection_renew(p_holder text, p_lease_seconds integer DEFAULT 120)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  with renewed as (
    update public.connection_jobs
       set lease_expires_at = now() + make_interval(secs => greatest(p_lease_seconds, 1))
     where lease_holder = p_holder and lease_expires_at > now()
    returning 1
  ) select jsonb_build_object('renewed', (select count(*) from renewed))
$function$;
grant execute on function public.connection_renew(text,integer) to service_role;

-- public.connection_set_status(uuid,text)
CREATE OR REPLACE FUNCTION public.connection_set_status(p_integration_id uuid, p_status text)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_status text;
begin
  if p_status not in ('active', 'disabled') then
    raise exception 'an operator sets a connection active or disabled, not %', p_status using errcode = '22023';
  end if;
  update public.connections set status = p_status, last_action = 'operator:' || p_status, updated_at = now()
   where integration_id = p_integration_id and status in ('active', 'disabled')
  returning status into v_status;
  if v_status is null then
    raise exception 'no active or disabled connection %', p_integration_id using errcode = 'P0002';
  end if;
  return jsonb_build_object('integration_id', p_integration_id, 'status', v_status);
end
$function$;
grant execute on function public.connection_set_status(uuid,text) to service_role;

-- public.connections_active()
CREATE OR REPLACE FUNCTION public.connections_active()
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select coalesce(jsonb_agg(jsonb_build_object(
           'integration_id', c.integration_id, 'source', c.source, 'name', c.enterprise_name,
           'token_encrypted', c.access_token_encrypted, 'token_key', c.token_key,
           'enterprise_ids', to_jsonb(c.enterprise_ids), 'is_portfolio', c.is_portfolio,
           'discovered_at', c.discovered_at) order by c.integration_id), '[]'::jsonb)
  from public.connections c
  where c.status = 'active'
    and (c.access_token_encrypted is not null or c.source = 'environment')
    and c.token_key is not null
    and not exists (select 1 from public.rate_limit_state s
                     where s.key = c.token_key and s.unauthorized_at is not null)
$function$;
grant execute on function public.connections_active() to service_role;

-- public.connections_health(uuid)
CREATE OR REPLACE FUNCTION public.connections_health(p_integration_id uuid DEFAULT NULL::uuid)
 RETURNS jsonb
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO ''
AS $function$
  with caller as (select app.caller_is_trusted() as trusted,
                         (select app.readable_enterprise_ids())::uuid[] as readable,
                         (select app.readable_chain_ids())::uuid[] as readable_chains)
  select coalesce(jsonb_agg(h.health order by h.name nulls last, h.id), '[]'::jsonb)
  from (
    select c.integration_id as id, v.name, jsonb_build_object(
      'integration_id', c.integration_id,
      'name', v.name,
      'source', c.source,
      'status', case
        when c.status <> 'active' then c.status
        when c.access_token_encrypted is null and c.source <> 'environment' then 'no_token'
        when s.unauthorized_at is not null then 'unauthorized'
        else 'active' end,
      'enterprise_ids', to_jsonb(v.enterprise_ids),
      'chain_ids', to_jsonb(v.chain_ids),
      'is_portfolio', c.is_portfolio,
      'discovered_at', c.discovered_at,
      'last_poll_at', (select max(r.finished_at) from public.sync_runs r
                        where r.connection_id = c.integration_id and r.job = 'poll_changes'
                          and r.status = 'succeeded'),
      'lag_seconds', (select floor(extract(epoch from now() - min(k.high_water_utc)))
                        from public.sync_checkpoints k
                       where k.phase = 'poll' and k.scope_id = any (v.enterprise_ids || v.chain_ids)),
      'requests_last_30s', (select count(*) from public.rate_limit_hits x
                             where x.key = c.token_key and x.at > now() - interval '30 seconds'),
      'rate_limited', coalesce(s.pauses, 0),
      'unauthorized', coalesce(s.unauthorized_count, 0),
      'unauthorized_since', s.unauthorized_at,
      'paused_until', case when s.paused_until > now() then s.paused_until end,
      'quarantined', (select count(*) from public.quarantine q
                       where q.resolved_at is null and q.scope_id = any (v.enterprise_ids || v.chain_ids)),
      'jobs', (select coalesce(jsonb_object_agg(j.job, jsonb_build_object(
                        'last_status', j.last_status, 'last_started_at', j.last_started_at,
                        'last_finished_at', j.last_finished_at, 'last_succeeded_at', j.last_succeeded_at,
                        'leased', j.lease_expires_at > now())
                        || case when k.trusted then jsonb_build_object('last_error', j.last_error)
                                else '{}'::jsonb end), '{}'::jsonb)
                 from public.connection_jobs j where j.integration_id = c.integration_id)
    ) || case when k.trusted then jsonb_build_object('unauthorized_error', s.unauthorized_error)
              else '{}'::jsonb end as health
    from public.connections c
    cross join caller k
    -- what of the connection the caller may see: all of it (the service, or a connection that
    -- names only the caller's hotels), else its enterprises and chains cut down, and no name
    cross join lateral (
      select case when w.whole then c.enterprise_ids
                  else array(select e from unnest(c.enterprise_ids) e where e = any (k.readable)) end as enterprise_ids,
             case when w.whole then c.chain_ids
                  else array(select x from unnest(c.chain_ids) x where x = any (k.readable_chains)) end as chain_ids,
             case when w.whole then c.enterprise_name end as name
      from (select k.trusted or (c.enterprise_ids <@ k.readable
                                 and (c.enterprise_id is null or c.enterprise_id = any (k.readable))
                                 and c.chain_ids <@ k.readable_chains) as whole) w) v
    left join public.rate_limit_state s on s.key = c.token_key
    where (p_integration_id is null or c.integration_id = p_integration_id)
      and (k.trusted or c.enterprise_ids && k.readable or c.enterprise_id = any (k.readable))
  ) h
$function$;
grant execute on function public.connections_health(uuid) to authenticated;
grant execute on function public.connections_health(uuid) to service_role;

-- public.duplicate_decide(uuid,uuid,uuid,text,uuid,text)
CREATE OR REPLACE FUNCTION public.duplicate_decide(p_chain_id uuid, p_guest_a uuid, p_guest_b uuid, p_decision text, p_survivor uuid DEFAULT NULL::uuid, p_note text DEFAULT NULL::text)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_a uuid := least(p_guest_a, p_guest_b);
  v_b uuid := greatest(p_guest_a, p_guest_b);
  v_previous public.duplicate_decisions;
  v_row public.duplicate_decisions;
begin
  if not app.duplicate_may_decide(p_chain_id) then
    raise exception 'only staff of the chain''s hotels may decide on its guests' using errcode = '42501';
  end if;
  if v_a is null or v_a = v_b then
    raise exception 'a decision needs two different guests' using errcode = '22023';
  end if;
  if p_decision is null or p_decision not in ('same', 'different') then
    raise exception 'p_decision must be ''same'' or ''different''' using errcode = '22023';
  end if;
  if p_survivor is not null and (p_decision <> 'same' or p_survivor not in (v_a, v_b)) then
    raise exception 'the survivor must be one of the two guests of a pair decided the same person'
      using errcode = '22023';
  end if;
  if char_length(p_note) > 1000 then
    raise exception 'p_note holds at most 1000 characters' using errcode = '22023';
  end if;
  if (select count(*) from public.guests g where g.chain_id = p_chain_id and g.mews_id in (v_a, v_b)) < 2 then
    raise exception 'both guests must be profiles of the chain' using errcode = '22023';
  end if;
  if p_survivor is not null and exists (
      select 1 from public.guests g where g.chain_id = p_chain_id and g.mews_id in (v_a, v_b)
        and (not g.is_active or g.merge_target_id is not null)) then
    raise exception 'a profile deleted or merged in Mews cannot be merged' using errcode = '22023';
  end if;
  select * into v_previous from public.duplicate_decisions x
   where x.chain_id = p_chain_id and x.guest_a = v_a and x.guest_b = v_b for update;
  if found and v_previous.merge_status = 'merged' then
    raise exception 'the pair was merged in Mews; the decision stands' using errcode = '55000';
  end if;
  insert into public.duplicate_decisions as x (chain_id, guest_a, guest_b, decision, survivor,
    fingerprint_a, fingerprint_b, note, decided_by, decided_at, merge_status, merge_error,
    merge_attempts, merge_updated_at)
  values (p_chain_id, v_a, v_b, p_decision, p_survivor,
    coalesce(app.guest_match_fingerprint(p_chain_id, v_a), ''),
    coalesce(app.guest_match_fingerprint(p_chain_id, v_b), ''),
    p_note, auth.uid(), clock_timestamp(), case when p_survivor is not null then 'pending' end,
    null, 0, null)
  on conflict (chain_id, guest_a, guest_b) do update
    set decision = excluded.decision, survivor = excluded.survivor,
        fingerprint_a = excluded.fingerprint_a, fingerprint_b = excluded.fingerprint_b,
        note = excluded.note, decided_by = excluded.decided_by, decided_at = excluded.decided_at,
        merge_status = excluded.merge_status, merge_error = null, merge_attempts = 0,
        merge_updated_at = null
  returning * into v_row;
  insert into public.duplicate_decision_log (chain_id, guest_a, guest_b, event, survivor,
    fingerprint_a, fingerprint_b, note, actor, at)
  values (p_chain_id, v_a, v_b, p_decision, p_survivor, v_row.fingerprint_a, v_row.fingerprint_b,
    p_note, auth.uid(), v_row.decided_at);
  delete from public.guest_duplicates d
   where d.chain_id = p_chain_id and d.guest_a = v_a and d.guest_b = v_b;
  if p_survivor is not null then  -- the real-time worker pushes the chain (as after an edit)
    perform pg_notify('guesthub_push', p_chain_id::text);
  end if;
  return jsonb_build_object(
    'chain_id', v_row.chain_id, 'guest_a', v_row.guest_a, 'guest_b', v_row.guest_b,
    'decision', v_row.decision, 'survivor', v_row.survivor, 'decided_by', v_row.decided_by,
    'decided_at', v_row.decided_at, 'merge_status', v_row.merge_status,
    'replaced', v_previous.decision);
end
$function$;
grant execute on function public.duplicate_decide(uuid,uuid,uuid,text,uuid,text) to authenticated;
grant execute on function public.duplicate_decide(uuid,uuid,uuid,text,uuid,text) to service_role;

-- public.duplicate_merge_record(uuid,uuid,uuid,timestamp with time zone,text,text,uuid)
CREATE OR REPLACE FUNCTION public.duplicate_merge_record(p_chain_id uuid, p_guest_a uuid, p_guest_b uuid, p_decided_at timestamp with time zone, p_status text, p_error text DEFAULT NULL::text, p_run_id uuid DEFAULT NULL::uuid)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_row public.duplicate_decisions;
  v_source uuid;
  v_target uuid;
begin
  if p_status is null or p_status not in ('merged', 'failed', 'pending') then
    raise exception 'p_status must be merged, failed or pending' using errcode = '22023';
  end if;
  update public.duplicate_decisions x
     set merge_status = p_status, merge_error = left(p_error, 2000),
         merge_attempts = x.merge_attempts + 1, merge_updated_at = now()
   where x.chain_id = p_chain_id and x.guest_a = p_guest_a and x.guest_b = p_guest_b
     and x.decided_at = p_decided_at and x.merge_status = 'pending'
  returning * into v_row;
  v_target := v_row.survivor;
  if v_target is null then  -- replaced meanwhile: the survivor of the decision that was pushed
    select l.survivor into v_target from public.duplicate_decision_log l
     where l.chain_id = p_chain_id and l.guest_a = p_guest_a and l.guest_b = p_guest_b
       and l.at = p_decided_at and l.event = 'same'
     order by l.id desc limit 1;
  end if;
  v_source := case when v_target = p_guest_a then p_guest_b else p_guest_a end;
  insert into public.duplicate_decision_log (chain_id, guest_a, guest_b, event, survivor, detail, run_id)
  values (p_chain_id, p_guest_a, p_guest_b,
          case p_status when 'merged' then 'merged' when 'failed' then 'merge_failed' else 'merge_retry' end,
          v_target, left(p_error, 2000), p_run_id);
  if p_status = 'failed' then
    insert into public.conflict_log (chain_id, guest_mews_id, field, local_value, mews_value,
                                     resolution, detail, local_edited_at)
    values (p_chain_id, v_source, 'merge', jsonb_build_object('merge_into', v_target), null,
            'refused_by_mews', left(p_error, 2000), p_decided_at);
  end if;
  return jsonb_build_object('recorded', v_row.chain_id is not null, 'status', p_status);
end
$function$;
grant execute on function public.duplicate_merge_record(uuid,uuid,uuid,timestamp with time zone,text,text,uuid) to service_role;

-- public.duplicate_merges_pending(integer,jsonb)
CREATE OR REPLACE FUNCTION public.duplicate_merges_pending(p_limit integer DEFAULT 100, p_chain_ids jsonb DEFAULT NULL::jsonb)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select coalesce(jsonb_agg(jsonb_build_object(
           'chain_id', x.chain_id, 'guest_a', x.guest_a, 'guest_b', x.guest_b,
           'source', case when x.survivor = x.guest_a then x.guest_b else x.guest_a end,
           'target', x.survivor, 'decided_at', x.decided_at, 'decided_by', x.decided_by,
           'attempts', x.merge_attempts) order by x.decided_at), '[]'::jsonb)
  from (select * from public.duplicate_decisions
        where merge_status = 'pending'
          and (p_chain_ids is null or chain_id = any (app.uuids(p_chain_ids)))
        order by decided_at limit least(greatest(p_limit, 1), 1000)) x
$function$;
grant execute on function public.duplicate_merges_pending(integer,jsonb) to service_role;

-- public.guest_conflicts_recent(integer)
CREATE OR REPLACE FUNCTION public.guest_conflicts_recent(p_limit integer DEFAULT 20)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select coalesce(jsonb_agg(to_jsonb(c) order by c.created_at desc, c.id desc), '[]'::jsonb)
  from (select * from public.guest_conflicts
        order by created_at desc, id desc
        limit least(greatest(coalesce(p_limit, 20), 1), 1000)) c
$function$;
grant execute on function public.guest_conflicts_recent(integer) to service_role;

-- public.guest_ids_page(uuid,uuid,integer)
CREATE OR REPLACE FUNCTION public.guest_ids_page(p_chain_id uuid, p_after uuid DEFAULT NULL::uuid, p_limit integer DEFAULT 1000)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select coalesce(jsonb_agg(mews_id order by mews_id), '[]'::jsonb)
  from (select mews_id from public.guests
         where chain_id = p_chain_id and (p_after is null or mews_id > p_after)
         order by mews_id limit least(p_limit, 1000)) g
$function$;
grant execute on function public.guest_ids_page(uuid,uuid,integer) to service_role;

-- public.inbox_add(text,text,uuid,jsonb,text,uuid)
CREATE OR REPLACE FUNCTION public.inbox_add(p_source text, p_body_raw text, p_enterprise_id uuid DEFAULT NULL::uuid, p_unknown jsonb DEFAULT '[]'::jsonb, p_error text DEFAULT NULL::text, p_integration_id uuid DEFAULT NULL::uuid)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_raw text := app.redact_body(p_body_raw);
  v_hash text := encode(sha256(convert_to(v_raw, 'UTF8')), 'hex');
  v_body jsonb;
  v_id bigint;
  v_status text;
  v_error text := p_error;
begin
  select e.id, e.status, e.error into v_id, v_status, v_error
    from public.event_inbox e
   where e.body_hash = v_hash and e.source = p_source and e.status in ('pending', 'rejected')
     and e.integration_id is not distinct from p_integration_id
   order by e.id desc limit 1;
  if v_id is not null then
    return jsonb_build_object('id', v_id, 'status', v_status, 'error', v_error, 'duplicate', true);
  end if;
  v_error := p_error;
  begin
    v_body := v_raw::jsonb;
  exception when others then
    v_body := null;
    v_error := coalesce(v_error, 'body is not JSON: ' || sqlerrm);
  end;
  v_status := case when v_error is null then 'pending' else 'rejected' end;
  insert into public.event_inbox (source, enterprise_id, integration_id, body_raw, body, body_hash,
                                  status, error, unknown_discriminators)
  values (p_source, p_enterprise_id, p_integration_id, v_raw, v_body, v_hash, v_status, v_error,
          array(select jsonb_array_elements_text(coalesce(p_unknown, '[]'::jsonb))))
  returning id into v_id;
  return jsonb_build_object('id', v_id, 'status', v_status, 'error', v_error, 'duplicate', false);
end
$function$;
grant execute on function public.inbox_add(text,text,uuid,jsonb,text,uuid) to service_role;

-- public.inbox_claim(integer,integer)
CREATE OR REPLACE FUNCTION public.inbox_claim(p_limit integer DEFAULT 100, p_lock_seconds integer DEFAULT 300)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  with ready as (
    select id from public.event_inbox
     where (status in ('pending', 'failed') and available_at <= now())
        or (status = 'processing' and locked_until < now())
     order by id
     limit least(greatest(p_limit, 1), 1000)
     for update skip locked
  ), claimed as (
    update public.event_inbox e
       set status = 'processing', attempts = e.attempts + 1,
           locked_until = now() + make_interval(secs => p_lock_seconds)
      from ready where e.id = ready.id
    returning e.id, e.source, e.enterprise_id, e.body, e.attempts
  )
  select coalesce(jsonb_agg(to_jsonb(claimed) order by claimed.id), '[]'::jsonb) from claimed
$function$;
grant execute on function public.inbox_claim(integer,integer) to service_role;

-- public.inbox_claim(integer,integer,jsonb,uuid,uuid)
CREATE OR REPLACE FUNCTION public.inbox_claim(p_limit integer, p_lock_seconds integer, p_enterprise_ids jsonb, p_integration_id uuid DEFAULT NULL::uuid, p_holder uuid DEFAULT NULL::uuid)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  with routed as (select app.uuids(p_enterprise_ids) as ids),
  ready as (
    select id from public.event_inbox i
     where ((status in ('pending', 'failed') and available_at <= now())
            or (status = 'processing'
                and (locked_until < now()
                     or (locked_by is not null
                         and not exists (select 1 from public.sync_runs r
                                          where r.id = i.locked_by and r.status = 'running')))))
       and (enterprise_id = any ((select ids from routed)::uuid[])
            or (p_integration_id is not null and integration_id = p_integration_id
                and (enterprise_id is null or not enterprise_id = any ((select ids from routed)::uuid[])))
            or (p_integration_id is not null and integration_id is null and enterprise_id is null))
     order by id
     limit least(greatest(p_limit, 1), 1000)
     for update skip locked
  ), claimed as (
    update public.event_inbox e
       set status = 'processing', attempts = e.attempts + 1, locked_by = p_holder,
           locked_until = now() + make_interval(secs => p_lock_seconds)
      from ready where e.id = ready.id
    returning e.id, e.source, e.enterprise_id, e.integration_id, e.body, e.attempts
  )
  select coalesce(jsonb_agg(to_jsonb(claimed) order by claimed.id), '[]'::jsonb) from claimed
$function$;
grant execute on function public.inbox_claim(integer,integer,jsonb,uuid,uuid) to service_role;

-- public.inbox_complete(jsonb)
CREATE OR REPLACE FUNCTION public.inbox_complete(p_ids jsonb)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  with done as (
    update public.event_inbox set status = 'done', processed_at = now(), locked_until = null, error = null
     where id in (select (jsonb_array_elements_text(p_ids))::bigint) and status = 'processing'
    returning 1
  ) select jsonb_build_object('completed', count(*)) from done
$function$;
grant execute on function public.inbox_complete(jsonb) to service_role;

-- public.inbox_fail(jsonb,text,integer,integer)
CREATE OR REPLACE FUNCTION public.inbox_fail(p_ids jsonb, p_error text, p_max_attempts integer DEFAULT 5, p_backoff_seconds integer DEFAULT 60)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  with failed as (
    update public.event_inbox
       set status = case when attempts >= p_max_attempts then 'dead' else 'failed' end,
           error = p_error, locked_until = null,
           available_at = now() + make_interval(secs => p_backoff_seconds * power(2, greatest(attempts - 1, 0)))
     where id in (select (jsonb_array_elements_text(p_ids))::bigint) and status = 'processing'
    returning status
  ) select jsonb_build_object('failed', count(*) filter (where status = 'failed'),
                              'dead', count(*) filter (where status = 'dead')) from failed
$function$;
grant execute on function public.inbox_fail(jsonb,text,integer,integer) to service_role;

-- public.inbox_purge(integer,integer)
CREATE OR REPLACE FUNCTION public.inbox_purge(p_retention_days integer, p_batch integer DEFAULT 10000)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_deleted integer;
begin
  if p_retention_days is null or p_retention_days < 1 then
    raise exception 'the retention is at least one day' using errcode = '22023';
  end if;
  with old as (
    select id from public.event_inbox
     where status in ('done', 'rejected')
       and coalesce(processed_at, received_at) < now() - make_interval(days => p_retention_days)
     order by id limit least(greatest(p_batch, 1), 50000)
     for update skip locked
  )
  delete from public.event_inbox e using old where e.id = old.id;
  get diagnostics v_deleted = row_count;
  return jsonb_build_object('purged', v_deleted);
end
$function$;
grant execute on function public.inbox_purge(integer,integer) to service_role;

-- public.inbox_replay(jsonb)
CREATE OR REPLACE FUNCTION public.inbox_replay(p_ids jsonb DEFAULT NULL::jsonb)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  with replayed as (
    update public.event_inbox set status = 'pending', attempts = 0, available_at = now(), error = null
     where status = 'dead' and (p_ids is null or id in (select (jsonb_array_elements_text(p_ids))::bigint))
    returning 1
  ) select jsonb_build_object('replayed', count(*)) from replayed
$function$;
grant execute on function public.inbox_replay(jsonb) to service_role;

-- public.inbox_stats()
CREATE OR REPLACE FUNCTION public.inbox_stats()
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select jsonb_build_object(
    'by_status', coalesce((select jsonb_object_agg(status, n) from
       (select status, count(*) n from public.event_inbox group by status) s), '{}'::jsonb),
    'unknown_discriminators', coalesce((select jsonb_object_agg(d, n) from
       (select unnest(unknown_discriminators) d, count(*) n from public.event_inbox group by 1) u), '{}'::jsonb),
    'unrouted', app.inbox_unrouted())
$function$;
grant execute on function public.inbox_stats() to service_role;

-- public.lease_acquire(text,text,integer)
CREATE OR REPLACE FUNCTION public.lease_acquire(p_name text, p_holder text, p_seconds integer DEFAULT 120)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_lease public.sync_leases;
  v_run public.sync_runs;
  v_gone text;
  v_until timestamptz := now() + make_interval(secs => greatest(p_seconds, 1));
begin
  insert into public.sync_leases (name, holder, expires_at) values (p_name, p_holder, v_until)
  on conflict (name) do nothing;
  if found then
    return jsonb_build_object('acquired', true, 'holder', p_holder, 'previous', null);
  end if;
  select * into v_lease from public.sync_leases where name = p_name for update;
  v_run := app.holder_run(v_lease.holder);
  if v_lease.holder <> p_holder and v_lease.released_at is null and v_lease.expires_at >= now() then
    v_gone := case when v_run.id is not null then app.run_gone(v_run, null) end;
    if v_gone is null then
      return jsonb_build_object(
        'acquired', false, 'holder', v_lease.holder, 'since', v_lease.acquired_at,
        'expires_at', v_lease.expires_at, 'job', v_run.job, 'owner', v_run.owner,
        'run_started_at', v_run.started_at, 'heartbeat_at', v_run.heartbeat_at,
        'session', v_run.session_id is not null);
    end if;
    update public.sync_runs
       set status = 'abandoned', finished_at = now(), abandoned_by = p_holder, error = v_gone
     where id = v_run.id and status = 'running';
    delete from public.sync_leases where holder = v_lease.holder and name <> p_name;
    update public.event_inbox set locked_until = now()
     where locked_by = v_run.id and status = 'processing';
  end if;
  update public.sync_leases
     set holder = p_holder, expires_at = v_until, released_at = null, outcome = null,
         acquired_at = case when holder = p_holder and released_at is null then acquired_at else now() end
   where name = p_name;
  return jsonb_build_object(
    'acquired', true, 'holder', p_holder,
    'previous', case when v_lease.holder <> p_holder or v_lease.released_at is not null then
      jsonb_build_object('holder', v_lease.holder, 'since', v_lease.acquired_at,
                         'released_at', v_lease.released_at, 'outcome', v_lease.outcome,
                         'expired', v_lease.released_at is null and v_lease.expires_at < now(),
                         'dead', v_gone, 'job', v_run.job, 'owner', v_run.owner) end);
end
$function$;
grant execute on function public.lease_acquire(text,text,integer) to service_role;

-- public.lease_release(text,text,text)
CREATE OR REPLACE FUNCTION public.lease_release(p_name text, p_holder text, p_outcome text DEFAULT 'done'::text)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  with gone as (
    update public.sync_leases set released_at = now(), expires_at = now(), outcome = p_outcome
     where name = p_name and holder = p_holder and released_at is null
    returning 1
  ) select jsonb_build_object('released', exists (select 1 from gone))
$function$;
grant execute on function public.lease_release(text,text,text) to service_role;

-- public.push_pending(integer)
CREATE OR REPLACE FUNCTION public.push_pending(p_limit integer DEFAULT 100)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select coalesce(jsonb_agg(jsonb_build_object(
           'chain_id', chain_id, 'mews_id', mews_id, 'changes', local_changes,
           'base', coalesce(local_base, '{}'::jsonb),
           'edited_at', local_edited_at, 'base_updated_utc', local_base_updated_utc,
           'is_active', is_active, 'merge_target_id', merge_target_id) order by local_edited_at), '[]'::jsonb)
  from (select * from public.guests where push_status = 'pending'
        order by local_edited_at limit least(p_limit, 1000)) g
$function$;
grant execute on function public.push_pending(integer) to service_role;

-- public.push_pending(integer,jsonb)
CREATE OR REPLACE FUNCTION public.push_pending(p_limit integer, p_chain_ids jsonb)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select coalesce(jsonb_agg(jsonb_build_object(
           'chain_id', chain_id, 'mews_id', mews_id, 'changes', local_changes,
           'base', coalesce(local_base, '{}'::jsonb),
           'edited_at', local_edited_at, 'base_updated_utc', local_base_updated_utc,
           'is_active', is_active, 'merge_target_id', merge_target_id) order by local_edited_at), '[]'::jsonb)
  from (select * from public.guests where push_status = 'pending' and chain_id = any (app.uuids(p_chain_ids))
        order by local_edited_at limit least(p_limit, 1000)) g
$function$;
grant execute on function public.push_pending(integer,jsonb) to service_role;

-- public.push_record(uuid,uuid,timestamp with time zone,text,text,jsonb)
CREATE OR REPLACE FUNCTION public.push_record(p_chain_id uuid, p_mews_id uuid, p_edited_at timestamp with time zone, p_status text, p_error text DEFAULT NULL::text, p_conflicts jsonb DEFAULT '[]'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_cleared boolean;
  v_done boolean := p_status in ('pushed', 'mews_won');
begin
  update public.guests
     set push_status = p_status, push_error = p_error,
         local_changes = case when v_done then null else local_changes end,
         local_base = case when v_done then null else local_base end
   where chain_id = p_chain_id and mews_id = p_mews_id and local_edited_at = p_edited_at;
  v_cleared := found;
  insert into public.conflict_log (chain_id, guest_mews_id, field, local_value, mews_value,
                                   resolution, detail, local_edited_at, mews_updated_utc)
  select p_chain_id, p_mews_id, c.field, c.local_value, c.mews_value, c.resolution, c.detail,
         p_edited_at, c.mews_updated_utc
  from jsonb_to_recordset(p_conflicts) as c(field text, local_value jsonb, mews_value jsonb,
                                            resolution text, detail text, mews_updated_utc timestamptz);
  return jsonb_build_object('recorded', v_cleared);
end
$function$;
grant execute on function public.push_record(uuid,uuid,timestamp with time zone,text,text,jsonb) to service_role;

-- public.quality_arrivals_at_risk(integer,integer)
CREATE OR REPLACE FUNCTION public.quality_arrivals_at_risk(p_days integer DEFAULT 7, p_threshold integer DEFAULT 60)
 RETURNS TABLE(enterprise_id uuid, reservation_id uuid, guest_mews_id uuid, first_name text, last_name text, arrival timestamp with time zone, state text, score smallint, reasons jsonb)
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select r.enterprise_id, r.mews_id, r.account_id, g.first_name, g.last_name, r.scheduled_start_utc,
         r.state, s.score, app.quality_reasons(s.failed_rules)
  from public.reservations r
  join public.guest_scores s on s.enterprise_id = r.enterprise_id and s.guest_mews_id = r.account_id
  join public.guests g on g.chain_id = s.chain_id and g.mews_id = s.guest_mews_id
  where r.scheduled_start_utc >= now() and r.scheduled_start_utc < now() + make_interval(days => p_days)
    and r.state in ('Confirmed', 'Optional', 'Requested', 'Inquired')
    and s.score < p_threshold
  order by r.scheduled_start_utc, s.score
$function$;
grant execute on function public.quality_arrivals_at_risk(integer,integer) to authenticated;
grant execute on function public.quality_arrivals_at_risk(integer,integer) to service_role;

-- public.quality_discard_draft(uuid)
CREATE OR REPLACE FUNCTION public.quality_discard_draft(p_rule_set_id uuid)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_enterprise uuid;
  v_status text;
begin
  select enterprise_id, status into v_enterprise, v_status from public.quality_rule_sets where id = p_rule_set_id;
  if v_enterprise is null or not app.quality_may_admin(v_enterprise) then
    raise exception 'only admins of the enterprise may discard its drafts' using errcode = '42501';
  end if;
  if v_status <> 'draft' then
    raise exception 'only a draft can be discarded (this one is %)', v_status using errcode = '22023';
  end if;
  delete from public.quality_rules where rule_set_id = p_rule_set_id;
  delete from public.quality_rule_sets where id = p_rule_set_id;
  return jsonb_build_object('discarded', p_rule_set_id);
end
$function$;
grant execute on function public.quality_discard_draft(uuid) to authenticated;
grant execute on function public.quality_discard_draft(uuid) to service_role;

-- public.quality_draft_rule_set(uuid,text)
CREATE OR REPLACE FUNCTION public.quality_draft_rule_set(p_enterprise_id uuid, p_note text DEFAULT NULL::text)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_id uuid;
  v_version integer;
begin
  if not app.quality_may_admin(p_enterprise_id) then
    raise exception 'only admins of the enterprise may draft rules' using errcode = '42501';
  end if;
  select coalesce(max(version), 0) + 1 into v_version from public.quality_rule_sets where enterprise_id = p_enterprise_id;
  insert into public.quality_rule_sets (enterprise_id, version, note) values (p_enterprise_id, v_version, p_note)
  returning id into v_id;
  insert into public.quality_rules (rule_set_id, enterprise_id, field, kind, params, severity, weight)
  select v_id, p_enterprise_id, field, kind, params, severity, weight
  from public.quality_rules where rule_set_id = app.quality_enabled_rule_set(p_enterprise_id);
  return jsonb_build_object('id', v_id, 'version', v_version);
end
$function$;
grant execute on function public.quality_draft_rule_set(uuid,text) to authenticated;
grant execute on function public.quality_draft_rule_set(uuid,text) to service_role;

-- public.quality_dry_run(uuid,integer,integer,jsonb)
CREATE OR REPLACE FUNCTION public.quality_dry_run(p_rule_set_id uuid, p_page integer DEFAULT NULL::integer, p_limit integer DEFAULT NULL::integer, p_totals jsonb DEFAULT NULL::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
 SET jit TO 'off'
 SET work_mem TO '64MB'
AS $function$
declare
  v_enterprise uuid;
  v_chain uuid;
  v_page integer := coalesce(p_page, 0);
  v_pages integer := 1;
  v_page_figures jsonb;
  v_totals jsonb := coalesce(p_totals, '{}'::jsonb);
  v_key text;
begin
  select s.enterprise_id, e.chain_id into v_enterprise, v_chain
    from public.quality_rule_sets s join public.enterprises e on e.id = s.enterprise_id
   where s.id = p_rule_set_id;
  if v_enterprise is null then
    raise exception 'no rule set %', p_rule_set_id using errcode = '22023';
  end if;
  if not app.quality_may_admin(v_enterprise) then
    raise exception 'only admins of the enterprise may dry-run its rules' using errcode = '42501';
  end if;
  if p_limit is not null then
    if p_limit < 1 then
      raise exception 'p_limit: at least one guest per call' using errcode = '22023';
    end if;
    v_pages := (v_totals->>'pages')::integer;
    if v_pages is null then
      select greatest(1, ceil(count(*)::numeric / p_limit))::integer into v_pages
        from public.guests g where g.chain_id = v_chain and g.is_active;
    end if;
    if v_page not between 0 and v_pages - 1 then
      raise exception 'p_page must be in 0..%', v_pages - 1 using errcode = '22023';
    end if;
  end if;
  execute format($f$
    with proposed as (%s),
    compared as (
      select p.score as new_score, o.score as old_score, p.score - coalesce(o.score, p.score) as delta
      from proposed p
      left join public.guest_scores o on o.enterprise_id = $5 and o.guest_mews_id = p.guest_mews_id
            and ($3::uuid is null or o.guest_mews_id >= $3::uuid) and ($4::uuid is null or o.guest_mews_id < $4::uuid)
    )
    select jsonb_build_object(
      'guests', count(*), 'changed', count(*) filter (where delta <> 0),
      'raised', count(*) filter (where delta > 0), 'lowered', count(*) filter (where delta < 0),
      'sum_delta', coalesce(sum(delta), 0), 'min_delta', min(delta), 'max_delta', max(delta),
      'sum_before', coalesce(sum(old_score), 0), 'scored_before', count(old_score),
      'sum_after', coalesce(sum(new_score), 0),
      'below_50_before', count(*) filter (where old_score < 50),
      'below_50_after', count(*) filter (where new_score < 50))
    from compared
  $f$, app.quality_score_select(p_rule_set_id))
  into v_page_figures
  using v_chain, null::uuid[], app.quality_lane_start(v_page, v_pages), app.quality_lane_start(v_page + 1, v_pages),
        v_enterprise;
  foreach v_key in array array['guests', 'changed', 'raised', 'lowered', 'sum_delta', 'sum_before',
                               'scored_before', 'sum_after', 'below_50_before', 'below_50_after'] loop
    v_totals := v_totals || jsonb_build_object(v_key,
      coalesce((v_totals->>v_key)::bigint, 0) + coalesce((v_page_figures->>v_key)::bigint, 0));
  end loop;
  v_totals := v_totals || jsonb_build_object(
    'pages', v_pages,
    'min_delta', least((v_totals->>'min_delta')::integer, (v_page_figures->>'min_delta')::integer),
    'max_delta', greatest((v_totals->>'max_delta')::integer, (v_page_figures->>'max_delta')::integer));
  return jsonb_build_object(
    'guests', (v_totals->>'guests')::bigint,
    'changed', (v_totals->>'changed')::bigint,
    'raised', (v_totals->>'raised')::bigint,
    'lowered', (v_totals->>'lowered')::bigint,
    'average_delta', coalesce(round((v_totals->>'sum_delta')::numeric / nullif((v_totals->>'guests')::numeric, 0), 2), 0),
    'largest_drop', coalesce((v_totals->>'min_delta')::integer, 0),
    'largest_rise', coalesce((v_totals->>'max_delta')::integer, 0),
    'average_before', round((v_totals->>'sum_before')::numeric / nullif((v_totals->>'scored_before')::numeric, 0), 2),
    'average_after', round((v_totals->>'sum_after')::numeric / nullif((v_totals->>'guests')::numeric, 0), 2),
    'below_50_before', (v_totals->>'below_50_before')::bigint,
    'below_50_after', (v_totals->>'below_50_after')::bigint,
    'totals', v_totals,
    'next', case when v_page + 1 < v_pages then v_page + 1 end);
end
$function$;
grant execute on function public.quality_dry_run(uuid,integer,integer,jsonb) to authenticated;
grant execute on function public.quality_dry_run(uuid,integer,integer,jsonb) to service_role;

-- public.quality_duplicate_inputs(uuid,uuid,integer)
CREATE OR REPLACE FUNCTION public.quality_duplicate_inputs(p_chain_id uuid, p_after uuid DEFAULT NULL::uuid, p_limit integer DEFAULT 5000)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  with page as (
    select g.mews_id, g.first_name, g.last_name, g.birth_date,
           case when not g.has_ota_email then f.email_normalized end as email, f.phone_e164 as phone
    from public.guests g
    left join public.guest_facts f on f.chain_id = g.chain_id and f.guest_mews_id = g.mews_id
    where g.chain_id = p_chain_id and g.is_active
      and g.mews_id > coalesce(p_after, '00000000-0000-0000-0000-000000000000')
    order by g.mews_id
    limit least(greatest(p_limit, 1), 20000))
  select jsonb_build_object(
    'guests', coalesce((select jsonb_agg(jsonb_build_object(
                'id', p.mews_id, 'first_name', p.first_name, 'last_name', p.last_name,
                'birth_date', p.birth_date, 'email', p.email, 'phone', p.phone) order by p.mews_id)
              from page p), '[]'::jsonb),
    'next', (select p.mews_id from page p
             where (select count(*) from page) >= least(greatest(p_limit, 1), 20000)
             order by p.mews_id desc limit 1))
$function$;
grant execute on function public.quality_duplicate_inputs(uuid,uuid,integer) to service_role;

-- public.quality_duplicate_suggestions(uuid,integer)
CREATE OR REPLACE FUNCTION public.quality_duplicate_suggestions(p_enterprise_id uuid, p_limit integer DEFAULT 50)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  with chosen as (
    select d.* from public.duplicate_suggestions d where d.enterprise_id = p_enterprise_id)
  select jsonb_build_object(
    'threshold', (select coalesce(s.threshold, 0.9::real) from public.enterprises e
                  left join public.duplicate_settings s on s.enterprise_id = e.id
                  where e.id = p_enterprise_id),
    'total', (select count(*) from chosen),
    'pairs', coalesce((
      select jsonb_agg(jsonb_build_object(
               'a', jsonb_build_object('guest', d.guest_a, 'name', concat_ws(' ', ga.first_name, ga.last_name), 'email', ga.email),
               'b', jsonb_build_object('guest', d.guest_b, 'name', concat_ws(' ', gb.first_name, gb.last_name), 'email', gb.email),
               'chain_id', d.chain_id, 'probability', d.probability, 'weight', d.match_weight,
               'evidence', d.evidence)
             order by d.probability desc, d.match_weight desc, d.guest_a, d.guest_b)
      from (select * from chosen order by probability desc, match_weight desc, guest_a, guest_b
            limit least(greatest(p_limit, 1), 500)) d
      left join public.guests ga on ga.chain_id = d.chain_id and ga.mews_id = d.guest_a
      left join public.guests gb on gb.chain_id = d.chain_id and gb.mews_id = d.guest_b), '[]'::jsonb))
$function$;
grant execute on function public.quality_duplicate_suggestions(uuid,integer) to authenticated;
grant execute on function public.quality_duplicate_suggestions(uuid,integer) to service_role;

-- public.quality_duplicates_around(uuid,jsonb,jsonb)
CREATE OR REPLACE FUNCTION public.quality_duplicates_around(p_chain_id uuid, p_guests jsonb, p_counts jsonb DEFAULT '[]'::jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_keys jsonb;
  v_ids uuid[];
begin
  if jsonb_typeof(p_guests) is distinct from 'array' or jsonb_array_length(p_guests) > 1000 then
    raise exception 'p_guests must be an array of at most 1000 guests' using errcode = '22023';
  end if;
  v_ids := array(select (r->>'id')::uuid from jsonb_array_elements(p_guests) with ordinality as e(r, i) order by i);
  perform app.duplicate_keys_replace(
    p_chain_id, v_ids,
    array(select (r->>'digest')::bigint from jsonb_array_elements(p_guests) with ordinality as e(r, i) order by i),
    array(select coalesce((select string_agg(x, ' ') from jsonb_array_elements_text(r->'keys') x), '')
          from jsonb_array_elements(p_guests) with ordinality as e(r, i) order by i));
  with asked as (
    select distinct k.key, k.cap
    from jsonb_to_recordset(p_guests) as r(keys bigint[], caps integer[])
    cross join lateral unnest(r.keys, r.caps) as k(key, cap)),
  held as (
    select a.key, a.cap, h.ids, h.size
    from asked a
    cross join lateral (
      select array_agg(x.guest_mews_id) as ids, count(*)::integer as size
      from (select k.guest_mews_id from app.duplicate_keys k
             where k.key = a.key
             limit a.cap + 1) x) h)
  select jsonb_build_object(
    'held', coalesce((select jsonb_object_agg(h.key::text,
                        -- the count of a key past its cap, all of it: what the evidence says
                        case when h.size > h.cap
                             then (select count(*) from app.duplicate_keys k where k.key = h.key)
                             else h.size end) from held h), '{}'::jsonb),
    'members', coalesce((select jsonb_object_agg(h.key::text, to_jsonb(h.ids)) from held h
                          where h.size between 2 and h.cap), '{}'::jsonb),
    'candidates', coalesce((
      select jsonb_agg(app.duplicate_input(g, f))
      from (select distinct unnest(h.ids) as id from held h where h.size between 2 and h.cap) c
      join public.guests g on g.chain_id = p_chain_id and g.mews_id = c.id and g.is_active
      left join public.guest_facts f on f.chain_id = p_chain_id and f.guest_mews_id = g.mews_id
      where c.id <> all (v_ids)), '[]'::jsonb),
    'counts', coalesce((select jsonb_object_agg(c.key::text, c.held) from app.duplicate_counts c
                         where c.chain_id = p_chain_id
                           and c.key in (select (x #>> '{}')::bigint from jsonb_array_elements(p_counts) x)), '{}'::jsonb),
    'pairs', coalesce((
      select jsonb_agg(jsonb_build_array(d.guest_a, d.guest_b, d.probability, d.match_weight, d.evidence))
      from public.guest_duplicates d
      where d.chain_id = p_chain_id and (d.guest_a = any (v_ids) or d.guest_b = any (v_ids))), '[]'::jsonb))
  into v_keys;
  return v_keys;
end
$function$;
grant execute on function public.quality_duplicates_around(uuid,jsonb,jsonb) to service_role;

-- public.quality_duplicates_claim(uuid,integer)
CREATE OR REPLACE FUNCTION public.quality_duplicates_claim(p_chain_id uuid, p_limit integer DEFAULT 200)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  with queued as (
    select q.guest_mews_id, q.queued_at from app.quality_duplicate_queue q
     where q.chain_id = p_chain_id order by q.queued_at, q.guest_mews_id
     limit least(greatest(p_limit, 1), 1000))
  select jsonb_build_object(
    'claimed_at', (select max(q.queued_at) from queued q),
    'ids', coalesce((select jsonb_agg(q.guest_mews_id) from queued q), '[]'::jsonb),
    'guests', coalesce((
      select jsonb_agg(app.duplicate_input(g, f))
      from queued q
      join public.guests g on g.chain_id = p_chain_id and g.mews_id = q.guest_mews_id and g.is_active
      left join public.guest_facts f on f.chain_id = p_chain_id and f.guest_mews_id = g.mews_id), '[]'::jsonb),
    'model', (select jsonb_build_object('model', m.model, 'guests', m.guests,
                                        'counts_digest', m.counts_digest, 'estimated_at', m.estimated_at)
              from app.duplicate_models m where m.chain_id = p_chain_id),
    'more', (select count(*) from queued) >= least(greatest(p_limit, 1), 1000))
$function$;
grant execute on function public.quality_duplicates_claim(uuid,integer) to service_role;

-- public.quality_duplicates_counts_put(uuid,jsonb,boolean)
CREATE OR REPLACE FUNCTION public.quality_duplicates_counts_put(p_chain_id uuid, p_counts jsonb, p_replace boolean)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_rows integer;
begin
  if jsonb_typeof(p_counts) is distinct from 'array' or jsonb_array_length(p_counts) > 200000 then
    raise exception 'p_counts must be an array of at most 200000 counts' using errcode = '22023';
  end if;
  if p_replace then
    delete from app.duplicate_counts c where c.chain_id = p_chain_id;
  end if;
  insert into app.duplicate_counts (chain_id, key, held)
  select p_chain_id, (c->>0)::bigint, (c->>1)::integer
  from jsonb_array_elements(p_counts) c
  order by 2
  on conflict (chain_id, key) do update set held = excluded.held;
  get diagnostics v_rows = row_count;
  return v_rows;
end
$function$;
grant execute on function public.quality_duplicates_counts_put(uuid,jsonb,boolean) to service_role;

-- public.quality_duplicates_done(uuid,jsonb,jsonb,timestamp with time zone)
CREATE OR REPLACE FUNCTION public.quality_duplicates_done(p_chain_id uuid, p_ids jsonb, p_forget jsonb, p_claimed_at timestamp with time zone)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_ids uuid[] := array(select (x #>> '{}')::uuid from jsonb_array_elements(p_ids) x);
  v_gone integer;
begin
  v_gone := public.quality_duplicates_forget(p_chain_id, p_forget);
  with gone as (
    delete from app.duplicate_guests d
     where d.chain_id = p_chain_id and d.guest_mews_id = any (v_ids)
       and not exists (select 1 from public.guests g where g.chain_id = d.chain_id
                        and g.mews_id = d.guest_mews_id and g.is_active)
    returning d.guest_mews_id, d.keys)
  delete from app.duplicate_keys k
   where k.ctid = any (array(
     select x.ctid from gone cross join lateral unnest(gone.keys) as o(key)
     cross join lateral (select k2.ctid from app.duplicate_keys k2
                          where k2.key = o.key and k2.guest_mews_id = gone.guest_mews_id) x));
  delete from app.quality_duplicate_queue q
   where q.chain_id = p_chain_id and q.guest_mews_id = any (v_ids) and q.queued_at <= p_claimed_at;
  return v_gone;
end
$function$;
grant execute on function public.quality_duplicates_done(uuid,jsonb,jsonb,timestamp with time zone) to service_role;

-- public.quality_duplicates_forget(uuid,jsonb)
CREATE OR REPLACE FUNCTION public.quality_duplicates_forget(p_chain_id uuid, p_pairs jsonb)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_gone integer;
begin
  if jsonb_typeof(p_pairs) is distinct from 'array' or jsonb_array_length(p_pairs) > 50000 then
    raise exception 'p_pairs must be an array of at most 50000 pairs' using errcode = '22023';
  end if;
  delete from public.guest_duplicates d
   using jsonb_array_elements(p_pairs) p
   where d.chain_id = p_chain_id and d.guest_a = (p->>0)::uuid and d.guest_b = (p->>1)::uuid;
  get diagnostics v_gone = row_count;
  return v_gone;
end
$function$;
grant execute on function public.quality_duplicates_forget(uuid,jsonb) to service_role;

-- public.quality_duplicates_held(uuid)
CREATE OR REPLACE FUNCTION public.quality_duplicates_held(p_chain_id uuid)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select coalesce(jsonb_agg(jsonb_build_array(x.guest_a, x.guest_b) order by x.guest_a, x.guest_b),
                  '[]'::jsonb)
  from public.duplicate_decisions x
  left join public.guests ga on ga.chain_id = x.chain_id and ga.mews_id = x.guest_a
  left join public.guest_facts fa on fa.chain_id = x.chain_id and fa.guest_mews_id = x.guest_a
  left join public.guests gb on gb.chain_id = x.chain_id and gb.mews_id = x.guest_b
  left join public.guest_facts fb on fb.chain_id = x.chain_id and fb.guest_mews_id = x.guest_b
  where x.chain_id = p_chain_id
    and app.duplicate_decision_holds(
          x.decision, x.fingerprint_a, x.fingerprint_b,
          app.guest_match_fingerprint_of(ga.first_name, ga.last_name, ga.birth_date,
                                         ga.has_ota_email, fa.email_normalized, fa.phone_e164),
          app.guest_match_fingerprint_of(gb.first_name, gb.last_name, gb.birth_date,
                                         gb.has_ota_email, fb.email_normalized, fb.phone_e164))
$function$;
grant execute on function public.quality_duplicates_held(uuid) to service_role;

-- public.quality_duplicates_keys_index(text,text)
CREATE OR REPLACE FUNCTION public.quality_duplicates_keys_index(p_keys text, p_guests text)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO ''
 SET work_mem TO '64MB'
AS $function$
declare
  v_keys bigint[];
  v_guests uuid[];
  v_rows integer;
begin
  if p_keys is null or p_guests is null or octet_length(p_keys) > 22000000
     or octet_length(p_guests) > 37000000 then
    raise exception 'p_keys and p_guests must hold at most 1000000 keys and guest ids' using errcode = '22023';
  end if;
  v_keys := string_to_array(nullif(p_keys, ''), ',')::bigint[];
  v_guests := string_to_array(nullif(p_guests, ''), ',')::uuid[];
  if coalesce(cardinality(v_keys), 0) <> coalesce(cardinality(v_guests), 0) then
    raise exception 'p_keys holds % keys but p_guests % guest ids', coalesce(cardinality(v_keys), 0),
      coalesce(cardinality(v_guests), 0) using errcode = '22023';
  end if;
  insert into app.duplicate_keys (key, guest_mews_id)
  select k.key, k.guest from unnest(v_keys, v_guests) as k(key, guest) order by k.key, k.guest;
  get diagnostics v_rows = row_count;
  return v_rows;
end
$function$;
grant execute on function public.quality_duplicates_keys_index(text,text) to service_role;

-- public.quality_duplicates_keys_prune(uuid,uuid,uuid)
CREATE OR REPLACE FUNCTION public.quality_duplicates_keys_prune(p_chain_id uuid, p_from uuid DEFAULT NULL::uuid, p_to uuid DEFAULT NULL::uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_gone integer;
begin
  with gone as (
    delete from app.duplicate_guests d
     where d.chain_id = p_chain_id
       and d.guest_mews_id >= coalesce(p_from, '00000000-0000-0000-0000-000000000000')
       and (p_to is null or d.guest_mews_id < p_to)
       and not exists (select 1 from public.guests g where g.chain_id = d.chain_id
                        and g.mews_id = d.guest_mews_id and g.is_active)
    returning d.guest_mews_id, d.keys),
  keys as (
    delete from app.duplicate_keys k
     where k.ctid = any (array(
       select x.ctid from gone cross join lateral unnest(gone.keys) as o(key)
       cross join lateral (select k2.ctid from app.duplicate_keys k2
                            where k2.key = o.key and k2.guest_mews_id = gone.guest_mews_id) x)))
  select count(*) into v_gone from gone;
  return v_gone;
end
$function$;
grant execute on function public.quality_duplicates_keys_prune(uuid,uuid,uuid) to service_role;

-- public.quality_duplicates_keys_put(uuid,text,text,text,boolean)
CREATE OR REPLACE FUNCTION public.quality_duplicates_keys_put(p_chain_id uuid, p_ids text, p_digests text, p_keys text, p_index boolean DEFAULT true)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_ids uuid[];
  v_digests bigint[];
  v_keys text[];
begin
  -- at most 50,000 guests of at most 64 keys
  if p_ids is null or p_digests is null or p_keys is null or octet_length(p_ids) > 1850000
     or octet_length(p_digests) > 1050000 or octet_length(p_keys) > 70000000 then
    raise exception 'p_ids, p_digests and p_keys must describe at most 50000 guests' using errcode = '22023';
  end if;
  if p_ids = '' and p_digests = '' and p_keys = '' then
    return 0;  -- no guest
  end if;
  v_ids := coalesce(string_to_array(nullif(p_ids, ''), ',')::uuid[], '{}');
  v_digests := coalesce(string_to_array(nullif(p_digests, ''), ',')::bigint[], '{}');
  v_keys := string_to_array(p_keys, ';');
  if cardinality(v_keys) <> cardinality(v_ids) + 1 or v_keys[cardinality(v_keys)] <> '' then
    raise exception 'p_keys must end each of the % guests with '';''', cardinality(v_ids)
      using errcode = '22023';
  end if;
  return app.duplicate_keys_replace(p_chain_id, v_ids, v_digests, v_keys[1:cardinality(v_ids)], p_index);
end
$function$;
grant execute on function public.quality_duplicates_keys_put(uuid,text,text,text,boolean) to service_role;

-- public.quality_duplicates_model(uuid)
CREATE OR REPLACE FUNCTION public.quality_duplicates_model(p_chain_id uuid)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select jsonb_build_object('model', m.model, 'guests', m.guests, 'counts_digest', m.counts_digest,
                            'estimated_at', m.estimated_at,
                            'keyed', (select count(*) from app.duplicate_guests d where d.chain_id = p_chain_id))
  from app.duplicate_models m where m.chain_id = p_chain_id
$function$;
grant execute on function public.quality_duplicates_model(uuid) to service_role;

-- public.quality_duplicates_model_put(uuid,jsonb,integer,text,boolean)
CREATE OR REPLACE FUNCTION public.quality_duplicates_model_put(p_chain_id uuid, p_model jsonb, p_guests integer, p_counts_digest text, p_estimated boolean)
 RETURNS void
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  insert into app.duplicate_models as m (chain_id, model, guests, counts_digest)
  values (p_chain_id, p_model, p_guests, p_counts_digest)
  on conflict (chain_id) do update
    set model = excluded.model, guests = excluded.guests, counts_digest = excluded.counts_digest,
        estimated_at = case when p_estimated then now() else m.estimated_at end, updated_at = now()
$function$;
grant execute on function public.quality_duplicates_model_put(uuid,jsonb,integer,text,boolean) to service_role;

-- public.quality_duplicates_pairs(uuid,jsonb,integer)
CREATE OR REPLACE FUNCTION public.quality_duplicates_pairs(p_chain_id uuid, p_after jsonb DEFAULT NULL::jsonb, p_limit integer DEFAULT 20000)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  with page as (
    select d.guest_a, d.guest_b, d.probability, d.match_weight, d.evidence
    from public.guest_duplicates d
    where d.chain_id = p_chain_id
      and (p_after is null or (d.guest_a, d.guest_b) > ((p_after->>0)::uuid, (p_after->>1)::uuid))
    order by d.guest_a, d.guest_b
    limit least(greatest(p_limit, 1), 50000))
  select jsonb_build_object(
    'pairs', coalesce((select jsonb_agg(jsonb_build_array(p.guest_a, p.guest_b, p.probability, p.match_weight, p.evidence)
                                        order by p.guest_a, p.guest_b) from page p), '[]'::jsonb),
    'next', (select jsonb_build_array(p.guest_a, p.guest_b) from page p
             where (select count(*) from page) >= least(greatest(p_limit, 1), 50000)
             order by p.guest_a desc, p.guest_b desc limit 1))
$function$;
grant execute on function public.quality_duplicates_pairs(uuid,jsonb,integer) to service_role;

-- public.quality_duplicates_prune(uuid,timestamp with time zone)
CREATE OR REPLACE FUNCTION public.quality_duplicates_prune(p_chain_id uuid, p_before timestamp with time zone)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_gone integer;
begin
  delete from public.guest_duplicates d where d.chain_id = p_chain_id and d.found_at < p_before;
  get diagnostics v_gone = row_count;
  return v_gone;
end
$function$;
grant execute on function public.quality_duplicates_prune(uuid,timestamp with time zone) to service_role;

-- public.quality_duplicates_put(uuid,jsonb)
CREATE OR REPLACE FUNCTION public.quality_duplicates_put(p_chain_id uuid, p_pairs jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_pairs integer;
begin
  if jsonb_typeof(p_pairs) is distinct from 'array' or jsonb_array_length(p_pairs) > 20000 then
    raise exception 'p_pairs must be an array of at most 20000 pairs' using errcode = '22023';
  end if;
  insert into public.guest_duplicates as d (chain_id, guest_a, guest_b, evidence, probability, match_weight)
  select p_chain_id, r.a, r.b, r.evidence, least(greatest(r.probability, 0), 1), r.weight
  from jsonb_to_recordset(p_pairs) as r(a uuid, b uuid, probability real, weight real, evidence jsonb)
  on conflict (chain_id, guest_a, guest_b) do update
    set evidence = excluded.evidence, probability = excluded.probability,
        match_weight = excluded.match_weight, found_at = now();
  get diagnostics v_pairs = row_count;
  return jsonb_build_object('pairs', v_pairs, 'at', now());
end
$function$;
grant execute on function public.quality_duplicates_put(uuid,jsonb) to service_role;

-- public.quality_duplicates_read(uuid,uuid,integer)
CREATE OR REPLACE FUNCTION public.quality_duplicates_read(p_chain_id uuid, p_after uuid DEFAULT NULL::uuid, p_limit integer DEFAULT 20000)
 RETURNS json
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  with page as (
    select g.mews_id, g.first_name, g.last_name, g.birth_date,
           case when not g.has_ota_email then f.email_normalized end as email, f.phone_e164, d.digest
    from public.guests g
    left join public.guest_facts f on f.chain_id = g.chain_id and f.guest_mews_id = g.mews_id
    left join app.duplicate_guests d on d.chain_id = g.chain_id and d.guest_mews_id = g.mews_id
    where g.chain_id = p_chain_id and g.is_active
      and g.mews_id > coalesce(p_after, '00000000-0000-0000-0000-000000000000')
    order by g.mews_id
    limit least(greatest(p_limit, 1), 50000))
  select json_build_object(
    'guests', coalesce((select json_agg(json_build_array(p.mews_id, p.first_name, p.last_name,
                                          p.birth_date, p.email, p.phone_e164, p.digest) order by p.mews_id)
                        from page p), '[]'::json),
    'next', (select p.mews_id from page p
             where (select count(*) from page) >= least(greatest(p_limit, 1), 50000)
             order by p.mews_id desc limit 1))
$function$;
grant execute on function public.quality_duplicates_read(uuid,uuid,integer) to service_role;

-- public.quality_duplicates_refresh(uuid,integer,boolean)
CREATE OR REPLACE FUNCTION public.quality_duplicates_refresh(p_chain_id uuid, p_limit integer DEFAULT 5000, p_discard boolean DEFAULT false)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
 SET jit TO 'off'
AS $function$
declare
  v_ids uuid[];
  v_old jsonb;
  v_limit integer := least(greatest(p_limit, 1), 20000);
  v_forgotten integer;
begin
  if p_discard then
    delete from app.quality_duplicate_queue q where q.chain_id = p_chain_id;
    get diagnostics v_forgotten = row_count;
    return jsonb_build_object('guests', v_forgotten, 'pairs', 0, 'more', false);
  end if;
  with taken as (
    delete from app.quality_duplicate_queue q
     where q.chain_id = p_chain_id
       and q.guest_mews_id in (select t.guest_mews_id from app.quality_duplicate_queue t
                                where t.chain_id = p_chain_id order by t.queued_at limit v_limit
                                for update skip locked)
    returning q.guest_mews_id, q.old_keys
  )
  select (select array_agg(t.guest_mews_id order by t.guest_mews_id) from taken t),
         (select coalesce(jsonb_agg(k.key), '[]'::jsonb) from taken t, jsonb_array_elements(t.old_keys) as k(key))
    into v_ids, v_old;
  return jsonb_build_object(
    'guests', coalesce(cardinality(v_ids), 0),
    'pairs', case when v_ids is null then 0 else app.quality_duplicates_around(p_chain_id, v_ids, v_old) end,
    'more', coalesce(cardinality(v_ids), 0) >= v_limit);
end
$function$;
grant execute on function public.quality_duplicates_refresh(uuid,integer,boolean) to service_role;

-- public.quality_enable_rule_set(uuid,integer)
CREATE OR REPLACE FUNCTION public.quality_enable_rule_set(p_rule_set_id uuid, p_rescore_limit integer DEFAULT NULL::integer)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_enterprise uuid;
  v_status text;
  v_budget bigint := p_rescore_limit;
  v_step jsonb;
  v_scored bigint := 0;
  v_changed bigint := 0;
  v_done boolean := false;
  v_chunk_size constant integer := 100000;
begin
  select enterprise_id, status into v_enterprise, v_status from public.quality_rule_sets where id = p_rule_set_id;
  if v_enterprise is null then
    raise exception 'no rule set %', p_rule_set_id using errcode = '22023';
  end if;
  if not app.quality_may_admin(v_enterprise) then
    raise exception 'only admins of the enterprise may enable its rules' using errcode = '42501';
  end if;
  if v_status <> 'draft' then
    raise exception 'only a draft can be enabled (this one is %)', v_status using errcode = '22023';
  end if;
  update public.quality_rule_sets set status = 'retired' where enterprise_id = v_enterprise and status = 'enabled';
  update public.quality_rule_sets set status = 'enabled', enabled_at = now() where id = p_rule_set_id;
  perform app.quality_freeze(p_rule_set_id);
  perform app.quality_state_bump(v_enterprise);
  loop
    exit when v_budget is not null and v_budget <= 0;
    v_step := public.quality_rescore_pass(v_enterprise, least(v_chunk_size, coalesce(v_budget, v_chunk_size))::integer);
    v_scored := v_scored + (v_step->>'scored')::bigint;
    v_changed := v_changed + (v_step->>'changed')::bigint;
    v_budget := v_budget - (v_step->>'scored')::bigint;
    v_done := (v_step->>'done')::boolean;
    exit when v_done or (v_step->>'busy')::boolean;
  end loop;
  return jsonb_build_object('rule_set_id', p_rule_set_id, 'enterprise_id', v_enterprise, 'scored', v_scored,
                            'changed', v_changed, 'done', v_done,
                            'snapshot', case when v_done then public.quality_snapshot(v_enterprise) end);
end
$function$;
grant execute on function public.quality_enable_rule_set(uuid,integer) to authenticated;
grant execute on function public.quality_enable_rule_set(uuid,integer) to service_role;

-- public.quality_ensure_rule_set(uuid,jsonb)
CREATE OR REPLACE FUNCTION public.quality_ensure_rule_set(p_enterprise_id uuid, p_rules jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_id uuid := app.quality_enabled_rule_set(p_enterprise_id);
begin
  if not app.caller_is_trusted() then
    raise exception 'only the service may install default rules' using errcode = '42501';
  end if;
  if v_id is not null then
    return jsonb_build_object('id', v_id, 'created', false);
  end if;
  insert into public.quality_rule_sets (enterprise_id, version, status, note, enabled_at)
  values (p_enterprise_id, coalesce((select max(version) from public.quality_rule_sets where enterprise_id = p_enterprise_id), 0) + 1,
          'enabled', 'hotel defaults', now())
  returning id into v_id;
  insert into public.quality_rules (rule_set_id, enterprise_id, field, kind, params, severity, weight)
  select v_id, p_enterprise_id, r.field, r.kind, coalesce(r.params, '{}'::jsonb), coalesce(r.severity, 'warning'), r.weight
  from jsonb_to_recordset(p_rules) as r(field text, kind text, params jsonb, severity text, weight integer);
  perform app.quality_freeze(v_id);
  perform app.quality_state_bump(p_enterprise_id);
  return jsonb_build_object('id', v_id, 'created', true);
end
$function$;
grant execute on function public.quality_ensure_rule_set(uuid,jsonb) to service_role;

-- public.quality_enterprises()
CREATE OR REPLACE FUNCTION public.quality_enterprises()
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select coalesce(jsonb_agg(jsonb_build_object('id', e.id, 'chain_id', e.chain_id, 'name', e.name,
                                               'failures', coalesce(s.failures, 0),
                                               'retry_at', s.retry_at,
                                               'backing_off', coalesce(s.retry_at > now(), false),
                                               'last_failure', s.last_failure)
                            order by e.name), '[]'::jsonb)
  from public.enterprises e
  left join public.quality_score_state s on s.enterprise_id = e.id
$function$;
grant execute on function public.quality_enterprises() to service_role;

-- public.quality_facts_changed(uuid,jsonb,integer)
CREATE OR REPLACE FUNCTION public.quality_facts_changed(p_chain_id uuid, p_after jsonb DEFAULT NULL::jsonb, p_limit integer DEFAULT 1000)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_limit integer := least(greatest(p_limit, 1), 5000);
  v_scan integer := least(greatest(p_limit, 1) * 20, 50000);
  v_started timestamptz;
  v_since timestamptz;
  v_after_id uuid;
  v_page record;
  v_estimate bigint;
begin
  if p_after is null then
    v_started := now();
    select s.facts_scanned_from - interval '5 minutes' into v_since
      from app.quality_chain_state s where s.chain_id = p_chain_id;
    v_since := coalesce(v_since, '-infinity');
    v_after_id := '00000000-0000-0000-0000-000000000000';
    select count(*) into v_estimate from public.guests g
     where g.chain_id = p_chain_id and g.synced_at >= v_since;
  else
    v_started := (p_after->>'started_at')::timestamptz;
    v_since := (p_after->>'synced_at')::timestamptz;
    v_after_id := (p_after->>'mews_id')::uuid;
  end if;
  -- read up to twenty pages of guests (most of them fresh, usually), return up to a page of stale
  with seen as (
    select g.synced_at, g.mews_id from public.guests g
     where g.chain_id = p_chain_id and (g.synced_at, g.mews_id) > (v_since, v_after_id)
     order by g.synced_at, g.mews_id
     limit v_scan
  ), stale as (
    select s.synced_at, s.mews_id from seen s
    left join public.guest_facts f on f.chain_id = p_chain_id and f.guest_mews_id = s.mews_id
    where f.guest_mews_id is null or f.source_synced_at is null or f.source_synced_at < s.synced_at
    order by s.synced_at, s.mews_id
    limit v_limit
  )
  select (select coalesce(jsonb_agg(app.quality_facts_input(g) order by st.synced_at, st.mews_id), '[]'::jsonb)
            from stale st join public.guests g on g.chain_id = p_chain_id and g.mews_id = st.mews_id) as guests,
         (select count(*) from seen) as seen,
         (select count(*) from stale) as stale,
         (select jsonb_build_object('synced_at', st.synced_at, 'mews_id', st.mews_id, 'started_at', v_started)
            from stale st order by st.synced_at desc, st.mews_id desc limit 1) as last_stale,
         (select jsonb_build_object('synced_at', s.synced_at, 'mews_id', s.mews_id, 'started_at', v_started)
            from seen s order by s.synced_at desc, s.mews_id desc limit 1) as last_seen
    into v_page;
  if v_page.seen < v_scan and v_page.stale = 0 then
    insert into app.quality_chain_state as s (chain_id, facts_scanned_from) values (p_chain_id, v_started)
    on conflict (chain_id) do update set facts_scanned_from = greatest(s.facts_scanned_from, excluded.facts_scanned_from);
  end if;
  return jsonb_build_object(
    'guests', v_page.guests,
    'next', case when v_page.stale >= v_limit then v_page.last_stale
                 when v_page.seen >= v_scan or v_page.stale > 0 then v_page.last_seen end,
    'changed_estimate', v_estimate,
    'guests_estimate', case when p_after is null
                            then (select greatest(c.reltuples, 0)::bigint from pg_catalog.pg_class c
                                   where c.oid = 'public.guests'::regclass) end);
end
$function$;
grant execute on function public.quality_facts_changed(uuid,jsonb,integer) to service_role;

-- public.quality_facts_edited(uuid,integer)
CREATE OR REPLACE FUNCTION public.quality_facts_edited(p_chain_id uuid, p_limit integer DEFAULT 1000)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select coalesce(jsonb_agg(app.quality_facts_input(e.g)), '[]'::jsonb)
  from (select g from public.guests g
        left join public.guest_facts f on f.chain_id = g.chain_id and f.guest_mews_id = g.mews_id
        where g.push_status = 'pending' and g.chain_id = p_chain_id
          and (f.guest_mews_id is null or f.computed_at < g.local_edited_at)
        order by g.local_edited_at
        limit least(greatest(p_limit, 1), 5000)) e
$function$;
grant execute on function public.quality_facts_edited(uuid,integer) to service_role;

-- public.quality_facts_of(uuid,jsonb)
CREATE OR REPLACE FUNCTION public.quality_facts_of(p_chain_id uuid, p_ids jsonb)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select coalesce(jsonb_agg(app.quality_facts_input(g) order by g.mews_id), '[]'::jsonb)
  from public.guests g
  left join public.guest_facts f on f.chain_id = g.chain_id and f.guest_mews_id = g.mews_id
  where g.chain_id = p_chain_id
    and g.mews_id in (select i::uuid from jsonb_array_elements_text(p_ids) i limit 5000)
    and (f.guest_mews_id is null or f.source_synced_at is null or f.source_synced_at < g.synced_at)
$function$;
grant execute on function public.quality_facts_of(uuid,jsonb) to service_role;

-- public.quality_facts_pending(uuid,integer)
CREATE OR REPLACE FUNCTION public.quality_facts_pending(p_chain_id uuid, p_limit integer DEFAULT 1000)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select coalesce(jsonb_agg(jsonb_build_object(
    'guest_mews_id', g.mews_id, 'email', g.email, 'phone', g.phone,
    'nationality_code', g.nationality_code, 'synced_at', g.synced_at,
    'address_country', (select a.country_code from public.guest_addresses a
                         where a.chain_id = g.chain_id and a.guest_mews_id = g.mews_id and a.is_active limit 1))), '[]'::jsonb)
  from (select g.* from public.guests g
        left join public.guest_facts f on f.chain_id = g.chain_id and f.guest_mews_id = g.mews_id
        where g.chain_id = p_chain_id and (f.guest_mews_id is null or f.source_synced_at < g.synced_at)
        order by g.mews_id limit least(p_limit, 5000)) g
$function$;
grant execute on function public.quality_facts_pending(uuid,integer) to service_role;

-- public.quality_facts_put(uuid,jsonb,boolean,boolean)
CREATE OR REPLACE FUNCTION public.quality_facts_put(p_chain_id uuid, p_rows jsonb, p_duplicates boolean DEFAULT true, p_rescore boolean DEFAULT true)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_ids uuid[];
  v_enterprise uuid;
  v_chunk record;
  v_scored integer := 0;
  v_changed integer := 0;
begin
  v_ids := array(select distinct (r->>'guest_mews_id')::uuid from jsonb_array_elements(p_rows) r order by 1);
  if p_duplicates then
    -- the keys they had (a guest already queued keeps the keys it had then)
    insert into app.quality_duplicate_queue (chain_id, guest_mews_id, old_keys)
    select p_chain_id, i.id, coalesce(k.keys, '[]'::jsonb)
    from unnest(v_ids) as i(id)
    left join (select k.guest_mews_id, jsonb_agg(jsonb_build_object('match', k.match, 'value', k.value)) as keys
                 from app.quality_duplicate_keys(p_chain_id, v_ids, null, null) k
                group by k.guest_mews_id) k on k.guest_mews_id = i.id
    on conflict (chain_id, guest_mews_id) do nothing;
  end if;

  insert into public.guest_facts as f (chain_id, guest_mews_id, email_normalized, email_valid,
                                       phone_e164, phone_valid, source_synced_at, computed_at)
  select p_chain_id, r.guest_mews_id, r.email_normalized, r.email_valid, r.phone_e164, r.phone_valid,
         r.synced_at, now()
  from jsonb_to_recordset(p_rows) as r(guest_mews_id uuid, email_normalized text, email_valid boolean,
                                       phone_e164 text, phone_valid boolean, synced_at timestamptz)
  on conflict (chain_id, guest_mews_id) do update set
    email_normalized = excluded.email_normalized, email_valid = excluded.email_valid,
    phone_e164 = excluded.phone_e164, phone_valid = excluded.phone_valid,
    source_synced_at = excluded.source_synced_at, computed_at = now();

  update public.guest_facts f set
    has_address = exists (select 1 from public.guest_addresses a where a.chain_id = f.chain_id
                          and a.guest_mews_id = f.guest_mews_id and a.is_active and nullif(btrim(a.line1), '') is not null),
    has_document = d.guest_mews_id is not null,
    document_country = d.issuing_country_code,
    enriched_nationality = case when g.nationality_code is null then d.issuing_country_code end,
    enriched_language = case when g.preferred_language_code is null then g.language_code end,
    stay_count = coalesce(s.stays, 0), nights = coalesce(s.nights, 0), first_stay = s.first_stay,
    last_stay = s.last_stay, company_id = s.company_id,
    name_key = case when g.birth_date is not null and g.first_name is not null
                    then lower(btrim(g.first_name)) || ' ' || lower(btrim(g.last_name)) || ' ' || g.birth_date end
  from public.guests g
  left join lateral (select doc.guest_mews_id, doc.issuing_country_code from public.guest_identity_documents doc
                     where doc.chain_id = g.chain_id and doc.guest_mews_id = g.mews_id
                     order by doc.expiration_date desc nulls last limit 1) d on true
  left join lateral (
    select count(*) as stays,
           coalesce(sum(greatest(0, r.scheduled_end_utc::date - r.scheduled_start_utc::date)), 0) as nights,
           min(r.scheduled_start_utc)::date as first_stay, max(r.scheduled_start_utc)::date as last_stay,
           mode() within group (order by r.partner_company_id) as company_id
    from public.reservations r
    where r.account_id = g.mews_id and r.state in ('Started', 'Processed')) s on true
  where f.chain_id = p_chain_id and f.guest_mews_id = any (v_ids)
    and g.chain_id = f.chain_id and g.mews_id = f.guest_mews_id;

  -- the record of every enriched value and its source (never written over the mirror row)
  delete from public.guest_enrichments e where e.chain_id = p_chain_id and e.guest_mews_id = any (v_ids);
  insert into public.guest_enrichments (chain_id, guest_mews_id, field, value, source, rule)
  select f.chain_id, f.guest_mews_id, x.field, x.value, x.source, x.rule
  from public.guest_facts f
  join public.guests g on g.chain_id = f.chain_id and g.mews_id = f.guest_mews_id
  cross join lateral (values
    ('nationality_code', f.enriched_nationality, 'identity_document.IssuingCountryCode', 'nationality_from_document'),
    ('preferred_language_code', f.enriched_language, 'customer.LanguageCode', 'language_from_mews'),
    ('email', case when f.email_normalized is distinct from g.email then f.email_normalized end, 'email-validator', 'normalize_email'),
    ('phone', case when f.phone_e164 is distinct from g.phone then f.phone_e164 end, 'phonenumbers E.164', 'normalize_phone'),
    ('company_id', case when g.company_id is null then f.company_id::text end, 'reservations.PartnerCompanyId', 'company_from_reservations'),
    ('stay_count', case when f.stay_count > 0 then f.stay_count::text end, 'reservations', 'stays_from_reservations')
  ) as x(field, value, source, rule)
  where f.chain_id = p_chain_id and f.guest_mews_id = any (v_ids) and x.value is not null;

  if p_rescore then
    for v_enterprise in
      select e.id from public.enterprises e
      left join public.quality_score_state s on s.enterprise_id = e.id
      where e.chain_id = p_chain_id and app.quality_enabled_rule_set(e.id) is not null
        and (s.scored_version >= s.version or s.pass_version = s.version)
      order by e.id
    loop
      v_chunk := app.quality_score_write(v_enterprise, v_ids, null, null);
      v_scored := v_scored + v_chunk.scored;
      v_changed := v_changed + v_chunk.changed;
    end loop;
  end if;
  return jsonb_build_object('facts', cardinality(v_ids), 'scored', v_scored, 'changed', v_changed);
end
$function$;
grant execute on function public.quality_facts_put(uuid,jsonb,boolean,boolean) to service_role;

-- public.quality_find_duplicates(uuid,integer,integer)
CREATE OR REPLACE FUNCTION public.quality_find_duplicates(p_chain_id uuid, p_part integer DEFAULT 0, p_parts integer DEFAULT 1)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
 SET jit TO 'off'
 SET work_mem TO '64MB'
AS $function$
declare
  v_from uuid;
  v_to uuid;
  v_groups jsonb;
begin
  if p_parts < 1 or p_part not between 0 and p_parts - 1 then
    raise exception 'p_part must be in 0..p_parts - 1' using errcode = '22023';
  end if;
  v_from := app.quality_lane_start(p_part, p_parts);
  v_to := app.quality_lane_start(p_part + 1, p_parts);
  delete from public.guest_duplicates d
   where d.chain_id = p_chain_id and d.guest_a >= coalesce(v_from, '00000000-0000-0000-0000-000000000000')
     and (v_to is null or d.guest_a < v_to);
  select coalesce(jsonb_agg(to_jsonb(gr)), '[]'::jsonb) into v_groups
    from app.quality_duplicate_groups(
           p_chain_id,
           (select coalesce(jsonb_agg(jsonb_build_object('match', k.match, 'value', k.value)), '[]'::jsonb)
              from app.quality_duplicate_keys(p_chain_id, null, v_from, v_to) k),
           20) gr
   where gr.size between 2 and 20;
  return jsonb_build_object('pairs', app.quality_duplicate_pairs(p_chain_id, v_groups, v_from, v_to, null));
end
$function$;
grant execute on function public.quality_find_duplicates(uuid,integer,integer) to service_role;

-- public.quality_queue_enriched_pushes(uuid,integer)
CREATE OR REPLACE FUNCTION public.quality_queue_enriched_pushes(p_enterprise_id uuid, p_limit integer DEFAULT 5000)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  with targets as (
    select e.chain_id, e.guest_mews_id, jsonb_object_agg(e.field, e.value) as changes
    from public.guest_enrichments e
    join public.enterprises ent on ent.id = p_enterprise_id and ent.chain_id = e.chain_id
    join public.enrichment_settings s on s.enterprise_id = p_enterprise_id and s.rule = e.rule
                                     and s.enabled and s.push_to_mews
    join public.guests g on g.chain_id = e.chain_id and g.mews_id = e.guest_mews_id and g.is_active
    where e.field in ('nationality_code', 'preferred_language_code', 'email', 'phone')
      and e.queued_for_push_at is null
      and exists (select 1 from public.enrichment_settings x
                   where x.enterprise_id = p_enterprise_id and x.enabled and x.push_to_mews)
    group by 1, 2
    order by 1, 2
    limit greatest(p_limit, 1)
  ), queued as (
    update public.guests g
       set local_changes = coalesce(g.local_changes, '{}'::jsonb) || t.changes,
           local_base_updated_utc = case when g.push_status = 'pending' then g.local_base_updated_utc else g.mews_updated_utc end,
           local_edited_at = clock_timestamp(), push_status = 'pending', push_error = null
      from targets t where g.chain_id = t.chain_id and g.mews_id = t.guest_mews_id and g.is_active
    returning g.chain_id, g.mews_id
  ), marked as (
    update public.guest_enrichments e set queued_for_push_at = now()
      from queued q where e.chain_id = q.chain_id and e.guest_mews_id = q.mews_id
    returning 1
  )
  select jsonb_build_object('guests', (select count(*) from queued),
                            'more', (select count(*) from targets) >= greatest(p_limit, 1))
$function$;
grant execute on function public.quality_queue_enriched_pushes(uuid,integer) to service_role;

-- public.quality_report(uuid,integer,integer)
CREATE OR REPLACE FUNCTION public.quality_report(p_enterprise_id uuid, p_days integer DEFAULT 14, p_threshold integer DEFAULT 60)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
 SET jit TO 'off'
AS $function$
  with ent as (select id, name, chain_id from public.enterprises where id = p_enterprise_id),
  buckets as (
    select least(score / 10, 9) * 10 as b, count(*) as n, sum(score) as total
    from public.guest_scores where enterprise_id = p_enterprise_id group by 1
  ),
  failed as (
    -- each failed rule counted once per rule, then named: not a join per guest and reason
    select f.rule_id, count(*) as n
    from public.guest_scores s cross join lateral unnest(s.failed_rules) as f(rule_id)
    where s.enterprise_id = p_enterprise_id group by 1
  ),
  fields as (
    select r.field, coalesce(sum(f.n) filter (where r.reason_kind = 'missing'), 0) as missing,
           coalesce(sum(f.n) filter (where r.reason_kind in ('invalid', 'weak')), 0) as invalid
    from failed f join public.quality_rules r on r.id = f.rule_id
    group by r.field
  ),
  worst as (
    select s.guest_mews_id, s.score, s.failed_rules
    from public.guest_scores s where s.enterprise_id = p_enterprise_id
    order by s.score, s.guest_mews_id limit 15
  )
  select jsonb_build_object(
    'enterprise', (select jsonb_build_object('id', id, 'name', name) from ent),
    'guests', (select coalesce(sum(n), 0) from buckets),
    'average', (select round(sum(total)::numeric / nullif(sum(n), 0), 1) from buckets),
    'distribution', (select coalesce(jsonb_agg(jsonb_build_object('bucket', b, 'guests', n) order by b), '[]'::jsonb)
                     from buckets),
    'fields', (select coalesce(jsonb_agg(jsonb_build_object(
                 'field', field, 'missing', missing, 'invalid', invalid,
                 'missing_rate', round(missing::numeric / nullif((select sum(n) from buckets), 0), 4))
                 order by missing + invalid desc), '[]'::jsonb)
               from fields),
    'trend', (select coalesce(jsonb_agg(jsonb_build_object('day', day, 'average', average, 'below_50', below_50,
                                                           'guests', guests) order by day), '[]'::jsonb)
              from (select * from public.quality_daily where enterprise_id = p_enterprise_id order by day desc limit 90) t),
    'worst', (select coalesce(jsonb_agg(jsonb_build_object('guest', w.guest_mews_id,
                                                           'name', concat_ws(' ', g.first_name, g.last_name),
                                                           'email', g.email, 'score', w.score,
                                                           'reasons', app.quality_reasons(w.failed_rules))
                                        order by w.score, w.guest_mews_id), '[]'::jsonb)
              from worst w
              left join public.guests g on g.chain_id = (select chain_id from ent) and g.mews_id = w.guest_mews_id),
    'arrivals', (select coalesce(jsonb_agg(jsonb_build_object('arrival', a.arrival, 'reservation', a.reservation_id,
                                                              'guest', a.guest_mews_id,
                                                              'name', concat_ws(' ', a.first_name, a.last_name),
                                                              'email', g.email, 'state', a.state, 'score', a.score,
                                                              'reasons', a.reasons)), '[]'::jsonb)
                 from public.quality_arrivals_at_risk(p_days, p_threshold) a
                 left join public.guests g on g.chain_id = (select chain_id from ent) and g.mews_id = a.guest_mews_id
                 where a.enterprise_id = p_enterprise_id),
    'duplicates', (select count(*) from public.duplicate_suggestions d where d.enterprise_id = p_enterprise_id),
    'duplicate_threshold', (select coalesce(s.threshold, 0.9::real) from public.duplicate_settings s
                            right join ent on s.enterprise_id = ent.id),
    'duplicate_pairs', (
      select coalesce(jsonb_agg(jsonb_build_object(
               'a', jsonb_build_object('guest', d.guest_a, 'name', concat_ws(' ', ga.first_name, ga.last_name), 'email', ga.email),
               'b', jsonb_build_object('guest', d.guest_b, 'name', concat_ws(' ', gb.first_name, gb.last_name), 'email', gb.email),
               'probability', d.probability, 'weight', d.match_weight, 'evidence', d.evidence)
             order by d.probability desc, d.match_weight desc, d.guest_a, d.guest_b), '[]'::jsonb)
      from (select * from public.duplicate_suggestions where enterprise_id = p_enterprise_id
            order by probability desc, match_weight desc, guest_a, guest_b limit 10) d
      left join public.guests ga on ga.chain_id = d.chain_id and ga.mews_id = d.guest_a
      left join public.guests gb on gb.chain_id = d.chain_id and gb.mews_id = d.guest_b),
    'conflicts', (
      select coalesce(jsonb_agg(jsonb_build_object(
               'at', c.created_at, 'guest', c.guest_mews_id, 'name', concat_ws(' ', g.first_name, g.last_name),
               'email', g.email, 'field', c.field, 'local_value', c.local_value, 'mews_value', c.mews_value,
               'resolution', c.resolution, 'detail', c.detail) order by c.created_at desc, c.id desc), '[]'::jsonb)
      from (select * from public.conflict_log
            where chain_id = (select chain_id from ent) and created_at > now() - interval '7 days'
            order by created_at desc, id desc limit 20) c
      left join public.guests g on g.chain_id = c.chain_id and g.mews_id = c.guest_mews_id),
    'sync', public.sync_status(p_enterprise_id)->'enterprises'->0)
$function$;
grant execute on function public.quality_report(uuid,integer,integer) to authenticated;
grant execute on function public.quality_report(uuid,integer,integer) to service_role;

-- public.quality_rescore(uuid,jsonb,integer,integer)
CREATE OR REPLACE FUNCTION public.quality_rescore(p_enterprise_id uuid, p_guest_ids jsonb DEFAULT NULL::jsonb, p_part integer DEFAULT 0, p_parts integer DEFAULT 1)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_chunk record;
  v_scored bigint := 0;
  v_changed bigint := 0;
  v_slices integer;
  v_version bigint;
begin
  if p_guest_ids is not null then
    v_chunk := app.quality_score_write(
      p_enterprise_id, array(select (jsonb_array_elements_text(p_guest_ids))::uuid), null, null);
    return jsonb_build_object('scored', v_chunk.scored, 'changed', v_chunk.changed);
  end if;
  if p_parts < 1 or p_part not between 0 and p_parts - 1 then
    raise exception 'p_part must be in 0..p_parts - 1' using errcode = '22023';
  end if;
  v_version := (app.quality_state(p_enterprise_id)).version;
  select greatest(1, ceil(count(*)::numeric / 100000 / p_parts))::integer into v_slices
    from public.guests g
   where g.chain_id = (select e.chain_id from public.enterprises e where e.id = p_enterprise_id);
  for k in 0 .. v_slices - 1 loop
    v_chunk := app.quality_score_write(p_enterprise_id, null,
                                       app.quality_lane_start(p_part * v_slices + k, p_parts * v_slices),
                                       app.quality_lane_start(p_part * v_slices + k + 1, p_parts * v_slices));
    v_scored := v_scored + v_chunk.scored;
    v_changed := v_changed + v_chunk.changed;
  end loop;
  if p_parts = 1 then
    -- everyone is scored with the set enabled when this started: no full pass is due for it
    update public.quality_score_state set scored_version = greatest(scored_version, v_version)
     where enterprise_id = p_enterprise_id;
  end if;
  -- the statistics of what it wrote, when that was a large share (a part of several counts its
  -- own share)
  if v_changed > 0 then
    perform public.analyze_tables(jsonb_build_object('guest_scores', v_changed));
  end if;
  return jsonb_build_object('scored', v_scored, 'changed', v_changed);
end
$function$;
grant execute on function public.quality_rescore(uuid,jsonb,integer,integer) to service_role;

-- public.quality_rescore_due(uuid,integer)
CREATE OR REPLACE FUNCTION public.quality_rescore_due(p_enterprise_id uuid, p_limit integer DEFAULT 5000)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_ids uuid[];
  v_chunk record;
begin
  v_ids := array(select s.guest_mews_id from public.guest_scores s
                  where s.enterprise_id = p_enterprise_id and s.flips_on <= current_date
                  order by s.guest_mews_id limit greatest(p_limit, 1));
  if cardinality(v_ids) = 0 then
    return jsonb_build_object('scored', 0, 'changed', 0, 'more', false);
  end if;
  v_chunk := app.quality_score_write(p_enterprise_id, v_ids, null, null);
  -- a guest no longer active is not scored: nothing more is due for it
  update public.guest_scores set flips_on = null
   where enterprise_id = p_enterprise_id and guest_mews_id = any (v_ids) and flips_on <= current_date;
  return jsonb_build_object('scored', v_chunk.scored, 'changed', v_chunk.changed,
                            'more', cardinality(v_ids) >= greatest(p_limit, 1));
end
$function$;
grant execute on function public.quality_rescore_due(uuid,integer) to service_role;

-- public.quality_rescore_pass(uuid,integer)
CREATE OR REPLACE FUNCTION public.quality_rescore_pass(p_enterprise_id uuid, p_limit integer DEFAULT 100000)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_rule_set uuid := app.quality_enabled_rule_set(p_enterprise_id);
  v_state public.quality_score_state;
  v_lane public.quality_score_lanes;
  v_chunk record;
  v_guests bigint;
  v_lanes integer;
begin
  if not app.quality_may_admin(p_enterprise_id) then
    raise exception 'only admins of the enterprise may rescore it' using errcode = '42501';
  end if;
  if v_rule_set is null then
    raise exception 'enterprise % has no enabled rule set', p_enterprise_id using errcode = '22023';
  end if;
  if p_limit is null or p_limit < 1 then
    raise exception 'p_limit: at least one guest per call' using errcode = '22023';
  end if;
  v_state := app.quality_state(p_enterprise_id);
  if v_state.scored_version >= v_state.version then
    return app.quality_pass_progress(p_enterprise_id) || jsonb_build_object('scored', 0, 'changed', 0, 'busy', false);
  end if;
  if v_state.pass_version is distinct from v_state.version or v_state.pass_rule_set_id is distinct from v_rule_set then
    select * into v_state from public.quality_score_state where enterprise_id = p_enterprise_id for update;
    if v_state.pass_version is distinct from v_state.version or v_state.pass_rule_set_id is distinct from v_rule_set then
      select count(*) into v_guests from public.guests g
       where g.chain_id = (select e.chain_id from public.enterprises e where e.id = p_enterprise_id) and g.is_active;
      v_lanes := least(greatest(1, ceil(v_guests::numeric / p_limit)), 65536)::integer;
      delete from public.quality_score_lanes where enterprise_id = p_enterprise_id;
      insert into public.quality_score_lanes (enterprise_id, lane, from_id, to_id)
      select p_enterprise_id, k, app.quality_lane_start(k, v_lanes), app.quality_lane_start(k + 1, v_lanes)
      from generate_series(0, v_lanes - 1) k;
      update public.quality_score_state
         set pass_version = version, pass_rule_set_id = v_rule_set, pass_started_at = now(),
             pass_finished_at = null, pass_guests = v_guests
       where enterprise_id = p_enterprise_id;
      -- the lanes are free to every caller once this commits: scoring one here would hold the
      -- state row, and every other caller with it, until the lane is done
      return app.quality_pass_progress(p_enterprise_id) || jsonb_build_object('scored', 0, 'changed', 0, 'busy', false);
    end if;
  end if;
  select * into v_lane from public.quality_score_lanes
   where enterprise_id = p_enterprise_id and not done
   order by lane limit 1 for update skip locked;
  if not found then
    if exists (select 1 from public.quality_score_lanes where enterprise_id = p_enterprise_id and not done) then
      return app.quality_pass_progress(p_enterprise_id) || jsonb_build_object('scored', 0, 'changed', 0, 'busy', true);
    end if;
    update public.quality_score_state
       set scored_version = pass_version, pass_finished_at = now()
     where enterprise_id = p_enterprise_id and pass_version = version;
    -- the statistics of what the pass wrote, and the day's distribution, once everyone is scored
    perform app.analyze_stale(jsonb_build_object(
      'guest_scores', (select sum(l.changed) from public.quality_score_lanes l where l.enterprise_id = p_enterprise_id)));
    return app.quality_pass_progress(p_enterprise_id)
           || jsonb_build_object('scored', 0, 'changed', 0, 'busy', false,
                                 'snapshot', public.quality_snapshot(p_enterprise_id));
  end if;
  v_chunk := app.quality_score_write(p_enterprise_id, null, v_lane.from_id, v_lane.to_id);
  update public.quality_score_lanes
     set done = true, scored = v_chunk.scored, changed = v_chunk.changed
   where enterprise_id = p_enterprise_id and lane = v_lane.lane;
  return app.quality_pass_progress(p_enterprise_id)
         || jsonb_build_object('scored', v_chunk.scored, 'changed', v_chunk.changed, 'busy', false);
end
$function$;
grant execute on function public.quality_rescore_pass(uuid,integer) to authenticated;
grant execute on function public.quality_rescore_pass(uuid,integer) to service_role;

-- public.quality_rule_set_duplicate_threshold(uuid,double precision)
CREATE OR REPLACE FUNCTION public.quality_rule_set_duplicate_threshold(p_rule_set_id uuid, p_threshold double precision)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_enterprise uuid;
  v_status text;
begin
  select enterprise_id, status into v_enterprise, v_status
    from public.quality_rule_sets where id = p_rule_set_id;
  if v_enterprise is null or not app.quality_may_admin(v_enterprise) then
    raise exception 'only admins of the enterprise may set its duplicate threshold' using errcode = '42501';
  end if;
  if v_status <> 'draft' then
    raise exception 'only a draft can be changed (this one is %)', v_status using errcode = '22023';
  end if;
  if p_threshold is not null and not (p_threshold >= 0.5 and p_threshold < 1) then
    raise exception 'the duplicate threshold is at least 0.5 and below 1 (not %)', p_threshold
      using errcode = '22023';
  end if;
  update public.quality_rule_sets set duplicate_threshold = p_threshold where id = p_rule_set_id;
  return jsonb_build_object('rule_set_id', p_rule_set_id, 'duplicate_threshold', p_threshold);
end
$function$;
grant execute on function public.quality_rule_set_duplicate_threshold(uuid,double precision) to authenticated;
grant execute on function public.quality_rule_set_duplicate_threshold(uuid,double precision) to service_role;

-- public.quality_rule_sets_list(uuid)
CREATE OR REPLACE FUNCTION public.quality_rule_sets_list(p_enterprise_id uuid)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select coalesce(jsonb_agg(jsonb_build_object(
           'id', s.id, 'enterprise_id', s.enterprise_id, 'version', s.version, 'status', s.status,
           'note', s.note, 'created_at', s.created_at, 'enabled_at', s.enabled_at,
           'created_by', u.email,
           'rules', (select count(*) from public.quality_rules r where r.rule_set_id = s.id))
         order by s.version desc), '[]'::jsonb)
  from public.quality_rule_sets s
  left join public.app_users u on u.id = s.created_by
  where s.enterprise_id = p_enterprise_id
$function$;
grant execute on function public.quality_rule_sets_list(uuid) to authenticated;
grant execute on function public.quality_rule_sets_list(uuid) to service_role;

-- public.quality_rules_of(uuid)
CREATE OR REPLACE FUNCTION public.quality_rules_of(p_rule_set_id uuid)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select jsonb_build_object(
           'id', s.id, 'enterprise_id', s.enterprise_id, 'version', s.version, 'status', s.status,
           'note', s.note, 'created_at', s.created_at, 'enabled_at', s.enabled_at,
           'duplicate_threshold', case when s.status = 'enabled'
                                       then coalesce((select d.threshold from public.duplicate_settings d
                                                       where d.enterprise_id = s.enterprise_id),
                                                     s.duplicate_threshold)
                                       else s.duplicate_threshold end,
           'rules', coalesce((select jsonb_agg(jsonb_build_object('field', r.field, 'kind', r.kind,
                                                                  'params', r.params, 'severity', r.severity,
                                                                  'weight', r.weight) order by r.id)
                              from public.quality_rules r where r.rule_set_id = s.id), '[]'::jsonb))
  from public.quality_rule_sets s
  where s.id = p_rule_set_id
$function$;
grant execute on function public.quality_rules_of(uuid) to authenticated;
grant execute on function public.quality_rules_of(uuid) to service_role;

-- public.quality_rules_replace(uuid,jsonb)
CREATE OR REPLACE FUNCTION public.quality_rules_replace(p_rule_set_id uuid, p_rules jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_status text;
  v_problem text;
  v_entry record;
  v_count integer;
begin
  select s.status into v_status from public.quality_rule_sets s where s.id = p_rule_set_id;
  if v_status is null then
    raise exception 'no rule set % (or it is not yours to read)', p_rule_set_id using errcode = '22023';
  end if;
  if v_status <> 'draft' then
    raise exception 'only the rules of a draft can be replaced (this one is %)', v_status
      using errcode = '22023';
  end if;
  if jsonb_typeof(p_rules) is distinct from 'array' then
    raise exception 'rules must be a list' using errcode = '22023';
  end if;
  -- the set's bound on rules, before every entry is checked (each pattern is parsed)
  if jsonb_array_length(p_rules) > 50 then
    raise exception 'a rule set holds at most 50 rules (this one: %)', jsonb_array_length(p_rules)
      using errcode = '54000';
  end if;
  for v_entry in select e.value, e.n from jsonb_array_elements(p_rules) with ordinality as e(value, n) loop
    v_problem := app.quality_rule_entry_problem(v_entry.value);
    if v_problem is not null then
      raise exception 'rule %: %', v_entry.n, v_problem using errcode = '22023';
    end if;
  end loop;
  delete from public.quality_rules r where r.rule_set_id = p_rule_set_id;
  if exists (select 1 from public.quality_rules r where r.rule_set_id = p_rule_set_id) then
    raise exception 'only admins of the enterprise may edit its drafts' using errcode = '42501';
  end if;
  insert into public.quality_rules (rule_set_id, field, kind, params, severity, weight)
  select p_rule_set_id, e.value->>'field', e.value->>'kind', coalesce(e.value->'params', '{}'::jsonb),
         coalesce(e.value->>'severity', 'warning'), (e.value->>'weight')::integer
  from jsonb_array_elements(p_rules) with ordinality as e(value, n)
  order by e.n;
  get diagnostics v_count = row_count;
  return jsonb_build_object('rule_set_id', p_rule_set_id, 'rules', v_count);
end
$function$;
grant execute on function public.quality_rules_replace(uuid,jsonb) to authenticated;
grant execute on function public.quality_rules_replace(uuid,jsonb) to service_role;

-- public.quality_snapshot(uuid)
CREATE OR REPLACE FUNCTION public.quality_snapshot(p_enterprise_id uuid)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_state public.quality_score_state := app.quality_state(p_enterprise_id);
  v_changes bigint := app.quality_score_changes_seen();
  v_result jsonb;
begin
  if v_state.snapshot_at::date = current_date and v_state.snapshot_change = v_changes then
    select jsonb_build_object('guests', guests, 'average', average) into v_result
      from public.quality_daily where enterprise_id = p_enterprise_id and day = current_date;
    if found then
      return v_result;
    end if;
  end if;
  insert into public.quality_daily as d (enterprise_id, day, guests, average, median, below_50, complete)
  select p_enterprise_id, current_date, count(*), coalesce(round(avg(score), 2), 0),
         coalesce(percentile_cont(0.5) within group (order by score), 0),
         count(*) filter (where score < 50), count(*) filter (where score = 100)
  from public.guest_scores where enterprise_id = p_enterprise_id
  on conflict (enterprise_id, day) do update set guests = excluded.guests, average = excluded.average,
    median = excluded.median, below_50 = excluded.below_50, complete = excluded.complete
  returning jsonb_build_object('guests', guests, 'average', average) into v_result;
  update public.quality_score_state set snapshot_at = now(), snapshot_change = v_changes
   where enterprise_id = p_enterprise_id;
  return v_result;
end
$function$;
grant execute on function public.quality_snapshot(uuid) to service_role;

-- public.quality_unit_failed(uuid,text)
CREATE OR REPLACE FUNCTION public.quality_unit_failed(p_enterprise_id uuid, p_error text)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_state public.quality_score_state;
begin
  perform app.quality_state(p_enterprise_id);
  update public.quality_score_state
     set failures = failures + 1, failed_at = now(), last_failure = left(p_error, 500),
         -- a minute early, so the scheduled run that comes then tries again
         retry_at = now() + least(interval '15 minutes' * power(2, least(failures, 7)), interval '24 hours')
                    - interval '1 minute'
   where enterprise_id = p_enterprise_id
  returning * into v_state;
  return jsonb_build_object('failures', v_state.failures, 'retry_at', v_state.retry_at);
end
$function$;
grant execute on function public.quality_unit_failed(uuid,text) to service_role;

-- public.quality_unit_succeeded(uuid)
CREATE OR REPLACE FUNCTION public.quality_unit_succeeded(p_enterprise_id uuid)
 RETURNS void
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  update public.quality_score_state
     set failures = 0, retry_at = null
   where enterprise_id = p_enterprise_id and (failures > 0 or retry_at is not null)
$function$;
grant execute on function public.quality_unit_succeeded(uuid) to service_role;

-- public.quarantine_add(jsonb,uuid)
CREATE OR REPLACE FUNCTION public.quarantine_add(p_items jsonb, p_run_id uuid DEFAULT NULL::uuid)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  with items as (
    select e.item, e.ord, jsonb_typeof(e.item) = 'object' as is_item
      from jsonb_array_elements(case jsonb_typeof(p_items)
                                  when 'array' then p_items
                                  when 'null' then '[]'::jsonb
                                  else jsonb_build_array(p_items) end)
           with ordinality as e(item, ord)
     where p_items is not null
  ), fields as (
    select coalesce(nullif(i.item->>'entity', ''), 'unknown') as entity,
           case when i.item->>'scope_id' ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
                then (i.item->>'scope_id')::uuid end as scope_id,
           i.item->>'mews_id' as mews_id,
           case when i.is_item then coalesce(i.item->>'reason', 'no reason given')
                else 'not a quarantine item' end as reason,
           case when i.is_item then nullif(i.item->'raw', 'null'::jsonb) else i.item end as raw,
           case when i.is_item then i.item->>'raw_text' end as raw_text,
           i.ord
      from items i
  ), versions as (
    -- one row per entry: the same version twice in one call is two sightings
    select f.entity, f.scope_id, f.mews_id, f.raw, f.raw_text,
           (array_agg(f.reason order by f.ord desc))[1] as reason, count(*)::integer as seen,
           min(f.ord) as first
      from fields f
     group by f.entity, f.scope_id, f.mews_id, f.raw, f.raw_text
  ), written as (
    insert into public.quarantine as q
      (entity, scope_id, mews_id, reason, raw, raw_text, run_id, sightings, first_seen_at, last_seen_at)
    select v.entity, v.scope_id, v.mews_id, v.reason, v.raw, v.raw_text,
           (select r.id from public.sync_runs r where r.id = p_run_id), v.seen, now(), now()
      from versions v
     order by v.first
    on conflict (entity, scope_id, mews_id, raw_hash) do update set
      sightings = q.sightings + excluded.sightings,
      last_seen_at = excluded.last_seen_at,
      reason = excluded.reason,
      run_id = coalesce(excluded.run_id, q.run_id),
      resolved_at = null
    returning (xmax = 0) as is_new
  )
  select jsonb_build_object(
    'quarantined', (select count(*) from fields),
    'new', (select count(*) from written where is_new))
$function$;
grant execute on function public.quarantine_add(jsonb,uuid) to service_role;

-- public.rate_limit_acquire(text,integer,integer)
CREATE OR REPLACE FUNCTION public.rate_limit_acquire(p_key text, p_limit integer, p_window_ms integer)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_now timestamptz;
  v_window interval := make_interval(secs => p_window_ms / 1000.0);
  v_lease interval := make_interval(secs => greatest(p_window_ms, 30000) / 1000.0);
  v_state public.rate_limit_state;
  v_limit integer;
  v_used integer;
  v_oldest timestamptz;
  v_probe boolean;
  v_tracked boolean;
  v_ticket bigint;
begin
  if p_limit < 1 or p_window_ms < 1 then
    raise exception 'limit and window must be positive' using errcode = '22023';
  end if;
  insert into public.rate_limit_state (key) values (p_key) on conflict (key) do nothing;
  select * into v_state from public.rate_limit_state where key = p_key for update;
  if v_state.unauthorized_at is not null then
    return jsonb_build_object('granted', false, 'used', null, 'wait_ms', null,
      'unauthorized', jsonb_build_object('since', v_state.unauthorized_at, 'error', v_state.unauthorized_error));
  end if;
  v_now := clock_timestamp();  -- after the lock: waiting for it took time
  if v_state.paused_until is not null and v_state.paused_until > v_now then
    return jsonb_build_object('granted', false, 'used', null, 'probe', false,
      'wait_ms', ceil(extract(epoch from v_state.paused_until - v_now) * 1000)::integer);
  end if;
  if v_state.probe_until > v_now then  -- a probe is out: wait for its answer
    return jsonb_build_object('granted', false, 'used', null, 'probe', false,
      'wait_ms', least(100, ceil(extract(epoch from v_state.probe_until - v_now) * 1000))::integer);
  end if;
  v_limit := least(p_limit, coalesce(v_state.adapted_limit, p_limit));
  delete from public.rate_limit_hits where key = p_key and at <= v_now - v_window;
  select count(*), min(at) into v_used, v_oldest from public.rate_limit_hits where key = p_key;
  if v_used >= v_limit and v_state.adapted_limit is not null and not v_state.probe_due
     and greatest(v_state.adapted_at, v_state.limited_at, v_state.paused_until) + v_window <= v_now then
    -- the lowered limit holds a request back after a quiet window: raise it a step
    v_state.adapted_limit := app.rate_limit_increased(v_state.adapted_limit, p_limit);
    if v_state.adapted_limit is null then  -- back at the ceiling: trusted up to it again
      v_state.confirmed := null;
    end if;
    update public.rate_limit_state
       set adapted_limit = v_state.adapted_limit, confirmed = v_state.confirmed,
           adapted_at = v_now, updated_at = now()
     where key = p_key;
    v_limit := least(p_limit, coalesce(v_state.adapted_limit, p_limit));
  end if;
  if v_used >= v_limit then
    return jsonb_build_object('granted', false, 'used', v_used, 'probe', false, 'limit', v_limit,
      'wait_ms', greatest(1, ceil(extract(epoch from v_oldest + v_window - v_now) * 1000))::integer);
  end if;
  v_probe := coalesce(v_state.probe_due or v_used >= v_state.confirmed, false);
  v_tracked := v_state.probe_due or v_state.confirmed is not null;
  if v_probe and exists (select 1 from public.rate_limit_hits
                          where key = p_key and open_until > v_now) then
    -- a probe goes alone: wait until every request on the wire has its answer
    return jsonb_build_object('granted', false, 'used', v_used, 'probe', false, 'limit', v_limit,
      'wait_ms', 100);
  end if;
  insert into public.rate_limit_hits (key, at, open_until)
  values (p_key, v_now, case when v_tracked then v_now + v_lease end)
  returning case when v_tracked then id end into v_ticket;
  if v_probe then
    update public.rate_limit_state
       set probe_until = v_now + v_lease, probe_ticket = v_ticket,
           updated_at = now()
     where key = p_key;
  end if;
  return jsonb_build_object('granted', true, 'wait_ms', 0, 'used', v_used + 1,
    'probe', v_probe, 'limit', v_limit, 'ticket', v_ticket);
end
$function$;
grant execute on function public.rate_limit_acquire(text,integer,integer) to service_role;

-- public.rate_limit_answered(text,bigint)
CREATE OR REPLACE FUNCTION public.rate_limit_answered(p_key text, p_ticket bigint)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  with closed as (
    update public.rate_limit_hits set open_until = null where key = p_key and id = p_ticket
  ), probe as (
    update public.rate_limit_state
       set probe_due = false, probe_until = null, probe_ticket = null, updated_at = now()
     where key = p_key and probe_ticket = p_ticket
    returning 1
  )
  select jsonb_build_object('probe', exists (select 1 from probe))
$function$;
grant execute on function public.rate_limit_answered(text,bigint) to service_role;

-- public.rate_limit_pause(text,double precision)
CREATE OR REPLACE FUNCTION public.rate_limit_pause(p_key text, p_seconds double precision)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_until timestamptz := clock_timestamp() + make_interval(secs => greatest(p_seconds, 0));
begin
  insert into public.rate_limit_state as s (key, paused_until, pauses, updated_at)
  values (p_key, v_until, 1, now())
  on conflict (key) do update
    set paused_until = greatest(coalesce(s.paused_until, '-infinity'), excluded.paused_until),
        pauses = s.pauses + 1, updated_at = now();
  return jsonb_build_object('paused_until', v_until);
end
$function$;
grant execute on function public.rate_limit_pause(text,double precision) to service_role;

-- public.rate_limit_refused(text,double precision,integer,integer,bigint)
CREATE OR REPLACE FUNCTION public.rate_limit_refused(p_key text, p_seconds double precision, p_limit integer, p_window_ms integer, p_ticket bigint DEFAULT NULL::bigint)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_now timestamptz;
  v_state public.rate_limit_state;
  v_used integer;
begin
  if p_limit < 1 or p_window_ms < 1 then
    raise exception 'limit and window must be positive' using errcode = '22023';
  end if;
  insert into public.rate_limit_state (key) values (p_key) on conflict (key) do nothing;
  select * into v_state from public.rate_limit_state where key = p_key for update;
  v_now := clock_timestamp();
  update public.rate_limit_hits set open_until = null where key = p_key and id = p_ticket;
  if v_state.paused_until is null or v_state.paused_until <= v_now then  -- a new congestion event
    v_state.event_refusals := 0;
    v_state.event_limit := least(p_limit, coalesce(v_state.adapted_limit, p_limit));
  end if;
  v_state.event_refusals := v_state.event_refusals + 1;
  select count(*) into v_used from public.rate_limit_hits
   where key = p_key and at > v_now - make_interval(secs => p_window_ms / 1000.0);
  -- each 429 of the event lowers the estimate: fewer of the requests taken were accepted
  v_state.adapted_limit := app.rate_limit_decreased(
    v_state.event_limit, v_used - v_state.event_refusals, p_limit);
  v_state.adapted_at := v_now;
  v_state.confirmed := least(coalesce(v_state.confirmed, v_state.adapted_limit), v_state.adapted_limit);
  update public.rate_limit_state
     set paused_until = greatest(coalesce(paused_until, '-infinity'),
                                 v_now + make_interval(secs => greatest(p_seconds, 0))),
         pauses = pauses + 1,
         adapted_limit = v_state.adapted_limit, adapted_at = v_state.adapted_at,
         confirmed = v_state.confirmed, limited_at = v_now, event_refusals = v_state.event_refusals,
         event_limit = v_state.event_limit,
         probe_due = true, probe_until = null, probe_ticket = null,
         updated_at = now()
   where key = p_key
  returning paused_until, adapted_limit into v_state.paused_until, v_state.adapted_limit;
  return jsonb_build_object('paused_until', v_state.paused_until, 'limit', v_state.adapted_limit);
end
$function$;
grant execute on function public.rate_limit_refused(text,double precision,integer,integer,bigint) to service_role;

-- public.register_enterprise(jsonb)
CREATE OR REPLACE FUNCTION public.register_enterprise(p_enterprise jsonb)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  with chain as (
    insert into public.chains (id, name)
    values ((p_enterprise->>'ChainId')::uuid, coalesce(p_enterprise->>'ChainName', 'Chain'))
    on conflict (id) do update set name = excluded.name
    returning id
  ), enterprise as (
    insert into public.enterprises (id, chain_id, name, time_zone, default_language_code,
                                    mews_created_utc, raw)
    select (p_enterprise->>'Id')::uuid, chain.id, p_enterprise->>'Name',
           p_enterprise->>'TimeZoneIdentifier', p_enterprise->>'DefaultLanguageCode',
           (p_enterprise->>'CreatedUtc')::timestamptz, p_enterprise
    from chain
    on conflict (id) do update set name = excluded.name, time_zone = excluded.time_zone,
      default_language_code = excluded.default_language_code,
      mews_created_utc = excluded.mews_created_utc, raw = excluded.raw
    returning id, chain_id, mews_created_utc
  )
  select jsonb_build_object('enterprise_id', e.id, 'chain_id', e.chain_id,
    -- customers are chain-wide: a first load walks back to the chain's oldest enterprise
    'oldest_utc', (select min(x.mews_created_utc) from public.enterprises x where x.chain_id = e.chain_id
                   and x.id <> e.id) )
    || jsonb_build_object('created_utc', e.mews_created_utc)
  from enterprise e
$function$;
grant execute on function public.register_enterprise(jsonb) to service_role;

-- public.run_finish(uuid,text,jsonb,text)
CREATE OR REPLACE FUNCTION public.run_finish(p_id uuid, p_status text, p_counts jsonb DEFAULT '{}'::jsonb, p_error text DEFAULT NULL::text)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_row public.sync_runs;
begin
  if p_status not in ('succeeded', 'partial', 'rate_limited', 'failed', 'skipped') then
    raise exception 'not a final run status: %', p_status using errcode = '22023';
  end if;
  update public.sync_runs
     set status = p_status, counts = coalesce(p_counts, '{}'::jsonb),
         error = case when status = 'abandoned'
                      then concat_ws('; ', p_error, 'finished after it had been marked abandoned')
                      else p_error end,
         finished_at = now()
   where id = p_id and status in ('running', 'abandoned')
  returning * into v_row;
  if not found then
    raise exception 'run % is not running', p_id using errcode = '22023';
  end if;
  return jsonb_build_object('id', v_row.id, 'status', v_row.status,
    'seconds', extract(epoch from v_row.finished_at - v_row.started_at));
end
$function$;
grant execute on function public.run_finish(uuid,text,jsonb,text) to service_role;

-- public.run_heartbeat(uuid,text,integer)
CREATE OR REPLACE FUNCTION public.run_heartbeat(p_id uuid, p_owner text DEFAULT NULL::text, p_lease_seconds integer DEFAULT 120)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  with beat as (
    update public.sync_runs set heartbeat_at = now(), owner = coalesce(p_owner, owner)
     where id = p_id and status = 'running'
    returning 1
  ), leases as (
    update public.sync_leases set expires_at = now() + make_interval(secs => greatest(p_lease_seconds, 1))
     where holder = p_id::text and released_at is null
    returning 1
  ) select jsonb_build_object('running', exists (select 1 from beat), 'leases', (select count(*) from leases))
$function$;
grant execute on function public.run_heartbeat(uuid,text,integer) to service_role;

-- public.run_session(uuid,uuid)
CREATE OR REPLACE FUNCTION public.run_session(p_id uuid, p_session uuid)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
begin
  if pg_catalog.pg_try_advisory_xact_lock(app.session_key(p_session)) then
    raise exception 'no process holds session %: its runs could not be known alive', p_session
      using errcode = '55000';
  end if;
  update public.sync_runs set session_id = p_session where id = p_id and status = 'running';
  return jsonb_build_object('running', found);
end
$function$;
grant execute on function public.run_session(uuid,uuid) to service_role;

-- public.run_start(text,uuid,uuid)
CREATE OR REPLACE FUNCTION public.run_start(p_job text, p_scope_id uuid DEFAULT NULL::uuid, p_connection_id uuid DEFAULT NULL::uuid)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  insert into public.sync_runs (job, scope_id, connection_id) values (p_job, p_scope_id, p_connection_id)
  returning jsonb_build_object('id', id, 'started_at', started_at)
$function$;
grant execute on function public.run_start(text,uuid,uuid) to service_role;

-- public.runs_purge(integer,integer)
CREATE OR REPLACE FUNCTION public.runs_purge(p_retention_days integer, p_batch integer DEFAULT 10000)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_deleted integer;
begin
  if p_retention_days is null or p_retention_days < 1 then
    raise exception 'the retention is at least one day' using errcode = '22023';
  end if;
  with old as (
    select r.id from public.sync_runs r
     where r.status <> 'running'
       and coalesce(r.finished_at, r.started_at) < now() - make_interval(days => p_retention_days)
       and exists (select 1 from public.sync_runs n
                    where n.job = r.job and n.started_at > r.started_at
                      and n.scope_id is not distinct from r.scope_id
                      and n.connection_id is not distinct from r.connection_id)
     order by r.started_at limit least(greatest(p_batch, 1), 50000)
     for update skip locked
  )
  delete from public.sync_runs s using old where s.id = old.id;
  get diagnostics v_deleted = row_count;
  return jsonb_build_object('purged', v_deleted);
end
$function$;
grant execute on function public.runs_purge(integer,integer) to service_role;

-- public.runs_reap(integer,text)
CREATE OR REPLACE FUNCTION public.runs_reap(p_stale_seconds integer DEFAULT 90, p_by text DEFAULT NULL::text)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  with dead as (
    select r.id, app.run_gone(r, p_stale_seconds) as why
      from public.sync_runs r where r.status = 'running'
  ), reaped as (
    update public.sync_runs s
       set status = 'abandoned', finished_at = now(), abandoned_by = p_by, error = d.why
      from dead d
     where s.id = d.id and d.why is not null and s.status = 'running'
    returning s.id, s.job, s.owner, s.error, s.heartbeat_at
  ), freed as (
    delete from public.sync_leases l using reaped r where l.holder = r.id::text
    returning 1
  ), unclaimed as (
    update public.event_inbox e set locked_until = now()
      from reaped r where e.locked_by = r.id and e.status = 'processing'
    returning 1
  )
  select jsonb_build_object('abandoned', (select count(*) from reaped),
                            'jobs', coalesce((select jsonb_agg(job) from reaped), '[]'::jsonb),
                            'runs', coalesce((select jsonb_agg(jsonb_build_object(
                                       'holder', id, 'job', job, 'owner', owner, 'why', error,
                                       'since', heartbeat_at)) from reaped), '[]'::jsonb),
                            'leases_freed', (select count(*) from freed),
                            'inbox_unclaimed', (select count(*) from unclaimed))
$function$;
grant execute on function public.runs_reap(integer,text) to service_role;

-- public.session_hold(uuid)
CREATE OR REPLACE FUNCTION public.session_hold(p_session uuid)
 RETURNS jsonb
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
begin
  perform pg_catalog.pg_advisory_lock(app.session_key(p_session));
  return jsonb_build_object('session', p_session, 'held', true);
end
$function$;
grant execute on function public.session_hold(uuid) to service_role;

-- public.sync_status(uuid)
CREATE OR REPLACE FUNCTION public.sync_status(p_enterprise_id uuid DEFAULT NULL::uuid)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select jsonb_build_object(
    'generated_at', now(),
    'enterprises', coalesce(jsonb_agg(s.status || jsonb_build_object('attention', app.sync_attention(s.status))
                                      order by s.name, s.id), '[]'::jsonb))
  from (
    select e.id, e.name, jsonb_build_object(
      'id', e.id, 'name', e.name, 'chain_id', e.chain_id,
      'runs', (
        select coalesce(jsonb_agg(x.run order by x.run->>'job'), '[]'::jsonb)
        from (select distinct on (r->>'job') r as run
              from jsonb_array_elements(app.sync_last_runs(array[e.id, e.chain_id], true)
                                        || coalesce(p.health->'runs', '[]'::jsonb)) r
              order by r->>'job', (r->>'started_at')::timestamptz desc) x),
      'inbox', p.health->'inbox',
      'tokens', coalesce(p.health->'tokens', '[]'::jsonb),
      'quarantine_open', (select count(*) from public.quarantine q
                          where q.resolved_at is null and q.scope_id in (e.id, e.chain_id)),
      'quarantine_unscoped', (p.health->>'quarantine_unscoped')::integer,
      'conflicts_7d', (select count(*) from public.conflict_log c
                       where c.chain_id = e.chain_id and c.created_at > now() - interval '7 days'),
      'poll', (
        select jsonb_build_object(
                 'entities', count(*),
                 'newest_high_water_utc', max(k.high_water_utc),
                 'lag_seconds', floor(extract(epoch from now() - max(k.high_water_utc))),
                 'stalest_entity', (array_agg(k.entity order by k.high_water_utc nulls first, k.entity))[1],
                 'stalest_lag_seconds', floor(extract(epoch from now() - min(k.high_water_utc))))
        from public.sync_checkpoints k
        where k.phase = 'poll' and k.scope_id in (e.id, e.chain_id)),
      'score', (select jsonb_build_object('guests', count(*), 'average', round(avg(g.score), 1))
                from public.guest_scores g where g.enterprise_id = e.id)) as status
    from public.enterprises e
    cross join lateral (select app.sync_private_health(e.id) as health) p
    where p_enterprise_id is null or e.id = p_enterprise_id) s
$function$;
grant execute on function public.sync_status(uuid) to authenticated;
grant execute on function public.sync_status(uuid) to service_role;

-- public.token_authorized(text)
CREATE OR REPLACE FUNCTION public.token_authorized(p_key text)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  with cleared as (
    update public.rate_limit_state set unauthorized_at = null, unauthorized_error = null, updated_at = now()
     where key = p_key and unauthorized_at is not null
    returning 1
  ) select jsonb_build_object('cleared', exists (select 1 from cleared))
$function$;
grant execute on function public.token_authorized(text) to service_role;

-- public.token_unauthorized(text,text)
CREATE OR REPLACE FUNCTION public.token_unauthorized(p_key text, p_error text DEFAULT NULL::text)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$
  insert into public.rate_limit_state as s (key, unauthorized_at, unauthorized_error, unauthorized_count, updated_at)
  values (p_key, now(), left(p_error, 500), 1, now())
  on conflict (key) do update
    set unauthorized_at = coalesce(s.unauthorized_at, excluded.unauthorized_at),
        unauthorized_error = excluded.unauthorized_error,
        unauthorized_count = s.unauthorized_count + 1, updated_at = now()
  returning jsonb_build_object('unauthorized_at', unauthorized_at)
$function$;
grant execute on function public.token_unauthorized(text,text) to service_role;

-- public.upsert_guest_addresses(uuid,jsonb)
CREATE OR REPLACE FUNCTION public.upsert_guest_addresses(p_scope_id uuid, p_records jsonb)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$ select app.guarded_upsert_records('public.guest_addresses', 'app.guest_addresses_from_records(uuid, jsonb)', 'addresses', p_scope_id, p_records) $function$;
grant execute on function public.upsert_guest_addresses(uuid,jsonb) to service_role;

-- public.upsert_guest_identity_documents(uuid,jsonb)
CREATE OR REPLACE FUNCTION public.upsert_guest_identity_documents(p_scope_id uuid, p_records jsonb)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$ select app.guarded_upsert_records('public.guest_identity_documents', 'app.guest_identity_documents_from_records(uuid, jsonb)', 'identity_documents', p_scope_id, p_records) $function$;
grant execute on function public.upsert_guest_identity_documents(uuid,jsonb) to service_role;

-- public.upsert_guests(uuid,jsonb)
CREATE OR REPLACE FUNCTION public.upsert_guests(p_scope_id uuid, p_records jsonb)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$ select app.guarded_upsert_records('public.guests', 'app.guests_from_records(uuid, jsonb)', 'customers', p_scope_id, p_records) $function$;
grant execute on function public.upsert_guests(uuid,jsonb) to service_role;

-- public.upsert_reservations(uuid,jsonb)
CREATE OR REPLACE FUNCTION public.upsert_reservations(p_scope_id uuid, p_records jsonb)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$ select app.guarded_upsert_records('public.reservations', 'app.reservations_from_records(uuid, jsonb)', 'reservations', p_scope_id, p_records) $function$;
grant execute on function public.upsert_reservations(uuid,jsonb) to service_role;

-- public.upsert_resources(uuid,jsonb)
CREATE OR REPLACE FUNCTION public.upsert_resources(p_scope_id uuid, p_records jsonb)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$ select app.guarded_upsert_records('public.resources', 'app.resources_from_records(uuid, jsonb)', 'resources', p_scope_id, p_records) $function$;
grant execute on function public.upsert_resources(uuid,jsonb) to service_role;

-- public.upsert_vendors(uuid,jsonb)
CREATE OR REPLACE FUNCTION public.upsert_vendors(p_scope_id uuid, p_records jsonb)
 RETURNS jsonb
 LANGUAGE sql
 SET search_path TO ''
AS $function$ select app.guarded_upsert_records('public.vendors', 'app.vendors_from_records(uuid, jsonb)', 'companies', p_scope_id, p_records) $function$;
grant execute on function public.upsert_vendors(uuid,jsonb) to service_role;
