#!/bin/sh
# The schema-change sequence around a migration, for cron or CI:
#   1. back up the database (labelled) and verify the backup, before anything is changed;
#   2. re-initialise the database with the new schema (your command: drop/create + migrations);
#   3. restore the old rows into the new schema by column name (dbbackup restore --data-only);
#   4. run your check command on the result.
# If a step after 1 fails, the database may be empty or half-built: the script says how to get
# the old database back from the backup it took, and exits non-zero.
#
# Usage (environment):
#   DB      the database URL (postgres://..., mysql://..., sqlite:///path.db)      required
#   REPO    the backup repository (a directory or s3://...)                        required
#   REINIT  a shell command that re-creates the database with the new schema      required
#   CHECK_CMD  a shell command that exits 0 when the restored database is right   (optional)
#   STRICT  set to 1 to fail (changing nothing) when a backed-up column or table no longer
#           exists, instead of reporting it                                        (optional)
#   DBBACKUP   the dbbackup binary (default: dbbackup on PATH)
# Keys, passphrases and passwords come from dbbackup's own variables, e.g.
#   DBBACKUP_KEY_FILE, DBBACKUP_PASSPHRASE_ENV, DBBACKUP_PASSWORD_ENV.
#
# Example:
#   DB=postgres://app@db/app REPO=/var/backups/app DBBACKUP_KEY_FILE=/etc/dbbackup/app.key \
#   REINIT='dropdb -h db app && createdb -h db app && ./migrate up' \
#   CHECK_CMD='psql -h db app -Atc "select count(*) > 0 from orders" | grep -qx t' \
#   examples/schema-change.sh
set -eu

: "${DB:?set DB to the database URL}"
: "${REPO:?set REPO to the backup repository}"
: "${REINIT:?set REINIT to the command that re-creates the database with the new schema}"
DBBACKUP=${DBBACKUP:-dbbackup}
STRICT=${STRICT:-0}

say() { printf 'schema-change: %s\n' "$*" >&2; }

# 1. The backup, verified before the database is touched.
out=$("$DBBACKUP" backup --source "$DB" --repo "$REPO" --json \
    --label stage=pre-migration --label "started=$(date -u +%Y-%m-%dT%H:%M:%SZ)") || {
    say "the backup failed; nothing was changed"
    exit 1
}
id=$(printf '%s\n' "$out" | sed -n 's/.*"backup_id":"\([^"]*\)".*/\1/p' | tail -n 1)
[ -n "$id" ] || { say "no backup id in the backup's output: $out"; exit 1; }
"$DBBACKUP" verify --repo "$REPO" --backup "$id" >&2 || {
    say "backup $id does not verify; nothing was changed"
    exit 1
}
say "backup $id taken and verified"

recover() {
    say "$1"
    say "the database may be empty or half-built; the old database is in backup $id:"
    say "  $DBBACKUP restore --repo '$REPO' --backup $id --target NEW_DATABASE_URL --create"
    say "  (for SQLite: --target sqlite:///NEW_PATH.db, without --create)"
    exit 1
}

# 2. The new schema.
sh -c "$REINIT" >&2 || recover "re-initialising the database failed ($REINIT)"

# 3. The old rows, by column name.
if [ "$STRICT" = 1 ]; then
    "$DBBACKUP" restore --repo "$REPO" --backup "$id" --target "$DB" --data-only --strict-columns >&2 \
        || recover "restoring the rows failed; the new schema was left unchanged (one transaction)"
else
    "$DBBACKUP" restore --repo "$REPO" --backup "$id" --target "$DB" --data-only >&2 \
        || recover "restoring the rows failed; the new schema was left unchanged (one transaction)"
fi

# 4. The application's own check.
if [ -n "${CHECK_CMD:-}" ]; then
    sh -c "$CHECK_CMD" >&2 || recover "the check failed ($CHECK_CMD)"
fi
say "done: the rows of backup $id are in the new schema"
printf '%s\n' "$id"
