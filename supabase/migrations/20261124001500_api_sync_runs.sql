-- Database API for recording runs and quarantining records.

create or replace function public.run_start(p_job text, p_scope_id uuid default null)
returns jsonb
language sql set search_path = ''
as $$
  insert into public.sync_runs (job, scope_id) values (p_job, p_scope_id)
  returning jsonb_build_object('id', id, 'started_at', started_at)
$$;

-- An honest outcome: 'succeeded', 'partial' (some records quarantined or retried later),
-- 'rate_limited' or 'failed'. A run is finished once; finishing it again is an error.
create or replace function public.run_finish(
  p_id uuid, p_status text, p_counts jsonb default '{}'::jsonb, p_error text default null
) returns jsonb
language plpgsql set search_path = ''
as $$
declare
  v_row public.sync_runs;
begin
  if p_status not in ('succeeded', 'partial', 'rate_limited', 'failed') then
    raise exception 'not a final run status: %', p_status using errcode = '22023';
  end if;
  update public.sync_runs
     set status = p_status, counts = coalesce(p_counts, '{}'::jsonb), error = p_error,
         finished_at = now()
   where id = p_id and status = 'running'
  returning * into v_row;
  if not found then
    raise exception 'run % is not running', p_id using errcode = '22023';
  end if;
  return jsonb_build_object('id', v_row.id, 'status', v_row.status,
    'seconds', extract(epoch from v_row.finished_at - v_row.started_at));
end
$$;

-- Records that failed to parse or map: kept with the reason, never dropped.
-- p_items: [{"entity", "scope_id", "mews_id", "reason", "raw" | "raw_text"}]
create or replace function public.quarantine_add(p_items jsonb, p_run_id uuid default null)
returns jsonb
language sql set search_path = ''
as $$
  with written as (
    insert into public.quarantine (entity, scope_id, mews_id, reason, raw, raw_text, run_id)
    select i.entity, i.scope_id, i.mews_id, i.reason, i.raw, i.raw_text, p_run_id
    from jsonb_to_recordset(p_items)
      as i(entity text, scope_id uuid, mews_id text, reason text, raw jsonb, raw_text text)
    returning 1
  )
  select jsonb_build_object('quarantined', count(*)) from written
$$;

revoke all on function public.run_start(text, uuid), public.run_finish(uuid, text, jsonb, text),
  public.quarantine_add(jsonb, uuid) from public, anon, authenticated;
grant execute on function public.run_start(text, uuid), public.run_finish(uuid, text, jsonb, text),
  public.quarantine_add(jsonb, uuid) to service_role;
