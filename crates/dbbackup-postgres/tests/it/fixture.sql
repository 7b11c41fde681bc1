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
