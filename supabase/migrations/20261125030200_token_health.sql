-- A 401 from Mews marks the AccessToken unauthorized for every process (invalid or expired
-- token, disabled enterprise or integration, missing permission: docs/MEWS.md#errors). Its jobs
-- then pause: the shared budget grants no slot for it, so no process keeps calling Mews with a
-- refused token, until the token changes (a new token is a new key) or an operator clears it
-- (public.token_authorized). Other tokens carry on. Keys are hashes of tokens, never tokens.

alter table public.rate_limit_state
  add column unauthorized_at timestamptz,
  add column unauthorized_error text;

create or replace function public.token_unauthorized(p_key text, p_error text default null)
returns jsonb
language sql set search_path = ''
as $$
  insert into public.rate_limit_state as s (key, unauthorized_at, unauthorized_error, updated_at)
  values (p_key, now(), left(p_error, 500), now())
  on conflict (key) do update
    set unauthorized_at = coalesce(s.unauthorized_at, excluded.unauthorized_at),
        unauthorized_error = excluded.unauthorized_error, updated_at = now()
  returning jsonb_build_object('unauthorized_at', unauthorized_at)
$$;

create or replace function public.token_authorized(p_key text)
returns jsonb
language sql set search_path = ''
as $$
  with cleared as (
    update public.rate_limit_state set unauthorized_at = null, unauthorized_error = null, updated_at = now()
     where key = p_key and unauthorized_at is not null
    returning 1
  ) select jsonb_build_object('cleared', exists (select 1 from cleared))
$$;

-- Take one slot, say how long to wait, or say the token is refused:
-- {"granted": bool, "wait_ms": int, "used": int, "unauthorized": {"since", "error"} | absent}.
create or replace function public.rate_limit_acquire(p_key text, p_limit integer, p_window_ms integer)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := clock_timestamp();
  v_window interval := make_interval(secs => p_window_ms / 1000.0);
  v_state public.rate_limit_state;
  v_used integer;
  v_oldest timestamptz;
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
    return jsonb_build_object('granted', false, 'used', null,
      'wait_ms', ceil(extract(epoch from v_state.paused_until - v_now) * 1000)::integer);
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

revoke all on function public.token_unauthorized(text, text), public.token_authorized(text)
  from public, anon, authenticated;
grant execute on function public.token_unauthorized(text, text), public.token_authorized(text)
  to service_role;
