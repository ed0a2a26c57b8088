-- Staff decide on duplicate pairs, and the decisions are remembered; merges are carried out in
-- Mews (accounts/merge) by the push, never automatically.
--
-- * public.duplicate_decisions: the current decision of each pair ("same" person or
--   "different" people), who took it (auth.uid()) and when, the fingerprints of both guests'
--   matcher fields at that moment, and, for "same" with a survivor, the merge's state in Mews.
--   public.duplicate_decision_log keeps every decision and every merge outcome (append-only).
-- * public.duplicate_decide: what the frontend calls (SECURITY DEFINER, guarded: staff and
--   admins of the chain's hotels only); a decision replaces the pair's previous one.
-- * app.guest_match_fingerprint: md5 of what the matcher reads of a guest (the same object as
--   public.quality_duplicate_inputs builds, without the id). A pair decided "different" is held
--   back while both fingerprints are unchanged; "same" is held back for good.
-- * Held back where suggestions are written: statement triggers on guest_duplicates drop decided
--   pairs whatever function wrote them. And where they are read: public.duplicate_suggestions,
--   an enterprise's open pairs at or above its threshold (duplicate_settings), evidence best
--   first, read by quality_duplicate_suggestions, quality_guest_gaps and quality_report.
-- * public.duplicate_merges_pending / public.duplicate_merge_record: the push's side (service).
-- * public.quality_duplicates_held: the pairs held back now, for a pass that would rather not
--   write them at all (service).

-- What the matcher reads of one guest, hashed (keep in step with quality_duplicate_inputs:
-- tests/quality/test_duplicate_decisions.py compares the two): from the values, and of a guest.
create or replace function app.guest_match_fingerprint_of(
  p_first_name text, p_last_name text, p_birth_date date, p_has_ota_email boolean,
  p_email_normalized text, p_phone_e164 text
) returns text
language sql immutable set search_path = ''
as $$
  select md5(jsonb_build_object(
           'first_name', p_first_name, 'last_name', p_last_name, 'birth_date', p_birth_date,
           'email', case when not p_has_ota_email then p_email_normalized end,
           'phone', p_phone_e164)::text)
$$;

create or replace function app.guest_match_fingerprint(p_chain_id uuid, p_guest uuid)
returns text
language sql stable set search_path = ''
as $$
  select app.guest_match_fingerprint_of(g.first_name, g.last_name, g.birth_date, g.has_ota_email,
                                        f.email_normalized, f.phone_e164)
  from public.guests g
  left join public.guest_facts f on f.chain_id = g.chain_id and f.guest_mews_id = g.mews_id
  where g.chain_id = p_chain_id and g.mews_id = p_guest
$$;

create table public.duplicate_decisions (
  chain_id uuid not null references public.chains (id) on delete cascade,
  guest_a uuid not null,
  guest_b uuid not null,
  decision text not null check (decision in ('same', 'different')),
  survivor uuid,
  fingerprint_a text not null check (char_length(fingerprint_a) <= 64),
  fingerprint_b text not null check (char_length(fingerprint_b) <= 64),
  note text check (char_length(note) <= 1000),
  decided_by uuid,
  decided_at timestamptz not null default now(),
  merge_status text check (merge_status in ('pending', 'merged', 'failed')),
  merge_error text check (char_length(merge_error) <= 2000),
  merge_attempts integer not null default 0,
  merge_updated_at timestamptz,
  primary key (chain_id, guest_a, guest_b),
  check (guest_a < guest_b),
  check (survivor is null or (decision = 'same' and survivor in (guest_a, guest_b))),
  check ((survivor is null) = (merge_status is null))
);
create index duplicate_decisions_merge_idx on public.duplicate_decisions (decided_at)
  where merge_status = 'pending';

create table public.duplicate_decision_log (
  id bigint generated always as identity primary key,
  chain_id uuid not null references public.chains (id) on delete cascade,
  guest_a uuid not null,
  guest_b uuid not null,
  event text not null check (event in ('same', 'different', 'merged', 'merge_failed', 'merge_retry')),
  survivor uuid,
  fingerprint_a text check (char_length(fingerprint_a) <= 64),
  fingerprint_b text check (char_length(fingerprint_b) <= 64),
  note text check (char_length(note) <= 1000),
  detail text check (char_length(detail) <= 2000),
  actor uuid,
  run_id uuid,
  at timestamptz not null default now()
);
create index duplicate_decision_log_pair_idx
  on public.duplicate_decision_log (chain_id, guest_a, guest_b, at desc);

alter table public.duplicate_decisions enable row level security;
alter table public.duplicate_decision_log enable row level security;
revoke all on public.duplicate_decisions, public.duplicate_decision_log
  from public, anon, authenticated, service_role;
grant select on public.duplicate_decisions, public.duplicate_decision_log to authenticated;
grant select, insert, update on public.duplicate_decisions to service_role;
grant select, insert on public.duplicate_decision_log to service_role;
create policy duplicate_decisions_read on public.duplicate_decisions for select to authenticated
  using (chain_id = any ((select app.readable_chain_ids())::uuid[]));
create policy duplicate_decision_log_read on public.duplicate_decision_log for select to authenticated
  using (chain_id = any ((select app.readable_chain_ids())::uuid[]));

-- Whether a decision holds its pair back: "same" always; "different" while neither guest changed
-- in a field the matcher uses (the fingerprints stored with it are those of now); no decision
-- (null) never. The one statement of the rule; the triggers and the view hand it the
-- fingerprints of now, for the pairs that have a decision only.
create or replace function app.duplicate_decision_holds(
  p_decision text, p_fingerprint_a text, p_fingerprint_b text, p_now_a text, p_now_b text
) returns boolean
language sql immutable set search_path = ''
as $$
  select case
    when p_decision is null then false
    when p_decision = 'same' then true
    else coalesce(p_fingerprint_a = p_now_a and p_fingerprint_b = p_now_b, false)
  end
$$;

-- Who may decide on a chain's pairs: the service, or staff and admins of its hotels.
create or replace function app.duplicate_may_decide(p_chain_id uuid)
returns boolean
language sql stable security definer set search_path = ''
as $$
  select coalesce(
    app.caller_is_trusted()
    or (app.caller_role() = 'authenticated' and auth.uid() is not null
        and p_chain_id = any (app.readable_chain_ids())),
    false)
$$;

-- Decided pairs never stay in guest_duplicates, whichever function of the pass wrote them.
create or replace function app.guest_duplicates_hold_back_decided()
returns trigger
language plpgsql set search_path = ''
as $$
begin
  -- the decisions of the pairs written first (a join), the rule then for those only
  -- (set-based: both guests' fingerprints of now from one join, not a query per pair)
  with decided as materialized (
    select x.chain_id, x.guest_a, x.guest_b,
           app.duplicate_decision_holds(
             x.decision, x.fingerprint_a, x.fingerprint_b,
             app.guest_match_fingerprint_of(ga.first_name, ga.last_name, ga.birth_date,
                                            ga.has_ota_email, fa.email_normalized, fa.phone_e164),
             app.guest_match_fingerprint_of(gb.first_name, gb.last_name, gb.birth_date,
                                            gb.has_ota_email, fb.email_normalized, fb.phone_e164)
           ) as holds
    from written w
    join public.duplicate_decisions x
      on x.chain_id = w.chain_id and x.guest_a = w.guest_a and x.guest_b = w.guest_b
    left join public.guests ga on ga.chain_id = x.chain_id and ga.mews_id = x.guest_a
    left join public.guest_facts fa on fa.chain_id = x.chain_id and fa.guest_mews_id = x.guest_a
    left join public.guests gb on gb.chain_id = x.chain_id and gb.mews_id = x.guest_b
    left join public.guest_facts fb on fb.chain_id = x.chain_id and fb.guest_mews_id = x.guest_b)
  delete from public.guest_duplicates d
   using decided x
   where d.chain_id = x.chain_id and d.guest_a = x.guest_a and d.guest_b = x.guest_b and x.holds;
  return null;
end
$$;
create trigger guest_duplicates_decided_insert after insert on public.guest_duplicates
  referencing new table as written for each statement
  execute function app.guest_duplicates_hold_back_decided();
create trigger guest_duplicates_decided_update after update on public.guest_duplicates
  referencing new table as written for each statement
  execute function app.guest_duplicates_hold_back_decided();

-- The pairs of a chain a decision holds back now ([[a, b], ...]): what a pass may leave out of
-- what it writes (the triggers drop them anyway; a pass that knows them writes nothing for them).
create or replace function public.quality_duplicates_held(p_chain_id uuid)
returns jsonb
language sql stable set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_array(x.guest_a, x.guest_b) order by x.guest_a, x.guest_b),
                  '[]'::jsonb)
  from public.duplicate_decisions x
  left join public.guests ga on ga.chain_id = x.chain_id and ga.mews_id = x.guest_a
  left join public.guest_facts fa on fa.chain_id = x.chain_id and fa.guest_mews_id = x.guest_a
  left join public.guests gb on gb.chain_id = x.chain_id and gb.mews_id = x.guest_b
  left join public.guest_facts fb on fb.chain_id = x.chain_id and fb.guest_mews_id = x.guest_b
  where x.chain_id = p_chain_id
    and app.duplicate_decision_holds(
          x.decision, x.fingerprint_a, x.fingerprint_b,
          app.guest_match_fingerprint_of(ga.first_name, ga.last_name, ga.birth_date,
                                         ga.has_ota_email, fa.email_normalized, fa.phone_e164),
          app.guest_match_fingerprint_of(gb.first_name, gb.last_name, gb.birth_date,
                                         gb.has_ota_email, fb.email_normalized, fb.phone_e164))
