-- One admin's rule set must not stall scoring for every hotel. Each rule was checked on its own;
-- nothing bounded a set as a whole (300 distinct patterns, each accepted, cost 0.9 s of database
-- time per guest: PostgreSQL keeps only 32 compiled expressions per connection). Now:
--
-- * a set is measured as a whole (app.quality_rule_set_problem): how many rules, how many
--   distinct patterns, the sum of their sizes (app.quality_pattern_size: an estimate of the
--   compiled automaton), and its cost in units measured by bench/rule_cost.py. Every write of a
--   rule is refused when its set would exceed a bound (the trigger on quality_rules), and so is
--   enabling a set that exceeds one (a set saved before these bounds). The message names the
--   bound and its limit. shared/quality/cost.py computes the same, word for word.
-- * the score job scores each enterprise in its own unit: a failure is recorded on the
--   enterprise's state (failures, the error, when to try again) and the others are scored; an
--   enterprise that keeps failing is tried again after 15 minutes, then 30, 60, ... up to a day.
--   Enabling a rule set or changing enrichment settings (app.quality_state_bump) tries it at
--   the next run.

-- -- the size of an (accepted) pattern ----------------------------------------------------------

create or replace function app.quality_pattern_size(p_pattern text) returns integer
language plpgsql immutable set search_path = ''
as $$
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
$$;

-- -- the bounds of a set ----------------------------------------------------------------------

-- Which bound a set of rules ([{field, kind, params}]) exceeds, or null.
create or replace function app.quality_rule_set_problem(p_rules jsonb) returns text
language sql immutable set search_path = ''
as $$
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
$$;

-- The rules of a stored set, as app.quality_rule_set_problem reads them; one left out (p_without).
create or replace function app.quality_rule_set_entries(p_rule_set_id uuid, p_without bigint default null)
returns jsonb
language sql stable set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object('field', r.field, 'kind', r.kind, 'params', r.params)), '[]'::jsonb)
  from public.quality_rules r
  where r.rule_set_id = p_rule_set_id and r.id is distinct from p_without
$$;

-- Every written rule is validated, and so is its set with it when an API role writes (the rules
-- written earlier by the same statement included: a row trigger sees them).
create or replace function app.quality_rule_check() returns trigger
language plpgsql set search_path = ''
as $$
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
$$;

-- Replacing a draft's rules with more than a set may hold is refused before any entry is checked
-- (otherwise a list of thousands is parsed pattern by pattern first).
create or replace function public.quality_rules_replace(p_rule_set_id uuid, p_rules jsonb) returns jsonb
language plpgsql security invoker set search_path = ''
as $$
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
$$;

-- Enabling a set that exceeds a bound (saved before the bounds existed) is refused.
create or replace function app.quality_rule_set_enable_check() returns trigger
language plpgsql security definer set search_path = ''
as $$
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
$$;

create trigger quality_rule_sets_enable_check before update of status on public.quality_rule_sets
  for each row execute function app.quality_rule_set_enable_check();

-- -- each enterprise scored in its own unit, backing off when it keeps failing ----------------

alter table public.quality_score_state
  add column failures integer not null default 0,
  add column failed_at timestamptz,
  add column last_failure text check (char_length(last_failure) <= 500),
  add column retry_at timestamptz;
comment on column public.quality_score_state.retry_at is
  'the score job leaves the enterprise alone until then (it failed `failures` times in a row)';

-- A unit of the score job failed for an enterprise: recorded, and the next try put off.
create or replace function public.quality_unit_failed(p_enterprise_id uuid, p_error text) returns jsonb
language plpgsql set search_path = ''
as $$
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
$$;

-- A unit of the score job succeeded: the enterprise's failures are forgotten.
create or replace function public.quality_unit_succeeded(p_enterprise_id uuid) returns void
language sql set search_path = ''
as $$
  update public.quality_score_state
     set failures = 0, retry_at = null
   where enterprise_id = p_enterprise_id and (failures > 0 or retry_at is not null)
$$;

-- What a score means changed: a full pass is due, and an enterprise backing off is tried at once.
create or replace function app.quality_state_bump(p_enterprise_id uuid) returns void
language sql set search_path = ''
as $$
  insert into public.quality_score_state as s (enterprise_id, version) values (p_enterprise_id, 1)
  on conflict (enterprise_id) do update set version = s.version + 1, retry_at = null
$$;

-- What the score job iterates over: each enterprise, and when it may be tried again.
create or replace function public.quality_enterprises() returns jsonb
language sql stable set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object('id', e.id, 'chain_id', e.chain_id, 'name', e.name,
                                               'failures', coalesce(s.failures, 0),
                                               'retry_at', s.retry_at,
                                               'backing_off', coalesce(s.retry_at > now(), false),
                                               'last_failure', s.last_failure)
                            order by e.name), '[]'::jsonb)
  from public.enterprises e
  left join public.quality_score_state s on s.enterprise_id = e.id
$$;

revoke all on function app.quality_pattern_size(text), app.quality_rule_set_problem(jsonb),
  app.quality_rule_set_entries(uuid, bigint), app.quality_rule_set_enable_check(),
  public.quality_unit_failed(uuid, text), public.quality_unit_succeeded(uuid)
  from public, anon, authenticated, service_role;
-- the rules trigger runs as the writer (an admin, or the service)
grant execute on function app.quality_pattern_size(text), app.quality_rule_set_problem(jsonb),
  app.quality_rule_set_entries(uuid, bigint)
  to authenticated, service_role;
grant execute on function public.quality_unit_failed(uuid, text), public.quality_unit_succeeded(uuid)
  to service_role;
