-- The request budget shared by every process that uses one Mews AccessToken.
--
-- Mews allows N requests per AccessToken per sliding window (200 per 30 s). Every function
-- instance, the listener and the CLI ask public.rate_limit_acquire before each request; the
-- per-key row lock serialises them, so together they stay under the limit. A 429 pauses the key
-- for everyone (public.rate_limit_pause). Keys are hashes of tokens, never tokens. Times are
-- the database's clock, the one clock every process shares.
create table public.rate_limit_state (
  key text primary key,                        -- sha256 of the AccessToken
  paused_until timestamptz,                    -- after a 429: nobody sends before this
  pauses integer not null default 0,
  updated_at timestamptz not null default now()
);

create table public.rate_limit_hits (
  key text not null references public.rate_limit_state (key) on delete cascade,
  at timestamptz not null
);
create index rate_limit_hits_key_at_idx on public.rate_limit_hits (key, at);

alter table public.rate_limit_state enable row level security;
alter table public.rate_limit_hits enable row level security;
revoke all on public.rate_limit_state, public.rate_limit_hits from anon, authenticated;
grant all on public.rate_limit_state, public.rate_limit_hits to service_role;

-- Take one slot, or say how long to wait: {"granted": bool, "wait_ms": int, "used": int}.
create or replace function public.rate_limit_acquire(p_key text, p_limit integer, p_window_ms integer)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := clock_timestamp();
  v_window interval := make_interval(secs => p_window_ms / 1000.0);
  v_paused timestamptz;
  v_used integer;
  v_oldest timestamptz;
begin
  if p_limit < 1 or p_window_ms < 1 then
    raise exception 'limit and window must be positive' using errcode = '22023';
  end if;
  insert into public.rate_limit_state (key) values (p_key) on conflict (key) do nothing;
  select paused_until into v_paused from public.rate_limit_state where key = p_key for update;
  v_now := clock_timestamp();  -- after the lock: waiting for it took time
  if v_paused is not null and v_paused > v_now then
    return jsonb_build_object('granted', false, 'used', null,
      'wait_ms', ceil(extract(epoch from v_paused - v_now) * 1000)::integer);
  end if;
  delete from public.rate_limit_hits where key = p_key and at <= v_now - v_window;
  select count(*), min(at) into v_used, v_oldest from public.rate_limit_hits where key = p_key;
  if v_used < p_limit then
    insert into public.rate_limit_hits (key, at) values (p_key, v_now);
    return jsonb_build_object('granted', true, 'wait_ms', 0, 'used', v_used + 1);
  end if;
  return jsonb_build_object('granted', false, 'used', v_used,
    'wait_ms', greatest(1, ceil(extract(epoch from v_oldest + v_window - v_now) * 1000))::integer);
end
$$;

-- After a 429: nobody sends on this key for p_seconds (a later pause never shortens one).
create or replace function public.rate_limit_pause(p_key text, p_seconds double precision)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_until timestamptz := clock_timestamp() + make_interval(secs => greatest(p_seconds, 0));
begin
  insert into public.rate_limit_state as s (key, paused_until, pauses, updated_at)
  values (p_key, v_until, 1, now())
  on conflict (key) do update
    set paused_until = greatest(coalesce(s.paused_until, '-infinity'), excluded.paused_until),
        pauses = s.pauses + 1, updated_at = now();
  return jsonb_build_object('paused_until', v_until);
end
$$;

revoke all on function public.rate_limit_acquire(text, integer, integer),
  public.rate_limit_pause(text, double precision) from public, anon, authenticated;
grant execute on function public.rate_limit_acquire(text, integer, integer),
  public.rate_limit_pause(text, double precision) to service_role;
