-- The process whose request holds a running Idempotency-Key (its process_leases instance id): a
-- key whose owner's lease has expired belongs to a request that died with its process, and the
-- next request with that key takes it over instead of answering "still running" until the key
-- expires. NULL: a row from before this column, or a completed key.
--
-- One statement in its own file: MySQL has no ADD COLUMN IF NOT EXISTS, and goose records the
-- version right after it.

-- +goose Up
ALTER TABLE idempotency_keys ADD COLUMN owner CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL;
