package domain

import (
	"fmt"
	"regexp"
	"time"
)

// DatabaseState is where a tenant database stands.
type DatabaseState string

// The states of a database.
const (
	StateProvisioning DatabaseState = "provisioning"
	StateRunning      DatabaseState = "running"
	StateStopped      DatabaseState = "stopped"
	StateDeleted      DatabaseState = "deleted"
	StateFailed       DatabaseState = "failed"
	StatePurged       DatabaseState = "purged" // gone for good; never shown
)

// RecoveryWindow is how long a deleted database can be restored.
const RecoveryWindow = 30 * 24 * time.Hour

// Templates a database can start from.
const (
	TemplateBlank  = "blank"
	TemplateSample = "sample"
	TemplateSchema = "schema" // the creator's own DDL (schema_sql)
)

var databaseName = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// ValidateDatabaseName checks a database name: 1 to 64 ASCII letters, digits and underscores.
// Returns ErrInvalidName.
func ValidateDatabaseName(name string) error {
	if !databaseName.MatchString(name) {
		return fmt.Errorf("database name %q: use 1 to 64 letters, digits and underscores: %w", name, ErrInvalidName)
	}
	return nil
}

// Database events, in the database's stream.
type (
	DatabaseRequested struct {
		DatabaseID DatabaseID `json:"database_id"`
		TenantID   TenantID   `json:"tenant_id"`
		Name       string     `json:"name"`
		Charset    string     `json:"charset"`
		Collation  string     `json:"collation"`
		Template   string     `json:"template"`
		SchemaSQL  []string   `json:"schema_sql,omitempty"` // the statements of the "schema" template
		OwnerID    UserID     `json:"owner_id"`
		Server     string     `json:"server"` // the sandbox server it is placed on
		At         time.Time  `json:"at"`
	}
	DatabaseProvisioned struct {
		At time.Time `json:"at"`
	}
	DatabaseProvisioningFailed struct {
		Reason string    `json:"reason"`
		At     time.Time `json:"at"`
	}
	DatabaseStopped struct {
		Reason string    `json:"reason"` // "manual", "idle"
		At     time.Time `json:"at"`
	}
	DatabaseStarted struct {
		At time.Time `json:"at"`
	}
	DatabaseDeleted struct {
		At               time.Time `json:"at"`
		RecoverableUntil time.Time `json:"recoverable_until"`
	}
	DatabaseRestored struct {
		At time.Time `json:"at"`
	}
	DatabasePurged struct {
		At time.Time `json:"at"`
	}
	DatabaseOwnerChanged struct {
		From UserID `json:"from"`
		To   UserID `json:"to"`
	}
	// DatabaseCredentialsRotated: the read-write account's password must change, for Reason
	// (CredentialsManual, or someone who could see it lost the right: ReadWriteAccessLost). The
	// reconciler gives the account a new password once it is recorded.
	DatabaseCredentialsRotated struct {
		At     time.Time `json:"at"`
		Reason string    `json:"reason,omitempty"` // absent: manual
	}
	// DatabaseStorageMeasured: the sampler found the schema's data and index size changed.
	DatabaseStorageMeasured struct {
		Bytes int64     `json:"bytes"`
		At    time.Time `json:"at"`
	}
	// DatabaseWritesRestricted: the read-write account lost the privileges that make data grow
	// (it keeps reading and freeing space), because the tenant used limit bytes of storage or more.
	DatabaseWritesRestricted struct {
		Reason string    `json:"reason"` // WritesRestrictedStorage, WritesRestrictedMemberStorage
		Used   int64     `json:"used"`   // the tenant's (or the owner's) storage, bytes
		Limit  int64     `json:"limit"`  // the plan's storage (or the owner's sub-quota), bytes
		At     time.Time `json:"at"`
	}
	// DatabaseWritesRestored: the read-write account has its full privileges again.
	DatabaseWritesRestored struct {
		At time.Time `json:"at"`
	}
	// DatabaseCredentialsRevealed: a member read the password of one of the database's accounts
	// (GET /databases/{id}/connection?reveal=password); who, from where, is in the metadata.
	// It changes nothing: it is the record of who may know the password.
	DatabaseCredentialsRevealed struct {
		Account string    `json:"account"` // AccountReadWrite
		At      time.Time `json:"at"`
	}
)

