-- Sync health per enterprise, in one call: the last run of each job, the inbox (depth, oldest
-- waiting event, dead letters), open quarantined records, conflicts of the last 7 days, the Mews
-- request budget and refused tokens, the lag behind Mews, the score average.
--
-- public.sync_status is SECURITY INVOKER: the service (which bypasses row-level security) gets
-- every enterprise; staff get the enterprises their memberships let them read, and of those only
-- what row-level security shows them. Three things live in tables no staff member may read
-- (the inbox keeps raw bodies, rate_limit_* keeps token hashes, runs of no enterprise have no
-- policy); app.sync_private_health gives them as counts and times only, for an enterprise the
-- caller may read, and never a token hash or an error text to anyone but the service.
-- What needs attention is decided here, once (app.sync_attention), for `guesthub status` (exit
-- code 6), the report and a frontend alike.

-- the inbox rows a status reads: few (open or dead), found by enterprise
create index event_inbox_open_idx on public.event_inbox (enterprise_id, received_at)
  where status in ('pending', 'processing', 'failed', 'dead');

-- The last run of each job among runs of these scopes (null: runs of no scope), error texts
-- only when asked. A loose index scan over sync_runs (job, started_at desc): one probe per job.
create or replace function app.sync_last_runs(p_scope_ids uuid[], p_with_errors boolean) returns jsonb
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
           'scope_id', l.scope_id, 'error', case when p_with_errors then l.error end) order by l.job), '[]'::jsonb)
  from jobs j
  cross join lateral (
    select r.job, r.status, r.started_at, r.finished_at, r.scope_id, r.error
    from public.sync_runs r
    where r.job = j.job
      and case when p_scope_ids is null then r.scope_id is null else r.scope_id = any (p_scope_ids) end
    order by r.started_at desc
    limit 1) l
  where j.job is not null
$$;

-- What staff cannot read themselves, for one enterprise they may read (null otherwise): the
-- inbox events naming it or naming no enterprise, runs of no scope, quarantined records of no
-- scope, and the tokens' budget and refusals. Token hashes and error texts: the service only.
-- A refusal is `superseded` when another token has made requests since (the token was replaced).
create or replace function app.sync_private_health(p_enterprise_id uuid) returns jsonb
language sql stable security definer set search_path = ''
as $$
  with caller as (select app.caller_is_trusted() as trusted)
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
          and (i.enterprise_id = p_enterprise_id or i.enterprise_id is null)),
      'runs', app.sync_last_runs(null, c.trusted),
      'quarantine_unscoped', (select count(*) from public.quarantine q
                              where q.scope_id is null and q.resolved_at is null),
      'tokens', (
        select coalesce(jsonb_agg(t.token order by t.unauthorized_at desc nulls last, t.last_request_at desc nulls last), '[]'::jsonb)
        from (
          select s.unauthorized_at, h.last_request_at,
                 jsonb_build_object(
                   'unauthorized_since', s.unauthorized_at,
                   'superseded', s.unauthorized_at is not null
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
          where s.unauthorized_at is not null or h.last_request_at > now() - interval '1 day') t))
  end
  from caller c
$$;

-- What in one enterprise's status needs someone: dead letters, a refused token that was not
-- replaced, a last run that failed or was abandoned, more than 30 minutes behind Mews (the newest
-- poll high-water mark), an inbox event waiting more than 15 minutes. Pure: the status in, a list
-- of {check, message} out.
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
    select 4, jsonb_build_object('check', 'lag', 'message',
             round((p_status->'poll'->>'lag_seconds')::numeric / 60) || ' min behind Mews (newest poll high-water mark; more than 30 min)')
     where (p_status->'poll'->>'lag_seconds')::numeric > 1800
    union all
    select 5, jsonb_build_object('check', 'inbox_waiting', 'message',
             'the oldest inbox event has waited ' || round((p_status->'inbox'->>'oldest_waiting_seconds')::numeric / 60)
             || ' min (more than 15 min)')
     where (p_status->'inbox'->>'oldest_waiting_seconds')::numeric > 900
  ) a
