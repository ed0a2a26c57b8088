-- Partial is not success, in the health views too (noticed after 20261206040100): a last run
-- that left work for later needs attention ('partial_run', beside 'failed_run'), and a
-- connection's last_poll_at is its last poll that polled everything (a partial poll is in
-- jobs.poll_changes.last_status, not here).

create or replace function app.sync_attention(p_status jsonb) returns jsonb
language sql stable set search_path = ''
as $$
  select coalesce(jsonb_agg(a.item order by a.n, a.item->>'message'), '[]'::jsonb)
  from (
    select 1 as n, jsonb_build_object('check', 'dead_letters', 'message',
             (p_status->'inbox'->>'dead') || ' dead letter(s) in the inbox (guesthub events replay)') as item
     where (p_status->'inbox'->>'dead')::bigint > 0
    union all
    select 2, jsonb_build_object('check', 'token_unauthorized', 'message',
             'Mews refuses an access token (401) since '
             || to_char((t->>'unauthorized_since')::timestamptz at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')
             || ': its jobs are paused')
      from jsonb_array_elements(coalesce(p_status->'tokens', '[]'::jsonb)) t
     where t->>'unauthorized_since' is not null and not coalesce((t->>'superseded')::boolean, false)
    union all
    select 3, jsonb_build_object('check', 'failed_run', 'message',
             'the last ' || (r->>'job') || ' run ' || (r->>'status'))
      from jsonb_array_elements(coalesce(p_status->'runs', '[]'::jsonb)) r
     where r->>'status' in ('failed', 'abandoned')
    union all
    select 3, jsonb_build_object('check', 'partial_run', 'message',
             'the last ' || (r->>'job') || ' run was partial: it left work for the next run'
             || ' (guesthub status names what)')
      from jsonb_array_elements(coalesce(p_status->'runs', '[]'::jsonb)) r
     where r->>'status' = 'partial'
    union all
    select 4, jsonb_build_object('check', 'lag', 'message',
             round((p_status->'poll'->>'lag_seconds')::numeric / 60) || ' min behind Mews (newest poll high-water mark; more than 30 min)')
     where (p_status->'poll'->>'lag_seconds')::numeric > 1800
    union all
    select 5, jsonb_build_object('check', 'inbox_waiting', 'message',
             'the oldest inbox event has waited ' || round((p_status->'inbox'->>'oldest_waiting_seconds')::numeric / 60)
             || ' min (more than 15 min)')
     where (p_status->'inbox'->>'oldest_waiting_seconds')::numeric > 900
    union all
    select 6, jsonb_build_object('check', 'first_load', 'message',
             'the first load of ' || (f->>'entity') || ' has not completed (begun '
             || to_char((f->>'updated_at')::timestamptz at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')
             || ', ' || (f->>'windows_done') || ' window(s) done): the data is incomplete'
             || ' (guesthub sync backfill)')
      from jsonb_array_elements(app.sync_first_loads_open((p_status->>'id')::uuid,
                                                          (p_status->>'chain_id')::uuid)) f
    union all
    select 7, jsonb_build_object('check', 'dead_run', 'message',
             'the last ' || (r->>'job') || ' run is still recorded running but '
             || case when (r->>'gone')::boolean then 'its process is gone'
                     else 'has not heartbeat since '
                          || to_char((r->>'heartbeat_at')::timestamptz at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"') end
             || coalesce(' (' || (r->>'owner') || ')', '') || ': the next job marks it abandoned')
      from jsonb_array_elements(coalesce(p_status->'runs', '[]'::jsonb)) r
     where r->>'status' = 'running'
       and ((r->>'gone')::boolean or (r->>'heartbeat_at')::timestamptz < now() - interval '5 minutes')
  ) a
$$;

create or replace function public.connections_health(p_integration_id uuid default null) returns jsonb
language sql stable security definer set search_path = ''
as $$
  with caller as (select app.caller_is_trusted() as trusted,
                         (select app.readable_enterprise_ids())::uuid[] as readable,
                         (select app.readable_chain_ids())::uuid[] as readable_chains)
  select coalesce(jsonb_agg(h.health order by h.name nulls last, h.id), '[]'::jsonb)
  from (
    select c.integration_id as id, v.name, jsonb_build_object(
      'integration_id', c.integration_id,
      'name', v.name,
      'source', c.source,
      'status', case
        when c.status <> 'active' then c.status
        when c.access_token_encrypted is null and c.source <> 'environment' then 'no_token'
        when s.unauthorized_at is not null then 'unauthorized'
        else 'active' end,
      'enterprise_ids', to_jsonb(v.enterprise_ids),
      'chain_ids', to_jsonb(v.chain_ids),
      'is_portfolio', c.is_portfolio,
      'discovered_at', c.discovered_at,
      'last_poll_at', (select max(r.finished_at) from public.sync_runs r
                        where r.connection_id = c.integration_id and r.job = 'poll_changes'
                          and r.status = 'succeeded'),
      'lag_seconds', (select floor(extract(epoch from now() - min(k.high_water_utc)))
                        from public.sync_checkpoints k
                       where k.phase = 'poll' and k.scope_id = any (v.enterprise_ids || v.chain_ids)),
      'requests_last_30s', (select count(*) from public.rate_limit_hits x
                             where x.key = c.token_key and x.at > now() - interval '30 seconds'),
      'rate_limited', coalesce(s.pauses, 0),
      'unauthorized', coalesce(s.unauthorized_count, 0),
      'unauthorized_since', s.unauthorized_at,
      'paused_until', case when s.paused_until > now() then s.paused_until end,
      'quarantined', (select count(*) from public.quarantine q
                       where q.resolved_at is null and q.scope_id = any (v.enterprise_ids || v.chain_ids)),
      'jobs', (select coalesce(jsonb_object_agg(j.job, jsonb_build_object(
                        'last_status', j.last_status, 'last_started_at', j.last_started_at,
                        'last_finished_at', j.last_finished_at, 'last_succeeded_at', j.last_succeeded_at,
                        'leased', j.lease_expires_at > now())
                        || case when k.trusted then jsonb_build_object('last_error', j.last_error)
                                else '{}'::jsonb end), '{}'::jsonb)
                 from public.connection_jobs j where j.integration_id = c.integration_id)
    ) || case when k.trusted then jsonb_build_object('unauthorized_error', s.unauthorized_error)
              else '{}'::jsonb end as health
    from public.connections c
    cross join caller k
    -- what of the connection the caller may see: all of it (the service, or a connection that
    -- names only the caller's hotels), else its enterprises and chains cut down, and no name
    cross join lateral (
      select case when w.whole then c.enterprise_ids
                  else array(select e from unnest(c.enterprise_ids) e where e = any (k.readable)) end as enterprise_ids,
             case when w.whole then c.chain_ids
                  else array(select x from unnest(c.chain_ids) x where x = any (k.readable_chains)) end as chain_ids,
             case when w.whole then c.enterprise_name end as name
      from (select k.trusted or (c.enterprise_ids <@ k.readable
                                 and (c.enterprise_id is null or c.enterprise_id = any (k.readable))
                                 and c.chain_ids <@ k.readable_chains) as whole) w) v
    left join public.rate_limit_state s on s.key = c.token_key
    where (p_integration_id is null or c.integration_id = p_integration_id)
      and (k.trusted or c.enterprise_ids && k.readable or c.enterprise_id = any (k.readable))
  ) h
$$;
