-- The duplicate threshold is a rule like the others (issue: "an admin sets the threshold per
-- enterprise (rules as code, like the other rules)"): a rule set may carry one
-- (`duplicates: {threshold: 0.92}` in a rules file), set on its draft by an admin of the
-- enterprise, and it becomes the enterprise's threshold (public.duplicate_settings) when the
-- set is enabled. A set without one leaves the enterprise's threshold as it is.

alter table public.quality_rule_sets
  add column duplicate_threshold real
    check (duplicate_threshold >= 0.5 and duplicate_threshold < 1);

create function public.quality_rule_set_duplicate_threshold(p_rule_set_id uuid, p_threshold double precision)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
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
$$;

-- Enabled: the set's threshold becomes the enterprise's.
create function app.quality_rule_set_enabled_threshold() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.status = 'enabled' and old.status is distinct from 'enabled'
     and new.duplicate_threshold is not null then
    insert into public.duplicate_settings (enterprise_id, threshold)
    values (new.enterprise_id, new.duplicate_threshold)
    on conflict (enterprise_id) do update set threshold = excluded.threshold, updated_at = now();
  end if;
  return new;
end
$$;

create trigger quality_rule_sets_enabled_threshold after update of status on public.quality_rule_sets
  for each row execute function app.quality_rule_set_enabled_threshold();

-- A set's rules, and its duplicate threshold: the enabled set's is the enterprise's threshold
-- in force (an admin may have changed duplicate_settings since).
create or replace function public.quality_rules_of(p_rule_set_id uuid) returns jsonb
language sql stable set search_path = ''
as $$
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
$$;

revoke all on function public.quality_rule_set_duplicate_threshold(uuid, double precision),
  app.quality_rule_set_enabled_threshold() from public, anon, authenticated, service_role;
grant execute on function public.quality_rule_set_duplicate_threshold(uuid, double precision)
  to authenticated, service_role;
