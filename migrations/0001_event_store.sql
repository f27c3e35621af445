-- The event log, which is also the watermill-sql topic "events" (see eventstore/watermill.go).
-- Positions are assigned by the store under the event_sequence row lock: gapless and visible in
-- order, so a reader never has to wonder whether a lower position is still in flight.
-- Stream ids and claim keys are VARBINARY: compared byte for byte, where a PAD SPACE collation
-- would take "a " and "a" for the same stream.

-- +goose Up
CREATE TABLE IF NOT EXISTS events (
    position       BIGINT       NOT NULL PRIMARY KEY,
    event_id       CHAR(36)     NOT NULL,
    stream_id      VARBINARY(255) NOT NULL,
    stream_type    VARCHAR(64)  NOT NULL,
    stream_version BIGINT       NOT NULL,
    event_type     VARCHAR(128) NOT NULL,
    payload        JSON         NOT NULL,
    metadata       JSON         NOT NULL,
    recorded_at    DATETIME(6)  NOT NULL,
    UNIQUE KEY events_stream_version (stream_id, stream_version),
    UNIQUE KEY events_event_id (event_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS event_sequence (
    id            TINYINT NOT NULL PRIMARY KEY,
    last_position BIGINT  NOT NULL
) ENGINE = InnoDB;

INSERT IGNORE INTO event_sequence (id, last_position) VALUES (1, 0);

-- Uniqueness that spans aggregates (an email, a database name in a tenant), written in the same
-- transaction as the events that take or free it.
CREATE TABLE IF NOT EXISTS claims (
    claim_key  VARBINARY(255) NOT NULL PRIMARY KEY,
    stream_id  VARBINARY(255) NOT NULL,
    claimed_at DATETIME(6)  NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