$$;

-- Sync health of every enterprise the caller may read (or of one): see the top of this file.
create or replace function public.sync_status(p_enterprise_id uuid default null) returns jsonb
language sql stable security invoker set search_path = ''
as $$
  select jsonb_build_object(
    'generated_at', now(),
    'enterprises', coalesce(jsonb_agg(s.status || jsonb_build_object('attention', app.sync_attention(s.status))
                                      order by s.name, s.id), '[]'::jsonb))
  from (
    select e.id, e.name, jsonb_build_object(
      'id', e.id, 'name', e.name, 'chain_id', e.chain_id,
      'runs', (
        select coalesce(jsonb_agg(x.run order by x.run->>'job'), '[]'::jsonb)
        from (select distinct on (r->>'job') r as run
              from jsonb_array_elements(app.sync_last_runs(array[e.id, e.chain_id], true)
                                        || coalesce(p.health->'runs', '[]'::jsonb)) r
              order by r->>'job', (r->>'started_at')::timestamptz desc) x),
      'inbox', p.health->'inbox',
      'tokens', coalesce(p.health->'tokens', '[]'::jsonb),
      'quarantine_open', (select count(*) from public.quarantine q
                          where q.resolved_at is null and q.scope_id in (e.id, e.chain_id)),
      'quarantine_unscoped', (p.health->>'quarantine_unscoped')::integer,
      'conflicts_7d', (select count(*) from public.conflict_log c
                       where c.chain_id = e.chain_id and c.created_at > now() - interval '7 days'),
      'poll', (
        select jsonb_build_object(
                 'entities', count(*),
                 'newest_high_water_utc', max(k.high_water_utc),
                 'lag_seconds', floor(extract(epoch from now() - max(k.high_water_utc))),
                 'stalest_entity', (array_agg(k.entity order by k.high_water_utc nulls first, k.entity))[1],
                 'stalest_lag_seconds', floor(extract(epoch from now() - min(k.high_water_utc))))
        from public.sync_checkpoints k
        where k.phase = 'poll' and k.scope_id in (e.id, e.chain_id)),
      'score', (select jsonb_build_object('guests', count(*), 'average', round(avg(g.score), 1))
                from public.guest_scores g where g.enterprise_id = e.id)) as status
    from public.enterprises e
    cross join lateral (select app.sync_private_health(e.id) as health) p
    where p_enterprise_id is null or e.id = p_enterprise_id) s
$$;

-- The report names every guest it lists (name, Mews id, e-mail), lists duplicate pairs with their
-- evidence and the conflicts of the last 7 days, and carries the sync health. Same signature
-- (create or replace keeps the grants); the caller's row-level security applies as before.
create or replace function public.quality_report(p_enterprise_id uuid, p_days integer default 14,
                                                 p_threshold integer default 60) returns jsonb
