package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/projections"
)

// provisioningWait is how long POST /databases waits for provisioning before answering 202.
const provisioningWait = 5 * time.Second

// DatabaseRoutes is what the HTTP handlers of tenant databases need.
type DatabaseRoutes struct {
	Commands   *commands.Databases
	PublicHost string // CLOUDDB_SANDBOX_PUBLIC_HOST: overrides the host connection details show
	PublicPort int
	// RecoveryWindow is how long a deleted database can be restored (CLOUDDB_RECOVERY_WINDOW).
	RecoveryWindow time.Duration
}

// MountDatabases adds the routes of tenant databases.
func (s *Server) MountDatabases(d DatabaseRoutes) {
	s.databases = d
	s.mount([]route{
		{"POST", "/databases", developer, s.handleCreateDatabase},
		{"GET", "/databases", member, s.handleListDatabases},
		{"GET", "/databases/{id}", member, s.handleGetDatabase},
		{"POST", "/databases/{id}/start", developer, s.handleStartDatabase},
		{"POST", "/databases/{id}/stop", developer, s.handleStopDatabase},
		{"DELETE", "/databases/{id}", developer, s.handleDeleteDatabase},
		{"POST", "/databases/{id}/restore", developer, s.handleRestoreDatabase},
		{"POST", "/databases/{id}/credentials/rotate", developer, s.handleRotateCredentials},
		{"PUT", "/databases/{id}/owner", tenantAdmin | confirmed, s.handleChangeDatabaseOwner},
		{"GET", "/databases/{id}/schema", member, s.handleDatabaseSchema},
		{"GET", "/databases/{id}/connection", member, s.handleDatabaseConnection},
	})
}

// databaseDocument is the database object of API.md.
func databaseDocument(d projections.DatabaseView) map[string]any {
	doc := map[string]any{
		"id": d.ID, "name": d.Name, "state": d.State, "charset": d.Charset, "collation": d.Collation,
		"template": d.Template, "owner_id": d.OwnerID,
		"created_at": d.CreatedAt.UTC().Format(time.RFC3339), "updated_at": d.UpdatedAt.UTC().Format(time.RFC3339),
		"last_used_at": d.LastUsedAt, "storage_bytes": d.StorageBytes, "writes_restricted": d.WritesRestricted(),
	}
	if d.RecoverableUntil != nil {
		doc["recoverable_until"] = d.RecoverableUntil.UTC().Format(time.RFC3339)
	}
	if d.FailureReason != "" {
		doc["failure_reason"] = d.FailureReason
	}
	return doc
}

