-- Many properties, one deployment: `connections` is the one source of truth for what is synced.
--
-- A connection is one Mews AccessToken: a property, or a portfolio of properties (docs/MEWS.md
-- #portfolio). Tokens arrive by Integration webhooks (kept encrypted), by `guesthub connections add`
-- (encrypted), or from the environment's MEWS_ACCESS_TOKEN (then only its hash is kept: the token
-- stays in the environment). What a token covers is asked of Mews and recorded here.
--
-- Scheduled jobs claim the connections that are due (public.connection_claim: a lease with an
-- expiry per (connection, job), FOR UPDATE SKIP LOCKED), so that concurrent function instances
-- share the work without overlap; a connection whose token Mews refused (401, recorded against
-- the token's hash in rate_limit_state) is not claimed until its token changes. Events are routed
-- to their connection by EnterpriseId and IntegrationId; events nobody covers stay in the inbox
-- and are reported (public.inbox_stats 'unrouted').

-- A JSON array of ids (how both transports pass a list) as uuid[]; null is none.
create function app.uuids(p_ids jsonb) returns uuid[]
language sql immutable set search_path = ''
as $$
  select coalesce(array(select (jsonb_array_elements_text(
           case when jsonb_typeof(p_ids) = 'array' then p_ids else '[]'::jsonb end))::uuid), '{}')
$$;

-- -- connections ------------------------------------------------------------------------------

alter table public.connections
  add column source text not null default 'webhook'
    check (source in ('webhook', 'manual', 'environment')),
  add column token_key text,                   -- the token's budget key (a hash), never the token
  add column enterprise_ids uuid[] not null default '{}',  -- what the token covers (from Mews)
  add column chain_ids uuid[] not null default '{}',
  add column is_portfolio boolean not null default false,
  add column discovered_at timestamptz,        -- when Mews last said what the token covers
  add column created_at timestamptz not null default now();

update public.connections set enterprise_ids = array[enterprise_id] where enterprise_id is not null;
create index connections_enterprise_ids_idx on public.connections using gin (enterprise_ids);

-- staff read their enterprises' connections, never the token, its hash or its source details
grant select (enterprise_ids, is_portfolio, source, discovered_at, created_at)
  on public.connections to authenticated;
drop policy connections_read on public.connections;
create policy connections_read on public.connections for select to authenticated
  using (enterprise_ids && (select app.readable_enterprise_ids())::uuid[]
         or enterprise_id = any ((select app.readable_enterprise_ids())::uuid[]));

-- An Integration webhook, with the hash of the token it carries (computed where the token is
-- read; the database never sees the token in plain text).
drop function public.connection_apply(text, uuid, uuid, text, text);
create function public.connection_apply(
  p_action text, p_integration_id uuid, p_enterprise_id uuid default null,
  p_enterprise_name text default null, p_token_encrypted text default null,
  p_token_key text default null
) returns jsonb
language sql set search_path = ''
as $$
  insert into public.connections as c (integration_id, enterprise_id, enterprise_name,
                                       access_token_encrypted, token_key, enterprise_ids, status, last_action)
  values (p_integration_id, p_enterprise_id, p_enterprise_name, p_token_encrypted, p_token_key,
          case when p_enterprise_id is null then '{}'::uuid[] else array[p_enterprise_id] end,
          case p_action when 'IntegrationDisabled' then 'disabled' when 'IntegrationCanceled' then 'canceled'
                        when 'IntegrationDeleted' then 'deleted' else 'active' end, p_action)
  on conflict (integration_id) do update set
    enterprise_id = coalesce(excluded.enterprise_id, c.enterprise_id),
    enterprise_name = coalesce(excluded.enterprise_name, c.enterprise_name),
    enterprise_ids = case when excluded.enterprise_id is null or excluded.enterprise_id = any (c.enterprise_ids)
                          then c.enterprise_ids else c.enterprise_ids || excluded.enterprise_id end,
    access_token_encrypted = case
      when p_action = 'IntegrationDeleted' then null
      when p_token_encrypted is not null then p_token_encrypted
      else c.access_token_encrypted end,
    token_key = case
      when p_action = 'IntegrationDeleted' then null
      when p_token_encrypted is not null then p_token_key
      else c.token_key end,
    status = case p_action
      when 'IntegrationDisabled' then 'disabled' when 'IntegrationCanceled' then 'canceled'
      when 'IntegrationDeleted' then 'deleted'
      when 'IntegrationEnabled' then 'active' when 'IntegrationReinstated' then 'active'
      when 'IntegrationCreated' then 'active'
      else c.status end,
    last_action = p_action, updated_at = now()
  returning jsonb_build_object('integration_id', integration_id, 'status', status,
                               'has_token', access_token_encrypted is not null)
$$;

-- A connection set up by hand (token encrypted by the caller) or from the environment (no token
-- kept: only its hash). Registering the same connection again changes nothing but the token; an
-- operator's `disabled` stays.
create function public.connection_register(
  p_integration_id uuid, p_source text, p_token_key text,
  p_token_encrypted text default null, p_name text default null
) returns jsonb
language plpgsql set search_path = ''
as $$
declare
  v_row public.connections;
  v_created boolean;
begin
  if p_source not in ('manual', 'environment') then
    raise exception 'a connection registered by hand is manual or environment, not %', p_source
      using errcode = '22023';
  end if;
  if p_token_key is null or p_token_key !~ '^mews:[0-9a-f]{64}$' then
    raise exception 'the token key is the hash of the token (mews:<sha256>)' using errcode = '22023';
  end if;
  if p_source = 'manual' and p_token_encrypted is null then
    raise exception 'a manual connection needs its encrypted token' using errcode = '22023';
  end if;
  insert into public.connections as c (integration_id, source, token_key, access_token_encrypted,
                                       enterprise_name, status, last_action)
  values (p_integration_id, p_source, p_token_key, p_token_encrypted, p_name, 'active',
          'registered:' || p_source)
  on conflict (integration_id) do update set
    token_key = excluded.token_key,
    access_token_encrypted = coalesce(excluded.access_token_encrypted, c.access_token_encrypted),
    enterprise_name = coalesce(excluded.enterprise_name, c.enterprise_name),
    -- a deleted connection registered again is active again; disabled stays disabled
    status = case when c.status = 'deleted' then 'active' else c.status end,
    updated_at = case when c.token_key is distinct from excluded.token_key
                        or c.status = 'deleted' then now() else c.updated_at end
  returning * into v_row;
  v_created := v_row.created_at = now();
  return jsonb_build_object('integration_id', v_row.integration_id, 'status', v_row.status,
                            'created', v_created);
end
$$;

-- What Mews says the token covers: its enterprises (with their chains), and whether it is a
-- portfolio token. p_enterprises: [{"id", "chain_id", "name"}].
create function public.connection_discovered(
  p_integration_id uuid, p_token_key text, p_enterprises jsonb, p_is_portfolio boolean default false
) returns jsonb
language sql set search_path = ''
as $$
  update public.connections c set
    enterprise_ids = coalesce((select array_agg(distinct (e->>'id')::uuid) from jsonb_array_elements(p_enterprises) e), '{}'),
    chain_ids = coalesce((select array_agg(distinct (e->>'chain_id')::uuid) from jsonb_array_elements(p_enterprises) e
                          where e->>'chain_id' is not null), '{}'),
    enterprise_id = coalesce(c.enterprise_id, (select (e->>'id')::uuid from jsonb_array_elements(p_enterprises) e limit 1)),
    enterprise_name = coalesce(c.enterprise_name,
                               (select string_agg(e->>'name', ', ' order by e->>'name') from jsonb_array_elements(p_enterprises) e)),
    is_portfolio = p_is_portfolio,
    token_key = coalesce(c.token_key, p_token_key),
    discovered_at = now()
  where c.integration_id = p_integration_id
  returning jsonb_build_object('integration_id', c.integration_id, 'enterprise_ids', c.enterprise_ids,
                               'chain_ids', c.chain_ids)
$$;

-- An operator pauses or resumes a connection (`guesthub connections disable|enable`).
create function public.connection_set_status(p_integration_id uuid, p_status text)
returns jsonb
language plpgsql set search_path = ''
as $$
declare
  v_status text;
begin
  if p_status not in ('active', 'disabled') then
    raise exception 'an operator sets a connection active or disabled, not %', p_status using errcode = '22023';
  end if;
  update public.connections set status = p_status, last_action = 'operator:' || p_status, updated_at = now()
   where integration_id = p_integration_id and status in ('active', 'disabled')
  returning status into v_status;
  if v_status is null then
    raise exception 'no active or disabled connection %', p_integration_id using errcode = 'P0002';
  end if;
  return jsonb_build_object('integration_id', p_integration_id, 'status', v_status);
end
$$;

-- -- leases: which instance works on which connection, per job -------------------------------

create table public.connection_jobs (
  integration_id uuid not null references public.connections (integration_id) on delete cascade,
  job text not null,                           -- poll_changes, process_events, push_changes, ...
  lease_holder text,                           -- the instance (run) that holds it
  lease_expires_at timestamptz,
  last_started_at timestamptz,
  last_finished_at timestamptz,
  last_status text,                            -- the run status of the last pass
  last_succeeded_at timestamptz,               -- the last pass that finished its work
  last_error text,                             -- redacted; the service only
  primary key (integration_id, job)
);
alter table public.connection_jobs enable row level security;
grant select, insert, update, delete on public.connection_jobs to service_role;
-- no policy: staff read it through public.connections_health

-- Claim up to p_limit active connections that are due for p_job: not leased (or the lease
-- expired), not refused by Mews, not started within p_every_seconds, and not among p_exclude
-- (those the invocation has served already) — the one waiting longest first, so none starves.
-- Returns what a worker needs (the token still encrypted).
create function public.connection_claim(
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
       and (j.lease_expires_at is null or j.lease_expires_at < now())
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

-- The pass is over: the lease goes. A pass that did not finish its work (its time budget ran
-- out) is due again at once, before the others; a failed one waits for its next turn.
create function public.connection_release(
  p_job text, p_integration_id uuid, p_holder text, p_status text,
  p_completed boolean default true, p_error text default null
) returns jsonb
language sql set search_path = ''
as $$
  with released as (
    update public.connection_jobs set
      lease_holder = null, lease_expires_at = null, last_finished_at = now(), last_status = p_status,
      last_error = left(p_error, 1000),
      last_succeeded_at = case when p_completed and p_status in ('succeeded', 'partial')
                               then now() else last_succeeded_at end,
      last_started_at = case when p_completed then last_started_at end
     where integration_id = p_integration_id and job = p_job and lease_holder = p_holder
    returning 1
  ) select jsonb_build_object('released', exists (select 1 from released))
$$;

-- Still working: the holder extends the leases it holds (its heartbeat), so a lease can be
-- short and a dead instance's connections are taken over soon.
create function public.connection_renew(p_holder text, p_lease_seconds integer default 120)
returns jsonb
language sql set search_path = ''
as $$
  with renewed as (
    update public.connection_jobs
       set lease_expires_at = now() + make_interval(secs => greatest(p_lease_seconds, 1))
     where lease_holder = p_holder and lease_expires_at > now()
    returning 1
  ) select jsonb_build_object('renewed', (select count(*) from renewed))
$$;

-- All active connections with a usable token (the listener's sockets), without claiming them.
create function public.connections_active() returns jsonb
language sql stable set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object(
           'integration_id', c.integration_id, 'source', c.source, 'name', c.enterprise_name,
           'token_encrypted', c.access_token_encrypted, 'token_key', c.token_key,
           'enterprise_ids', to_jsonb(c.enterprise_ids), 'is_portfolio', c.is_portfolio,
           'discovered_at', c.discovered_at) order by c.integration_id), '[]'::jsonb)
  from public.connections c
  where c.status = 'active'
    and (c.access_token_encrypted is not null or c.source = 'environment')
    and c.token_key is not null
    and not exists (select 1 from public.rate_limit_state s
                     where s.key = c.token_key and s.unauthorized_at is not null)
$$;

-- -- 401s are counted ----------------------------------------------------------------------------

alter table public.rate_limit_state add column unauthorized_count integer not null default 0;

create or replace function public.token_unauthorized(p_key text, p_error text default null)
returns jsonb
language sql set search_path = ''
as $$
  insert into public.rate_limit_state as s (key, unauthorized_at, unauthorized_error, unauthorized_count, updated_at)
  values (p_key, now(), left(p_error, 500), 1, now())
  on conflict (key) do update
    set unauthorized_at = coalesce(s.unauthorized_at, excluded.unauthorized_at),
        unauthorized_error = excluded.unauthorized_error,
        unauthorized_count = s.unauthorized_count + 1, updated_at = now()
  returning jsonb_build_object('unauthorized_at', unauthorized_at)
$$;

-- -- runs per connection -----------------------------------------------------------------------

alter table public.sync_runs add column connection_id uuid;
create index sync_runs_connection_idx on public.sync_runs (connection_id, job, started_at desc)
  where connection_id is not null;

drop function public.run_start(text, uuid);
create function public.run_start(p_job text, p_scope_id uuid default null, p_connection_id uuid default null)
returns jsonb
language sql set search_path = ''
as $$
  insert into public.sync_runs (job, scope_id, connection_id) values (p_job, p_scope_id, p_connection_id)
  returning jsonb_build_object('id', id, 'started_at', started_at)
$$;

-- -- health per connection ----------------------------------------------------------------------

-- Each connection the caller may read (the service: all; staff: those covering an enterprise
-- they read): its status (active, disabled, canceled, deleted, unauthorized, no_token), what it
-- covers, the last successful poll, the lag behind Mews, requests used in the last 30 s, 429s,
-- 401s, open quarantined records and each job's last pass. Never a token, nor its hash; error
-- texts for the service only.
create function public.connections_health(p_integration_id uuid default null) returns jsonb
language sql stable security definer set search_path = ''
as $$
  with caller as (select app.caller_is_trusted() as trusted,
                         (select app.readable_enterprise_ids())::uuid[] as readable)
  select coalesce(jsonb_agg(h.health order by h.name nulls last, h.id), '[]'::jsonb)
  from (
    select c.integration_id as id, c.enterprise_name as name, jsonb_build_object(
      'integration_id', c.integration_id,
      'name', c.enterprise_name,
      'source', c.source,
      'status', case
        when c.status <> 'active' then c.status
        when c.access_token_encrypted is null and c.source <> 'environment' then 'no_token'
        when s.unauthorized_at is not null then 'unauthorized'
        else 'active' end,
      'enterprise_ids', to_jsonb(c.enterprise_ids),
      'chain_ids', to_jsonb(c.chain_ids),
      'is_portfolio', c.is_portfolio,
      'discovered_at', c.discovered_at,
      'last_poll_at', (select max(r.finished_at) from public.sync_runs r
                        where r.connection_id = c.integration_id and r.job = 'poll_changes'
                          and r.status in ('succeeded', 'partial')),
      'lag_seconds', (select floor(extract(epoch from now() - min(k.high_water_utc)))
                        from public.sync_checkpoints k
                       where k.phase = 'poll' and k.scope_id = any (c.enterprise_ids || c.chain_ids)),
      'requests_last_30s', (select count(*) from public.rate_limit_hits x
                             where x.key = c.token_key and x.at > now() - interval '30 seconds'),
      'rate_limited', coalesce(s.pauses, 0),
      'unauthorized', coalesce(s.unauthorized_count, 0),
      'unauthorized_since', s.unauthorized_at,
      'paused_until', case when s.paused_until > now() then s.paused_until end,
      'quarantined', (select count(*) from public.quarantine q
                       where q.resolved_at is null and q.scope_id = any (c.enterprise_ids || c.chain_ids)),
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
    left join public.rate_limit_state s on s.key = c.token_key
    where (p_integration_id is null or c.integration_id = p_integration_id)
      and (k.trusted or c.enterprise_ids && k.readable or c.enterprise_id = any (k.readable))
  ) h
$$;

-- -- the inbox routes events to their connection ------------------------------------------------

alter table public.event_inbox add column integration_id uuid;
create index event_inbox_route_idx on public.event_inbox (integration_id, enterprise_id, available_at, id)
  where status in ('pending', 'failed', 'processing');

drop function public.inbox_add(text, text, uuid, jsonb, text);
create function public.inbox_add(
  p_source text, p_body_raw text, p_enterprise_id uuid default null,
  p_unknown jsonb default '[]'::jsonb, p_error text default null, p_integration_id uuid default null
) returns jsonb
language plpgsql set search_path = ''
as $$
declare
  v_raw text := app.redact_body(p_body_raw);
  v_hash text := encode(sha256(convert_to(v_raw, 'UTF8')), 'hex');
  v_body jsonb;
  v_id bigint;
  v_status text;
  v_error text := p_error;
begin
  select e.id, e.status, e.error into v_id, v_status, v_error
    from public.event_inbox e
   where e.body_hash = v_hash and e.source = p_source and e.status in ('pending', 'rejected')
     and e.integration_id is not distinct from p_integration_id
   order by e.id desc limit 1;
  if v_id is not null then
    return jsonb_build_object('id', v_id, 'status', v_status, 'error', v_error, 'duplicate', true);
  end if;
  v_error := p_error;
  begin
    v_body := v_raw::jsonb;
  exception when others then
    v_body := null;
    v_error := coalesce(v_error, 'body is not JSON: ' || sqlerrm);
  end;
  v_status := case when v_error is null then 'pending' else 'rejected' end;
  insert into public.event_inbox (source, enterprise_id, integration_id, body_raw, body, body_hash,
                                  status, error, unknown_discriminators)
  values (p_source, p_enterprise_id, p_integration_id, v_raw, v_body, v_hash, v_status, v_error,
          array(select jsonb_array_elements_text(coalesce(p_unknown, '[]'::jsonb))))
  returning id into v_id;
  return jsonb_build_object('id', v_id, 'status', v_status, 'error', v_error, 'duplicate', false);
end
$$;

-- Claim a batch for one connection: the events naming one of p_enterprise_ids, or (when
-- p_integration_id is given) the events its integration sent that name no enterprise it covers
-- (its WebSocket frames) and events naming neither (older rows, Integration webhooks). Without
-- both arguments: every event (a deployment of one connection, as before).
create function public.inbox_claim(
  p_limit integer, p_lock_seconds integer, p_enterprise_ids jsonb, p_integration_id uuid default null
) returns jsonb
language sql set search_path = ''
as $$
  with routed as (select app.uuids(p_enterprise_ids) as ids),
  ready as (
    select id from public.event_inbox
     where ((status in ('pending', 'failed') and available_at <= now())
            or (status = 'processing' and locked_until < now()))
       and (enterprise_id = any ((select ids from routed)::uuid[])
            or (p_integration_id is not null and integration_id = p_integration_id
                and (enterprise_id is null or not enterprise_id = any ((select ids from routed)::uuid[])))
            or (p_integration_id is not null and integration_id is null and enterprise_id is null))
     order by id
     limit least(greatest(p_limit, 1), 1000)
     for update skip locked
  ), claimed as (
    update public.event_inbox e
       set status = 'processing', attempts = e.attempts + 1,
           locked_until = now() + make_interval(secs => p_lock_seconds)
      from ready where e.id = ready.id
    returning e.id, e.source, e.enterprise_id, e.integration_id, e.body, e.attempts
  )
  select coalesce(jsonb_agg(to_jsonb(claimed) order by claimed.id), '[]'::jsonb) from claimed
$$;

-- Waiting events no active connection covers: kept, counted, and named by enterprise.
create function app.inbox_unrouted() returns jsonb
language sql stable set search_path = ''
as $$
  select jsonb_build_object(
    'events', count(*),
    'enterprises', coalesce(jsonb_agg(distinct i.enterprise_id) filter (where i.enterprise_id is not null), '[]'::jsonb))
  from public.event_inbox i
  where i.status in ('pending', 'failed', 'processing')
    and (i.enterprise_id is not null or i.integration_id is not null)
    and not exists (
      select 1 from public.connections c
       where c.status = 'active'
         and (i.enterprise_id = any (c.enterprise_ids)
              or (i.integration_id = c.integration_id)))
$$;

create or replace function public.inbox_stats()
returns jsonb
language sql stable set search_path = ''
as $$
  select jsonb_build_object(
    'by_status', coalesce((select jsonb_object_agg(status, n) from
       (select status, count(*) n from public.event_inbox group by status) s), '{}'::jsonb),
    'unknown_discriminators', coalesce((select jsonb_object_agg(d, n) from
       (select unnest(unknown_discriminators) d, count(*) n from public.event_inbox group by 1) u), '{}'::jsonb),
    'unrouted', app.inbox_unrouted())
$$;

-- -- pushes go out through the connection that covers the guest's chain ----------------------

create function public.push_pending(p_limit integer, p_chain_ids jsonb)
returns jsonb
language sql stable set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object(
           'chain_id', chain_id, 'mews_id', mews_id, 'changes', local_changes,
           'base', coalesce(local_base, '{}'::jsonb),
           'edited_at', local_edited_at, 'base_updated_utc', local_base_updated_utc,
           'is_active', is_active, 'merge_target_id', merge_target_id) order by local_edited_at), '[]'::jsonb)
  from (select * from public.guests where push_status = 'pending' and chain_id = any (app.uuids(p_chain_ids))
        order by local_edited_at limit least(p_limit, 1000)) g
