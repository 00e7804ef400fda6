-- install: the extension loads, reports its version, and owns its objects.
CREATE EXTENSION ledger;
SELECT extname, extversion, extrelocatable, nspname
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'ledger';
SELECT ledger.version() = extversion AS library_matches_catalog
  FROM pg_extension WHERE extname = 'ledger';

-- every public function, table and view carries a comment
SELECT p.proname
  FROM pg_proc p
 WHERE p.pronamespace = 'ledger'::regnamespace
   AND obj_description(p.oid, 'pg_proc') IS NULL;
SELECT c.relname
  FROM pg_class c
 WHERE c.relnamespace = 'ledger'::regnamespace AND c.relkind IN ('r', 'v')
   AND obj_description(c.oid, 'pg_class') IS NULL;

-- write functions run as the owner with a pinned search_path
SELECT p.proname, p.prosecdef, p.proconfig
  FROM pg_proc p
 WHERE p.pronamespace = 'ledger'::regnamespace AND p.prosecdef
 ORDER BY p.proname;

-- append-only triggers fire always, also under session_replication_role = replica
SELECT c.relname, t.tgname, t.tgenabled
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = 'ledger'::regnamespace AND NOT t.tgisinternal
 ORDER BY c.relname, t.tgname;

-- Test helper used by the later files: run a statement, report its outcome
-- as "ok" or "SQLSTATE: message / detail", the detail without its last line
-- of structured facts (test/sql/facts.sql shows those).
CREATE FUNCTION public.try(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    st text;
    msg text;
    det text;
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            det = PG_EXCEPTION_DETAIL;
    det := regexp_replace(det, '(^|\n)\{[^\n]*\}$', '');
    RETURN st || ': ' || msg || coalesce(' / ' || nullif(det, ''), '');
END
$$;