// Reasons of writes restricted: the tenant's storage reached its plan's limit, or the owner's
// storage reached their sub-quota (MemberQuota.MaxStorageBytes).
const (
	WritesRestrictedStorage       = "storage_quota"
	WritesRestrictedMemberStorage = "member_storage_quota"
)

func (DatabaseRequested) EventType() string          { return "database.requested.v1" }
func (DatabaseProvisioned) EventType() string        { return "database.provisioned.v1" }
func (DatabaseProvisioningFailed) EventType() string { return "database.provisioning_failed.v1" }
func (DatabaseStopped) EventType() string            { return "database.stopped.v1" }
func (DatabaseStarted) EventType() string            { return "database.started.v1" }
func (DatabaseDeleted) EventType() string            { return "database.deleted.v1" }
func (DatabaseRestored) EventType() string           { return "database.restored.v1" }
func (DatabasePurged) EventType() string             { return "database.purged.v1" }
func (DatabaseOwnerChanged) EventType() string       { return "database.owner_changed.v1" }
func (DatabaseCredentialsRotated) EventType() string { return "database.credentials_rotated.v1" }
func (DatabaseStorageMeasured) EventType() string    { return "database.storage_measured.v1" }

func (DatabaseWritesRestricted) EventType() string { return "database.writes_restricted.v1" }
func (DatabaseWritesRestored) EventType() string   { return "database.writes_restored.v1" }
func (DatabaseCredentialsRevealed) EventType() string {
	return "database.credentials_revealed.v1"
}

// Wall is the quota the restriction stands for, as the error a refused write reports: the tenant's
// "storage", or the owner's "user_storage" sub-quota.
func (e DatabaseWritesRestricted) Wall() *QuotaExceededError {
	resource := "storage"
	if e.Reason == WritesRestrictedMemberStorage {
		resource = "user_storage"
	}
	return &QuotaExceededError{Resource: resource, Used: e.Used, Limit: e.Limit}
}

// Database is a tenant database on a sandbox server.
type Database struct {
	aggregate
	requested        DatabaseRequested
	state            DatabaseState
	owner            UserID
	beforeDelete     DatabaseState
	recoverableUntil time.Time
	storageBytes     int64
	writeWall        *QuotaExceededError // why writes are restricted; nil: they are not
	credentials      int64               // rotations recorded: the version the read-write password must have
}

// RequestDatabase records a new database; the caller has validated the name, charset and
// collation, placed it on a server and reserved the quota.
func RequestDatabase(r DatabaseRequested) *Database {
	d := &Database{}
	d.record(d, r)
	return d
}

// RebuildDatabase replays a database's history. Returns ErrNotFound for an empty history.
func RebuildDatabase(history []Event, version int64) (*Database, error) {
	if len(history) == 0 {
		return nil, fmt.Errorf("database: %w", ErrNotFound)
	}
	d := &Database{}
	d.replay(d, history, version)
	return d, nil
}

func (d *Database) apply(e Event) {
	switch e := e.(type) {
	case DatabaseRequested:
		d.requested, d.state, d.owner = e, StateProvisioning, e.OwnerID
	case DatabaseProvisioned:
		d.state = StateRunning
	case DatabaseProvisioningFailed:
		d.state = StateFailed
	case DatabaseStopped:
		d.state = StateStopped
	case DatabaseStarted:
		d.state = StateRunning
	case DatabaseDeleted:
		d.beforeDelete, d.state, d.recoverableUntil = d.state, StateDeleted, e.RecoverableUntil
	case DatabaseRestored:
		d.state = d.beforeDelete
	case DatabasePurged:
		d.state = StatePurged
	case DatabaseOwnerChanged:
		d.owner = e.To
	case DatabaseStorageMeasured:
		d.storageBytes = e.Bytes
	case DatabaseWritesRestricted:
		d.writeWall = e.Wall()
	case DatabaseWritesRestored:
		d.writeWall = nil
	case DatabaseCredentialsRotated:
		d.credentials++
	}
}

