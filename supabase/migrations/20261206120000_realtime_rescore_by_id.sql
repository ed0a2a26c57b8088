-- Real time: the guests the worker just wrote, rescored by their ids.
--
-- After each drain the real-time worker rescored the chain's changed guests with
-- quality_facts_changed, which scans every guest synced since the chain's last quiet scan (less
-- five minutes) and only moves that mark when it finds nothing stale: under a steady stream of
-- changes every drain found the guests it had just written, so each call scanned every guest
-- synced since the stream began (up to twenty pages). The worker knows which guests it wrote:
-- quality_facts_of answers those of them whose facts are older than their row, by primary key.
-- The scan stays for the score job (and for the worker now and then: other writers).

-- p_ids: a JSON array of guest ids (at most 5000 are read).
create or replace function public.quality_facts_of(p_chain_id uuid, p_ids jsonb) returns jsonb
language sql stable set search_path = ''
as $$
  select coalesce(jsonb_agg(app.quality_facts_input(g) order by g.mews_id), '[]'::jsonb)
  from public.guests g
  left join public.guest_facts f on f.chain_id = g.chain_id and f.guest_mews_id = g.mews_id
  where g.chain_id = p_chain_id
    and g.mews_id in (select i::uuid from jsonb_array_elements_text(p_ids) i limit 5000)
    and (f.guest_mews_id is null or f.source_synced_at is null or f.source_synced_at < g.synced_at)
$$;

revoke all on function public.quality_facts_of(uuid, jsonb) from public, anon, authenticated, service_role;
grant execute on function public.quality_facts_of(uuid, jsonb) to service_role;
