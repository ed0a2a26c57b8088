-- No token in plain text in the inbox, however its key is spelled. Before, a body that is not
-- JSON kept a token under an escaped key ("Access\u0054oken": ...) or in a query string
-- (AccessToken=...) as received, in a rejected row: the textual redaction knew only the three
-- names written plainly. Now, as shared/intake/redact.py does first:
-- - a key is a secret key when its decoded text is AccessToken, ApiKey or ClientToken in any
--   letter case (JSON bodies too);
-- - in text that is not JSON, each "<key>": whose key decodes to a secret name has its value
--   replaced (a string, a bare word, or an object or array with the rest of the text);
-- - the value of each query-string parameter AccessToken=, ApiKey=, ClientToken= or Token= (the
--   webhook's URL secret) is replaced.
-- Rows stored before are scrubbed again at the end.

-- Whether a decoded JSON key names a secret.
create function app.is_secret_key(p_key text) returns boolean
language sql immutable set search_path = ''
as $$ select lower(p_key) = any (select lower(k) from unnest(app.secret_keys()) k) $$;

-- A JSON string's text with its escapes resolved (p_raw is what stands between the quotes);
-- null when it is not a valid JSON string.
create function app.json_string_text(p_raw text) returns text
language plpgsql immutable set search_path = ''
as $$
begin
  return ('"' || p_raw || '"')::jsonb #>> '{}';
exception when others then
  return null;
end
$$;

create or replace function app.redact_jsonb(p_value jsonb) returns jsonb
language sql immutable set search_path = ''
as $$
  select case jsonb_typeof(p_value)
    when 'object' then (
      select coalesce(jsonb_object_agg(e.key, case when app.is_secret_key(e.key) then to_jsonb('[redacted]'::text)
                                                   else app.redact_jsonb(e.value) end), '{}'::jsonb)
      from jsonb_each(p_value) e)
    when 'array' then (
      select coalesce(jsonb_agg(app.redact_jsonb(a.value) order by a.ordinality), '[]'::jsonb)
      from jsonb_array_elements(p_value) with ordinality a)
    else p_value end
$$;

-- Text that is not JSON, redacted member by member and parameter by parameter (see the top).
create function app.redact_text(p_raw text) returns text
language plpgsql immutable set search_path = ''
as $$
declare
  v_keys text;
begin
  -- the member keys of the text, as written, that decode to a secret name: as regex literals
  select string_agg(distinct regexp_replace(m[1], '([\\^$.|?*+()\[\]{}])', '\\\1', 'g'), '|')
    into v_keys
    from regexp_matches(p_raw, '"((?:[^"\\]|\\.)*)"\s*:', 'g') m
   where app.is_secret_key(coalesce(app.json_string_text(m[1]), m[1]));
  if v_keys is not null then
    p_raw := regexp_replace(
      p_raw,
      '("(?:' || v_keys || ')"\s*:\s*)(?:"(?:[^"\\]|\\.)*"?|[{\[].*|[^\s,}\]"]+)',
      '\1"[redacted]"', 'g');
  end if;
  return regexp_replace(p_raw, '(^|[^[:alnum:]_%.~-])((?:accesstoken|apikey|clienttoken|token)=)[^&\s"''#<>]+',
                        '\1\2[redacted]', 'gi');
end
$$;

create or replace function app.redact_body(p_raw text) returns text
language plpgsql immutable set search_path = ''
as $$
declare
  v_json jsonb;
  v_redacted jsonb;
begin
  if p_raw is null or p_raw !~* '(accesstoken|apikey|clienttoken|token=|\\u)' then
    return p_raw;
  end if;
  begin
    v_json := p_raw::jsonb;
  exception when others then
    return app.redact_text(p_raw);
  end;
  v_redacted := app.redact_jsonb(v_json);
  return case when v_redacted = v_json then p_raw else v_redacted::text end;
end
$$;

revoke all on function app.is_secret_key(text), app.json_string_text(text), app.redact_text(text)
  from public, anon, authenticated, service_role;
-- app.redact_body, which the service may call, uses them
grant execute on function app.is_secret_key(text), app.json_string_text(text), app.redact_text(text)
  to service_role;

-- the rows stored before: scrubbed again (the trigger does the work), their hash kept true
update public.event_inbox set body_raw = body_raw, body = body
 where body_raw ~* '(accesstoken|apikey|clienttoken|token=|\\u)';
update public.event_inbox
   set body_hash = encode(sha256(convert_to(body_raw, 'UTF8')), 'hex')
 where body_hash <> encode(sha256(convert_to(body_raw, 'UTF8')), 'hex');