$$;

-- -- grants ----------------------------------------------------------------------------------------

revoke all on function public.connection_apply(text, uuid, uuid, text, text, text),
  public.connection_register(uuid, text, text, text, text),
  public.connection_discovered(uuid, text, jsonb, boolean),
  public.connection_set_status(uuid, text),
  public.connection_claim(text, text, integer, integer, integer, uuid, jsonb),
  public.connection_release(text, uuid, text, text, boolean, text),
  public.connection_renew(text, integer),
  public.connections_active(),
  public.run_start(text, uuid, uuid),
  public.inbox_add(text, text, uuid, jsonb, text, uuid),
  public.inbox_claim(integer, integer, jsonb, uuid),
  public.push_pending(integer, jsonb),
  app.inbox_unrouted(), app.uuids(jsonb)
  from public, anon, authenticated;
grant execute on function public.connection_apply(text, uuid, uuid, text, text, text),
  public.connection_register(uuid, text, text, text, text),
  public.connection_discovered(uuid, text, jsonb, boolean),
  public.connection_set_status(uuid, text),
  public.connection_claim(text, text, integer, integer, integer, uuid, jsonb),
  public.connection_release(text, uuid, text, text, boolean, text),
  public.connection_renew(text, integer),
  public.connections_active(),
  public.run_start(text, uuid, uuid),
  public.inbox_add(text, text, uuid, jsonb, text, uuid),
  public.inbox_claim(integer, integer, jsonb, uuid),
  public.push_pending(integer, jsonb),
  app.inbox_unrouted(), app.uuids(jsonb)
  to service_role;
-- staff read their connections' health; the function filters what they may see
revoke all on function public.connections_health(uuid) from public, anon;
grant execute on function public.connections_health(uuid) to authenticated, service_role;
