-- Idempotency keys of the API (internal/idempotency): the first response to each
-- (principal, Idempotency-Key) of an authenticated POST, kept 24 h so that a retry with the same
-- key and request gets that response again instead of doing the work twice. Shared by every
-- clouddb process.
--
-- This is data, not a read model, like the secrets table and the result archive: nothing here
-- comes from the event log, nothing rebuilds it, projection rebuilds leave it alone. Rows are
-- operational and short-lived (the housekeeping loop deletes those older than 24 h), so losing
-- them only lets a retry inside the window run its request again.
--
-- principal: the user id, or "key:<api key id>" when an API key authenticated the request.
-- idem_key: the header's value, compared byte for byte.
-- method, path (with the query string), body_sha256: what the key was first used for; the same
-- key with another request is refused.
-- status: NULL while the first request runs (a placeholder that makes concurrent retries wait),
-- then the response's status. content_type, location: those headers of the response.
-- body: the response body sealed with AES-256-GCM under CLOUDDB_SECRET_KEY (responses carry
-- database passwords and API keys); NULL once completed means the body was over 1 MiB and was
-- not kept.
--
-- MySQL commits DDL implicitly: IF NOT EXISTS makes the file re-runnable.

-- +goose Up
CREATE TABLE IF NOT EXISTS idempotency_keys (
    principal    VARCHAR(80) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    idem_key     VARBINARY(255)  NOT NULL,
    method       VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    path         VARCHAR(500) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    body_sha256  BINARY(32)      NOT NULL,
    status       SMALLINT        NULL,
    content_type VARBINARY(255)  NULL,
    location     VARBINARY(2048) NULL,
    body         LONGBLOB        NULL,
    created_at   DATETIME(6)     NOT NULL,
    PRIMARY KEY (principal, idem_key),
    KEY idempotency_keys_created (created_at)
) ENGINE = InnoDB;
