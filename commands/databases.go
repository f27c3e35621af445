package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
	"github.com/clouddbmanager/clouddb/queryexec/sandbox"
	"github.com/clouddbmanager/clouddb/queryexec/sqlcheck"
)

// Databases handles tenant databases: creation within the quota, provisioning on RDS-B, and their
// lifecycle.
type Databases struct {
	usage      DatabaseUsage
	events     EventStore
	secrets    Secrets
	fleet      *sandbox.Fleet
	readModels ReadModels
	queue      WorkQueue // database_list and tenants: the reactors' queues, and the placement's counts
	now        func() time.Time
	log        *slog.Logger
	// accountsChanged hears of each database whose accounts a change locked, unlocked or gave a
	// new password (see OnAccountsChanged).
	accountsChanged func(domain.DatabaseID)
	written         struct { // databases to measure soon (MeasureSoon)
		sync.Mutex
		ids map[domain.DatabaseID]bool
	}
	reconciler *reconciler
	// wall makes the storage wall's rounds (housekeeping, the write sampler, a sub-quota change)
	// one at a time in a process, so that a round deciding on an older read cannot undo a newer
	// one's change.
	wall sync.Mutex
	// Instance names this process in the work leases it takes (the process lease's id when
	// serving; a fresh id otherwise).
	Instance string
}

// DatabaseUsage reads what a tenant's databases use from the read model (*projections.Views).
type DatabaseUsage interface {
	DatabaseUsage(ctx context.Context, tenant domain.TenantID) (databases, storageBytes int64, err error)
	// StorageByOwner sums the storage of a tenant's databases per owner.
	StorageByOwner(ctx context.Context, tenant domain.TenantID) (map[domain.UserID]int64, error)
}

// NewDatabases returns the database handlers.
func NewDatabases(events EventStore, secrets Secrets, fleet *sandbox.Fleet, readModels ReadModels, usage DatabaseUsage, queue WorkQueue, now func() time.Time, log *slog.Logger) *Databases {
	return &Databases{events: events, secrets: secrets, fleet: fleet, readModels: readModels, usage: usage, queue: queue, now: now, log: log,
		reconciler: newReconciler(), Instance: uuid.NewString()}
}

func rwSecret(id domain.DatabaseID) string { return "db:" + string(id) + ":rw" }
func roSecret(id domain.DatabaseID) string { return "db:" + string(id) + ":ro" }

func (h *Databases) load(ctx context.Context, id domain.DatabaseID) (*domain.Database, error) {
	return load(ctx, h.events, id.Stream(), domain.RebuildDatabase)
}

func (h *Databases) append(ctx context.Context, a eventstore.Append) error {
	res, err := h.events.Append(ctx, a)
	if err != nil {
		return err
	}
	return h.readModels.WaitFor(ctx, res.LastPosition, "databases", "member_quotas")
}

// CreateDatabase is POST /databases.
type CreateDatabase struct {
	Tenant                             domain.TenantID
	Owner                              domain.UserID
	Role                               domain.Role // the creator's role in Tenant: the schema template runs with it
	SuperAdmin                         bool
	Name, Charset, Collation, Template string
	SchemaSQL                          string // DDL of the "schema" template
	DryRun                             bool
	Meta                               eventstore.Metadata
}

// Usage is a count before and after a change, and its limit.
type Usage struct {
	Used  int64 `json:"used"`
	After int64 `json:"after"`
	Limit int64 `json:"limit"`
}

// Impact is what a creation would change, for ?dry_run=true.
type Impact struct {
	Databases     Usage  `json:"databases"`
	UserDatabases *Usage `json:"user_databases"` // nil without a sub-quota
	Server        string `json:"server"`
	Charset       string `json:"charset"`
	Collation     string `json:"collation"`
}

