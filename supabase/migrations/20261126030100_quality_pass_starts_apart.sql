-- The call of quality_rescore_pass that starts a pass returns once the lanes are laid out,
-- without scoring one: it holds the state row of the enterprise (FOR UPDATE) until it commits, so
-- a lane scored in it kept every other caller waiting that long. Callers loop until 'done' as
-- before; the first lane is now scored side by side with the others (a full pass at a million
-- guests on two callers: one lane's time less, about a second).

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
$$;
