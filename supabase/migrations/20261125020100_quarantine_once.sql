-- The quarantine keeps one entry per record version, and says when the record came right.
--
-- An entry is (entity, scope_id, mews_id, raw_hash): the same malformed record read again by a
-- poll, a backfill or a reconcile is one entry whose `sightings` grows (first and last seen),
-- not a new row each time. A new version of the record (other raw JSON) is a new entry. When a
-- valid version of the record is stored later, its open entries get `resolved_at`
-- (quarantine_resolve, called after each successful upsert). quarantine_add takes any input:
-- items that are not objects, scope ids that are not UUIDs, raw JSON of any type, an unknown run.
--
-- Also: a backfill window is recorded done once however many loads finish it, and a restarted
-- backfill clears its checkpoint (checkpoint_reset) so that an interrupted restart resumes.

-- 1. Columns. raw_hash is derived from what is kept, so it cannot disagree with it.
alter table public.quarantine
  add column raw_hash text not null
    generated always as (md5(coalesce(raw::text, '') || '|' || coalesce(raw_text, ''))) stored,
  add column sightings integer not null default 1 check (sightings > 0),
  add column first_seen_at timestamptz not null default now(),
  add column last_seen_at timestamptz not null default now();
update public.quarantine set first_seen_at = created_at, last_seen_at = created_at;

-- 2. Existing duplicates merge into their oldest row: the sightings add up, the latest reason
-- and run stay, and the entry is open unless every copy was resolved.
with keyed as (
  select q.id,
         min(q.id) over k as keep_id,
         count(*) over k as copies,
         min(q.created_at) over k as first_seen,
         max(q.created_at) over k as last_seen,
         bool_and(q.resolved_at is not null) over k as all_resolved,
         max(q.resolved_at) over k as last_resolved,
         last_value(q.reason) over (k order by q.id rows between unbounded preceding and unbounded following) as last_reason,
         last_value(q.run_id) over (k order by q.id rows between unbounded preceding and unbounded following) as last_run
    from public.quarantine q
  window k as (partition by q.entity, q.scope_id, q.mews_id, q.raw_hash)
), merged as (
  update public.quarantine q
     set sightings = k.copies, first_seen_at = k.first_seen, last_seen_at = k.last_seen,
         reason = k.last_reason, run_id = k.last_run,
         resolved_at = case when k.all_resolved then k.last_resolved end
    from keyed k
   where q.id = k.id and k.id = k.keep_id and k.copies > 1
  returning q.id
)
delete from public.quarantine q
 using keyed k
 where q.id = k.id and k.id <> k.keep_id;

-- 3. One entry per record version (a missing scope or id is a value like any other).
create unique index quarantine_record_version_key
  on public.quarantine (entity, scope_id, mews_id, raw_hash) nulls not distinct;
-- open entries by record, for quarantine_resolve
create index quarantine_open_record_idx
  on public.quarantine (entity, mews_id) where resolved_at is null;

-- 4. Quarantine records: a new version is a new entry, a version seen before counts a sighting
-- (and is open again). p_items: [{"entity", "scope_id", "mews_id", "reason", "raw" | "raw_text"}];
-- anything else is kept too: an item that is not an object becomes the raw of an entry of entity
-- 'unknown', a scope id that is not a UUID is left out, a run that does not exist is not named.
-- (JSON cannot carry U+0000 into jsonb at all: the caller replaces it, see shared/sync/runs.py.)
create or replace function public.quarantine_add(p_items jsonb, p_run_id uuid default null)
returns jsonb
language sql set search_path = ''
as $$
  with items as (
    select e.item, e.ord, jsonb_typeof(e.item) = 'object' as is_item
      from jsonb_array_elements(case jsonb_typeof(p_items)
                                  when 'array' then p_items
                                  when 'null' then '[]'::jsonb
                                  else jsonb_build_array(p_items) end)
           with ordinality as e(item, ord)
     where p_items is not null
  ), fields as (
    select coalesce(nullif(i.item->>'entity', ''), 'unknown') as entity,
           case when i.item->>'scope_id' ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
                then (i.item->>'scope_id')::uuid end as scope_id,
           i.item->>'mews_id' as mews_id,
           case when i.is_item then coalesce(i.item->>'reason', 'no reason given')
                else 'not a quarantine item' end as reason,
           case when i.is_item then nullif(i.item->'raw', 'null'::jsonb) else i.item end as raw,
           case when i.is_item then i.item->>'raw_text' end as raw_text,
           i.ord
      from items i
  ), versions as (
    -- one row per entry: the same version twice in one call is two sightings
    select f.entity, f.scope_id, f.mews_id, f.raw, f.raw_text,
           (array_agg(f.reason order by f.ord desc))[1] as reason, count(*)::integer as seen,
           min(f.ord) as first
      from fields f
     group by f.entity, f.scope_id, f.mews_id, f.raw, f.raw_text
  ), written as (
    insert into public.quarantine as q
      (entity, scope_id, mews_id, reason, raw, raw_text, run_id, sightings, first_seen_at, last_seen_at)
    select v.entity, v.scope_id, v.mews_id, v.reason, v.raw, v.raw_text,
           (select r.id from public.sync_runs r where r.id = p_run_id), v.seen, now(), now()
      from versions v
     order by v.first
    on conflict (entity, scope_id, mews_id, raw_hash) do update set
      sightings = q.sightings + excluded.sightings,
      last_seen_at = excluded.last_seen_at,
      reason = excluded.reason,
      run_id = coalesce(excluded.run_id, q.run_id),
      resolved_at = null
    returning (xmax = 0) as is_new
  )
  select jsonb_build_object(
    'quarantined', (select count(*) from fields),
    'new', (select count(*) from written where is_new))