// CreateDatabase validates, places and records a new database, counting it against the tenant's
// quota (and the owner's sub-quota) in the same append, so concurrent creates cannot pass the
// limit. The provisioning reactor then creates it on its server. Returns domain.ErrInvalidName,
// a *domain.ValidationError, a *domain.QuotaExceededError, domain.ErrNameTaken, or
// domain.ErrUnavailable when no sandbox server answers. With DryRun, nothing is recorded and the
// impact is returned.
func (h *Databases) CreateDatabase(ctx context.Context, cmd CreateDatabase) (*domain.Database, Impact, error) {
	if err := domain.ValidateDatabaseName(cmd.Name); err != nil {
		return nil, Impact{}, err
	}
	template := cmd.Template
	if template == "" {
		template = domain.TemplateBlank
	}
	if template != domain.TemplateBlank && template != domain.TemplateSample && template != domain.TemplateSchema {
		return nil, Impact{}, domain.NewValidationError("template", "must be blank, sample or schema")
	}
	if (template == domain.TemplateSchema) != (strings.TrimSpace(cmd.SchemaSQL) != "") {
		return nil, Impact{}, domain.NewValidationError("schema_sql", "is required with the schema template, and only with it")
	}
	placed, err := h.placed(ctx)
	if err != nil {
		return nil, Impact{}, err
	}
	server, err := h.fleet.Place(ctx, placed)
	if err != nil {
		return nil, Impact{}, err
	}
	charset, collation, err := server.ValidateCharset(ctx, cmd.Charset, cmd.Collation)
	if err != nil {
		return nil, Impact{}, err
	}
	tenant, err := load(ctx, h.events, cmd.Tenant.Stream(), domain.RebuildTenant)
	if err != nil {
		return nil, Impact{}, err
	}
	limits := tenant.Limits()
	id := domain.DatabaseID(uuid.NewString())
	var schemaSQL []string
	if template == domain.TemplateSchema {
		who := sqlcheck.Principal{Role: cmd.Role, SuperAdmin: cmd.SuperAdmin}
		where := sqlcheck.Place{Schema: sandbox.SchemaName(server.Prefix(), string(id)), Settings: tenant.Settings(), Limits: limits}
		if schemaSQL, err = checkSchemaSQL(cmd.SchemaSQL, who, where); err != nil {
			return nil, Impact{}, err
		}
	}
	if _, stored, err := h.usage.DatabaseUsage(ctx, cmd.Tenant); err != nil {
		return nil, Impact{}, err
	} else if stored >= limits.MaxStorageBytes {
		return nil, Impact{}, &domain.QuotaExceededError{Resource: "storage", Used: stored, Limit: limits.MaxStorageBytes}
	}
	byOwner, err := h.usage.StorageByOwner(ctx, cmd.Tenant)
	if err != nil {
		return nil, Impact{}, err
	}
	var database *domain.Database
	var impact Impact
	err = retry(ctx, func() error {
		quota, err := load(ctx, h.events, cmd.Tenant.QuotaStream(), domain.RebuildQuota)
		if err != nil {
			return err
		}
		impact = Impact{Server: server.Name(), Charset: charset, Collation: collation,
			Databases: Usage{Used: quota.Databases(), After: quota.Databases() + 1, Limit: limits.MaxDatabases}}
		if limit, ok := quota.SubQuota(cmd.Owner); ok {
			used := quota.DatabasesOf(cmd.Owner)
			impact.UserDatabases = &Usage{Used: used, After: used + 1, Limit: limit}
		}
		// The owner's storage wall, as the tenant's above: at their sub-quota, no new database.
		if limit := quota.MemberQuota(cmd.Owner).MaxStorageBytes; limit != nil && byOwner[cmd.Owner] >= *limit {
			return &domain.QuotaExceededError{Resource: "user_storage", Used: byOwner[cmd.Owner], Limit: *limit}
		}
		if err := quota.ReserveDatabase(id, cmd.Owner, limits); err != nil {
			return err
		}
		if cmd.DryRun {
			holder, err := h.events.ClaimHolder(ctx, domain.DatabaseNameClaim(cmd.Tenant, cmd.Name))
			if err == nil && holder != "" {
				err = fmt.Errorf("database name %q: %w", cmd.Name, domain.ErrNameTaken)
			}
			return err
		}
		database = domain.RequestDatabase(domain.DatabaseRequested{
			DatabaseID: id, TenantID: cmd.Tenant, Name: cmd.Name, Charset: charset, Collation: collation,
			Template: template, SchemaSQL: schemaSQL, OwnerID: cmd.Owner, Server: server.Name(), At: h.now().UTC(),
		})
		err = h.append(ctx, eventstore.Append{
			Streams: []eventstore.Stream{
				stream(id.Stream(), "database", database),
				stream(cmd.Tenant.QuotaStream(), "quota", quota),
			},
			Claims:   []eventstore.Claim{{Key: domain.DatabaseNameClaim(cmd.Tenant, cmd.Name), StreamID: id.Stream()}},
			Metadata: cmd.Meta,
		})
		var taken *eventstore.ClaimTakenError
		if errors.As(err, &taken) {
			return fmt.Errorf("database name %q: %w", cmd.Name, domain.ErrNameTaken)
		}
		return err
	})
	return database, impact, err
}

