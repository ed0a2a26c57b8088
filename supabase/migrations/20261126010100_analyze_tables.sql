-- Planner statistics are current after every bulk write, whoever writes: no job depends on
-- autovacuum (off on some servers; on Supabase a job can run before autoanalyze does).
--
-- public.analyze_tables({"guests": 20000, "guest_addresses": null, ...}) (app.analyze_stale
-- inside the functions of this project) analyzes each named
-- table whose statistics are missing or stale: never analyzed, or more rows written since the
-- last ANALYZE (the number given, when the caller knows what it wrote, else the statistics
-- collector's n_mod_since_analyze) than 10 % of the table or 10,000 rows. Names are tables of
-- the schema public (or app, qualified). SECURITY DEFINER: ANALYZE needs the tables' owner; only
-- the service (or the owner) may call it.

create or replace function app.analyze_stale(p_tables jsonb) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_entry record;
  v_name text;
  v_table regclass;
  v_reltuples double precision;
  v_analyzed_before boolean;
  v_modified bigint;
  v_done text[] := '{}';
  v_checked integer := 0;
begin
  if jsonb_typeof(p_tables) is distinct from 'object' then
    raise exception 'tables: an object of table name -> rows written (or null)' using errcode = '22023';
  end if;
  for v_entry in select key, value from jsonb_each(p_tables) order by key loop
    v_name := case when v_entry.key like '%.%' then v_entry.key else 'public.' || v_entry.key end;
    if split_part(v_name, '.', 1) not in ('public', 'app') or v_name !~ '^[a-z_]+\.[a-z0-9_]+$' then
      raise exception 'analyze_tables: % is not a table of public or app', v_entry.key using errcode = '22023';
    end if;
    v_table := to_regclass(v_name);
    select c.reltuples into v_reltuples from pg_catalog.pg_class c
     where c.oid = v_table and c.relkind in ('r', 'p');
    if not found then
      raise exception 'analyze_tables: no table %', v_entry.key using errcode = '22023';
    end if;
    v_checked := v_checked + 1;
    select s.last_analyze is not null or s.last_autoanalyze is not null, s.n_mod_since_analyze
      into v_analyzed_before, v_modified
      from pg_catalog.pg_stat_user_tables s where s.relid = v_table;
    v_modified := greatest(coalesce(v_modified, 0),
                           case when jsonb_typeof(v_entry.value) = 'number' then (v_entry.value #>> '{}')::bigint end);
    if v_reltuples < 0 or not coalesce(v_analyzed_before, false)
       or v_modified >= least(10000, greatest(1, 0.1 * v_reltuples)) then
      execute format('analyze %s', v_table);
      v_done := v_done || v_name;
    end if;
  end loop;
  return jsonb_build_object('checked', v_checked, 'analyzed', to_jsonb(v_done));
end
$$;

-- what the service calls (the functions of this project call app.analyze_stale after their own
-- bulk writes, whoever their caller)
create or replace function public.analyze_tables(p_tables jsonb) returns jsonb
language plpgsql security definer set search_path = ''
as $$
begin
  if not app.caller_is_trusted() then
    raise exception 'only the service may analyze tables' using errcode = '42501';
  end if;
  return app.analyze_stale(p_tables);
end
$$;

revoke all on function app.analyze_stale(jsonb), public.analyze_tables(jsonb)
  from public, anon, authenticated, service_role;
grant execute on function public.analyze_tables(jsonb) to service_role;
