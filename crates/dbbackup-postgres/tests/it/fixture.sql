CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE SCHEMA "Odd Schema ü";
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'it''s complicated');
CREATE DOMAIN positive_int AS integer NOT NULL DEFAULT 1 CONSTRAINT positive CHECK (VALUE > 0);
CREATE TYPE pair AS (a integer, b text);
CREATE TYPE floatrange AS RANGE (subtype = float8, subtype_diff = float8mi);
CREATE SEQUENCE counter START 100 INCREMENT 5;
SELECT nextval('counter'), nextval('counter'), nextval('counter');
COMMENT ON TYPE mood IS 'how it feels';

CREATE FUNCTION add_one(x integer) RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT x + 1 $$;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.updated := now(); RETURN NEW; END $$;
CREATE PROCEDURE noop(IN n integer) LANGUAGE plpgsql AS $$ BEGIN PERFORM n; END $$;
COMMENT ON FUNCTION add_one(integer) IS 'adds one';

CREATE TABLE everything (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    i2 smallint, i8 bigint, num numeric(30,10), num_free numeric, f4 real, f8 double precision,
    t text, vc varchar(20), ch char(5), b bytea, js json, jb jsonb,
    arr integer[], arr2 text[][], u uuid, d date, tm time, tmtz timetz, ts timestamp, tstz timestamptz, iv interval,
    m mood, pos positive_int, p pair, fr floatrange, ir int4range, tr tstzrange,
    ip inet, net cidr, mac macaddr, bits bit(8), vbits varbit(16), tsv tsvector, money money,
    pt point, ln line, seg lseg, bx box, pth path, pg polygon, circ circle,
    plus_one integer GENERATED ALWAYS AS (add_one(i2)) STORED,
    updated timestamptz
);
COMMENT ON TABLE everything IS 'every type, NULL in every column';
COMMENT ON COLUMN everything.t IS 'text with "quotes"';
INSERT INTO everything (i2, i8, num, num_free, f4, f8, t, vc, ch, b, js, jb, arr, arr2, u, d, tm, tmtz, ts, tstz, iv, m, pos, p, fr, ir, tr, ip, net, mac, bits, vbits, tsv, money, pt, ln, seg, bx, pth, pg, circ)
VALUES
 (1, 9223372036854775807, 12345678901234567890.0123456789, 'NaN', 'Infinity', '-Infinity',
  E'tab\there\nnewline \\ backslash ''quote'' "dq" ümlaut 🎉', 'vc', 'ch', '\x00ff10'::bytea,
  '{"a": [1, 2, null]}', '{"b": {"c": true}}', '{1,NULL,3}', '{{a,NULL},{"c d",e}}',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'infinity', '23:59:59.999999', '12:00+05:30', '-infinity', 'infinity',
  '1 year 2 mons -3 days 04:05:06.789', 'it''s complicated', 5, ROW(1, 'x'), '[1.5,2.5)', '[1,10)', '[2026-01-01 00:00+00,)',
  '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', B'10101010', B'101', 'a fat cat:1A sat', '$1,234.56',
  '(1,2)', '{1,-1,0}', '[(0,0),(1,1)]', '((0,0),(1,1))', '[(0,0),(1,1),(2,0)]', '((0,0),(1,1),(1,0))', '<(0,0),5>'),
 (2, -1, -0.0000000001, '1e-30', 'NaN', 1.7976931348623157e308, '', '', '', '', 'null', '[]', '{}', '{}', NULL, '2026-11-21', '00:00', NULL, '2000-01-01', '2026-11-21 10:00+00', '0', 'sad', 1, NULL, 'empty', 'empty', NULL,
  '::1', '::/0', NULL, B'00000000', B'', '', '-0.01', NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO everything (pos) VALUES (DEFAULT);

CREATE TABLE "Mixed Case ""Quoted"" tåble" ("Weird Col" text, "ÜNICODE" int DEFAULT nextval('counter'));
INSERT INTO "Mixed Case ""Quoted"" tåble" VALUES ('x', 1), (NULL, NULL);
CREATE TABLE "Odd Schema ü".inner_t (k serial PRIMARY KEY, v text UNIQUE);
INSERT INTO "Odd Schema ü".inner_t (v) SELECT 'v' || g FROM generate_series(1, 50) g;

CREATE TABLE measurements (id bigint, at date NOT NULL, v numeric CHECK (v >= 0)) PARTITION BY RANGE (at);
CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE INDEX measurements_at ON measurements (at);
INSERT INTO measurements SELECT g, date '2025-06-01' + (g % 400), g FROM generate_series(1, 2000) g;

CREATE TABLE parent_t (id int, note text);
CREATE TABLE child_t (extra int) INHERITS (parent_t);
INSERT INTO parent_t VALUES (1, 'p');
INSERT INTO child_t VALUES (2, 'c', 3);

-- A foreign-key cycle.
CREATE TABLE dept (id int PRIMARY KEY, head int);
CREATE TABLE emp (id int PRIMARY KEY, dept int REFERENCES dept (id), name text);
ALTER TABLE dept ADD CONSTRAINT dept_head_fk FOREIGN KEY (head) REFERENCES emp (id) DEFERRABLE INITIALLY DEFERRED;
BEGIN;
INSERT INTO dept VALUES (1, 10);
INSERT INTO emp VALUES (10, 1, 'boss');
COMMIT;

CREATE TABLE audited (id serial PRIMARY KEY, v text, updated timestamptz);
CREATE TRIGGER audited_touch BEFORE UPDATE ON audited FOR EACH ROW EXECUTE FUNCTION touch();
INSERT INTO audited (v, updated) VALUES ('a', '2026-01-01'), ('b', '2026-01-02');
CREATE INDEX audited_trgm ON audited USING gin (v gin_trgm_ops);

CREATE VIEW v_emp AS SELECT e.name, d.id AS dept FROM emp e JOIN dept d ON d.id = e.dept;
CREATE VIEW v_emp2 AS SELECT name FROM v_emp WHERE dept > 0;
CREATE MATERIALIZED VIEW mv_counts AS SELECT at, count(*) AS n FROM measurements GROUP BY at;
CREATE UNIQUE INDEX mv_counts_at ON mv_counts (at);
COMMENT ON VIEW v_emp IS 'employees';

CREATE TABLE big (id bigint PRIMARY KEY, payload text, n double precision);
INSERT INTO big SELECT g, md5(g::text), g / 7.0 FROM generate_series(1, :big_rows) g;

-- A table without columns: PostgreSQL allows it, and it holds rows.
CREATE TABLE no_columns ();
INSERT INTO no_columns DEFAULT VALUES;
INSERT INTO no_columns DEFAULT VALUES;
INSERT INTO no_columns DEFAULT VALUES;

-- NOT VALID constraints on a domain and a table: existing rows break them, and must still restore.
CREATE DOMAIN small_int AS integer;
CREATE TABLE legacy (id int, v small_int);
INSERT INTO legacy VALUES (1, 500), (2, 5);
ALTER DOMAIN small_int ADD CONSTRAINT small CHECK (VALUE < 100) NOT VALID;
ALTER TABLE legacy ADD CONSTRAINT legacy_id_big CHECK (id > 1) NOT VALID;

-- Row-level security: enabled and forced, permissive and restrictive policies, a comment.
CREATE TABLE rls_docs (id int PRIMARY KEY, owner text, body text);
INSERT INTO rls_docs VALUES (1, 'postgres', 'x'), (2, 'nobody', 'y');
ALTER TABLE rls_docs ENABLE ROW LEVEL SECURITY;
ALTER TABLE rls_docs FORCE ROW LEVEL SECURITY;
CREATE POLICY docs_read ON rls_docs FOR SELECT USING (owner = current_user);
CREATE POLICY docs_write ON rls_docs AS RESTRICTIVE FOR UPDATE TO postgres USING (true) WITH CHECK (owner = current_user);
CREATE POLICY docs_all ON rls_docs USING (id > 0);
COMMENT ON POLICY docs_read ON rls_docs IS 'owners read their own';
CREATE TABLE rls_only_enabled (id int);
ALTER TABLE rls_only_enabled ENABLE ROW LEVEL SECURITY;

-- Rules (one disabled) and extended statistics (one with a statistics target), with comments.
CREATE TABLE rule_log (id int, note text);
CREATE RULE log_no_delete AS ON DELETE TO rule_log DO INSTEAD NOTHING;
CREATE RULE log_stamp AS ON INSERT TO rule_log WHERE NEW.note IS NULL DO ALSO INSERT INTO rule_log VALUES (NEW.id, 'stamped');
ALTER TABLE rule_log DISABLE RULE log_stamp;
COMMENT ON RULE log_no_delete ON rule_log IS 'append only';
CREATE STATISTICS measurements_dep (dependencies, ndistinct) ON id, at FROM measurements;
CREATE STATISTICS measurements_mcv (mcv) ON id, at FROM measurements;
ALTER STATISTICS measurements_mcv SET STATISTICS 500;
COMMENT ON STATISTICS measurements_dep IS 'id and day';

-- Large objects (data): a small one, an empty one, one over several 1 MiB pieces, one with a comment.
SELECT lo_from_bytea(0, 'hello, large object');
SELECT lo_from_bytea(0, '');
SELECT lo_from_bytea(0, decode(repeat('00ff10', 1100000), 'hex'));
DO $$ DECLARE o oid; BEGIN o := lo_from_bytea(0, 'commented'); EXECUTE format('COMMENT ON LARGE OBJECT %s IS %L', o, 'a note'); END $$;

-- Table and column options, trigger states.
CREATE TABLE opts (id int NOT NULL, code text, doc text, n int);
CREATE UNIQUE INDEX opts_id ON opts (id);
CREATE INDEX opts_code ON opts (code);
ALTER TABLE opts REPLICA IDENTITY USING INDEX opts_id;
ALTER TABLE opts CLUSTER ON opts_code;
ALTER TABLE opts ALTER COLUMN code SET STATISTICS 900;
ALTER TABLE opts ALTER COLUMN doc SET STORAGE EXTERNAL;
ALTER TABLE opts ALTER COLUMN n SET (n_distinct = 100);
INSERT INTO opts VALUES (1, 'a', 'x', 1);
CREATE TABLE opts_full (id int);
ALTER TABLE opts_full REPLICA IDENTITY FULL;
CREATE TRIGGER opts_touch BEFORE UPDATE ON audited FOR EACH ROW EXECUTE FUNCTION touch();
ALTER TABLE audited DISABLE TRIGGER opts_touch;
CREATE MATERIALIZED VIEW mv_opts AS SELECT id, code FROM opts;
CREATE INDEX mv_opts_code ON mv_opts (code);
ALTER MATERIALIZED VIEW mv_opts CLUSTER ON mv_opts_code;
ALTER MATERIALIZED VIEW mv_opts ALTER COLUMN code SET STATISTICS 300;

-- Casts (by function, WITH INOUT) on a user type.
CREATE TYPE celsius AS (v numeric);
CREATE FUNCTION celsius_to_num(celsius) RETURNS numeric LANGUAGE sql IMMUTABLE AS 'SELECT $1.v';
CREATE CAST (celsius AS numeric) WITH FUNCTION celsius_to_num(celsius) AS ASSIGNMENT;
CREATE CAST (celsius AS text) WITH INOUT;

-- An event trigger (disabled, with tags and a comment): restored last.
CREATE FUNCTION log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'ddl %', tg_tag; END $$;
CREATE EVENT TRIGGER log_ddl_start ON ddl_command_start WHEN TAG IN ('CREATE TABLE', 'DROP TABLE') EXECUTE FUNCTION log_ddl();
ALTER EVENT TRIGGER log_ddl_start DISABLE;
COMMENT ON EVENT TRIGGER log_ddl_start IS 'logs DDL';

-- Publications: of chosen tables (all actions, or some), and of all tables.
CREATE PUBLICATION pub_some FOR TABLE emp, dept WITH (publish = 'insert, update');
CREATE PUBLICATION pub_all FOR ALL TABLES;
COMMENT ON PUBLICATION pub_some IS 'for the reporting replica';

-- A libc collation used by a domain and a column, with a comment (ICU collations: a test of their
-- own, since some servers of scripts/pg-versions.sh are built without ICU).
CREATE COLLATION c_posix (lc_collate = 'C', lc_ctype = 'C');
COMMENT ON COLLATION c_posix IS 'bytewise';
CREATE DOMAIN posix_text AS text COLLATE c_posix;
CREATE TABLE tags (name text COLLATE c_posix PRIMARY KEY, code posix_text);
INSERT INTO tags VALUES ('Alpha', 'a'), ('beta', 'b');

-- A base type (shell first, then its I/O functions, then the full definition), used by a column.
CREATE TYPE code4;
CREATE FUNCTION code4_in(cstring) RETURNS code4 LANGUAGE internal IMMUTABLE STRICT AS 'int4in';
CREATE FUNCTION code4_out(code4) RETURNS cstring LANGUAGE internal IMMUTABLE STRICT AS 'int4out';
CREATE TYPE code4 (INPUT = code4_in, OUTPUT = code4_out, LIKE = integer, CATEGORY = 'N', DEFAULT = '7');
COMMENT ON TYPE code4 IS 'an int4 in disguise';
CREATE TABLE coded (id int, c code4);
INSERT INTO coded VALUES (1, '42'), (2, NULL);

-- Operators (with commutator and negator), an operator class and a family with a loose member.
CREATE FUNCTION int_near(integer, integer) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT abs($1 - $2) < 2';
CREATE FUNCTION int_far(integer, integer) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT abs($1 - $2) >= 2';
CREATE OPERATOR === (FUNCTION = int_near, LEFTARG = integer, RIGHTARG = integer, COMMUTATOR = ===, NEGATOR = !==, RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE OPERATOR !== (FUNCTION = int_far, LEFTARG = integer, RIGHTARG = integer, COMMUTATOR = !==, NEGATOR = ===);
CREATE OPERATOR ~~~ (FUNCTION = int4um, RIGHTARG = integer);
COMMENT ON OPERATOR === (integer, integer) IS 'close enough';
CREATE FUNCTION rev_cmp(integer, integer) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT btint4cmp($2, $1)';
CREATE OPERATOR CLASS int4_rev_ops FOR TYPE integer USING btree AS
    OPERATOR 1 >, OPERATOR 2 >=, OPERATOR 3 =, OPERATOR 4 <=, OPERATOR 5 <, FUNCTION 1 rev_cmp(integer, integer);
COMMENT ON OPERATOR CLASS int4_rev_ops USING btree IS 'backwards';
CREATE OPERATOR FAMILY loose_fam USING hash;
CREATE OPERATOR CLASS int4_loose_ops FOR TYPE integer USING hash FAMILY loose_fam AS OPERATOR 1 =, FUNCTION 1 hashint4(integer);
ALTER OPERATOR FAMILY loose_fam USING hash ADD OPERATOR 1 = (integer, bigint), FUNCTION 1 (bigint, bigint) hashint8(bigint);
COMMENT ON OPERATOR FAMILY loose_fam USING hash IS 'loose';
CREATE INDEX coded_rev ON coded (id int4_rev_ops);

-- Aggregates: plain with a final function and parallel/combine, moving-aggregate, ordered-set, hypothetical, zero-argument.
CREATE FUNCTION sum_sq_step(bigint, integer) RETURNS bigint LANGUAGE sql IMMUTABLE AS 'SELECT $1 + $2 * $2';
CREATE FUNCTION sum_sq_inv(bigint, integer) RETURNS bigint LANGUAGE sql IMMUTABLE AS 'SELECT $1 - $2 * $2';
CREATE FUNCTION half(bigint) RETURNS numeric LANGUAGE sql IMMUTABLE AS 'SELECT $1 / 2.0';
CREATE AGGREGATE sum_sq(integer) (SFUNC = sum_sq_step, STYPE = bigint, INITCOND = '0', FINALFUNC = half,
    COMBINEFUNC = int8pl, PARALLEL = SAFE, MSFUNC = sum_sq_step, MINVFUNC = sum_sq_inv, MSTYPE = bigint, MINITCOND = '0', MFINALFUNC = half);
CREATE AGGREGATE my_max(integer) (SFUNC = int4larger, STYPE = integer, SORTOP = >);
CREATE AGGREGATE my_pct(float8 ORDER BY float8) (SFUNC = ordered_set_transition, STYPE = internal,
    FINALFUNC = percentile_disc_final, FINALFUNC_EXTRA);
CREATE AGGREGATE my_rank(VARIADIC "any" ORDER BY VARIADIC "any") (SFUNC = ordered_set_transition_multi, STYPE = internal,
    FINALFUNC = rank_final, FINALFUNC_EXTRA, HYPOTHETICAL);
CREATE AGGREGATE my_count(*) (SFUNC = int8inc, STYPE = int8, INITCOND = '0');
COMMENT ON AGGREGATE sum_sq(integer) IS 'squares';
CREATE VIEW v_agg AS SELECT sum_sq(id) AS s, my_max(id) AS m FROM coded;

-- Access methods (table and index), a table using one.
CREATE ACCESS METHOD heap2 TYPE TABLE HANDLER heap_tableam_handler;
CREATE ACCESS METHOD btree2 TYPE INDEX HANDLER bthandler;
COMMENT ON ACCESS METHOD heap2 IS 'heap by another name';
CREATE TABLE on_heap2 (id int) USING heap2;
INSERT INTO on_heap2 VALUES (1), (2);

-- A conversion, a procedural language (with a function in it) and a transform.
CREATE CONVERSION my_latin1 FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8;
COMMENT ON CONVERSION my_latin1 IS 'latin';
CREATE FUNCTION my_pl_handler() RETURNS language_handler LANGUAGE c AS '$libdir/plpgsql', 'plpgsql_call_handler';
CREATE FUNCTION my_pl_inline(internal) RETURNS void LANGUAGE c STRICT AS '$libdir/plpgsql', 'plpgsql_inline_handler';
CREATE FUNCTION my_pl_validator(oid) RETURNS void LANGUAGE c STRICT AS '$libdir/plpgsql', 'plpgsql_validator';
CREATE TRUSTED LANGUAGE my_pl HANDLER my_pl_handler INLINE my_pl_inline VALIDATOR my_pl_validator;
COMMENT ON LANGUAGE my_pl IS 'plpgsql again';
CREATE FUNCTION in_my_pl() RETURNS integer LANGUAGE my_pl AS 'BEGIN RETURN 1; END';
CREATE FUNCTION trf_from(internal) RETURNS internal LANGUAGE internal IMMUTABLE STRICT AS 'int4recv';
CREATE FUNCTION trf_to(internal) RETURNS code4 LANGUAGE internal IMMUTABLE STRICT AS 'int4recv';
CREATE TRANSFORM FOR code4 LANGUAGE my_pl (FROM SQL WITH FUNCTION trf_from(internal), TO SQL WITH FUNCTION trf_to(internal));
COMMENT ON TRANSFORM FOR code4 LANGUAGE my_pl IS 'never called';

-- Text search: a parser, a template, dictionaries and a configuration with mappings.
CREATE TEXT SEARCH PARSER my_prs (START = prsd_start, GETTOKEN = prsd_nexttoken, END = prsd_end, LEXTYPES = prsd_lextype, HEADLINE = prsd_headline);
CREATE TEXT SEARCH TEMPLATE my_tmpl (INIT = dsimple_init, LEXIZE = dsimple_lexize);
CREATE TEXT SEARCH DICTIONARY my_dict (TEMPLATE = my_tmpl, STOPWORDS = english, ACCEPT = false);
CREATE TEXT SEARCH DICTIONARY my_snow (TEMPLATE = snowball, LANGUAGE = english);
CREATE TEXT SEARCH CONFIGURATION my_cfg (PARSER = my_prs);
ALTER TEXT SEARCH CONFIGURATION my_cfg ADD MAPPING FOR asciiword, word WITH my_dict, my_snow;
ALTER TEXT SEARCH CONFIGURATION my_cfg ADD MAPPING FOR int WITH simple;
COMMENT ON TEXT SEARCH CONFIGURATION my_cfg IS 'mine';
COMMENT ON TEXT SEARCH DICTIONARY my_dict IS 'stops';
CREATE TABLE searchable (body text, tsv tsvector GENERATED ALWAYS AS (to_tsvector('my_cfg', body)) STORED);
INSERT INTO searchable (body) VALUES ('The quick brown foxes');

-- Foreign data: a wrapper with options, a server, user mappings, a foreign table (and a foreign partition).
CREATE FOREIGN DATA WRAPPER dummy_fdw OPTIONS (debug 'true');
CREATE SERVER dummy_srv TYPE 'kind' VERSION '1.0' FOREIGN DATA WRAPPER dummy_fdw OPTIONS (host 'nowhere', "odd key" 'it''s');
CREATE USER MAPPING FOR postgres SERVER dummy_srv OPTIONS (user 'remote', password 'secret');
CREATE USER MAPPING FOR PUBLIC SERVER dummy_srv;
CREATE FOREIGN TABLE remote_t (id integer OPTIONS (column_name 'ID') NOT NULL, note text DEFAULT 'n' COLLATE "C", CONSTRAINT remote_pos CHECK (id > 0)) SERVER dummy_srv OPTIONS (table_name 'remote');
COMMENT ON FOREIGN TABLE remote_t IS 'elsewhere';
COMMENT ON SERVER dummy_srv IS 'a server';
COMMENT ON FOREIGN DATA WRAPPER dummy_fdw IS 'does nothing';
CREATE TABLE by_region (region text, v int) PARTITION BY LIST (region);
CREATE TABLE by_region_eu PARTITION OF by_region FOR VALUES IN ('eu');
CREATE FOREIGN TABLE by_region_us PARTITION OF by_region FOR VALUES IN ('us') SERVER dummy_srv;
INSERT INTO by_region VALUES ('eu', 1);

-- A subscription (created without connecting, as pg_dump restores one) with a comment.
CREATE SUBSCRIPTION fx_sub CONNECTION 'host=127.0.0.1 port=1 dbname=nowhere' PUBLICATION pub_some, "pub all" WITH (connect = false);
COMMENT ON SUBSCRIPTION fx_sub IS 'from nowhere';

-- A window function (C), and comments on kinds not commented above.
CREATE FUNCTION my_row_number() RETURNS bigint LANGUAGE internal WINDOW IMMUTABLE AS 'window_row_number';
COMMENT ON EXTENSION pg_trgm IS 'trigram matching, commented';
COMMENT ON SCHEMA "Odd Schema ü" IS 'odd';
COMMENT ON CONSTRAINT legacy_id_big ON legacy IS 'not valid yet';
COMMENT ON CONSTRAINT small ON DOMAIN small_int IS 'small';
COMMENT ON TRIGGER audited_touch ON audited IS 'touches';
COMMENT ON INDEX opts_id IS 'unique id';
COMMENT ON COLUMN pair.a IS 'first';
COMMENT ON SEQUENCE counter IS 'by fives';
COMMENT ON MATERIALIZED VIEW mv_opts IS 'options';
COMMENT ON PROCEDURE noop(integer) IS 'does nothing';
COMMENT ON DOMAIN positive_int IS 'above zero';
COMMENT ON CAST (celsius AS text) IS 'as text';
COMMENT ON ACCESS METHOD btree2 IS 'btree by another name';
COMMENT ON TEXT SEARCH PARSER my_prs IS 'default parser';
COMMENT ON TEXT SEARCH TEMPLATE my_tmpl IS 'simple';
COMMENT ON COLUMN remote_t.id IS 'remote id';
COMMENT ON STATISTICS measurements_mcv IS 'mcv';
