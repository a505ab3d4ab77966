package api

import (
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/edgegate/edgegate/gateway/admin"
)

// principal is who made a request.
type principal struct {
	// author names the principal in the settings history: "admin",
	// "apikey:<id>" or "local".
	author string
	// scopes limits an API key to some areas; nil means no limit.
	scopes []string
	// keyID is the API key that authenticated the request, if any.
	keyID string
}

// may reports whether p may use a route of the given scope ("" = only
// principals without limits).
func (p principal) may(scope string) bool {
	return p.scopes == nil || (scope != "" && slices.Contains(p.scopes, scope))
}

type principalKey struct{}

// authorOf returns the settings-history author of an authenticated request.
func authorOf(r *http.Request) string {
	if p, ok := r.Context().Value(principalKey{}).(principal); ok {
		return p.author
	}
	return "unknown"
}

// authenticate checks the request's Basic credentials, or trusts the local
// socket. Failed attempts count against the client's IP address.
func (a *API) authenticate(r *http.Request) (principal, error) {
	if isLocal(r) {
		return principal{author: "local"}, nil
	}
	if a.o.Admin == nil {
		return principal{}, unavailable("administrator authentication")
	}
	ip := clientIP(r)
	now := a.o.Now()
	if wait := a.limiter.RetryAfter(ip, now); wait > 0 {
		return principal{}, tooManyAttempts(wait)
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		// A request without credentials is a client's first step, not a
		// guess: not counted.
		return principal{}, errorf(http.StatusUnauthorized, "unauthorized", "credentials required: HTTP Basic with admin:<password> or <API key id>:<secret>")
	}
	switch {
	case user == admin.AdminUser:
		if a.o.Admin.CheckAdmin(pass) {
			return principal{author: admin.AdminUser}, nil
		}
	case strings.HasPrefix(user, admin.APIKeyPrefix):
		if k, ok := a.o.Admin.CheckAPIKey(user, pass); ok {
			return principal{author: "apikey:" + k.ID, scopes: k.Scopes, keyID: k.ID}, nil
		}
	}
	a.limiter.Fail(ip, now)
	return principal{}, errorf(http.StatusUnauthorized, "unauthorized", "wrong username or password")
}

func tooManyAttempts(wait time.Duration) *apiError {
	e := errorf(http.StatusTooManyRequests, "too_many_attempts", "too many failed attempts from this address; try again later")
	e.retryAfter = wait
	return e
}

// clientIP is the address the limiter counts failures by.
func clientIP(r *http.Request) string {
	if isLocal(r) {
		return "local"
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// setupRequest is the body of POST /api/v1/setup.
type setupRequest struct {
	SetupCode string `json:"setup_code"`
	Password  string `json:"password"`
}

// setup sets the first admin password with the console's one-time code.
// Wrong codes count as failed attempts.
func (a *API) setup(w http.ResponseWriter, r *http.Request) error {
	if a.o.Admin == nil {
		return unavailable("setup")
	}
	ip, now := clientIP(r), a.o.Now()
	if wait := a.limiter.RetryAfter(ip, now); wait > 0 {
		return tooManyAttempts(wait)
	}
	var req setupRequest
	if err := a.decodeJSON(w, r, &req); err != nil {
		return err
	}
	err := a.o.Admin.CompleteSetup(req.SetupCode, req.Password)
	var weak *admin.WeakPasswordError
	switch {
	case err == nil:
		a.log.Info("admin password set with the setup code")
		w.WriteHeader(http.StatusNoContent)
		return nil
	case errors.Is(err, admin.ErrSetupDone):
		return errorf(http.StatusConflict, "setup_done", "setup is already done; the admin password is set")
	case errors.Is(err, admin.ErrBadSetupCode):
		a.limiter.Fail(ip, now)
		return errorf(http.StatusForbidden, "bad_setup_code", "wrong setup code; the current code is printed on the console when edgegate starts")
	case errors.As(err, &weak):
		return errorf(http.StatusUnprocessableEntity, "weak_password", "the password is too weak: %s", weak.Reason)
	}
	return err
}

// adminPasswordRequest is the body of PUT /api/v1/admin/password.
type adminPasswordRequest struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

func (a *API) changeAdminPassword(w http.ResponseWriter, r *http.Request) error {
	if a.o.Admin == nil {
		return unavailable("administrator authentication")
	}
	var req adminPasswordRequest
	if err := a.decodeJSON(w, r, &req); err != nil {
		return err
	}
	err := a.o.Admin.SetAdminPassword(req.CurrentPassword, req.NewPassword)
	var weak *admin.WeakPasswordError
	switch {
	case err == nil:
		a.log.Info("admin password changed", "by", authorOf(r))
		w.WriteHeader(http.StatusNoContent)
		return nil
	case errors.Is(err, admin.ErrSetupRequired):
		return errorf(http.StatusConflict, "setup_required", "no admin password is set yet; use POST /api/v1/setup")
	case errors.Is(err, admin.ErrWrongPassword):
		a.limiter.Fail(clientIP(r), a.o.Now())
		return errorf(http.StatusForbidden, "wrong_password", "the current password is wrong")
	case errors.As(err, &weak):
		return errorf(http.StatusUnprocessableEntity, "weak_password", "the password is too weak: %s", weak.Reason)
	}
	return err
}

// apiKeyCreated is the answer to POST /api/v1/apikeys: the only time the
// secret is shown.
type apiKeyCreated struct {
	admin.APIKey
	Secret string `json:"secret"`
}

type apiKeyRequest struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
}

func (a *API) listAPIKeys(w http.ResponseWriter, r *http.Request) error {
	if a.o.Admin == nil {
		return unavailable("API keys")
	}
	keys, err := a.o.Admin.ListAPIKeys()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nonNil(keys))
	return nil
}

func (a *API) createAPIKey(w http.ResponseWriter, r *http.Request) error {
	if a.o.Admin == nil {
		return unavailable("API keys")
	}
	var req apiKeyRequest
	if err := a.decodeJSON(w, r, &req); err != nil {
		return err
	}
	key, secret, err := a.o.Admin.CreateAPIKey(req.Name, req.Scopes...)
	if errors.Is(err, admin.ErrInvalidScope) {
		return errorf(http.StatusUnprocessableEntity, "invalid_scope", "%s", strings.TrimPrefix(err.Error(), "admin: "))
	}
	if errors.Is(err, admin.ErrInvalidAPIKeyName) {
		return errorf(http.StatusUnprocessableEntity, "invalid_name", "%s", strings.TrimPrefix(err.Error(), "admin: "))
	}
	if err != nil {
		return err
	}
	a.log.Info("API key created", "id", key.ID, "name", key.Name, "by", authorOf(r))
	w.Header().Set("Location", "/api/v1/apikeys/"+key.ID)
	writeJSON(w, http.StatusCreated, apiKeyCreated{APIKey: key, Secret: secret})
	return nil
}

func (a *API) deleteAPIKey(w http.ResponseWriter, r *http.Request) error {
	if a.o.Admin == nil {
		return unavailable("API keys")
	}
	id := r.PathValue("id")
	err := a.o.Admin.DeleteAPIKey(id)
	if errors.Is(err, admin.ErrAPIKeyNotFound) {
		return notFound("api key", id)
	}
	if err != nil {
		return err
	}
	a.log.Info("API key deleted", "id", id, "by", authorOf(r))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
