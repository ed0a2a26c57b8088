-- Private helpers used by policies and the database API. Schema `app` is not exposed by
-- PostgREST; only `public` is.
create schema if not exists app;
revoke all on schema app from public;
grant usage on schema app to anon, authenticated, service_role;

-- keeps `updated_at` honest on every table that has one
create or replace function app.touch_updated_at() returns trigger
language plpgsql
as $$
begin
  new.updated_at := now();
  return new;
end
$$;