$$;

-- Evidence strongest first (the pass writes it so; older rows and any writer are sorted here).
create or replace function app.duplicate_evidence_best_first(p_evidence jsonb)
returns jsonb
language sql immutable set search_path = ''
as $$
  select case when jsonb_typeof(p_evidence) = 'array' then (
    select coalesce(jsonb_agg(e.value order by
             case when jsonb_typeof(e.value->'weight') = 'number' then (e.value->>'weight')::float8 end
             desc nulls last, e.ordinality), '[]'::jsonb)
    from jsonb_array_elements(p_evidence) with ordinality as e(value, ordinality))
  else p_evidence end
$$;

-- An enterprise's open suggestions: at or above its threshold (0.9 when none is set), neither
-- guest merged or deleted, no decision holding the pair back. security_invoker: the policies of
-- guest_duplicates, enterprises, guests and duplicate_decisions apply to the reader.
create view public.duplicate_suggestions with (security_invoker = on) as
select e.id as enterprise_id, d.chain_id, d.guest_a, d.guest_b, d.probability, d.match_weight,
       app.duplicate_evidence_best_first(d.evidence) as evidence, d.found_at,
       coalesce(s.threshold, 0.9::real) as threshold
from public.guest_duplicates d
join public.enterprises e on e.chain_id = d.chain_id
left join public.duplicate_settings s on s.enterprise_id = e.id
join public.guests ga on ga.chain_id = d.chain_id and ga.mews_id = d.guest_a
join public.guests gb on gb.chain_id = d.chain_id and gb.mews_id = d.guest_b
-- joined first, the rule after (a case): evaluated for the pairs with a decision only
left join public.duplicate_decisions x
  on x.chain_id = d.chain_id and x.guest_a = d.guest_a and x.guest_b = d.guest_b
