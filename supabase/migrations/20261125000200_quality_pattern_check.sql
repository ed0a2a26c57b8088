-- Is an admin's `pattern` rule safe and portable? app.quality_pattern_problem(pattern) returns null
-- when it is, else one sentence saying what is wrong.
--
-- The same algorithm, with the same messages, as shared/quality/patterns.py (whose docstring
-- states the accepted grammar and the safety rules in full; keep the two in step): a small
-- recursive-descent parser over a subset that PostgreSQL's ARE engine and Python's `re` read
-- alike, a walk of the structure it builds (no quantified group holding a quantifier or an
-- alternation, nothing repeated that can match the empty string, no adjacent repeated parts
-- that can match the same characters, at most two ambiguous parts competing for the same
-- characters), then a compile in PostgreSQL. Character sets are bit(129): ASCII 0..127 plus one
-- bit for every non-ASCII character. Positions are 1-based (the Python ones 0-based).

-- Code points p_low..p_high as a set (bit 128: any code point above 127).
create or replace function app.quality_pattern_bits(p_low integer, p_high integer) returns bit(129)
language sql immutable set search_path = ''
as $$
  select ((case when p_low <= 127
                then repeat('0', p_low) || repeat('1', least(p_high, 127) - p_low + 1)
                     || repeat('0', 127 - least(p_high, 127))
                else repeat('0', 128) end)
          || (case when p_high > 127 then '1' else '0' end))::bit(129)
$$;

-- The escape whose backslash is at pos: its set, whether it is a class (\d \D \w \W \s \S), its
-- code point (-1 for a class); pos moves past it.
create or replace function app.quality_pattern_escape(
  p_pattern text, inout pos integer,
  out problem text, out bits bit(129), out is_class boolean, out code integer)
language plpgsql immutable set search_path = ''
as $$
#variable_conflict use_variable
declare
  c text;
  v_digit bit(129) := app.quality_pattern_bits(48, 57);
  v_word bit(129) := app.quality_pattern_bits(48, 57) | app.quality_pattern_bits(65, 90)
                     | app.quality_pattern_bits(95, 95) | app.quality_pattern_bits(97, 122)
                     | app.quality_pattern_bits(128, 128);
  v_space bit(129) := app.quality_pattern_bits(9, 13) | app.quality_pattern_bits(32, 32);
  v_bucket bit(129) := app.quality_pattern_bits(128, 128);
begin
  is_class := false;
  pos := pos + 1;
  c := substr(p_pattern, pos, 1);
  if c = '' then
    problem := 'the pattern ends with a lone backslash';
    return;
  end if;
  pos := pos + 1;
  code := ascii(c);
  if code between 48 and 57 then
    problem := 'back-references are not allowed';
    return;
  end if;
  if c in ('d', 'D', 'w', 'W', 's', 'S') then
    is_class := true;
    code := -1;
    bits := case c when 'd' then v_digit when 'w' then v_word when 's' then v_space
                   when 'D' then ~v_digit | v_bucket when 'W' then ~v_word | v_bucket
                   else ~v_space | v_bucket end;
    return;
  end if;
  if code > 127 or code between 65 and 90 or code between 97 and 122 then
    problem := format('escape \%s is not supported; use \d, \w, \s or escape punctuation', c);
    return;
  end if;
  bits := app.quality_pattern_bits(code, code);
end
$$;

-- The quantifier at pos (*, +, ? or a bound): its minimum and maximum (256: unbounded).
create or replace function app.quality_pattern_quantifier(
  p_pattern text, inout pos integer, out problem text, out low integer, out high integer)
language plpgsql immutable set search_path = ''
as $$
#variable_conflict use_variable
declare
  c text := substr(p_pattern, pos, 1);
  v_low text := '';
  v_high text;
  v_bad_brace constant text := '{ must start a bound {n}, {n,} or {n,m}; write \{ for a literal brace';
  v_limit constant text := 'repetition bounds must be between 0 and 255';
