-- Duplicate suggestions kept up to date in proportion to what changed (issue 18, item 5).
--
-- * app.duplicate_models: a chain's model (the u-probability of every comparison level, the
--   number of guests, the cap from which a value is uninformative), estimated by a full pass
--   and read by every update around one guest.
-- * app.duplicate_guests: per active guest, a digest of what the matcher reads of it (names,
--   birth date, e-mail, phone) and its blocking keys (64-bit digests of kind and value); a full
--   pass rewrites only the guests whose digest changed.
-- * app.duplicate_keys: the blocking keys, indexed: a changed guest's candidates are the guests
--   that share a key with it (a key held by more profiles than its cap pairs no one).
-- * app.duplicate_counts: how many profiles hold a name or birth date (values held by two or
--   more), as of the last full pass: what an exact name weighs.
--
-- The full pass (shared/quality/duplicates.py rebuild) reads guests with their digests
-- (quality_duplicates_read), writes only the pairs that changed (quality_duplicates_put, which
-- stays the one writer of suggestions) and removes the pairs it no longer finds
-- (quality_duplicates_forget); guests queued by quality_facts_put (app.quality_duplicate_queue)
-- are claimed a page at a time (quality_duplicates_claim), their candidates looked up by key
-- (quality_duplicates_around) and their pairs replaced. Nothing queued: nothing is read again.

