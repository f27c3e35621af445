package api

import (
	"net/http"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
)

// ErasureRoutes is what DELETE /admin/users/{id}/personal-data needs.
type ErasureRoutes struct {
	Commands *commands.Erasure
}

// MountErasure adds the erasure of a person's personal data (super admins).
func (s *Server) MountErasure(routes ErasureRoutes) {
	s.mount([]route{
		{"DELETE", "/admin/users/{id}/personal-data", superAdmin | confirmed, func(w http.ResponseWriter, r *http.Request) {
			user, err := pathID(r, domain.ParseUserID)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			res, err := routes.Commands.ErasePersonalData(r.Context(), principalFrom(r.Context()).UserID, user, metadata(r.Context(), r))
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"user_id": user, "erased_as": "erased-" + user.Stream(),
				"already_erased": res.AlreadyErased, "sessions_ended": res.SessionsEnded, "keys_erased": res.KeysErased,
				"mails_removed": res.MailsRemoved, "read_models_updated": res.ReadModels})
		}},
	})
}
