package api

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"strconv"

	"github.com/edgegate/edgegate/certs/trust"
	"github.com/edgegate/edgegate/certs/trustsync"
	"github.com/edgegate/edgegate/certs/vault"
	"github.com/edgegate/edgegate/gateway/admin"
)

func (a *API) trustRoutes() {
	route := func(pattern string, h handlerFunc) {
		a.scoped(admin.ScopeCertificates, pattern, func(w http.ResponseWriter, r *http.Request) error {
			if a.o.Trust == nil {
				return unavailable("the trust list")
			}
			return trustError(h(w, r))
		})
	}
	const p = "/api/v1/trust"
	route("GET "+p, a.trustOverview)
	route("GET "+p+"/versions", a.listTrustVersions)
	route("GET "+p+"/versions/{n}", a.getTrustVersion)
	route("GET "+p+"/versions/{n}/diff", a.diffTrustVersion)
	route("POST "+p+"/versions/{n}/apply", a.applyTrustVersion)
	route("DELETE "+p+"/versions/staged", a.discardTrustVersion)
	route("POST "+p+"/versions/rollback", a.rollbackTrust)
	route("GET "+p+"/sync", a.trustSyncStatus)
	route("POST "+p+"/sync", a.trustSyncNow)
	route("GET "+p+"/vault", a.listVaultSecrets)
	route("GET "+p+"/fleet", a.trustFleet)
	route("GET "+p+"/{list}", a.listTrustEntries)
	route("POST "+p+"/{list}", a.uploadTrustEntry)
	route("POST "+p+"/{list}/from-vault", a.addTrustEntryFromVault)
	route("GET "+p+"/{list}/{id}", a.getTrustEntry)
	route("DELETE "+p+"/{list}/{id}", a.deleteTrustEntry)
}

// trustOverview is what GET /api/v1/trust answers: the applied version's
// lists, the staged version if any and its diff, and the sync state.
type trustOverview struct {
	Applied trust.Version    `json:"applied"`
	Staged  *stagedVersion   `json:"staged,omitempty"`
	Sync    trustsync.Status `json:"sync"`
	Counts  map[string]int   `json:"counts"`
}

// stagedVersion is a version waiting for apply, with what it changes.
type stagedVersion struct {
	trust.Version
	Diff trust.Diff `json:"diff"`
}

func (a *API) trustOverview(w http.ResponseWriter, r *http.Request) error {
	applied, err := a.o.Trust.Applied()
	if err != nil {
		return err
	}
	out := trustOverview{Applied: applied, Sync: a.o.Trust.Status(), Counts: map[string]int{}}
	for _, l := range []trust.ListName{trust.TrustList, trust.IssuerList} {
		out.Counts[string(l)] = len(applied.List(l))
	}
	if staged, ok, err := a.o.Trust.Staged(); err != nil {
		return err
	} else if ok {
		out.Staged = &stagedVersion{Version: staged, Diff: trust.DiffVersions(applied, staged)}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) listTrustVersions(w http.ResponseWriter, r *http.Request) error {
	vs, err := a.o.Trust.Versions()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, vs)
	return nil
}

func versionNumber(r *http.Request, name string) (uint64, error) {
	n, err := strconv.ParseUint(r.PathValue(name), 10, 64)
	if err != nil || n == 0 {
		return 0, errorf(http.StatusBadRequest, "bad_version", "version %q is not a version number", r.PathValue(name))
	}
	return n, nil
}

