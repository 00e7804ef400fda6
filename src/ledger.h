/*-------------------------------------------------------------------------
 *
 * ledger.h
 *	  Declarations shared by the ledger extension's C files: SQLSTATEs of
 *	  class LD, the posting structs, and each file's functions, grouped by
 *	  layer.  Calls go one way, from a layer to the layers below it (and
 *	  within a layer, never in a circle):
 *
 *	    entry points     ledger.c catalog.c hotmode.c worker.c guard.c hold.c access.c
 *	                     capture.c holdexpiry.c external.c event.c
 *	                     eventworker.c outbox.c rates.c exchange.c batch.c
 *	    posting and      posting.c invalidate.c reconcile.c rebuild.c fold.c
 *	      corrections    apply.c eventtype.c
 *	    balance          balance.c (cold rows); batchapply.c (a batch's running
 *	      strategies     balances); escrowapply.c escrowload.c escrow.c (hot)
 *	    storage helpers  store.c checks.c txkey.c holdstore.c horizon.c outboxstore.c
 *	                     owner.c ratelimit.c counters.c errfacts.c
 *	                     lookup.c cache.c
 *	                     schema.c spi.c
 *	                     alert.c validate.c amount.c ids.c
 *
 *-------------------------------------------------------------------------
 */
#ifndef LEDGER_H
#define LEDGER_H

#include "postgres.h"

#include "access/skey.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "storage/spin.h"
#include "utils/date.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

/*
 * SQLSTATEs, class LD.  The README's error table lists every one of them;
 * keep the two in step.
 */