// MeasureStorage records a new size of the schema; the same size records nothing.
func (d *Database) MeasureStorage(bytes int64, now time.Time) {
	if bytes != d.storageBytes && d.state != StatePurged {
		d.record(d, DatabaseStorageMeasured{Bytes: bytes, At: now})
	}
}

// RestrictWrites records that the read-write account lost the privileges that make data grow,
// because the tenant uses used bytes of storage of a limit. It records nothing when the writes are
// restricted already, or when the database is not running or stopped (a database being
// provisioned has its restriction decided once it runs; a deleted one has its accounts locked).
func (d *Database) RestrictWrites(used, limit int64, now time.Time) {
	d.restrictWrites(WritesRestrictedStorage, used, limit, now)
}

// RestrictMemberWrites is RestrictWrites because the database's owner uses used bytes of their
// storage sub-quota of limit.
func (d *Database) RestrictMemberWrites(used, limit int64, now time.Time) {
	d.restrictWrites(WritesRestrictedMemberStorage, used, limit, now)
}

func (d *Database) restrictWrites(reason string, used, limit int64, now time.Time) {
	if d.writeWall == nil && (d.state == StateRunning || d.state == StateStopped) {
		d.record(d, DatabaseWritesRestricted{Reason: reason, Used: used, Limit: limit, At: now})
	}
}

// RestoreWrites records that the read-write account has its full privileges again. It records
// nothing when the writes are not restricted, or when the database is not running or stopped (a
// deleted one keeps its restriction, to be decided again if it is restored).
func (d *Database) RestoreWrites(now time.Time) {
	if d.writeWall != nil && (d.state == StateRunning || d.state == StateStopped) {
		d.record(d, DatabaseWritesRestored{At: now})
	}
}

func (d *Database) ID() DatabaseID               { return d.requested.DatabaseID }
func (d *Database) TenantID() TenantID           { return d.requested.TenantID }
func (d *Database) Name() string                 { return d.requested.Name }
func (d *Database) Requested() DatabaseRequested { return d.requested }
func (d *Database) State() DatabaseState         { return d.state }
func (d *Database) Owner() UserID                { return d.owner }
func (d *Database) RecoverableUntil() time.Time  { return d.recoverableUntil }

// OnServer reports whether the log says the database's schema and accounts exist on its server:
// once provisioned (running, stopped, or deleted but recoverable), not when its provisioning
// failed or it was purged. A database being provisioned is its provisioning's business.
func (d *Database) OnServer() bool {
	switch d.state {
	case StateRunning, StateStopped:
		return true
	case StateDeleted:
		return d.beforeDelete != StateFailed
	}
	return false
}

// CredentialsVersion is how many rotations of the read-write password the log holds: a password
// made before the last of them is no longer the database's.
func (d *Database) CredentialsVersion() int64 { return d.credentials }

// WritesRestricted reports whether the read-write account is narrowed to reading and freeing space.
func (d *Database) WritesRestricted() bool { return d.writeWall != nil }

// WriteWall is the quota that restricts the writes (the tenant's storage, or the owner's storage
// sub-quota, with the use when the restriction was recorded); nil when writes are not restricted.
func (d *Database) WriteWall() *QuotaExceededError {
	if d.writeWall == nil {
		return nil
	}
	w := *d.writeWall
	return &w
}

// conflict is the error of a transition that does not apply in the current state.
func (d *Database) conflict(action string) error {
	return fmt.Errorf("cannot %s database %s while it is %s: %w", action, d.ID(), d.state, ErrConflict)
}

