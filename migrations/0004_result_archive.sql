-- The result archive of the plans with result_archiving (pro, enterprise): results of read
-- statements kept, and listed, until their owner deletes them, shared by every clouddb process
-- (the 15-minute result store is per process). Written by internal/resultarchive.
--
-- This is data, not a read model, like the secrets table: the rows of a result never enter the
-- event log, so nothing here can be rebuilt from it. It is not dropped or replayed by projection
-- rebuilds, and it must be backed up with the log.
--
-- result_archives: one row per archived result. statement_sql is the SQL as the query's
-- query.executed.v1 event recorded it (secrets redacted, at most 16 KiB); columns is the JSON of
-- the result's columns ([{name, type}]); bytes counts the stored row data. The owner key serves
-- the newest-first, cursor-paginated list of a user's archive in a tenant.
--
-- result_archive_chunks: the rows, in order, as JSON arrays separated by '\n', about 512 KiB per
-- chunk (a chunk holds at least one row), so that no statement comes near max_allowed_packet and a
-- page reads only the chunks it needs: first_row (the index of the chunk's first row, 0-based)
-- finds them through its unique key.
--
-- MySQL commits DDL implicitly: IF NOT EXISTS makes the file re-runnable.

-- +goose Up
CREATE TABLE IF NOT EXISTS result_archives (
    query_id      CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    tenant_id     CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_id       CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    database_id   CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    statement_sql TEXT        NOT NULL,
    columns       JSON        NOT NULL,
    row_count     BIGINT      NOT NULL,
    truncated     BOOL        NOT NULL,
    bytes         BIGINT      NOT NULL,
    archived_at   DATETIME(6) NOT NULL,
    KEY result_archives_owner (tenant_id, user_id, archived_at, query_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS result_archive_chunks (
    query_id  CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    chunk     INT      NOT NULL,
    first_row BIGINT   NOT NULL,
    row_count INT      NOT NULL,
    data      LONGBLOB NOT NULL,
    PRIMARY KEY (query_id, chunk),
    UNIQUE KEY result_archive_chunks_rows (query_id, first_row)
) ENGINE = InnoDB;