#define ERRCODE_LEDGER_INSUFFICIENT_FUNDS	MAKE_SQLSTATE('L','D','0','0','1')
#define ERRCODE_LEDGER_UNKNOWN_ACCOUNT		MAKE_SQLSTATE('L','D','0','0','2')
#define ERRCODE_LEDGER_UNKNOWN_ASSET		MAKE_SQLSTATE('L','D','0','0','3')
#define ERRCODE_LEDGER_ASSET_MISMATCH		MAKE_SQLSTATE('L','D','0','0','4')
#define ERRCODE_LEDGER_INVALID_AMOUNT		MAKE_SQLSTATE('L','D','0','0','5')
#define ERRCODE_LEDGER_IMMUTABLE_RECORD		MAKE_SQLSTATE('L','D','0','0','6')
#define ERRCODE_LEDGER_IDEMPOTENCY_CONFLICT	MAKE_SQLSTATE('L','D','0','0','7')
#define ERRCODE_LEDGER_UNBALANCED_POSTING	MAKE_SQLSTATE('L','D','0','0','8')
#define ERRCODE_LEDGER_DUPLICATE_ACCOUNT	MAKE_SQLSTATE('L','D','0','0','9')
#define ERRCODE_LEDGER_DUPLICATE_ASSET		MAKE_SQLSTATE('L','D','0','1','0')
#define ERRCODE_LEDGER_INVALID_ARGUMENT		MAKE_SQLSTATE('L','D','0','1','1')
#define ERRCODE_LEDGER_INVALID_LEGS			MAKE_SQLSTATE('L','D','0','1','2')
#define ERRCODE_LEDGER_UNKNOWN_TRANSACTION	MAKE_SQLSTATE('L','D','0','1','3')
#define ERRCODE_LEDGER_ALREADY_INVALIDATED	MAKE_SQLSTATE('L','D','0','1','4')
#define ERRCODE_LEDGER_BELOW_FLOOR			MAKE_SQLSTATE('L','D','0','1','5')
#define ERRCODE_LEDGER_UNKNOWN_ALERT		MAKE_SQLSTATE('L','D','0','1','6')
/* LD017 (pg_cron unavailable) is raised by the SQL scheduling wrappers. */
#define ERRCODE_LEDGER_HOT_PREPARE			MAKE_SQLSTATE('L','D','0','1','8')
#define ERRCODE_LEDGER_MODE_CHANGED			MAKE_SQLSTATE('L','D','0','1','9')
#define ERRCODE_LEDGER_HOT_NOT_READY		MAKE_SQLSTATE('L','D','0','2','0')
#define ERRCODE_LEDGER_HOT_UNAVAILABLE		MAKE_SQLSTATE('L','D','0','2','1')
#define ERRCODE_LEDGER_HOT_OUT_OF_RANGE		MAKE_SQLSTATE('L','D','0','2','2')
#define ERRCODE_LEDGER_UNKNOWN_HOLD			MAKE_SQLSTATE('L','D','0','2','3')
#define ERRCODE_LEDGER_HOLD_FINISHED		MAKE_SQLSTATE('L','D','0','2','4')
#define ERRCODE_LEDGER_HOLD_EXCEEDED		MAKE_SQLSTATE('L','D','0','2','5')
#define ERRCODE_LEDGER_HOLD_SHARED			MAKE_SQLSTATE('L','D','0','2','6')
#define ERRCODE_LEDGER_HOLD_LIMIT			MAKE_SQLSTATE('L','D','0','2','7')
#define ERRCODE_LEDGER_HOLD_HOT				MAKE_SQLSTATE('L','D','0','2','8')
#define ERRCODE_LEDGER_CAPTURE_NOT_INVALIDATED MAKE_SQLSTATE('L','D','0','2','9')
#define ERRCODE_LEDGER_INVALID_RECORD		MAKE_SQLSTATE('L','D','0','3','0')
#define ERRCODE_LEDGER_EVENTS_UNAVAILABLE	MAKE_SQLSTATE('L','D','0','3','1')
#define ERRCODE_LEDGER_INVALID_EVENT		MAKE_SQLSTATE('L','D','0','3','2')
#define ERRCODE_LEDGER_STALE_EVENT			MAKE_SQLSTATE('L','D','0','3','3')
#define ERRCODE_LEDGER_CATCH_UP_TIMEOUT		MAKE_SQLSTATE('L','D','0','3','4')
#define ERRCODE_LEDGER_OUTBOX_STATE			MAKE_SQLSTATE('L','D','0','3','5')
#define ERRCODE_LEDGER_EXCHANGE_NOT_CONFIGURED MAKE_SQLSTATE('L','D','0','3','6')
#define ERRCODE_LEDGER_STALE_RATE			MAKE_SQLSTATE('L','D','0','3','7')
#define ERRCODE_LEDGER_INVALID_RATE			MAKE_SQLSTATE('L','D','0','3','8')
#define ERRCODE_LEDGER_NOT_ACCOUNT_OWNER	MAKE_SQLSTATE('L','D','0','3','9')
#define ERRCODE_LEDGER_ACTING_OWNER_REQUIRED MAKE_SQLSTATE('L','D','0','4','0')
#define ERRCODE_LEDGER_RATE_LIMITED			MAKE_SQLSTATE('L','D','0','4','1')

/* Is an error one of the ledger's own (class LD): a refusal a caller caused? */
#define LEDGER_ERRCODE_IS_LD(code) \
	(ERRCODE_TO_CATEGORY(code) == MAKE_SQLSTATE('L','D','0','0','0'))

/* Amounts must stay below 10^LEDGER_MAX_AMOUNT_DIGITS in absolute value. */
#define LEDGER_MAX_AMOUNT_DIGITS	30
/* Hot accounts' escrow holds values below 10^36 units of 10^-scale. */
#define LEDGER_SCALED_LIMIT \
	((int128) 1000000000000000000LL * (int128) 1000000000000000000LL)
/* Longest account code, asset code, owner id or idempotency key, in bytes. */
#define LEDGER_MAX_CODE_LEN			255
/* Largest metadata document, in bytes. */
#define LEDGER_MAX_METADATA_SIZE	65536

