-- The database API for mirror tables: a batch upsert guarded by the Mews UpdatedUtc.
--
-- A stored row is overwritten only when the incoming (mews_updated_utc, raw_hash) is greater
-- than the stored one. UpdatedUtc decides; equal timestamps with different content break the
-- tie on the md5 of the raw JSON, so every arrival order ends in the same state; a replay
-- (same timestamp, same content) changes nothing, not even synced_at.
--
-- One generic implementation (app.guarded_upsert) serves every mirror table: the conflict key
-- is the table's primary key, the clock column is `mews_updated_utc`, and the columns are those
-- of the table, so a new typed column needs no change here. Entities Mews gives no clock
-- (identity documents; companies may lack one): when neither side has a timestamp, the latest
-- fetch wins.

create or replace function app.guarded_upsert(p_table regclass, p_rows jsonb, p_max_rows integer default 1000)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_keys text;
  v_cols text;
  v_select text;
  v_updates text;
  v_result jsonb;
begin
  if p_rows is null or jsonb_typeof(p_rows) <> 'array' then
    raise exception 'p_rows must be a JSON array of rows' using errcode = '22023';
  end if;
  if jsonb_array_length(p_rows) > p_max_rows then
    raise exception 'a page holds at most % rows, got %', p_max_rows, jsonb_array_length(p_rows)
      using errcode = '22023';
  end if;

  select string_agg(quote_ident(a.attname), ', ' order by array_position(i.indkey::int2[], a.attnum))
    into v_keys
  from pg_index i
  join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any (i.indkey)
  where i.indrelid = p_table and i.indisprimary;

  select string_agg(quote_ident(a.attname), ', ' order by a.attnum),
         string_agg(case when a.attname = 'raw_hash' then 'md5(r.raw::text)'
                         when a.attname = 'synced_at' then 'now()'
                         else 'r.' || quote_ident(a.attname) end
                    || ' as ' || quote_ident(a.attname), ', ' order by a.attnum),
         string_agg(format('%1$I = excluded.%1$I', a.attname), ', ' order by a.attnum)
    into v_cols, v_select, v_updates
  from pg_attribute a
  where a.attrelid = p_table and a.attnum > 0 and not a.attisdropped
    -- local_* and push_* columns are ours (edits waiting for Mews), never written from Mews
    and a.attname not like 'local\_%' and a.attname not like 'push\_%';

  execute format($f$
    with incoming as (
      select distinct on (%1$s) %3$s
      from jsonb_populate_recordset(null::%5$s, $1) as r
      order by %1$s, coalesce(r.mews_updated_utc, '-infinity') desc, raw_hash desc
    ),
    written as (
      insert into %5$s as t (%2$s)
      select %2$s from incoming
      on conflict (%1$s) do update set %4$s
      where excluded.raw_hash is distinct from t.raw_hash
        and ((excluded.mews_updated_utc is null and t.mews_updated_utc is null)
             or (coalesce(excluded.mews_updated_utc, '-infinity'), excluded.raw_hash)
                > (coalesce(t.mews_updated_utc, '-infinity'), t.raw_hash))
      returning (xmax = 0) as inserted
    )
    select jsonb_build_object(
      'received', jsonb_array_length($1),
      'inserted', count(*) filter (where inserted),
      'updated', count(*) filter (where not inserted),
      'unchanged', (select count(*) from incoming) - count(*)
    ) from written
  $f$, v_keys, v_cols, v_select, v_updates, p_table)
  into v_result
  using p_rows;
  return v_result;
end
$$;

revoke all on function app.guarded_upsert(regclass, jsonb, integer) from public;

create or replace function public.upsert_guests(p_rows jsonb) returns jsonb
language sql set search_path = ''
as $$ select app.guarded_upsert('public.guests'::regclass, p_rows) $$;

create or replace function public.upsert_guest_addresses(p_rows jsonb) returns jsonb
language sql set search_path = ''
as $$ select app.guarded_upsert('public.guest_addresses'::regclass, p_rows) $$;

create or replace function public.upsert_guest_identity_documents(p_rows jsonb) returns jsonb
language sql set search_path = ''
as $$ select app.guarded_upsert('public.guest_identity_documents'::regclass, p_rows) $$;

create or replace function public.upsert_vendors(p_rows jsonb) returns jsonb
language sql set search_path = ''
as $$ select app.guarded_upsert('public.vendors'::regclass, p_rows) $$;

create or replace function public.upsert_resources(p_rows jsonb) returns jsonb
language sql set search_path = ''
as $$ select app.guarded_upsert('public.resources'::regclass, p_rows) $$;

create or replace function public.upsert_reservations(p_rows jsonb) returns jsonb
language sql set search_path = ''
as $$ select app.guarded_upsert('public.reservations'::regclass, p_rows) $$;

revoke all on function public.upsert_guests(jsonb), public.upsert_guest_addresses(jsonb),
  public.upsert_guest_identity_documents(jsonb), public.upsert_vendors(jsonb),
  public.upsert_resources(jsonb), public.upsert_reservations(jsonb) from public, anon, authenticated;
grant execute on function public.upsert_guests(jsonb), public.upsert_guest_addresses(jsonb),
  public.upsert_guest_identity_documents(jsonb), public.upsert_vendors(jsonb),
  public.upsert_resources(jsonb), public.upsert_reservations(jsonb) to service_role;
grant execute on function app.guarded_upsert(regclass, jsonb, integer) to service_role;
