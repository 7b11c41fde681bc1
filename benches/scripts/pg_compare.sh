#!/usr/bin/env bash
# Compares dbbackup's PostgreSQL backup and restore with pg_dump / pg_restore on one database,
# in one run: wall time, peak RSS (GNU time), stored size.
#
#   benches/scripts/pg_compare.sh [SCALE=50] [JOBS=2]          a pgbench database (50x compressible)
#   benches/scripts/pg_compare.sh realistic[:ROWS] [JOBS=2]    mixed types, ~3-4x compressible, with
#                                                               secondary indexes (ROWS orders, default 3000000)
#
# Needs the local PostgreSQL (postgres@127.0.0.1, trust), pgbench, pg_dump, pg_restore, zstd.
set -euo pipefail
cd "$(dirname "$0")/../.."
SCALE=${1:-50}
JOBS=${2:-2}
case $SCALE in
    realistic*) ROWS=${SCALE#realistic}; ROWS=${ROWS#:}; ROWS=${ROWS:-3000000}; DB=dbb_bench_real_$ROWS; BIG=orders ;;
    *) DB=dbb_bench_$SCALE; BIG=pgbench_accounts ;;
esac
PG="postgres://postgres@127.0.0.1:5432"
WORK=$(mktemp -d /tmp/dbbackup-pgbench.XXXX)
trap 'rm -rf "$WORK"; for d in ${DB}_r1 ${DB}_r2; do psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" postgres; done' EXIT

cargo build -q --release -p dbbackup-cli
BIN=$PWD/target/release/dbbackup

if [ "$BIG" = orders ]; then
    benches/scripts/pg_realistic_db.sh "$ROWS" >/dev/null
elif ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$DB'" postgres | grep -q 1; then
    createdb -h 127.0.0.1 -U postgres "$DB"
    pgbench -q -i -s "$SCALE" -h 127.0.0.1 -U postgres "$DB" >/dev/null 2>&1
    psql -q -h 127.0.0.1 -U postgres -c "VACUUM ANALYZE" "$DB"
fi
echo "database: $DB ($([ "$BIG" = orders ] && echo "realistic, $ROWS orders" || echo "pgbench scale $SCALE")), size $(psql -h 127.0.0.1 -U postgres -tAc "SELECT pg_size_pretty(pg_database_size('$DB'))" postgres)"
# A raw key: a passphrase adds one Argon2id derivation (64 MiB, 3 passes, ~0.7 s here) per run.
head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n" > "$WORK/key"

measure() { # name, command...
    local name=$1; shift
    /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err"; exit 1; }
    read -r secs rss < "$WORK/time"
    printf '%s %s %s\n' "$name" "$secs" "$rss" >> "$WORK/results"
}
size_of() { du -sb "$1" | cut -f1; }

# The first pass over the table reads it into the page cache for whoever comes next, so the
# backups run twice, in the same order, and the second round is what counts.
for round in 1 2; do
    rm -rf "$WORK/repo" "$WORK/dump.fc" "$WORK/dump.fd" "$WORK/dump.sql.zst" "$WORK/sizes"
    : > "$WORK/results"
    measure "dbbackup backup (zstd-3+AES, jobs $JOBS)" "$BIN" backup --source "$PG/$DB" --repo "$WORK/repo" --jobs "$JOBS" --key-file "$WORK/key"
    echo "dbbackup backup size $(size_of "$WORK/repo")" >> "$WORK/sizes"
    measure "pg_dump -Fc" pg_dump -h 127.0.0.1 -U postgres -Fc -f "$WORK/dump.fc" "$DB"
    echo "pg_dump -Fc size $(size_of "$WORK/dump.fc")" >> "$WORK/sizes"
    measure "pg_dump -Fd -j$JOBS" pg_dump -h 127.0.0.1 -U postgres -Fd -j "$JOBS" -f "$WORK/dump.fd" "$DB"
    echo "pg_dump -Fd size $(size_of "$WORK/dump.fd")" >> "$WORK/sizes"
    measure "pg_dump | zstd -3 -T$JOBS" sh -c "pg_dump -h 127.0.0.1 -U postgres $DB | zstd -q -3 -T$JOBS -o $WORK/dump.sql.zst"
    echo "pg_dump|zstd size $(size_of "$WORK/dump.sql.zst")" >> "$WORK/sizes"
done
# The first big load after the server has been idle pays for creating WAL segments that later
# loads recycle, so each restore runs twice, alternating, and the second round is what counts.
drop_restored() { for d in ${DB}_r1 ${DB}_r2; do psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" postgres; done; }
for round in 1 2; do
    drop_restored
    measure "dbbackup restore (--create, jobs $JOBS)" "$BIN" restore --repo "$WORK/repo" --target "$PG/${DB}_r1" --create --jobs "$JOBS" --key-file "$WORK/key"
    measure "pg_restore -j$JOBS (from -Fd)" sh -c "createdb -h 127.0.0.1 -U postgres ${DB}_r2 && pg_restore -h 127.0.0.1 -U postgres -j $JOBS -d ${DB}_r2 $WORK/dump.fd"
    if [ "$round" = 1 ]; then head -n 4 "$WORK/results" > "$WORK/r" && mv "$WORK/r" "$WORK/results"; fi
done
# The server's own share: COPY of pgbench_accounts in $JOBS block ranges at once, to /dev/null (what
# the native backup asks of the server, with no client work). No client can beat this on this box.
pages=$(psql -h 127.0.0.1 -U postgres -tAc "SELECT relpages FROM pg_class WHERE relname = '$BIG'" "$DB")
step=$(( (pages + JOBS - 1) / JOBS ))
copies=""
for i in $(seq 0 $((JOBS - 1))); do
    copies+="psql -h 127.0.0.1 -U postgres -c \"COPY (SELECT * FROM $BIG WHERE ctid >= '($((i * step)),0)'::tid AND ctid < '($(((i + 1) * step)),0)'::tid) TO STDOUT\" $DB >/dev/null & "
done
measure "server only: COPY in $JOBS ranges -> /dev/null" sh -c "${copies} wait"

echo
printf '%-42s %10s %14s\n' "run" "seconds" "peak RSS MiB"
awk '{rss=$NF; secs=$(NF-1); $NF=""; $(NF-1)=""; printf "%-42s %10.2f %14.1f\n", $0, secs, rss/1024}' "$WORK/results"
echo
cat "$WORK/sizes"
echo
ours_b=$(awk 'NR==1{print $(NF-1)}' "$WORK/results")
fc=$(awk 'NR==2{print $(NF-1)}' "$WORK/results")
ours_r=$(awk 'NR==5{print $(NF-1)}' "$WORK/results")
pr=$(awk 'NR==6{print $(NF-1)}' "$WORK/results")
echo "backup speed-up vs pg_dump -Fc: $(echo "scale=2; $fc / $ours_b" | bc)x"
echo "restore speed-up vs pg_restore -j$JOBS: $(echo "scale=2; $pr / $ours_r" | bc)x"
