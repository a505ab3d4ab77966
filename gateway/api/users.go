package api

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/edgegate/edgegate/gateway/auth"
	"github.com/edgegate/edgegate/gateway/config"
)

// userView is an MQTT user as the API shows it: never its hash.
type userView struct {
	Username    string    `json:"username"`
	Superuser   bool      `json:"superuser"`
	HasPassword bool      `json:"has_password"`
	Created     time.Time `json:"created"`
}

func viewUser(u auth.User) userView {
	return userView{Username: u.Username, Superuser: u.Superuser, HasPassword: u.PasswordHash != "", Created: u.Created}
}

// clientIDView is a client id entry as the API shows it.
type clientIDView struct {
	ClientID    string    `json:"clientid"`
	HasPassword bool      `json:"has_password"`
	Created     time.Time `json:"created"`
}

func viewClientID(e auth.ClientIDEntry) clientIDView {
	return clientIDView{ClientID: e.ClientID, HasPassword: e.PasswordHash != "", Created: e.Created}
}

// hashImport is a password hash taken from an EMQ database (see
// auth.ImportHash): kind is EMQ's password_hash setting ("sha256",
// "salt sha256", "pbkdf2,sha256,1000,20", "bcrypt", "plain", or "" for an
// edgegate export).
type hashImport struct {
	Kind         string `json:"kind"`
	Hash         string `json:"hash"`
	Salt         string `json:"salt"`
	SaltPosition string `json:"salt_position"`
}

type userCreate struct {
	Username     string      `json:"username"`
	Password     *string     `json:"password"`
	PasswordHash *hashImport `json:"password_hash"`
	Superuser    bool        `json:"superuser"`
}

type userUpdate struct {
	Password     *string     `json:"password"`
	PasswordHash *hashImport `json:"password_hash"`
	Superuser    *bool       `json:"superuser"`
}

type clientIDCreate struct {
	ClientID     string      `json:"clientid"`
	Password     *string     `json:"password"`
	PasswordHash *hashImport `json:"password_hash"`
}

type clientIDUpdate struct {
	Password     *string     `json:"password"`
	PasswordHash *hashImport `json:"password_hash"`
}

// storedHash turns a request's password or imported hash into the stored
// form. Neither gives "" (no password login).
func (a *API) storedHash(password *string, imp *hashImport) (string, error) {
	switch {
	case password != nil && imp != nil:
		return "", errorf(http.StatusBadRequest, "bad_request", "give either password or password_hash, not both")
	case password != nil:
		kind, iter := config.HashPBKDF2SHA256, 0
		if a.o.Settings != nil {
			c := a.o.Settings.Effective().Config.Auth
			kind, iter = c.PasswordHash, c.PBKDF2Iterations
		}
		h, err := auth.NewHash(kind, *password, iter)
		if errors.Is(err, auth.ErrInvalidPassword) {
			return "", errorf(http.StatusUnprocessableEntity, "invalid_password", "%s", err)
		}
		return h, err
	case imp != nil:
		h, err := auth.ImportHash(imp.Kind, imp.Hash, imp.Salt, imp.SaltPosition)
		if errors.Is(err, auth.ErrInvalidHash) || errors.Is(err, auth.ErrUnknownHashKind) {
			return "", errorf(http.StatusUnprocessableEntity, "invalid_password_hash", "%s", err)
		}
		return h, err
	}
	return "", nil
}

