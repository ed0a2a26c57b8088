-- Staff edits are pushed by a field-level three-way merge (shared/sync/merge.py), no longer by
-- record-level last write wins: a staff edit must never be lost to a Mews change of another field.
--
-- The trigger now keeps, per edited column, the value the staff member saw (the base) in
-- local_base (column → base value). The first edit of a column while its change waits sets the
-- base; a second edit of the same column keeps it. Staff never write local_base (no column grant);
-- sync writes never touch it (app.guarded_upsert leaves local_* columns out) and never mark edits.
alter table public.guests add column local_base jsonb;
comment on column public.guests.local_base is
  'Per column in local_changes: the value the staff member saw when first editing it (the base of the three-way merge).';

create or replace function app.guests_mark_local_edit() returns trigger
language plpgsql set search_path = ''
as $$
declare
  v_changes jsonb := '{}'::jsonb;
  v_bases jsonb := '{}'::jsonb;
  v_new jsonb;
  v_old jsonb;
  v_col text;
begin
  if current_user <> 'authenticated' then
    return new;  -- sync writes (service_role) are Mews' data, not edits
  end if;
  v_new := to_jsonb(new);
  v_old := to_jsonb(old);
  foreach v_col in array array['first_name', 'last_name', 'email', 'phone', 'birth_date',
    'nationality_code', 'preferred_language_code', 'title', 'sex', 'notes', 'loyalty_code',
    'occupation', 'car_registration_number', 'dietary_requirements'] loop
    if v_new->v_col is distinct from v_old->v_col then
      v_changes := v_changes || jsonb_build_object(v_col, v_new->v_col);
      v_bases := v_bases || jsonb_build_object(v_col, v_old->v_col);
    end if;
  end loop;
  if v_changes = '{}'::jsonb then
    return new;
  end if;
  new.local_changes := coalesce(old.local_changes, '{}'::jsonb) || v_changes;
  -- right-hand side wins: a base already recorded for a column is kept
  new.local_base := v_bases || coalesce(old.local_base, '{}'::jsonb);
  new.local_base_updated_utc := case when old.push_status = 'pending'
                                     then old.local_base_updated_utc else old.mews_updated_utc end;
  new.local_edited_at := clock_timestamp();
  new.push_status := 'pending';
  new.push_error := null;
  return new;
end
$$;

-- Same signature (create or replace keeps its grants); now with the bases.
create or replace function public.push_pending(p_limit integer default 100)
returns jsonb
language sql stable set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object(
           'chain_id', chain_id, 'mews_id', mews_id, 'changes', local_changes,
           'base', coalesce(local_base, '{}'::jsonb),
           'edited_at', local_edited_at, 'base_updated_utc', local_base_updated_utc,
           'is_active', is_active, 'merge_target_id', merge_target_id) order by local_edited_at), '[]'::jsonb)
  from (select * from public.guests where push_status = 'pending'
        order by local_edited_at limit least(p_limit, 1000)) g
$$;

-- The outcome of one push. Local changes and their bases are cleared together, and only if staff
-- did not edit again meanwhile. Status 'pending' keeps the edit queued with its error (e.g. a
-- 409 that outlasted the resubmissions).
create or replace function public.push_record(
  p_chain_id uuid, p_mews_id uuid, p_edited_at timestamptz, p_status text,
  p_error text default null, p_conflicts jsonb default '[]'::jsonb
) returns jsonb
language plpgsql set search_path = ''
as $$
declare
  v_cleared boolean;
  v_done boolean := p_status in ('pushed', 'mews_won');
begin
  update public.guests
     set push_status = p_status, push_error = p_error,
         local_changes = case when v_done then null else local_changes end,
         local_base = case when v_done then null else local_base end
   where chain_id = p_chain_id and mews_id = p_mews_id and local_edited_at = p_edited_at;
  v_cleared := found;
  insert into public.conflict_log (chain_id, guest_mews_id, field, local_value, mews_value,
                                   resolution, detail, local_edited_at, mews_updated_utc)
  select p_chain_id, p_mews_id, c.field, c.local_value, c.mews_value, c.resolution, c.detail,
         p_edited_at, c.mews_updated_utc
  from jsonb_to_recordset(p_conflicts) as c(field text, local_value jsonb, mews_value jsonb,
                                            resolution text, detail text, mews_updated_utc timestamptz);
  return jsonb_build_object('recorded', v_cleared);
end
$$;

-- Conflicts for staff: who, which field, both values, who won, when. The reader's rights apply
-- (security_invoker): row-level security of conflict_log and guests decides what a member sees.
create view public.guest_conflicts with (security_invoker = on) as
select c.id,
       c.chain_id,
       c.guest_mews_id,
       nullif(concat_ws(' ', g.first_name, g.last_name), '') as guest_name,
       c.field,
       c.local_value,
       c.mews_value,
       c.resolution,
       c.detail,
       c.local_edited_at,
       c.mews_updated_utc,
       c.created_at
from public.conflict_log c
left join public.guests g on g.chain_id = c.chain_id and g.mews_id = c.guest_mews_id;

revoke all on public.guest_conflicts from public, anon, authenticated, service_role;
grant select on public.guest_conflicts to authenticated, service_role;

-- The newest conflicts through the database API (`guesthub sync conflicts`), read through the
-- view with the caller's rights.
create function public.guest_conflicts_recent(p_limit integer default 20)
returns jsonb
language sql stable set search_path = ''
as $$
  select coalesce(jsonb_agg(to_jsonb(c) order by c.created_at desc, c.id desc), '[]'::jsonb)
  from (select * from public.guest_conflicts
        order by created_at desc, id desc
        limit least(greatest(coalesce(p_limit, 20), 1), 1000)) c
$$;

revoke all on function public.guest_conflicts_recent(integer) from public, anon, authenticated;
grant execute on function public.guest_conflicts_recent(integer) to service_role;