/* Refuse a NULL argument of a SQL-callable function. */
#define LEDGER_REQUIRE_ARG(n, name) \
	do { \
		if (PG_ARGISNULL(n)) \
			ereport(ERROR, \
					(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT), \
					 errmsg("%s must not be NULL", (name)), \
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT, \
														  LEDGER_FACT_TEXT("argument", (name)), \
														  NULL), NULL))); \
	} while (0)

/* An account as resolved for a posting. */
typedef struct LedgerAccount
{
	int64		id;
	char	   *code;
	char	   *asset;
	int			scale;			/* decimals allowed in the asset */
	bool		unbounded;		/* min_balance IS NULL */
	Numeric		min_balance;	/* valid unless unbounded */
	bool		hot;			/* balance kept in shared memory (escrow.c) */
} LedgerAccount;

/* What the account cache knew of a code's changes when it was looked up. */
typedef struct LedgerCacheStamp
{
	uint64		epoch;
	uint64		gen;
	uint64		local;			/* this backend's relcache invalidations */
} LedgerCacheStamp;

/* One leg of a posting, as the caller gave it. */
typedef struct LedgerLeg
{
	char	   *code;
	Numeric		amount;			/* signed: positive into the account */
	LedgerAccount *account;		/* resolved by posting.c */
} LedgerLeg;

/* The net effect of a posting on one account; see balance.c. */
typedef struct LedgerDelta
{
	LedgerAccount *account;
	Numeric		debits;			/* money out, >= 0 */
	Numeric		credits;		/* money in, >= 0 */
	Numeric		delta;			/* credits - debits */
	Numeric		new_balance;	/* set by ledger_apply_balances */
	bool		from_hold;		/* a capture: the debit takes money held for it */
} LedgerDelta;

/* What an account's active holds keep (holdstore.c). */
typedef struct LedgerHeld
{
	Numeric		exclusive;		/* sum of active exclusive holds */
	Numeric		shared;			/* largest active shared hold */
	int			active;			/* active holds */
} LedgerHeld;

/* An account's balance row, locked for a hold move (holdstore.c). */
typedef struct LedgerHoldAccount
{
	Numeric		balance;
	bool		hot;
	int			open_holds;		/* holds not yet finished in their row */
	int			max_active_holds;	/* -1: no limit */
} LedgerHoldAccount;

/* A hold, as read from its row (holdstore.c). */
typedef struct LedgerHold
{
	pg_uuid_t	id;
	int64		account_id;
	int64		to_account_id;	/* 0 for a shared hold */
	char	   *account_code;
	char	   *to_code;
	bool		exclusive;
	Numeric		amount;
	Numeric		captured;
	Numeric		remaining;
	char	   *state;			/* as recorded; see ledger_hold_state */
	char	   *external_ref;
	TimestampTz submit_deadline;
	Interval   *confirm_within;
	TimestampTz confirm_deadline;	/* DT_NOBEGIN until submitted */
} LedgerHold;

/* The fold worker's state, in the escrow's shared memory. */
typedef enum LedgerWorkerState
{
	WORKER_NOT_RUNNING = 0,
	WORKER_STARTING,
	WORKER_LOADING,
	WORKER_FOLDING,
	WORKER_IDLE
} LedgerWorkerState;

/* An account a correction takes (rebuild.c). */
typedef struct LedgerTaken
{
	int64		id;
	const char *code;
	bool		fenced;			/* hot: its escrow takes the rebuilt balance */
} LedgerTaken;

/* A copy of one hot account's escrow (escrow.c). */
typedef struct LedgerEscrowView
{
	int64		account_id;
	int			state;			/* index into ledger_slot_state_names */
	bool		active;
	uint64		generation;
	int			scale;
	bool		unbounded;
	int128		min_balance;
	int128		committed;
	int128		reserved;
	int128		pending;
	int32		inflight;
	int64		settled;
	int64		debits_accepted;
	int64		debits_refused;
} LedgerEscrowView;

