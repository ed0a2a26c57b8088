-- One path for writing the mirror: the records API, upsert_<table>(p_scope_id, p_records)
-- (20261126020100, the mirror written from records), which derives the typed columns in SQL and
-- resolves the quarantine entries of what it stores in the same statement. The rows API that
-- came before it (upsert_<table>(p_rows): rows mapped in Python) was used by no job any more,
-- only by tests and a benchmark; its functions, the generic app.guarded_upsert they called and
-- quarantine_resolve (which only the rows path needed: the records API resolves by itself) go.
drop function public.upsert_guests(jsonb);
drop function public.upsert_guest_addresses(jsonb);
drop function public.upsert_guest_identity_documents(jsonb);
drop function public.upsert_vendors(jsonb);
drop function public.upsert_reservations(jsonb);
drop function public.upsert_resources(jsonb);
drop function app.guarded_upsert(regclass, jsonb, integer);
drop function public.quarantine_resolve(text, uuid, jsonb);
