-- Scoring in calls that each fit Supabase's statement timeouts (8 s for authenticated and, through
-- the REST API, service_role), at a million guests and beyond.
--
-- * The scoring query (app.quality_score_select) scores a slice of an enterprise's guests: the
--   given ids, or a range of ids (guests and facts are both read for that range only). Costs
--   are whole numbers of ten-thousandths, so a score is integer arithmetic (the same rounding as
--   numeric: half up); whether a field is present is computed once per guest, the date bounds
--   of date_range rules once per query. It also says when a score will change by the calendar
--   alone (flips_on: a birthday crossing a date_range bound), so a scheduled run rescores those
--   guests only.
-- * app.quality_score_write writes one slice: new and changed scores only, history for a score
--   that moved under the same rule set.
-- * A full rescore (a rule set enabled, enrichment settings changed, the first scoring) is a
--   pass over lanes, ranges of the id space sized so that each is one call:
--   public.quality_rescore_pass scores one lane no other caller holds (FOR UPDATE SKIP LOCKED,
--   so callers run side by side) and returns the progress; public.quality_score_state and
--   quality_score_lanes show it to staff.
-- * public.quality_enable_rule_set and public.quality_dry_run take a limit: a frontend (or the
--   CLI) enables a set and drives or leaves the pass to the scheduled job; a dry run pages with
--   running totals. Without a limit both do everything in one call, as before (a direct
--   connection has 2 minutes).

-- -- scores say when the calendar alone changes them ------------------------------------------

alter table public.guest_scores add column flips_on date;
comment on column public.guest_scores.flips_on is
  'the next day a date_range verdict of this score changes by the calendar alone (null: never)';
create index guest_scores_flips_idx on public.guest_scores (enterprise_id, flips_on)
  where flips_on is not null;
-- A full pass rewrites every score of a page in one transaction: the new versions stay on the
-- page (HOT, no index entries) only when half of it is free.
alter table public.guest_scores set (fillfactor = 45);

-- -- state of scoring per enterprise, and the lanes of a full pass ----------------------------

create table public.quality_score_state (
  enterprise_id uuid primary key references public.enterprises (id) on delete cascade,
  version bigint not null default 1,           -- bumped when what a score means changes
  scored_version bigint not null default 0,    -- the version every score reflects (a pass finished)
  pass_version bigint,                         -- the version of the pass in progress (or last)
  pass_rule_set_id uuid,
  pass_guests bigint,                          -- active guests when the pass started
  pass_started_at timestamptz,
  pass_finished_at timestamptz,
  snapshot_at timestamptz,                     -- quality_daily was last computed
  snapshot_change bigint                       -- app.quality_score_changes then
);

create table public.quality_score_lanes (
  enterprise_id uuid not null references public.quality_score_state (enterprise_id) on delete cascade,
  lane integer not null,
  from_id uuid,                                -- the lane: guest ids from here (null: the first) ...
  to_id uuid,                                  -- ... to before here (null: to the last)
  done boolean not null default false,
  scored bigint not null default 0,
  changed bigint not null default 0,
  primary key (enterprise_id, lane)
);

-- Counts writes of changed scores (any enterprise), without a lock: a snapshot taken after the
-- last change is not taken again. Read through app.quality_score_changes_seen (no API role may
-- use a sequence).
create sequence app.quality_score_changes;

create or replace function app.quality_score_changes_seen() returns bigint
language sql stable security definer set search_path = ''
as $$ select last_value from app.quality_score_changes $$;

alter table public.quality_score_state enable row level security;
alter table public.quality_score_lanes enable row level security;
revoke all on public.quality_score_state, public.quality_score_lanes from public, anon, authenticated, service_role;
revoke all on sequence app.quality_score_changes from public, anon, authenticated, service_role;
grant select, insert, update, delete on public.quality_score_state, public.quality_score_lanes to service_role;
grant select on public.quality_score_state, public.quality_score_lanes to authenticated;
create policy quality_score_state_read on public.quality_score_state for select to authenticated
  using (enterprise_id = any ((select app.readable_enterprise_ids())::uuid[]));
