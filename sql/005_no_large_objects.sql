-- Nobody but the owner writes large objects: PostgreSQL lets PUBLIC
-- execute the server-side functions that create and write them, which
-- would let greet_worker store data after all.  Reading them stays as it
-- was (there are none).  A database owner that is not a superuser (a
-- managed service) may not own these functions: then this warns and
-- changes nothing.  Re-runnable.
DO $$
BEGIN
    REVOKE EXECUTE ON FUNCTION
        lo_create(oid), lo_creat(integer), lo_from_bytea(oid, bytea), lo_put(oid, bigint, bytea),
        lowrite(integer, bytea), lo_truncate(integer, integer), lo_truncate64(integer, bigint),
        lo_unlink(oid), lo_import(text), lo_import(text, oid)
    FROM PUBLIC;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'large objects: % (greet_worker may still write large objects)', SQLERRM;
END
$$;
