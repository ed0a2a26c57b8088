-- Finished runs are kept for a retention, as inbox rows are (the real-time worker records a run
-- per connection every few minutes: 288 a day each, for ever until now). The newest run of each
-- job, scope and connection is kept whatever its age: the health views read the last one.

create function public.runs_purge(p_retention_days integer, p_batch integer default 10000)
returns jsonb
language plpgsql set search_path = ''
as $$
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
$$;

revoke all on function public.runs_purge(integer, integer) from public, anon, authenticated;
grant execute on function public.runs_purge(integer, integer) to service_role;