/* The event worker's state and counters, in horizon.c's shared memory. */
typedef enum LedgerApplierState
{
	APPLIER_NOT_RUNNING = 0,
	APPLIER_STARTING,
	APPLIER_DISABLED,			/* ledger.event_worker = off */
	APPLIER_APPLYING,
	APPLIER_IDLE
} LedgerApplierState;

typedef struct LedgerApplierStats
{
	LedgerApplierState state;
	int			pid;
	Oid			dboid;			/* the database it applies in */
	int64		batches;
	int64		applied;
	int64		rejected;
	int64		errors;			/* batches that failed */
	TimestampTz last_batch_at;
	TimestampTz last_error_at;
	char		last_error[256];
} LedgerApplierStats;

/* An event type (eventtype.c). */
typedef struct LedgerEventType LedgerEventType;

/* A JSON object under construction (alert.c). */
typedef struct LedgerJson LedgerJson;

typedef struct LedgerWorkerStats
{
	slock_t		mutex;
	LedgerWorkerState state;
	int			pid;
	int64		rounds;
	int64		folded_rows;
	int64		balance_writes;
	TimestampTz last_fold_at;
} LedgerWorkerStats;

/* ---- entry points ---- */

/* posting.c (ledger.transfer, ledger.post) */
extern void ledger_posting_init(void);

/* worker.c */
extern void ledger_worker_init(void);
extern void ledger_register_worker(const char *function, const char *name);
extern void ledger_worker_connect(const char *name);

/* eventworker.c (the event worker, ledger.catch_up, ledger.event_worker_status) */
extern void ledger_event_worker_init(void);

/* outbox.c (ledger.enqueue, outbox_claim, outbox_ack, outbox_fail, outbox_retry) */
extern void ledger_outbox_init(void);

/* rates.c (ledger.set_exchange_rate, set_exchange_accounts, check_rate_feeds) */
extern int	ledger_max_rate_age_s;
extern void ledger_rates_init(void);
extern bool ledger_newest_rate(const char *base, const char *quote, Numeric *rate,
							   TimestampTz *observed_at);
extern int	ledger_rate_feeds_check(const char *base, const char *quote, bool stale_too);

/* hold.c (ledger.hold, mark_submitted, void, set_account_limits, available_balance) */
extern const char *ledger_hold_state(const LedgerHold *h, TimestampTz now);
extern void ledger_hold_refuse(const LedgerHold *h, const char *state, const char *move);
extern void ledger_hold_get(const pg_uuid_t *id, bool lock, LedgerHold *h);
extern bool ledger_hold_open(const char *state);
extern bool ledger_hold_take(const pg_uuid_t *id, bool skip_locked, LedgerHold *h,
							 LedgerHoldAccount *acct);

/* ---- posting and corrections ---- */

/* posting.c */
extern bytea *ledger_fingerprint(const char *data, int len);
extern bool ledger_find_account(const char *code, LedgerAccount *out);
extern void ledger_resolve_accounts(LedgerLeg *legs, int nlegs);
extern LedgerLeg *ledger_parse_legs(Jsonb *doc, int *nlegs);
extern void ledger_transfer_item(char *from, char *to, Numeric amount, const char *key,
								 Jsonb *metadata, pg_uuid_t *id);
extern void ledger_post_item(LedgerLeg *legs, int nlegs, const char *key, Jsonb *metadata,
							 pg_uuid_t *id);
extern void ledger_check_same_asset(LedgerLeg *legs);
extern bool ledger_post_legs(pg_uuid_t *id, const char *kind, LedgerLeg *legs, int nlegs,
							 const char *key, bytea *hash, Jsonb *metadata, bool transfer);

/* eventtype.c */
extern const LedgerEventType *ledger_event_type(const char *name);
extern const char *ledger_event_type_name(const LedgerEventType *t);
extern void ledger_event_check_payload(const LedgerEventType *t, Jsonb *payload);
extern void ledger_event_check_rights(const char *role, const LedgerEventType *t, int64 seq);
extern void ledger_event_run(const LedgerEventType *t, Jsonb *payload);

