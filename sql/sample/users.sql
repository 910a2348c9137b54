-- Sample users for the demo and the tests; not part of the schema.
-- Re-runnable: restores these rows as written here.
INSERT INTO user_preferences (user_id, display_name, language, formality) VALUES
    (1, 'Ada',     'en', 'casual'),
    (2, 'Grace',   'en', 'formal'),
    (3, 'Amélie',  'fr', 'casual'),
    (4, 'Jean',    'fr', 'formal'),
    (5, 'Lena',    'de', 'casual'),
    (6, 'Herr Müller', 'de', 'formal'),
    (7, 'Sofía',   'es', 'casual'),
    (8, 'Don Luis', 'es', 'formal'),
    (9, '花子',    'ja', 'casual'),
    (10, '山田',   'ja', 'formal'),
    (11, NULL,     'fr', 'formal'),
    (12, 'Olu',    'yo', 'formal')
ON CONFLICT (user_id) DO UPDATE
    SET display_name = EXCLUDED.display_name, language = EXCLUDED.language, formality = EXCLUDED.formality;
