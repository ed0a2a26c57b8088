-- Dead holders are seen at once.
--
-- A process that works on a direct connection holds a session-level advisory lock for as long as
-- it lives (public.session_hold, on a connection it keeps; the key is derived from a random
-- session id), and its runs record that session (public.run_session). PostgreSQL drops the lock
-- the moment that connection ends: the process was killed, or its host vanished (the holder's
-- TCP keepalives end the session within seconds). So a run whose session lock is free is dead,
-- whatever its heartbeat says: the next claimant finds it with pg_try_advisory_xact_lock (held
-- for its own transaction only), marks it abandoned and takes its units over at once. The
-- heartbeat stays, for holders that hang; a process on the Supabase API alone (REST has no
-- session) holds no lock, and its runs are found dead by their heartbeat and lease expiry, as
-- before.
--
-- Also: a lease released by its holder keeps the unit's outcome (done, failed), so a command that
-- waited for it can say what the holder did; a claimant that finds a unit held is told by whom
-- (run, job, process) and since when; inbox rows record the run that claimed them, and rows of a
-- dead run are claimable again at once.

alter table public.sync_runs add column session_id uuid;  -- its process's session lock; null: heartbeat only
alter table public.sync_leases
  add column released_at timestamptz,                      -- released by its holder; free since
  add column outcome text check (outcome in ('done', 'failed'));
alter table public.event_inbox add column locked_by uuid;  -- the run that claimed it (processing)

-- The advisory-lock key of a process's session.
create function app.session_key(p_session uuid) returns bigint
language sql immutable set search_path = ''
as $$ select pg_catalog.hashtextextended('guesthub.session:' || p_session::text, 0) $$;

-- Whether a session's lock is held, read from pg_locks (no lock taken: for read-only callers).
create function app.session_alive(p_session uuid) returns boolean
language sql stable set search_path = ''
as $$
  select exists (
    select 1 from pg_catalog.pg_locks l
     where l.locktype = 'advisory' and l.granted and l.objsubid = 1
       and l.database = (select d.oid from pg_catalog.pg_database d where d.datname = current_database())
       and ((l.classid::bigint << 32) | l.objid::bigint) = app.session_key(p_session))
$$;