/* apply.c */
extern int	ledger_apply_batch(int max, bool skip_locked, bool *locked, int *applied,
							   int *rejected);
extern int64 ledger_projection_pointer(void);

/* rebuild.c */
extern int	ledger_rebuild_account(int64 account_id, TimestampTz from, Numeric *balance);
extern void ledger_fence_accounts(LedgerTaken *t, int n);
extern void ledger_lock_account(LedgerTaken *t);
extern void ledger_take_accounts(LedgerTaken *t, int n);
extern int	ledger_finish_account(LedgerTaken *t, TimestampTz from, Numeric *balance);
extern int	ledger_remove_orphans(void);

/* fold.c */
extern void ledger_fold_begin(void);
extern int	ledger_fold_account(int64 account_id, int max_rows);
extern void ledger_fold_end(void);
extern int	ledger_fold_round(int max_rows, int64 *writes, bool worker);
extern void ledger_fold_record(int folded, int64 writes);

/* ---- balance strategies ---- */

/* balance.c */
extern void ledger_apply_balances(LedgerDelta *deltas, int ndeltas, pg_uuid_t *txid,
								  LedgerLeg *legs, int nlegs, const char *kind,
								  Jsonb *metadata);
extern LedgerDelta *ledger_build_deltas(LedgerLeg *legs, int nlegs, int *ndeltas);
extern Numeric ledger_not_held(Numeric amount, const LedgerHeld *held);
extern int	ledger_delta_cmp(const void *a, const void *b);
extern void ledger_check_cold(LedgerDelta *d, Numeric balance, bool hot, int open_holds);
extern void ledger_apply_hot(LedgerDelta *d);
extern void ledger_check_room(const LedgerAccount *a, Numeric balance, Numeric debit,
							  const LedgerHeld *held, Numeric add_exclusive, Numeric shared,
							  const char *what);

/* batch.c (also for holdbatch.c) */
extern void ledger_batch_push_context(const char *what);
extern void ledger_batch_set_item(int item);
extern void ledger_batch_pop_context(void);
extern void ledger_batch_check_count(int n, const char *what);
extern void ledger_batch_check_subxacts(int n, bool atomic, const char *what);
extern void ledger_batch_refusal(ErrorData *e, int *sqlerrcode, char **message, Jsonb **facts);
extern void ledger_batch_row(ReturnSetInfo *rsinfo, int item, int sqlerrcode, const char *message,
							 Datum value, Jsonb *facts);
extern int	ledger_id_cmp(const void *a, const void *b);

