-- Staff edits in Supabase, pushed back to Mews by push_changes.
--
-- Staff (authenticated) may update the editable columns of guests of their chains. A trigger
-- records each edit in local_changes (column → new value) with the Mews UpdatedUtc it was
-- based on; sync writes (service_role) never mark anything, so our own echo cannot bounce.
alter table public.guests
  add column local_changes jsonb,
  add column local_edited_at timestamptz,
  add column local_base_updated_utc timestamptz,
  add column push_status text check (push_status in ('pending', 'pushed', 'refused', 'mews_won')),
  add column push_error text;
create index guests_push_pending_idx on public.guests (local_edited_at) where push_status = 'pending';

grant update (first_name, last_name, email, phone, birth_date, nationality_code,
              preferred_language_code, title, sex, notes, loyalty_code, occupation,
              car_registration_number, dietary_requirements)
  on public.guests to authenticated;
create policy guests_staff_edit on public.guests for update to authenticated
  using (chain_id = any ((select app.readable_chain_ids())::uuid[]))
  with check (chain_id = any ((select app.readable_chain_ids())::uuid[]));

create or replace function app.guests_mark_local_edit() returns trigger
language plpgsql set search_path = ''
as $$
declare
  v_changes jsonb := '{}'::jsonb;
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
    end if;
  end loop;
  if v_changes = '{}'::jsonb then
    return new;
  end if;
  new.local_changes := coalesce(old.local_changes, '{}'::jsonb) || v_changes;
  new.local_base_updated_utc := case when old.push_status = 'pending'
                                     then old.local_base_updated_utc else old.mews_updated_utc end;
  new.local_edited_at := clock_timestamp();
  new.push_status := 'pending';
  new.push_error := null;
  return new;
end
$$;
create trigger guests_local_edit before update on public.guests
  for each row execute function app.guests_mark_local_edit();

-- Sync writes never touch local_* / push_* columns: app.guarded_upsert leaves them out.

create or replace function public.push_pending(p_limit integer default 100)
returns jsonb
language sql stable set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object(
           'chain_id', chain_id, 'mews_id', mews_id, 'changes', local_changes,
           'edited_at', local_edited_at, 'base_updated_utc', local_base_updated_utc,
           'is_active', is_active, 'merge_target_id', merge_target_id) order by local_edited_at), '[]'::jsonb)
  from (select * from public.guests where push_status = 'pending'
        order by local_edited_at limit least(p_limit, 1000)) g
$$;

-- The outcome of one push. Local changes are cleared only if staff did not edit again meanwhile.
create or replace function public.push_record(
  p_chain_id uuid, p_mews_id uuid, p_edited_at timestamptz, p_status text,
  p_error text default null, p_conflicts jsonb default '[]'::jsonb
) returns jsonb
language plpgsql set search_path = ''
as $$
declare
  v_cleared boolean;
begin
  update public.guests
     set push_status = p_status, push_error = p_error,
         local_changes = case when p_status in ('pushed', 'mews_won') then null else local_changes end
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

revoke all on function public.push_pending(integer),
  public.push_record(uuid, uuid, timestamptz, text, text, jsonb) from public, anon, authenticated;
grant execute on function public.push_pending(integer),
  public.push_record(uuid, uuid, timestamptz, text, text, jsonb) to service_role;
