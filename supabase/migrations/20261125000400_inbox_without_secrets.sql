-- No secret at rest in the inbox: Integration Webhooks carry the property's AccessToken
-- (IntegrationCreated) or its regenerated key (IntegrationApiKeyCreated, `ApiKey`). The token is
-- kept only encrypted, in public.connections; the stored body loses it. The webhook redacts
-- before it stores (shared/intake/redact.py); the database does it again for every writer, and
-- for the rows stored before this migration. Processed rows are purged after a retention period.

create or replace function app.secret_keys() returns text[]
language sql immutable set search_path = ''
as $$ select array['AccessToken', 'ApiKey', 'ClientToken'] $$;

-- The JSON with the value of every secret key, at any depth, replaced by "[redacted]".
create or replace function app.redact_jsonb(p_value jsonb) returns jsonb
language sql immutable set search_path = ''
as $$
  select case jsonb_typeof(p_value)
    when 'object' then (
      select coalesce(jsonb_object_agg(e.key, case when e.key = any (app.secret_keys()) then to_jsonb('[redacted]'::text)
                                                   else app.redact_jsonb(e.value) end), '{}'::jsonb)
      from jsonb_each(p_value) e)
    when 'array' then (
      select coalesce(jsonb_agg(app.redact_jsonb(a.value) order by a.ordinality), '[]'::jsonb)
      from jsonb_array_elements(p_value) with ordinality a)
    else p_value end
$$;

-- A body as text without secrets: JSON that held one is re-serialised from the redacted JSON
-- (so an escaped key such as "\u0041ccessToken" is caught too); text that is not JSON has every
-- "AccessToken": "..." (ApiKey, ClientToken) value replaced. Anything else is returned as is.
create or replace function app.redact_body(p_raw text) returns text
language plpgsql immutable set search_path = ''
as $$
declare
  v_json jsonb;
  v_redacted jsonb;
begin
  if p_raw is null or p_raw !~ '(AccessToken|ApiKey|ClientToken|\\u)' then
    return p_raw;
  end if;
  begin
    v_json := p_raw::jsonb;
  exception when others then
    return regexp_replace(p_raw, '("(AccessToken|ApiKey|ClientToken)"\s*:\s*)"([^"\\]|\\.)*"?',
                          '\1"[redacted]"', 'g');
  end;
  v_redacted := app.redact_jsonb(v_json);
  return case when v_redacted = v_json then p_raw else v_redacted::text end;
end
$$;

-- Every insert or update of the inbox, whoever writes it.
create or replace function app.event_inbox_redact() returns trigger
language plpgsql set search_path = ''
as $$
begin
  new.body_raw := app.redact_body(new.body_raw);
  if new.body is not null then
    new.body := app.redact_jsonb(new.body);
  end if;
  return new;
end
$$;
create trigger event_inbox_redact before insert or update of body_raw, body on public.event_inbox
  for each row execute function app.event_inbox_redact();

-- the rows stored before: scrubbed now (the trigger does the work)
update public.event_inbox set body_raw = body_raw, body = body
 where body_raw ~ '(AccessToken|ApiKey|ClientToken|\\u)';
update public.event_inbox
   set body_hash = encode(sha256(convert_to(body_raw, 'UTF8')), 'hex')
 where body_hash <> encode(sha256(convert_to(body_raw, 'UTF8')), 'hex');

-- Store before acknowledging, once: a body identical to one still waiting (pending) or already
-- refused (rejected) is not stored again — Mews re-sends what it did not see acknowledged. A
-- body identical to one already processed is stored anew: General Webhooks carry only ids, so
-- the same body later means a later change.
create or replace function public.inbox_add(
  p_source text, p_body_raw text, p_enterprise_id uuid default null,
  p_unknown jsonb default '[]'::jsonb, p_error text default null
) returns jsonb
language plpgsql set search_path = ''
as $$
declare
  v_raw text := app.redact_body(p_body_raw);
  v_hash text := encode(sha256(convert_to(v_raw, 'UTF8')), 'hex');
  v_body jsonb;
  v_id bigint;
  v_status text;
  v_error text := p_error;
begin
  select e.id, e.status, e.error into v_id, v_status, v_error
    from public.event_inbox e
   where e.body_hash = v_hash and e.source = p_source and e.status in ('pending', 'rejected')
   order by e.id desc limit 1;
  if v_id is not null then
    return jsonb_build_object('id', v_id, 'status', v_status, 'error', v_error, 'duplicate', true);
  end if;
  v_error := p_error;
  begin
    v_body := v_raw::jsonb;
  exception when others then
    v_body := null;
    v_error := coalesce(v_error, 'body is not JSON: ' || sqlerrm);
  end;
  v_status := case when v_error is null then 'pending' else 'rejected' end;
  insert into public.event_inbox (source, enterprise_id, body_raw, body, body_hash, status, error,
                                  unknown_discriminators)
  values (p_source, p_enterprise_id, v_raw, v_body, v_hash, v_status, v_error,
          array(select jsonb_array_elements_text(coalesce(p_unknown, '[]'::jsonb))))
  returning id into v_id;
  return jsonb_build_object('id', v_id, 'status', v_status, 'error', v_error, 'duplicate', false);
end
$$;

-- Processed (done) and refused (rejected) rows older than the retention period go, in batches
-- so that each call stays short; dead letters stay until they are replayed or looked at.
create or replace function public.inbox_purge(p_retention_days integer, p_batch integer default 10000)
returns jsonb
language plpgsql set search_path = ''
as $$
declare
  v_deleted integer;
begin
  if p_retention_days is null or p_retention_days < 1 then
    raise exception 'the retention is at least one day' using errcode = '22023';
  end if;
  with old as (
    select id from public.event_inbox
     where status in ('done', 'rejected')
       and coalesce(processed_at, received_at) < now() - make_interval(days => p_retention_days)
     order by id limit least(greatest(p_batch, 1), 50000)
     for update skip locked
  )
  delete from public.event_inbox e using old where e.id = old.id;
  get diagnostics v_deleted = row_count;
  return jsonb_build_object('purged', v_deleted);
end
$$;

revoke all on function app.secret_keys(), app.redact_jsonb(jsonb), app.redact_body(text),
  public.inbox_purge(integer, integer) from public, anon, authenticated, service_role;
grant execute on function app.secret_keys(), app.redact_jsonb(jsonb), app.redact_body(text),
  public.inbox_purge(integer, integer) to service_role;
