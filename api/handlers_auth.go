package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/clouddbmanager/clouddb/commands"
	"github.com/clouddbmanager/clouddb/domain"
	"github.com/clouddbmanager/clouddb/eventstore"
)

func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Email    string `json:"email"`
		Password string `json:"password"`
		Name     string `json:"name"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	id, email, err := s.identity.Commands.Register(r.Context(), commands.Register{
		Email: req.Email, Password: req.Password, Name: req.Name, Meta: metadata(r.Context(), r)})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"user_id": id, "email": email, "status": domain.UserPendingVerification})
}

type tokenRequest struct {
	Token string `json:"token"`
}

func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request) {
	var req tokenRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.identity.Commands.Verify(r.Context(), req.Token, metadata(r.Context(), r)); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": domain.UserActive})
}

type emailRequest struct {
	Email string `json:"email"`
}

// handleResend and handleForgot answer 202 whether or not the email has an account, and as soon
// as the address is valid: the mail is looked for, recorded and sent after the answer, so its time
// does not tell either.
func (s *Server) handleResend(w http.ResponseWriter, r *http.Request) {
	s.mailRequest(w, r, "resend verification", s.identity.Commands.ResendVerification)
}

func (s *Server) handleForgot(w http.ResponseWriter, r *http.Request) {
	s.mailRequest(w, r, "forgot password", s.identity.Commands.ForgotPassword)
}

func (s *Server) mailRequest(w http.ResponseWriter, r *http.Request, what string, send func(ctx context.Context, email string, meta eventstore.Metadata) error) {
	var req emailRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.accountLimit(limitMail, req.Email); err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, err := domain.NormalizeEmail(req.Email); err != nil {
		s.writeError(w, r, err)
		return
	}
	meta := metadata(r.Context(), r)
	if err := s.offPath(r, what, func(ctx context.Context) error { return send(ctx, req.Email, meta) }); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{})
}

func (s *Server) handleReset(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Token       string `json:"token"`
		NewPassword string `json:"new_password"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.identity.Commands.ResetPassword(r.Context(), req.Token, req.NewPassword, metadata(r.Context(), r)); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleUnlock redeems the unlock link mailed when an account locked: the lock is lifted, and the
// owner logs in with the password.
func (s *Server) handleUnlock(w http.ResponseWriter, r *http.Request) {
	var req tokenRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.identity.Commands.Unlock(r.Context(), req.Token, metadata(r.Context(), r)); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type tenantRef struct {
	ID   domain.TenantID `json:"id"`
	Slug string          `json:"slug"`
	Name string          `json:"name"`
	Role domain.Role     `json:"role"`
}

type tokenPair struct {
	AccessToken  string     `json:"access_token"`
	RefreshToken string     `json:"refresh_token,omitempty"` // empty for the console: in its cookie
	TokenType    string     `json:"token_type"`
	ExpiresIn    int        `json:"expires_in"`
	CSRFToken    string     `json:"csrf_token"`
	User         *userRef   `json:"user,omitempty"`
	Tenant       *tenantRef `json:"tenant"`
}

type userRef struct {
	ID    domain.UserID `json:"id"`
	Email string        `json:"email"`
	Name  string        `json:"name"`
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Email    string `json:"email"`
		Password string `json:"password"`
		Tenant   string `json:"tenant"`
		TOTPCode string `json:"totp_code"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.accountLimit(limitLogin, req.Email); err != nil {
		s.writeError(w, r, err)
		return
	}
	meta := metadata(r.Context(), r)
	res, err := s.identity.Commands.Login(r.Context(), commands.Login{
		Email: req.Email, Password: req.Password, Tenant: req.Tenant, TOTPCode: req.TOTPCode,
		IP: remoteIP(r), UserAgent: userAgent(r), Meta: meta,
	})
	var locked *domain.AccountLockedError
	if errors.As(err, &locked) && locked.Started {
		// The owner gets a way back in, mailed after the answer: an address without an account
		// locks too, and the answer must not take longer for the one that has a mailbox to write
		// to. A refused job only means no link this time; the answer stays the lock.
		s.offPath(r, "unlock link", func(ctx context.Context) error { //nolint:errcheck // see above
			return s.identity.Commands.SendUnlockLink(ctx, req.Email, meta)
		})
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	pair, err := s.issue(w, res.Session, res.RefreshToken)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if fromConsole(r) {
		s.keepRefreshInCookie(w, &pair, res.Session.ExpiresAt)
	}
	pair.User = &userRef{ID: res.User.ID(), Email: res.User.Email(), Name: res.User.Name()}
	if res.Tenant != nil {
		pair.Tenant = &tenantRef{ID: res.Tenant.TenantID, Slug: res.Tenant.Slug, Name: res.Tenant.Name, Role: res.Tenant.Role}
	}
	writeJSON(w, http.StatusOK, pair)
}

// issue signs an access token for the session and sets it as the browser cookie.
func (s *Server) issue(w http.ResponseWriter, session domain.SessionStarted, refreshToken string) (tokenPair, error) {
	access, expiresIn, err := s.identity.Tokens.Issue(session)
	if err != nil {
		return tokenPair{}, err
	}
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: access, Path: "/api/", MaxAge: int(expiresIn.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.identity.SecureCookie,
	})
	w.Header().Set("Cache-Control", "no-store")
	return tokenPair{AccessToken: access, RefreshToken: refreshToken, TokenType: "Bearer",
		ExpiresIn: int(expiresIn / time.Second), CSRFToken: s.identity.Tokens.CSRF(session.SessionID)}, nil
}

func (s *Server) handleRefresh(w http.ResponseWriter, r *http.Request) {
	var req struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.RefreshToken == "" {
		req.RefreshToken = consoleRefreshToken(r)
	}
	if err := s.checkIdle(r.Context(), req.RefreshToken); err != nil {
		s.writeError(w, r, err)
		return
	}
	session, refresh, err := s.identity.Commands.Refresh(r.Context(), req.RefreshToken, metadata(r.Context(), r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	pair, err := s.issue(w, session, refresh)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if fromConsole(r) {
		s.keepRefreshInCookie(w, &pair, session.ExpiresAt)
	}
	if session.TenantID != "" {
		if t, err := s.identity.Views.Tenant(r.Context(), session.TenantID); err == nil {
			pair.Tenant = &tenantRef{ID: t.ID, Slug: t.Slug, Name: t.Name, Role: session.Role}
		}
	}
	writeJSON(w, http.StatusOK, pair)
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	if p.APIKeyID != "" {
		s.writeError(w, r, errNoSession)
		return
	}
	if err := s.identity.Commands.EndSession(r.Context(), p.UserID, p.SessionID, domain.EndLogout, metadata(r.Context(), r)); err != nil {
		s.writeError(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/api/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: s.identity.SecureCookie})
	s.clearRefreshCookie(w)
	w.WriteHeader(http.StatusNoContent)
}
