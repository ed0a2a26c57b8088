-- The health of one enterprise reads its runs of no scope (the jobs of its connections) through
-- app.sync_last_unscoped_runs (20261206050100, health of the caller's hotels); the runs of a
-- scope come from app.sync_last_runs, which says of a run still `running` when it last
-- heartbeat and whether its process is gone (20261206030000, dead holders seen at once). Both
-- now say it, so a dead `running` run of no scope needs attention too.
create or replace function app.sync_last_unscoped_runs(p_connection_ids uuid[], p_with_errors boolean) returns jsonb
language sql stable set search_path = ''
as $$
  with recursive jobs (job) as (
    (select r.job from public.sync_runs r order by r.job limit 1)
    union all
    select (select r.job from public.sync_runs r where r.job > j.job order by r.job limit 1)
    from jobs j where j.job is not null
  )
  select coalesce(jsonb_agg(jsonb_build_object(
           'job', l.job, 'status', l.status, 'started_at', l.started_at, 'finished_at', l.finished_at,
           'scope_id', null, 'error', case when p_with_errors then l.error end)
           || case when l.status = 'running' then jsonb_build_object(
                'heartbeat_at', l.heartbeat_at,
                'gone', l.session_id is not null and not app.session_alive(l.session_id),
                'owner', case when p_with_errors then l.owner end) else '{}'::jsonb end
           order by l.job), '[]'::jsonb)
  from jobs j
  cross join lateral (
    select r.job, r.status, r.started_at, r.finished_at, r.error, r.heartbeat_at, r.session_id, r.owner
    from public.sync_runs r
    where r.job = j.job and r.scope_id is null
      and (p_connection_ids is null or r.connection_id is null or r.connection_id = any (p_connection_ids))
    order by r.started_at desc
    limit 1) l
  where j.job is not null
$$;
