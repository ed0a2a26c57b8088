-- The sync engine's API: registering the chain and enterprise a token serves, and checkpoints.

create or replace function public.register_enterprise(p_enterprise jsonb)
returns jsonb
language sql set search_path = ''
as $$
  with chain as (
    insert into public.chains (id, name)
    values ((p_enterprise->>'ChainId')::uuid, coalesce(p_enterprise->>'ChainName', 'Chain'))
    on conflict (id) do update set name = excluded.name
    returning id
  ), enterprise as (
    insert into public.enterprises (id, chain_id, name, time_zone, default_language_code,
                                    mews_created_utc, raw)
    select (p_enterprise->>'Id')::uuid, chain.id, p_enterprise->>'Name',
           p_enterprise->>'TimeZoneIdentifier', p_enterprise->>'DefaultLanguageCode',
           (p_enterprise->>'CreatedUtc')::timestamptz, p_enterprise
    from chain
    on conflict (id) do update set name = excluded.name, time_zone = excluded.time_zone,
      default_language_code = excluded.default_language_code,
      mews_created_utc = excluded.mews_created_utc, raw = excluded.raw
    returning id, chain_id, mews_created_utc
  )
  select jsonb_build_object('enterprise_id', e.id, 'chain_id', e.chain_id,
    -- customers are chain-wide: a first load walks back to the chain's oldest enterprise
    'oldest_utc', (select min(x.mews_created_utc) from public.enterprises x where x.chain_id = e.chain_id
                   and x.id <> e.id) )
    || jsonb_build_object('created_utc', e.mews_created_utc)
  from enterprise e
$$;

create or replace function public.checkpoint_get(p_scope_id uuid, p_entity text, p_phase text)
returns jsonb
language sql stable set search_path = ''
as $$
  select coalesce(
    (select jsonb_build_object('high_water_utc', high_water_utc, 'low_water_utc', low_water_utc,
                               'state', state)
       from public.sync_checkpoints
      where scope_id = p_scope_id and entity = p_entity and phase = p_phase),
    jsonb_build_object('high_water_utc', null, 'low_water_utc', null, 'state', '{}'::jsonb))
$$;

-- Moves a checkpoint. The high-water mark never moves backwards.
create or replace function public.checkpoint_save(
  p_scope_id uuid, p_entity text, p_phase text, p_high_water_utc timestamptz default null,
  p_low_water_utc timestamptz default null, p_state jsonb default null
) returns jsonb
language sql set search_path = ''
as $$
  insert into public.sync_checkpoints as c (scope_id, entity, phase, high_water_utc, low_water_utc, state)
  values (p_scope_id, p_entity, p_phase, p_high_water_utc, p_low_water_utc, coalesce(p_state, '{}'::jsonb))
  on conflict (scope_id, entity, phase) do update set
    high_water_utc = greatest(c.high_water_utc, excluded.high_water_utc),
    low_water_utc = coalesce(excluded.low_water_utc, c.low_water_utc),
    state = coalesce(p_state, c.state)
  returning jsonb_build_object('high_water_utc', high_water_utc, 'low_water_utc', low_water_utc, 'state', state)
$$;

-- Adds one finished backfill window to the checkpoint's state, atomically (windows finish
-- concurrently).
create or replace function public.checkpoint_window_done(
  p_scope_id uuid, p_entity text, p_phase text, p_window_start text
) returns jsonb
language sql set search_path = ''
as $$
  insert into public.sync_checkpoints as c (scope_id, entity, phase, state)
  values (p_scope_id, p_entity, p_phase, jsonb_build_object('done', jsonb_build_array(p_window_start)))
  on conflict (scope_id, entity, phase) do update set
    state = jsonb_set(c.state, '{done}', coalesce(c.state->'done', '[]'::jsonb) || to_jsonb(p_window_start))
  returning jsonb_build_object('done', jsonb_array_length(state->'done'))
$$;

revoke all on function public.register_enterprise(jsonb), public.checkpoint_get(uuid, text, text),
  public.checkpoint_save(uuid, text, text, timestamptz, timestamptz, jsonb),
  public.checkpoint_window_done(uuid, text, text, text) from public, anon, authenticated;
grant execute on function public.register_enterprise(jsonb), public.checkpoint_get(uuid, text, text),
  public.checkpoint_save(uuid, text, text, timestamptz, timestamptz, jsonb),
  public.checkpoint_window_done(uuid, text, text, text) to service_role;

-- Guest ids of a chain in pages (keyset), for sweeps such as identity documents.
create or replace function public.guest_ids_page(p_chain_id uuid, p_after uuid default null, p_limit integer default 1000)
returns jsonb
language sql stable set search_path = ''
as $$
  select coalesce(jsonb_agg(mews_id order by mews_id), '[]'::jsonb)
  from (select mews_id from public.guests
         where chain_id = p_chain_id and is_active and (p_after is null or mews_id > p_after)
         order by mews_id limit least(p_limit, 1000)) g
$$;
revoke all on function public.guest_ids_page(uuid, uuid, integer) from public, anon, authenticated;
grant execute on function public.guest_ids_page(uuid, uuid, integer) to service_role;
