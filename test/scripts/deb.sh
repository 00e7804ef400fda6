#!/usr/bin/env bash
# test/scripts/deb.sh: the Debian package (debian/) builds, holds the
# extension, and passes the regression suite once installed.
#
#   - its build dependencies are installed when missing (each detected by
#     dpkg-query, never by a file), and dpkg-checkbuilddeps agrees;
#   - the work tree's tracked and new files (not its build products, not
#     what .gitignore ignores) are copied to a temporary directory, so
#     uncommitted changes are packaged too and the tree is not touched;
#   - debian/changelog's upstream version and META.json's (the
#     distribution's and the extension's) are ledger.control's
#     default_version; META.json parses and has the PGXN Meta Spec v1 keys;
#   - dpkg-buildpackage -us -uc -b builds postgresql-15-ledger_VERSION_ARCH.deb;
#   - dpkg-deb -c lists ledger.so, ledger.control and every sql/ledger--*.sql
#     of the tree, in the paths pg_config gives, and no other script; the
#     packaged control file and scripts are the tree's; it depends on
#     postgresql-15;
#   - dpkg -i installs it; a throwaway cluster configured as test/run.sh's
#     (ledger and pg_cron preloaded) passes the regression suite (REGRESS
#     in the Makefile) against the packaged files;
#   - dpkg -r removes them, and ledger_build (test/lib.sh) installs the
#     make-built flavour that was installed before, so later suites find it.
#
# DEB_SKIP_INSTALL=1 stops before dpkg -i: the package is built and checked
# but nothing under /usr/lib/postgresql or /usr/share/postgresql is touched.
#
# Run by test/run.sh as root; alone:
#     LEDGER_ROOT=$PWD bash test/scripts/deb.sh
# About 1 minute for the build, plus the regression suite.
LEDGER_ROOT=${LEDGER_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
source "$LEDGER_ROOT/test/lib.sh"
test_begin deb

# what the build needs (debian/control's Build-Depends, with the compilers
# and the server headers behind them), what this script runs, and what the
# installed package is tested with
DEB_PACKAGES="dpkg-dev debhelper postgresql-server-dev-all postgresql-server-dev-15 make gcc
git python3 postgresql-15 postgresql-15-cron"
need=()
for p in $DEB_PACKAGES; do
	pkg_installed "$p" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		fail "missing packages: ${need[*]}; run this as root to install them"
		test_done
	fi
	# postgresql-server-dev-all at the installed postgresql-common's version,
	# so that the build tools do not upgrade the server's common package
	common=$(dpkg-query -W -f='${Version}' postgresql-common 2>/dev/null)
	for i in "${!need[@]}"; do
		[ "${need[$i]}" = postgresql-server-dev-all ] && [ -n "$common" ] &&
			need[$i]="postgresql-server-dev-all=$common"
	done
	echo "deb: installing ${need[*]}"
	apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
		{ fail "apt-get install ${need[*]}"; test_done; }
	ok "installed ${need[*]}"
else
	ok "build dependencies installed ($(wc -w <<<"$DEB_PACKAGES") packages)"
fi

# ---------------------------------------------------------------------
# the source tree: tracked and new files of the work tree, as they are
# ---------------------------------------------------------------------
SRC=$DIR/ledger
mkdir -p "$SRC"
if ! git -C "$LEDGER_ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	fail "$LEDGER_ROOT is not a git work tree"
	test_done
fi
if git -C "$LEDGER_ROOT" ls-files -z --cached --others --exclude-standard |
	while IFS= read -r -d '' f; do if [ -e "$LEDGER_ROOT/$f" ]; then printf '%s\0' "$f"; fi; done |
	tar -C "$LEDGER_ROOT" --null -T - -cf - | tar -C "$SRC" -xf -; then
	ok "copied $(find "$SRC" -type f | wc -l) tracked and new files of the work tree"
else
	fail "copying the work tree"
	test_done
fi
for f in debian/control debian/control.in debian/rules debian/changelog debian/pgversions META.json ledger.control; do
	[ -f "$SRC/$f" ] || { fail "the tree has no $f"; test_done; }
done
if (cd "$SRC" && dpkg-checkbuilddeps) >"$DIR/builddeps.log" 2>&1; then
	ok "dpkg-checkbuilddeps: build dependencies satisfied"
else
	fail "dpkg-checkbuilddeps: $(cat "$DIR/builddeps.log")"
fi

# ---------------------------------------------------------------------
# one version: ledger.control's, in debian/changelog and META.json
# ---------------------------------------------------------------------
EXTVERSION=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$SRC/ledger.control")
DEBVERSION=$(dpkg-parsechangelog -l "$SRC/debian/changelog" -S Version)
DEBVERSION=${DEBVERSION#*:}          # no epoch in file names
UPSTREAM=${DEBVERSION%-*}
PKG=$(sed -n 's/^Package: //p' "$SRC/debian/control" | head -1)
ARCH=$(dpkg --print-architecture)
DEB=$DIR/${PKG}_${DEBVERSION}_$ARCH.deb
[ -n "$EXTVERSION" ] || fail "no default_version in ledger.control"
[ "$UPSTREAM" = "$EXTVERSION" ] &&
	ok "debian/changelog's $DEBVERSION is ledger.control's default_version $EXTVERSION" ||
	fail "debian/changelog's upstream version $UPSTREAM is not ledger.control's $EXTVERSION (add a changelog entry: dch -v $EXTVERSION-1)"

if "$PYTHON" -m json.tool "$SRC/META.json" >/dev/null 2>"$DIR/meta.err"; then
	ok "META.json parses (python3 -m json.tool)"
	rows=$("$PYTHON" - "$SRC" "$EXTVERSION" <<'PY'
import json, os, re, sys
root, version = sys.argv[1], sys.argv[2]
meta = json.load(open(os.path.join(root, "META.json")))
semver = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$")
rows = []
def check(name, passed, detail):
    rows.append("%s|%s|%s" % (name, "t" if passed else "f", detail))
missing = [k for k in ("name", "abstract", "version", "maintainer", "license", "provides", "meta-spec") if k not in meta]
check("the spec's required keys", not missing, "missing: %s" % ", ".join(missing) if missing else "all present")
spec = meta.get("meta-spec", {}).get("version", "")
check("meta-spec 1.0.x", re.match(r"^1\.0\.\d+$", spec) is not None, "meta-spec version %r" % spec)
check("version is ledger.control's", meta.get("version") == version and semver.match(version) is not None,
      "version %r, ledger.control %r" % (meta.get("version"), version))
ext = meta.get("provides", {}).get("ledger", {})
check("provides ledger at that version", ext.get("version") == version,
      "provides.ledger.version %r" % ext.get("version"))
for key in ("file", "docfile"):
    path = ext.get(key, "")
    check("provides.ledger.%s exists" % key, bool(path) and os.path.isfile(os.path.join(root, path)), repr(path))
pg = meta.get("prereqs", {}).get("runtime", {}).get("requires", {}).get("PostgreSQL", "")
check("runtime requires PostgreSQL 15", pg.startswith("15.") or ">= 15." in pg, "PostgreSQL %r" % pg)
print("\n".join(rows))
PY
	) || fail "META.json: the check failed to run"
	check_rows "META.json: " <<<"$rows"
else
	fail "META.json does not parse: $(cat "$DIR/meta.err")"
fi

# ---------------------------------------------------------------------
# the package
# ---------------------------------------------------------------------
if (cd "$SRC" && dpkg-buildpackage -us -uc -b) >"$DIR/build.log" 2>&1 && [ -f "$DEB" ]; then
	ok "dpkg-buildpackage -us -uc -b built $(basename "$DEB")"
else
	tail -30 "$DIR/build.log" >&2
	fail "dpkg-buildpackage did not build $(basename "$DEB") (log: $DIR/build.log)"
	test_done
fi

PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)
EXTDIR=$("$PG_CONFIG" --sharedir)/extension
dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's|^\./|/|' >"$DIR/contents"
expected=("$PKGLIBDIR/ledger.so" "$EXTDIR/ledger.control")
for f in "$SRC"/sql/ledger--*.sql; do
	expected+=("$EXTDIR/$(basename "$f")")
done
missing=()
for f in "${expected[@]}"; do
	grep -qxF "$f" "$DIR/contents" || missing+=("$f")
done
[ ${#missing[@]} -eq 0 ] &&
	ok "dpkg-deb -c lists ledger.so, ledger.control and the $((${#expected[@]} - 2)) scripts of sql/" ||
	fail "dpkg-deb -c lacks ${missing[*]}"
extra=$(grep -E "^$EXTDIR/ledger--.*\.sql$" "$DIR/contents" |
	while read -r f; do [ -f "$SRC/sql/$(basename "$f")" ] || echo "$f"; done)
[ -z "$extra" ] && ok "no script in the package that sql/ lacks" || fail "scripts not in sql/: $extra"

dpkg-deb -x "$DEB" "$DIR/root"
differ=()
for f in "$SRC/ledger.control" "$SRC"/sql/ledger--*.sql; do
	cmp -s "$f" "$DIR/root$EXTDIR/$(basename "$f")" || differ+=("$(basename "$f")")
done
[ ${#differ[@]} -eq 0 ] && ok "the packaged ledger.control and scripts are the tree's" ||
	fail "packaged files differ from the tree's: ${differ[*]}"
depends=$(dpkg-deb -f "$DEB" Depends)
grep -qE '(^|, )postgresql-15(,|$| )' <<<"$depends" && ok "Depends: $depends" ||
	fail "the package does not depend on postgresql-15: $depends"
[ "$(dpkg-deb -f "$DEB" Version)" = "$DEBVERSION" ] && ok "package version $DEBVERSION" ||
	fail "package version $(dpkg-deb -f "$DEB" Version), expected $DEBVERSION"

if [ "${DEB_SKIP_INSTALL:-}" = 1 ]; then
	ok "DEB_SKIP_INSTALL=1: stopping before dpkg -i"
	test_done   # exits 1 on a failure, returns on success
	exit 0
fi

# ---------------------------------------------------------------------
# installed: the regression suite against the packaged files
# ---------------------------------------------------------------------
FLAVOUR=$(cat "$LEDGER_ROOT/.build-flavour" 2>/dev/null || echo plain)
NODE=$DIR/cluster
RESTORED=0
# whatever happens, leave no package installed and the make build in place
restore() {
	[ "$RESTORED" = 1 ] && return
	node_stop "$NODE" immediate
	pkg_installed "$PKG" && dpkg -r "$PKG" >/dev/null 2>&1
	ledger_build "$FLAVOUR" >/dev/null 2>&1 || echo "deb: FAIL: could not restore the $FLAVOUR build" >&2
	RESTORED=1
}
trap restore EXIT

if dpkg -i "$DEB" >"$DIR/dpkg-i.log" 2>&1 && pkg_installed "$PKG"; then
	ok "dpkg -i $(basename "$DEB")"
else
	fail "dpkg -i: $(tail -5 "$DIR/dpkg-i.log")"
	test_done
fi
[ "$(dpkg -S "$PKGLIBDIR/ledger.so" 2>/dev/null | cut -d: -f1)" = "$PKG" ] &&
	cmp -s "$PKGLIBDIR/ledger.so" "$DIR/root$PKGLIBDIR/ledger.so" &&
	ok "$PKGLIBDIR/ledger.so is the package's" || fail "$PKGLIBDIR/ledger.so is not the package's"

# the cluster of test/run.sh
CONF="shared_preload_libraries = 'pg_cron,ledger'
ledger.database = 'ledger_hot'
cron.database_name = 'ledger_cron'
cron.use_background_workers = on
max_worker_processes = 16
max_connections = 100"
if node_init "$NODE" "$CONF" && node_start "$NODE"; then
	ok "a cluster with ledger and pg_cron preloaded starts on the packaged library"
else
	fail "cluster: $(tail -5 "$NODE/server.log" 2>/dev/null)"
	test_done
fi
PORT=$(node_port "$NODE")
for db in ledger_cron ledger_hot; do
	runuser -u postgres -- "$PGBIN/createdb" -h "$NODE" -p "$PORT" "$db" || fail "createdb $db"
done

REGRESS=$(make -s -C "$LEDGER_ROOT" print-REGRESS)
mkdir -p "$DIR/regress"
PGHOST=$NODE PGPORT=$PORT PGUSER=postgres "$PG_REGRESS" --inputdir="$LEDGER_ROOT/test" \
	--outputdir="$DIR/regress" --bindir="$PGBIN" --dbname=ledger_regress \
	$REGRESS >"$DIR/regress.log" 2>&1
status=$?
total=$(wc -w <<<"$REGRESS")
passed=$(grep -cE '^(test |     )?[ ]*[^ ]+ +\.\.\. ok' "$DIR/regress.log")
while IFS= read -r line; do
	fail "regress: $(sed -E 's/^(test |     )?[ ]*//' <<<"$line")"
done < <(grep -E '^(test |     )?[ ]*[^ ]+ +\.\.\. ' "$DIR/regress.log" | grep -vE '\.\.\. ok')
if [ "$status" = 0 ] && [ "$passed" = "$total" ]; then
	ok "the regression suite passes against the package: $passed of $total tests"
else
	fail "regression suite: $passed of $total passed, pg_regress exit $status (log: $DIR/regress.log)"
	[ -f "$DIR/regress/regression.diffs" ] && head -100 "$DIR/regress/regression.diffs" >&2
fi
out=$(node_psql "$NODE" ledger_hot -c "CREATE EXTENSION IF NOT EXISTS ledger" \
	-c "SELECT extversion FROM pg_extension WHERE extname = 'ledger'" 2>&1 | tail -1)
[ "$out" = "$EXTVERSION" ] && ok "CREATE EXTENSION ledger installs $EXTVERSION from the package" ||
	fail "CREATE EXTENSION ledger: $out"
node_stop "$NODE"

# ---------------------------------------------------------------------
# removed, and the make build back in place
# ---------------------------------------------------------------------
if dpkg -r "$PKG" >"$DIR/dpkg-r.log" 2>&1 && ! pkg_installed "$PKG"; then
	ok "dpkg -r $PKG"
else
	fail "dpkg -r: $(tail -5 "$DIR/dpkg-r.log")"
fi
left=()
for f in "$PKGLIBDIR/ledger.so" "$EXTDIR/ledger.control"; do
	[ -e "$f" ] && left+=("$f")
done
[ ${#left[@]} -eq 0 ] && ok "its files are gone" || fail "left after dpkg -r: ${left[*]}"
if ledger_build "$FLAVOUR" >"$DIR/restore.log" 2>&1 && [ -f "$PKGLIBDIR/ledger.so" ] &&
	cmp -s "$LEDGER_ROOT/ledger.so" "$PKGLIBDIR/ledger.so"; then
	ok "the make-installed $FLAVOUR build is back (ledger_build $FLAVOUR)"
else
	fail "restoring the $FLAVOUR build: $(tail -5 "$DIR/restore.log")"
fi
RESTORED=1
test_done