where d.probability >= coalesce(s.threshold, 0.9::real)
  and ga.is_active and ga.merge_target_id is null
  and gb.is_active and gb.merge_target_id is null
  and case when x.chain_id is null then true
           else not app.duplicate_decision_holds(
                  x.decision, x.fingerprint_a, x.fingerprint_b,
                  app.guest_match_fingerprint(x.chain_id, x.guest_a),
                  app.guest_match_fingerprint(x.chain_id, x.guest_b)) end;

-- Staff decide: "same" person (with the survivor, to merge in Mews) or "different" people. A
-- decision replaces the pair's previous one (kept in the log); a merge done in Mews stands.
create or replace function public.duplicate_decide(
  p_chain_id uuid, p_guest_a uuid, p_guest_b uuid, p_decision text,
  p_survivor uuid default null, p_note text default null
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_a uuid := least(p_guest_a, p_guest_b);
  v_b uuid := greatest(p_guest_a, p_guest_b);
  v_previous public.duplicate_decisions;
  v_row public.duplicate_decisions;
begin
  if not app.duplicate_may_decide(p_chain_id) then
    raise exception 'only staff of the chain''s hotels may decide on its guests' using errcode = '42501';
  end if;
  if v_a is null or v_a = v_b then
    raise exception 'a decision needs two different guests' using errcode = '22023';
  end if;
  if p_decision is null or p_decision not in ('same', 'different') then
    raise exception 'p_decision must be ''same'' or ''different''' using errcode = '22023';
  end if;
  if p_survivor is not null and (p_decision <> 'same' or p_survivor not in (v_a, v_b)) then
    raise exception 'the survivor must be one of the two guests of a pair decided the same person'
      using errcode = '22023';
  end if;
  if char_length(p_note) > 1000 then
    raise exception 'p_note holds at most 1000 characters' using errcode = '22023';
  end if;
  if (select count(*) from public.guests g where g.chain_id = p_chain_id and g.mews_id in (v_a, v_b)) < 2 then
    raise exception 'both guests must be profiles of the chain' using errcode = '22023';
  end if;
  if p_survivor is not null and exists (
      select 1 from public.guests g where g.chain_id = p_chain_id and g.mews_id in (v_a, v_b)
        and (not g.is_active or g.merge_target_id is not null)) then
    raise exception 'a profile deleted or merged in Mews cannot be merged' using errcode = '22023';
  end if;
  select * into v_previous from public.duplicate_decisions x
   where x.chain_id = p_chain_id and x.guest_a = v_a and x.guest_b = v_b for update;
  if found and v_previous.merge_status = 'merged' then
    raise exception 'the pair was merged in Mews; the decision stands' using errcode = '55000';
  end if;
  insert into public.duplicate_decisions as x (chain_id, guest_a, guest_b, decision, survivor,
    fingerprint_a, fingerprint_b, note, decided_by, decided_at, merge_status, merge_error,
    merge_attempts, merge_updated_at)
  values (p_chain_id, v_a, v_b, p_decision, p_survivor,
    coalesce(app.guest_match_fingerprint(p_chain_id, v_a), ''),
    coalesce(app.guest_match_fingerprint(p_chain_id, v_b), ''),
    p_note, auth.uid(), clock_timestamp(), case when p_survivor is not null then 'pending' end,
    null, 0, null)
  on conflict (chain_id, guest_a, guest_b) do update
    set decision = excluded.decision, survivor = excluded.survivor,
        fingerprint_a = excluded.fingerprint_a, fingerprint_b = excluded.fingerprint_b,
        note = excluded.note, decided_by = excluded.decided_by, decided_at = excluded.decided_at,
        merge_status = excluded.merge_status, merge_error = null, merge_attempts = 0,
        merge_updated_at = null
  returning * into v_row;
  insert into public.duplicate_decision_log (chain_id, guest_a, guest_b, event, survivor,
    fingerprint_a, fingerprint_b, note, actor, at)
  values (p_chain_id, v_a, v_b, p_decision, p_survivor, v_row.fingerprint_a, v_row.fingerprint_b,
    p_note, auth.uid(), v_row.decided_at);
  delete from public.guest_duplicates d
   where d.chain_id = p_chain_id and d.guest_a = v_a and d.guest_b = v_b;
  if p_survivor is not null then  -- the real-time worker pushes the chain (as after an edit)
    perform pg_notify('guesthub_push', p_chain_id::text);
  end if;
  return jsonb_build_object(
    'chain_id', v_row.chain_id, 'guest_a', v_row.guest_a, 'guest_b', v_row.guest_b,
    'decision', v_row.decision, 'survivor', v_row.survivor, 'decided_by', v_row.decided_by,
    'decided_at', v_row.decided_at, 'merge_status', v_row.merge_status,
    'replaced', v_previous.decision);
end
$$;

-- The merges waiting for the push (oldest decision first), of some chains or all.
create or replace function public.duplicate_merges_pending(
  p_limit integer default 100, p_chain_ids jsonb default null
) returns jsonb
language sql stable set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object(
           'chain_id', x.chain_id, 'guest_a', x.guest_a, 'guest_b', x.guest_b,
           'source', case when x.survivor = x.guest_a then x.guest_b else x.guest_a end,
           'target', x.survivor, 'decided_at', x.decided_at, 'decided_by', x.decided_by,
           'attempts', x.merge_attempts) order by x.decided_at), '[]'::jsonb)
  from (select * from public.duplicate_decisions
        where merge_status = 'pending'
          and (p_chain_ids is null or chain_id = any (app.uuids(p_chain_ids)))
        order by decided_at limit least(greatest(p_limit, 1), 1000)) x
