-- Duplicate suggestions weighed (Fellegi–Sunter): the matcher (shared/quality/matching.py) reads
-- a chain's active guests, compares the pairs that share a blocking key field by field, and
-- writes every pair whose probability reaches the lowest threshold an admin may choose (0.5),
-- with its probability, its total match weight and its evidence per field
-- ([{"field", "level", "weight", "detail"}], best first). Each enterprise sees the pairs at or
-- above its own threshold (public.duplicate_settings; 0.9 when none is set).
--
-- * public.quality_duplicate_inputs pages through what the matcher reads (service_role).
-- * public.quality_duplicates_put upserts a batch of pairs; public.quality_duplicates_prune
--   removes the pairs a pass did not confirm (found before it started).
-- * public.quality_duplicate_suggestions: an enterprise's suggestions, best first, with both
--   guests' names (security invoker: the caller's policies apply).

alter table public.guest_duplicates
  add column probability real check (probability >= 0 and probability <= 1),
  add column match_weight real;
create index guest_duplicates_best_idx on public.guest_duplicates (chain_id, probability desc);

create table public.duplicate_settings (
  enterprise_id uuid primary key references public.enterprises (id) on delete cascade,
  threshold real not null default 0.9 check (threshold >= 0.5 and threshold < 1),
  updated_at timestamptz not null default now()
);
alter table public.duplicate_settings enable row level security;
revoke all on public.duplicate_settings from public, anon, authenticated, service_role;
grant select, insert, update, delete on public.duplicate_settings to service_role;
grant select on public.duplicate_settings to authenticated;
grant insert (enterprise_id, threshold), update (threshold) on public.duplicate_settings to authenticated;
create policy duplicate_settings_read on public.duplicate_settings for select to authenticated
  using (enterprise_id = any ((select app.readable_enterprise_ids())::uuid[]));
create policy duplicate_settings_admin_insert on public.duplicate_settings for insert to authenticated
  with check (enterprise_id = any ((select app.admin_enterprise_ids())::uuid[]));
create policy duplicate_settings_admin_update on public.duplicate_settings for update to authenticated
  using (enterprise_id = any ((select app.admin_enterprise_ids())::uuid[]))
  with check (enterprise_id = any ((select app.admin_enterprise_ids())::uuid[]));

-- What the matcher reads of a chain's active guests, a page at a time (ids after p_after).
create or replace function public.quality_duplicate_inputs(
  p_chain_id uuid, p_after uuid default null, p_limit integer default 5000
) returns jsonb
language sql stable set search_path = ''
as $$
  with page as (
    select g.mews_id, g.first_name, g.last_name, g.birth_date,
           case when not g.has_ota_email then f.email_normalized end as email, f.phone_e164 as phone
    from public.guests g
    left join public.guest_facts f on f.chain_id = g.chain_id and f.guest_mews_id = g.mews_id
    where g.chain_id = p_chain_id and g.is_active
      and g.mews_id > coalesce(p_after, '00000000-0000-0000-0000-000000000000')
    order by g.mews_id
    limit least(greatest(p_limit, 1), 20000))
  select jsonb_build_object(
    'guests', coalesce((select jsonb_agg(jsonb_build_object(
                'id', p.mews_id, 'first_name', p.first_name, 'last_name', p.last_name,
                'birth_date', p.birth_date, 'email', p.email, 'phone', p.phone) order by p.mews_id)
              from page p), '[]'::jsonb),
    'next', (select p.mews_id from page p
             where (select count(*) from page) >= least(greatest(p_limit, 1), 20000)
             order by p.mews_id desc limit 1))
$$;

-- Upsert a batch of weighed pairs ([{"a", "b", "probability", "weight", "evidence"}], a < b);
-- answers how many and when (the start of a pass, for the prune).
create or replace function public.quality_duplicates_put(p_chain_id uuid, p_pairs jsonb)
returns jsonb
language plpgsql set search_path = ''
as $$
declare
  v_pairs integer;
begin
  if jsonb_typeof(p_pairs) is distinct from 'array' or jsonb_array_length(p_pairs) > 20000 then
    raise exception 'p_pairs must be an array of at most 20000 pairs' using errcode = '22023';
  end if;
  insert into public.guest_duplicates as d (chain_id, guest_a, guest_b, evidence, probability, match_weight)
  select p_chain_id, r.a, r.b, r.evidence, least(greatest(r.probability, 0), 1), r.weight
  from jsonb_to_recordset(p_pairs) as r(a uuid, b uuid, probability real, weight real, evidence jsonb)
  on conflict (chain_id, guest_a, guest_b) do update
    set evidence = excluded.evidence, probability = excluded.probability,
        match_weight = excluded.match_weight, found_at = now();
  get diagnostics v_pairs = row_count;
  return jsonb_build_object('pairs', v_pairs, 'at', now());
end
$$;

-- Remove the pairs of a chain that a pass which started at p_before did not write again.
create or replace function public.quality_duplicates_prune(p_chain_id uuid, p_before timestamptz)
returns integer
language plpgsql set search_path = ''
as $$
declare
  v_gone integer;
begin
  delete from public.guest_duplicates d where d.chain_id = p_chain_id and d.found_at < p_before;
  get diagnostics v_gone = row_count;
  return v_gone;
end
$$;

-- An enterprise's duplicate suggestions at or above its threshold, best first, with both
-- guests' names and the evidence (what the report and the frontend show).
create or replace function public.quality_duplicate_suggestions(
  p_enterprise_id uuid, p_limit integer default 50
) returns jsonb
language sql stable set search_path = ''
as $$
  with ent as (
    select e.chain_id, coalesce(s.threshold, 0.9) as threshold
    from public.enterprises e
    left join public.duplicate_settings s on s.enterprise_id = e.id
    where e.id = p_enterprise_id),
  chosen as (
    select d.* from public.guest_duplicates d, ent
    where d.chain_id = ent.chain_id and d.probability >= ent.threshold)
  select jsonb_build_object(
    'threshold', (select threshold from ent),
    'total', (select count(*) from chosen),
    'pairs', coalesce((
      select jsonb_agg(jsonb_build_object(
               'a', jsonb_build_object('guest', d.guest_a, 'name', concat_ws(' ', ga.first_name, ga.last_name), 'email', ga.email),
               'b', jsonb_build_object('guest', d.guest_b, 'name', concat_ws(' ', gb.first_name, gb.last_name), 'email', gb.email),
               'probability', d.probability, 'weight', d.match_weight, 'evidence', d.evidence)
             order by d.probability desc, d.match_weight desc, d.guest_a, d.guest_b)
      from (select * from chosen order by probability desc, match_weight desc, guest_a, guest_b
            limit least(greatest(p_limit, 1), 500)) d
      left join public.guests ga on ga.chain_id = d.chain_id and ga.mews_id = d.guest_a
      left join public.guests gb on gb.chain_id = d.chain_id and gb.mews_id = d.guest_b), '[]'::jsonb))
$$;

revoke all on function public.quality_duplicate_inputs(uuid, uuid, integer),
  public.quality_duplicates_put(uuid, jsonb), public.quality_duplicates_prune(uuid, timestamptz),
  public.quality_duplicate_suggestions(uuid, integer)
  from public, anon, authenticated, service_role;
grant execute on function public.quality_duplicate_inputs(uuid, uuid, integer),
  public.quality_duplicates_put(uuid, jsonb), public.quality_duplicates_prune(uuid, timestamptz)
  to service_role;
grant execute on function public.quality_duplicate_suggestions(uuid, integer) to authenticated, service_role;
