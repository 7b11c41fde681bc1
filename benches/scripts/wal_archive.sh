#!/usr/bin/env bash
# WAL archiving under a pgbench write load: a scratch cluster (PostgreSQL 15 from Debian, on a
# free loopback port) whose archive_command is `dbbackup wal-push` into an encrypted repository
# with a raw key. Reports each push's wall time (p50 / p99 / max, the whole command: process
# start, key, read, zstd-3, AES-256-GCM, write, seal) and the archiver's backlog every 5 s (files
# waiting in pg_wal/archive_status), which must not grow.
#
#   benches/scripts/wal_archive.sh [SECONDS=60] [CLIENTS=4]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-60}
CLIENTS=${2:-4}
BIN_DIR=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
cargo build -q --release -p dbbackup-cli
WORK=$(mktemp -d /tmp/dbbackup-walbench.XXXX)
chmod 777 "$WORK"
cp target/release/dbbackup "$WORK/dbbackup"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
trap 'as_pg "$BIN_DIR/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$WORK/key"
chmod 644 "$WORK/key"
cat > "$WORK/push" <<SH
#!/bin/sh
s=\$(date +%s%N)
"$WORK/dbbackup" wal-push "\$1" --repo "$WORK/repo" --key-file "$WORK/key" 2>>"$WORK/push.err" || exit 1
e=\$(date +%s%N)
echo \$(( (e - s) / 1000 )) >> "$WORK/latency"
SH
chmod 755 "$WORK/push"
as_pg "$BIN_DIR/initdb" -D "$WORK/data" -U postgres --auth=trust >/dev/null
cat >> "$WORK/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
wal_level = replica
archive_mode = on
archive_command = '$WORK/push %p'
max_wal_size = 4GB
CONF
as_pg "$BIN_DIR/pg_ctl" -D "$WORK/data" -w -l "$WORK/server.log" start >/dev/null
PSQL=(psql -h 127.0.0.1 -p "$PORT" -U postgres -tAq)
echo "PostgreSQL $("${PSQL[@]}" -c 'SHOW server_version') on $PORT; pgbench -c $CLIENTS for ${SECS}s"
"$BIN_DIR/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -q -i -s 20 postgres >/dev/null 2>&1
backlog() { find "$WORK/data/pg_wal/archive_status" -name '*.ready' | wc -l; }
"$BIN_DIR/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -n -c "$CLIENTS" -j 2 -T "$SECS" postgres > "$WORK/pgbench.out" 2>&1 &
bench=$!
samples=""
while kill -0 $bench 2>/dev/null; do samples+=" $(backlog)"; sleep 5; done
wait $bench
"${PSQL[@]}" -c 'SELECT pg_switch_wal()' >/dev/null
for _ in $(seq 1 120); do [ "$(backlog)" = 0 ] && break; sleep 0.5; done
echo "backlog (.ready files) every 5 s during the load:$samples; after it: $(backlog)"
grep -E '^tps' "$WORK/pgbench.out" | head -1
"${PSQL[@]}" -c "SELECT 'archived ' || archived_count || ', failed ' || failed_count FROM pg_stat_archiver"
sort -n "$WORK/latency" | awk '{a[NR]=$1} END {p50=int(NR*0.5)+1; p99=int(NR*0.99)+1; if (p99>NR) p99=NR;
    printf "wal-push wall time over %d files: p50 %.0f ms, p99 %.0f ms, max %.0f ms\n", NR, a[p50]/1000, a[p99]/1000, a[NR]/1000}'
stored=$(du -sb "$WORK/repo/logs/wal" | cut -f1)
count=$(find "$WORK/repo/logs/wal" -name '*.seal' | wc -l)
echo "stored: $count files, $(( stored / 1024 / 1024 )) MiB ($(( count * 16 )) MiB of WAL)"
grep -v ": archived$" "$WORK/push.err" && echo "(push errors above)"
exit 0