// placed counts the databases on each server (all but purged ones: deleted ones keep their schema).
func (h *Databases) placed(ctx context.Context) (map[string]int, error) {
	rows, err := h.queue.QueryContext(ctx, `SELECT server, COUNT(*) FROM database_list WHERE state <> 'purged' GROUP BY server`)
	if err != nil {
		return nil, fmt.Errorf("count databases per server: %w", err)
	}
	defer rows.Close()
	placed := map[string]int{}
	for rows.Next() {
		var server string
		var n int
		if err := rows.Scan(&server, &n); err != nil {
			return nil, err
		}
		placed[server] = n
	}
	return placed, rows.Err()
}

// maxSchemaSQL bounds the DDL of the schema template.
const maxSchemaSQL = 64 << 10

// checkSchemaSQL splits the schema template's DDL and has sqlcheck.Decide, the one checker /query
// uses too, judge each statement as the creator (who) would run it on the new database (where):
// the classifier, the creator's role and the tenant's settings (procedures, functions, triggers
// and events only when the tenant allows them, however the statement is written; foreign keys and
// high-impact ALTERs likewise). Only CREATE and ALTER may build the schema. The error names the
// statement and why.
func checkSchemaSQL(ddl string, who sqlcheck.Principal, where sqlcheck.Place) ([]string, error) {
	if len(ddl) > maxSchemaSQL {
		return nil, domain.NewValidationError("schema_sql", fmt.Sprintf("must be at most %d bytes", maxSchemaSQL))
	}
	statements, err := sqlcheck.Split(ddl)
	if err != nil {
		return nil, domain.NewValidationError("schema_sql", err.Error())
	}
	for i, stmt := range statements {
		// The database is new and empty: nothing to confirm a drop of, no rows to measure.
		d := sqlcheck.Decide(sqlcheck.Question{SQL: stmt, Who: who, Where: where, Confirm: true})
		switch c := d.Class; {
		case d.Refusal != nil:
			return nil, domain.NewValidationError("schema_sql", fmt.Sprintf("statement %d: %v", i+1, d.Refusal))
		case c.Type != sqlcheck.TypeDDL || (c.Verb != "CREATE" && c.Verb != "ALTER"):
			return nil, domain.NewValidationError("schema_sql", fmt.Sprintf("statement %d: only CREATE and ALTER statements may build the schema, not %s", i+1, c.Verb))
		}
	}
	return statements, nil
}

// Connection is how to reach a database with a MySQL client: an account's address, and its
// password where one is shown (create, rotate, reveal).
type Connection struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Database string `json:"database"`
	Username string `json:"username"`
	Account  string `json:"account"` // domain.AccountReadWrite or domain.AccountReadOnly
	Password string `json:"password,omitempty"`
}

// OnAccountsChanged makes f hear of each database whose accounts a lifecycle change locked,
// unlocked or gave a new password: the query engine drops its sessions on them. Call it before
// serving.
func (h *Databases) OnAccountsChanged(f func(domain.DatabaseID)) { h.accountsChanged = f }

// AccountPassword is the current password of database id's read-write account, or of its
// read-only account when readOnly (a queryexec.Passwords).
func (h *Databases) AccountPassword(ctx context.Context, id domain.DatabaseID, readOnly bool) (string, error) {
	if readOnly {
		password, err := h.secrets.Get(ctx, roSecret(id))
		return string(password), err
	}
	d, err := h.load(ctx, id)
	if err != nil {
		return "", err
	}
	return h.readWritePassword(ctx, d)
}

// Connection returns the read-write connection details of a provisioned database, password
// included (only create, rotate and reveal show it, to who may see them: domain.MaySeeReadWrite).
// publicHost/publicPort override the server's own.
func (h *Databases) Connection(ctx context.Context, d *domain.Database, publicHost string, publicPort int) (Connection, error) {
	conn, err := h.Address(d.Requested().Server, d.ID(), domain.AccountReadWrite, publicHost, publicPort)
	if err != nil {
		return Connection{}, err
	}
	if conn.Password, err = h.readWritePassword(ctx, d); err != nil {
		return Connection{}, err
	}
	return conn, nil
}

