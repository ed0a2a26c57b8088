-- A scheduled score does work in proportion to what changed, not to the number of guests.
--
-- * Guests whose mirror row changed since their facts were computed are found through an index
--   on (chain_id, synced_at): public.quality_facts_changed pages through the guests synced since
--   the previous refresh started (less an overlap for transactions that committed late), not
--   through every guest.
--   Guests with a staff edit still to push are found through the pending-push index
--   (public.quality_facts_edited).
-- * public.quality_facts_put rescores the guests it was given, for every enterprise of the chain
--   (unless a full pass that has not started yet will), and queues them, with the duplicate keys
--   they had, for public.quality_duplicates_refresh: it rebuilds the suggestions around a batch
--   of queued guests (the groups of every key they had or have, no one else's).
-- * A full rebuild of duplicates (a bulk change) is done in parts, each a range of ids:
--   public.quality_find_duplicates(chain, part, parts).

-- -- finding what changed ---------------------------------------------------------------------

create index guests_synced_idx on public.guests (chain_id, synced_at, mews_id);

-- the name-and-birth-date key of duplicates, kept with the facts (so it can be looked up)
alter table public.guest_facts add column name_key text;
update public.guest_facts f
   set name_key = lower(btrim(g.first_name)) || ' ' || lower(btrim(g.last_name)) || ' ' || g.birth_date
  from public.guests g
 where g.chain_id = f.chain_id and g.mews_id = f.guest_mews_id
   and g.birth_date is not null and g.first_name is not null;
create index guest_facts_name_key_idx on public.guest_facts (chain_id, name_key) where name_key is not null;
create index guest_duplicates_b_idx on public.guest_duplicates (chain_id, guest_b);

-- Guests whose duplicate keys may have changed, with the keys they had when first queued (what
-- the stored suggestions reflect).
create table app.quality_duplicate_queue (
  chain_id uuid not null,
  guest_mews_id uuid not null,
  old_keys jsonb not null default '[]'::jsonb,   -- [{"match": "email", "value": "..."}]
  queued_at timestamptz not null default now(),
  primary key (chain_id, guest_mews_id)
);
alter table app.quality_duplicate_queue enable row level security;
revoke all on app.quality_duplicate_queue from public, anon, authenticated, service_role;
grant select, insert, update, delete on app.quality_duplicate_queue to service_role;  -- update: FOR UPDATE

-- What the enrichment job reads of a guest.
create or replace function app.quality_facts_input(g public.guests) returns jsonb
language sql stable set search_path = ''
as $$
  select jsonb_build_object(
    'guest_mews_id', g.mews_id, 'email', g.email, 'phone', g.phone,
    'nationality_code', g.nationality_code, 'synced_at', g.synced_at,
    'address_country', (select a.country_code from public.guest_addresses a
                         where a.chain_id = g.chain_id and a.guest_mews_id = g.mews_id and a.is_active limit 1))
$$;

-- Where the last complete refresh of a chain's facts started (what the next one need not read).
create table app.quality_chain_state (
  chain_id uuid primary key references public.chains (id) on delete cascade,
  facts_scanned_from timestamptz not null
);
alter table app.quality_chain_state enable row level security;
revoke all on app.quality_chain_state from public, anon, authenticated, service_role;
grant select, insert, update on app.quality_chain_state to service_role;

-- Guests whose facts are missing or older than their mirror row, in the order they were synced,
-- p_limit at a time: pass back 'next' until it is null. A refresh reads the guests synced since
-- the previous complete refresh started, less five minutes (a sync transaction that started
-- before and committed after it); the first says how many that is ('changed_estimate', against
-- 'guests_estimate' for the table). The call that finds nothing more to do records where this
-- refresh started.
create or replace function public.quality_facts_changed(
  p_chain_id uuid, p_after jsonb default null, p_limit integer default 1000
) returns jsonb
language plpgsql set search_path = ''
as $$
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
$$;

-- Guests with a staff edit still to push whose facts are older than the edit (staff edits do not
-- move synced_at), p_limit at a time until none is left.
create or replace function public.quality_facts_edited(p_chain_id uuid, p_limit integer default 1000) returns jsonb
language sql stable set search_path = ''
as $$
  select coalesce(jsonb_agg(app.quality_facts_input(e.g)), '[]'::jsonb)
  from (select g from public.guests g
        left join public.guest_facts f on f.chain_id = g.chain_id and f.guest_mews_id = g.mews_id
        where g.push_status = 'pending' and g.chain_id = p_chain_id
          and (f.guest_mews_id is null or f.computed_at < g.local_edited_at)
        order by g.local_edited_at
        limit least(greatest(p_limit, 1), 5000)) e
$$;

-- -- duplicates -------------------------------------------------------------------------------

-- The duplicate keys of some guests (given ids, or ids in [p_from, p_to)): normalised e-mail
-- (not an OTA relay address), E.164 phone, name and birth date; active guests only.
create or replace function app.quality_duplicate_keys(p_chain_id uuid, p_ids uuid[], p_from uuid, p_to uuid)
returns table (guest_mews_id uuid, match text, value text)
language plpgsql stable set search_path = ''
as $$
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
$$;

-- The active guests holding each of some keys: at most p_cap of them per key ('size' is
-- p_cap + 1 when there are more).
create or replace function app.quality_duplicate_groups(p_chain_id uuid, p_keys jsonb, p_cap integer)
returns table (match text, value text, ids uuid[], size integer)
language sql stable set search_path = ''
as $$
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
$$;

-- Write the pairs of groups of 2 to 20 (a shared front-desk address is not a duplicate) whose
-- first guest is in [p_from, p_to), or whose two guests are both in p_within; the evidence is
-- every key the two share.
create or replace function app.quality_duplicate_pairs(
  p_chain_id uuid, p_groups jsonb, p_from uuid, p_to uuid, p_within uuid[]
) returns integer
language plpgsql set search_path = ''
as $$
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
$$;

-- Rebuild the duplicate suggestions of a chain: all of them (one call), or the pairs whose first
-- guest is in part p_part of p_parts ranges of ids (each a call of its own; a pair that no longer
-- matches disappears). Evidence is kept; nothing is merged.
drop function public.quality_find_duplicates(uuid);
create or replace function public.quality_find_duplicates(p_chain_id uuid, p_part integer default 0, p_parts integer default 1)
returns jsonb
language plpgsql set search_path = ''
set jit = off set work_mem = '64MB'
as $$
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
$$;

-- The duplicate suggestions around guests whose keys changed (p_old: their keys before): every
-- pair among them, the other holders of those keys and their present partners is rebuilt.
create or replace function app.quality_duplicates_around(p_chain_id uuid, p_ids uuid[], p_old jsonb)
returns integer
language plpgsql set search_path = ''
as $$
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
$$;

-- Update the duplicate suggestions around up to p_limit queued guests of a chain; 'more' when
-- some are left. With p_discard, forget every queued guest instead (a rebuild follows).
create or replace function public.quality_duplicates_refresh(
  p_chain_id uuid, p_limit integer default 5000, p_discard boolean default false
) returns jsonb
language plpgsql set search_path = ''
set jit = off
as $$
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
$$;

-- -- facts ------------------------------------------------------------------------------------

-- Facts: what Python normalised (e-mail, phone), plus what SQL derives set-based (address,
-- documents, stays, company, enriched nationality and language, the duplicate name key), with
-- enrichment sources. Then, for these guests: their scores in every enterprise of the chain
-- (p_rescore; not where a full pass that has not started yet will score everyone), and a place
-- in the queue of duplicate suggestions to update (p_duplicates; a bulk load rebuilds them all
-- afterwards instead).
drop function public.quality_facts_put(uuid, jsonb);
create or replace function public.quality_facts_put(
  p_chain_id uuid, p_rows jsonb, p_duplicates boolean default true, p_rescore boolean default true
) returns jsonb
language plpgsql set search_path = ''
as $$
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
$$;

-- -- pushes of enriched values ---------------------------------------------------------------

-- Enriched values an admin chose to push to Mews become pending local changes for push_changes:
-- at most p_limit guests per call ('more' when there may be others); nothing is read when no
-- rule of the enterprise pushes.
drop function public.quality_queue_enriched_pushes(uuid);
create or replace function public.quality_queue_enriched_pushes(p_enterprise_id uuid, p_limit integer default 5000)
returns jsonb
language sql set search_path = ''
as $$
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
$$;

-- -- privileges --------------------------------------------------------------------------------

revoke all on function app.quality_facts_input(public.guests), public.quality_facts_changed(uuid, jsonb, integer),
  public.quality_facts_edited(uuid, integer), app.quality_duplicate_keys(uuid, uuid[], uuid, uuid),
  app.quality_duplicate_groups(uuid, jsonb, integer), app.quality_duplicate_pairs(uuid, jsonb, uuid, uuid, uuid[]),
  public.quality_find_duplicates(uuid, integer, integer), app.quality_duplicates_around(uuid, uuid[], jsonb),
  public.quality_facts_put(uuid, jsonb, boolean, boolean), public.quality_duplicates_refresh(uuid, integer, boolean),
  public.quality_queue_enriched_pushes(uuid, integer)
  from public, anon, authenticated, service_role;
grant execute on function app.quality_facts_input(public.guests), public.quality_facts_changed(uuid, jsonb, integer),
  public.quality_facts_edited(uuid, integer), app.quality_duplicate_keys(uuid, uuid[], uuid, uuid),
  app.quality_duplicate_groups(uuid, jsonb, integer), app.quality_duplicate_pairs(uuid, jsonb, uuid, uuid, uuid[]),
  public.quality_find_duplicates(uuid, integer, integer), app.quality_duplicates_around(uuid, uuid[], jsonb),
  public.quality_facts_put(uuid, jsonb, boolean, boolean), public.quality_duplicates_refresh(uuid, integer, boolean),
  public.quality_queue_enriched_pushes(uuid, integer)
  to service_role;