begin
  pos := pos + 1;
  if c = '*' then
    low := 0; high := 256; return;
  elsif c = '+' then
    low := 1; high := 256; return;
  elsif c = '?' then
    low := 0; high := 1; return;
  end if;
  while ascii(substr(p_pattern, pos, 1)) between 48 and 57 loop
    v_low := v_low || substr(p_pattern, pos, 1);
    pos := pos + 1;
  end loop;
  v_high := v_low;
  if v_low = '' then
    problem := v_bad_brace;
    return;
  end if;
  if substr(p_pattern, pos, 1) = ',' then
    pos := pos + 1;
    v_high := '';
    while ascii(substr(p_pattern, pos, 1)) between 48 and 57 loop
      v_high := v_high || substr(p_pattern, pos, 1);
      pos := pos + 1;
    end loop;
  end if;
  if substr(p_pattern, pos, 1) <> '}' then
    problem := v_bad_brace;
    return;
  end if;
  pos := pos + 1;
  if (case when length(v_low) > 3 then true else v_low::integer > 255 end) then
    problem := v_limit;
    return;
  end if;
  low := v_low::integer;
  if v_high = '' then
    high := 256;
  elsif (case when length(v_high) > 3 then true else v_high::integer > 255 end) then
    problem := v_limit;
    return;
  else
    high := v_high::integer;
  end if;
  if low > high then
    problem := 'in a bound {n,m}, n must not be greater than m';
  end if;
end
$$;

-- What ends, nests or doubles at pos inside a bracket expression (null: nothing).
create or replace function app.quality_pattern_bracket_hazard(p_pattern text, p_pos integer) returns text
language plpgsql immutable set search_path = ''
as $$
declare
  c text := substr(p_pattern, p_pos, 1);
  n text := substr(p_pattern, p_pos + 1, 1);
begin
  if c = '' then
    return 'unterminated bracket expression [';
  elsif c = '[' then
    return case when n in (':', '=', '.')
                then 'POSIX classes ([:alpha:], [=a=], [.a.]) are not supported; use \d, \w, \s or ranges'
                else 'unescaped [ inside a bracket expression; write \[' end;
  elsif c in ('&', '~', '|') and n = c then
    return '&&, ~~ and || inside a bracket expression must be escaped';
  elsif c = '-' and n = '' then
    return 'unterminated bracket expression [';
  end if;
  return null;
end
$$;

-- A single character or a class escape at pos inside brackets.
create or replace function app.quality_pattern_bracket_single(
  p_pattern text, inout pos integer,
  out problem text, out bits bit(129), out is_class boolean, out code integer)
language plpgsql immutable set search_path = ''
as $$
#variable_conflict use_variable
declare
  e record;
begin
  if substr(p_pattern, pos, 1) = '\' then
    select * into e from app.quality_pattern_escape(p_pattern, pos);
    pos := e.pos; problem := e.problem; bits := e.bits; is_class := e.is_class; code := e.code;
    return;
  end if;
  code := ascii(substr(p_pattern, pos, 1));
  pos := pos + 1;
  bits := app.quality_pattern_bits(code, code);
  is_class := false;
end
$$;

-- The bracket expression whose '[' is at pos: the set it matches.
create or replace function app.quality_pattern_bracket(
  p_pattern text, inout pos integer, out problem text, out bits bit(129))
language plpgsql immutable set search_path = ''
as $$
#variable_conflict use_variable
declare
  v_dash constant text := 'a - inside a bracket expression must come first, last, or between the two characters of a range';
  v_negated boolean;
  v_first_member boolean := true;
  c text;
  s record;
  v_start integer;
