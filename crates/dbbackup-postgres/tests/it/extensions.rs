//! An extension-heavy schema, as a mature application database has one: 20 contrib extensions
//! (one in a schema of its own), and tables, indexes, constraints, text search objects, foreign
//! tables and triggers built on their types, operator classes, access methods, templates,
//! wrappers and functions. The restored database's `pg_dump --schema-only` and rows are identical.

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_heavy_schema_restores_exactly() {
    let src = TestDb::new("ext").await;
    let mut c = src.conn().await;
    sqlx::raw_sql(
        r#"CREATE SCHEMA ext;
        CREATE EXTENSION hstore WITH SCHEMA ext;
        CREATE EXTENSION citext; CREATE EXTENSION ltree; CREATE EXTENSION btree_gist;
        CREATE EXTENSION btree_gin; CREATE EXTENSION cube; CREATE EXTENSION earthdistance;
        CREATE EXTENSION isn; CREATE EXTENSION seg; CREATE EXTENSION intarray;
        CREATE EXTENSION pgcrypto; CREATE EXTENSION "uuid-ossp"; CREATE EXTENSION tablefunc;
        CREATE EXTENSION fuzzystrmatch; CREATE EXTENSION unaccent; CREATE EXTENSION bloom;
        CREATE EXTENSION dict_int; CREATE EXTENSION lo; CREATE EXTENSION pg_trgm;
        CREATE EXTENSION file_fdw;
        COMMENT ON EXTENSION ltree IS 'paths, commented by us';

        CREATE TABLE places (
            id uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
            name citext NOT NULL UNIQUE,
            path ltree,
            tags ext.hstore,
            box cube,
            isbn isbn13,
            height seg,
            ids int[],
            room int,
            during tstzrange,
            secret text DEFAULT crypt('pw', gen_salt('md5')),
            EXCLUDE USING gist (room WITH =, during WITH &&)
        );
        CREATE INDEX places_path ON places USING gist (path);
        CREATE INDEX places_tags ON places USING gin (tags);
        CREATE INDEX places_box ON places USING gist (box);
        CREATE INDEX places_ids ON places USING gin (ids gin__int_ops);
        CREATE INDEX places_bloom ON places USING bloom (room) WITH (length = 80);
        CREATE INDEX places_name_trgm ON places USING gin ((name::text) gin_trgm_ops);
        CREATE INDEX places_room_gin ON places USING gin (room);
        CREATE INDEX places_earth ON places USING gist (ll_to_earth(room, room));
        INSERT INTO places (name, path, tags, box, isbn, height, ids, room, during)
        SELECT 'Place ' || g, ('top.mid' || g % 5 || '.leaf' || g)::ltree,
               ext.hstore(ARRAY['k', 'n'], ARRAY['v' || g, g::text]),
               cube(ARRAY[g, g + 1]), isbn13('978-0-306-40615-7'), (g || ' .. ' || g + 10)::seg,
               ARRAY[g, g * 2], g % 50, tstzrange(timestamptz '2026-01-01' + g * interval '1 hour',
                                                  timestamptz '2026-01-01' + (g + 1) * interval '1 hour')
        FROM generate_series(1, 200) g;

        CREATE TEXT SEARCH DICTIONARY short_ints (TEMPLATE = intdict_template, MAXLEN = 4, REJECTLONG = true);
        CREATE TEXT SEARCH CONFIGURATION plain_unaccent (COPY = simple);
        ALTER TEXT SEARCH CONFIGURATION plain_unaccent ALTER MAPPING FOR hword, hword_part, word WITH unaccent, simple;
        ALTER TEXT SEARCH CONFIGURATION plain_unaccent ALTER MAPPING FOR int, uint WITH short_ints;

        CREATE SERVER files FOREIGN DATA WRAPPER file_fdw;
        CREATE FOREIGN TABLE imports (a text, b int) SERVER files OPTIONS (filename '/dev/null', format 'csv');

        CREATE TABLE docs (id int PRIMARY KEY, body lo, dmeta ext.hstore);
        CREATE TRIGGER docs_lo BEFORE UPDATE OR DELETE ON docs FOR EACH ROW EXECUTE FUNCTION lo_manage(body);
        INSERT INTO docs SELECT 1, lo_from_bytea(0, 'document body'), 'a=>1';

        CREATE VIEW similar_names AS
            SELECT a.name, levenshtein(a.name::text, b.name::text) AS distance
            FROM places a JOIN places b ON a.id <> b.id AND a.room = b.room;
        CREATE VIEW pivot AS
            SELECT * FROM crosstab('SELECT room % 3, room % 2, count(*)::int FROM places GROUP BY 1, 2 ORDER BY 1, 2')
                AS ct(r int, even int, odd int);
        -- PostgreSQL 17 refreshes materialized views with search_path = pg_catalog, pg_temp.
        CREATE FUNCTION place_digest(p places) RETURNS text LANGUAGE sql STABLE
            AS $$ SELECT encode(public.digest(p.name::text, 'sha256'), 'hex') $$;
        CREATE MATERIALIZED VIEW digests AS SELECT id, place_digest(p) AS d FROM places p;
        "#,
    )
    .execute(&mut c)
    .await
    .unwrap();
    drop(c);
    let dst = backup_and_restore_new(&src, "ext_dst").await;
    let (a, b) = (schema_dump(&src), schema_dump(&dst));
    assert!(
        a.contains("CREATE EXTENSION IF NOT EXISTS hstore WITH SCHEMA ext"),
        "{a}"
    );
    assert_eq!(a, b);
    assert_eq!(data_checksums(&src).await, data_checksums(&dst).await);
}