// Address is where account (domain.AccountReadWrite or domain.AccountReadOnly) of database id,
// placed on server, is reached: host, port, schema and user, without a password. publicHost and
// publicPort override the server's own. Returns domain.ErrUnavailable for a server this process
// does not know.
func (h *Databases) Address(server string, id domain.DatabaseID, account, publicHost string, publicPort int) (Connection, error) {
	s, err := h.fleet.Get(server)
	if err != nil {
		return Connection{}, err
	}
	host, port := s.Host()
	if publicHost != "" {
		host = publicHost
	}
	if publicPort != 0 {
		port = publicPort
	}
	user, ro := sandbox.AccountNames(s.Prefix(), string(id))
	if account == domain.AccountReadOnly {
		user = ro
	}
	return Connection{Host: host, Port: port, Database: sandbox.SchemaName(s.Prefix(), string(id)), Username: user, Account: account}, nil
}

// RevealCredentials is GET /databases/{id}/connection?reveal=password: the read-write connection
// details with the password, for who may see them (domain.MaySeeReadWrite; role is the actor's
// effective role), else domain.ErrReadWriteHidden. The reveal is recorded
// (database.credentials_revealed.v1) before the password is read, so no one sees it unrecorded.
func (h *Databases) RevealCredentials(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID, actor domain.UserID, role domain.Role,
	publicHost string, publicPort int, meta eventstore.Metadata) (Connection, error) {
	var d *domain.Database
	err := retry(ctx, func() error {
		var err error
		if d, err = h.Database(ctx, tenant, id); err != nil {
			return err
		}
		if err := d.RevealCredentials(actor, role, h.now()); err != nil {
			return err
		}
		_, err = h.events.Append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(id.Stream(), "database", d)}, Metadata: meta})
		return err
	})
	if err != nil {
		return Connection{}, err
	}
	return h.Connection(ctx, d, publicHost, publicPort)
}

// Database loads a database of the tenant; another tenant's is domain.ErrNotFound.
func (h *Databases) Database(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID) (*domain.Database, error) {
	d, err := h.load(ctx, id)
	if err != nil {
		return nil, err
	}
	if d.TenantID() != tenant || d.State() == domain.StatePurged {
		return nil, fmt.Errorf("database %s: %w", id, domain.ErrNotFound)
	}
	return d, nil
}

// SetSubQuota is PUT /users/{id}/quota: a member's whole sub-quota (each nil limit: none). For
// each resource the sub-quotas of a tenant may not add up to more than its plan allows, decided on
// the quota's stream with the tenant's as a guard, so concurrent changes (or a plan change) make
// the loser decide again. The member's databases then follow at once: their storage wall
// (EnforceStorage) and their accounts' MAX_USER_CONNECTIONS (Converge). Returns domain.ErrNotFound
// for a user who is not a member, a *domain.ValidationError or a *domain.QuotaExceededError.
func (h *Databases) SetSubQuota(ctx context.Context, tenant domain.TenantID, user domain.UserID, m domain.MemberQuota, meta eventstore.Metadata) error {
	var owned []domain.DatabaseID
	err := retry(ctx, func() error {
		t, err := load(ctx, h.events, tenant.Stream(), domain.RebuildTenant)
		if err != nil {
			return err
		}
		if !t.IsMember(user) {
			return fmt.Errorf("user %s is not a member: %w", user, domain.ErrNotFound)
		}
		quota, err := load(ctx, h.events, tenant.QuotaStream(), domain.RebuildQuota)
		if err != nil {
			return err
		}
		if err := quota.SetSubQuota(user, m, t.Limits()); err != nil {
			return err
		}
		owned = quota.OwnedBy(user)
		return h.append(ctx, eventstore.Append{Streams: []eventstore.Stream{stream(tenant.QuotaStream(), "quota", quota),
			stream(tenant.Stream(), "tenant", t)}, Metadata: meta})
	})
	if err != nil {
		return err
	}
	if _, err := h.enforceStorage(ctx, owned); err != nil {
		h.log.Warn("sub-quota set, but its storage wall waits for the next round", "tenant_id", tenant, "user_id", user, "err", err)
	}
	h.convergeAll(ctx, owned)
	return nil
}

// Quota loads a tenant's quota accounting: databases per owner and sub-quotas.
func (h *Databases) Quota(ctx context.Context, tenant domain.TenantID) (*domain.Quota, error) {
	return load(ctx, h.events, tenant.QuotaStream(), domain.RebuildQuota)
}