-- Why a run is known to be over, or null while it may be alive: it is not running any more; its
-- process's session lock is free (taken here for this transaction only); its heartbeat is older
-- than p_stale_seconds (null: not asked).
create function app.run_gone(p_run public.sync_runs, p_stale_seconds integer) returns text
language sql volatile set search_path = ''
as $$
  select case
    when p_run.status <> 'running' then 'over: ' || p_run.status
    when p_run.session_id is not null and pg_catalog.pg_try_advisory_xact_lock(app.session_key(p_run.session_id))
      then format('abandoned: its process (%s) ended; its database session is gone (last heartbeat %s)',
                  coalesce(p_run.owner, 'unknown'),
                  to_char(p_run.heartbeat_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
    when p_stale_seconds is not null
         and p_run.heartbeat_at < now() - make_interval(secs => greatest(p_stale_seconds, 1))
      then format('abandoned: no heartbeat since %s (process %s)',
                  to_char(p_run.heartbeat_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                  coalesce(p_run.owner, 'unknown'))
  end
$$;

-- The run a holder text names (a run id), if any.
create function app.holder_run(p_holder text) returns public.sync_runs
language sql stable set search_path = ''
as $$
  select r.* from public.sync_runs r
   where p_holder ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
     and r.id = p_holder::uuid
$$;

-- The holder's side: take the process's session lock, on the connection it keeps for its work.
create function public.session_hold(p_session uuid) returns jsonb
language plpgsql set search_path = ''
as $$
begin
  perform pg_catalog.pg_advisory_lock(app.session_key(p_session));
  return jsonb_build_object('session', p_session, 'held', true);
end
$$;

-- A run of a process that holds its session lock records it: from now on, the lock being free
-- means the run is dead. Refused when no one holds that lock.
create function public.run_session(p_id uuid, p_session uuid) returns jsonb
language plpgsql set search_path = ''
as $$
begin
  if pg_catalog.pg_try_advisory_xact_lock(app.session_key(p_session)) then
    raise exception 'no process holds session %: its runs could not be known alive', p_session
      using errcode = '55000';
  end if;
  update public.sync_runs set session_id = p_session where id = p_id and status = 'running';
  return jsonb_build_object('running', found);
end
$$;

-- Runs that are dead (session gone) or hung (heartbeat older than p_stale_seconds) are over:
-- abandoned, their leases freed, their claimed inbox rows claimable again; each named (job,
-- process, why) so that the job that found them can say so.
create or replace function public.runs_reap(p_stale_seconds integer default 90, p_by text default null)
returns jsonb
language sql set search_path = ''
as $$
  with dead as (
    select r.id, app.run_gone(r, p_stale_seconds) as why
      from public.sync_runs r where r.status = 'running'
  ), reaped as (
    update public.sync_runs s
       set status = 'abandoned', finished_at = now(), abandoned_by = p_by, error = d.why
      from dead d
     where s.id = d.id and d.why is not null and s.status = 'running'
    returning s.id, s.job, s.owner, s.error, s.heartbeat_at
  ), freed as (
    delete from public.sync_leases l using reaped r where l.holder = r.id::text
    returning 1
  ), unclaimed as (
    update public.event_inbox e set locked_until = now()
      from reaped r where e.locked_by = r.id and e.status = 'processing'
    returning 1
  )
  select jsonb_build_object('abandoned', (select count(*) from reaped),
                            'jobs', coalesce((select jsonb_agg(job) from reaped), '[]'::jsonb),
                            'runs', coalesce((select jsonb_agg(jsonb_build_object(
                                       'holder', id, 'job', job, 'owner', owner, 'why', error,
                                       'since', heartbeat_at)) from reaped), '[]'::jsonb),
                            'leases_freed', (select count(*) from freed),
                            'inbox_unclaimed', (select count(*) from unclaimed))
$$;

-- Take (or extend, for its holder) a lease. A lease is free when it expired, was released, or
-- its holder's run is over or dead (then the run is marked abandoned and its other leases go
-- too). Held: who holds it and since when. Taken: what happened to it before (`previous`: the
-- holder it was released by or taken from, the outcome it recorded, whether it was taken from
-- a dead holder).
create or replace function public.lease_acquire(p_name text, p_holder text, p_seconds integer default 120)
returns jsonb
language plpgsql set search_path = ''
as $$
declare
  v_lease public.sync_leases;
  v_run public.sync_runs;
  v_gone text;
  v_until timestamptz := now() + make_interval(secs => greatest(p_seconds, 1));
begin
  insert into public.sync_leases (name, holder, expires_at) values (p_name, p_holder, v_until)
  on conflict (name) do nothing;
  if found then
    return jsonb_build_object('acquired', true, 'holder', p_holder, 'previous', null);
  end if;
  select * into v_lease from public.sync_leases where name = p_name for update;
  v_run := app.holder_run(v_lease.holder);
  if v_lease.holder <> p_holder and v_lease.released_at is null and v_lease.expires_at >= now() then
    v_gone := case when v_run.id is not null then app.run_gone(v_run, null) end;
    if v_gone is null then
      return jsonb_build_object(
        'acquired', false, 'holder', v_lease.holder, 'since', v_lease.acquired_at,
        'expires_at', v_lease.expires_at, 'job', v_run.job, 'owner', v_run.owner,
        'run_started_at', v_run.started_at, 'heartbeat_at', v_run.heartbeat_at,
        'session', v_run.session_id is not null);
    end if;
    update public.sync_runs
       set status = 'abandoned', finished_at = now(), abandoned_by = p_holder, error = v_gone
     where id = v_run.id and status = 'running';
    delete from public.sync_leases where holder = v_lease.holder and name <> p_name;
    update public.event_inbox set locked_until = now()
     where locked_by = v_run.id and status = 'processing';
  end if;
  update public.sync_leases
     set holder = p_holder, expires_at = v_until, released_at = null, outcome = null,
         acquired_at = case when holder = p_holder and released_at is null then acquired_at else now() end
   where name = p_name;
  return jsonb_build_object(
    'acquired', true, 'holder', p_holder,
    'previous', case when v_lease.holder <> p_holder or v_lease.released_at is not null then
      jsonb_build_object('holder', v_lease.holder, 'since', v_lease.acquired_at,
                         'released_at', v_lease.released_at, 'outcome', v_lease.outcome,
                         'expired', v_lease.released_at is null and v_lease.expires_at < now(),
                         'dead', v_gone, 'job', v_run.job, 'owner', v_run.owner) end);
end
$$;

-- Still alive (as before): the heartbeat extends the leases the run holds, not those it released.
create or replace function public.run_heartbeat(p_id uuid, p_owner text default null,
                                                p_lease_seconds integer default 120)
returns jsonb
language sql set search_path = ''
as $$
  with beat as (
    update public.sync_runs set heartbeat_at = now(), owner = coalesce(p_owner, owner)
     where id = p_id and status = 'running'
    returning 1
  ), leases as (
    update public.sync_leases set expires_at = now() + make_interval(secs => greatest(p_lease_seconds, 1))
     where holder = p_id::text and released_at is null
    returning 1
  ) select jsonb_build_object('running', exists (select 1 from beat), 'leases', (select count(*) from leases))
$$;

-- The holder is done with the unit: the lease is free, and keeps the unit's outcome (done or
-- failed) for whoever waited for it.
drop function public.lease_release(text, text);
create function public.lease_release(p_name text, p_holder text, p_outcome text default 'done')
returns jsonb
language sql set search_path = ''
as $$
  with gone as (
    update public.sync_leases set released_at = now(), expires_at = now(), outcome = p_outcome
     where name = p_name and holder = p_holder and released_at is null
    returning 1
  ) select jsonb_build_object('released', exists (select 1 from gone))
$$;

-- Claim a batch for one connection (as before), recording the run that claims it (p_holder);
-- rows still `processing` for a run that is over (dead, abandoned) are claimable at once.
drop function public.inbox_claim(integer, integer, jsonb, uuid);
create function public.inbox_claim(
  p_limit integer, p_lock_seconds integer, p_enterprise_ids jsonb, p_integration_id uuid default null,
  p_holder uuid default null
) returns jsonb
language sql set search_path = ''
as $$
  with routed as (select app.uuids(p_enterprise_ids) as ids),
  ready as (
    select id from public.event_inbox i
     where ((status in ('pending', 'failed') and available_at <= now())
            or (status = 'processing'
                and (locked_until < now()
                     or (locked_by is not null
                         and not exists (select 1 from public.sync_runs r
                                          where r.id = i.locked_by and r.status = 'running')))))
       and (enterprise_id = any ((select ids from routed)::uuid[])
            or (p_integration_id is not null and integration_id = p_integration_id
                and (enterprise_id is null or not enterprise_id = any ((select ids from routed)::uuid[])))
            or (p_integration_id is not null and integration_id is null and enterprise_id is null))
     order by id
     limit least(greatest(p_limit, 1), 1000)
     for update skip locked
  ), claimed as (
    update public.event_inbox e
       set status = 'processing', attempts = e.attempts + 1, locked_by = p_holder,
           locked_until = now() + make_interval(secs => p_lock_seconds)
      from ready where e.id = ready.id
    returning e.id, e.source, e.enterprise_id, e.integration_id, e.body, e.attempts
  )
  select coalesce(jsonb_agg(to_jsonb(claimed) order by claimed.id), '[]'::jsonb) from claimed
$$;

-- Connections claimed by an invocation whose process died are due again at once: a holder that
-- names its process's session (`...@<session id>`, only when it holds the session lock) is gone
-- when that lock is free. Otherwise (the Supabase API) the lease's expiry, as before.
create function app.holder_gone(p_holder text) returns boolean
language sql volatile set search_path = ''
as $$
  select case when p_holder ~ '@[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
              then pg_catalog.pg_try_advisory_xact_lock(
                     app.session_key(substring(p_holder from '@([0-9a-f-]{36})$')::uuid))
              else false end
$$;

-- As before, and: a connection whose lease holder is gone is due (see app.holder_gone).
create or replace function public.connection_claim(
  p_job text, p_holder text, p_limit integer default 1, p_lease_seconds integer default 600,
  p_every_seconds integer default 0, p_integration_id uuid default null,
  p_exclude jsonb default '[]'
) returns jsonb
language plpgsql set search_path = ''
as $$
declare
  v_claimed jsonb;
begin
  insert into public.connection_jobs (integration_id, job)
  select c.integration_id, p_job from public.connections c where c.status = 'active'
  on conflict do nothing;
  with due as (
    select j.integration_id
      from public.connection_jobs j
      join public.connections c on c.integration_id = j.integration_id
     where j.job = p_job
       and (p_integration_id is null or j.integration_id = p_integration_id)
       and not j.integration_id = any (app.uuids(p_exclude))  -- served by this invocation
       and c.status = 'active'
       and (c.access_token_encrypted is not null or c.source = 'environment')
       and c.token_key is not null
       and not exists (select 1 from public.rate_limit_state s
                        where s.key = c.token_key and s.unauthorized_at is not null)
       and (j.lease_expires_at is null or j.lease_expires_at < now() or app.holder_gone(j.lease_holder))
       and (j.last_started_at is null
            or j.last_started_at <= now() - make_interval(secs => greatest(p_every_seconds, 0)))
     order by j.last_started_at nulls first, j.integration_id
     limit least(greatest(p_limit, 0), 1000)
     for update of j skip locked
  ), leased as (
    update public.connection_jobs j
       set lease_holder = p_holder,
           lease_expires_at = now() + make_interval(secs => greatest(p_lease_seconds, 1)),
           last_started_at = now()
      from due where j.integration_id = due.integration_id and j.job = p_job
    returning j.integration_id
  )
  select coalesce(jsonb_agg(jsonb_build_object(
           'integration_id', c.integration_id, 'source', c.source, 'name', c.enterprise_name,
           'token_encrypted', c.access_token_encrypted, 'token_key', c.token_key,
           'enterprise_ids', to_jsonb(c.enterprise_ids), 'is_portfolio', c.is_portfolio,
           'discovered_at', c.discovered_at) order by c.integration_id), '[]'::jsonb)
    into v_claimed
    from leased l join public.connections c on c.integration_id = l.integration_id;
  return v_claimed;
end
$$;

-- The last run of each job (as before) with, for a run still `running`, its last heartbeat and
-- whether its process is known gone (its session lock free); the process (host:pid) with the
-- error texts, for the service only.
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
           'scope_id', l.scope_id, 'error', case when p_with_errors then l.error end)
           || case when l.status = 'running' then jsonb_build_object(
                'heartbeat_at', l.heartbeat_at,
                'gone', l.session_id is not null and not app.session_alive(l.session_id),
                'owner', case when p_with_errors then l.owner end) else '{}'::jsonb end
           order by l.job), '[]'::jsonb)
  from jobs j
  cross join lateral (
    select r.job, r.status, r.started_at, r.finished_at, r.scope_id, r.error, r.heartbeat_at,
           r.session_id, r.owner
    from public.sync_runs r
    where r.job = j.job
      and case when p_scope_ids is null then r.scope_id is null else r.scope_id = any (p_scope_ids) end
    order by r.started_at desc
    limit 1) l
  where j.job is not null
