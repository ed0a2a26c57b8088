-- Connections: one per enterprise integration, driven by Integration Webhooks. The AccessToken
-- is stored encrypted (Fernet, key outside the database) and never readable by staff.
create table public.connections (
  integration_id uuid primary key,
  enterprise_id uuid,
  enterprise_name text,
  access_token_encrypted text,                 -- null once purged
  status text not null default 'active'
    check (status in ('active', 'disabled', 'canceled', 'deleted')),
  last_action text not null,
  updated_at timestamptz not null default now()
);

alter table public.connections enable row level security;
revoke all on public.connections from anon, authenticated;
grant all on public.connections to service_role;
-- staff see their enterprise's connection status, never the token column
grant select (integration_id, enterprise_id, enterprise_name, status, last_action, updated_at)
  on public.connections to authenticated;
create policy connections_read on public.connections for select to authenticated
  using (enterprise_id = any ((select app.readable_enterprise_ids())::uuid[]));

create or replace function public.connection_apply(
  p_action text, p_integration_id uuid, p_enterprise_id uuid default null,
  p_enterprise_name text default null, p_token_encrypted text default null
) returns jsonb
language sql set search_path = ''
as $$
  insert into public.connections as c (integration_id, enterprise_id, enterprise_name,
                                       access_token_encrypted, status, last_action)
  values (p_integration_id, p_enterprise_id, p_enterprise_name, p_token_encrypted,
          case p_action when 'IntegrationDisabled' then 'disabled' when 'IntegrationCanceled' then 'canceled'
                        when 'IntegrationDeleted' then 'deleted' else 'active' end, p_action)
  on conflict (integration_id) do update set
    enterprise_id = coalesce(excluded.enterprise_id, c.enterprise_id),
    enterprise_name = coalesce(excluded.enterprise_name, c.enterprise_name),
    access_token_encrypted = case
      when p_action = 'IntegrationDeleted' then null
      when p_token_encrypted is not null then p_token_encrypted
      else c.access_token_encrypted end,
    status = case p_action
      when 'IntegrationDisabled' then 'disabled' when 'IntegrationCanceled' then 'canceled'
      when 'IntegrationDeleted' then 'deleted'
      when 'IntegrationEnabled' then 'active' when 'IntegrationReinstated' then 'active'
      when 'IntegrationCreated' then 'active'
      else c.status end,
    last_action = p_action, updated_at = now()
  returning jsonb_build_object('integration_id', integration_id, 'status', status,
                               'has_token', access_token_encrypted is not null)
$$;
revoke all on function public.connection_apply(text, uuid, uuid, text, text) from public, anon, authenticated;
grant execute on function public.connection_apply(text, uuid, uuid, text, text) to service_role;