create table app.duplicate_models (
  chain_id uuid primary key,
  model jsonb not null constraint duplicate_models_model_max_65536_bytes check (pg_column_size(model) <= 65536),
  guests integer not null check (guests >= 0),
  counts_digest text constraint duplicate_models_counts_digest_max_64_chars check (char_length(counts_digest) <= 64),
  estimated_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table app.duplicate_guests (
  chain_id uuid not null,
  guest_mews_id uuid not null,
  digest bigint not null,
  keys bigint[] not null default '{}' constraint duplicate_guests_keys_max_64 check (cardinality(keys) <= 64),
  primary key (chain_id, guest_mews_id)
);

create table app.duplicate_keys (
  chain_id uuid not null,
  key bigint not null,
  guest_mews_id uuid not null
);
create index duplicate_keys_key_idx on app.duplicate_keys (chain_id, key);

create table app.duplicate_counts (
  chain_id uuid not null,
  key bigint not null,
  held integer not null,
  primary key (chain_id, key)
);

alter table app.duplicate_models enable row level security;
alter table app.duplicate_guests enable row level security;
alter table app.duplicate_keys enable row level security;
alter table app.duplicate_counts enable row level security;
revoke all on app.duplicate_models, app.duplicate_guests, app.duplicate_keys, app.duplicate_counts
  from public, anon, authenticated, service_role;
grant select, insert, update, delete on app.duplicate_models, app.duplicate_guests,
  app.duplicate_keys, app.duplicate_counts to service_role;

-- What the matcher reads of a guest, as an array (compact pages): id, first name, last name,
-- birth date, e-mail (no OTA relay), E.164 phone.
create or replace function app.duplicate_input(g public.guests, f public.guest_facts) returns jsonb
language sql immutable set search_path = ''
as $$
  select jsonb_build_array(g.mews_id, g.first_name, g.last_name, g.birth_date,
                           case when not g.has_ota_email then f.email_normalized end, f.phone_e164)
$$;

-- A page of a chain's active guests (ids after p_after) with the digest stored for each, as
-- arrays (app.duplicate_input's order, then the digest). json, not jsonb: a page of 50,000 is
-- built three times faster, and it is only ever sent.
create or replace function public.quality_duplicates_read(
  p_chain_id uuid, p_after uuid default null, p_limit integer default 20000
) returns json
language sql stable set search_path = ''
as $$
  with page as (
    select g.mews_id, g.first_name, g.last_name, g.birth_date,
           case when not g.has_ota_email then f.email_normalized end as email, f.phone_e164, d.digest
    from public.guests g
    left join public.guest_facts f on f.chain_id = g.chain_id and f.guest_mews_id = g.mews_id
    left join app.duplicate_guests d on d.chain_id = g.chain_id and d.guest_mews_id = g.mews_id
    where g.chain_id = p_chain_id and g.is_active
      and g.mews_id > coalesce(p_after, '00000000-0000-0000-0000-000000000000')
    order by g.mews_id
    limit least(greatest(p_limit, 1), 50000))
  select json_build_object(
    'guests', coalesce((select json_agg(json_build_array(p.mews_id, p.first_name, p.last_name,
                                          p.birth_date, p.email, p.phone_e164, p.digest) order by p.mews_id)
                        from page p), '[]'::json),
    'next', (select p.mews_id from page p
             where (select count(*) from page) >= least(greatest(p_limit, 1), 50000)
             order by p.mews_id desc limit 1))
$$;

-- The chain's stored model (null before its first full pass) and how many guests it has keys
-- of ('keyed': more than the active guests read with a digest means some are no longer active).
create or replace function public.quality_duplicates_model(p_chain_id uuid) returns jsonb
language sql stable set search_path = ''
as $$
  select jsonb_build_object('model', m.model, 'guests', m.guests, 'counts_digest', m.counts_digest,
                            'estimated_at', m.estimated_at,
                            'keyed', (select count(*) from app.duplicate_guests d where d.chain_id = p_chain_id))
  from app.duplicate_models m where m.chain_id = p_chain_id
$$;

create or replace function public.quality_duplicates_model_put(
  p_chain_id uuid, p_model jsonb, p_guests integer, p_counts_digest text, p_estimated boolean
) returns void
language sql set search_path = ''
as $$
  insert into app.duplicate_models as m (chain_id, model, guests, counts_digest)
  values (p_chain_id, p_model, p_guests, p_counts_digest)
  on conflict (chain_id) do update
    set model = excluded.model, guests = excluded.guests, counts_digest = excluded.counts_digest,
        estimated_at = case when p_estimated then now() else m.estimated_at end, updated_at = now()
$$;

-- Counts of names and birth dates ([[key, held], ...]); p_replace: the chain's first page.
create or replace function public.quality_duplicates_counts_put(
  p_chain_id uuid, p_counts jsonb, p_replace boolean
) returns integer
language plpgsql set search_path = ''
as $$
declare
  v_rows integer;
begin
  if jsonb_typeof(p_counts) is distinct from 'array' or jsonb_array_length(p_counts) > 200000 then
    raise exception 'p_counts must be an array of at most 200000 counts' using errcode = '22023';
  end if;
  if p_replace then
    delete from app.duplicate_counts c where c.chain_id = p_chain_id;
  end if;
  insert into app.duplicate_counts (chain_id, key, held)
  select p_chain_id, (c->>0)::bigint, (c->>1)::integer
  from jsonb_array_elements(p_counts) c
  order by 2
  on conflict (chain_id, key) do update set held = excluded.held;
  get diagnostics v_rows = row_count;
  return v_rows;
end
$$;

-- Replace the digest and blocking keys of some guests ([{"id", "digest", "keys": [...]}]).
create or replace function app.duplicate_keys_replace(p_chain_id uuid, p_guests jsonb, p_index boolean default true)
returns integer
language plpgsql set search_path = ''
as $$
declare
  v_rows integer;
begin
  -- each old key looked up by the key index, whatever the statistics say (a join here was
  -- planned as a sort of every key of the chain: 14 s at 1M guests)
  delete from app.duplicate_keys k
   where k.ctid = any (array(
     select x.ctid
     from app.duplicate_guests d
     join jsonb_to_recordset(p_guests) as n(id uuid) on d.guest_mews_id = n.id
     cross join lateral unnest(d.keys) as o(key)
     cross join lateral (select k2.ctid from app.duplicate_keys k2
                          where k2.chain_id = p_chain_id and k2.key = o.key
                            and k2.guest_mews_id = d.guest_mews_id) x
     where d.chain_id = p_chain_id));
  insert into app.duplicate_guests as d (chain_id, guest_mews_id, digest, keys)
  select p_chain_id, n.id, n.digest, coalesce(n.keys, '{}')
  from jsonb_to_recordset(p_guests) as n(id uuid, digest bigint, keys bigint[])
  on conflict (chain_id, guest_mews_id) do update set digest = excluded.digest, keys = excluded.keys;
  get diagnostics v_rows = row_count;
  if p_index then
    insert into app.duplicate_keys (chain_id, key, guest_mews_id)
    select p_chain_id, k.key, n.id
    from jsonb_to_recordset(p_guests) as n(id uuid, keys bigint[]), unnest(n.keys) as k(key)
    order by k.key;
  end if;
  return v_rows;
end
$$;

-- p_index false: the guests' digests and keys recorded, old keys removed, the new ones not
-- indexed yet (a full pass then adds every key in the order of the index:
-- quality_duplicates_keys_add, several times faster than in the order of the guests).
create or replace function public.quality_duplicates_keys_put(
  p_chain_id uuid, p_guests jsonb, p_index boolean default true
) returns integer
language plpgsql set search_path = ''
as $$
begin
  if jsonb_typeof(p_guests) is distinct from 'array' or jsonb_array_length(p_guests) > 50000 then
    raise exception 'p_guests must be an array of at most 50000 guests' using errcode = '22023';
  end if;
  return app.duplicate_keys_replace(p_chain_id, p_guests, p_index);
end
$$;

-- Index keys ([[key, guest], ...], in key order) of guests recorded with p_index false.
create or replace function public.quality_duplicates_keys_add(p_chain_id uuid, p_keys jsonb)
returns integer
language plpgsql set search_path = ''
as $$
declare
  v_rows integer;
begin
  if jsonb_typeof(p_keys) is distinct from 'array' or jsonb_array_length(p_keys) > 200000 then
    raise exception 'p_keys must be an array of at most 200000 keys' using errcode = '22023';
  end if;
  insert into app.duplicate_keys (chain_id, key, guest_mews_id)
  select p_chain_id, (k->>0)::bigint, (k->>1)::uuid from jsonb_array_elements(p_keys) k;
  get diagnostics v_rows = row_count;
  return v_rows;
end
$$;

-- Forget the keys of guests no longer active (merged away, deleted), a range of ids at a time
-- (ids from p_from, before p_to); how many.
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
                            where k2.chain_id = p_chain_id and k2.key = o.key
                              and k2.guest_mews_id = gone.guest_mews_id) x)))
  select count(*) into v_gone from gone;
  return v_gone;
