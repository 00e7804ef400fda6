# PGXS build for the ledger extension.  The version lives once, in
# ledger.control; it is passed to the C code as LEDGER_VERSION.
#
#   make && make install        build and install (install needs root)
#   make installcheck           the regression suite on a temporary
#                               instance with ledger preloaded (run it as
#                               a user that may start PostgreSQL: not root)
#   make BUILD=assert           with -DUSE_ASSERT_CHECKING
#   make BUILD=ubsan            with -fsanitize=undefined, aborting on the
#                               first report
# test/run.sh runs every suite; see the README.

EXTENSION = ledger
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big = ledger
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
DATA = $(sort $(wildcard sql/ledger--*.sql))

REGRESS = install assets_accounts transfer post bad_input idempotency guard ids invalidate reconcile hot search_path account_cache row_hints holds external events event_apply outbox exchange roles scoping batch hold_batch facts calls examples upgrade
REGRESS_OPTS = --inputdir=test --dbname=ledger_regress \
	--temp-instance=./tmp_check --temp-config=test/installcheck.conf

ISOLATION = double_spend idempotency_race opposite_transfers invalidate_concurrent reconcile_concurrent account_cache table_lock holds_exclusive holds_debit holds_shared holds_capture_void holds_capture_expiry holds_partial holds_limit events_hole events_appliers events_catch_up outbox_claim exchange_concurrent batch_opposite hold_batch_opposite row_hints_moved
ISOLATION_OPTS = --inputdir=test/isolation

PG_CPPFLAGS = -DLEDGER_VERSION=\"$(EXTVERSION)\"
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare \
	-Wno-missing-field-initializers

ifeq ($(BUILD),assert)
PG_CPPFLAGS += -DUSE_ASSERT_CHECKING
endif
ifeq ($(BUILD),ubsan)
# -fno-wrapv: signed overflow in the ledger's own arithmetic is reported
PG_CFLAGS += -fsanitize=undefined -fno-sanitize-recover=all -fno-wrapv
SHLIB_LINK += -fsanitize=undefined
endif

EXTRA_CLEAN = tmp_check

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# every object depends on the shared headers; the version is compiled in
$(OBJS): src/ledger.h src/escrow.h
src/ledger.o: ledger.control

# test/run.sh reads the suite lists from here: make -s print-REGRESS
print-%:
	@echo $($*)