begin
  bits := repeat('0', 129)::bit(129);
  pos := pos + 1;
  v_negated := substr(p_pattern, pos, 1) = '^';
  if v_negated then
    pos := pos + 1;
  end if;
  if substr(p_pattern, pos, 1) = ']' then
    problem := 'a bracket expression may not be empty; write \] for a literal bracket';
    return;
  end if;
  loop
    c := substr(p_pattern, pos, 1);
    exit when c = ']';
    problem := app.quality_pattern_bracket_hazard(p_pattern, pos);
    if problem is not null then
      return;
    end if;
    if c = '-' then
      if not v_first_member and substr(p_pattern, pos + 1, 1) <> ']' then
        problem := v_dash;
        return;
      end if;
      pos := pos + 1;
      bits := bits | app.quality_pattern_bits(45, 45);
    else
      select * into s from app.quality_pattern_bracket_single(p_pattern, pos);
      if s.problem is not null then
        problem := s.problem;
        return;
      end if;
      pos := s.pos;
      if substr(p_pattern, pos, 1) <> '-' or substr(p_pattern, pos + 1, 1) in (']', '') then
        bits := bits | s.bits;
      else
        if s.is_class then
          problem := v_dash;
          return;
        end if;
        v_start := s.code;
        pos := pos + 1;
        problem := app.quality_pattern_bracket_hazard(p_pattern, pos);
        if problem is not null then
          return;
        end if;
        if substr(p_pattern, pos, 1) = '-' then
          problem := v_dash;
          return;
        end if;
        select * into s from app.quality_pattern_bracket_single(p_pattern, pos);
        if s.problem is not null then
          problem := s.problem;
          return;
        end if;
        pos := s.pos;
        if s.is_class then
          problem := v_dash;
          return;
        end if;
        if s.code < v_start then
          problem := 'a range in a bracket expression may not go from a higher to a lower character';
          return;
        end if;
        bits := bits | app.quality_pattern_bits(v_start, s.code);
      end if;
    end if;
    v_first_member := false;
  end loop;
  pos := pos + 1;
  if v_negated then
    bits := ~bits | app.quality_pattern_bits(128, 128);
  end if;
end
$$;

-- The alternation that starts at pos, up to a ')' or the end (recursive: a group's contents are
-- one). Returns what the safety rules need of it, or the first problem met.
create or replace function app.quality_pattern_alternation(
  p_pattern text, inout pos integer,
  out problem text, out nullable boolean, out first_set bit(129), out last_set bit(129),
  out char_set bit(129), out has_quantifier boolean, out has_alternation boolean,
  out starts_repeating boolean, out ends_repeating boolean, out degree integer)
language plpgsql immutable set search_path = ''
as $$
#variable_conflict use_variable
declare
  v_zero constant bit(129) := repeat('0', 129)::bit(129);
  v_all constant bit(129) := repeat('1', 129)::bit(129);
  v_quantifiers constant text[] := array['*', '+', '?', '{'];
  c text;
  g record;  -- a group's contents
  bk record;  -- a bracket expression
  e record;  -- an escape
  q record;  -- a quantifier
  k integer;
  -- the alternation so far
  v_branches integer := 0;
  v_seen bit(129) := repeat('0', 129)::bit(129);
  v_overlapping boolean := false;
  v_any_nullable boolean := false;
  -- the branch (sequence) being read
  b_nullable boolean;
  b_first bit(129);
  b_last bit(129);
  b_chars bit(129);
  b_quantifier boolean;
  b_alternation boolean;
  b_starts boolean;
  b_ends boolean;
  b_degree integer;
  -- its items so far
  i_first bit(129)[];
  i_last bit(129)[];
  i_chars bit(129)[];
  i_nullable boolean[];
  i_ends boolean[];
  i_chain integer[];
  -- the item being read
  t_nullable boolean;
  t_first bit(129);
  t_last bit(129);
  t_chars bit(129);
  t_quantifier boolean;
  t_alternation boolean;
  t_starts boolean;
  t_ends boolean;
  t_degree integer;
  v_repeating boolean;
  v_follow bit(129);
  v_fed integer;
  v_chain integer;
