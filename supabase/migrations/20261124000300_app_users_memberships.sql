-- Staff: app users linked to Supabase auth users, with a role per enterprise or per chain.
create table public.app_users (
  id uuid primary key references auth.users (id) on delete cascade,
  email text not null,
  display_name text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table public.memberships (
  id bigint generated always as identity primary key,
  user_id uuid not null references public.app_users (id) on delete cascade,
  enterprise_id uuid references public.enterprises (id) on delete cascade,
  chain_id uuid references public.chains (id) on delete cascade,
  role text not null check (role in ('staff', 'admin')),
  created_at timestamptz not null default now(),
  -- a membership is for one enterprise, or for a whole chain
  constraint memberships_scope check ((enterprise_id is null) <> (chain_id is null))
);
create unique index memberships_user_enterprise on public.memberships (user_id, enterprise_id)
  where enterprise_id is not null;
create unique index memberships_user_chain on public.memberships (user_id, chain_id)
  where chain_id is not null;
create index memberships_enterprise_idx on public.memberships (enterprise_id);
create index memberships_chain_idx on public.memberships (chain_id);

create trigger app_users_touch before update on public.app_users
  for each row execute function app.touch_updated_at();

-- Policy helpers. SECURITY DEFINER so policies can read memberships without recursion;
-- each returns the set for the current JWT once per statement when wrapped in (select ...).

-- enterprises the current user may read: direct memberships, and every enterprise of a chain
-- membership
create or replace function app.readable_enterprise_ids() returns uuid[]
language sql stable security definer set search_path = ''
as $$
  select coalesce(array_agg(distinct e.id), '{}')
  from public.memberships m
  join public.enterprises e on e.id = m.enterprise_id or e.chain_id = m.chain_id
  where m.user_id = auth.uid()
$$;

-- chains the current user may read (customers and companies belong to a chain)
create or replace function app.readable_chain_ids() returns uuid[]
language sql stable security definer set search_path = ''
as $$
  select coalesce(array_agg(distinct coalesce(m.chain_id, e.chain_id)), '{}')
  from public.memberships m
  left join public.enterprises e on e.id = m.enterprise_id
  where m.user_id = auth.uid()
$$;

-- enterprises the current user administers (an admin of a chain administers its enterprises)
create or replace function app.admin_enterprise_ids() returns uuid[]
language sql stable security definer set search_path = ''
as $$
  select coalesce(array_agg(distinct e.id), '{}')
  from public.memberships m
  join public.enterprises e on e.id = m.enterprise_id or e.chain_id = m.chain_id
  where m.user_id = auth.uid() and m.role = 'admin'
$$;

create or replace function app.admin_chain_ids() returns uuid[]
language sql stable security definer set search_path = ''
as $$
  select coalesce(array_agg(distinct m.chain_id), '{}')
  from public.memberships m
  where m.user_id = auth.uid() and m.role = 'admin' and m.chain_id is not null
$$;

revoke all on function app.readable_enterprise_ids(), app.readable_chain_ids(),
  app.admin_enterprise_ids(), app.admin_chain_ids() from public;
grant execute on function app.readable_enterprise_ids(), app.readable_chain_ids(),
  app.admin_enterprise_ids(), app.admin_chain_ids() to authenticated, service_role;

alter table public.app_users enable row level security;
alter table public.memberships enable row level security;

grant select on public.app_users, public.memberships to authenticated;
grant insert, update, delete on public.memberships to authenticated;
grant update (display_name) on public.app_users to authenticated;
grant all on public.app_users, public.memberships to service_role;

create policy chains_read on public.chains for select to authenticated
  using (id = any ((select app.readable_chain_ids())::uuid[]));
create policy enterprises_read on public.enterprises for select to authenticated
  using (id = any ((select app.readable_enterprise_ids())::uuid[]));

-- a user sees their own profile and the profiles of people who share an enterprise with them
create policy app_users_read on public.app_users for select to authenticated
  using (
    id = (select auth.uid())
    or exists (
      select 1 from public.memberships m
      where m.user_id = app_users.id
        and (m.enterprise_id = any ((select app.readable_enterprise_ids())::uuid[])
             or m.chain_id = any ((select app.readable_chain_ids())::uuid[]))
    )
  );
create policy app_users_update_self on public.app_users for update to authenticated
  using (id = (select auth.uid())) with check (id = (select auth.uid()));

create policy memberships_read on public.memberships for select to authenticated
  using (
    enterprise_id = any ((select app.readable_enterprise_ids())::uuid[])
    or chain_id = any ((select app.readable_chain_ids())::uuid[])
  );
-- only an enterprise's admins manage its memberships (chain memberships: the chain's admins)
create policy memberships_admin_insert on public.memberships for insert to authenticated
  with check (
    enterprise_id = any ((select app.admin_enterprise_ids())::uuid[])
    or chain_id = any ((select app.admin_chain_ids())::uuid[])
  );
create policy memberships_admin_update on public.memberships for update to authenticated
  using (
    enterprise_id = any ((select app.admin_enterprise_ids())::uuid[])
    or chain_id = any ((select app.admin_chain_ids())::uuid[])
  )
  with check (
    enterprise_id = any ((select app.admin_enterprise_ids())::uuid[])
    or chain_id = any ((select app.admin_chain_ids())::uuid[])
  );
create policy memberships_admin_delete on public.memberships for delete to authenticated
  using (
    enterprise_id = any ((select app.admin_enterprise_ids())::uuid[])
    or chain_id = any ((select app.admin_chain_ids())::uuid[])
  );