end
$$;

-- A page of a chain's stored pairs ([[a, b, probability, weight, evidence]]), after (a, b).
create or replace function public.quality_duplicates_pairs(
  p_chain_id uuid, p_after jsonb default null, p_limit integer default 20000
) returns jsonb
language sql stable set search_path = ''
as $$
  with page as (
    select d.guest_a, d.guest_b, d.probability, d.match_weight, d.evidence
    from public.guest_duplicates d
    where d.chain_id = p_chain_id
      and (p_after is null or (d.guest_a, d.guest_b) > ((p_after->>0)::uuid, (p_after->>1)::uuid))
    order by d.guest_a, d.guest_b
    limit least(greatest(p_limit, 1), 50000))
  select jsonb_build_object(
    'pairs', coalesce((select jsonb_agg(jsonb_build_array(p.guest_a, p.guest_b, p.probability, p.match_weight, p.evidence)
                                        order by p.guest_a, p.guest_b) from page p), '[]'::jsonb),
    'next', (select jsonb_build_array(p.guest_a, p.guest_b) from page p
             where (select count(*) from page) >= least(greatest(p_limit, 1), 50000)
             order by p.guest_a desc, p.guest_b desc limit 1))
$$;

-- Remove pairs ([[a, b], ...]) a pass no longer finds; how many.
create or replace function public.quality_duplicates_forget(p_chain_id uuid, p_pairs jsonb)
returns integer
language plpgsql set search_path = ''
as $$
declare
  v_gone integer;
begin
  if jsonb_typeof(p_pairs) is distinct from 'array' or jsonb_array_length(p_pairs) > 50000 then
    raise exception 'p_pairs must be an array of at most 50000 pairs' using errcode = '22023';
  end if;
  delete from public.guest_duplicates d
   using jsonb_array_elements(p_pairs) p
   where d.chain_id = p_chain_id and d.guest_a = (p->>0)::uuid and d.guest_b = (p->>1)::uuid;
  get diagnostics v_gone = row_count;
  return v_gone;
end
$$;