/* hold.c, capture.c: the single calls a hold batch runs per item */
extern PGDLLEXPORT Datum ledger_hold(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum ledger_capture(PG_FUNCTION_ARGS);
extern PGDLLEXPORT Datum ledger_void(PG_FUNCTION_ARGS);

/* batchapply.c */
extern bool ledger_batch_active(void);
extern void ledger_batch_begin(bool atomic);
extern void ledger_batch_lock(const int64 *ids, int n);
extern bool ledger_batch_post(pg_uuid_t *id, const char *kind, LedgerLeg *legs, int nlegs,
							  const char *key, int64 scope, bytea *hash, Jsonb *metadata);
extern void ledger_batch_end(void);
extern void ledger_batch_forget(void);
extern bool ledger_batch_refusable(void);
extern void ledger_batch_item_done(void);

/* escrow.c */
extern char *ledger_database;
extern void ledger_hot_init(void);
extern bool ledger_hot_available(void);
extern bool ledger_hot_is_ready(void);
extern bool ledger_hot_apply(LedgerDelta *d);
extern int	ledger_escrow_view(LedgerEscrowView **out);
extern LedgerWorkerStats *ledger_hot_worker_stats(void);

/* escrowload.c */
extern void ledger_hot_load(void);
extern void ledger_hot_load_empty(void);
extern void ledger_hot_load_account(LedgerAccount *acct);
extern bool ledger_hot_fence(int64 account_id, const char *code);
extern bool ledger_hot_has_slot(int64 account_id);
extern void ledger_refuse_snapshot_isolation(const char *code);
extern void ledger_hot_fence_set(int64 account_id, Numeric balance);

/* ---- storage helpers ---- */

/* store.c */
typedef struct LedgerStore LedgerStore;
extern LedgerStore *ledger_store_begin(void);
extern Numeric ledger_store_lock_balance(LedgerStore *st, int64 account_id, bool latest, bool *hot,
										 int *open_holds);
extern void ledger_store_set_balance(LedgerStore *st, Numeric balance);
extern ItemPointerData ledger_store_balance_tid(LedgerStore *st);
extern void ledger_store_set_balance_at(LedgerStore *st, ItemPointer tid, Numeric balance);
extern void ledger_store_add_daily(LedgerStore *st, int64 account_id, DateADT day,
								   Numeric debits, Numeric credits, Numeric closing);
extern void ledger_store_insert_journal(LedgerStore *st, pg_uuid_t *txid, int64 account_id,
										Numeric amount, TimestampTz ts);
extern void ledger_store_insert_transaction(LedgerStore *st, pg_uuid_t *txid,
											const char *kind, Jsonb *metadata);
extern void ledger_store_insert_hot_entry(LedgerStore *st, pg_uuid_t *txid, int64 account_id,
										  DateADT day, Numeric debits, Numeric credits,
										  TimestampTz ts);
extern void ledger_store_end(LedgerStore *st);

/* txkey.c */
extern bool ledger_key_select(SPIPlanPtr *plans, const char *select, const char *key,
							  int64 scope_account);
extern bool ledger_find_key(const char *key, int64 scope_account, bytea *hash, pg_uuid_t *id);
extern bool ledger_claim_key_insert(pg_uuid_t *id, const char *kind, const char *key,
									int64 scope_account, bytea *hash, Jsonb *metadata);
extern void ledger_key_taken(const char *key, int64 scope_account, bytea *hash, pg_uuid_t *id);
extern bool ledger_claim_key(pg_uuid_t *id, const char *kind, const char *key,
							 int64 scope_account, bytea *hash,
							 Jsonb *metadata);

/* checks.c */
struct ResultRelInfo;
extern void ledger_checks_prepare(struct ResultRelInfo *rri);

/* horizon.c */
extern void ledger_horizon_init(void);
extern void ledger_horizon_require(void);
extern bool ledger_horizon_loaded(Oid relid);
extern void ledger_horizon_load(Oid relid, int64 max_seq);
extern int64 ledger_horizon_next(Oid relid);
extern int64 ledger_horizon(Oid relid);
extern Oid	ledger_event_relid(void);
extern bool ledger_horizon_claimed(void);
extern void ledger_event_context_set(int64 seq, const pg_uuid_t *id);
extern bool ledger_event_context(int64 *seq, pg_uuid_t *id);
extern void ledger_projection_locked_set(void);
extern bool ledger_projection_locked(void);
struct Latch;
extern void ledger_applier_set(LedgerApplierState state, struct Latch *latch);
extern void ledger_applier_record(int applied, int rejected, const char *error);
extern bool ledger_applier_read(LedgerApplierStats *out);
extern bool ledger_applier_wake(void);
extern void ledger_applier_wait(long timeout_ms);

/* outboxstore.c */
extern int64 ledger_outbox_put(const char *topic, const char *key, Jsonb *payload);

/* holdstore.c */
extern void ledger_held(int64 account_id, TimestampTz now, LedgerHeld *out);
extern bool ledger_hold_lock_account(int64 account_id, bool skip_locked,
									 LedgerHoldAccount *out);
extern void ledger_hold_set_limit(int64 account_id, int max_active_holds);
extern bool ledger_hold_read(const pg_uuid_t *id, bool lock, LedgerHold *h);
extern bool ledger_hold_insert(const LedgerHold *h, Interval *submit_within,
							   TimestampTz created_at, const char *key, bytea *hash,
							   Jsonb *metadata);
extern bool ledger_hold_find_key(const char *key, int64 scope_account, pg_uuid_t *id,
								 bytea **hash);
extern bool ledger_hold_move(const LedgerHold *h, TimestampTz now, int count_delta,
							 const char *event, Numeric amount, const pg_uuid_t *txid,
							 const char *reason, const char *key, Jsonb *detail);
extern bool ledger_hold_event_by_key(const char *key, int64 scope_account, pg_uuid_t *hold_id,
									 char **event,
									 Numeric *amount);

/* cache.c */
extern int	ledger_account_cache_size;
extern void ledger_cache_init(void);
extern bool ledger_account_cache_get(const char *code, LedgerAccount *out);
extern void ledger_account_cache_stamp(const char *code, LedgerCacheStamp *stamp);
extern void ledger_account_cache_put(const LedgerAccount *a, TransactionId xmin,
									 const LedgerCacheStamp *stamp);

/* rowhint.c */
extern bool ledger_row_hints;
extern void ledger_row_hint_init(void);
extern bool ledger_row_hint_fetch(Relation rel, Relation idx, ScanKey keys, int nkeys,
								  uint64 key, Snapshot snap, TupleTableSlot *slot,
								  BlockNumber *nblocks);
extern void ledger_row_hint_put(Relation rel, uint64 key, ItemPointer tid);
extern bool ledger_index_next_hinted(struct IndexScanDescData *scan, TupleTableSlot *slot,
									 Relation rel, uint64 key);

/* lookup.c */
extern bool ledger_lookup_account(const char *code, LedgerAccount *out, TransactionId *xmin);
extern int	ledger_asset_scale(const char *code);
extern bool ledger_lookup_owner(const char *code, char **owner);

/* schema.c */
typedef struct LedgerSchema
{
	bool		valid;
	Oid			account;
	Oid			account_code_index;
	Oid			account_balance;
	Oid			account_balance_index;	/* on account_id */
	Oid			asset;
	Oid			asset_code_index;
	Oid			daily_balance;
	Oid			daily_balance_index;	/* on (account_id, day) */
	Oid			journal_entry;
	Oid			journal_entry_id_seq;
	Oid			transaction;
	Oid			hot_entry;		/* InvalidOid before 0.3.0 */
	bool		has_hot;		/* 0.3.0 and later */
	bool		has_holds;		/* 0.6.0 and later */
	Oid			event;			/* ledger.event; InvalidOid before 0.6.0 */
	bool		has_outbox;		/* 0.7.0 and later */
	bool		has_rates;		/* 0.8.0 and later */
	bool		has_key_scope;	/* idempotency keys per owner: 0.10.0 and later */
	bool		has_rate_limits;	/* ledger.rate_limit: 0.10.0 and later */
	bool		account_trigger;	/* account_changed, ENABLE ALWAYS */
} LedgerSchema;

extern void ledger_schema_init(void);
extern const LedgerSchema *ledger_schema(void);
extern bool ledger_schema_has_hot(void);
extern bool ledger_keys_scoped(void);
extern char *ledger_key_scope_sql(bool scoped, const char *fmt, int param);

/* spi.c */
extern SPIPlanPtr ledger_prepare(const char *sql, int nargs, Oid *argtypes);
extern SPIPlanPtr ledger_prepare_scan(const char *sql, int nargs, Oid *argtypes);
extern void ledger_spi_exec(SPIPlanPtr plan, Datum *values, const char *nulls,
							int expected);
extern int	ledger_keyed_begin(void);
extern void ledger_keyed_end(int level);
extern void ledger_lock_balance(int64 account_id);
extern ErrorData *ledger_try(void (*fn) (void *arg), void *arg);

/* owner.c */
extern void ledger_owner_init(void);
extern void ledger_check_debit_owner(const char *code, const char *what);
extern const char *ledger_acting_owner(void);

/* ratelimit.c */
extern void ledger_ratelimit_init(void);
extern void ledger_rate_check(const char *what);
extern bool ledger_rate_hold_off(bool on);

/* alert.c */
extern LedgerJson *ledger_json_begin(void);
extern void ledger_json_numeric(LedgerJson *j, const char *key, Numeric n);
extern void ledger_json_int(LedgerJson *j, const char *key, int64 i);
extern void ledger_json_text(LedgerJson *j, const char *key, const char *s);
extern void ledger_json_bool(LedgerJson *j, const char *key, bool b);
extern void ledger_json_timestamptz(LedgerJson *j, const char *key, TimestampTz ts);
extern char *ledger_timestamptz_iso(TimestampTz ts);
extern void ledger_json_jsonb(LedgerJson *j, const char *key, Jsonb *doc);
extern Jsonb *ledger_json_end(LedgerJson *j);
extern int64 ledger_raise_alert(const char *severity, const char *kind,
								int64 account_id, Jsonb *details);

/* callerror.c */
extern void ledger_callerror_init(void);

/* counters.c */
extern void ledger_counters_init(void);
extern void ledger_count_posting(bool batch_item);
extern void ledger_count_raised(int sqlerrcode);

/* errfacts.c */
extern LedgerJson *ledger_facts(int sqlerrcode);
extern LedgerJson *ledger_factsv(int sqlerrcode,...);
#define LEDGER_FACT_TEXT(key, v)	(key), 's', (const char *) (v)
#define LEDGER_FACT_AMOUNT(key, v)	(key), 'a', (Numeric) (v)
#define LEDGER_FACT_INT(key, v)		(key), 'i', (int64) (v)
#define LEDGER_FACT_ID(key, v)		(key), 'u', (const pg_uuid_t *) (v)
extern void ledger_fact_amount(LedgerJson *j, const char *key, Numeric n);
extern int	ledger_errdetail_facts(LedgerJson *facts, const char *fmt,...) pg_attribute_printf(2, 3);
extern char *ledger_facts_strip(const char *detail);
extern const char *ledger_isolation_name(void);
extern Jsonb *ledger_facts_of(const char *detail);

/* validate.c */
extern char *ledger_check_code(text *t, const char *what);
extern char *ledger_known_role(FunctionCallInfo fcinfo, int argno, const char *what);
extern Numeric ledger_check_amount(Numeric amount, const LedgerAccount *account,
								   bool allow_negative);
extern Numeric ledger_check_numeric_finite(Numeric n, const char *what,
										   const char *asset, int scale);
extern Numeric ledger_parse_decimal(const char *str, int len, const char *what, int leg);
extern Numeric ledger_parse_amount(const char *str, int len, int leg);
extern Numeric ledger_max_amount(void);
extern void ledger_check_metadata(Jsonb *metadata);
extern char *ledger_optional_code(FunctionCallInfo fcinfo, int argno, const char *what);
extern int64 ledger_check_interval(Interval *iv, const char *what, int64 min_us, int64 max_us,
								   const char *range);
extern void ledger_require_same_request(const char *key, bytea *taken, bytea *hash,
										const char *what, const pg_uuid_t *owner);

/* amount.c */
extern Numeric ledger_numeric_add(Numeric a, Numeric b);
extern Numeric ledger_numeric_neg(Numeric a);
extern Numeric ledger_numeric_mul(Numeric a, Numeric b);
extern Numeric ledger_numeric_trunc(Numeric a, int scale);
extern int	ledger_numeric_cmp(Numeric a, Numeric b);
extern int	ledger_numeric_sign(Numeric a);
extern char *ledger_numeric_str(Numeric n);
extern bool ledger_numeric_to_scaled(Numeric n, int scale, int128 *out);
extern Numeric ledger_scaled_to_numeric(int128 v, int scale);
extern DateADT ledger_utc_day(TimestampTz ts);

/* ids.c */
extern void ledger_uuidv7(pg_uuid_t *out);
extern char *ledger_uuid_str(const pg_uuid_t *id);

#endif							/* LEDGER_H */
