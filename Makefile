# PGXS build for the ledger extension.  The version lives once, in
# ledger.control; it is passed to the C code as LEDGER_VERSION.

EXTENSION = ledger
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big = ledger
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
DATA = $(sort $(wildcard sql/ledger--*.sql))

REGRESS = install assets_accounts transfer post bad_input idempotency guard ids invalidate reconcile hot search_path account_cache upgrade
REGRESS_OPTS = --inputdir=.

ISOLATION = double_spend idempotency_race opposite_transfers invalidate_concurrent reconcile_concurrent account_cache
ISOLATION_OPTS = --inputdir=test/isolation

PG_CPPFLAGS = -DLEDGER_VERSION=\"$(EXTVERSION)\"
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare \
	-Wno-missing-field-initializers

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# every object depends on the shared header; the version is compiled in
$(OBJS): src/ledger.h
src/ledger.o: ledger.control

# test/run.sh reads the suite lists from here: make -s print-REGRESS
print-%:
	@echo $($*)
