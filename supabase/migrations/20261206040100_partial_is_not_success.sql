-- A run's status says what happened: `succeeded` when its work is done (records kept in the
-- quarantine are counted, not a failure), `partial` when work was left for the next run (the
-- time budget ran out, a window Mews kept failing was left, edits or events wait for a retry).
-- A connection's last successful pass is therefore the last `succeeded` one: a `partial` pass
-- did not finish its work. Same signature (create or replace keeps the grants).
create or replace function public.connection_release(
  p_job text, p_integration_id uuid, p_holder text, p_status text,
  p_completed boolean default true, p_error text default null
) returns jsonb
language sql set search_path = ''
as $$
  with released as (
    update public.connection_jobs set
      lease_holder = null, lease_expires_at = null, last_finished_at = now(), last_status = p_status,
      last_error = left(p_error, 1000),
      last_succeeded_at = case when p_completed and p_status = 'succeeded'
                               then now() else last_succeeded_at end,
      last_started_at = case when p_completed then last_started_at end
     where integration_id = p_integration_id and job = p_job and lease_holder = p_holder
    returning 1
  ) select jsonb_build_object('released', exists (select 1 from released))
$$;
