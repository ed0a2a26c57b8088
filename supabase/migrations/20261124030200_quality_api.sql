-- Data quality API: set-based scoring generated from the rule rows, dry runs, enabling, facts,
-- duplicates, and the views the frontend reads.

-- The profile a rule sees (shared/quality/scoring.py reads the same names).
create or replace view app.quality_profile as
  select g.chain_id, g.mews_id, g.is_active, g.first_name, g.last_name, g.email,
         f.email_valid, g.has_ota_email as email_ota, g.phone, f.phone_valid, g.birth_date,
         g.nationality_code, f.enriched_nationality, coalesce(f.has_address, false) as address,
         coalesce(f.has_document, false) as identity_document, g.preferred_language_code as language,
         f.enriched_language, g.title, g.sex, g.loyalty_code,
         coalesce(g.company_id, f.company_id)::text as company
  from public.guests g
  left join public.guest_facts f on f.chain_id = g.chain_id and f.guest_mews_id = g.mews_id;

-- The SQL expression of a field (a fixed catalogue: rules name fields, never write SQL).
create or replace function app.quality_field_sql(p_field text, p_enterprise_id uuid) returns text
language plpgsql stable set search_path = ''
as $$
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
$$;

create or replace function app.quality_present_sql(p_field text, p_enterprise_id uuid) returns text
language sql stable set search_path = ''
as $$
  select case app.quality_field_type(p_field)
    when 'bool' then format('coalesce(%s, false)', app.quality_field_sql(p_field, p_enterprise_id))
    when 'date' then format('(%s is not null)', app.quality_field_sql(p_field, p_enterprise_id))
    else format('(nullif(btrim(%s), '''') is not null)', app.quality_field_sql(p_field, p_enterprise_id)) end
$$;

-- The rules of a set with their effective costs (validators touching a field never cost more,
-- together, than the field's weight), sorted as reasons are shown: costliest first.
create or replace function app.quality_compiled_rules(p_rule_set_id uuid)
returns table (id bigint, field text, kind text, params jsonb, severity text, weight integer, cost numeric)
language sql stable set search_path = ''
as $$
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
$$;

-- The SELECT that scores every active guest of a chain (or some of them) with a rule set.
-- Parameters when executed: $1 chain id, $2 guest ids (uuid[] or null), $3 part, $4 parts.
create or replace function app.quality_score_select(p_rule_set_id uuid) returns text
language plpgsql stable set search_path = ''
as $$
declare
  v_enterprise uuid;
  v_rule record;
  v_flags text[] := '{}';
  v_index integer := 0;
  v_penalty text[] := '{}';
  v_reasons text[] := '{}';
  v_total numeric := 0;
  v_present text;
  v_value text;
  v_other text;
  v_fail text;
  v_label text;
  v_kind text;
begin
  select enterprise_id into v_enterprise from public.quality_rule_sets where id = p_rule_set_id;
  for v_rule in select * from app.quality_compiled_rules(p_rule_set_id) loop
    v_present := app.quality_present_sql(v_rule.field, v_enterprise);
    v_value := app.quality_field_sql(v_rule.field, v_enterprise);
    v_kind := case v_rule.kind when 'required' then 'missing' when 'not_ota_email' then 'weak' else 'invalid' end;
    v_label := case v_kind when 'missing' then 'Missing' when 'weak' then 'Weak' else 'Invalid' end
               || ': ' || replace(v_rule.field, '_', ' ') || ' (−' || trim_scale(v_rule.cost)::text || ')';
    if v_rule.kind = 'required' then
      v_total := v_total + v_rule.cost;
      v_fail := format('not %s', v_present);
    else
      v_fail := case v_rule.kind
        when 'email' then 'p.email_valid is false'
        when 'phone' then 'p.phone_valid is false'
        when 'not_ota_email' then 'coalesce(p.email_ota, false)'
        when 'pattern' then format('left(%s, 255) !~ %L', v_value, v_rule.params->>'regex')
        when 'allowed_values' then format('not (%s = any (%L::text[]))', v_value,
          array(select jsonb_array_elements_text(v_rule.params->'values')))
        when 'length' then format('(char_length(%s) < %s or char_length(%s) > %s)', v_value,
          coalesce((v_rule.params->>'min')::int, 0), v_value, coalesce((v_rule.params->>'max')::int, 2147483647))
        when 'date_range' then format('not (%s between (current_date - make_interval(years => %s))::date and (current_date - make_interval(years => %s))::date)',
          v_value, coalesce((v_rule.params->>'max_years_ago')::int, 200), coalesce((v_rule.params->>'min_years_ago')::int, 0))
        when 'cross_field' then
          case v_rule.params->>'op'
            when 'differs' then format('lower(btrim(%s::text)) = lower(btrim(%s::text))', v_value, app.quality_field_sql(v_rule.params->>'other', v_enterprise))
            when 'equals' then format('lower(btrim(%s::text)) <> lower(btrim(%s::text))', v_value, app.quality_field_sql(v_rule.params->>'other', v_enterprise))
            when 'before' then format('not (%s < %s)', v_value, app.quality_field_sql(v_rule.params->>'other', v_enterprise))
            else format('not (%s > %s)', v_value, app.quality_field_sql(v_rule.params->>'other', v_enterprise)) end
        end;
      if v_rule.kind = 'cross_field' then
        v_present := v_present || ' and ' || app.quality_present_sql(v_rule.params->>'other', v_enterprise);
      end if;
      v_fail := format('%s and coalesce(%s, false)', v_present, v_fail);
    end if;
    v_index := v_index + 1;
    -- each rule's verdict is computed once per guest (the inner query is not flattened)
    v_flags := v_flags || format('%s as f%s', v_fail, v_index);
    v_penalty := v_penalty || format('case when f%s then %s else 0 end', v_index, v_rule.cost);
    v_reasons := v_reasons || format('case when f%s then %s end', v_index, v_rule.id);
  end loop;
  return format($q$
    select chain_id, guest_mews_id, %s as score, array_remove(array[%s]::bigint[], null) as failed_rules
    from (
      select p.chain_id, p.mews_id as guest_mews_id%s
      from app.quality_profile p
      where p.chain_id = $1 and p.is_active
        and ($2::uuid[] is null or p.mews_id = any ($2::uuid[]))
        and ($4 = 1 or abs(hashtext(p.mews_id::text)) %% $4 = $3)
      offset 0) verdicts
  $q$,
    case when v_total = 0 then '100::smallint'
         else format('round(100 * greatest(0, %s - (%s)) / %s)::smallint', v_total,
                     coalesce(nullif(array_to_string(v_penalty, ' + '), ''), '0'), v_total) end,
    coalesce(nullif(array_to_string(v_reasons, ', '), ''), 'null'),
    coalesce(', ' || nullif(array_to_string(v_flags, ', '), ''), ''));
end
$$;

-- Freeze a rule set: each rule's cost and message, and the scoring query, computed once.
create or replace function app.quality_freeze(p_rule_set_id uuid) returns void
language plpgsql set search_path = ''
as $$
begin
  update public.quality_rules r
     set cost = c.cost,
         reason_kind = case c.kind when 'required' then 'missing' when 'not_ota_email' then 'weak' else 'invalid' end,
         message = case c.kind when 'required' then 'Missing' when 'not_ota_email' then 'Weak' else 'Invalid' end
                   || ': ' || replace(c.field, '_', ' ') || ' (−' || trim_scale(c.cost)::text || ')'
    from app.quality_compiled_rules(p_rule_set_id) c
   where r.id = c.id;
  update public.quality_rule_sets set compiled_sql = app.quality_score_select(p_rule_set_id) where id = p_rule_set_id;
end
$$;

-- The scoring query of a set: cached for frozen sets, generated for drafts.
create or replace function app.quality_compiled_sql(p_rule_set_id uuid) returns text
language plpgsql set search_path = ''
as $$
declare
  v_sql text;
  v_status text;
begin
  select compiled_sql, status into v_sql, v_status from public.quality_rule_sets where id = p_rule_set_id;
  if v_sql is null then
    v_sql := app.quality_score_select(p_rule_set_id);
    if v_status <> 'draft' then
      update public.quality_rule_sets set compiled_sql = v_sql where id = p_rule_set_id;
    end if;
  end if;
  return v_sql;
end
$$;

-- Reasons for display: the failed rules of a score, costliest first.
create or replace function app.quality_reasons(p_failed bigint[]) returns jsonb
language sql stable set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object('field', r.field, 'kind', r.reason_kind, 'rule', r.kind,
                                               'cost', r.cost, 'severity', r.severity, 'message', r.message)
                            order by r.cost desc, r.field, r.kind, r.id), '[]'::jsonb)
  from public.quality_rules r where r.id = any (p_failed)
$$;

-- Enrichment settings change what a field means to the scorer: drop cached queries.
create or replace function app.quality_settings_changed() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  update public.quality_rule_sets set compiled_sql = null
   where enterprise_id = coalesce(new.enterprise_id, old.enterprise_id);
  return null;
end
$$;
create trigger enrichment_settings_changed after insert or update or delete on public.enrichment_settings
  for each row execute function app.quality_settings_changed();

create or replace function app.quality_enabled_rule_set(p_enterprise_id uuid) returns uuid
language sql stable set search_path = ''
as $$ select id from public.quality_rule_sets where enterprise_id = p_enterprise_id and status = 'enabled' $$;

-- Rescore guests of an enterprise with its enabled rule set: all (optionally one hash part of
-- them, so several connections can share the work), or the given ids. Writes only what changed;
-- a changed score of an already-scored guest goes to the history.
create or replace function public.quality_rescore(
  p_enterprise_id uuid, p_guest_ids jsonb default null, p_part integer default 0, p_parts integer default 1
) returns jsonb
language plpgsql set search_path = ''
as $$
declare
  v_rule_set uuid := app.quality_enabled_rule_set(p_enterprise_id);
  v_chain uuid;
  v_ids uuid[];
  v_result jsonb;
begin
  if v_rule_set is null then
    raise exception 'enterprise % has no enabled rule set', p_enterprise_id using errcode = '22023';
  end if;
  select chain_id into v_chain from public.enterprises where id = p_enterprise_id;
  if p_guest_ids is not null then
    v_ids := array(select (jsonb_array_elements_text(p_guest_ids))::uuid);
  end if;
  execute format($f$
    with scored as (%s),
    history as (
      -- a score's history follows the profile; a new rule set starts a fresh baseline (its effect
      -- is in the dry run and in quality_daily)
      insert into public.guest_score_history (enterprise_id, guest_mews_id, score, previous_score, rule_set_id)
      select $5, s.guest_mews_id, s.score, o.score, $6
      from scored s
      join public.guest_scores o on o.enterprise_id = $5 and o.guest_mews_id = s.guest_mews_id
      where o.rule_set_id = $6 and o.score <> s.score
    ),
    updated as (
      update public.guest_scores o
         set score = s.score, failed_rules = s.failed_rules, rule_set_id = $6, scored_at = now()
        from scored s
       where o.enterprise_id = $5 and o.guest_mews_id = s.guest_mews_id
         and (o.score <> s.score or o.failed_rules <> s.failed_rules or o.rule_set_id <> $6)
      returning 1
    ),
    inserted as (
      insert into public.guest_scores (enterprise_id, chain_id, guest_mews_id, score, failed_rules, rule_set_id, scored_at)
      select $5, s.chain_id, s.guest_mews_id, s.score, s.failed_rules, $6, now()
      from scored s
      where not exists (select 1 from public.guest_scores o where o.enterprise_id = $5 and o.guest_mews_id = s.guest_mews_id)
      returning 1
    )
    select jsonb_build_object('scored', (select count(*) from scored),
                              'changed', (select count(*) from updated) + (select count(*) from inserted))
  $f$, app.quality_compiled_sql(v_rule_set))
  into v_result
  using v_chain, v_ids, p_part, p_parts, p_enterprise_id, v_rule_set;
  return v_result;
end
$$;

-- Today's distribution, for the trend over time.
create or replace function public.quality_snapshot(p_enterprise_id uuid) returns jsonb
language sql set search_path = ''
as $$
  insert into public.quality_daily as d (enterprise_id, day, guests, average, median, below_50, complete)
  select p_enterprise_id, current_date, count(*), coalesce(round(avg(score), 2), 0),
         coalesce(percentile_cont(0.5) within group (order by score), 0),
         count(*) filter (where score < 50), count(*) filter (where score = 100)
  from public.guest_scores where enterprise_id = p_enterprise_id
  on conflict (enterprise_id, day) do update set guests = excluded.guests, average = excluded.average,
    median = excluded.median, below_50 = excluded.below_50, complete = excluded.complete
  returning jsonb_build_object('guests', guests, 'average', average)
$$;

-- May the caller administer this enterprise's rules? Inside a security-definer function
-- current_user is the owner, so the caller is judged by the request's JWT claims: PostgREST
-- always sets them (service_role, or a user who must be an admin of the enterprise). A direct
-- database connection without claims holds database credentials and is trusted.
create or replace function app.quality_may_admin(p_enterprise_id uuid) returns boolean
language sql stable set search_path = ''
as $$
  select coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb = '{}'::jsonb
      or auth.role() = 'service_role'
      or p_enterprise_id = any (app.admin_enterprise_ids())
$$;

-- What enabling a rule set would do, without writing anything.
create or replace function public.quality_dry_run(p_rule_set_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_enterprise uuid;
  v_chain uuid;
  v_result jsonb;
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
  execute format($f$
    with proposed as (%s),
    compared as (
      select p.score as new_score, o.score as old_score, p.score - coalesce(o.score, p.score) as delta
      from proposed p left join public.guest_scores o on o.enterprise_id = $5 and o.guest_mews_id = p.guest_mews_id
    )
    select jsonb_build_object(
      'guests', count(*),
      'changed', count(*) filter (where delta <> 0),
      'raised', count(*) filter (where delta > 0),
      'lowered', count(*) filter (where delta < 0),
      'average_delta', coalesce(round(avg(delta), 2), 0),
      'largest_drop', coalesce(min(delta), 0),
      'largest_rise', coalesce(max(delta), 0),
      'average_before', round(avg(old_score), 2),
      'average_after', round(avg(new_score), 2),
      'below_50_before', count(*) filter (where old_score < 50),
      'below_50_after', count(*) filter (where new_score < 50))
    from compared
  $f$, app.quality_score_select(p_rule_set_id))
  into v_result
  using v_chain, null::uuid[], 0, 1, v_enterprise;
  return v_result;
end
$$;

-- Enable a draft (admins, or the service): the previous set is retired and everyone rescored.
create or replace function public.quality_enable_rule_set(p_rule_set_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_enterprise uuid;
  v_status text;
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
  return public.quality_rescore(v_enterprise) || jsonb_build_object('rule_set_id', p_rule_set_id)
         || jsonb_build_object('snapshot', public.quality_snapshot(v_enterprise));
end
$$;

-- A new draft: a copy of the enabled set (admins edit it, dry-run it, enable it).
create or replace function public.quality_draft_rule_set(p_enterprise_id uuid, p_note text default null) returns jsonb
language plpgsql security definer set search_path = ''
as $$
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
$$;

-- The first rule set of an enterprise: the hotel defaults (shared/quality/rules.py), enabled.
create or replace function public.quality_ensure_rule_set(p_enterprise_id uuid, p_rules jsonb) returns jsonb
language plpgsql set search_path = ''
as $$
declare
  v_id uuid := app.quality_enabled_rule_set(p_enterprise_id);
begin
  if v_id is not null then
    return jsonb_build_object('id', v_id, 'created', false);
  end if;
  insert into public.quality_rule_sets (enterprise_id, version, status, note, enabled_at)
  values (p_enterprise_id, coalesce((select max(version) from public.quality_rule_sets where enterprise_id = p_enterprise_id), 0) + 1,
          'enabled', 'hotel defaults', now())
  returning id into v_id;
  insert into public.quality_rules (rule_set_id, enterprise_id, field, kind, params, severity, weight)
  select v_id, p_enterprise_id, r.field, r.kind, coalesce(r.params, '{}'::jsonb), r.severity, r.weight
  from jsonb_to_recordset(p_rules) as r(field text, kind text, params jsonb, severity text, weight integer);
  perform app.quality_freeze(v_id);
  return jsonb_build_object('id', v_id, 'created', true);
end
$$;

-- Guests whose facts are missing or older than their mirror row (the enrichment job's input).
create or replace function public.quality_facts_pending(p_chain_id uuid, p_limit integer default 1000) returns jsonb
language sql stable set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object(
    'guest_mews_id', g.mews_id, 'email', g.email, 'phone', g.phone,
    'nationality_code', g.nationality_code, 'synced_at', g.synced_at,
    'address_country', (select a.country_code from public.guest_addresses a
                         where a.chain_id = g.chain_id and a.guest_mews_id = g.mews_id and a.is_active limit 1))), '[]'::jsonb)
  from (select g.* from public.guests g
        left join public.guest_facts f on f.chain_id = g.chain_id and f.guest_mews_id = g.mews_id
        where g.chain_id = p_chain_id and (f.guest_mews_id is null or f.source_synced_at < g.synced_at)
        order by g.mews_id limit least(p_limit, 5000)) g
$$;

-- Facts: what Python normalised (e-mail, phone), plus what SQL derives set-based (address,
-- documents, stays, company, enriched nationality and language), with enrichment sources.
create or replace function public.quality_facts_put(p_chain_id uuid, p_rows jsonb) returns jsonb
language plpgsql set search_path = ''
as $$
declare
  v_ids uuid[];
  v_count integer;
begin
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
  v_ids := array(select (r->>'guest_mews_id')::uuid from jsonb_array_elements(p_rows) r);
  get diagnostics v_count = row_count;

  update public.guest_facts f set
    has_address = exists (select 1 from public.guest_addresses a where a.chain_id = f.chain_id
                          and a.guest_mews_id = f.guest_mews_id and a.is_active and nullif(btrim(a.line1), '') is not null),
    has_document = d.guest_mews_id is not null,
    document_country = d.issuing_country_code,
    enriched_nationality = case when g.nationality_code is null then d.issuing_country_code end,
    enriched_language = case when g.preferred_language_code is null then g.language_code end,
    stay_count = coalesce(s.stays, 0), nights = coalesce(s.nights, 0), first_stay = s.first_stay,
    last_stay = s.last_stay, company_id = s.company_id
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
  return jsonb_build_object('facts', cardinality(v_ids));
end
$$;

-- Enriched values an admin chose to push to Mews become pending local changes for push_changes.
create or replace function public.quality_queue_enriched_pushes(p_enterprise_id uuid) returns jsonb
language sql set search_path = ''
as $$
  with targets as (
    select e.chain_id, e.guest_mews_id, jsonb_object_agg(e.field, e.value) as changes
    from public.guest_enrichments e
    join public.enterprises ent on ent.id = p_enterprise_id and ent.chain_id = e.chain_id
    join public.enrichment_settings s on s.enterprise_id = p_enterprise_id and s.rule = e.rule
                                     and s.enabled and s.push_to_mews
    where e.field in ('nationality_code', 'preferred_language_code', 'email', 'phone')
      and e.queued_for_push_at is null
    group by 1, 2
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
  select jsonb_build_object('guests', (select count(*) from queued))
$$;

-- Duplicate suggestions for a chain: same normalised e-mail, same E.164 phone, or same name and
-- birth date. Evidence is kept; nothing is merged.
create or replace function public.quality_find_duplicates(p_chain_id uuid) returns jsonb
language plpgsql set search_path = ''
as $$
declare
  v_pairs integer;
begin
  -- rebuilt from scratch: a pair that no longer matches disappears
  delete from public.guest_duplicates where chain_id = p_chain_id;
  with keyed as (
    select g.mews_id, 'email' as match, f.email_normalized as value
      from public.guests g join public.guest_facts f on f.chain_id = g.chain_id and f.guest_mews_id = g.mews_id
     where g.chain_id = p_chain_id and g.is_active and f.email_normalized is not null and not g.has_ota_email
    union all
    select g.mews_id, 'phone', f.phone_e164
      from public.guests g join public.guest_facts f on f.chain_id = g.chain_id and f.guest_mews_id = g.mews_id
     where g.chain_id = p_chain_id and g.is_active and f.phone_e164 is not null
    union all
    select g.mews_id, 'name_and_birth_date', lower(btrim(g.first_name)) || ' ' || lower(btrim(g.last_name)) || ' ' || g.birth_date
      from public.guests g
     where g.chain_id = p_chain_id and g.is_active and g.birth_date is not null and g.first_name is not null
  ), groups as (
    select match, value, array_agg(mews_id order by mews_id) as ids from keyed group by match, value
    having count(*) between 2 and 20              -- a shared front-desk address is not a duplicate
  )
  insert into public.guest_duplicates (chain_id, guest_a, guest_b, evidence)
  select p_chain_id, a, b, jsonb_agg(jsonb_build_object('match', match, 'value', value) order by match)
  from groups, unnest(ids) a, unnest(ids) b where a < b group by a, b;
  get diagnostics v_pairs = row_count;
  return jsonb_build_object('pairs', v_pairs);
end
$$;

-- Views for the frontend (security_invoker: the reader's row-level security applies).
create or replace view public.quality_guest_gaps with (security_invoker = on) as
  select s.enterprise_id, s.chain_id, s.guest_mews_id, r.field, r.reason_kind as kind,
         r.message, r.cost, r.severity, null::jsonb as evidence
  from public.guest_scores s
  cross join lateral unnest(s.failed_rules) as f(rule_id)
  join public.quality_rules r on r.id = f.rule_id
  union all
  select s.enterprise_id, d.chain_id, s.guest_mews_id, 'profile', 'duplicate',
         'Possible duplicate of ' || case when d.guest_a = s.guest_mews_id then d.guest_b else d.guest_a end,
         0, 'info', d.evidence
  from public.guest_duplicates d
  join public.guest_scores s on s.chain_id = d.chain_id and s.guest_mews_id in (d.guest_a, d.guest_b);

create or replace view public.quality_field_gaps with (security_invoker = on) as
  select s.enterprise_id, r.field,
         count(*) filter (where r.reason_kind = 'missing') as missing,
         count(*) filter (where r.reason_kind in ('invalid', 'weak')) as invalid,
         (select count(*) from public.guest_scores t where t.enterprise_id = s.enterprise_id) as guests,
         round(count(*) filter (where r.reason_kind = 'missing')::numeric
               / nullif((select count(*) from public.guest_scores t where t.enterprise_id = s.enterprise_id), 0), 4) as missing_rate
  from public.guest_scores s
  cross join lateral unnest(s.failed_rules) as f(rule_id)
  join public.quality_rules r on r.id = f.rule_id
  group by s.enterprise_id, r.field;

create or replace view public.quality_worst_profiles with (security_invoker = on) as
  select w.enterprise_id, w.guest_mews_id, g.first_name, g.last_name, w.score,
         app.quality_reasons(w.failed_rules) as reasons, w.rank
  from (select s.enterprise_id, s.chain_id, s.guest_mews_id, s.score, s.failed_rules,
               row_number() over (partition by s.enterprise_id order by s.score, s.guest_mews_id) as rank
        from public.guest_scores s) w
  join public.guests g on g.chain_id = w.chain_id and g.mews_id = w.guest_mews_id
  where w.rank <= 100;

create or replace function public.quality_arrivals_at_risk(p_days integer default 7, p_threshold integer default 60)
returns table (enterprise_id uuid, reservation_id uuid, guest_mews_id uuid, first_name text, last_name text,
               arrival timestamptz, state text, score smallint, reasons jsonb)
language sql stable security invoker set search_path = ''
as $$
  select r.enterprise_id, r.mews_id, r.account_id, g.first_name, g.last_name, r.scheduled_start_utc,
         r.state, s.score, app.quality_reasons(s.failed_rules)
  from public.reservations r
  join public.guest_scores s on s.enterprise_id = r.enterprise_id and s.guest_mews_id = r.account_id
  join public.guests g on g.chain_id = s.chain_id and g.mews_id = s.guest_mews_id
  where r.scheduled_start_utc >= now() and r.scheduled_start_utc < now() + make_interval(days => p_days)
    and r.state in ('Confirmed', 'Optional', 'Requested', 'Inquired')
    and s.score < p_threshold
  order by r.scheduled_start_utc, s.score
$$;

grant select on public.quality_guest_gaps, public.quality_field_gaps, public.quality_worst_profiles
  to authenticated, service_role;
revoke all on function public.quality_arrivals_at_risk(integer, integer) from public, anon;
grant execute on function public.quality_arrivals_at_risk(integer, integer) to authenticated, service_role;

revoke all on function public.quality_rescore(uuid, jsonb, integer, integer), public.quality_snapshot(uuid),
  public.quality_ensure_rule_set(uuid, jsonb), public.quality_facts_pending(uuid, integer),
  public.quality_facts_put(uuid, jsonb), public.quality_queue_enriched_pushes(uuid),
  public.quality_find_duplicates(uuid) from public, anon, authenticated;
grant execute on function public.quality_rescore(uuid, jsonb, integer, integer), public.quality_snapshot(uuid),
  public.quality_ensure_rule_set(uuid, jsonb), public.quality_facts_pending(uuid, integer),
  public.quality_facts_put(uuid, jsonb), public.quality_queue_enriched_pushes(uuid),
  public.quality_find_duplicates(uuid) to service_role;
-- admins call these through PostgREST; each checks the caller is an admin of the enterprise
revoke all on function public.quality_dry_run(uuid), public.quality_enable_rule_set(uuid),
  public.quality_draft_rule_set(uuid, text) from public, anon;
grant execute on function public.quality_dry_run(uuid), public.quality_enable_rule_set(uuid),
  public.quality_draft_rule_set(uuid, text) to authenticated, service_role;

-- the scoring building blocks run with the caller's rights (service_role)
grant select on app.quality_profile to service_role;
grant execute on function app.quality_reasons(bigint[]) to authenticated, service_role;
revoke all on function app.quality_field_sql(text, uuid), app.quality_present_sql(text, uuid),
  app.quality_compiled_rules(uuid), app.quality_score_select(uuid), app.quality_enabled_rule_set(uuid)
  from public;
grant execute on function app.quality_field_sql(text, uuid), app.quality_present_sql(text, uuid),
  app.quality_compiled_rules(uuid), app.quality_score_select(uuid), app.quality_enabled_rule_set(uuid)
  to service_role;
