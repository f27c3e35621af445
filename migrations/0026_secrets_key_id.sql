-- Which key sealed each secret (the first 16 hex digits of its fingerprint, see 0025), so that a
-- rotation opens each with the key that sealed it and re-seals, in the background, those the new
-- key did not seal (the index finds them). '': sealed before this column, by the key 0025 records
-- at the first start that has it (secrets.Vault.CheckKey tries it).
--
-- One statement in its own file: MySQL has no ADD COLUMN IF NOT EXISTS, and goose records the
-- version right after it.

-- +goose Up
ALTER TABLE secrets
    ADD COLUMN key_id CHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
    ADD INDEX secrets_key_id (key_id);
