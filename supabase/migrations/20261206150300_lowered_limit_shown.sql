-- A token's limit as Mews' 429s taught it (public.rate_limit_acquire adapts it below the
-- configured ceiling and raises it back in quiet windows) is in the health view, so
-- `guesthub status` can say the budget is lowered and since when; it was invisible.

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
                   'adapted_limit', s.adapted_limit,
                   'adapted_at', s.adapted_at,
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