begin
  nullable := false;
  first_set := v_zero;
  last_set := v_zero;
  char_set := v_zero;
  has_quantifier := false;
  has_alternation := false;
  starts_repeating := false;
  ends_repeating := false;
  degree := 0;
  loop
    b_nullable := true;
    b_first := v_zero;
    b_last := v_zero;
    b_chars := v_zero;
    b_quantifier := false;
    b_alternation := false;
    b_starts := false;
    b_ends := false;
    b_degree := 0;
    i_first := '{}';
    i_last := '{}';
    i_chars := '{}';
    i_nullable := '{}';
    i_ends := '{}';
    i_chain := '{}';
    loop
      c := substr(p_pattern, pos, 1);
      exit when c in ('', '|', ')');
      if c = any (v_quantifiers) then
        select * into q from app.quality_pattern_quantifier(p_pattern, pos);
        problem := coalesce(q.problem, 'a quantifier needs something to repeat (not the start, (, | or an anchor)');
        return;
      end if;
      if c in ('^', '$') then
        pos := pos + 1;
        t_nullable := true;
        t_first := v_zero;
        t_last := v_zero;
        t_chars := v_zero;
        t_quantifier := false;
        t_alternation := false;
        t_starts := false;
        t_ends := false;
        t_degree := 0;
      else
        if c = '(' then
          pos := pos + 1;
          if substr(p_pattern, pos, 1) = '?' then
            problem := '(?…) groups — look-arounds, flags, non-capturing or named groups — are not allowed';
            return;
          end if;
          select * into g from app.quality_pattern_alternation(p_pattern, pos);
          if g.problem is not null then
            problem := g.problem;
            return;
          end if;
          pos := g.pos;
          if substr(p_pattern, pos, 1) <> ')' then
            problem := 'unbalanced parentheses: ( is never closed';
            return;
          end if;
          pos := pos + 1;
          t_nullable := g.nullable;
          t_first := g.first_set;
          t_last := g.last_set;
          t_chars := g.char_set;
          t_quantifier := g.has_quantifier;
          t_alternation := g.has_alternation;
          t_starts := g.starts_repeating;
          t_ends := g.ends_repeating;
          t_degree := g.degree;
        else
          if c = '[' then
            select * into bk from app.quality_pattern_bracket(p_pattern, pos);
            if bk.problem is not null then
              problem := bk.problem;
              return;
            end if;
            pos := bk.pos;
            t_first := bk.bits;
          elsif c = ']' then
            problem := 'unescaped ]; write \] for a literal bracket';
            return;
          elsif c = '}' then
            problem := 'unescaped }; write \} for a literal brace';
            return;
          elsif c = '\' then
            select * into e from app.quality_pattern_escape(p_pattern, pos);
            if e.problem is not null then
              problem := e.problem;
              return;
            end if;
            pos := e.pos;
            t_first := e.bits;
          elsif c = '.' then
            pos := pos + 1;
            t_first := v_all;
          else
            pos := pos + 1;
            t_first := app.quality_pattern_bits(ascii(c), ascii(c));
          end if;
          t_nullable := false;
          t_last := t_first;
          t_chars := t_first;
          t_quantifier := false;
          t_alternation := false;
          t_starts := false;
          t_ends := false;
          t_degree := 0;
        end if;
        if substr(p_pattern, pos, 1) = any (v_quantifiers) then
          select * into q from app.quality_pattern_quantifier(p_pattern, pos);
          if q.problem is not null then
            problem := q.problem;
            return;
          end if;
          pos := q.pos;
          if substr(p_pattern, pos, 1) = any (v_quantifiers) then
            select * into q from app.quality_pattern_quantifier(p_pattern, pos);
            problem := coalesce(q.problem, 'a quantifier may not follow another quantifier (lazy and possessive forms are not supported)');
            return;
          end if;
          v_repeating := q.high > 1;
          if v_repeating then
            if t_quantifier then
              problem := 'nested quantifiers: a repeated group may not contain a quantifier';
              return;
            elsif t_alternation then
              problem := 'a repeated group may not contain alternatives (|)';
              return;
            elsif t_nullable then
              problem := 'a repeated part may not match the empty string';
              return;
            end if;
          end if;
          t_nullable := t_nullable or q.low = 0;
          t_quantifier := true;
          -- only a variable count can overlap its neighbour: \d{3}\d{4} has one way to match
          t_starts := t_starts or (v_repeating and q.low < q.high);
          t_ends := t_ends or (v_repeating and q.low < q.high);
          if q.low < q.high then
            t_degree := greatest(t_degree, 1);
          end if;
        end if;
      end if;
      -- rule 4: no repeated part may start on what an earlier repeated neighbour ends with
      if t_starts then
        for k in reverse coalesce(array_length(i_first, 1), 0) .. 1 loop
          if i_ends[k] and (i_last[k] & t_first) <> v_zero then
            problem := 'overlapping quantifiers: two adjacent repeated parts can match the same characters';
            return;
          end if;
          exit when not i_nullable[k];
        end loop;
      end if;
      -- rule 5: the heaviest chain of feeding ambiguous items ending here weighs at most 2
      v_chain := 0;
      if t_degree > 0 then
        v_follow := t_first;
        v_fed := 0;
        for k in reverse coalesce(array_length(i_first, 1), 0) .. 1 loop
          if i_chain[k] > 0 and (i_chars[k] & v_follow) <> v_zero then
            v_fed := greatest(v_fed, i_chain[k]);
          end if;
          v_follow := case when i_nullable[k] then i_first[k] | v_follow else i_first[k] end;
        end loop;
        v_chain := t_degree + v_fed;
        if v_chain > 2 then
          problem := 'too many ambiguous parts: at most two optional, repeated or alternative parts may compete for the same characters';
          return;
        end if;
      end if;
      i_first := i_first || t_first;
      i_last := i_last || t_last;
      i_chars := i_chars || t_chars;
      i_nullable := i_nullable || t_nullable;
      i_ends := i_ends || t_ends;
      i_chain := i_chain || v_chain;
      if b_nullable then
        b_first := b_first | t_first;
        b_nullable := t_nullable;
      end if;
      b_last := case when t_nullable then b_last | t_last else t_last end;
      b_chars := b_chars | t_chars;
      b_quantifier := b_quantifier or t_quantifier;
      b_alternation := b_alternation or t_alternation;
      b_starts := b_starts or t_starts;
      b_ends := b_ends or t_ends;
      b_degree := greatest(b_degree, v_chain);
    end loop;
    v_branches := v_branches + 1;
    v_overlapping := v_overlapping or (b_first & v_seen) <> v_zero;
    v_seen := v_seen | b_first;
    v_any_nullable := v_any_nullable or b_nullable;
    nullable := nullable or b_nullable;
    first_set := first_set | b_first;
    last_set := last_set | b_last;
    char_set := char_set | b_chars;
    has_quantifier := has_quantifier or b_quantifier;
    has_alternation := has_alternation or b_alternation;
    starts_repeating := starts_repeating or b_starts;
    ends_repeating := ends_repeating or b_ends;
    degree := greatest(degree, b_degree);
    exit when substr(p_pattern, pos, 1) <> '|';
    pos := pos + 1;
  end loop;
  if v_branches > 1 then
    has_alternation := true;
    if v_overlapping or v_any_nullable then
      degree := greatest(degree, 1);
    end if;
  end if;
