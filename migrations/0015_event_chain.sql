-- Each event's link in its chain (eventstore/chain.go, docs/ARCHITECTURE.md "Tamper evidence"):
-- chain_id is its tenant's id or "platform", chain_seq its 1-based place in that chain, hash the
-- SHA-256 of its canonical bytes, which include the hash of the chain's previous event (not stored
-- twice: it is the hash of chain_seq - 1). NULL in events recorded before this migration until
-- migration 16 (eventstore.ChainBackfill) chains them. events_chain reads a chain in order, and
-- finds its head.
--
-- One statement in its own file: MySQL has no ADD COLUMN IF NOT EXISTS, and goose records the
-- version right after it.

-- +goose Up
ALTER TABLE events
    ADD COLUMN chain_id  VARBINARY(64) NULL,
    ADD COLUMN chain_seq BIGINT        NULL,
    ADD COLUMN hash      BINARY(32)    NULL,
    ADD UNIQUE KEY events_chain (chain_id, chain_seq);
