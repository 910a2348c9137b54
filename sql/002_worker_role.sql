-- A least-privilege role for greet-worker: it reads the two preference
-- tables and nothing else.  No password is set here (no secrets in the
-- repository): local runs use trust or peer authentication on a Unix
-- socket; deployments set one, e.g. ALTER ROLE greet_worker PASSWORD '...'.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'greet_worker') THEN
        CREATE ROLE greet_worker LOGIN;
    END IF;
END
$$;

DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO greet_worker', current_database());
END
$$;
GRANT USAGE ON SCHEMA public TO greet_worker;
REVOKE ALL ON greeting_templates, user_preferences FROM greet_worker;
GRANT SELECT ON greeting_templates, user_preferences TO greet_worker;