end
$$;

-- Null when p_pattern may be a `pattern` rule's regex, else one sentence saying what is wrong.
create or replace function app.quality_pattern_problem(p_pattern text) returns text
language plpgsql immutable set search_path = ''
as $$
declare
  r record;
begin
  if p_pattern is null or p_pattern = '' then
    return 'the pattern is empty';
  end if;
  if length(p_pattern) > 200 then
    return 'the pattern is longer than 200 characters';
  end if;
  select * into r from app.quality_pattern_alternation(p_pattern, 1);
  if r.problem is not null then
    return r.problem;
  end if;
  if substr(p_pattern, r.pos, 1) = ')' then
    return 'unbalanced parentheses: ) without a matching (';
  end if;
  begin
    perform '' ~ p_pattern;  -- compiles it
  exception when invalid_regular_expression or program_limit_exceeded then
    return case when sqlerrm like 'invalid regular expression: %' then sqlerrm
                else 'invalid regular expression: ' || sqlerrm end;
  end;
  return null;
end
$$;

revoke all on function app.quality_pattern_bits(integer, integer), app.quality_pattern_escape(text, integer),
  app.quality_pattern_quantifier(text, integer), app.quality_pattern_bracket_hazard(text, integer),
  app.quality_pattern_bracket_single(text, integer), app.quality_pattern_bracket(text, integer),
  app.quality_pattern_alternation(text, integer), app.quality_pattern_problem(text)
  from public, anon;
grant execute on function app.quality_pattern_bits(integer, integer), app.quality_pattern_escape(text, integer),
  app.quality_pattern_quantifier(text, integer), app.quality_pattern_bracket_hazard(text, integer),
  app.quality_pattern_bracket_single(text, integer), app.quality_pattern_bracket(text, integer),
  app.quality_pattern_alternation(text, integer), app.quality_pattern_problem(text)
  to authenticated, service_role;
