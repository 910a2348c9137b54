-- Seed templates: the greeting rule's fallback ('en', 'casual') and both
-- formalities of en, fr, de, es and ja.  Re-running restores the text of
-- these rows and leaves any other template alone.
INSERT INTO greeting_templates (language, formality, template) VALUES
    ('en', 'casual', 'Hello, {name}!'),
    ('en', 'formal', 'Good day, {name}.'),
    ('fr', 'casual', 'Salut, {name} !'),
    ('fr', 'formal', 'Bonjour, {name}.'),
    ('de', 'casual', 'Hallo, {name}!'),
    ('de', 'formal', 'Guten Tag, {name}.'),
    ('es', 'casual', '¡Hola, {name}!'),
    ('es', 'formal', 'Buenos días, {name}.'),
    ('ja', 'casual', 'こんにちは、{name}！'),
    ('ja', 'formal', '{name}様、こんにちは。')
ON CONFLICT (language, formality) DO UPDATE SET template = EXCLUDED.template;
