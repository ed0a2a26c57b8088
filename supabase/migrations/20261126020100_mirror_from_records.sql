-- Mirror writes from the records as Mews sent them: the typed columns are derived here, in SQL,
-- from the raw JSON, instead of being mapped in Python and sent a second time beside it.
--
-- public.upsert_<table>(p_scope_id uuid, p_records jsonb) takes a page of Mews records (≤ 1000,
-- as Mews sent them) and the scope they were read for (the chain of customers, addresses,
-- documents and companies; the enterprise of reservations and resources), and writes them with
-- the same guard as the rows API (public.upsert_<table>(p_rows jsonb), migration 20261124001400,
-- kept as it is). The types of the derived columns validate the records: one they cannot hold
-- (an id that is no UUID, a timestamp that is none, a NUL, a missing last name) refuses the page
-- with a data SQLSTATE (class 22 or 23), and the caller bisects the page down to it. A field the
-- client's models give a default is that default when absent, and refused when null. The guard:
-- - a stored row is overwritten only when the incoming (mews_updated_utc, raw_hash) is greater;
--   equal timestamps with different content break the tie on raw_hash = md5(raw::text), the same
--   hash as the rows API, so both APIs order the same records the same way;
-- - a replay (same timestamp, same content) changes nothing, not even synced_at;
-- - when neither side has a timestamp (identity documents), the latest fetch wins;
-- - local_* and push_* columns (staff edits waiting for Mews) are never written.
-- Half the bytes travel (no mapped copy of each record), and the database parses each record once.
--
-- One derivation function per table, app.<table>_from_records(p_scope_id, p_records), returns the
-- typed columns and the raw record of each record, exactly as shared/sync/mapping.py maps them
-- (tests/sync/test_engine_records.py holds the two together); app.guarded_upsert_records writes
-- whatever columns the derivation returns.
--
-- The write commits without waiting for its WAL flush (synchronous_commit off, for this
-- transaction only): what a crash could lose is the last fraction of a second of mirror writes,
-- never behind a checkpoint, because every checkpoint, inbox status or run record that says the
-- rows are in is a later, synchronous commit, and flushing it flushes everything written before.

-- Timestamps and dates are read as the client's models read them (written inline below, where
-- they run per record): ISO 8601 only (PostgreSQL would also take 'yesterday' or 'epoch'),
-- fractional seconds beyond the sixth cut off (PostgreSQL would round; a string longer than 26
-- characters may hold seven digits), and a date-time where a date is meant read as its date.

