-- The lock that lets one rebuild of a projector run at a time across clouddb processes
-- (projections/rebuild.go): a rebuild holds its projector's row FOR UPDATE in a transaction of its
-- own until it ends; a second one finds the row locked (SKIP LOCKED) and is refused. A process that
-- dies drops its connection, and with it the lock.
--
-- A row lock rather than GET_LOCK: named locks are server-wide and need no privilege, so on the
-- default deployment, where tenant sandboxes live on the management server, any tenant account
-- could take a platform lock's name over a direct connection and block the rebuild. A row of a
-- table only the platform's account can reach cannot be taken by a tenant.
--
-- This is operational data, not a read model: rows are inserted on a projector's first rebuild and
-- never change; rebuilds leave the table alone.

-- +goose Up
CREATE TABLE IF NOT EXISTS projection_rebuild_locks (
    name VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY
) ENGINE = InnoDB;