func (a *API) getTrustVersion(w http.ResponseWriter, r *http.Request) error {
	n, err := versionNumber(r, "n")
	if err != nil {
		return err
	}
	v, err := a.o.Trust.Version(n)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// diffTrustVersion compares version n with ?from= (default: the applied
// version).
func (a *API) diffTrustVersion(w http.ResponseWriter, r *http.Request) error {
	n, err := versionNumber(r, "n")
	if err != nil {
		return err
	}
	var from uint64
	if f := r.URL.Query().Get("from"); f != "" {
		if from, err = strconv.ParseUint(f, 10, 64); err != nil {
			return errorf(http.StatusBadRequest, "bad_version", "from %q is not a version number", f)
		}
	} else {
		applied, err := a.o.Trust.Applied()
		if err != nil {
			return err
		}
		from = applied.Number
	}
	d, err := a.o.Trust.Diff(from, n)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// confirmRequest is the optional body of apply and rollback.
type confirmRequest struct {
	// Confirm accepts that connected clients lose their CA (see the 409
	// "confirmation_required" answer).
	Confirm bool `json:"confirm"`
}

func (a *API) readConfirm(w http.ResponseWriter, r *http.Request) (bool, error) {
	if r.ContentLength == 0 {
		return false, nil
	}
	var req confirmRequest
	if err := a.decodeJSON(w, r, &req); err != nil {
		return false, err
	}
	return req.Confirm, nil
}

func (a *API) applyTrustVersion(w http.ResponseWriter, r *http.Request) error {
	n, err := versionNumber(r, "n")
	if err != nil {
		return err
	}
	confirm, err := a.readConfirm(w, r)
	if err != nil {
		return err
	}
	v, err := a.o.Trust.Apply(r.Context(), n, trust.ApplyOptions{By: authorOf(r), Confirm: confirm})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (a *API) rollbackTrust(w http.ResponseWriter, r *http.Request) error {
	confirm, err := a.readConfirm(w, r)
	if err != nil {
		return err
	}
	v, err := a.o.Trust.Rollback(r.Context(), trust.ApplyOptions{By: authorOf(r), Confirm: confirm})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (a *API) discardTrustVersion(w http.ResponseWriter, r *http.Request) error {
	if err := a.o.Trust.Discard(); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) trustSyncStatus(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, a.o.Trust.Status())
	return nil
}

// trustSyncNow runs a sync and answers the status after it; a failed sync
// is a 502 with the vault's error, the lists unchanged.
func (a *API) trustSyncNow(w http.ResponseWriter, r *http.Request) error {
	if _, err := a.o.Trust.SyncNow(r.Context()); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.o.Trust.Status())
	return nil
}

func (a *API) listVaultSecrets(w http.ResponseWriter, r *http.Request) error {
	refs, err := a.o.Trust.VaultSecrets(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, refs)
	return nil
}

func (a *API) trustFleet(w http.ResponseWriter, r *http.Request) error {
	devices, err := a.o.Trust.Fleet(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, devices)
	return nil
}

func listName(r *http.Request) (trust.ListName, error) {
	l, err := trust.ParseListName(r.PathValue("list"))
	if err != nil {
		return "", errorf(http.StatusNotFound, "list_not_found", "no list %q: the lists are trust and issuer", r.PathValue("list"))
	}
	return l, nil
}

func (a *API) listTrustEntries(w http.ResponseWriter, r *http.Request) error {
	l, err := listName(r)
	if err != nil {
		return err
	}
	applied, err := a.o.Trust.Applied()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, applied.List(l))
	return nil
}

// trustEntry is one entry with its PEM, for GET .../{list}/{id}.
type trustEntry struct {
	trust.Entry
	PEM string `json:"pem"`
}

func (a *API) getTrustEntry(w http.ResponseWriter, r *http.Request) error {
	l, err := listName(r)
	if err != nil {
		return err
	}
	e, err := a.o.Trust.Entry(l, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, trustEntry{Entry: e, PEM: string(e.PEM())})
	return nil
}

// uploadRequest is the JSON form of an upload; a PEM or DER body
// (application/x-pem-file, application/pkix-cert) with ?name= works too.
type uploadRequest struct {
	Name string `json:"name"`
	PEM  string `json:"pem"`
}

// uploadTrustEntry stages an uploaded certificate (and CRL) for review;
// it takes effect on apply, and is written to the vault then if
// publishing is on.
func (a *API) uploadTrustEntry(w http.ResponseWriter, r *http.Request) error {
	l, err := listName(r)
	if err != nil {
		return err
	}
	var name string
	var data []byte
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/json" {
		var req uploadRequest
		if err := a.decodeJSON(w, r, &req); err != nil {
			return err
		}
		name, data = req.Name, []byte(req.PEM)
	} else {
		if data, err = a.readBody(w, r); err != nil {
			return err
		}
		name = r.URL.Query().Get("name")
	}
	v, err := a.o.Trust.StageUpload(l, name, data, authorOf(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, a.staged(v))
	return nil
}

// staged is v with its diff against the applied version.
func (a *API) staged(v trust.Version) stagedVersion {
	out := stagedVersion{Version: v}
	if applied, err := a.o.Trust.Applied(); err == nil {
		out.Diff = trust.DiffVersions(applied, v)
	}
	return out
}

// deleteTrustEntry stages the removal of an entry. A synced one is removed
// here only: the vault keeps its secret and later syncs leave it out until
// it is added from the vault again.
func (a *API) deleteTrustEntry(w http.ResponseWriter, r *http.Request) error {
	l, err := listName(r)
	if err != nil {
		return err
	}
	v, err := a.o.Trust.StageDelete(l, r.PathValue("id"), authorOf(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.staged(v))
	return nil
}

type fromVaultRequest struct {
	Name string `json:"name"`
}

func (a *API) addTrustEntryFromVault(w http.ResponseWriter, r *http.Request) error {
	l, err := listName(r)
	if err != nil {
		return err
	}
	var req fromVaultRequest
	if err := a.decodeJSON(w, r, &req); err != nil {
		return err
	}
	v, err := a.o.Trust.AddFromVault(r.Context(), l, req.Name, authorOf(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, a.staged(v))
	return nil
}

// trustError turns the trust and vault errors into answers; others pass.
func trustError(err error) error {
	var ce *trust.ConfirmationError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		ae := errorf(http.StatusConflict, "confirmation_required", "%v; send {\"confirm\": true} to apply anyway", ce)
		ae.body.Confirmation = &Confirmation{Sessions: ce.Sessions, CAs: ce.CAs, EmptiesTrustList: ce.EmptiesTrustList}
		return ae
	case errors.Is(err, trust.ErrNotFound):
		return errorf(http.StatusNotFound, "not_found", "%v", err)
	case errors.Is(err, trust.ErrInvalid), errors.Is(err, trust.ErrTooLarge):
		return errorf(http.StatusUnprocessableEntity, "invalid_certificate", "%v", err)
	case errors.Is(err, trust.ErrNoStaged), errors.Is(err, trust.ErrStale):
		return errorf(http.StatusConflict, "conflict", "%v", err)
	case errors.Is(err, trustsync.ErrVaultOff):
		return errorf(http.StatusConflict, "vault_off", "%v", err)
	case errors.Is(err, vault.ErrForbidden), errors.Is(err, vault.ErrUnavailable), errors.Is(err, vault.ErrBadResponse),
		errors.Is(err, vault.ErrNotFound), errors.Is(err, vault.ErrReadOnly), errors.Is(err, context.DeadlineExceeded):
		return errorf(http.StatusBadGateway, "vault_error", "%v", err)
	}
	return err
}
