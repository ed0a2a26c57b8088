-- The one-call rescore of a whole enterprise (public.quality_rescore without ids, for direct
-- connections) leaves the statistics of the scores it wrote current, as the call that finishes a
-- full pass does: the next query of guest_scores is planned for the table as it is, whatever
-- autovacuum does. (Through public.analyze_tables: the function runs as its caller, the service.)

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
  -- the statistics of what it wrote, when that was a large share (a part of several counts its
  -- own share)
  if v_changed > 0 then
    perform public.analyze_tables(jsonb_build_object('guest_scores', v_changed));
  end if;
  return jsonb_build_object('scored', v_scored, 'changed', v_changed);
end
$$;
