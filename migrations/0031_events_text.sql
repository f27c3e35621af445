-- The log's payload and metadata become plain text: MariaDB's JSON type is LONGTEXT with a
-- CHECK (json_valid(...)) that parsed both documents of every event appended, about 9 µs of the
-- server's time per event (two events per query since issue 11; docs/PERFORMANCE.md). Only the
-- event store writes them, from encoding/json. On MySQL 8 this also stops JSON's binary form from
-- rewriting what the hash chain hashed (docs/ARCHITECTURE.md, "Tamper evidence").
--
-- The server copies the table once (a type change cannot be made in place); MODIFY of a column
-- already LONGTEXT changes nothing, so the file may run again.

-- +goose Up
ALTER TABLE events
    MODIFY payload  LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    MODIFY metadata LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
