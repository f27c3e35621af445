-- Signed heads of the event log's hash chains (eventstore/heads.go): the server's Ed25519 key says
-- that chain chain_id had the hash `hash` at chain_seq when it signed, at signed_at. Everything up
-- to a signed head is then bound to the signature: an auditor who trusts the public key (GET
-- /api/v1/audit/public-key) needs nothing else of ours to verify it. public_key is kept with each
-- signature so that heads signed before a change of key still verify. Data, not a read model: it
-- cannot be rebuilt from the log.

-- +goose Up
CREATE TABLE IF NOT EXISTS chain_signatures (
    chain_id   VARBINARY(64) NOT NULL,
    chain_seq  BIGINT        NOT NULL,
    hash       BINARY(32)    NOT NULL,
    signed_at  DATETIME(6)   NOT NULL,
    key_id     VARCHAR(32)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    public_key VARBINARY(32) NOT NULL,
    signature  VARBINARY(64) NOT NULL,
    PRIMARY KEY (chain_id, chain_seq)
) ENGINE = InnoDB;
