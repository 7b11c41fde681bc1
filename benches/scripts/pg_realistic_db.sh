#!/usr/bin/env bash
# Creates the realistic benchmark database dbb_bench_real_ROWS on the local PostgreSQL if it is
# not there yet: customers, orders and order lines (numbers, timestamps, short and long text,
# jsonb, enum-like columns; primary keys, foreign keys and secondary indexes), ~3-4x
# compressible. Prints the database name.
#
#   benches/scripts/pg_realistic_db.sh [ROWS=3000000]
set -euo pipefail
ROWS=${1:-3000000}
DB=dbb_bench_real_$ROWS
if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$DB'" postgres | grep -q 1; then
    createdb -h 127.0.0.1 -U postgres "$DB"
    psql -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres "$DB" <<SQL
CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL, country char(2),
                    created timestamptz NOT NULL, vip boolean);
INSERT INTO customers SELECT g, 'Customer ' || g, 'user' || g || '@example.' || (ARRAY['com','org','net'])[1 + g % 3],
   (ARRAY['DE','FR','US','GB','JP','BR'])[1 + g % 6], timestamptz '2020-01-01' + g * interval '17 seconds', g % 11 = 0
FROM generate_series(1, $ROWS / 10) g;
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers, placed_at timestamptz NOT NULL,
                 status text NOT NULL, amount numeric(12,2) NOT NULL, note text, attrs jsonb);
INSERT INTO orders SELECT g, 1 + (hashint8(g) & 2147483647) % ($ROWS / 10), timestamptz '2021-01-01' + g * interval '9 seconds',
   (ARRAY['new','paid','shipped','delivered','returned'])[1 + (hashint8(g * 3) & 7) % 5],
   ((hashint8(g * 5) & 1048575) / 100.0)::numeric(12,2),
   CASE WHEN g % 4 = 0 THEN 'please deliver to the back door, ring twice; ref ' || md5(g::text) END,
   jsonb_build_object('sku', 'SKU-' || (hashint8(g * 7) & 65535), 'qty', 1 + g % 9, 'gift', g % 13 = 0)
FROM generate_series(1, $ROWS) g;
CREATE TABLE order_lines (order_id bigint NOT NULL REFERENCES orders, line int NOT NULL, product text NOT NULL,
                      qty int NOT NULL, price numeric(10,2) NOT NULL, PRIMARY KEY (order_id, line));
INSERT INTO order_lines SELECT o, l, 'product-' || (hashint8(o * 31 + l) & 16383), 1 + (o + l) % 5, ((o * 7 + l) % 10000) / 100.0
FROM generate_series(1, $ROWS / 2) o, generate_series(1, 3) l;
CREATE INDEX orders_customer ON orders (customer_id);
CREATE INDEX orders_placed ON orders (placed_at);
CREATE INDEX orders_status_placed ON orders (status, placed_at);
CREATE INDEX customers_email ON customers (email);
CREATE INDEX order_lines_product ON order_lines (product);
SQL

    psql -q -h 127.0.0.1 -U postgres -c "VACUUM ANALYZE" "$DB"
fi
echo "$DB"