// Provisioned records that its schema and accounts exist; recording it twice records nothing.
func (d *Database) Provisioned(now time.Time) error {
	switch d.state {
	case StateRunning:
		return nil
	case StateProvisioning:
		d.record(d, DatabaseProvisioned{At: now})
		return nil
	}
	return d.conflict("finish provisioning")
}

// ProvisioningFailed records why provisioning gave up.
func (d *Database) ProvisioningFailed(reason string, now time.Time) error {
	if d.state != StateProvisioning {
		return d.conflict("fail provisioning")
	}
	d.record(d, DatabaseProvisioningFailed{Reason: reason, At: now})
	return nil
}

// Stop stops a running database ("manual" or "idle"); stopping a stopped one records nothing.
func (d *Database) Stop(reason string, now time.Time) error {
	switch d.state {
	case StateStopped:
		return nil
	case StateRunning:
		d.record(d, DatabaseStopped{Reason: reason, At: now})
		return nil
	}
	return d.conflict("stop")
}

// Start starts a stopped database; starting a running one records nothing.
func (d *Database) Start(now time.Time) error {
	switch d.state {
	case StateRunning:
		return nil
	case StateStopped:
		d.record(d, DatabaseStarted{At: now})
		return nil
	}
	return d.conflict("start")
}

// Delete soft-deletes the database, recoverable for window (RecoveryWindow in production).
// confirmName must be its name.
func (d *Database) Delete(confirmName string, window time.Duration, now time.Time) error {
	if confirmName != d.Name() {
		return NewValidationError("confirm_name", "must be the database's name")
	}
	if d.state != StateRunning && d.state != StateStopped && d.state != StateFailed {
		return d.conflict("delete")
	}
	d.record(d, DatabaseDeleted{At: now, RecoverableUntil: now.Add(window)})
	return nil
}

// Restore brings a deleted database back within its recovery window. Returns ErrExpired after
// the window.
func (d *Database) Restore(now time.Time) error {
	if d.state != StateDeleted {
		return d.conflict("restore")
	}
	if !now.Before(d.recoverableUntil) {
		return fmt.Errorf("database %s was deleted more than %v ago: %w", d.ID(), RecoveryWindow, ErrExpired)
	}
	d.record(d, DatabaseRestored{At: now})
	return nil
}

// Purge records that a deleted database's schema and accounts are gone, once its window passed.
func (d *Database) Purge(now time.Time) error {
	if d.state != StateDeleted || now.Before(d.recoverableUntil) {
		return d.conflict("purge")
	}
	d.record(d, DatabasePurged{At: now})
	return nil
}

// ChangeOwner gives the database to another member.
func (d *Database) ChangeOwner(to UserID) error {
	if d.state == StateDeleted || d.state == StatePurged {
		return d.conflict("change the owner of")
	}
	if to != d.owner {
		d.record(d, DatabaseOwnerChanged{From: d.owner, To: to})
	}
	return nil
}

// RevealCredentials records that by, in role, reads the read-write account's password. Only who
// may see it (MaySeeReadWrite) may: else ErrForbidden. A database must be running or stopped: in
// another state it has no account to connect to (ErrConflict).
func (d *Database) RevealCredentials(by UserID, role Role, now time.Time) error {
	if !MaySeeReadWrite(role, d.owner == by) {
		return ErrReadWriteHidden
	}
	if d.state != StateRunning && d.state != StateStopped {
		return d.conflict("reveal the password of")
	}
	d.record(d, DatabaseCredentialsRevealed{Account: AccountReadWrite, At: now})
	return nil
}

// RotateCredentials records that the read-write account needs a new password, for reason
// (CredentialsManual, CredentialsOwnerChanged, CredentialsRoleChanged).
func (d *Database) RotateCredentials(reason string, now time.Time) error {
	if d.state != StateRunning && d.state != StateStopped {
		return d.conflict("rotate the credentials of")
	}
	if reason == CredentialsManual {
		reason = "" // as recorded before reasons were
	}
	d.record(d, DatabaseCredentialsRotated{At: now, Reason: reason})
	return nil
}
