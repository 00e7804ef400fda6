#!/usr/bin/env bash
# test/run.sh: run every test suite against a throwaway cluster, then stop it.
#     bash test/run.sh
# Installs missing packages, builds and installs the extension first.
# Suites, each test counted once:
#   regress    pg_regress, sql/*.sql vs expected/*.out (REGRESS in Makefile)
#   isolation  pg_isolation_regress, test/isolation/specs (ISOLATION in Makefile)
#   pgtap      pg_prove, test/pgtap/*.sql, each file in a fresh database
#   scripts    test/scripts/*.sh, each exits 0 on success; they get PGHOST,
#              PGPORT, PGBIN and LEDGER_ROOT, and may start clusters of their own
# Ends with one line "N passed, N failed"; exits non-zero on any failure.
# ONLY=regress|isolation|pgtap|scripts runs one suite.
source "$(dirname "$0")/lib.sh"
set +e

ledger_packages || exit 1
ledger_build || exit 1

WORK=$(mktemp -d /tmp/ledger-test.XXXXXX)
chmod 755 "$WORK"
CLUSTER_CONF="shared_preload_libraries = 'pg_cron,ledger'
ledger.database = 'ledger_hot'
cron.database_name = 'ledger_cron'
cron.use_background_workers = on
max_worker_processes = 16
max_connections = 100" cluster_start "$WORK/cluster" || exit 1
runuser -u postgres -- "$PGBIN/createdb" ledger_cron
runuser -u postgres -- "$PGBIN/createdb" ledger_hot

PASSED=0
FAILED=0
FAILED_NAMES=()
want() { [ -z "${ONLY:-}" ] || [ "$ONLY" = "$1" ]; }

# Count "name ... ok" / "name ... FAILED" lines of pg_regress-style output.
count_regress() {
	local suite=$1 log=$2 line name
	while IFS= read -r line; do
		name=$(sed -E 's/^(test |     )?[ ]*([^ ]+) +\.\.\. .*/\2/' <<<"$line")
		if grep -qE '\.\.\. ok' <<<"$line"; then
			PASSED=$((PASSED + 1))
		else
			FAILED=$((FAILED + 1)); FAILED_NAMES+=("$suite/$name")
		fi
	done < <(grep -E '^(test |     )?[ ]*[^ ]+ +\.\.\. (ok|FAILED|failed)' "$log")
}

if want regress; then
	echo "== regress"
	mkdir -p "$WORK/regress"
	"$PG_REGRESS" --inputdir="$LEDGER_ROOT" --outputdir="$WORK/regress" \
		--bindir="$PGBIN" --dbname=ledger_regress \
		$(make -s -C "$LEDGER_ROOT" print-REGRESS) 2>&1 | tee "$WORK/regress.log"
	count_regress regress "$WORK/regress.log"
	[ -f "$WORK/regress/regression.diffs" ] && cat "$WORK/regress/regression.diffs"
fi

if want isolation; then
	echo "== isolation"
	mkdir -p "$WORK/isolation"
	"$PG_ISOLATION_REGRESS" --inputdir="$LEDGER_ROOT/test/isolation" \
		--outputdir="$WORK/isolation" --bindir="$PGBIN" --dbname=ledger_isolation \
		$(make -s -C "$LEDGER_ROOT" print-ISOLATION) 2>&1 | tee "$WORK/isolation.log"
	count_regress isolation "$WORK/isolation.log"
	[ -f "$WORK/isolation/regression.diffs" ] && cat "$WORK/isolation/regression.diffs"
fi

if want pgtap; then
	echo "== pgtap"
	for f in "$LEDGER_ROOT"/test/pgtap/*.sql; do
		[ -e "$f" ] || continue
		name=$(basename "$f" .sql)
		db="tap_$name"
		"$PGBIN/createdb" "$db"
		"$PGBIN/psql" -X -q -d "$db" -c 'CREATE EXTENSION pgtap; CREATE EXTENSION ledger;' >/dev/null
		if pg_prove -h "$PGHOST" -p "$PGPORT" -U postgres -d "$db" "$f"; then
			PASSED=$((PASSED + 1))
		else
			FAILED=$((FAILED + 1)); FAILED_NAMES+=("pgtap/$name")
		fi
	done
fi

if want scripts; then
	echo "== scripts"
	for f in "$LEDGER_ROOT"/test/scripts/*.sh; do
		[ -e "$f" ] || continue
		name=$(basename "$f" .sh)
		echo "-- $name"
		if PGBIN=$PGBIN LEDGER_ROOT=$LEDGER_ROOT WORK="$WORK" bash "$f"; then
			echo "-- $name: ok"
			PASSED=$((PASSED + 1))
		else
			echo "-- $name: FAILED"
			FAILED=$((FAILED + 1)); FAILED_NAMES+=("scripts/$name")
		fi
	done
fi

cluster_stop
[ ${#FAILED_NAMES[@]} -gt 0 ] && echo "failed: ${FAILED_NAMES[*]}"
if [ $((PASSED + FAILED)) -eq 0 ]; then
	echo "no test ran"
	FAILED=1
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