create or replace function app.guests_from_records(p_scope_id uuid, p_records jsonb)
returns table (
  chain_id uuid, mews_id uuid, number text, title text, sex text, first_name text,
  last_name text, second_last_name text, nationality_code text, preferred_language_code text,
  language_code text, birth_date date, birth_place text, birth_country_code text,
  occupation text, email text, has_ota_email boolean, phone text, loyalty_code text,
  tax_identification_number text, notes text, car_registration_number text,
  dietary_requirements text, company_id uuid, address_id uuid, classifications text[],
  options text[], preferred_space_features text[], merge_target_id uuid, is_active boolean,
  creator_profile_id uuid, updater_profile_id uuid, mews_created_utc timestamptz,
  mews_updated_utc timestamptz, raw jsonb
)
language sql stable set search_path = ''
as $$
  select r."ChainId", r."Id", r."Number", r."Title", r."Sex", r."FirstName", r."LastName",
         r."SecondLastName", r."NationalityCode", r."PreferredLanguageCode", r."LanguageCode",
         (case when left(r."BirthDate", 1) between '0' and '9' then split_part(r."BirthDate", 'T', 1)
               else 'not a Mews date: ' || r."BirthDate" end)::date,
         r."BirthPlace", r."BirthCountryCode", r."Occupation", r."Email",
         case when e.raw ? 'HasOtaEmail' then r."HasOtaEmail" else false end,
         r."Phone", r."LoyaltyCode", r."TaxIdentificationNumber", r."Notes",
         r."CarRegistrationNumber", r."DietaryRequirements", r."CompanyId", r."AddressId",
         coalesce(r."Classifications", '{}'), coalesce(r."Options", '{}'),
         coalesce(r."PreferredSpaceFeatures", '{}'), r."MergeTargetId",
         case when e.raw ? 'IsActive' then r."IsActive" else true end, r."CreatorProfileId",
         r."UpdaterProfileId",
         (case when left(r."CreatedUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."CreatedUtc"
               when length(r."CreatedUtc") > 26 then regexp_replace(r."CreatedUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."CreatedUtc" end)::timestamptz,
         (case when left(r."UpdatedUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."UpdatedUtc"
               when length(r."UpdatedUtc") > 26 then regexp_replace(r."UpdatedUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."UpdatedUtc" end)::timestamptz,
         e.raw
  from jsonb_array_elements(p_records) as e(raw)
  cross join lateral jsonb_to_record(e.raw) as r(
    "Id" uuid, "ChainId" uuid, "Number" text, "Title" text, "Sex" text, "FirstName" text,
    "LastName" text, "SecondLastName" text, "NationalityCode" text,
    "PreferredLanguageCode" text, "LanguageCode" text, "BirthDate" text, "BirthPlace" text,
    "BirthCountryCode" text, "Occupation" text, "Email" text, "HasOtaEmail" boolean,
    "Phone" text, "LoyaltyCode" text, "TaxIdentificationNumber" text, "Notes" text,
    "CarRegistrationNumber" text, "DietaryRequirements" text, "CompanyId" uuid,
    "AddressId" uuid, "Classifications" text[], "Options" text[],
    "PreferredSpaceFeatures" text[], "MergeTargetId" uuid, "IsActive" boolean,
    "CreatorProfileId" uuid, "UpdaterProfileId" uuid, "CreatedUtc" text, "UpdatedUtc" text)
$$;

-- Guest addresses only: addresses of companies (or of no account) are not mirrored.
create or replace function app.guest_addresses_from_records(p_scope_id uuid, p_records jsonb)
returns table (
  chain_id uuid, mews_id uuid, guest_mews_id uuid, line1 text, line2 text, city text,
  postal_code text, country_code text, country_subdivision_code text, is_active boolean,
  mews_updated_utc timestamptz, raw jsonb
)
language sql stable set search_path = ''
as $$
  select coalesce(r."ChainId", p_scope_id), r."Id", r."AccountId", r."Line1", r."Line2", r."City",
         r."PostalCode", r."CountryCode", r."CountrySubdivisionCode",
         case when e.raw ? 'IsActive' then r."IsActive" else true end,
         (case when left(r."UpdatedUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."UpdatedUtc"
               when length(r."UpdatedUtc") > 26 then regexp_replace(r."UpdatedUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."UpdatedUtc" end)::timestamptz,
         e.raw
  from jsonb_array_elements(p_records) as e(raw)
  cross join lateral jsonb_to_record(e.raw) as r(
    "Id" uuid, "AccountId" uuid, "ChainId" uuid, "AccountType" text, "Line1" text, "Line2" text,
    "City" text, "PostalCode" text, "CountryCode" text, "CountrySubdivisionCode" text,
    "IsActive" boolean, "UpdatedUtc" text)
  where coalesce(r."AccountType", 'Customer') = 'Customer' and r."AccountId" is not null
$$;

-- Identity documents carry no clock (mews_updated_utc stays null) and no chain: the scope's.
create or replace function app.guest_identity_documents_from_records(p_scope_id uuid, p_records jsonb)
returns table (
  chain_id uuid, mews_id uuid, guest_mews_id uuid, type text, number text, expiration_date date,
  issuance_date date, issuing_country_code text, is_verified boolean,
  mews_updated_utc timestamptz, raw jsonb
)
language sql stable set search_path = ''
as $$
  select p_scope_id, r."Id", r."CustomerId", r."Type",
         case when e.raw ? 'Number' then r."Number" else '' end,
         (case when left(r."ExpirationDate", 1) between '0' and '9'
               then split_part(r."ExpirationDate", 'T', 1)
               else 'not a Mews date: ' || r."ExpirationDate" end)::date,
         (case when left(r."IssuanceDate", 1) between '0' and '9'
               then split_part(r."IssuanceDate", 'T', 1)
               else 'not a Mews date: ' || r."IssuanceDate" end)::date,
         r."IssuingCountryCode", case when e.raw ? 'IsVerified' then r."IsVerified" else false end,
         null::timestamptz, e.raw
  from jsonb_array_elements(p_records) as e(raw)
  cross join lateral jsonb_to_record(e.raw) as r(
    "Id" uuid, "CustomerId" uuid, "Type" text, "Number" text, "ExpirationDate" text,
    "IssuanceDate" text, "IssuingCountryCode" text, "IsVerified" boolean)
$$;

-- The contact person is read from ContactPerson, else from the documented typo ContacPerson.
create or replace function app.vendors_from_records(p_scope_id uuid, p_records jsonb)
returns table (
  chain_id uuid, mews_id uuid, name text, number numeric, is_active boolean,
  mother_company_id uuid, invoicing_email text, telephone text, contact_person text,
  tax_identifier text, iata text, merge_target_id uuid, mews_created_utc timestamptz,
  mews_updated_utc timestamptz, raw jsonb
)
language sql stable set search_path = ''
as $$
  select r."ChainId", r."Id", r."Name", r."Number",
         case when e.raw ? 'IsActive' then r."IsActive" else true end,
         r."MotherCompanyId", r."InvoicingEmail", r."Telephone",
         case when e.raw ? 'ContactPerson' then e.raw->>'ContactPerson' else e.raw->>'ContacPerson' end,
         r."TaxIdentifier", e.raw->>'Iata', r."MergeTargetId",
         (case when left(r."CreatedUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."CreatedUtc"
               when length(r."CreatedUtc") > 26 then regexp_replace(r."CreatedUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."CreatedUtc" end)::timestamptz,
         (case when left(r."UpdatedUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."UpdatedUtc"
               when length(r."UpdatedUtc") > 26 then regexp_replace(r."UpdatedUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."UpdatedUtc" end)::timestamptz,
         e.raw
  from jsonb_array_elements(p_records) as e(raw)
  cross join lateral jsonb_to_record(e.raw) as r(
    "Id" uuid, "ChainId" uuid, "Name" text, "Number" numeric, "IsActive" boolean,
    "MotherCompanyId" uuid, "InvoicingEmail" text, "Telephone" text, "TaxIdentifier" text,
    "MergeTargetId" uuid, "CreatedUtc" text, "UpdatedUtc" text)
$$;

-- person_count: the sum of PersonCounts[].Count (whole numbers; what is not an object counts 0).
create or replace function app.reservations_from_records(p_scope_id uuid, p_records jsonb)
returns table (
  enterprise_id uuid, mews_id uuid, service_id uuid, account_id uuid, account_type text,
  booker_id uuid, number text, state text, origin text, purpose text,
  scheduled_start_utc timestamptz, scheduled_end_utc timestamptz,
  actual_start_utc timestamptz, actual_end_utc timestamptz, cancelled_utc timestamptz,
  assigned_resource_id uuid, partner_company_id uuid, travel_agency_id uuid,
  person_count integer, mews_created_utc timestamptz, mews_updated_utc timestamptz, raw jsonb
)
language sql stable set search_path = ''
as $$
  select p_scope_id, r."Id", r."ServiceId", r."AccountId", r."AccountType", r."BookerId",
         r."Number", r."State", r."Origin", r."Purpose",
         (case when left(r."ScheduledStartUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."ScheduledStartUtc"
               when length(r."ScheduledStartUtc") > 26 then regexp_replace(r."ScheduledStartUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."ScheduledStartUtc" end)::timestamptz,
         (case when left(r."ScheduledEndUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."ScheduledEndUtc"
               when length(r."ScheduledEndUtc") > 26 then regexp_replace(r."ScheduledEndUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."ScheduledEndUtc" end)::timestamptz,
         (case when left(r."ActualStartUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."ActualStartUtc"
               when length(r."ActualStartUtc") > 26 then regexp_replace(r."ActualStartUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."ActualStartUtc" end)::timestamptz,
         (case when left(r."ActualEndUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."ActualEndUtc"
               when length(r."ActualEndUtc") > 26 then regexp_replace(r."ActualEndUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."ActualEndUtc" end)::timestamptz,
         (case when left(r."CancelledUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."CancelledUtc"
               when length(r."CancelledUtc") > 26 then regexp_replace(r."CancelledUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."CancelledUtc" end)::timestamptz,
         r."AssignedResourceId", r."PartnerCompanyId", r."TravelAgencyId",
         (select coalesce(sum(trunc(coalesce(nullif(c->>'Count', ''), '0')::numeric)), 0)
            from jsonb_array_elements(case jsonb_typeof(e.raw->'PersonCounts')
                                      when 'array' then e.raw->'PersonCounts' else '[]' end) as c
           where jsonb_typeof(c) = 'object')::integer,
         (case when left(r."CreatedUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."CreatedUtc"
               when length(r."CreatedUtc") > 26 then regexp_replace(r."CreatedUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."CreatedUtc" end)::timestamptz,
         (case when left(r."UpdatedUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."UpdatedUtc"
               when length(r."UpdatedUtc") > 26 then regexp_replace(r."UpdatedUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."UpdatedUtc" end)::timestamptz,
         e.raw
  from jsonb_array_elements(p_records) as e(raw)
  cross join lateral jsonb_to_record(e.raw) as r(
    "Id" uuid, "ServiceId" uuid, "AccountId" uuid, "AccountType" text, "BookerId" uuid,
    "Number" text, "State" text, "Origin" text, "Purpose" text, "ScheduledStartUtc" text,
    "ScheduledEndUtc" text, "ActualStartUtc" text, "ActualEndUtc" text, "CancelledUtc" text,
    "AssignedResourceId" uuid, "PartnerCompanyId" uuid, "TravelAgencyId" uuid,
    "CreatedUtc" text, "UpdatedUtc" text)
$$;

-- floor_number: Data.Value.FloorNumber of a space (Data is a coproduct).
create or replace function app.resources_from_records(p_scope_id uuid, p_records jsonb)
returns table (
  enterprise_id uuid, mews_id uuid, name text, state text, is_active boolean,
  parent_resource_id uuid, floor_number text, mews_created_utc timestamptz,
  mews_updated_utc timestamptz, raw jsonb
)
language sql stable set search_path = ''
as $$
  select r."EnterpriseId", r."Id", r."Name", r."State",
         case when e.raw ? 'IsActive' then r."IsActive" else true end,
         r."ParentResourceId",
         case when jsonb_typeof(e.raw->'Data'->'Value') = 'object'
              then e.raw->'Data'->'Value'->>'FloorNumber' end,
         (case when left(r."CreatedUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."CreatedUtc"
               when length(r."CreatedUtc") > 26 then regexp_replace(r."CreatedUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."CreatedUtc" end)::timestamptz,
         (case when left(r."UpdatedUtc", 1) not between '0' and '9' then 'not a Mews timestamp: ' || r."UpdatedUtc"
               when length(r."UpdatedUtc") > 26 then regexp_replace(r."UpdatedUtc", '(\.[0-9]{6})[0-9]+', '\1')
               else r."UpdatedUtc" end)::timestamptz,
         e.raw
  from jsonb_array_elements(p_records) as e(raw)
  cross join lateral jsonb_to_record(e.raw) as r(
    "Id" uuid, "EnterpriseId" uuid, "Name" text, "State" text, "IsActive" boolean,
    "ParentResourceId" uuid, "CreatedUtc" text, "UpdatedUtc" text)
$$;

-- The guarded write of what a derivation returns. p_derive names the derivation (a function of
-- (uuid, jsonb) returning a table whose columns are columns of p_table, raw among them); the
-- conflict key is p_table's primary key, raw_hash and synced_at are set here. In the same
-- statement, the open quarantine entries of p_entity (the Mews entity, as the quarantine names
-- it) for the records of the page are resolved: a valid version of each is stored now (what
-- public.quarantine_resolve does, without a second call per page).
create or replace function app.guarded_upsert_records(
  p_table regclass, p_derive regprocedure, p_entity text, p_scope_id uuid, p_records jsonb,
  p_max_records integer default 1000
) returns jsonb
language plpgsql set search_path = ''
as $$
declare
  v_keys text;
  v_cols text[];
  v_updates text;
  v_result jsonb;
begin
  if p_records is null or jsonb_typeof(p_records) <> 'array' then
    raise exception 'p_records must be a JSON array of Mews records' using errcode = '22023';
  end if;
  if jsonb_array_length(p_records) > p_max_records then
    raise exception 'a page holds at most % records, got %', p_max_records, jsonb_array_length(p_records)
      using errcode = '22023';
  end if;
  -- a mirror write may lose its last fraction of a second in a crash, never a checkpoint (above)
  perform set_config('synchronous_commit', 'off', true);

  select string_agg(quote_ident(a.attname), ', ' order by array_position(i.indkey::int2[], a.attnum))
    into v_keys
  from pg_catalog.pg_index i
  join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = any (i.indkey)
  where i.indrelid = p_table and i.indisprimary;

  select array_agg(a.name order by a.ord) into v_cols
  from pg_catalog.pg_proc p
  cross join lateral unnest(p.proargnames, p.proargmodes) with ordinality as a(name, mode, ord)
  where p.oid = p_derive and a.mode = 't';
  if v_keys is null or v_cols is null or not 'raw' = any (v_cols) then
    raise exception '% cannot write % (no primary key, or no raw column derived)', p_derive, p_table
      using errcode = '22023';
  end if;
  v_cols := v_cols || array['raw_hash', 'synced_at'];

  select string_agg(format('%1$I = excluded.%1$I', c), ', ') into v_updates
  from unnest(v_cols) as c;

  execute format($f$
    with derived as (
      select d.*, md5(d.raw::text) as raw_hash, now() as synced_at from %4$s($2, $1) as d
    ),
    incoming as (
      select distinct on (%1$s) *
      from derived
      order by %1$s, coalesce(mews_updated_utc, '-infinity') desc, raw_hash desc
    ),
    written as (
      insert into %5$s as t (%2$s)
      select %2$s from incoming
      on conflict (%1$s) do update set %3$s
      where excluded.raw_hash is distinct from t.raw_hash
        and ((excluded.mews_updated_utc is null and t.mews_updated_utc is null)
             or (coalesce(excluded.mews_updated_utc, '-infinity'), excluded.raw_hash)
                > (coalesce(t.mews_updated_utc, '-infinity'), t.raw_hash))
      returning (xmax = 0) as inserted
    ),
    resolved as (
      update public.quarantine q
         set resolved_at = now()
       where q.entity = $3
         and q.resolved_at is null
         and (q.scope_id is null or $2 is null or q.scope_id = $2)
         and q.mews_id in (select i.mews_id::text from incoming i)
      returning 1
    )
    select jsonb_build_object(
      'received', jsonb_array_length($1),
      'inserted', count(*) filter (where inserted),
      'updated', count(*) filter (where not inserted),
      'unchanged', (select count(*) from incoming) - count(*),
      'resolved', (select count(*) from resolved)
    ) from written
  $f$, v_keys, (select string_agg(quote_ident(c), ', ') from unnest(v_cols) as c), v_updates,
       p_derive::oid::regproc, p_table)
  into v_result
  using p_records, p_scope_id, p_entity;
  return v_result;
end
$$;

-- The API: the same names as the rows API, told apart by their arguments (p_scope_id, p_records).
create or replace function public.upsert_guests(p_scope_id uuid, p_records jsonb) returns jsonb
language sql set search_path = ''
as $$ select app.guarded_upsert_records('public.guests', 'app.guests_from_records(uuid, jsonb)', 'customers', p_scope_id, p_records) $$;

create or replace function public.upsert_guest_addresses(p_scope_id uuid, p_records jsonb) returns jsonb
language sql set search_path = ''
as $$ select app.guarded_upsert_records('public.guest_addresses', 'app.guest_addresses_from_records(uuid, jsonb)', 'addresses', p_scope_id, p_records) $$;

create or replace function public.upsert_guest_identity_documents(p_scope_id uuid, p_records jsonb) returns jsonb
language sql set search_path = ''
as $$ select app.guarded_upsert_records('public.guest_identity_documents', 'app.guest_identity_documents_from_records(uuid, jsonb)', 'identity_documents', p_scope_id, p_records) $$;

create or replace function public.upsert_vendors(p_scope_id uuid, p_records jsonb) returns jsonb
language sql set search_path = ''
as $$ select app.guarded_upsert_records('public.vendors', 'app.vendors_from_records(uuid, jsonb)', 'companies', p_scope_id, p_records) $$;

create or replace function public.upsert_reservations(p_scope_id uuid, p_records jsonb) returns jsonb
language sql set search_path = ''
as $$ select app.guarded_upsert_records('public.reservations', 'app.reservations_from_records(uuid, jsonb)', 'reservations', p_scope_id, p_records) $$;

create or replace function public.upsert_resources(p_scope_id uuid, p_records jsonb) returns jsonb
language sql set search_path = ''
as $$ select app.guarded_upsert_records('public.resources', 'app.resources_from_records(uuid, jsonb)', 'resources', p_scope_id, p_records) $$;

revoke all on function
  app.guests_from_records(uuid, jsonb), app.guest_addresses_from_records(uuid, jsonb),
  app.guest_identity_documents_from_records(uuid, jsonb), app.vendors_from_records(uuid, jsonb),
  app.reservations_from_records(uuid, jsonb), app.resources_from_records(uuid, jsonb),
  app.guarded_upsert_records(regclass, regprocedure, text, uuid, jsonb, integer),
  public.upsert_guests(uuid, jsonb), public.upsert_guest_addresses(uuid, jsonb),
  public.upsert_guest_identity_documents(uuid, jsonb), public.upsert_vendors(uuid, jsonb),
  public.upsert_reservations(uuid, jsonb), public.upsert_resources(uuid, jsonb)
  from public, anon, authenticated;
grant execute on function
  app.guests_from_records(uuid, jsonb), app.guest_addresses_from_records(uuid, jsonb),
  app.guest_identity_documents_from_records(uuid, jsonb), app.vendors_from_records(uuid, jsonb),
  app.reservations_from_records(uuid, jsonb), app.resources_from_records(uuid, jsonb),
  app.guarded_upsert_records(regclass, regprocedure, text, uuid, jsonb, integer),
  public.upsert_guests(uuid, jsonb), public.upsert_guest_addresses(uuid, jsonb),
  public.upsert_guest_identity_documents(uuid, jsonb), public.upsert_vendors(uuid, jsonb),
  public.upsert_reservations(uuid, jsonb), public.upsert_resources(uuid, jsonb)
  to service_role;
