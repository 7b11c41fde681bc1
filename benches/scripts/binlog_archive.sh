#!/usr/bin/env bash
# Binlog archiving under a sysbench-like write load (oltp_write_only's statements: an indexed
# update, a non-indexed update, a delete and an insert per transaction, from CLIENTS connections
# of mariadb-slap) on a scratch MariaDB (the machine's own mariadbd, binary log on, ROW format, a
# free loopback port), while `dbbackup binlog-stream` archives into an encrypted repository.
# Every second it samples the server's position and the archive's end; reports the archive lag
# (bytes behind, and seconds since the server was where the archive ends; the piece age bounds
# it by design), the streamer's CPU and peak memory against the server's CPU, and whether the
# archive caught up to the server's end after the load.
#
#   benches/scripts/binlog_archive.sh [SECONDS=60] [CLIENTS=4] [PIECE_AGE=10s]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-60}
CLIENTS=${2:-4}
AGE=${3:-10s}
cargo build -q --release -p dbbackup-cli
WORK=$(mktemp -d /tmp/dbbackup-binlogbench.XXXX)
user=$(id -un)
[ "$(id -u)" = 0 ] && user=mysql && chown mysql "$WORK"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
stop() {
    [ -n "${STREAMER:-}" ] && kill "$STREAMER" 2>/dev/null || true
    [ -e "$WORK/pid" ] && kill "$(cat "$WORK/pid")" 2>/dev/null || true
    for _ in $(seq 60); do [ -e "$WORK/pid" ] || break; sleep 0.5; done
    [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap stop EXIT
my() { mariadb -h 127.0.0.1 -P "$PORT" -uroot -N "$@"; }

mariadb-install-db --no-defaults --user="$user" --datadir="$WORK/data" \
    --auth-root-authentication-method=normal >/dev/null
cat > "$WORK/init.sql" <<'SQL'
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
SQL
chmod 644 "$WORK/init.sql"
# A tmpdir of its own: a starting mariadbd deletes every #sql* file in its tmpdir, which would
# pull temporary tables from under the other servers sharing /tmp.
mkdir -p "$WORK/tmp" && chown "$user" "$WORK/tmp"
mariadbd --no-defaults --user="$user" --datadir="$WORK/data" --tmpdir="$WORK/tmp" --socket="$WORK/sock" \
    --pid-file="$WORK/pid" --bind-address=127.0.0.1 --port="$PORT" \
    --log-bin="$WORK/data/binlog" --server-id=1 --binlog-format=ROW \
    --innodb-buffer-pool-size=256M --init-file="$WORK/init.sql" --log-error="$WORK/error.log" &
for _ in $(seq 60); do my -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.5; done
echo "MariaDB $(my -e 'SELECT VERSION()') on 127.0.0.1:$PORT, binlog ROW"

# sbtest1 as sysbench prepares it, 100k rows.
my -e "CREATE DATABASE sbtest; CREATE TABLE sbtest.sbtest1 (id INT AUTO_INCREMENT PRIMARY KEY,
  k INT NOT NULL DEFAULT 0, c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '',
  KEY k_1 (k)) ENGINE=InnoDB"
my sbtest -e "INSERT INTO sbtest1 (k, c, pad) SELECT FLOOR(RAND()*100000),
  CONCAT_WS('-', MD5(RAND()), MD5(RAND()), MD5(RAND())), LEFT(CONCAT_WS('-', MD5(RAND()), MD5(RAND())), 60)
  FROM seq_1_to_100000"

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$WORK/key"
target/release/dbbackup binlog-stream --source "mysql://root@127.0.0.1:$PORT" \
    --repo "$WORK/repo" --key-file "$WORK/key" --piece-age "$AGE" 2>"$WORK/stream.log" &
STREAMER=$!
sleep 2

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
SERVER=$(cat "$WORK/pid")
s0=$(cpu "$STREAMER"); m0=$(cpu "$SERVER")
cat > "$WORK/txn.sql" <<'SQL'
SET @a = FLOOR(1 + RAND() * 100000), @b = FLOOR(1 + RAND() * 100000), @c = FLOOR(1 + RAND() * 100000);
UPDATE sbtest1 SET k = k + 1 WHERE id = @a;
UPDATE sbtest1 SET c = CONCAT_WS('-', MD5(RAND()), MD5(RAND()), MD5(RAND())) WHERE id = @b;
DELETE FROM sbtest1 WHERE id = @c;
INSERT INTO sbtest1 (k, c, pad) VALUES (FLOOR(RAND() * 100000), CONCAT_WS('-', MD5(RAND()), MD5(RAND()), MD5(RAND())), MD5(RAND()))
SQL
end_of_archive() {
    ls "$WORK/repo/logs/binlog" 2>/dev/null | grep -v '\.seal$' \
        | sed -E 's/^(.*)\.([0-9]{12})-([0-9]{12})$/\1 \3/' | sort -V | tail -1 \
        | awk '{print $1, $2 + 0}'
}
(
    start=$(date +%s.%N)
    while :; do
        now=$(date +%s.%N)
        echo "$(echo "$now - $start" | bc) $(my -e 'SHOW MASTER STATUS' | awk '{print $1, $2}') $(end_of_archive)"
        sleep 1
    done
) > "$WORK/samples" &
SAMPLER=$!
timeout "$SECS" mariadb-slap -h 127.0.0.1 -P "$PORT" -uroot --create-schema=sbtest \
    --concurrency="$CLIENTS" --iterations=1000000 --query="$WORK/txn.sql" --delimiter=';' \
    --commit=5 >/dev/null 2>&1 || true
s1=$(cpu "$STREAMER"); m1=$(cpu "$SERVER")
loaded=$(wc -l < "$WORK/samples")
read -r file pos < <(my -e 'SHOW MASTER STATUS' | awk '{print $1, $2}')
caught=no
waited=0
for _ in $(seq 60); do
    [ "$(end_of_archive)" = "$file $pos" ] && caught=yes && break
    sleep 0.5
    waited=$((waited + 1))
done
kill "$SAMPLER" 2>/dev/null || true
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$STREAMER/status")
stored=$(du -sk "$WORK/repo/logs/binlog" | awk '{print $1}')
raw=$(du -ck "$WORK"/data/binlog.[0-9]* | tail -1 | awk '{print $1}')
pieces=$(ls "$WORK/repo/logs/binlog" | grep -vc '\.seal$')
python3 - "$WORK/samples" "$loaded" <<'PY'
import sys
rows = []
# The samples taken while the load ran.
for line in open(sys.argv[1]).readlines()[: int(sys.argv[2])]:
    f = line.split()
    if len(f) < 5:
        continue
    num = lambda name: int(name.rsplit(".", 1)[1])
    rows.append((float(f[0]), (num(f[1]), int(f[2])), (num(f[3]), int(f[4]))))
lags, behind = [], []
for t, server, archived in rows:
    # Seconds since the server first stood at or past where the archive ends now.
    first = next((t2 for t2, s2, _ in rows if s2 >= archived), t)
    lags.append(max(0.0, t - first))
    behind.append(server[1] - archived[1] if server[0] == archived[0] else None)
lags.sort()
b = sorted(x for x in behind if x is not None)
pct = lambda v, q: v[min(len(v) - 1, int(q * len(v)))]
print(f"under load, {len(rows)} samples: archive lag p50 {pct(lags, .5):.1f} s, p99 {pct(lags, .99):.1f} s, max {lags[-1]:.1f} s")
if b:
    print(f"bytes behind (same file): p50 {pct(b, .5) / 1024:.0f} KiB, max {b[-1] / 1024:.0f} KiB")
PY
echo "streamer CPU $(( (s1 - s0) )) ticks vs server $(( (m1 - m0) )) ticks ($(getconf CLK_TCK)/s) over ${SECS} s; streamer peak RSS $((hwm / 1024)) MiB"
echo "binlog $((raw / 1024)) MiB -> archive $((stored / 1024)) MiB in $pieces pieces; caught up to $file:$pos after the load: $caught ($((waited * 500)) ms)"
grep -c '"event": *"lost"\|connection lost' "$WORK/stream.log" | sed 's/^/reconnects: /'
