-- Every webhook body and WebSocket frame, stored before it is acknowledged, processed later.
create table public.event_inbox (
  id bigint generated always as identity primary key,
  source text not null check (source in ('general_webhook', 'integration_webhook', 'websocket')),
  enterprise_id uuid,                          -- when the body names one
  body_raw text not null,                      -- exactly as received, even when malformed
  body jsonb,                                  -- parsed, null when it was not JSON
  body_hash text not null,                     -- sha256 of body_raw
  status text not null default 'pending'
    check (status in ('pending', 'processing', 'done', 'failed', 'dead', 'rejected')),
  attempts integer not null default 0,
  error text,
  unknown_discriminators text[] not null default '{}',
  received_at timestamptz not null default now(),
  available_at timestamptz not null default now(),  -- retry backoff
  locked_until timestamptz,
  processed_at timestamptz
);
create index event_inbox_ready_idx on public.event_inbox (available_at, id)
  where status in ('pending', 'failed');
create index event_inbox_hash_idx on public.event_inbox (body_hash);

alter table public.event_inbox enable row level security;
revoke all on public.event_inbox from anon, authenticated;
grant all on public.event_inbox to service_role;
-- no policy: staff never read raw bodies (they may contain ids of guests of other chains)
