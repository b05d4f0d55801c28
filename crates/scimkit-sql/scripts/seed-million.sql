-- 1,000,000 users' comparison documents in PostgreSQL, as `comparison_document`
-- builds them (lower-cased userName and emails, which are not caseExact; the
-- enterprise extension under its URN), with the indexes the translation is meant
-- for. Used by scripts/scale-postgres.sh; outside `cargo test`.
DROP SCHEMA IF EXISTS scimkit_scale CASCADE;
CREATE SCHEMA scimkit_scale;
SET search_path TO scimkit_scale;
CREATE TABLE users (n integer PRIMARY KEY, id text NOT NULL, cmp jsonb NOT NULL);
INSERT INTO users
SELECT g,
       '2819c223-7f76-453a-919d-' || lpad(g::text, 12, '0'),
       jsonb_build_object(
           'id', '2819c223-7f76-453a-919d-' || lpad(g::text, 12, '0'),
           'userName', 'user' || g || '@example.com',
           'externalId', 'ext-' || g,
           'displayName', 'User Number ' || g,
           'active', g % 7 <> 0,
           'name', jsonb_build_object('givenName', 'user', 'familyName', 'number ' || g),
           'emails', jsonb_build_array(
               jsonb_build_object('value', 'user' || g || '@example.com', 'type', 'work', 'primary', true),
               jsonb_build_object('value', 'user' || g || '@example.org', 'type', 'home')),
           'meta', jsonb_build_object('created', '2024-01-01T00:00:00.000000000Z'),
           'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User',
               jsonb_build_object('employeeNumber', g::text))
FROM generate_series(1, 1000000) AS g;
CREATE INDEX users_cmp ON users USING gin (cmp jsonb_path_ops);
CREATE INDEX users_cmp_user_name ON users (((cmp #>> '{userName}')) COLLATE "C");
ANALYZE users;
