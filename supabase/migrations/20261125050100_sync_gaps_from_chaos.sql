-- Two gaps the chaos suite found.
--
-- 1. A run marked abandoned kept its leases until they expired (up to LEASE_SECONDS), so the
--    next invocation skipped a unit nobody was working on. Reaping a run now frees its leases.
-- 2. The identity-document sweep (first load, reconcile) read the documents of active guests
--    only, so the documents of deleted or merged-away guests, whose rows are mirrored, were
--    never loaded. The sweep now covers every mirrored guest.

create or replace function public.runs_reap(p_stale_seconds integer default 90, p_by text default null)
returns jsonb
language sql set search_path = ''
as $$
  with reaped as (
    update public.sync_runs
       set status = 'abandoned', finished_at = now(), abandoned_by = p_by,
           error = format('abandoned: no heartbeat since %s (process %s)',
                          to_char(heartbeat_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                          coalesce(owner, 'unknown'))
     where status = 'running' and heartbeat_at < now() - make_interval(secs => greatest(p_stale_seconds, 1))
    returning id, job
  ), freed as (
    delete from public.sync_leases l using reaped r where l.holder = r.id::text
    returning 1
  )
  select jsonb_build_object('abandoned', (select count(*) from reaped),
                            'jobs', coalesce((select jsonb_agg(job) from reaped), '[]'::jsonb),
                            'leases_freed', (select count(*) from freed))
$$;

create or replace function public.guest_ids_page(p_chain_id uuid, p_after uuid default null, p_limit integer default 1000)
returns jsonb
language sql stable set search_path = ''
as $$
  select coalesce(jsonb_agg(mews_id order by mews_id), '[]'::jsonb)
  from (select mews_id from public.guests
         where chain_id = p_chain_id and (p_after is null or mews_id > p_after)
         order by mews_id limit least(p_limit, 1000)) g
$$;
