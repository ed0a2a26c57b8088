-- Health shows a caller only their own hotels. Before, staff of one hotel saw through
-- app.sync_private_health (inside public.sync_status) every token of the deployment (its
-- requests, pauses and refusals), the last run of every connection, inbox events and quarantined
-- records naming no enterprise; and a portfolio connection (one token covering several hotels)
-- showed them, in public.connections and public.connections_health, the other hotels' ids, names
-- and quarantine counts.
--
-- Now, for a caller that is not trusted (staff or admin):
-- - tokens: only those of the connections covering the enterprise. A refused token is
--   `superseded` (needs nobody) only when no connection of the enterprise uses it any more and
--   another token has made requests since; before, any token of the deployment working hid a
--   refused one from the service's status too;
-- - runs of no enterprise: those of the connections covering it, and deployment-wide jobs (no
--   connection: scoring, purging — status and times only, as before);
-- - inbox events and quarantined records naming no enterprise: only those of its connections
--   (a frame of its connection, a record quarantined by its connection's run);
-- - a portfolio connection: its enterprises, chains, lag and quarantine counts cut down to what
--   the caller may read, and no name (a portfolio's name lists its hotels);
-- - the connections table: a row only when everything it names is the caller's.
-- The service (and the migration role) still see everything.

-- -- the connections table ---------------------------------------------------------------------

drop policy connections_read on public.connections;
create policy connections_read on public.connections for select to authenticated
  using (enterprise_ids <@ (select app.readable_enterprise_ids())::uuid[]
         and (enterprise_id is null or enterprise_id = any ((select app.readable_enterprise_ids())::uuid[]))
         and (cardinality(enterprise_ids) > 0 or enterprise_id is not null));

-- -- runs of no enterprise ---------------------------------------------------------------------

-- The last run of each job among runs of no scope that belong to one of these connections or to
-- none (null: every run of no scope), error texts only when asked. A loose index scan over
-- sync_runs (job, started_at desc), as app.sync_last_runs.
create function app.sync_last_unscoped_runs(p_connection_ids uuid[], p_with_errors boolean) returns jsonb
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
           'scope_id', null, 'error', case when p_with_errors then l.error end) order by l.job), '[]'::jsonb)
  from jobs j
  cross join lateral (
    select r.job, r.status, r.started_at, r.finished_at, r.error
    from public.sync_runs r
    where r.job = j.job and r.scope_id is null
      and (p_connection_ids is null or r.connection_id is null or r.connection_id = any (p_connection_ids))
    order by r.started_at desc
    limit 1) l
  where j.job is not null
$$;
revoke all on function app.sync_last_unscoped_runs(uuid[], boolean) from public, anon, authenticated, service_role;

-- -- sync health of one enterprise -------------------------------------------------------------

create or replace function app.sync_private_health(p_enterprise_id uuid) returns jsonb
language sql stable security definer set search_path = ''
as $$
  with caller as (select app.caller_is_trusted() as trusted),
  mine as (  -- the connections covering the enterprise, and their tokens' budget keys
    select coalesce(array_agg(c.integration_id), '{}') as ids,
           coalesce(array_agg(c.token_key) filter (where c.token_key is not null), '{}') as keys
    from public.connections c
    where p_enterprise_id = any (c.enterprise_ids) or c.enterprise_id = p_enterprise_id)
  select case when c.trusted or p_enterprise_id = any (app.readable_enterprise_ids()) then
    jsonb_build_object(
      'inbox', (
        select jsonb_build_object(
                 'waiting', count(*) filter (where i.status <> 'dead'),
                 'oldest_waiting_at', min(i.received_at) filter (where i.status <> 'dead'),
                 'oldest_waiting_seconds',
                   floor(extract(epoch from now() - min(i.received_at) filter (where i.status <> 'dead'))),
                 'dead', count(*) filter (where i.status = 'dead'))
        from public.event_inbox i
        where i.status in ('pending', 'processing', 'failed', 'dead')
          and (i.enterprise_id = p_enterprise_id
               or i.enterprise_id is null and (c.trusted or i.integration_id = any (m.ids)))),
      'runs', app.sync_last_unscoped_runs(case when not c.trusted then m.ids end, c.trusted),
      'quarantine_unscoped', (
        select count(*) from public.quarantine q
        where q.scope_id is null and q.resolved_at is null
          and (c.trusted or exists (select 1 from public.sync_runs r
                                    where r.id = q.run_id and r.connection_id = any (m.ids)))),
      'tokens', (
        select coalesce(jsonb_agg(t.token order by t.unauthorized_at desc nulls last, t.last_request_at desc nulls last), '[]'::jsonb)
        from (
          select s.unauthorized_at, h.last_request_at,
                 jsonb_build_object(
                   'unauthorized_since', s.unauthorized_at,
                   'superseded', s.unauthorized_at is not null
                                 and s.key <> all (m.keys)
                                 and exists (select 1 from public.rate_limit_hits o
                                             where o.key <> s.key and o.at > s.unauthorized_at),
                   'used_last_30s', h.recent,
                   'last_request_at', h.last_request_at,
                   'paused_until', case when s.paused_until > now() then s.paused_until end)
                 || case when c.trusted then jsonb_build_object('key', s.key, 'error', s.unauthorized_error)
                         else '{}'::jsonb end as token
          from public.rate_limit_state s
          cross join lateral (
            select max(x.at) as last_request_at,
                   count(*) filter (where x.at > now() - interval '30 seconds') as recent
            from public.rate_limit_hits x where x.key = s.key) h
          where (c.trusted or s.key = any (m.keys))
            and (s.unauthorized_at is not null or h.last_request_at > now() - interval '1 day')) t))
  end
  from caller c cross join mine m
$$;

-- -- health per connection ---------------------------------------------------------------------

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
                          and r.status in ('succeeded', 'partial')),
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
