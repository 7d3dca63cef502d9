\echo Use "CREATE EXTENSION es_hook_test" to load this file. \quit

-- How many events this backend's hook has seen since the library was loaded
-- (vetoed ones included), and a description of the last one.
CREATE FUNCTION es_hook_test_count() RETURNS bigint
    LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'es_hook_test_count';
CREATE FUNCTION es_hook_test_last() RETURNS text
    LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'es_hook_test_last';
-- Forget what the hook has seen.
CREATE FUNCTION es_hook_test_reset() RETURNS void
    LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'es_hook_test_reset';