create policy quality_score_lanes_read on public.quality_score_lanes for select to authenticated
  using (enterprise_id = any ((select app.readable_enterprise_ids())::uuid[]));

-- The state row of an enterprise (created on first use).
create or replace function app.quality_state(p_enterprise_id uuid) returns public.quality_score_state
language plpgsql set search_path = ''
as $$
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
$$;

-- What a score means changed (a rule set enabled, enrichment settings): a full pass is due.
create or replace function app.quality_state_bump(p_enterprise_id uuid) returns void
language sql set search_path = ''
as $$
  insert into public.quality_score_state as s (enterprise_id, version) values (p_enterprise_id, 1)
  on conflict (enterprise_id) do update set version = s.version + 1
$$;

-- -- the scoring query ------------------------------------------------------------------------

-- The SELECT that scores a slice of an enterprise's active guests with a rule set.
-- Parameters when executed: $1 chain id, $2 guest ids (uuid[], or null: a range), $3 ids from
-- this one, $4 ids before this one (each null: unbounded). The profile is app.quality_profile's,
-- with the slice's bounds on both tables (the planner does not carry a range across a join).
-- Three levels, each computed once per guest: whether each field is present, each rule's
-- verdict, then the score and its reasons.
create or replace function app.quality_score_select(p_rule_set_id uuid) returns text
language plpgsql stable set search_path = ''
as $$
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
$$;

-- cached queries were compiled for the old parameters: compiled again on first use
delete from app.quality_compiled;

-- Score one slice of an enterprise's guests with its enabled rule set and write what changed:
-- new and changed scores (a changed score under the same rule set also goes to the history).
-- The slice: the given ids, or the ids in [p_from, p_to) (null: unbounded).
create or replace function app.quality_score_write(
  p_enterprise_id uuid, p_ids uuid[], p_from uuid, p_to uuid, out scored integer, out changed integer
)
language plpgsql security definer set search_path = ''
set jit = off set work_mem = '64MB' set plan_cache_mode = force_generic_plan
as $$
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
$$;

-- The first id of lane k of n (ranges of equal width over the id space; null for the first).
create or replace function app.quality_lane_start(p_lane integer, p_lanes integer) returns uuid
language sql immutable set search_path = ''
as $$
  select case when p_lane > 0 and p_lane < p_lanes
              then (lpad(to_hex((p_lane::bigint << 32) / p_lanes), 8, '0') || '-0000-0000-0000-000000000000')::uuid end
$$;

