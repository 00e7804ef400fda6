#!/usr/bin/env bash
# test/run.sh: run every test suite against a throwaway cluster, then stop it.
#     bash test/run.sh          (as root)
# Installs missing packages, builds and installs the extension first.
# Suites, each test counted once:
#   regress    pg_regress, test/sql/*.sql vs test/expected/*.out (REGRESS in
#              the Makefile)
#   isolation  pg_isolation_regress, test/isolation/specs (ISOLATION in the
#              Makefile)
#   pgtap      pg_prove, test/pgtap/*.sql, each file in a fresh database
#   scripts    test/scripts/*.sh, each exits 0 on success; they get PGHOST,
#              PGPORT, PGBIN, LEDGER_ROOT and WORK, share test/lib.sh and
#              test/invariants.sql, and may start clusters of their own
# Ends with one line "N passed, N failed"; exits non-zero on any failure.
#
#   ONLY=regress|isolation|pgtap|scripts   run one suite
#   LEDGER_BUILDS="plain assert ubsan"     run on several builds in turn (CI
#       does): assert (-DUSE_ASSERT_CHECKING) runs every suite; ubsan
#       (-fsanitize=undefined, a process ends at its first report) runs the
#       regression, isolation and pgTAP suites, the hot-account scripts and the fuzzer,
#       and fails if any server log under $WORK holds a sanitizer report.  Each test is
#       counted once per build, its name prefixed by the build.
source "$(dirname "$0")/lib.sh"
set +e

ledger_packages || exit 1

PASSED=0
FAILED=0
FAILED_NAMES=()
want() { [ -z "${ONLY:-}" ] || [ "$ONLY" = "$1" ]; }
pass() { PASSED=$((PASSED + 1)); }
failed() { FAILED=$((FAILED + 1)); FAILED_NAMES+=("$1"); }

# Count "name ... ok" / "name ... FAILED" lines of pg_regress-style output.
count_regress() {
	local suite=$1 log=$2 line name
	while IFS= read -r line; do
		name=$(sed -E 's/^(test |     )?[ ]*([^ ]+) +\.\.\. .*/\2/' <<<"$line")
		if grep -qE '\.\.\. ok' <<<"$line"; then
			pass
		else
			failed "$suite/$name"
		fi
	done < <(grep -E '^(test |     )?[ ]*[^ ]+ +\.\.\. ' "$log")
}

# The scripted tests a build runs: all of them (the Debian package on the
# plain build only), or the hot-account ones.
scripts_of() {
	local f name
	for f in "$LEDGER_ROOT"/test/scripts/*.sh; do
		[ -e "$f" ] || continue
		name=$(basename "$f" .sh)
		if [ "$1" = ubsan ]; then
			case $name in hot_*|escrow|holds|events|event_worker|fuzz) ;; *) continue ;; esac
		fi
		# the package is built with its own flags: once is enough
		[ "$1" != plain ] && [ "$name" = deb ] && continue
		echo "$f"
	done
}

run_build() {
	local build=$1 tag="" f name db
	[ "$build" = plain ] || tag="$build:"
	echo "== build: $build"
	if ! ledger_build "$build"; then
		failed "${tag}build"
		return
	fi
	WORK=$(mktemp -d /tmp/ledger-test.XXXXXX)
	chmod 755 "$WORK"
	CLUSTER_CONF="shared_preload_libraries = 'pg_cron,ledger'
ledger.database = 'ledger_hot'
cron.database_name = 'ledger_cron'
cron.use_background_workers = on
max_worker_processes = 16
max_connections = 100" cluster_start "$WORK/cluster" || { failed "${tag}cluster"; return; }
	runuser -u postgres -- "$PGBIN/createdb" ledger_cron
	runuser -u postgres -- "$PGBIN/createdb" ledger_hot

	if want regress; then
		echo "== ${tag}regress"
		mkdir -p "$WORK/regress"
		"$PG_REGRESS" --inputdir="$LEDGER_ROOT/test" --outputdir="$WORK/regress" \
			--bindir="$PGBIN" --dbname=ledger_regress \
			$(make -s -C "$LEDGER_ROOT" print-REGRESS) 2>&1 | tee "$WORK/regress.log"
		count_regress "${tag}regress" "$WORK/regress.log"
		[ -f "$WORK/regress/regression.diffs" ] && cat "$WORK/regress/regression.diffs"
	fi

	if want isolation; then
		echo "== ${tag}isolation"
		mkdir -p "$WORK/isolation"
		"$PG_ISOLATION_REGRESS" --inputdir="$LEDGER_ROOT/test/isolation" \
			--outputdir="$WORK/isolation" --bindir="$PGBIN" --dbname=ledger_isolation \
			$(make -s -C "$LEDGER_ROOT" print-ISOLATION) 2>&1 | tee "$WORK/isolation.log"
		count_regress "${tag}isolation" "$WORK/isolation.log"
		[ -f "$WORK/isolation/regression.diffs" ] && cat "$WORK/isolation/regression.diffs"
	fi

	if want pgtap; then
		echo "== ${tag}pgtap"
		for f in "$LEDGER_ROOT"/test/pgtap/*.sql; do
			[ -e "$f" ] || continue
			name=$(basename "$f" .sql)
			db="tap_$name"
			"$PGBIN/createdb" "$db"
			"$PGBIN/psql" -X -q -d "$db" -c 'CREATE EXTENSION pgtap; CREATE EXTENSION ledger;' >/dev/null
			if pg_prove -h "$PGHOST" -p "$PGPORT" -U postgres -d "$db" "$f"; then
				pass
			else
				failed "${tag}pgtap/$name"
			fi
		done
	fi

	if want scripts; then
		echo "== ${tag}scripts"
		for f in $(scripts_of "$build"); do
			name=$(basename "$f" .sh)
			echo "-- $name"
			if PGBIN=$PGBIN LEDGER_ROOT=$LEDGER_ROOT WORK="$WORK" bash "$f"; then
				echo "-- $name: ok"
				pass
			else
				echo "-- $name: FAILED"
				failed "${tag}scripts/$name"
			fi
		done
	fi

	cluster_stop
	if [ "$build" = ubsan ]; then
		# a report goes to the reporting server's stderr: its server.log,
		# all of which stay under $WORK (the scripts keep their clusters')
		if grep -rl --include=server.log 'runtime error:' "$WORK" >"$WORK/ubsan.hits"; then
			grep -rh --include=server.log -m3 'runtime error:' "$WORK"
			failed "${tag}sanitizer reports in $(wc -l <"$WORK/ubsan.hits") server log(s)"
		else
			echo "== ubsan: no sanitizer report in any server log"
			pass
		fi
	fi
}

for build in ${LEDGER_BUILDS:-plain}; do
	before=$FAILED
	run_build "$build"
	# a build's clusters and logs stay for a look only when something failed
	[ "$FAILED" -eq "$before" ] && [ -n "${WORK:-}" ] && rm -rf "$WORK"
done
# leave the plain build installed
builds=${LEDGER_BUILDS:-plain}
[ "${builds##* }" = plain ] || ledger_build plain >/dev/null

[ ${#FAILED_NAMES[@]} -gt 0 ] && echo "failed: ${FAILED_NAMES[*]}"
if [ $((PASSED + FAILED)) -eq 0 ]; then
	echo "no test ran"
	FAILED=1
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
