-- Nobody but the owner creates anything in this database, temporary tables
-- included: PostgreSQL grants TEMPORARY on every database to PUBLIC, which
-- would let greet_worker write after all.  The owner keeps it (an owner
-- holds every privilege of its database).  Re-runnable.
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END
$$;
