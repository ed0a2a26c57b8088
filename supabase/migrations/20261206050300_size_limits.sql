-- Every text has a bound. Before, nothing limited what an API role or a webhook wrote: a
-- `display_name`, an Integration's `Enterprise.Name`, a rule set's note or a webhook body of
-- 5 MB was stored as sent. Now every text, text array and jsonb column of every table in public
-- and app has a check constraint named after its limit, `<table>_<column>_max_<n>_chars` (text:
-- characters) or `_max_<n>_bytes` (jsonb and arrays: their size in the row), so a refusal says
-- which column and how much (PostgREST answers a check violation with 400). Columns whose check
-- already lists their values (statuses, kinds) need none. tests/db/test_size_limits.py derives
-- the columns from the catalogue and fails when one has no bound.
--
-- The limits: tight where staff or admins write (their own display name, a rule set's note, a
-- rule's parameters; the guest fields staff edit are also written by the sync, so they get the
-- limits below); generous where the sync writes what Mews sends, so that no real record is ever
-- refused (a refused record would fail its whole page). The webhook refuses bodies over 1 MiB
-- itself (413) and Enterprise names over 1000 characters (400), before the database is asked.
--
-- NOT VALID: rows stored before are not scanned (no long lock on a large table, no migration
-- that fails on an old row); every insert and update from now on is checked.

do $$
declare
  v record;
  v_name text;
  v_type text;