$$;

-- The first loads of an enterprise's scopes (its own and its chain's) that began and have not
-- finished: entity, when it began, windows done.
create function app.sync_first_loads_open(p_enterprise_id uuid, p_chain_id uuid) returns jsonb
language sql stable set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object(
           'entity', k.entity, 'since', k.low_water_utc, 'updated_at', k.updated_at,
           'windows_done', jsonb_array_length(coalesce(k.state->'done', '[]'::jsonb)))
           order by k.entity), '[]'::jsonb)
  from public.sync_checkpoints k
  where k.phase = 'backfill' and k.high_water_utc is null and k.scope_id in (p_enterprise_id, p_chain_id)
$$;

-- What needs someone (as before), and: a first load that has not completed (the data is
-- incomplete), and a run still `running` whose process is gone (the next job marks it
-- abandoned) or whose heartbeat stopped more than 5 minutes ago.
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

revoke all on function app.session_key(uuid), app.session_alive(uuid), app.holder_gone(text),
  app.run_gone(public.sync_runs, integer), app.holder_run(text), public.session_hold(uuid),
  public.run_session(uuid, uuid), public.lease_release(text, text, text),
  public.inbox_claim(integer, integer, jsonb, uuid, uuid), app.sync_first_loads_open(uuid, uuid)
  from public, anon, authenticated;
grant execute on function app.session_key(uuid), app.run_gone(public.sync_runs, integer),
  app.holder_gone(text),
  app.holder_run(text), public.session_hold(uuid), public.run_session(uuid, uuid),
  public.lease_release(text, text, text), public.inbox_claim(integer, integer, jsonb, uuid, uuid)
  to service_role;
-- read by public.sync_status (the caller's rights): its callers need them
grant execute on function app.session_key(uuid), app.session_alive(uuid),
  app.sync_first_loads_open(uuid, uuid) to authenticated, service_role;
