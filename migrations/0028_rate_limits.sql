-- Rate limits shared by every clouddb process (internal/ratelimit.Buckets): the limits of the
-- identity endpoints — logins, registrations, password resets, mails, per client IP and per
-- account — hold for the whole deployment however a load balancer spreads the requests. One row
-- per bucket in use: the bucket is a generic cell rate algorithm's "theoretical arrival time",
-- so taking a token is one conditional UPDATE, atomic without a transaction. A bucket whose time
-- has passed is full and is deleted (a missing row is a full bucket).
--
-- Operational data, not a read model: nothing here enters or comes from the event log; emptying
-- the table only refills every bucket.

-- +goose Up
CREATE TABLE IF NOT EXISTS rate_limits (
    -- SHA-256 of the limit's name and the key: no address or IP is kept in clear
    bucket BINARY(32) NOT NULL PRIMARY KEY,
    -- when the bucket is full again, in microseconds since 1970 (UTC); past it, the row may go
    tat_us BIGINT NOT NULL,
    KEY rate_limits_tat (tat_us)
) ENGINE = InnoDB;
