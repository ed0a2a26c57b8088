-- A claim of queued guests reads the chain's model, not how many guests have keys: that count
-- (quality_duplicates_model's 'keyed', which only a full pass needs) read every key row of the
-- chain, 146 ms of the 162 ms an update around one changed guest took at 1.19M guests.

create or replace function public.quality_duplicates_claim(p_chain_id uuid, p_limit integer default 200)
returns jsonb
language sql stable set search_path = ''
as $$
  with queued as (
    select q.guest_mews_id, q.queued_at from app.quality_duplicate_queue q
     where q.chain_id = p_chain_id order by q.queued_at, q.guest_mews_id
     limit least(greatest(p_limit, 1), 1000))
  select jsonb_build_object(
    'claimed_at', (select max(q.queued_at) from queued q),
    'ids', coalesce((select jsonb_agg(q.guest_mews_id) from queued q), '[]'::jsonb),
    'guests', coalesce((
      select jsonb_agg(app.duplicate_input(g, f))
      from queued q
      join public.guests g on g.chain_id = p_chain_id and g.mews_id = q.guest_mews_id and g.is_active
      left join public.guest_facts f on f.chain_id = p_chain_id and f.guest_mews_id = g.mews_id), '[]'::jsonb),
    'model', (select jsonb_build_object('model', m.model, 'guests', m.guests,
                                        'counts_digest', m.counts_digest, 'estimated_at', m.estimated_at)
              from app.duplicate_models m where m.chain_id = p_chain_id),
    'more', (select count(*) from queued) >= least(greatest(p_limit, 1), 1000))
$$;
