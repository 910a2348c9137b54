-- The contract's tables.  Re-runnable: every statement is idempotent.
-- Apply all of sql/*.sql in name order with: psql -v ON_ERROR_STOP=1 -f FILE

CREATE TABLE IF NOT EXISTS greeting_templates (
    language  text NOT NULL,
    formality text NOT NULL,
    template  text NOT NULL,
    PRIMARY KEY (language, formality),
    CONSTRAINT greeting_templates_formality CHECK (formality IN ('casual', 'formal')),
    CONSTRAINT greeting_templates_has_name CHECK (position('{name}' IN template) > 0)
);

-- language is any short code and formality any word: a pair without a
-- template falls back by the greeting rule, so no constraint ties them to
-- greeting_templates or to a fixed list.
CREATE TABLE IF NOT EXISTS user_preferences (
    user_id      bigint PRIMARY KEY,
    display_name text NULL,
    language     text NOT NULL DEFAULT 'en',
    formality    text NOT NULL DEFAULT 'casual'
);

COMMENT ON TABLE greeting_templates IS 'Greeting per (language, formality); {name} is replaced by the name.';
COMMENT ON TABLE user_preferences IS 'Read by greet-worker for every job; changes apply to the next job.';