$$;

-- The outcome of one merge: merged, failed (Mews refused it, or a profile is gone or merged
-- elsewhere: a conflict_log row for staff), or still pending (with why). Each one a log row.
-- A decision replaced meanwhile keeps its new state; the log still says what Mews did.
create or replace function public.duplicate_merge_record(
  p_chain_id uuid, p_guest_a uuid, p_guest_b uuid, p_decided_at timestamptz, p_status text,
  p_error text default null, p_run_id uuid default null
) returns jsonb
language plpgsql set search_path = ''
as $$
declare
  v_row public.duplicate_decisions;
  v_source uuid;
  v_target uuid;
begin
  if p_status is null or p_status not in ('merged', 'failed', 'pending') then
    raise exception 'p_status must be merged, failed or pending' using errcode = '22023';
  end if;
  update public.duplicate_decisions x
     set merge_status = p_status, merge_error = left(p_error, 2000),
         merge_attempts = x.merge_attempts + 1, merge_updated_at = now()
   where x.chain_id = p_chain_id and x.guest_a = p_guest_a and x.guest_b = p_guest_b
     and x.decided_at = p_decided_at and x.merge_status = 'pending'
  returning * into v_row;
  v_target := v_row.survivor;
  if v_target is null then  -- replaced meanwhile: the survivor of the decision that was pushed
    select l.survivor into v_target from public.duplicate_decision_log l
     where l.chain_id = p_chain_id and l.guest_a = p_guest_a and l.guest_b = p_guest_b
       and l.at = p_decided_at and l.event = 'same'
     order by l.id desc limit 1;
  end if;
  v_source := case when v_target = p_guest_a then p_guest_b else p_guest_a end;
  insert into public.duplicate_decision_log (chain_id, guest_a, guest_b, event, survivor, detail, run_id)
  values (p_chain_id, p_guest_a, p_guest_b,
          case p_status when 'merged' then 'merged' when 'failed' then 'merge_failed' else 'merge_retry' end,
          v_target, left(p_error, 2000), p_run_id);
  if p_status = 'failed' then
    insert into public.conflict_log (chain_id, guest_mews_id, field, local_value, mews_value,
                                     resolution, detail, local_edited_at)
    values (p_chain_id, v_source, 'merge', jsonb_build_object('merge_into', v_target), null,
            'refused_by_mews', left(p_error, 2000), p_decided_at);
  end if;
  return jsonb_build_object('recorded', v_row.chain_id is not null, 'status', p_status);
