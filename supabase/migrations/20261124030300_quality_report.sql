-- What the score job iterates over, and the report's data in one call.

create or replace function public.quality_enterprises() returns jsonb
language sql stable set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object('id', e.id, 'chain_id', e.chain_id, 'name', e.name)
                            order by e.name), '[]'::jsonb)
  from public.enterprises e
$$;

-- Everything the report shows, for one enterprise (the caller's row-level security applies).
create or replace function public.quality_report(p_enterprise_id uuid, p_days integer default 14,
                                                 p_threshold integer default 60) returns jsonb
language sql stable security invoker set search_path = ''
as $$
  select jsonb_build_object(
    'enterprise', (select jsonb_build_object('id', id, 'name', name) from public.enterprises where id = p_enterprise_id),
    'guests', (select count(*) from public.guest_scores where enterprise_id = p_enterprise_id),
    'average', (select round(avg(score), 1) from public.guest_scores where enterprise_id = p_enterprise_id),
    'distribution', (select coalesce(jsonb_agg(jsonb_build_object('bucket', b, 'guests', n) order by b), '[]'::jsonb)
                     from (select least(score / 10, 9) * 10 as b, count(*) as n from public.guest_scores
                           where enterprise_id = p_enterprise_id group by 1) d),
    'fields', (select coalesce(jsonb_agg(jsonb_build_object('field', field, 'missing', missing, 'invalid', invalid,
                                                            'missing_rate', missing_rate) order by missing + invalid desc), '[]'::jsonb)
               from public.quality_field_gaps where enterprise_id = p_enterprise_id),
    'trend', (select coalesce(jsonb_agg(jsonb_build_object('day', day, 'average', average, 'below_50', below_50,
                                                           'guests', guests) order by day), '[]'::jsonb)
              from (select * from public.quality_daily where enterprise_id = p_enterprise_id order by day desc limit 90) t),
    'worst', (select coalesce(jsonb_agg(jsonb_build_object('guest', guest_mews_id, 'name', concat_ws(' ', first_name, last_name),
                                                           'score', score, 'reasons', reasons) order by rank), '[]'::jsonb)
              from public.quality_worst_profiles where enterprise_id = p_enterprise_id and rank <= 15),
    'arrivals', (select coalesce(jsonb_agg(jsonb_build_object('arrival', arrival, 'name', concat_ws(' ', first_name, last_name),
                                                              'state', state, 'score', score, 'reasons', reasons)), '[]'::jsonb)
                 from public.quality_arrivals_at_risk(p_days, p_threshold) a where a.enterprise_id = p_enterprise_id),
    'duplicates', (select count(*) from public.guest_duplicates d join public.enterprises e on e.chain_id = d.chain_id
                   where e.id = p_enterprise_id))
$$;

revoke all on function public.quality_enterprises() from public, anon, authenticated;
grant execute on function public.quality_enterprises() to service_role;
revoke all on function public.quality_report(uuid, integer, integer) from public, anon;
grant execute on function public.quality_report(uuid, integer, integer) to authenticated, service_role;