-- Where a full pass stands (what quality_rescore_pass returns, without this call's figures).
create or replace function app.quality_pass_progress(p_enterprise_id uuid) returns jsonb
language sql stable set search_path = ''
as $$
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
$$;

-- One call of the enterprise's full pass (started here when one is due): the guests of one lane
-- no other caller holds. A pass has as many lanes as it takes for each to hold about p_limit
-- guests (the limit of the call that starts it). Callers loop until 'done' (the call that finds
-- every lane done finishes the pass and takes the day's snapshot); several may run side by side
-- ('busy': every unfinished lane is held by another caller). Admins of the enterprise (the
-- frontend, after enabling a rule set) and the service.
create or replace function public.quality_rescore_pass(p_enterprise_id uuid, p_limit integer default 100000)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
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
$$;

-- Rescore guests of an enterprise with its enabled rule set: the given ids, or all of them
-- (optionally one of p_parts ranges of the id space, so several connections can share the work),
-- in slices of about 100,000 guests. Writes only what changed. For direct connections: over the
-- REST API a large enterprise is rescored by quality_rescore_pass, one lane per call.
create or replace function public.quality_rescore(
  p_enterprise_id uuid, p_guest_ids jsonb default null, p_part integer default 0, p_parts integer default 1
) returns jsonb
language plpgsql set search_path = ''
as $$
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
  return jsonb_build_object('scored', v_scored, 'changed', v_changed);
end
$$;

-- The guests whose score changes today by the calendar alone (date_range rules): at most
-- p_limit per call, until none is left.
create or replace function public.quality_rescore_due(p_enterprise_id uuid, p_limit integer default 5000)
returns jsonb
language plpgsql set search_path = ''
as $$
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
$$;

-- -- dry runs page; enabling leaves the pass to its caller -------------------------------------

-- What enabling a rule set would do, without writing anything. With p_limit, one page of about
-- that many guests per call: the first call (p_page null) says how many pages there are, each
-- answer has the figures so far, 'totals' to pass back as p_totals and 'next' (the page to ask
-- for next; null when finished). Without p_limit, everyone in one call.
drop function public.quality_dry_run(uuid);
create or replace function public.quality_dry_run(
  p_rule_set_id uuid, p_page integer default null, p_limit integer default null, p_totals jsonb default null
) returns jsonb
language plpgsql security definer set search_path = ''
set jit = off set work_mem = '64MB'
as $$
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
$$;

-- Enable a draft (admins, or the service): the previous set is retired and a full pass is due.
-- The pass runs here until about p_rescore_limit guests are scored (null: everyone, in this call;
-- 0: none);
-- the rest by quality_rescore_pass (the caller's loop, or the scheduled score job). 'done' says
-- whether everyone is scored; the day's snapshot is taken when they are.
drop function public.quality_enable_rule_set(uuid);
create or replace function public.quality_enable_rule_set(p_rule_set_id uuid, p_rescore_limit integer default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
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
$$;

-- The first rule set of an enterprise (the service, with the hotel defaults), enabled; its
-- first full pass is due.
create or replace function public.quality_ensure_rule_set(p_enterprise_id uuid, p_rules jsonb) returns jsonb
language plpgsql security definer set search_path = ''
as $$
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
$$;

-- Enrichment settings change what a field means to the scorer: drop cached queries; a full pass
-- is due.
create or replace function app.quality_settings_changed() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  delete from app.quality_compiled c
   using public.quality_rule_sets s
   where s.id = c.rule_set_id and s.enterprise_id = coalesce(new.enterprise_id, old.enterprise_id);
  perform app.quality_state_bump(coalesce(new.enterprise_id, old.enterprise_id));
  return null;
end
$$;

-- Today's distribution, for the trend over time; not computed again while no score changed.
create or replace function public.quality_snapshot(p_enterprise_id uuid) returns jsonb
language plpgsql set search_path = ''
as $$
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
$$;

-- -- privileges --------------------------------------------------------------------------------

revoke all on function app.quality_state(uuid), app.quality_state_bump(uuid), app.quality_score_changes_seen(),
  app.quality_score_write(uuid, uuid[], uuid, uuid), app.quality_lane_start(integer, integer),
  app.quality_pass_progress(uuid),
  public.quality_rescore_pass(uuid, integer), public.quality_rescore_due(uuid, integer),
  public.quality_dry_run(uuid, integer, integer, jsonb), public.quality_enable_rule_set(uuid, integer)
  from public, anon, authenticated, service_role;
-- quality_rescore, quality_rescore_due and quality_snapshot run as the service (invoker)
grant execute on function app.quality_state(uuid), app.quality_score_write(uuid, uuid[], uuid, uuid),
  app.quality_score_changes_seen(),
  app.quality_lane_start(integer, integer)
  to service_role;
grant execute on function public.quality_rescore_due(uuid, integer) to service_role;
-- admins drive a pass, dry-run and enable through the REST API; each checks app.quality_may_admin
grant execute on function public.quality_rescore_pass(uuid, integer),
  public.quality_dry_run(uuid, integer, integer, jsonb), public.quality_enable_rule_set(uuid, integer)
  to authenticated, service_role;