end
$$;

-- Readers of suggestions see an enterprise's open pairs only.
create or replace function public.quality_duplicate_suggestions(
  p_enterprise_id uuid, p_limit integer default 50
) returns jsonb
language sql stable set search_path = ''
as $$
  with chosen as (
    select d.* from public.duplicate_suggestions d where d.enterprise_id = p_enterprise_id)
  select jsonb_build_object(
    'threshold', (select coalesce(s.threshold, 0.9::real) from public.enterprises e
                  left join public.duplicate_settings s on s.enterprise_id = e.id
                  where e.id = p_enterprise_id),
    'total', (select count(*) from chosen),
    'pairs', coalesce((
      select jsonb_agg(jsonb_build_object(
               'a', jsonb_build_object('guest', d.guest_a, 'name', concat_ws(' ', ga.first_name, ga.last_name), 'email', ga.email),
               'b', jsonb_build_object('guest', d.guest_b, 'name', concat_ws(' ', gb.first_name, gb.last_name), 'email', gb.email),
               'chain_id', d.chain_id, 'probability', d.probability, 'weight', d.match_weight,
               'evidence', d.evidence)
             order by d.probability desc, d.match_weight desc, d.guest_a, d.guest_b)
      from (select * from chosen order by probability desc, match_weight desc, guest_a, guest_b
            limit least(greatest(p_limit, 1), 500)) d
      left join public.guests ga on ga.chain_id = d.chain_id and ga.mews_id = d.guest_a
      left join public.guests gb on gb.chain_id = d.chain_id and gb.mews_id = d.guest_b), '[]'::jsonb))
$$;

