-- When each session was last used, for idle timeouts. Operational state, like a rate limiter's
-- counters: not derived from events, so not a read model, and never rebuilt.

-- +goose Up
CREATE TABLE IF NOT EXISTS session_activity (
    session_id   CHAR(36) CHARACTER SET ascii NOT NULL PRIMARY KEY,
    last_seen_at DATETIME(6) NOT NULL
) ENGINE = InnoDB;
