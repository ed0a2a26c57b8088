-- Blocking keys indexed by (key, guest), each key digested with its chain (keys_version 3).
--
-- A guest's old keys were removed by looking each one up in the (chain_id, key) index and
-- filtering the guest out of the key's members: a common key ('n:smith|j') has thousands, so
-- re-keying 2,000 changed guests read 24M index entries (7.4 s at 1.19M guests) and a full pass
-- after a bulk change sent 20,000 a call: far past the API's 8 s, a pass that could never
-- finish. Now the index is (key, guest_mews_id): each old key is one exact lookup. The chain
-- is folded into the key's digest (XXH3 seeded by the chain id, made by the caller) instead of
-- a column, so the index costs what the old one did (measured at 6.1M keys: 15.4 s to write
-- sorted, against 16.0 s for (chain_id, key) and 17.8 s for (chain_id, key, guest_mews_id)).
-- Two chains' keys that digest alike (one chance in 2^64 a pair) only lend a guest of the other
-- chain as a member: every read of candidates joins public.guests on the chain.
--
-- A guest's keys and digest are recorded as text (ids, digests, and each guest's keys
-- space-separated, ';' after each guest), parsed once: a jsonb array of objects was parsed
-- twice per call (the old keys' removal and the upsert), 150 ms per 20,000 guests.

drop function public.quality_duplicates_keys_put(uuid, jsonb, boolean);
drop function public.quality_duplicates_keys_index(uuid, text, text);
drop function app.duplicate_keys_replace(uuid, jsonb, boolean);

drop table app.duplicate_keys;
create table app.duplicate_keys (
  key bigint not null,
  guest_mews_id uuid not null
);
create index duplicate_keys_key_guest_idx on app.duplicate_keys (key, guest_mews_id);
alter table app.duplicate_keys enable row level security;
revoke all on app.duplicate_keys from public, anon, authenticated, service_role;
grant select, insert, update, delete on app.duplicate_keys to service_role;

-- derived data digested another way: the next full pass of each chain writes every guest's keys
-- again (a first pass: nothing to remove), and until then an update waits (keys_version)
truncate app.duplicate_guests;

-- The guests' digests and keys replaced: p_ids, p_digests and p_keys (each guest's keys as
-- text, space-separated) in the same order. p_index false: recorded, not indexed yet (a full
-- pass indexes many guests' keys a key range at a time: quality_duplicates_keys_index).
create function app.duplicate_keys_replace(
  p_chain_id uuid, p_ids uuid[], p_digests bigint[], p_keys text[], p_index boolean default true
) returns integer
language plpgsql set search_path = ''
as $$
declare
  v_rows integer;
begin
  if coalesce(cardinality(p_ids), 0) <> coalesce(cardinality(p_digests), 0)
     or coalesce(cardinality(p_ids), 0) <> coalesce(cardinality(p_keys), 0) then
    raise exception 'p_ids, p_digests and p_keys must hold one entry per guest' using errcode = '22023';
  end if;
  -- each old key looked up by (key, guest): one index entry each, however common the key
  delete from app.duplicate_keys k
   where k.ctid = any (array(
     select x.ctid
     from app.duplicate_guests d
     cross join lateral unnest(d.keys) as o(key)
     cross join lateral (select k2.ctid from app.duplicate_keys k2
                          where k2.key = o.key and k2.guest_mews_id = d.guest_mews_id) x
     where d.chain_id = p_chain_id and d.guest_mews_id = any (p_ids)));
  insert into app.duplicate_guests as d (chain_id, guest_mews_id, digest, keys)
  select p_chain_id, n.id, n.digest, coalesce(string_to_array(n.keys, ' ')::bigint[], '{}')
  from unnest(p_ids, p_digests, p_keys) as n(id, digest, keys)
  on conflict (chain_id, guest_mews_id) do update set digest = excluded.digest, keys = excluded.keys;
  get diagnostics v_rows = row_count;
  if p_index then
    insert into app.duplicate_keys (key, guest_mews_id)
    select k.key, n.id
    from unnest(p_ids, p_keys) as n(id, keys),
         unnest(string_to_array(n.keys, ' ')::bigint[]) as k(key)
    order by k.key;
  end if;
  return v_rows;
end
$$;

-- p_ids and p_digests comma-separated, p_keys each guest's keys space-separated with ';' after
-- each guest (so that a guest with no keys is an empty entry, not none), all in one order.
create function public.quality_duplicates_keys_put(
  p_chain_id uuid, p_ids text, p_digests text, p_keys text, p_index boolean default true
) returns integer
language plpgsql set search_path = ''
as $$
declare
  v_ids uuid[];
  v_digests bigint[];
  v_keys text[];
begin
  -- at most 50,000 guests of at most 64 keys
  if p_ids is null or p_digests is null or p_keys is null or octet_length(p_ids) > 1850000
     or octet_length(p_digests) > 1050000 or octet_length(p_keys) > 70000000 then
    raise exception 'p_ids, p_digests and p_keys must describe at most 50000 guests' using errcode = '22023';
  end if;
  if p_ids = '' and p_digests = '' and p_keys = '' then
    return 0;  -- no guest
  end if;
  v_ids := coalesce(string_to_array(nullif(p_ids, ''), ',')::uuid[], '{}');
  v_digests := coalesce(string_to_array(nullif(p_digests, ''), ',')::bigint[], '{}');
  v_keys := string_to_array(p_keys, ';');
  if cardinality(v_keys) <> cardinality(v_ids) + 1 or v_keys[cardinality(v_keys)] <> '' then
    raise exception 'p_keys must end each of the % guests with '';''', cardinality(v_ids)
      using errcode = '22023';
  end if;
  return app.duplicate_keys_replace(p_chain_id, v_ids, v_digests, v_keys[1:cardinality(v_ids)], p_index);
end
$$;

-- Keys of guests recorded with p_index false, a range of key values per call: p_keys and
-- p_guests comma-separated, in the same order (at most 1,000,000), sorted here so that each call
-- writes one stretch of the index. The keys carry their chain (in their digest).
create function public.quality_duplicates_keys_index(p_keys text, p_guests text)
returns integer
language plpgsql set search_path = '' set work_mem = '64MB'
as $$
declare
  v_keys bigint[];
  v_guests uuid[];
  v_rows integer;
begin
  if p_keys is null or p_guests is null or octet_length(p_keys) > 22000000
     or octet_length(p_guests) > 37000000 then
    raise exception 'p_keys and p_guests must hold at most 1000000 keys and guest ids' using errcode = '22023';
  end if;
  v_keys := string_to_array(nullif(p_keys, ''), ',')::bigint[];
  v_guests := string_to_array(nullif(p_guests, ''), ',')::uuid[];
  if coalesce(cardinality(v_keys), 0) <> coalesce(cardinality(v_guests), 0) then
    raise exception 'p_keys holds % keys but p_guests % guest ids', coalesce(cardinality(v_keys), 0),
      coalesce(cardinality(v_guests), 0) using errcode = '22023';
  end if;
  insert into app.duplicate_keys (key, guest_mews_id)
  select k.key, k.guest from unnest(v_keys, v_guests) as k(key, guest) order by k.key, k.guest;
  get diagnostics v_rows = row_count;
  return v_rows;
end
$$;

-- The keys of guests no longer active forgotten, a range of ids at a time (from p_from, before
-- p_to); how many guests.
create or replace function public.quality_duplicates_keys_prune(
  p_chain_id uuid, p_from uuid default null, p_to uuid default null
) returns integer
language plpgsql set search_path = ''
as $$
declare
  v_gone integer;
begin
  with gone as (
    delete from app.duplicate_guests d
     where d.chain_id = p_chain_id
       and d.guest_mews_id >= coalesce(p_from, '00000000-0000-0000-0000-000000000000')
       and (p_to is null or d.guest_mews_id < p_to)
       and not exists (select 1 from public.guests g where g.chain_id = d.chain_id
                        and g.mews_id = d.guest_mews_id and g.is_active)
    returning d.guest_mews_id, d.keys),
  keys as (
    delete from app.duplicate_keys k
     where k.ctid = any (array(
       select x.ctid from gone cross join lateral unnest(gone.keys) as o(key)
       cross join lateral (select k2.ctid from app.duplicate_keys k2
                            where k2.key = o.key and k2.guest_mews_id = gone.guest_mews_id) x)))
  select count(*) into v_gone from gone;
  return v_gone;
end
$$;

-- As before (20261206140000), the changed guests' keys replaced through the arrays above and
-- the members of a key read by key alone.
create or replace function public.quality_duplicates_around(
  p_chain_id uuid, p_guests jsonb, p_counts jsonb default '[]'
) returns jsonb
language plpgsql set search_path = ''
as $$
declare
  v_keys jsonb;
  v_ids uuid[];
begin
  if jsonb_typeof(p_guests) is distinct from 'array' or jsonb_array_length(p_guests) > 1000 then
    raise exception 'p_guests must be an array of at most 1000 guests' using errcode = '22023';
  end if;
  v_ids := array(select (r->>'id')::uuid from jsonb_array_elements(p_guests) with ordinality as e(r, i) order by i);
  perform app.duplicate_keys_replace(
    p_chain_id, v_ids,
    array(select (r->>'digest')::bigint from jsonb_array_elements(p_guests) with ordinality as e(r, i) order by i),
    array(select coalesce((select string_agg(x, ' ') from jsonb_array_elements_text(r->'keys') x), '')
          from jsonb_array_elements(p_guests) with ordinality as e(r, i) order by i));
  with asked as (
    select distinct k.key, k.cap
    from jsonb_to_recordset(p_guests) as r(keys bigint[], caps integer[])
    cross join lateral unnest(r.keys, r.caps) as k(key, cap)),
  held as (
    select a.key, a.cap, h.ids, h.size
    from asked a
    cross join lateral (
      select array_agg(x.guest_mews_id) as ids, count(*)::integer as size
      from (select k.guest_mews_id from app.duplicate_keys k
             where k.key = a.key
             limit a.cap + 1) x) h)
  select jsonb_build_object(
    'held', coalesce((select jsonb_object_agg(h.key::text,
                        -- the count of a key past its cap, all of it: what the evidence says
                        case when h.size > h.cap
                             then (select count(*) from app.duplicate_keys k where k.key = h.key)
                             else h.size end) from held h), '{}'::jsonb),
    'members', coalesce((select jsonb_object_agg(h.key::text, to_jsonb(h.ids)) from held h
                          where h.size between 2 and h.cap), '{}'::jsonb),
    'candidates', coalesce((
      select jsonb_agg(app.duplicate_input(g, f))
      from (select distinct unnest(h.ids) as id from held h where h.size between 2 and h.cap) c
      join public.guests g on g.chain_id = p_chain_id and g.mews_id = c.id and g.is_active
      left join public.guest_facts f on f.chain_id = p_chain_id and f.guest_mews_id = g.mews_id
      where c.id <> all (v_ids)), '[]'::jsonb),
    'counts', coalesce((select jsonb_object_agg(c.key::text, c.held) from app.duplicate_counts c
                         where c.chain_id = p_chain_id
                           and c.key in (select (x #>> '{}')::bigint from jsonb_array_elements(p_counts) x)), '{}'::jsonb),
    'pairs', coalesce((
      select jsonb_agg(jsonb_build_array(d.guest_a, d.guest_b, d.probability, d.match_weight, d.evidence))
      from public.guest_duplicates d
      where d.chain_id = p_chain_id and (d.guest_a = any (v_ids) or d.guest_b = any (v_ids))), '[]'::jsonb))
  into v_keys;
  return v_keys;
end
$$;

create or replace function public.quality_duplicates_done(
  p_chain_id uuid, p_ids jsonb, p_forget jsonb, p_claimed_at timestamptz
) returns integer
language plpgsql set search_path = ''
as $$
declare
  v_ids uuid[] := array(select (x #>> '{}')::uuid from jsonb_array_elements(p_ids) x);
  v_gone integer;
begin
  v_gone := public.quality_duplicates_forget(p_chain_id, p_forget);
  with gone as (
    delete from app.duplicate_guests d
     where d.chain_id = p_chain_id and d.guest_mews_id = any (v_ids)
       and not exists (select 1 from public.guests g where g.chain_id = d.chain_id
                        and g.mews_id = d.guest_mews_id and g.is_active)
    returning d.guest_mews_id, d.keys)
  delete from app.duplicate_keys k
   where k.ctid = any (array(
     select x.ctid from gone cross join lateral unnest(gone.keys) as o(key)
     cross join lateral (select k2.ctid from app.duplicate_keys k2
                          where k2.key = o.key and k2.guest_mews_id = gone.guest_mews_id) x));
  delete from app.quality_duplicate_queue q
   where q.chain_id = p_chain_id and q.guest_mews_id = any (v_ids) and q.queued_at <= p_claimed_at;
  return v_gone;
end
$$;

revoke all on function app.duplicate_keys_replace(uuid, uuid[], bigint[], text[], boolean),
  public.quality_duplicates_keys_put(uuid, text, text, text, boolean),
  public.quality_duplicates_keys_index(text, text)
  from public, anon, authenticated, service_role;
grant execute on function app.duplicate_keys_replace(uuid, uuid[], bigint[], text[], boolean),
  public.quality_duplicates_keys_put(uuid, text, text, text, boolean),
  public.quality_duplicates_keys_index(text, text)
  to service_role;