create or replace view public.quality_guest_gaps with (security_invoker = on) as
select s.enterprise_id, s.chain_id, s.guest_mews_id, r.field, r.reason_kind as kind, r.message,
       r.cost, r.severity, null::jsonb as evidence
from public.guest_scores s
cross join lateral unnest(s.failed_rules) as f(rule_id)
join public.quality_rules r on r.id = f.rule_id
union all
select s.enterprise_id, d.chain_id, s.guest_mews_id, 'profile'::text as field,
       'duplicate'::text as kind,
       'Possible duplicate of '::text || d.other || ' (p ' || round(d.probability::numeric, 2) || ')'
         as message,
       0 as cost, 'info'::text as severity, d.evidence
from public.guest_scores s
-- from each guest asked for to its pairs (a page of guests reads its pairs, not every pair)
cross join lateral (
  select p.chain_id, p.guest_b as other, p.probability, p.evidence
  from public.duplicate_suggestions p
  where p.enterprise_id = s.enterprise_id and p.chain_id = s.chain_id and p.guest_a = s.guest_mews_id
  union all
  select p.chain_id, p.guest_a, p.probability, p.evidence
  from public.duplicate_suggestions p
  where p.enterprise_id = s.enterprise_id and p.chain_id = s.chain_id and p.guest_b = s.guest_mews_id
) d;

-- The report's duplicates: the enterprise's open suggestions at its threshold, best first, with
-- their probability (the rest of the report as in 20261126010400).
create or replace function public.quality_report(p_enterprise_id uuid, p_days integer default 14,
                                                 p_threshold integer default 60) returns jsonb