func (s *Server) handleCreateDatabase(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name      string `json:"name"`
		Charset   string `json:"charset"`
		Collation string `json:"collation"`
		Template  string `json:"template"`
		SchemaSQL string `json:"schema_sql"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	dryRun, err := dryRunParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p := principalFrom(r.Context())
	created, impact, err := s.databases.Commands.CreateDatabase(r.Context(), commands.CreateDatabase{
		Tenant: p.TenantID, Owner: p.UserID, Role: p.Role, SuperAdmin: p.SuperAdmin, Name: req.Name, Charset: req.Charset, Collation: req.Collation,
		Template: req.Template, SchemaSQL: req.SchemaSQL, DryRun: dryRun, Meta: metadata(r.Context(), r)})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if dryRun {
		writeJSON(w, http.StatusOK, map[string]any{"impact": impact})
		return
	}
	view, err := s.awaitProvisioning(r.Context(), p.TenantID, created.ID())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	doc := databaseDocument(view)
	if view.State != domain.StateRunning {
		// Still provisioning (202), or failed: the database exists, in that state, with its reason.
		status := http.StatusAccepted
		if view.State == domain.StateFailed {
			status = http.StatusCreated
		}
		writeJSON(w, status, doc)
		return
	}
	conn, err := s.databases.Commands.Connection(r.Context(), created, s.databases.PublicHost, s.databases.PublicPort)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	doc["connection"] = conn
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", "/api/v1/databases/"+string(created.ID()))
	writeJSON(w, http.StatusCreated, doc)
}

// awaitProvisioning waits, up to provisioningWait, until the read model shows the database past
// provisioning, and returns what it shows then.
func (s *Server) awaitProvisioning(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID) (projections.DatabaseView, error) {
	deadline := time.NewTimer(provisioningWait)
	defer deadline.Stop()
	for {
		advanced := s.identity.Projections.Advanced("databases")
		view, err := s.identity.Views.Database(ctx, tenant, id)
		if err != nil || view.State != domain.StateProvisioning {
			return view, err
		}
		select {
		case <-advanced:
		case <-deadline.C:
			return view, nil
		case <-ctx.Done():
			return view, ctx.Err()
		}
	}
}

func (s *Server) handleListDatabases(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := domain.DatabaseState(q.Get("state"))
	switch state {
	case "", domain.StateProvisioning, domain.StateRunning, domain.StateStopped, domain.StateDeleted, domain.StateFailed:
	default:
		s.writeError(w, r, domain.NewValidationError("state", "must be provisioning, running, stopped, deleted or failed"))
		return
	}
	includeDeleted := q.Get("include_deleted") == "true" || q.Get("include_deleted") == "1"
	views, err := s.identity.Views.DatabasesOf(r.Context(), principalFrom(r.Context()).TenantID, state, includeDeleted)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	items := make([]map[string]any, len(views))
	for i, v := range views {
		items[i] = databaseDocument(v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": nil})
}

func (s *Server) handleGetDatabase(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, domain.ParseDatabaseID)
	var view projections.DatabaseView
	if err == nil {
		view, err = s.identity.Views.Database(r.Context(), principalFrom(r.Context()).TenantID, id)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	doc := databaseDocument(view)
	if conn, ok := s.address(view, principalFrom(r.Context())); ok {
		doc["connection"] = conn
	}
	writeJSON(w, http.StatusOK, doc)
}

// address is where p reaches the database of view with a MySQL client, without the password: the
// account p's role runs statements on (domain.AccountOf). false for a database without accounts,
// or on a server this process does not know (the database object is answered without it).
func (s *Server) address(view projections.DatabaseView, p Principal) (commands.Connection, bool) {
	if !hasAccounts(view) {
		return commands.Connection{}, false
	}
	conn, err := s.databases.Commands.Address(view.Server, view.ID, domain.AccountOf(p.role()), s.databases.PublicHost, s.databases.PublicPort)
	return conn, err == nil
}

// handleDatabaseConnection answers the connection details of the caller's account, and with
// ?reveal=password the read-write password, for who may see it (recorded as an event).
func (s *Server) handleDatabaseConnection(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	id, err := pathID(r, domain.ParseDatabaseID)
	var view projections.DatabaseView
	if err == nil {
		view, err = s.identity.Views.Database(r.Context(), p.TenantID, id)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	switch r.URL.Query().Get("reveal") {
	case "":
	case "password":
		conn, err := s.databases.Commands.RevealCredentials(r.Context(), p.TenantID, id, p.UserID, p.role(),
			s.databases.PublicHost, s.databases.PublicPort, metadata(r.Context(), r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, conn)
		return
	default:
		s.writeError(w, r, domain.NewValidationError("reveal", "must be password"))
		return
	}
	if !hasAccounts(view) {
		s.writeError(w, r, fmt.Errorf("database %s is %s, without accounts: %w", id, view.State, domain.ErrConflict))
		return
	}
	conn, err := s.databases.Commands.Address(view.Server, view.ID, domain.AccountOf(p.role()), s.databases.PublicHost, s.databases.PublicPort)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, conn)
}

// hasAccounts reports whether the database's accounts can be connected to: running or stopped
// (a stopped one's are locked until it starts), not provisioning, failed or deleted.
func hasAccounts(view projections.DatabaseView) bool {
	return view.State == domain.StateRunning || view.State == domain.StateStopped
}
