-- Secrets that must never enter the event log (database account passwords, ...), sealed with
-- AES-256-GCM by internal/secrets. Events refer to a secret by its id; deleting the row erases
-- the secret for good without rewriting the log (crypto-shredding). The id is the GCM additional
-- data, so a ciphertext copied under another id does not open.
-- id is VARBINARY: compared byte for byte, like the stream ids of 0001.
-- ciphertext is 12-byte nonce || sealed data || 16-byte tag; BLOB holds up to 65,535 bytes.

-- +goose Up
CREATE TABLE IF NOT EXISTS secrets (
    id         VARBINARY(255) NOT NULL PRIMARY KEY,
    ciphertext BLOB           NOT NULL,
    created_at DATETIME(6)    NOT NULL,
    updated_at DATETIME(6)    NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
