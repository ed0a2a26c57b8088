-- Runs are alive or over, and one worker holds each unit of work.
--
-- A run heartbeats while it works; the next job marks a run whose heartbeat stopped (a killed
-- process, a lost instance) `abandoned`, with when and by whom, so no run stays `running` after
-- its process is gone. Leases (name, holder, expiry) give one worker each unit of work, e.g.
-- the poll of (scope, entity): a second invocation finds it held and skips it.

alter table public.sync_runs
  add column heartbeat_at timestamptz not null default now(),
  add column owner text,                       -- host:pid of the process that runs it
  add column abandoned_by text;                -- the run that found it dead
alter table public.sync_runs drop constraint sync_runs_status_check;
alter table public.sync_runs add constraint sync_runs_status_check
  check (status in ('running', 'succeeded', 'partial', 'rate_limited', 'failed', 'skipped', 'abandoned'));
create index sync_runs_running_idx on public.sync_runs (heartbeat_at) where status = 'running';

create table public.sync_leases (
  name text primary key,                       -- e.g. poll_changes:<scope id>:customers
  holder text not null,                        -- the run id that holds it
  acquired_at timestamptz not null default now(),
  expires_at timestamptz not null
);
alter table public.sync_leases enable row level security;

-- Still alive: the worker's heartbeat, which also extends the leases the run holds. Says whether
-- the run is still running (another job may have given it up meanwhile).
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
     where holder = p_id::text
    returning 1
  ) select jsonb_build_object('running', exists (select 1 from beat), 'leases', (select count(*) from leases))
$$;

-- Runs whose heartbeat stopped more than p_stale_seconds ago are over: abandoned.
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
    returning job
  ) select jsonb_build_object('abandoned', count(*), 'jobs', coalesce(jsonb_agg(job), '[]'::jsonb)) from reaped
$$;

-- An honest outcome, once. A run marked abandoned whose process was alive after all (a stalled
-- heartbeat) still records what it did, and says so.
create or replace function public.run_finish(
  p_id uuid, p_status text, p_counts jsonb default '{}'::jsonb, p_error text default null
) returns jsonb
language plpgsql set search_path = ''
as $$
declare
  v_row public.sync_runs;
begin
  if p_status not in ('succeeded', 'partial', 'rate_limited', 'failed', 'skipped') then
    raise exception 'not a final run status: %', p_status using errcode = '22023';
  end if;
  update public.sync_runs
     set status = p_status, counts = coalesce(p_counts, '{}'::jsonb),
         error = case when status = 'abandoned'
                      then concat_ws('; ', p_error, 'finished after it had been marked abandoned')
                      else p_error end,
         finished_at = now()
   where id = p_id and status in ('running', 'abandoned')
  returning * into v_row;
  if not found then
    raise exception 'run % is not running', p_id using errcode = '22023';
  end if;
  return jsonb_build_object('id', v_row.id, 'status', v_row.status,
    'seconds', extract(epoch from v_row.finished_at - v_row.started_at));
end
$$;

-- Take (or extend, for its holder) a lease; a held, unexpired lease is not taken.
create or replace function public.lease_acquire(p_name text, p_holder text, p_seconds integer default 120)
returns jsonb
language sql set search_path = ''
as $$
  with taken as (
    insert into public.sync_leases as l (name, holder, expires_at)
    values (p_name, p_holder, now() + make_interval(secs => greatest(p_seconds, 1)))
    on conflict (name) do update
      set holder = excluded.holder, expires_at = excluded.expires_at,
          acquired_at = case when l.holder = excluded.holder then l.acquired_at else now() end
      where l.holder = excluded.holder or l.expires_at < now()
    returning holder
  )
  select jsonb_build_object('acquired', exists (select 1 from taken),
                            'holder', coalesce((select holder from taken),
                                               (select holder from public.sync_leases where name = p_name)))
$$;

create or replace function public.lease_release(p_name text, p_holder text)
returns jsonb
language sql set search_path = ''
as $$
  with gone as (delete from public.sync_leases where name = p_name and holder = p_holder returning 1)
  select jsonb_build_object('released', exists (select 1 from gone))
$$;

grant select, insert, update, delete on public.sync_leases to service_role;
revoke all on function public.run_heartbeat(uuid, text, integer), public.runs_reap(integer, text),
  public.lease_acquire(text, text, integer), public.lease_release(text, text)
  from public, anon, authenticated;
grant execute on function public.run_heartbeat(uuid, text, integer), public.runs_reap(integer, text),
  public.lease_acquire(text, text, integer), public.lease_release(text, text) to service_role;
