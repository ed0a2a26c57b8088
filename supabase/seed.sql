-- Local development seed (`supabase db reset` runs it after the migrations).
-- Mirror tables are filled by the sync engine from Mews (or the simulator), never by hand;
-- this only creates the demo chain so a first staff user can be given a membership:
--   insert into public.app_users (id, email) values ('<auth user id>', 'you@hotel.example');
--   insert into public.memberships (user_id, chain_id, role)
--     values ('<auth user id>', '3fa85f64-5717-4562-b3fc-2c963f66afa6', 'admin');
insert into public.chains (id, name)
values ('3fa85f64-5717-4562-b3fc-2c963f66afa6', 'Demo chain')
on conflict (id) do nothing;
