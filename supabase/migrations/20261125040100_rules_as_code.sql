-- Rules as code (`guesthub rules`): a rule set read and written as one list, through the same
-- checks and the same row-level security as the frontend.
--
-- Every function here is SECURITY INVOKER: the caller's row-level security, column grants and
-- the validation trigger on quality_rules apply exactly as they do to a frontend writing the
-- table. An admin replaces the rules of their own enterprise's drafts only; staff read.

-- What is wrong with one rule entry ({field, kind, params, severity, weight}), or null.
-- shared/quality/rules_file.py entry_problem says the same, word for word (a test holds them
-- together); the parameters themselves are judged by app.quality_rule_problem.
create or replace function app.quality_rule_entry_problem(p_rule jsonb) returns text
language plpgsql immutable set search_path = ''
as $$
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
$$;

-- Replace every rule of a draft with p_rules (a list of entries, kept in their order). All or
-- nothing: the first bad entry is refused by its position and its words, and nothing changes.
-- Row-level security decides who may: when the caller's delete could not remove every rule of
-- the draft (staff, another enterprise's admin), the replacement is refused.
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

-- The versions of an enterprise's rules, newest first, with their rule counts (the caller's
-- row-level security applies: staff read their enterprises').
create or replace function public.quality_rule_sets_list(p_enterprise_id uuid) returns jsonb
language sql stable security invoker set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object(
           'id', s.id, 'enterprise_id', s.enterprise_id, 'version', s.version, 'status', s.status,
           'note', s.note, 'created_at', s.created_at, 'enabled_at', s.enabled_at,
           'created_by', u.email,
           'rules', (select count(*) from public.quality_rules r where r.rule_set_id = s.id))
         order by s.version desc), '[]'::jsonb)
  from public.quality_rule_sets s
  left join public.app_users u on u.id = s.created_by
  where s.enterprise_id = p_enterprise_id
$$;

-- One rule set with its rules as written (not their frozen costs), in their order; null when
-- the set does not exist or is not the caller's to read.
create or replace function public.quality_rules_of(p_rule_set_id uuid) returns jsonb
language sql stable security invoker set search_path = ''
as $$
  select jsonb_build_object(
           'id', s.id, 'enterprise_id', s.enterprise_id, 'version', s.version, 'status', s.status,
           'note', s.note, 'created_at', s.created_at, 'enabled_at', s.enabled_at,
           'rules', coalesce((select jsonb_agg(jsonb_build_object('field', r.field, 'kind', r.kind,
                                                                  'params', r.params, 'severity', r.severity,
                                                                  'weight', r.weight) order by r.id)
                              from public.quality_rules r where r.rule_set_id = s.id), '[]'::jsonb))
  from public.quality_rule_sets s
  where s.id = p_rule_set_id
$$;

revoke all on function app.quality_rule_entry_problem(jsonb), public.quality_rules_replace(uuid, jsonb),
  public.quality_rule_sets_list(uuid), public.quality_rules_of(uuid)
  from public, anon, authenticated, service_role;
grant execute on function app.quality_rule_entry_problem(jsonb), public.quality_rules_replace(uuid, jsonb),
  public.quality_rule_sets_list(uuid), public.quality_rules_of(uuid)
  to authenticated, service_role;
