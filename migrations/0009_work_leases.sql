-- Reactor work taken by one worker at a time (commands/work_leases.go): the provisioning of a
-- tenant's next database (lease_key `provision:<tenant id>`, so a tenant has one provisioning at a
-- time across every process) and the delivery of a mail (`mail:<mail id>`). A lease is a row, not
-- a row lock held in an open transaction: the work itself (a tenant's schema template on RDS-B, an
-- SMTP conversation) runs with no transaction open on RDS-A. The holder renews expires_at while it
-- works and deletes the row when it is done; a row past expires_at belongs to a worker that died,
-- and the next one to want the work deletes it and takes the work over.
--
-- Operational data, not a read model: nothing here enters or comes from the event log.

-- +goose Up
CREATE TABLE IF NOT EXISTS work_leases (
    lease_key  VARCHAR(100) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    item       VARCHAR(100) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    owner      CHAR(36)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    token      CHAR(36)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    taken_at   DATETIME(6)  NOT NULL,
    expires_at DATETIME(6)  NOT NULL
) ENGINE = InnoDB;
