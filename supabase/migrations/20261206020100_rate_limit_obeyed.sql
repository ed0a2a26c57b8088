-- Every limit Mews sets is obeyed, including one stricter than MEWS_RATE_LIMIT.
--
-- Mews may limit a token below the documented 200 requests per 30 s. Before this, a 429 paused
-- the token, but when the pause ended every waiting call went at once, each got its own 429 and
-- its own short Retry-After, and those already on the wire arrived while the first one's was
-- still running. Now, per token (keys are hashes of tokens, never tokens), all in the row that
-- public.rate_limit_acquire already locks for every process:
-- - a 429 blocks the token until its Retry-After has passed (paused_until, as before) and asks
--   for a probe: after the block, one request goes alone; the others wait for its answer
--   (public.rate_limit_answered) or for a 429 that blocks the token again;
-- - a congestion event (429s that arrive while no block runs, and those that follow during the
--   block: requests that were already on the wire) lowers the token's effective limit to 90 % of
--   the least of the limit in force and the requests the window accepted (taken, less this
--   event's 429s): a multiplicative decrease from the best estimate of the limit Mews applies.
--   Each full window without a 429 or a block after which the limit holds a request back raises
--   it by 5 % of the caller's limit (additive increase) until it reaches the caller's limit (the
--   ceiling: MEWS_RATE_LIMIT), where the token is trusted up to it again;
-- - once a token met a 429, a request taken at or above its lowered limit (confirmed) is a
--   probe too: it goes alone, so a 429 it meets finds nothing else on the wire. To know what is
--   on the wire, each request of such a token holds its slot open (rate_limit_hits.open_until)
--   until its answer is reported (a ticket); a probe waits until none is open. A probe that
--   passes does not raise confirmed: our window is a little longer than Mews', so a level that
--   passed right after a burst left Mews' window may still be too many in it.
-- Requests already on the wire when a token meets its very first 429 cannot be called back;
-- every later one is waited for.
-- A slot that is never answered (its process died) is given up after its lease (the window,
-- at least 30 s); a probe given up so makes the next request the probe. The arithmetic is in
-- pure functions (app.rate_limit_decreased, app.rate_limit_increased), tested with hand-built
-- sequences.

alter table public.rate_limit_state
  add column adapted_limit integer check (adapted_limit >= 1),  -- null: the caller's limit
  add column adapted_at timestamptz,                            -- when it last changed
  add column limited_at timestamptz,                            -- the last 429
  add column confirmed integer,     -- below it no request is a probe (null: none is, up to the limit)
  add column probe_due boolean not null default false,           -- after a 429: the next request goes alone
  add column probe_until timestamptz,                           -- a probe is out until then at the latest
  add column event_refusals integer not null default 0,          -- 429s of the congestion event
  add column event_limit integer,                               -- the limit in force when it began
  add column probe_ticket bigint;                               -- the probe's slot

alter table public.rate_limit_hits
  add column id bigint generated always as identity,
  add column open_until timestamptz;  -- a tracked request on the wire: until its answer, at the latest
create index rate_limit_hits_open_idx on public.rate_limit_hits (key) where open_until is not null;

-- The limit after a congestion event: 90 % of the least of the limit in force and the requests
-- the window accepted, never below a tenth of the ceiling (at least 1): a storm of 429s that
-- let nothing through is no measure of the limit, and a limit of one a window would take minutes
-- to climb back; a stricter server is still obeyed, its every 429's Retry-After held.
create function app.rate_limit_decreased(p_limit integer, p_used integer, p_ceiling integer)
returns integer
language sql immutable set search_path = ''
as $$
  select greatest(1, ceil(p_ceiling * 0.1)::integer, floor(least(p_limit, p_used) * 0.9)::integer)
$$;

-- The limit after a full window without a 429 when it holds a request back: 5 % of the ceiling more (at least 1); null (the
-- ceiling itself) once it reaches the ceiling.
create function app.rate_limit_increased(p_limit integer, p_ceiling integer)
returns integer
language sql immutable set search_path = ''
as $$
  select nullif(least(p_ceiling, p_limit + greatest(1, ceil(p_ceiling * 0.05)::integer)), p_ceiling)
$$;

-- Take one slot, say how long to wait, or say the token is refused:
-- {"granted": bool, "wait_ms": int, "used": int, "probe": bool, "limit": int, "ticket": int | null,
--  "unauthorized": {"since", "error"} | absent}. A slot with a ticket must be answered
-- (public.rate_limit_answered) or refused (public.rate_limit_refused) with it.
create or replace function public.rate_limit_acquire(p_key text, p_limit integer, p_window_ms integer)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz;
  v_window interval := make_interval(secs => p_window_ms / 1000.0);
  v_lease interval := make_interval(secs => greatest(p_window_ms, 30000) / 1000.0);
  v_state public.rate_limit_state;
  v_limit integer;
  v_used integer;
  v_oldest timestamptz;
  v_probe boolean;
  v_tracked boolean;
  v_ticket bigint;
begin
  if p_limit < 1 or p_window_ms < 1 then
    raise exception 'limit and window must be positive' using errcode = '22023';
  end if;
  insert into public.rate_limit_state (key) values (p_key) on conflict (key) do nothing;
  select * into v_state from public.rate_limit_state where key = p_key for update;
  if v_state.unauthorized_at is not null then
    return jsonb_build_object('granted', false, 'used', null, 'wait_ms', null,
      'unauthorized', jsonb_build_object('since', v_state.unauthorized_at, 'error', v_state.unauthorized_error));
  end if;
  v_now := clock_timestamp();  -- after the lock: waiting for it took time
  if v_state.paused_until is not null and v_state.paused_until > v_now then
    return jsonb_build_object('granted', false, 'used', null, 'probe', false,
      'wait_ms', ceil(extract(epoch from v_state.paused_until - v_now) * 1000)::integer);
  end if;
  if v_state.probe_until > v_now then  -- a probe is out: wait for its answer
    return jsonb_build_object('granted', false, 'used', null, 'probe', false,
      'wait_ms', least(100, ceil(extract(epoch from v_state.probe_until - v_now) * 1000))::integer);
  end if;
  v_limit := least(p_limit, coalesce(v_state.adapted_limit, p_limit));
  delete from public.rate_limit_hits where key = p_key and at <= v_now - v_window;
  select count(*), min(at) into v_used, v_oldest from public.rate_limit_hits where key = p_key;
  if v_used >= v_limit and v_state.adapted_limit is not null and not v_state.probe_due
     and greatest(v_state.adapted_at, v_state.limited_at, v_state.paused_until) + v_window <= v_now then
    -- the lowered limit holds a request back after a quiet window: raise it a step
    v_state.adapted_limit := app.rate_limit_increased(v_state.adapted_limit, p_limit);
    if v_state.adapted_limit is null then  -- back at the ceiling: trusted up to it again
      v_state.confirmed := null;
    end if;
    update public.rate_limit_state
       set adapted_limit = v_state.adapted_limit, confirmed = v_state.confirmed,
           adapted_at = v_now, updated_at = now()
     where key = p_key;
    v_limit := least(p_limit, coalesce(v_state.adapted_limit, p_limit));
  end if;
  if v_used >= v_limit then
    return jsonb_build_object('granted', false, 'used', v_used, 'probe', false, 'limit', v_limit,
      'wait_ms', greatest(1, ceil(extract(epoch from v_oldest + v_window - v_now) * 1000))::integer);
  end if;
  v_probe := coalesce(v_state.probe_due or v_used >= v_state.confirmed, false);
  v_tracked := v_state.probe_due or v_state.confirmed is not null;
  if v_probe and exists (select 1 from public.rate_limit_hits
                          where key = p_key and open_until > v_now) then
    -- a probe goes alone: wait until every request on the wire has its answer
    return jsonb_build_object('granted', false, 'used', v_used, 'probe', false, 'limit', v_limit,
      'wait_ms', 100);
  end if;
  insert into public.rate_limit_hits (key, at, open_until)
  values (p_key, v_now, case when v_tracked then v_now + v_lease end)
  returning case when v_tracked then id end into v_ticket;
  if v_probe then
    update public.rate_limit_state
       set probe_until = v_now + v_lease, probe_ticket = v_ticket,
           updated_at = now()
     where key = p_key;
  end if;
  return jsonb_build_object('granted', true, 'wait_ms', 0, 'used', v_used + 1,
    'probe', v_probe, 'limit', v_limit, 'ticket', v_ticket);
end
$$;

-- A 429 for the token: nobody sends on it for p_seconds (a later 429 never shortens a block),
-- the next request after the block is a probe, and the token's limit is lowered from the
-- requests its window accepted. {"paused_until": timestamptz, "limit": int}.
create function public.rate_limit_refused(
  p_key text, p_seconds double precision, p_limit integer, p_window_ms integer,
  p_ticket bigint default null
) returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz;
  v_state public.rate_limit_state;
  v_used integer;
begin
  if p_limit < 1 or p_window_ms < 1 then
    raise exception 'limit and window must be positive' using errcode = '22023';
  end if;
  insert into public.rate_limit_state (key) values (p_key) on conflict (key) do nothing;
  select * into v_state from public.rate_limit_state where key = p_key for update;
  v_now := clock_timestamp();
  update public.rate_limit_hits set open_until = null where key = p_key and id = p_ticket;
  if v_state.paused_until is null or v_state.paused_until <= v_now then  -- a new congestion event
    v_state.event_refusals := 0;
    v_state.event_limit := least(p_limit, coalesce(v_state.adapted_limit, p_limit));
  end if;
  v_state.event_refusals := v_state.event_refusals + 1;
  select count(*) into v_used from public.rate_limit_hits
   where key = p_key and at > v_now - make_interval(secs => p_window_ms / 1000.0);
  -- each 429 of the event lowers the estimate: fewer of the requests taken were accepted
  v_state.adapted_limit := app.rate_limit_decreased(
    v_state.event_limit, v_used - v_state.event_refusals, p_limit);
  v_state.adapted_at := v_now;
  v_state.confirmed := least(coalesce(v_state.confirmed, v_state.adapted_limit), v_state.adapted_limit);
  update public.rate_limit_state
     set paused_until = greatest(coalesce(paused_until, '-infinity'),
                                 v_now + make_interval(secs => greatest(p_seconds, 0))),
         pauses = pauses + 1,
         adapted_limit = v_state.adapted_limit, adapted_at = v_state.adapted_at,
         confirmed = v_state.confirmed, limited_at = v_now, event_refusals = v_state.event_refusals,
         event_limit = v_state.event_limit,
         probe_due = true, probe_until = null, probe_ticket = null,
         updated_at = now()
   where key = p_key
  returning paused_until, adapted_limit into v_state.paused_until, v_state.adapted_limit;
  return jsonb_build_object('paused_until', v_state.paused_until, 'limit', v_state.adapted_limit);
end
$$;

-- A tracked request got an answer that is not a 429: its slot is off the wire. When it was the
-- probe, the others may go.
create function public.rate_limit_answered(p_key text, p_ticket bigint)
returns jsonb
language sql
set search_path = ''
as $$
  with closed as (
    update public.rate_limit_hits set open_until = null where key = p_key and id = p_ticket
  ), probe as (
    update public.rate_limit_state
       set probe_due = false, probe_until = null, probe_ticket = null, updated_at = now()
     where key = p_key and probe_ticket = p_ticket
    returning 1
  )
  select jsonb_build_object('probe', exists (select 1 from probe))
$$;

revoke all on function app.rate_limit_decreased(integer, integer, integer),
  app.rate_limit_increased(integer, integer),
  public.rate_limit_refused(text, double precision, integer, integer, bigint),
  public.rate_limit_answered(text, bigint) from public, anon, authenticated;
grant execute on function app.rate_limit_decreased(integer, integer, integer),
  app.rate_limit_increased(integer, integer),
  public.rate_limit_refused(text, double precision, integer, integer, bigint),
  public.rate_limit_answered(text, bigint) to service_role;
