#!/usr/bin/env bash
# What a restore test costs on top of the restore it measures, on the realistic PostgreSQL
# database (mixed types, ~3-4x compressible, secondary indexes), in one run: a plain `restore
# --create`, then `restore-test` (the same restore, then row counts of every table, amcheck on
# every index and table, one user check, the drop).
#
#   benches/scripts/restore_test.sh [ROWS=1000000] [JOBS=2]
#
# Needs the local PostgreSQL (postgres@127.0.0.1, trust) with amcheck (PostgreSQL's contrib).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS=${1:-1000000}
JOBS=${2:-2}
PG="postgres://postgres@127.0.0.1:5432"
DB=$(benches/scripts/pg_realistic_db.sh "$ROWS")
WORK=$(mktemp -d /tmp/dbbackup-restore-test.XXXX)
trap 'rm -rf "$WORK"; psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS ${DB}_r WITH (FORCE)" postgres' EXIT
cargo build -q --release -p dbbackup-cli
BIN=$PWD/target/release/dbbackup
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$WORK/key"
echo "database: $DB, $(psql -h 127.0.0.1 -U postgres -tAc "SELECT pg_size_pretty(pg_database_size('$DB'))" postgres)"
"$BIN" backup --source "$PG/$DB" --repo "$WORK/repo" --key-file "$WORK/key" --jobs "$JOBS" >/dev/null 2>&1
t0=$(date +%s.%N)
"$BIN" restore --repo "$WORK/repo" --key-file "$WORK/key" --target "$PG/${DB}_r" --create --jobs "$JOBS" >/dev/null 2>&1
t1=$(date +%s.%N)
"$BIN" --json restore-test --repo "$WORK/repo" --key-file "$WORK/key" --scratch "$PG/postgres" --jobs "$JOBS" \
    --check "select count(*) = $ROWS from orders" > "$WORK/rt.json" 2>/dev/null
t2=$(date +%s.%N)
python3 - "$t0" "$t1" "$t2" "$WORK/rt.json" <<'PY'
import json, sys
t0, t1, t2 = map(float, sys.argv[1:4])
r = json.load(open(sys.argv[4]))["record"]
plain, total, rs = t1 - t0, t2 - t1, r["restore_seconds"]
print(f"restore --create:        {plain:6.1f} s")
print(f"restore-test, total:     {total:6.1f} s ({total / plain:.2f}x the plain restore); passed: {r['passed']}")
print(f"  its restore (the RTO): {rs:6.1f} s")
print(f"  checks and drop:       {total - rs:6.1f} s")
for c in r["checks"]:
    print(f"    {c['status']:7} {c['name']}: {c['detail'][:110]}")
PY