-- Up to p_limit queued guests of a chain (the oldest first): what the matcher reads of each
-- (null: no longer active), the model, and when they were claimed. The queue rows stay until
-- quality_duplicates_done.
create or replace function public.quality_duplicates_claim(p_chain_id uuid, p_limit integer default 200)
returns jsonb
language sql stable set search_path = ''
as $$
  with queued as (
    select q.guest_mews_id, q.queued_at from app.quality_duplicate_queue q
     where q.chain_id = p_chain_id order by q.queued_at, q.guest_mews_id
     limit least(greatest(p_limit, 1), 1000))
  select jsonb_build_object(
    'claimed_at', (select max(q.queued_at) from queued q),
    'ids', coalesce((select jsonb_agg(q.guest_mews_id) from queued q), '[]'::jsonb),
    'guests', coalesce((
      select jsonb_agg(app.duplicate_input(g, f))
      from queued q
      join public.guests g on g.chain_id = p_chain_id and g.mews_id = q.guest_mews_id and g.is_active
      left join public.guest_facts f on f.chain_id = p_chain_id and f.guest_mews_id = g.mews_id), '[]'::jsonb),
    'model', (select public.quality_duplicates_model(p_chain_id)),
    'more', (select count(*) from queued) >= least(greatest(p_limit, 1), 1000))
$$;

-- Around some guests whose keys are given ([{"id", "digest", "keys": [...], "caps": [...]}]):
-- their keys replaced, then, per key, how many active profiles hold it and (when no more than
-- its cap) who; the inputs of those candidates; the counts asked for (p_counts: keys of names
-- and birth dates); the pairs stored around these guests.
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
  perform app.duplicate_keys_replace(p_chain_id, p_guests);
  v_ids := array(select (r->>'id')::uuid from jsonb_array_elements(p_guests) r);
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
             where k.chain_id = p_chain_id and k.key = a.key
             limit a.cap + 1) x) h)
  select jsonb_build_object(
    'held', coalesce((select jsonb_object_agg(h.key::text,
                        -- the count of a key past its cap, all of it: what the evidence says
                        case when h.size > h.cap
                             then (select count(*) from app.duplicate_keys k where k.chain_id = p_chain_id and k.key = h.key)
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

-- The guests of a claim are done: their pairs no longer found removed, inactive guests' keys
-- forgotten, their queue rows removed (unless queued again after p_claimed_at).
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
                          where k2.chain_id = p_chain_id and k2.key = o.key
                            and k2.guest_mews_id = gone.guest_mews_id) x));
  delete from app.quality_duplicate_queue q
   where q.chain_id = p_chain_id and q.guest_mews_id = any (v_ids) and q.queued_at <= p_claimed_at;
  return v_gone;
end
$$;

revoke all on function app.duplicate_input(public.guests, public.guest_facts),
  app.duplicate_keys_replace(uuid, jsonb, boolean),
  public.quality_duplicates_read(uuid, uuid, integer), public.quality_duplicates_model(uuid),
  public.quality_duplicates_model_put(uuid, jsonb, integer, text, boolean),
  public.quality_duplicates_counts_put(uuid, jsonb, boolean),
  public.quality_duplicates_keys_put(uuid, jsonb, boolean), public.quality_duplicates_keys_add(uuid, jsonb),
  public.quality_duplicates_keys_prune(uuid, uuid, uuid),
  public.quality_duplicates_pairs(uuid, jsonb, integer), public.quality_duplicates_forget(uuid, jsonb),
  public.quality_duplicates_claim(uuid, integer), public.quality_duplicates_around(uuid, jsonb, jsonb),
  public.quality_duplicates_done(uuid, jsonb, jsonb, timestamptz)
  from public, anon, authenticated, service_role;
grant execute on function app.duplicate_input(public.guests, public.guest_facts),
  app.duplicate_keys_replace(uuid, jsonb, boolean),
  public.quality_duplicates_read(uuid, uuid, integer), public.quality_duplicates_model(uuid),
  public.quality_duplicates_model_put(uuid, jsonb, integer, text, boolean),
  public.quality_duplicates_counts_put(uuid, jsonb, boolean),
  public.quality_duplicates_keys_put(uuid, jsonb, boolean), public.quality_duplicates_keys_add(uuid, jsonb),
  public.quality_duplicates_keys_prune(uuid, uuid, uuid),
  public.quality_duplicates_pairs(uuid, jsonb, integer), public.quality_duplicates_forget(uuid, jsonb),
  public.quality_duplicates_claim(uuid, integer), public.quality_duplicates_around(uuid, jsonb, jsonb),
  public.quality_duplicates_done(uuid, jsonb, jsonb, timestamptz)
  to service_role;
