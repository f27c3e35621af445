package api

import (
	"context"
	"net/http"

	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

// databaseChange runs a lifecycle command on the database of the path and answers the database
// object as the read model shows it afterwards.
func (s *Server) databaseChange(w http.ResponseWriter, r *http.Request,
	run func(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID, meta eventstore.Metadata) error) {
	p := principalFrom(r.Context())
	id, err := pathID(r, domain.ParseDatabaseID)
	if err == nil {
		err = run(r.Context(), p.TenantID, id, metadata(r.Context(), r))
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	view, err := s.identity.Views.Database(r.Context(), p.TenantID, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, databaseDocument(view))
}

func (s *Server) handleStopDatabase(w http.ResponseWriter, r *http.Request) {
	s.databaseChange(w, r, func(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID, meta eventstore.Metadata) error {
		_, err := s.databases.Commands.Stop(ctx, tenant, id, "manual", meta)
		return err
	})
}

func (s *Server) handleStartDatabase(w http.ResponseWriter, r *http.Request) {
	s.databaseChange(w, r, func(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID, meta eventstore.Metadata) error {
		_, err := s.databases.Commands.Start(ctx, tenant, id, meta)
		return err
	})
}

func (s *Server) handleDeleteDatabase(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ConfirmName string `json:"confirm_name"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.databaseChange(w, r, func(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID, meta eventstore.Metadata) error {
		_, err := s.databases.Commands.Delete(ctx, tenant, id, req.ConfirmName, s.databases.RecoveryWindow, meta)
		return err
	})
}

func (s *Server) handleRestoreDatabase(w http.ResponseWriter, r *http.Request) {
	s.databaseChange(w, r, func(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID, meta eventstore.Metadata) error {
		_, err := s.databases.Commands.Restore(ctx, tenant, id, meta)
		return err
	})
}

func (s *Server) handleChangeDatabaseOwner(w http.ResponseWriter, r *http.Request) {
	var req struct {
		UserID string `json:"user_id"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	owner, err := domain.ParseUserID(req.UserID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.databaseChange(w, r, func(ctx context.Context, tenant domain.TenantID, id domain.DatabaseID, meta eventstore.Metadata) error {
		_, err := s.databases.Commands.ChangeOwner(ctx, tenant, id, owner, meta)
		return err
	})
}

func (s *Server) handleRotateCredentials(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	id, err := pathID(r, domain.ParseDatabaseID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	d, err := s.databases.Commands.RotateCredentials(r.Context(), p.TenantID, id, p.UserID, domain.EffectiveRole(p.Role, p.SuperAdmin), metadata(r.Context(), r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	conn, err := s.databases.Commands.Connection(r.Context(), d, s.databases.PublicHost, s.databases.PublicPort)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"connection": conn})
}

func (s *Server) handleDatabaseSchema(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, domain.ParseDatabaseID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	tables, err := s.databases.Commands.Schema(r.Context(), principalFrom(r.Context()).TenantID, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"tables": tables})
}