language sql stable security invoker set search_path = ''
set jit = off
as $$
  with ent as (select id, name, chain_id from public.enterprises where id = p_enterprise_id),
  buckets as (
    select least(score / 10, 9) * 10 as b, count(*) as n, sum(score) as total
    from public.guest_scores where enterprise_id = p_enterprise_id group by 1
  ),
  failed as (
    -- each failed rule counted once per rule, then named: not a join per guest and reason
    select f.rule_id, count(*) as n
    from public.guest_scores s cross join lateral unnest(s.failed_rules) as f(rule_id)
    where s.enterprise_id = p_enterprise_id group by 1
  ),
  fields as (
    select r.field, coalesce(sum(f.n) filter (where r.reason_kind = 'missing'), 0) as missing,
           coalesce(sum(f.n) filter (where r.reason_kind in ('invalid', 'weak')), 0) as invalid
    from failed f join public.quality_rules r on r.id = f.rule_id
    group by r.field
  ),
  worst as (
    select s.guest_mews_id, s.score, s.failed_rules
    from public.guest_scores s where s.enterprise_id = p_enterprise_id
    order by s.score, s.guest_mews_id limit 15
  )
  select jsonb_build_object(
    'enterprise', (select jsonb_build_object('id', id, 'name', name) from ent),
    'guests', (select coalesce(sum(n), 0) from buckets),
    'average', (select round(sum(total)::numeric / nullif(sum(n), 0), 1) from buckets),
    'distribution', (select coalesce(jsonb_agg(jsonb_build_object('bucket', b, 'guests', n) order by b), '[]'::jsonb)
                     from buckets),
    'fields', (select coalesce(jsonb_agg(jsonb_build_object(
                 'field', field, 'missing', missing, 'invalid', invalid,
                 'missing_rate', round(missing::numeric / nullif((select sum(n) from buckets), 0), 4))
                 order by missing + invalid desc), '[]'::jsonb)
               from fields),
    'trend', (select coalesce(jsonb_agg(jsonb_build_object('day', day, 'average', average, 'below_50', below_50,
                                                           'guests', guests) order by day), '[]'::jsonb)
              from (select * from public.quality_daily where enterprise_id = p_enterprise_id order by day desc limit 90) t),
    'worst', (select coalesce(jsonb_agg(jsonb_build_object('guest', w.guest_mews_id,
                                                           'name', concat_ws(' ', g.first_name, g.last_name),
                                                           'email', g.email, 'score', w.score,
                                                           'reasons', app.quality_reasons(w.failed_rules))
                                        order by w.score, w.guest_mews_id), '[]'::jsonb)
              from worst w
              left join public.guests g on g.chain_id = (select chain_id from ent) and g.mews_id = w.guest_mews_id),
    'arrivals', (select coalesce(jsonb_agg(jsonb_build_object('arrival', a.arrival, 'reservation', a.reservation_id,
                                                              'guest', a.guest_mews_id,
                                                              'name', concat_ws(' ', a.first_name, a.last_name),
                                                              'email', g.email, 'state', a.state, 'score', a.score,
                                                              'reasons', a.reasons)), '[]'::jsonb)
                 from public.quality_arrivals_at_risk(p_days, p_threshold) a
                 left join public.guests g on g.chain_id = (select chain_id from ent) and g.mews_id = a.guest_mews_id
                 where a.enterprise_id = p_enterprise_id),
    'duplicates', (select count(*) from public.duplicate_suggestions d where d.enterprise_id = p_enterprise_id),
    'duplicate_threshold', (select coalesce(s.threshold, 0.9::real) from public.duplicate_settings s
                            right join ent on s.enterprise_id = ent.id),
    'duplicate_pairs', (
      select coalesce(jsonb_agg(jsonb_build_object(
               'a', jsonb_build_object('guest', d.guest_a, 'name', concat_ws(' ', ga.first_name, ga.last_name), 'email', ga.email),
               'b', jsonb_build_object('guest', d.guest_b, 'name', concat_ws(' ', gb.first_name, gb.last_name), 'email', gb.email),
               'probability', d.probability, 'weight', d.match_weight, 'evidence', d.evidence)
             order by d.probability desc, d.match_weight desc, d.guest_a, d.guest_b), '[]'::jsonb)
      from (select * from public.duplicate_suggestions where enterprise_id = p_enterprise_id
            order by probability desc, match_weight desc, guest_a, guest_b limit 10) d
      left join public.guests ga on ga.chain_id = d.chain_id and ga.mews_id = d.guest_a
      left join public.guests gb on gb.chain_id = d.chain_id and gb.mews_id = d.guest_b),
    'conflicts', (
      select coalesce(jsonb_agg(jsonb_build_object(
               'at', c.created_at, 'guest', c.guest_mews_id, 'name', concat_ws(' ', g.first_name, g.last_name),
               'email', g.email, 'field', c.field, 'local_value', c.local_value, 'mews_value', c.mews_value,
               'resolution', c.resolution, 'detail', c.detail) order by c.created_at desc, c.id desc), '[]'::jsonb)
      from (select * from public.conflict_log
            where chain_id = (select chain_id from ent) and created_at > now() - interval '7 days'
            order by created_at desc, id desc limit 20) c
      left join public.guests g on g.chain_id = c.chain_id and g.mews_id = c.guest_mews_id),
    'sync', public.sync_status(p_enterprise_id)->'enterprises'->0)
$$;

revoke all on function app.guest_match_fingerprint(uuid, uuid),
  app.guest_match_fingerprint_of(text, text, date, boolean, text, text),
  app.duplicate_decision_holds(text, text, text, text, text),
  app.duplicate_may_decide(uuid), app.guest_duplicates_hold_back_decided(),
  app.duplicate_evidence_best_first(jsonb),
  public.duplicate_decide(uuid, uuid, uuid, text, uuid, text),
  public.duplicate_merges_pending(integer, jsonb),
  public.duplicate_merge_record(uuid, uuid, uuid, timestamptz, text, text, uuid),
  public.quality_duplicates_held(uuid)
  from public, anon, authenticated, service_role;
-- the view's readers evaluate these as themselves (their policies apply)
grant execute on function app.guest_match_fingerprint(uuid, uuid),
  app.guest_match_fingerprint_of(text, text, date, boolean, text, text),
  app.duplicate_decision_holds(text, text, text, text, text),
  app.duplicate_evidence_best_first(jsonb)
  to authenticated, service_role;
grant execute on function public.duplicate_decide(uuid, uuid, uuid, text, uuid, text)
  to authenticated, service_role;
grant execute on function public.duplicate_merges_pending(integer, jsonb),
  public.duplicate_merge_record(uuid, uuid, uuid, timestamptz, text, text, uuid),
  public.quality_duplicates_held(uuid)
  to service_role;
revoke all on public.duplicate_suggestions from public, anon, authenticated, service_role;
grant select on public.duplicate_suggestions to authenticated, service_role;
