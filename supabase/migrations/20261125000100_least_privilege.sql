-- Least privilege: revoke, then grant exactly what the design needs.
--
-- Supabase grants `anon`, `authenticated` and `service_role` every privilege on every table,
-- sequence and function created in `public` (default privileges), and PostgreSQL grants EXECUTE
-- on every new function to PUBLIC. Row-level security then decides the rows, but not the
-- columns, and not TRUNCATE, REFERENCES or TRIGGER, which policies never see. So: take
-- everything away, stop it coming back for future objects, and grant table by table, column by
-- column, function by function. supabase/privileges.yaml lists the result; a test compares it with
-- the catalogue, so nothing widens quietly.

-- 1. Everything away, now ...
revoke all on all tables in schema public from public, anon, authenticated, service_role;
revoke all on all sequences in schema public from public, anon, authenticated, service_role;
revoke all on all functions in schema public from public, anon, authenticated, service_role;
revoke all on all tables in schema app from public, anon, authenticated, service_role;
revoke all on all sequences in schema app from public, anon, authenticated, service_role;
revoke all on all functions in schema app from public, anon, authenticated, service_role;
revoke create on schema public from public, anon, authenticated, service_role;
revoke all on schema app from public, anon, authenticated, service_role;
grant usage on schema app to authenticated, service_role;   -- policies call app.* helpers

-- ... and for every object the migration role creates later. (A per-schema REVOKE cannot undo
-- the global default EXECUTE for PUBLIC, hence the global form for functions.)
alter default privileges in schema public revoke all on tables from anon, authenticated, service_role;
alter default privileges in schema public revoke all on sequences from anon, authenticated, service_role;
alter default privileges in schema public revoke all on functions from anon, authenticated, service_role;
alter default privileges revoke execute on functions from public;

-- The advisor's function_search_path_mutable: the one function that had no fixed search_path.
alter function app.touch_updated_at() set search_path = '';

-- 2. Tables. service_role (the functions) reads and writes rows; TRUNCATE, REFERENCES and
-- TRIGGER belong to no API role. authenticated (staff) reads what the policies allow and writes
-- only what follows.
grant select, insert, update, delete on
  public.chains, public.enterprises, public.app_users, public.memberships, public.guests,
  public.guest_addresses, public.guest_identity_documents, public.vendors, public.resources,
  public.reservations, public.sync_checkpoints, public.sync_runs, public.event_inbox,
  public.quarantine, public.conflict_log, public.rate_limit_state, public.rate_limit_hits,
  public.connections, public.quality_rules, public.enrichment_settings, public.guest_facts,
  public.guest_enrichments, public.guest_scores, public.guest_score_history, public.quality_daily,
  public.guest_duplicates
  to service_role;
-- rule sets change state only through the SQL functions (next migration)
grant select on public.quality_rule_sets to service_role;
grant select on public.quality_guest_gaps, public.quality_field_gaps, public.quality_worst_profiles
  to service_role;

grant select on
  public.chains, public.enterprises, public.app_users, public.memberships, public.guests,
  public.guest_addresses, public.guest_identity_documents, public.vendors, public.resources,
  public.reservations, public.sync_checkpoints, public.sync_runs, public.quarantine,
  public.conflict_log, public.quality_rule_sets, public.quality_rules, public.enrichment_settings,
  public.guest_facts, public.guest_enrichments, public.guest_scores, public.guest_score_history,
  public.quality_daily, public.guest_duplicates,
  public.quality_guest_gaps, public.quality_field_gaps, public.quality_worst_profiles
  to authenticated;
-- staff see their enterprise's connection, never the token
grant select (integration_id, enterprise_id, enterprise_name, status, last_action, updated_at)
  on public.connections to authenticated;

-- a user names themselves; admins manage the memberships of what they administer (policies)
grant update (display_name) on public.app_users to authenticated;
grant insert (user_id, enterprise_id, chain_id, role), update (role), delete
  on public.memberships to authenticated;
-- staff edit the editable guest columns (shared/sync/push.py FIELDS; the trigger
-- app.guests_mark_local_edit records them); everything the sync owns is read-only
grant update (first_name, last_name, email, phone, birth_date, nationality_code,
              preferred_language_code, title, sex, notes, loyalty_code, occupation,
              car_registration_number, dietary_requirements)
  on public.guests to authenticated;
-- admins edit the rules of a draft (the trigger app.quality_rule_check validates each) and the
-- enrichment settings; costs, messages and the enterprise are derived, never written
grant insert (rule_set_id, field, kind, params, severity, weight),
      update (field, kind, params, severity, weight), delete
  on public.quality_rules to authenticated;
grant insert (enterprise_id, rule, enabled, push_to_mews), update (enabled, push_to_mews), delete
  on public.enrichment_settings to authenticated;

-- 3. Functions: the database API for the service, and what staff and admins call.
grant execute on function
  public.upsert_guests(jsonb), public.upsert_guest_addresses(jsonb),
  public.upsert_guest_identity_documents(jsonb), public.upsert_vendors(jsonb),
  public.upsert_resources(jsonb), public.upsert_reservations(jsonb),
  public.run_start(text, uuid), public.run_finish(uuid, text, jsonb, text),
  public.quarantine_add(jsonb, uuid),
  public.register_enterprise(jsonb), public.checkpoint_get(uuid, text, text),
  public.checkpoint_save(uuid, text, text, timestamptz, timestamptz, jsonb),
  public.checkpoint_window_done(uuid, text, text, text), public.guest_ids_page(uuid, uuid, integer),
  public.inbox_add(text, text, uuid, jsonb, text), public.inbox_claim(integer, integer),
  public.inbox_complete(jsonb), public.inbox_fail(jsonb, text, integer, integer),
  public.inbox_replay(jsonb), public.inbox_stats(),
  public.connection_apply(text, uuid, uuid, text, text),
  public.push_pending(integer), public.push_record(uuid, uuid, timestamptz, text, text, jsonb),
  public.rate_limit_acquire(text, integer, integer), public.rate_limit_pause(text, double precision),
  public.quality_rescore(uuid, jsonb, integer, integer), public.quality_snapshot(uuid),
  public.quality_facts_pending(uuid, integer), public.quality_facts_put(uuid, jsonb),
  public.quality_queue_enriched_pushes(uuid), public.quality_find_duplicates(uuid),
  public.quality_enterprises()
  to service_role;
grant execute on function
  public.quality_dry_run(uuid), public.quality_enable_rule_set(uuid),
  public.quality_draft_rule_set(uuid, text), public.quality_arrivals_at_risk(integer, integer),
  public.quality_report(uuid, integer, integer)
  to authenticated, service_role;

-- app.*: policy helpers and the pieces invoker functions and views call with the caller's rights
grant execute on function
  app.readable_enterprise_ids(), app.readable_chain_ids(), app.admin_enterprise_ids(),
  app.admin_chain_ids(), app.quality_reasons(bigint[]), app.quality_field_type(text)
  to authenticated, service_role;
grant execute on function
  app.guarded_upsert(regclass, jsonb, integer),
  app.quality_field_sql(text, uuid), app.quality_present_sql(text, uuid),
  app.quality_compiled_rules(uuid), app.quality_score_select(uuid), app.quality_enabled_rule_set(uuid)
  to service_role;
grant select on app.quality_profile to service_role;
-- the scorer's view reads with the reader's rights, like every other view
alter view app.quality_profile set (security_invoker = on);
