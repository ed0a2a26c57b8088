-- A full pass indexes the blocking keys of many guests (all of them the first time: 6.1M keys at
-- 1.19M guests) a range of key values per call, as text (comma-separated keys and guest ids in
-- the same order: parsed by string_to_array, several times faster than a jsonb array of
-- pairs), sorted here: each call appends to one stretch of the index instead of inserting all
-- over it. It replaces quality_duplicates_keys_add (jsonb pairs, sorted by the caller: 37.6 s
-- of database and 18.8 s of sorting in Python at 1.19M guests).

drop function public.quality_duplicates_keys_add(uuid, jsonb);

-- The code that comes with this migration digests keys and counts with XXH3 (keys_version 2):
-- what the tables hold was digested another way and would match nothing. They are derived
-- data: emptied, the next full pass of each chain rebuilds them the fast way (a first pass, no
-- old key to remove one by one), and until then an update waits for it (keys_version).
truncate app.duplicate_keys, app.duplicate_guests, app.duplicate_counts;

create function public.quality_duplicates_keys_index(p_chain_id uuid, p_keys text, p_guests text)
returns integer
language plpgsql set search_path = '' set work_mem = '64MB'
as $$
declare
  v_keys bigint[];
  v_guests uuid[];
  v_rows integer;
begin
  -- at most 1,000,000 keys: 20 digits, a sign and a comma each; 36 characters and a comma per id
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
  insert into app.duplicate_keys (chain_id, key, guest_mews_id)
  select p_chain_id, k.key, k.guest from unnest(v_keys, v_guests) as k(key, guest) order by k.key;
  get diagnostics v_rows = row_count;
  return v_rows;
end
$$;

revoke all on function public.quality_duplicates_keys_index(uuid, text, text)
  from public, anon, authenticated, service_role;
grant execute on function public.quality_duplicates_keys_index(uuid, text, text) to service_role;
