-- The clouddb processes alive now (internal/leases): each serving process holds one row under its
-- instance id and moves expires_at forward while it runs; a clean shutdown deletes it. A row past
-- its expires_at is a process that died (kill -9, a lost machine).
--
-- What this tells:
-- * the query-outcome reconciler (commands/reactor_query_outcomes.go) resolves a statement whose
--   intent names a process without a live lease, and whose outcome was never recorded, as unknown;
-- * an Idempotency-Key whose request is still running (idempotency_keys.owner) belongs to a live
--   process; once that process's lease has expired the key is released for a retry;
-- * how many processes share an account's MAX_USER_CONNECTIONS (queryexec pools).
--
-- Operational data, not a read model: nothing here enters or comes from the event log.

-- +goose Up
CREATE TABLE IF NOT EXISTS process_leases (
    instance_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    host        VARCHAR(255) NOT NULL,
    started_at  DATETIME(6)  NOT NULL,
    expires_at  DATETIME(6)  NOT NULL,
    KEY process_leases_expires (expires_at)
) ENGINE = InnoDB;
