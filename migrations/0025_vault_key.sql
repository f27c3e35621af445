-- The key that seals the secrets table (internal/secrets), by its fingerprint (an HMAC of a fixed
-- text under the key, never the key): a process that starts with another key refuses to start
-- (secrets.Vault.CheckKey) instead of answering 500 for every secret it reads, and a rotation
-- (CLOUDDB_SECRET_KEY_PREVIOUS) moves the row to the new key. One row.

-- +goose Up
CREATE TABLE IF NOT EXISTS vault_key (
    singleton   TINYINT     NOT NULL PRIMARY KEY,
    fingerprint CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    updated_at  DATETIME(6) NOT NULL,
    CONSTRAINT vault_key_one_row CHECK (singleton = 1)
) ENGINE = InnoDB;