language sql stable security invoker set search_path = ''
as $$
  with ent as (select id, name, chain_id from public.enterprises where id = p_enterprise_id)
  select jsonb_build_object(
    'enterprise', (select jsonb_build_object('id', id, 'name', name) from ent),
    'guests', (select count(*) from public.guest_scores where enterprise_id = p_enterprise_id),
    'average', (select round(avg(score), 1) from public.guest_scores where enterprise_id = p_enterprise_id),
    'distribution', (select coalesce(jsonb_agg(jsonb_build_object('bucket', b, 'guests', n) order by b), '[]'::jsonb)
                     from (select least(score / 10, 9) * 10 as b, count(*) as n from public.guest_scores
                           where enterprise_id = p_enterprise_id group by 1) d),
    'fields', (select coalesce(jsonb_agg(jsonb_build_object('field', field, 'missing', missing, 'invalid', invalid,
                                                            'missing_rate', missing_rate) order by missing + invalid desc), '[]'::jsonb)
               from public.quality_field_gaps where enterprise_id = p_enterprise_id),
    'trend', (select coalesce(jsonb_agg(jsonb_build_object('day', day, 'average', average, 'below_50', below_50,
                                                           'guests', guests) order by day), '[]'::jsonb)
              from (select * from public.quality_daily where enterprise_id = p_enterprise_id order by day desc limit 90) t),
    'worst', (select coalesce(jsonb_agg(jsonb_build_object('guest', w.guest_mews_id,
                                                           'name', concat_ws(' ', w.first_name, w.last_name),
                                                           'email', g.email, 'score', w.score, 'reasons', w.reasons)
                                        order by w.rank), '[]'::jsonb)
              from public.quality_worst_profiles w
              left join public.guests g on g.chain_id = (select chain_id from ent) and g.mews_id = w.guest_mews_id
              where w.enterprise_id = p_enterprise_id and w.rank <= 15),
    'arrivals', (select coalesce(jsonb_agg(jsonb_build_object('arrival', a.arrival, 'reservation', a.reservation_id,
                                                              'guest', a.guest_mews_id,
                                                              'name', concat_ws(' ', a.first_name, a.last_name),
                                                              'email', g.email, 'state', a.state, 'score', a.score,
                                                              'reasons', a.reasons)), '[]'::jsonb)
                 from public.quality_arrivals_at_risk(p_days, p_threshold) a
                 left join public.guests g on g.chain_id = (select chain_id from ent) and g.mews_id = a.guest_mews_id
                 where a.enterprise_id = p_enterprise_id),
    'duplicates', (select count(*) from public.guest_duplicates d where d.chain_id = (select chain_id from ent)),
    'duplicate_pairs', (
      select coalesce(jsonb_agg(jsonb_build_object(
               'a', jsonb_build_object('guest', d.guest_a, 'name', concat_ws(' ', ga.first_name, ga.last_name), 'email', ga.email),
               'b', jsonb_build_object('guest', d.guest_b, 'name', concat_ws(' ', gb.first_name, gb.last_name), 'email', gb.email),
               'evidence', d.evidence) order by d.found_at desc, d.guest_a, d.guest_b), '[]'::jsonb)
      from (select * from public.guest_duplicates where chain_id = (select chain_id from ent)
            order by found_at desc, guest_a, guest_b limit 10) d
      left join public.guests ga on ga.chain_id = d.chain_id and ga.mews_id = d.guest_a
      left join public.guests gb on gb.chain_id = d.chain_id and gb.mews_id = d.guest_b),
    'conflicts', (
      select coalesce(jsonb_agg(jsonb_build_object(
               'at', c.created_at, 'guest', c.guest_mews_id, 'name', concat_ws(' ', g.first_name, g.last_name),
               'email', g.email, 'field', c.field, 'local_value', c.local_value, 'mews_value', c.mews_value,
               'resolution', c.resolution, 'detail', c.detail) order by c.created_at desc, c.id desc), '[]'::jsonb)
      from (select * from public.conflict_log
            where chain_id = (select chain_id from ent) and created_at > now() - interval '7 days'
            order by created_at desc, id desc limit 20) c
      left join public.guests g on g.chain_id = c.chain_id and g.mews_id = c.guest_mews_id),
    'sync', public.sync_status(p_enterprise_id)->'enterprises'->0)
$$;

revoke all on function app.sync_last_runs(uuid[], boolean), app.sync_private_health(uuid),
  app.sync_attention(jsonb), public.sync_status(uuid) from public, anon, authenticated, service_role;
-- public.sync_status runs with the caller's rights, so its callers need its helpers
grant execute on function app.sync_last_runs(uuid[], boolean), app.sync_private_health(uuid),
  app.sync_attention(jsonb), public.sync_status(uuid) to authenticated, service_role;
