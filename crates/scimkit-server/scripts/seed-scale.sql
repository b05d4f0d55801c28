-- 1,000,000 users, 10,000 groups, and one group ("Everyone", the first) whose members
-- are all 1,000,000 users, written straight into scimkit's PostgreSQL tables for
-- tenant 'default', in the form the store writes them (resource, comparison
-- document with folded text, unique userName claims, member rows). Run on a database
-- that scimkit-server has migrated; used by scripts/scale.sh.
\set ON_ERROR_STOP 1
BEGIN;
DELETE FROM scim_members WHERE tenant = 'default';
DELETE FROM scim_unique WHERE tenant = 'default';
DELETE FROM scim_resources WHERE tenant = 'default';
DROP INDEX IF EXISTS scim_resources_cmp;
INSERT INTO scim_resources (tenant, resource_type, id, id_key, version, member_count, next_position, resource, cmp)
SELECT 'default', 'User', id, id, 1, 0, 1,
    jsonb_build_object(
        'schemas', jsonb_build_array('urn:ietf:params:scim:schemas:core:2.0:User'),
        'id', id, 'userName', 'User' || n || '@Example.com', 'externalId', 'ext-' || n,
        'displayName', 'User ' || n, 'active', true,
        'name', jsonb_build_object('givenName', 'User', 'familyName', 'Number ' || n),
        'emails', jsonb_build_array(jsonb_build_object('value', 'User' || n || '@Example.com', 'type', 'work', 'primary', true)),
        'meta', jsonb_build_object('resourceType', 'User', 'created', '2026-01-01T00:00:00Z', 'lastModified', '2026-01-01T00:00:00Z')),
    jsonb_build_object(
        'schemas', jsonb_build_array('urn:ietf:params:scim:schemas:core:2.0:user'),
        'id', id, 'userName', 'user' || n || '@example.com', 'externalId', 'ext-' || n,
        'displayName', 'user ' || n, 'active', true,
        'name', jsonb_build_object('givenName', 'user', 'familyName', 'number ' || n),
        'emails', jsonb_build_array(jsonb_build_object('value', 'user' || n || '@example.com', 'type', 'work', 'primary', true)),
        'meta', jsonb_build_object('resourceType', 'User', 'created', '2026-01-01T00:00:00.000000000Z', 'lastModified', '2026-01-01T00:00:00.000000000Z'))
FROM (SELECT n, '00000000-0000-4000-8000-' || lpad(n::text, 12, '0') AS id
      FROM generate_series(1, 1000000) AS n) AS u;
INSERT INTO scim_unique (tenant, resource_type, attribute, value, id)
SELECT 'default', 'User', 'userName', 'user' || n || '@example.com',
       '00000000-0000-4000-8000-' || lpad(n::text, 12, '0')
FROM generate_series(1, 1000000) AS n;
INSERT INTO scim_resources (tenant, resource_type, id, id_key, version, member_count, next_position, resource, cmp)
SELECT 'default', 'Group', id, id, 1,
    CASE WHEN g = 1 THEN 1000000 ELSE 0 END, CASE WHEN g = 1 THEN 1000001 ELSE 1 END,
    jsonb_build_object(
        'schemas', jsonb_build_array('urn:ietf:params:scim:schemas:core:2.0:Group'),
        'id', id, 'displayName', CASE WHEN g = 1 THEN 'Everyone' ELSE 'Group ' || g END,
        'meta', jsonb_build_object('resourceType', 'Group', 'created', '2026-01-01T00:00:00Z', 'lastModified', '2026-01-01T00:00:00Z')),
    jsonb_build_object(
        'schemas', jsonb_build_array('urn:ietf:params:scim:schemas:core:2.0:group'),
        'id', id, 'displayName', CASE WHEN g = 1 THEN 'everyone' ELSE 'group ' || g END,
        'meta', jsonb_build_object('resourceType', 'Group', 'created', '2026-01-01T00:00:00.000000000Z', 'lastModified', '2026-01-01T00:00:00.000000000Z'))
FROM (SELECT g, '00000000-0000-4000-9000-' || lpad(g::text, 12, '0') AS id
      FROM generate_series(1, 10000) AS g) AS grp;
INSERT INTO scim_members (tenant, resource_type, group_id, value_key, value, position, member)
SELECT 'default', 'Group', '00000000-0000-4000-9000-000000000001', id, id, n, jsonb_build_object('value', id)
FROM (SELECT n, '00000000-0000-4000-8000-' || lpad(n::text, 12, '0') AS id
      FROM generate_series(1, 1000000) AS n) AS m;
CREATE INDEX scim_resources_cmp ON scim_resources
    USING gin ((cmp - '{id,userName,meta}'::text[]) jsonb_path_ops)
    WITH (fastupdate = on, gin_pending_list_limit = 512);
COMMIT;
VACUUM ANALYZE scim_resources;
VACUUM ANALYZE scim_unique;
VACUUM ANALYZE scim_members;