begin
  for v in
    select * from (values
      -- staff and admins
      ('public.app_users', 'display_name', 200),
      ('public.quality_rule_sets', 'note', 10000),
      ('public.quality_rules', 'params', 262144),
      ('public.quality_rules', 'field', 1000),
      ('public.quality_rules', 'message', 10000),
      ('public.quality_rules', 'reason_kind', 1000),
      -- people, places and things as Mews sends them (also the guest fields staff edit)
      ('public.app_users', 'email', 1000),
      ('public.chains', 'name', 1000),
      ('public.enterprises', 'name', 1000),
      ('public.enterprises', 'time_zone', 1000),
      ('public.enterprises', 'default_language_code', 1000),
      ('public.enterprises', 'raw', 8388608),
      ('public.guests', 'title', 1000),
      ('public.guests', 'sex', 1000),
      ('public.guests', 'first_name', 1000),
      ('public.guests', 'last_name', 1000),
      ('public.guests', 'second_last_name', 1000),
      ('public.guests', 'nationality_code', 1000),
      ('public.guests', 'preferred_language_code', 1000),
      ('public.guests', 'language_code', 1000),
      ('public.guests', 'birth_country_code', 1000),
      ('public.guests', 'birth_place', 1000),
      ('public.guests', 'occupation', 1000),
      ('public.guests', 'email', 1000),
      ('public.guests', 'phone', 1000),
      ('public.guests', 'loyalty_code', 1000),
      ('public.guests', 'number', 1000),
      ('public.guests', 'tax_identification_number', 1000),
      ('public.guests', 'car_registration_number', 1000),
      ('public.guests', 'notes', 100000),
      ('public.guests', 'dietary_requirements', 100000),
      ('public.guests', 'classifications', 65536),
      ('public.guests', 'options', 65536),
      ('public.guests', 'preferred_space_features', 65536),
      ('public.guests', 'raw', 8388608),
      ('public.guests', 'raw_hash', 1000),
      ('public.guests', 'local_base', 1048576),
      ('public.guests', 'local_changes', 1048576),
      ('public.guests', 'push_error', 100000),
      ('public.guest_addresses', 'line1', 1000),
      ('public.guest_addresses', 'line2', 1000),
      ('public.guest_addresses', 'city', 1000),
      ('public.guest_addresses', 'postal_code', 1000),
      ('public.guest_addresses', 'country_code', 1000),
      ('public.guest_addresses', 'country_subdivision_code', 1000),
      ('public.guest_addresses', 'raw', 8388608),
      ('public.guest_addresses', 'raw_hash', 1000),
      ('public.guest_identity_documents', 'type', 1000),
      ('public.guest_identity_documents', 'number', 1000),
      ('public.guest_identity_documents', 'issuing_country_code', 1000),
      ('public.guest_identity_documents', 'raw', 8388608),
      ('public.guest_identity_documents', 'raw_hash', 1000),
      ('public.reservations', 'number', 1000),
      ('public.reservations', 'state', 1000),
      ('public.reservations', 'origin', 1000),
      ('public.reservations', 'purpose', 1000),
      ('public.reservations', 'account_type', 1000),
      ('public.reservations', 'raw', 8388608),
      ('public.reservations', 'raw_hash', 1000),
      ('public.resources', 'name', 1000),
      ('public.resources', 'state', 1000),
      ('public.resources', 'floor_number', 1000),
      ('public.resources', 'raw', 8388608),
      ('public.resources', 'raw_hash', 1000),
      ('public.vendors', 'name', 1000),
      ('public.vendors', 'contact_person', 1000),
      ('public.vendors', 'iata', 1000),
      ('public.vendors', 'invoicing_email', 1000),
      ('public.vendors', 'tax_identifier', 1000),
      ('public.vendors', 'telephone', 1000),
      ('public.vendors', 'raw', 8388608),
      ('public.vendors', 'raw_hash', 1000),
      -- what quality work derives
      ('public.guest_facts', 'document_country', 1000),
      ('public.guest_facts', 'email_normalized', 1000),
      ('public.guest_facts', 'enriched_language', 1000),
      ('public.guest_facts', 'enriched_nationality', 1000),
      ('public.guest_facts', 'name_key', 10000),
      ('public.guest_facts', 'phone_e164', 1000),
      ('public.guest_enrichments', 'field', 1000),
      ('public.guest_enrichments', 'rule', 1000),
      ('public.guest_enrichments', 'source', 1000),
      ('public.guest_enrichments', 'value', 100000),
      ('public.guest_duplicates', 'evidence', 1048576),
      ('app.quality_duplicate_queue', 'old_keys', 1048576),
      ('app.quality_compiled', 'sql', 16777216),
      ('public.conflict_log', 'field', 1000),
      ('public.conflict_log', 'detail', 100000),
      ('public.conflict_log', 'local_value', 1048576),
      ('public.conflict_log', 'mews_value', 1048576),
      -- webhooks and the inbox (the webhook refuses bodies over 1 MiB; redaction may lengthen one)
      ('public.event_inbox', 'body_raw', 4194304),
      ('public.event_inbox', 'body', 16777216),
      ('public.event_inbox', 'body_hash', 1000),
      ('public.event_inbox', 'error', 100000),
      ('public.event_inbox', 'unknown_discriminators', 2097152),
      -- connections (a portfolio's name lists its hotels; the webhook refuses a name over 1000)
      ('public.connections', 'enterprise_name', 100000),
      ('public.connections', 'access_token_encrypted', 10000),
      ('public.connections', 'token_key', 1000),
      ('public.connections', 'last_action', 1000),
      ('public.connection_jobs', 'job', 1000),
      ('public.connection_jobs', 'last_status', 1000),
      ('public.connection_jobs', 'last_error', 100000),
      ('public.connection_jobs', 'lease_holder', 1000),
      ('public.rate_limit_state', 'key', 1000),
      ('public.rate_limit_state', 'unauthorized_error', 100000),
      ('public.rate_limit_hits', 'key', 1000),
      -- runs, checkpoints, leases, quarantine
      ('public.sync_runs', 'job', 1000),
      ('public.sync_runs', 'owner', 1000),
      ('public.sync_runs', 'abandoned_by', 1000),
      ('public.sync_runs', 'error', 100000),
      ('public.sync_runs', 'counts', 1048576),
      ('public.sync_checkpoints', 'entity', 1000),
      ('public.sync_checkpoints', 'state', 8388608),
      ('public.sync_leases', 'name', 1000),
      ('public.sync_leases', 'holder', 1000),
      ('public.quarantine', 'entity', 1000),
      ('public.quarantine', 'mews_id', 1000),
      ('public.quarantine', 'reason', 100000),
      ('public.quarantine', 'raw', 8388608),
      ('public.quarantine', 'raw_text', 4194304)
    ) as l (relation, column_name, max_size)
  loop
    select t.typname into v_type
      from pg_attribute a join pg_type t on t.oid = a.atttypid
     where a.attrelid = v.relation::regclass and a.attname = v.column_name and not a.attisdropped;
    if v_type is null then
      raise exception 'size limits: % has no column %', v.relation, v.column_name;
    end if;
    v_name := format('%s_%s_max_%s_%s', split_part(v.relation, '.', 2), v.column_name, v.max_size,
                     case when v_type in ('text', 'varchar', 'bpchar') then 'chars' else 'bytes' end);
    if length(v_name) > 63 then
      raise exception 'size limits: constraint name % is too long', v_name;
    end if;
    execute format('alter table %s add constraint %I check (%s(%I) <= %s) not valid',
                   v.relation, v_name,
                   case when v_type in ('text', 'varchar', 'bpchar') then 'char_length' else 'pg_column_size' end,
                   v.column_name, v.max_size);
  end loop;
end
$$;
