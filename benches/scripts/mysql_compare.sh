#!/usr/bin/env bash
# Compares dbbackup's MariaDB backup and restore with mariadb-dump on one database, in one run:
# wall time, peak RSS (GNU time), stored size.
#
#   benches/scripts/mysql_compare.sh [ROWS=5000000] [JOBS=2]
#
# Needs the local MariaDB (root@127.0.0.1, no password), mariadb-dump, mariadb, zstd.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS=${1:-5000000}
JOBS=${2:-2}
DB=dbb_mbench_$ROWS
MY="mariadb://root@127.0.0.1:3306"
WORK=$(mktemp -d /tmp/dbbackup-mybench.XXXX)
trap 'rm -rf "$WORK"; mariadb -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS ${DB}_r1; DROP DATABASE IF EXISTS ${DB}_r2"' EXIT

cargo build -q --release -p dbbackup-cli
BIN=$PWD/target/release/dbbackup
if ! mariadb -h127.0.0.1 -uroot -N -e "SHOW DATABASES LIKE '$DB'" | grep -q "$DB"; then
    mariadb -h127.0.0.1 -uroot -e "CREATE DATABASE $DB; USE $DB;
      CREATE TABLE sbtest (id INT PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL, KEY k (k)) ENGINE=InnoDB;
      INSERT INTO sbtest SELECT seq, seq % 100000, CONCAT(MD5(seq), '-', MD5(seq + 1), '-', MD5(seq + 2)), REPEAT(CHAR(97 + seq % 26), 60) FROM seq_1_to_$ROWS;
      CREATE TABLE small (id INT PRIMARY KEY, v VARCHAR(50)); INSERT INTO small SELECT seq, MD5(seq) FROM seq_1_to_1000;"
fi
echo "database: $DB ($ROWS rows), $(mariadb -h127.0.0.1 -uroot -N -e "SELECT ROUND(SUM(data_length + index_length) / 1048576) FROM information_schema.TABLES WHERE table_schema = '$DB'") MiB"
head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n" > "$WORK/key"

# CPU seconds the server process has used (its user + system ticks), to show who is busy.
SERVER_PID=$(pgrep -x mariadbd || pgrep -x mysqld || true)
server_cpu() { if [ -n "$SERVER_PID" ]; then awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$SERVER_PID/stat"; else echo 0; fi; }
measure() {
    local name=$1; shift
    local before
    before=$(server_cpu)
    /usr/bin/time -f "%e %M %U %S" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err"; exit 1; }
    read -r secs rss user sys < "$WORK/time"
    printf '%s|%s|%s|%s|%s\n' "$name" "$secs" "$rss" "$(echo "$user + $sys" | bc)" "$(echo "$(server_cpu) - $before" | bc)" >> "$WORK/results"
}
# Each side runs twice, in the same order, and the second round is what counts: the first pays
# for reading the table into caches (and for a cold server) on behalf of whoever comes next.
for round in 1 2; do
    rm -rf "$WORK/repo" "$WORK/dump.sql.zst"
    : > "$WORK/results"
    mariadb -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS ${DB}_r1; DROP DATABASE IF EXISTS ${DB}_r2"
    measure "dbbackup backup (zstd-3+AES, jobs $JOBS)" "$BIN" backup --source "$MY/$DB" --repo "$WORK/repo" --jobs "$JOBS" --key-file "$WORK/key"
    measure "mariadb-dump --single-transaction + zstd -3" sh -c "mariadb-dump -h127.0.0.1 -uroot --single-transaction --routines --triggers --events --hex-blob $DB | zstd -q -3 -o $WORK/dump.sql.zst"
    measure "dbbackup restore (--create, jobs $JOBS)" "$BIN" restore --repo "$WORK/repo" --target "$MY/${DB}_r1" --create --jobs "$JOBS" --key-file "$WORK/key"
    measure "zstd -d + mariadb client" sh -c "mariadb -h127.0.0.1 -uroot -e 'CREATE DATABASE ${DB}_r2' && zstd -q -d -c $WORK/dump.sql.zst | mariadb -h127.0.0.1 -uroot ${DB}_r2"
done

printf '\n%-46s %10s %14s %12s %12s\n' run seconds "peak RSS MiB" "client CPU s" "server CPU s"
awk -F'|' '{printf "%-46s %10.2f %14.1f %12.2f %12.2f\n", $1, $2, $3/1024, $4, $5}' "$WORK/results"
echo
echo "dbbackup stored: $(du -sb "$WORK/repo" | cut -f1) bytes; mariadb-dump|zstd: $(du -sb "$WORK/dump.sql.zst" | cut -f1) bytes"
b1=$(awk -F'|' 'NR==1{print $2}' "$WORK/results"); b2=$(awk -F'|' 'NR==2{print $2}' "$WORK/results")
r1=$(awk -F'|' 'NR==3{print $2}' "$WORK/results"); r2=$(awk -F'|' 'NR==4{print $2}' "$WORK/results")
echo "backup speed-up: $(echo "scale=2; $b2 / $b1" | bc)x; restore speed-up: $(echo "scale=2; $r2 / $r1" | bc)x"
