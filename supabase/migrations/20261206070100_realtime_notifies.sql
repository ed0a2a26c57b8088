-- Real time: the inbox and staff edits wake the always-on worker (`guesthub listen`) at once.
--
-- An inbox row stored (or put back to pending by a replay) notifies `guesthub_inbox` with the
-- row's enterprise id, else its integration id (a WebSocket frame, an Integration webhook),
-- else nothing: the worker wakes the drain of the connections it names (all of them for an
-- empty payload). A staff edit of a guest (the guests_local_edit trigger marked it pending)
-- notifies `guesthub_push` with the guest's chain id. PostgreSQL delivers a notification at
-- commit and folds identical ones of one transaction into one: a batch of frames of one
-- connection wakes its drain once. A notification carries no data; the worker reads the inbox
-- and the pending edits as the scheduled jobs do, so one missed (the worker was away) is
-- found by its next drain or by the jobs.

create or replace function app.inbox_notify() returns trigger
language plpgsql set search_path = ''
as $$
begin
  perform pg_notify('guesthub_inbox',
                    coalesce(new.enterprise_id::text, new.integration_id::text, ''));
  return null;
end
$$;
revoke all on function app.inbox_notify() from public, anon, authenticated, service_role;

create trigger event_inbox_notify after insert on public.event_inbox
  for each row execute function app.inbox_notify();
create trigger event_inbox_notify_replay after update of status on public.event_inbox
  for each row when (new.status = 'pending' and old.status is distinct from 'pending')
  execute function app.inbox_notify();

create or replace function app.guests_push_notify() returns trigger
language plpgsql set search_path = ''
as $$
begin
  perform pg_notify('guesthub_push', new.chain_id::text);
  return null;
end
$$;
revoke all on function app.guests_push_notify() from public, anon, authenticated, service_role;

-- after guests_local_edit (a BEFORE trigger) recorded the edit: only staff edits match
create trigger guests_push_notify after update on public.guests
  for each row when (new.push_status = 'pending'
                     and new.local_edited_at is distinct from old.local_edited_at)
  execute function app.guests_push_notify();
