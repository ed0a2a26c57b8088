-- The tables a frontend watches live (Supabase Realtime `postgres_changes`, docs/FRONTEND.md):
-- the guests, their scores (the gap views are computed from them) and score history, the
-- conflicts of staff edits, and sync health (runs, quarantined records). Realtime sends a
-- subscriber only the changes of rows its role may select under row-level security, which
-- every one of these tables has; tables holding secrets or internals (connections, the inbox,
-- rate-limit state) are not published.
--
-- Supabase creates the publication with every project (our plain-Postgres bootstrap does the
-- same); a table already in it (added from the dashboard) is left as it is, and a publication
-- of all tables needs nothing.
do $$
declare
  v_table text;
begin
  if not exists (select from pg_publication where pubname = 'supabase_realtime') then
    raise exception 'publication supabase_realtime is missing (Supabase creates it; on plain Postgres the bootstrap does)';
  end if;
  if (select puballtables from pg_publication where pubname = 'supabase_realtime') then
    return;
  end if;
  foreach v_table in array array['guests', 'guest_scores', 'guest_score_history', 'conflict_log',
                                 'sync_runs', 'quarantine'] loop
    if not exists (select from pg_publication_tables
                    where pubname = 'supabase_realtime' and schemaname = 'public'
                      and tablename = v_table) then
      execute format('alter publication supabase_realtime add table public.%I', v_table);
    end if;
  end loop;
end
$$;