$$;

-- 5. A valid version of these records is stored: their open entries are resolved. Entries
-- whose scope was unknown match any scope (ids are UUIDs, unique across scopes).
create or replace function public.quarantine_resolve(p_entity text, p_scope_id uuid, p_ids jsonb)
returns jsonb
language sql set search_path = ''
as $$
  with resolved as (
    update public.quarantine q
       set resolved_at = now()
     where q.entity = p_entity
       and q.resolved_at is null
       and (q.scope_id is null or p_scope_id is null or q.scope_id = p_scope_id)
       and q.mews_id in (select jsonb_array_elements_text(
                           case when jsonb_typeof(p_ids) = 'array' then p_ids else '[]'::jsonb end))
    returning 1
  ) select jsonb_build_object('resolved', count(*)) from resolved
$$;

-- 6. A backfill window is done once, however many loads report it (and old duplicates go).
create or replace function public.checkpoint_window_done(
  p_scope_id uuid, p_entity text, p_phase text, p_window_start text
) returns jsonb
language sql set search_path = ''
as $$
  insert into public.sync_checkpoints as c (scope_id, entity, phase, state)
  values (p_scope_id, p_entity, p_phase, jsonb_build_object('done', jsonb_build_array(p_window_start)))
  on conflict (scope_id, entity, phase) do update set
    state = case
      when jsonb_typeof(c.state->'done') = 'array' and c.state->'done' @> jsonb_build_array(p_window_start)
        then c.state
      else jsonb_set(c.state, '{done}',
                     case when jsonb_typeof(c.state->'done') = 'array' then c.state->'done'
                          else '[]'::jsonb end || jsonb_build_array(p_window_start))
    end
  returning jsonb_build_object('done', jsonb_array_length(state->'done'))
$$;

update public.sync_checkpoints c
   set state = jsonb_set(c.state, '{done}', (
         select coalesce(jsonb_agg(d.window_start order by d.first), '[]'::jsonb)
           from (select e.window_start, min(e.ord) as first
                   from jsonb_array_elements(c.state->'done') with ordinality as e(window_start, ord)
                  group by e.window_start) d))
 where jsonb_typeof(c.state->'done') = 'array'
   and jsonb_array_length(c.state->'done')
       > (select count(distinct e.value) from jsonb_array_elements(c.state->'done') e);

-- 7. Starting a backfill again from scratch: no finished mark, no low-water mark, no windows done.
create or replace function public.checkpoint_reset(p_scope_id uuid, p_entity text, p_phase text)
returns jsonb
language sql set search_path = ''
as $$
  with reset as (
    update public.sync_checkpoints
       set high_water_utc = null, low_water_utc = null, state = '{}'::jsonb
     where scope_id = p_scope_id and entity = p_entity and phase = p_phase
    returning 1
  ) select jsonb_build_object('reset', count(*)) from reset
$$;

revoke all on function public.quarantine_resolve(text, uuid, jsonb),
  public.checkpoint_reset(uuid, text, text) from public, anon, authenticated;
grant execute on function public.quarantine_resolve(text, uuid, jsonb),
  public.checkpoint_reset(uuid, text, text) to service_role;
