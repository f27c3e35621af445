-- The hourly prune of session_activity (internal/activity) deletes the rows last seen before a
-- cutoff, a batch at a time: without an index on last_seen_at each batch scans the whole table,
-- every row of every session, while sessions record their activity into it.
--
-- One statement in its own file: MySQL has no ADD INDEX IF NOT EXISTS, and goose records the
-- version right after it.

-- +goose Up
ALTER TABLE session_activity ADD INDEX session_activity_last_seen (last_seen_at);