// accountError maps the account store's errors to answers.
func accountError(err error, what, name string) error {
	switch {
	case errors.Is(err, auth.ErrUserNotFound), errors.Is(err, auth.ErrClientIDNotFound):
		return notFound(what, name)
	case errors.Is(err, auth.ErrUserExists), errors.Is(err, auth.ErrClientIDExists):
		return errorf(http.StatusConflict, "already_exists", "%s %q already exists", what, name)
	case errors.Is(err, auth.ErrInvalidName):
		return errorf(http.StatusUnprocessableEntity, "invalid_name", "%s", err)
	case errors.Is(err, auth.ErrInvalidHash):
		return errorf(http.StatusUnprocessableEntity, "invalid_password_hash", "%s", err)
	}
	return err
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) error {
	if a.o.Users == nil {
		return unavailable("the user store")
	}
	us, err := a.o.Users.List()
	if err != nil {
		return err
	}
	out := make([]userView, 0, len(us))
	for _, u := range us {
		out = append(out, viewUser(u))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request) error {
	if a.o.Users == nil {
		return unavailable("the user store")
	}
	var req userCreate
	if err := a.decodeJSON(w, r, &req); err != nil {
		return err
	}
	h, err := a.storedHash(req.Password, req.PasswordHash)
	if err != nil {
		return err
	}
	if err := a.o.Users.Add(auth.User{Username: req.Username, PasswordHash: h, Superuser: req.Superuser}); err != nil {
		return accountError(err, "user", req.Username)
	}
	u, err := a.o.Users.Get(req.Username)
	if err != nil {
		return accountError(err, "user", req.Username)
	}
	a.log.Info("mqtt user added", "username", u.Username, "superuser", u.Superuser, "by", authorOf(r))
	w.Header().Set("Location", "/api/v1/users/"+url.PathEscape(u.Username))
	writeJSON(w, http.StatusCreated, viewUser(u))
	return nil
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request) error {
	if a.o.Users == nil {
		return unavailable("the user store")
	}
	name := r.PathValue("username")
	u, err := a.o.Users.Get(name)
	if err != nil {
		return accountError(err, "user", name)
	}
	writeJSON(w, http.StatusOK, viewUser(u))
	return nil
}

func (a *API) updateUser(w http.ResponseWriter, r *http.Request) error {
	if a.o.Users == nil {
		return unavailable("the user store")
	}
	name := r.PathValue("username")
	var req userUpdate
	if err := a.decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Password == nil && req.PasswordHash == nil && req.Superuser == nil {
		return errorf(http.StatusBadRequest, "bad_request", "nothing to change: give password, password_hash or superuser")
	}
	if _, err := a.o.Users.Get(name); err != nil {
		return accountError(err, "user", name)
	}
	if req.Password != nil || req.PasswordHash != nil {
		h, err := a.storedHash(req.Password, req.PasswordHash)
		if err != nil {
			return err
		}
		if err := a.o.Users.SetPassword(name, h); err != nil {
			return accountError(err, "user", name)
		}
	}
	if req.Superuser != nil {
		if err := a.o.Users.SetSuperuser(name, *req.Superuser); err != nil {
			return accountError(err, "user", name)
		}
	}
	u, err := a.o.Users.Get(name)
	if err != nil {
		return accountError(err, "user", name)
	}
	a.log.Info("mqtt user changed", "username", name, "password", req.Password != nil || req.PasswordHash != nil,
		"superuser", u.Superuser, "by", authorOf(r))
	writeJSON(w, http.StatusOK, viewUser(u))
	return nil
}

func (a *API) deleteUser(w http.ResponseWriter, r *http.Request) error {
	if a.o.Users == nil {
		return unavailable("the user store")
	}
	name := r.PathValue("username")
	if err := a.o.Users.Delete(name); err != nil {
		return accountError(err, "user", name)
	}
	a.log.Info("mqtt user deleted", "username", name, "by", authorOf(r))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listClientIDs(w http.ResponseWriter, r *http.Request) error {
	if a.o.Users == nil {
		return unavailable("the user store")
	}
	es, err := a.o.Users.ListClientIDs()
	if err != nil {
		return err
	}
	out := make([]clientIDView, 0, len(es))
	for _, e := range es {
		out = append(out, viewClientID(e))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) createClientID(w http.ResponseWriter, r *http.Request) error {
	if a.o.Users == nil {
		return unavailable("the user store")
	}
	var req clientIDCreate
	if err := a.decodeJSON(w, r, &req); err != nil {
		return err
	}
	h, err := a.storedHash(req.Password, req.PasswordHash)
	if err != nil {
		return err
	}
	if err := a.o.Users.AddClientID(auth.ClientIDEntry{ClientID: req.ClientID, PasswordHash: h}); err != nil {
		return accountError(err, "client id", req.ClientID)
	}
	e, err := a.o.Users.GetClientID(req.ClientID)
	if err != nil {
		return accountError(err, "client id", req.ClientID)
	}
	a.log.Info("mqtt client id added", "clientid", e.ClientID, "by", authorOf(r))
	w.Header().Set("Location", "/api/v1/clientids/"+url.PathEscape(e.ClientID))
	writeJSON(w, http.StatusCreated, viewClientID(e))
	return nil
}

func (a *API) getClientID(w http.ResponseWriter, r *http.Request) error {
	if a.o.Users == nil {
		return unavailable("the user store")
	}
	id := r.PathValue("clientid")
	e, err := a.o.Users.GetClientID(id)
	if err != nil {
		return accountError(err, "client id", id)
	}
	writeJSON(w, http.StatusOK, viewClientID(e))
	return nil
}

func (a *API) updateClientID(w http.ResponseWriter, r *http.Request) error {
	if a.o.Users == nil {
		return unavailable("the user store")
	}
	id := r.PathValue("clientid")
	var req clientIDUpdate
	if err := a.decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Password == nil && req.PasswordHash == nil {
		return errorf(http.StatusBadRequest, "bad_request", "nothing to change: give password or password_hash")
	}
	if _, err := a.o.Users.GetClientID(id); err != nil {
		return accountError(err, "client id", id)
	}
	h, err := a.storedHash(req.Password, req.PasswordHash)
	if err != nil {
		return err
	}
	if err := a.o.Users.SetClientIDPassword(id, h); err != nil {
		return accountError(err, "client id", id)
	}
	e, err := a.o.Users.GetClientID(id)
	if err != nil {
		return accountError(err, "client id", id)
	}
	a.log.Info("mqtt client id password changed", "clientid", id, "by", authorOf(r))
	writeJSON(w, http.StatusOK, viewClientID(e))
	return nil
}

func (a *API) deleteClientID(w http.ResponseWriter, r *http.Request) error {
	if a.o.Users == nil {
		return unavailable("the user store")
	}
	id := r.PathValue("clientid")
	if err := a.o.Users.DeleteClientID(id); err != nil {
		return accountError(err, "client id", id)
	}
	a.log.Info("mqtt client id deleted", "clientid", id, "by", authorOf(r))
	w.WriteHeader(http.StatusNoContent)
	return nil
}
