-- The event inbox API: store before acknowledging; claim without collisions; retry, dead-letter,
-- replay.

create or replace function public.inbox_add(
  p_source text, p_body_raw text, p_enterprise_id uuid default null,
  p_unknown jsonb default '[]'::jsonb, p_error text default null
) returns jsonb
language plpgsql set search_path = ''
as $$
declare
  v_body jsonb;
  v_id bigint;
  v_error text := p_error;
begin
  begin
    v_body := p_body_raw::jsonb;
  exception when others then
    v_body := null;
    v_error := coalesce(v_error, 'body is not JSON: ' || sqlerrm);
  end;
  insert into public.event_inbox (source, enterprise_id, body_raw, body, body_hash, status, error,
                                  unknown_discriminators)
  values (p_source, p_enterprise_id, p_body_raw, v_body,
          encode(sha256(convert_to(p_body_raw, 'UTF8')), 'hex'),
          case when v_error is null then 'pending' else 'rejected' end, v_error,
          array(select jsonb_array_elements_text(coalesce(p_unknown, '[]'::jsonb))))
  returning id into v_id;
  return jsonb_build_object('id', v_id, 'status', case when v_error is null then 'pending' else 'rejected' end,
                            'error', v_error);
end
$$;

-- Claims ready events; parallel callers never get the same event (SKIP LOCKED).
create or replace function public.inbox_claim(p_limit integer default 100, p_lock_seconds integer default 300)
returns jsonb
language sql set search_path = ''
as $$
  with ready as (
    select id from public.event_inbox
     where (status in ('pending', 'failed') and available_at <= now())
        or (status = 'processing' and locked_until < now())
     order by id
     limit least(greatest(p_limit, 1), 1000)
     for update skip locked
  ), claimed as (
    update public.event_inbox e
       set status = 'processing', attempts = e.attempts + 1,
           locked_until = now() + make_interval(secs => p_lock_seconds)
      from ready where e.id = ready.id
    returning e.id, e.source, e.enterprise_id, e.body, e.attempts
  )
  select coalesce(jsonb_agg(to_jsonb(claimed) order by claimed.id), '[]'::jsonb) from claimed
$$;

create or replace function public.inbox_complete(p_ids jsonb)
returns jsonb
language sql set search_path = ''
as $$
  with done as (
    update public.event_inbox set status = 'done', processed_at = now(), locked_until = null, error = null
     where id in (select (jsonb_array_elements_text(p_ids))::bigint) and status = 'processing'
    returning 1
  ) select jsonb_build_object('completed', count(*)) from done
$$;

-- A failed attempt: retried later with backoff, or dead-lettered after p_max_attempts.
create or replace function public.inbox_fail(
  p_ids jsonb, p_error text, p_max_attempts integer default 5, p_backoff_seconds integer default 60
) returns jsonb
language sql set search_path = ''
as $$
  with failed as (
    update public.event_inbox
       set status = case when attempts >= p_max_attempts then 'dead' else 'failed' end,
           error = p_error, locked_until = null,
           available_at = now() + make_interval(secs => p_backoff_seconds * power(2, greatest(attempts - 1, 0)))
     where id in (select (jsonb_array_elements_text(p_ids))::bigint) and status = 'processing'
    returning status
  ) select jsonb_build_object('failed', count(*) filter (where status = 'failed'),
                              'dead', count(*) filter (where status = 'dead')) from failed
$$;

create or replace function public.inbox_replay(p_ids jsonb default null)
returns jsonb
language sql set search_path = ''
as $$
  with replayed as (
    update public.event_inbox set status = 'pending', attempts = 0, available_at = now(), error = null
     where status = 'dead' and (p_ids is null or id in (select (jsonb_array_elements_text(p_ids))::bigint))
    returning 1
  ) select jsonb_build_object('replayed', count(*)) from replayed
$$;

create or replace function public.inbox_stats()
returns jsonb
language sql stable set search_path = ''
as $$
  select jsonb_build_object(
    'by_status', coalesce((select jsonb_object_agg(status, n) from
       (select status, count(*) n from public.event_inbox group by status) s), '{}'::jsonb),
    'unknown_discriminators', coalesce((select jsonb_object_agg(d, n) from
       (select unnest(unknown_discriminators) d, count(*) n from public.event_inbox group by 1) u), '{}'::jsonb))
$$;

revoke all on function public.inbox_add(text, text, uuid, jsonb, text), public.inbox_claim(integer, integer),
  public.inbox_complete(jsonb), public.inbox_fail(jsonb, text, integer, integer),
  public.inbox_replay(jsonb), public.inbox_stats() from public, anon, authenticated;
grant execute on function public.inbox_add(text, text, uuid, jsonb, text), public.inbox_claim(integer, integer),
  public.inbox_complete(jsonb), public.inbox_fail(jsonb, text, integer, integer),
  public.inbox_replay(jsonb), public.inbox_stats() to service_role;
