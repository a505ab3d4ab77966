package webui

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/a-h/templ"

	"github.com/edgegate/edgegate/certs/ca"
	"github.com/edgegate/edgegate/certs/trust"
	"github.com/edgegate/edgegate/certs/trustsync"
	"github.com/edgegate/edgegate/certs/vault"
	"github.com/edgegate/edgegate/gateway/config"
)

func (u *UI) trustRoutes() {
	u.authed("GET /trust", u.trust)
	route := func(pattern string, h handler) {
		u.authed(pattern, func(w http.ResponseWriter, r *http.Request, ss *session) error {
			if u.o.Trust == nil {
				return userError(http.StatusServiceUnavailable, "The trust and issuer lists are not managed on this gateway.")
			}
			return h(w, r, ss)
		})
	}
	route("POST /trust/sync", u.trustSync)
	route("POST /trust/upload", u.trustUpload)
	route("POST /trust/from-vault", u.trustAddFromVault)
	route("POST /trust/apply", u.trustApply)
	route("POST /trust/discard", u.trustDiscard)
	route("POST /trust/rollback", u.trustRollback)
	route("GET /trust/{list}/{id}", u.trustEntryPage)
	route("GET /trust/{list}/{id}/pem", u.trustEntryPEM)
	route("POST /trust/{list}/{id}/delete", u.trustDelete)
}

// trustEntry is one CA certificate the gateway trusts or chains to by
// itself: the local CA and the certificate store's client CAs.
type trustEntry struct {
	Name        string
	Source      string // where it comes from: "local CA", "certificate store", a file
	Subject     string
	Issuer      string
	NotAfter    time.Time
	Fingerprint string // SHA-256, colon-separated hex
	Download    string // a /pki URL, or ""
	CRL         string // a /pki URL, or ""
	Active      bool
}

// listenerTrust is the client-CA pool a TLS listener checks.
type listenerTrust struct {
	Name, ClientAuth, ClientCA string
}

// trustView is the trust page. Without Managed (no trust store on this
// gateway) it shows only what the live pools hold by themselves: the
// built-in anchors and issuers and the listeners.
type trustView struct {
	Anchors   []trustEntry // built in: the local CA root and the store's client CAs
	Issuers   []trustEntry // built in: the local CA's issuers
	Listeners []listenerTrust
	Loc       *time.Location

	Managed   bool
	Sync      trustsync.Status
	AutoApply bool
	Applied   trust.Version
	Staged    *trustStaged
	Confirm   *trustConfirm
	Upload    trustUploadForm
	// The vault's secrets not in the applied lists, for "add from vault".
	VaultSecrets []vault.Ref
	VaultProblem string
	VaultOff     bool
	Fleet        []trustFleetRow
	FleetProblem string
	History      []trust.Version
	// Errors holds a failed action's message by form: "trust-sync",
	// "trust-apply", "trust-discard", "trust-rollback", "trust-delete",
	// "trust-vault".
	Errors map[string]string
}

// trustStaged is the version waiting for apply, with what it changes.
type trustStaged struct {
	V    trust.Version
	Diff trust.Diff
}

// trustConfirm asks to apply (or roll back) anyway after the store
// answered a *trust.ConfirmationError.
type trustConfirm struct {
	Action  string // "apply" or "rollback"
	Version uint64 // the version to apply; 0 for a rollback
	Err     *trust.ConfirmationError
}

// trustFleetRow is one gateway of the fleet as it reported to the vault.
type trustFleetRow struct {
	D      vault.DeviceStatus
	InStep bool // its lists hold the same certificates as this gateway's applied version
	Self   bool
}

// trustUploadForm stages certificates (and CRLs) uploaded to a list.
type trustUploadForm struct {
	List, Name, PEM string
	Errors          map[string]string
}

// trustWait bounds a page's reads from the vault: a vault that does not
// answer must not hold the page for long.
const trustWait = 8 * time.Second

// trustActionWait bounds an action that talks to the vault (sync, add,
// apply publishing uploads); each vault request has its own timeout too.
const trustActionWait = 2 * time.Minute

// trustActionContext is the context of an action that may wait on the
// vault. Like acmeContext it outlives the request, so that a closed tab
// does not abandon a sync halfway, and pushes the write deadline past it.
func trustActionContext(w http.ResponseWriter, r *http.Request) (context.Context, context.CancelFunc) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(trustActionWait + 30*time.Second))
	return context.WithTimeout(context.WithoutCancel(r.Context()), trustActionWait)
}

func newTrustView() trustView {
	return trustView{Upload: trustUploadForm{List: string(trust.TrustList), Errors: map[string]string{}}, Errors: map[string]string{}}
}

func (u *UI) trust(w http.ResponseWriter, r *http.Request, ss *session) error {
	return u.renderTrust(w, r, ss, http.StatusOK, newTrustView())
}

// renderTrust fills v with what the page shows and renders it with status.
func (u *UI) renderTrust(w http.ResponseWriter, r *http.Request, ss *session, status int, v trustView) error {
	v.Loc = u.location()
	if err := u.builtInTrust(&v); err != nil {
		return err
	}
	if u.o.Trust != nil {
		if err := u.managedTrust(r.Context(), &v); err != nil {
			return err
		}
	}
	u.renderStatus(w, r, ss, status, u.page(ss, "Trust & issuers", "trust"), trustPage(v))
	return nil
}

// builtInTrust adds what the pools hold without the trust store: the local
// CA, the store's client CAs, and which pool each listener checks.
func (u *UI) builtInTrust(v *trustView) error {
	if u.o.Authority != nil {
		roots := map[string]bool{}
		for _, iss := range u.o.Authority.Issuers() {
			e := caEntry(iss.Cert, issuerSource(iss.Kind))
			e.Download = "/pki/issuer/" + iss.ID + ".crt"
			e.CRL = "/pki/crl/" + iss.ID + ".crl"
			e.Active = iss.Active
			v.Issuers = append(v.Issuers, e)
			if iss.Root != nil && !roots[string(iss.Root.Raw)] {
				roots[string(iss.Root.Raw)] = true
				root := caEntry(iss.Root, "local CA")
				root.Download = "/pki/ca"
				v.Anchors = append(v.Anchors, root)
			}
		}
	}
	if u.o.Certificates != nil {
		list, err := u.o.Certificates.List()
		if err != nil {
			return err
		}
		for _, c := range list {
			if !c.ClientCA {
				continue
			}
			v.Anchors = append(v.Anchors, trustEntry{
				Name: c.Name, Source: "certificate store (trusted for client certificates)", Subject: c.Subject,
				Issuer: c.Issuer, NotAfter: time.UnixMilli(c.To), Fingerprint: colonHex(c.SHA256),
			})
		}
	}
	if u.o.Settings == nil {
		return nil
	}
	cfg := u.o.Settings.Effective().Config
	v.AutoApply = cfg.Trust.AutoApply
	for name, l := range cfg.Listeners {
		if l.TLS == nil || l.Disabled {
			continue
		}
		source := l.TLS.ClientCA
		if source == config.ClientCALocal {
			source = "the local CA and the store's client CAs"
		}
		if u.o.Trust != nil && source != "" {
			// Every client-CA pool gets the applied trust and issuer lists.
			source += ", with the trust and issuer lists"
		}
		v.Listeners = append(v.Listeners, listenerTrust{Name: name, ClientAuth: l.TLS.ClientAuth, ClientCA: source})
	}
	slices.SortFunc(v.Listeners, func(a, b listenerTrust) int { return strings.Compare(a.Name, b.Name) })
	return nil
}

// managedTrust adds the trust store's versions and the vault's view. The
// vault is asked for its secrets and the fleet at once, for a bounded
// time; its errors are shown, not failed on.
func (u *UI) managedTrust(ctx context.Context, v *trustView) error {
	t := u.o.Trust
	v.Managed = true
	v.Sync = t.Status()
	applied, err := t.Applied()
	if err != nil {
		return fmt.Errorf("trust: applied version: %w", err)
	}
	v.Applied = applied
	staged, ok, err := t.Staged()
	if err != nil {
		return fmt.Errorf("trust: staged version: %w", err)
	}
	if ok {
		v.Staged = &trustStaged{V: staged, Diff: trust.DiffVersions(applied, staged)}
	}
	if v.History, err = t.Versions(); err != nil {
		return fmt.Errorf("trust: versions: %w", err)
	}
	slices.SortFunc(v.History, func(a, b trust.Version) int { return cmp.Compare(b.Number, a.Number) })

	ctx, cancel := context.WithTimeout(ctx, trustWait)
	defer cancel()
	var (
		wg                sync.WaitGroup
		refs              []vault.Ref
		devices           []vault.DeviceStatus
		refsErr, fleetErr error
	)
	wg.Go(func() { refs, refsErr = t.VaultSecrets(ctx) })
	wg.Go(func() { devices, fleetErr = t.Fleet(ctx) })
	wg.Wait()

	switch {
	case errors.Is(refsErr, trustsync.ErrVaultOff):
		v.VaultOff = true
	case refsErr != nil:
		v.VaultProblem = u.vaultProblem("list the vault's secrets", refsErr)
	default:
		for _, ref := range refs {
			if !slices.ContainsFunc(applied.Entries, func(e trust.Entry) bool {
				return string(e.List) == ref.List && e.Source.Kind == trust.SourceVault && e.Source.Name == ref.Name
			}) {
				v.VaultSecrets = append(v.VaultSecrets, ref)
			}
		}
		slices.SortFunc(v.VaultSecrets, func(a, b vault.Ref) int {
			return cmp.Or(cmp.Compare(listRank(a.List), listRank(b.List)), strings.Compare(a.Name, b.Name))
		})
	}
	switch {
	case errors.Is(fleetErr, trustsync.ErrVaultOff):
		v.VaultOff = true
	case fleetErr != nil:
		v.FleetProblem = u.vaultProblem("read the fleet's status", fleetErr)
	default:
		ours := fingerprintsOf(applied)
		for _, d := range devices {
			v.Fleet = append(v.Fleet, trustFleetRow{D: d, InStep: sameFingerprints(ours, d.Fingerprints), Self: d.DeviceID == v.Sync.DeviceID})
		}
	}
	return nil
}

func listRank(l string) int {
	if l == string(trust.TrustList) {
		return 0
	}
	return 1
}

// fingerprintsOf is what a gateway reports of v: by list, the sorted
// SHA-256 fingerprints.
func fingerprintsOf(v trust.Version) map[string][]string {
	out := map[string][]string{}
	for _, e := range v.Entries {
		out[string(e.List)] = append(out[string(e.List)], e.Fingerprint)
	}
	for _, fps := range out {
		slices.Sort(fps)
	}
	return out
}

func sameFingerprints(a, b map[string][]string) bool {
	for _, l := range []trust.ListName{trust.TrustList, trust.IssuerList} {
		x, y := slices.Clone(a[string(l)]), slices.Clone(b[string(l)])
		slices.Sort(x)
		slices.Sort(y)
		if !slices.Equal(x, y) {
			return false
		}
	}
	return true
}

// msgVaultOff points to where vault sync is set up.
const msgVaultOff = "Vault sync is off: set trust.vault.address and its auth method under Listeners & settings to sync from a vault."

// vaultProblem words a failed vault call for the page. The vault's errors
// name the request, its status and the vault's own message, never a
// secret, so they are shown as they are; anything else stays in the log.
func (u *UI) vaultProblem(what string, err error) string {
	switch {
	case errors.Is(err, trustsync.ErrVaultOff):
		return msgVaultOff
	case errors.Is(err, vault.ErrForbidden), errors.Is(err, vault.ErrUnavailable), errors.Is(err, vault.ErrBadResponse),
		errors.Is(err, vault.ErrNotFound), errors.Is(err, vault.ErrReadOnly), errors.Is(err, vault.ErrConflict):
		return fmt.Sprintf("Could not %s: %v", what, err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("Could not %s: the vault did not answer in time.", what)
	}
	u.log.Error("trust: vault call from the web UI failed", "what", what, "error", err)
	return fmt.Sprintf("Could not %s; the reason is in the gateway's log.", what)
}

// trustRefusal is what is wrong according to an error of the trust store
// refusing input (ErrInvalid, ErrTooLarge, ErrNotFound): the part after the
// sentinel, which the store words for whoever made the request.
func trustRefusal(err error) string {
	s := err.Error()
	for _, sentinel := range []error{trust.ErrInvalid, trust.ErrTooLarge, trust.ErrNotFound} {
		prefix := sentinel.Error() + ": "
		if i := strings.LastIndex(s, prefix); i >= 0 {
			return s[i+len(prefix):]
		}
	}
	switch {
	case errors.Is(err, trust.ErrTooLarge):
		return fmt.Sprintf("it is larger than %d KiB", trust.MaxBundleSize>>10)
	case errors.Is(err, trust.ErrNotFound):
		return "it no longer exists"
	}
	return "the input is not valid"
}

// trustStoreProblem words the trust store's answers to an action; ok is
// false for an internal error, which the caller returns.
func trustStoreProblem(err error) (status int, msg string, ok bool) {
	switch {
	case errors.Is(err, trust.ErrNoStaged):
		return http.StatusConflict, "Nothing is staged any more: it was applied or discarded meanwhile.", true
	case errors.Is(err, trust.ErrStale):
		return http.StatusConflict, "The staged version changed meanwhile: review the new one below before applying it.", true
	case errors.Is(err, trust.ErrNotFound):
		return http.StatusNotFound, "Not found: " + trustRefusal(err) + ".", true
	case errors.Is(err, trust.ErrInvalid), errors.Is(err, trust.ErrTooLarge):
		return http.StatusUnprocessableEntity, "Refused: " + trustRefusal(err) + ".", true
	}
	return 0, "", false
}

// trustSync runs a vault sync now and says what it did.
func (u *UI) trustSync(w http.ResponseWriter, r *http.Request, ss *session) error {
	t := u.o.Trust
	applied, _ := t.Applied()
	staged, _, _ := t.Staged()
	ctx, cancel := trustActionContext(w, r)
	defer cancel()
	res, err := t.SyncNow(ctx)
	if err != nil {
		v := newTrustView()
		status := http.StatusBadGateway
		switch {
		case errors.Is(err, trustsync.ErrVaultOff):
			status = http.StatusConflict
			v.Errors["trust-sync"] = msgVaultOff
		default:
			if errors.Is(err, trust.ErrInvalid) {
				status, v.Errors["trust-sync"] = http.StatusUnprocessableEntity, "The vault's set could not be staged: "+trustRefusal(err)+"."
			} else {
				v.Errors["trust-sync"] = u.vaultProblem("sync with the vault", err)
			}
		}
		u.log.Warn("vault sync from the web UI failed", "error", err)
		return u.renderTrust(w, r, ss, status, v)
	}
	msg := fmt.Sprintf("Vault sync done: %s listed, %d fetched.", plural(res.Listed, "secret", "secrets"), res.Fetched)
	if now, err := t.Applied(); err == nil && now.Number != applied.Number {
		msg += fmt.Sprintf(" Version %d was applied automatically.", now.Number)
	} else if now, ok, err := t.Staged(); err == nil && ok && now.Number != staged.Number {
		msg += fmt.Sprintf(" Version %d is staged: review it below and select Apply to use it.", now.Number)
	} else {
		msg += " Nothing changed."
	}
	return u.redirect(w, r, ss, "/trust", msg)
}

// The bounds of an upload: a certificate, a CRL and a pasted PEM, each at
// most trust.MaxBundleSize.
const (
	maxTrustUploadBody = 3*trust.MaxBundleSize + 64<<10
	maxTrustName       = 128
)

func (u *UI) trustUpload(w http.ResponseWriter, r *http.Request, ss *session) error {
	f := trustUploadForm{List: string(trust.TrustList), Errors: map[string]string{}}
	r.Body = http.MaxBytesReader(w, r.Body, maxTrustUploadBody)
	if err := r.ParseMultipartForm(maxTrustUploadBody); err != nil { //nolint:gosec // G120: the body is limited by http.MaxBytesReader
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			f.Errors["trust-upload"] = "The upload is too large: each file is at most 1 MiB."
		} else if !errors.Is(err, http.ErrNotMultipart) {
			f.Errors["trust-upload"] = "The upload could not be read. Try again."
		}
		if len(f.Errors) > 0 {
			return u.renderTrustUpload(w, r, ss, http.StatusUnprocessableEntity, f)
		}
	}
	if r.MultipartForm != nil {
		defer func() { _ = r.MultipartForm.RemoveAll() }()
	}
	f.List = r.FormValue("list")
	f.Name = strings.TrimSpace(r.FormValue("name"))
	f.PEM = r.FormValue("pem")
	list, err := trust.ParseListName(f.List)
	if err != nil {
		f.Errors["trust-upload-list"] = "Choose the trust list or the issuer list."
	}
	if len(f.Name) > maxTrustName {
		f.Errors["trust-upload-name"] = fmt.Sprintf("At most %d characters.", maxTrustName)
	}
	// The certificate file first: the name goes to the first certificate.
	var parts [][]byte
	for _, field := range []string{"file", "crl"} {
		data, problem := readTrustFile(r.MultipartForm, field)
		if problem != "" {
			f.Errors["trust-upload-"+field] = problem
		}
		if len(data) > 0 {
			parts = append(parts, data)
		}
	}
	if strings.TrimSpace(f.PEM) != "" {
		parts = append(parts, []byte(f.PEM))
	}
	if len(parts) == 0 && len(f.Errors) == 0 {
		f.Errors["trust-upload-pem"] = "Paste a PEM certificate or choose a certificate file."
	}
	if len(f.Errors) > 0 {
		return u.renderTrustUpload(w, r, ss, http.StatusUnprocessableEntity, f)
	}
	data, problem := joinTrustParts(parts)
	if problem != "" {
		f.Errors["trust-upload"] = problem
		return u.renderTrustUpload(w, r, ss, http.StatusUnprocessableEntity, f)
	}
	v, err := u.o.Trust.StageUpload(list, f.Name, data, author)
	switch {
	case errors.Is(err, trust.ErrInvalid), errors.Is(err, trust.ErrTooLarge):
		f.Errors["trust-upload"] = "The upload was refused: " + trustRefusal(err) + "."
		return u.renderTrustUpload(w, r, ss, http.StatusUnprocessableEntity, f)
	case err != nil:
		return err
	}
	u.log.Info("trust list upload staged from the web UI", "version", v.Number, "list", list, "name", f.Name)
	msg := fmt.Sprintf("Upload staged as version %d. Review it below and select Apply to use it.", v.Number)
	if v.Counts.Rejected > 0 {
		msg += " Some certificates were rejected: see why below."
	}
	return u.redirect(w, r, ss, "/trust#staged", msg)
}

func (u *UI) renderTrustUpload(w http.ResponseWriter, r *http.Request, ss *session, status int, f trustUploadForm) error {
	v := newTrustView()
	v.Upload = f
	return u.renderTrust(w, r, ss, status, v)
}

// readTrustFile reads the one file of a form field, if any; a problem is
// said for the user.
func readTrustFile(form *multipart.Form, field string) ([]byte, string) {
	if form == nil || len(form.File[field]) == 0 {
		return nil, ""
	}
	if len(form.File[field]) > 1 {
		return nil, "Choose one file."
	}
	h := form.File[field][0]
	if h.Size > trust.MaxBundleSize {
		return nil, "The file is too large: at most 1 MiB."
	}
	file, err := h.Open()
	if err != nil {
		return nil, "The file could not be read. Choose it again."
	}
	defer file.Close()
	data, err := io.ReadAll(file)
	if err != nil {
		return nil, "The file could not be read. Choose it again."
	}
	return data, ""
}

// joinTrustParts makes one bundle of the pasted PEM and the files. A
// single part goes as it is (PEM or DER); several are joined as PEM, a DER
// file being encoded as its block first.
func joinTrustParts(parts [][]byte) ([]byte, string) {
	if len(parts) == 1 {
		return parts[0], ""
	}
	var out bytes.Buffer
	for _, p := range parts {
		if bytes.Contains(p, []byte("-----BEGIN")) {
			out.Write(p)
			out.WriteByte('\n')
			continue
		}
		certs, crls, err := trust.ParseBundle(p)
		if err != nil {
			return nil, "The upload was refused: " + trustRefusal(err) + "."
		}
		for _, c := range certs {
			_ = pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
		}
		for _, crl := range crls {
			_ = pem.Encode(&out, &pem.Block{Type: "X509 CRL", Bytes: crl.Raw})
		}
	}
	return out.Bytes(), ""
}

// trustAddFromVault stages a vault secret: one not synced yet, or one
// deleted here before.
func (u *UI) trustAddFromVault(w http.ResponseWriter, r *http.Request, ss *session) error {
	list, err := trust.ParseListName(r.PostFormValue("list"))
	name := r.PostFormValue("name")
	if err != nil || name == "" {
		return userError(http.StatusUnprocessableEntity, "Choose a secret of the vault's trust or issuer list.")
	}
	ctx, cancel := trustActionContext(w, r)
	defer cancel()
	v, err := u.o.Trust.AddFromVault(ctx, list, name, author)
	if err != nil {
		view := newTrustView()
		status := http.StatusBadGateway
		if s, msg, ok := trustStoreProblem(err); ok {
			status, view.Errors["trust-vault"] = s, fmt.Sprintf("%q could not be added. %s", name, msg)
		} else {
			if errors.Is(err, trustsync.ErrVaultOff) {
				status = http.StatusConflict
			}
			view.Errors["trust-vault"] = u.vaultProblem(fmt.Sprintf("add %q from the vault", name), err)
		}
		return u.renderTrust(w, r, ss, status, view)
	}
	u.log.Info("vault secret staged from the web UI", "version", v.Number, "list", list, "name", name)
	return u.redirect(w, r, ss, "/trust#staged",
		fmt.Sprintf("Vault secret %q staged as version %d. Review it below and select Apply to use it.", name, v.Number))
}

// trustApply applies the staged version; confirm=1 goes ahead although it
// locks connected clients out or empties the trust list.
func (u *UI) trustApply(w http.ResponseWriter, r *http.Request, ss *session) error {
	n, err := strconv.ParseUint(r.PostFormValue("version"), 10, 64)
	if err != nil || n == 0 {
		return userError(http.StatusUnprocessableEntity, "The form names no version to apply. Reload the page and try again.")
	}
	confirm := r.PostFormValue("confirm") == "1"
	ctx, cancel := trustActionContext(w, r) // uploads are published to the vault
	defer cancel()
	applied, err := u.o.Trust.Apply(ctx, n, trust.ApplyOptions{By: author, Confirm: confirm})
	if err != nil {
		return u.trustApplyFailed(w, r, ss, "apply", n, err)
	}
	u.log.Info("trust version applied from the web UI", "version", applied.Number, "confirmed", confirm)
	return u.redirect(w, r, ss, "/trust", appliedMessage(applied, fmt.Sprintf("Version %d applied.", applied.Number)))
}

func (u *UI) trustRollback(w http.ResponseWriter, r *http.Request, ss *session) error {
	confirm := r.PostFormValue("confirm") == "1"
	ctx, cancel := trustActionContext(w, r)
	defer cancel()
	v, err := u.o.Trust.Rollback(ctx, trust.ApplyOptions{By: author, Confirm: confirm})
	if err != nil {
		return u.trustApplyFailed(w, r, ss, "rollback", 0, err)
	}
	u.log.Warn("trust lists rolled back from the web UI", "version", v.Number, "note", v.Note, "confirmed", confirm)
	return u.redirect(w, r, ss, "/trust", appliedMessage(v, fmt.Sprintf("Rolled back: version %d (%s) is applied.", v.Number, v.Note)))
}

// appliedMessage completes the message after an apply.
func appliedMessage(v trust.Version, msg string) string {
	msg += " New TLS handshakes use it; connected clients stay connected."
	if v.Counts.Rejected > 0 {
		msg += fmt.Sprintf(" %s left out: see the history.", plural(v.Counts.Rejected, "rejected entry was", "rejected entries were"))
	}
	if v.PublishError != "" {
		msg += " Some uploads could not be written to the vault and stay local: " + v.PublishError
	}
	return msg
}

// trustApplyFailed shows why an apply or rollback did not happen: a
// question to confirm, or the store's answer.
func (u *UI) trustApplyFailed(w http.ResponseWriter, r *http.Request, ss *session, action string, n uint64, err error) error {
	v := newTrustView()
	var ce *trust.ConfirmationError
	if errors.As(err, &ce) {
		v.Confirm = &trustConfirm{Action: action, Version: n, Err: ce}
		return u.renderTrust(w, r, ss, http.StatusConflict, v)
	}
	status, msg, ok := trustStoreProblem(err)
	if !ok {
		return err
	}
	if action == "rollback" && errors.Is(err, trust.ErrNotFound) {
		status, msg = http.StatusConflict, "There is no earlier applied version to roll back to."
	}
	v.Errors["trust-"+action] = msg
	return u.renderTrust(w, r, ss, status, v)
}

func (u *UI) trustDiscard(w http.ResponseWriter, r *http.Request, ss *session) error {
	if err := u.o.Trust.Discard(); err != nil {
		status, msg, ok := trustStoreProblem(err)
		if !ok {
			return err
		}
		v := newTrustView()
		v.Errors["trust-discard"] = msg
		return u.renderTrust(w, r, ss, status, v)
	}
	u.log.Info("staged trust version discarded from the web UI")
	return u.redirect(w, r, ss, "/trust", "The staged version was discarded; the applied one stays in use.")
}

// trustDelete stages the removal of an entry. A vault-sourced one is
// removed here only: the vault keeps its secret, and later syncs leave it
// out until it is added from the vault again.
func (u *UI) trustDelete(w http.ResponseWriter, r *http.Request, ss *session) error {
	list, err := trust.ParseListName(r.PathValue("list"))
	if err != nil {
		return errNoTrustEntry
	}
	id := r.PathValue("id")
	v, err := u.o.Trust.StageDelete(list, id, author)
	switch {
	case errors.Is(err, trust.ErrNotFound):
		view := newTrustView()
		view.Errors["trust-delete"] = "That entry is not in the lists any more (or its removal is staged already)."
		return u.renderTrust(w, r, ss, http.StatusNotFound, view)
	case err != nil:
		return err
	}
	u.log.Info("trust entry removal staged from the web UI", "version", v.Number, "list", list, "id", id)
	msg := fmt.Sprintf("Removal staged as version %d. Review it below and select Apply to remove it.", v.Number)
	if len(v.Removed) > 0 && slices.ContainsFunc(v.Removed, func(t trust.Tombstone) bool { return t.List == list && strings.HasPrefix(t.Fingerprint, id) }) {
		msg += " The vault keeps its secret; syncs leave it out until you add it from the vault again."
	}
	return u.redirect(w, r, ss, "/trust#staged", msg)
}

var errNoTrustEntry = userError(http.StatusNotFound, "There is no such entry in the trust or issuer list. It may have been removed.")

// trustEntryView is the detail page of one entry.
type trustEntryView struct {
	E trust.Entry
	// State says where the entry is: "applied" or "staged" (or another
	// version state when looked up by version).
	State   string
	Version uint64
	PEM     string
	// Deletable is set for an entry of the applied version.
	Deletable bool
	Loc       *time.Location
}

// findTrustEntry looks up entry id of list: in version ?version= when
// given, else in the applied version, then the staged one.
func (u *UI) findTrustEntry(r *http.Request) (trust.Entry, trust.Version, error) {
	list, err := trust.ParseListName(r.PathValue("list"))
	if err != nil {
		return trust.Entry{}, trust.Version{}, errNoTrustEntry
	}
	id := r.PathValue("id")
	find := func(v trust.Version) (trust.Entry, bool) {
		i := slices.IndexFunc(v.Entries, func(e trust.Entry) bool { return e.List == list && (e.ID == id || e.Fingerprint == id) })
		if i < 0 {
			return trust.Entry{}, false
		}
		return v.Entries[i], true
	}
	var versions []func() (trust.Version, bool, error)
	if q := r.URL.Query().Get("version"); q != "" {
		n, err := strconv.ParseUint(q, 10, 64)
		if err != nil {
			return trust.Entry{}, trust.Version{}, errNoTrustEntry
		}
		versions = append(versions, func() (trust.Version, bool, error) {
			v, err := u.o.Trust.Version(n)
			if errors.Is(err, trust.ErrNotFound) {
				return v, false, nil
			}
			return v, err == nil, err
		})
	} else {
		versions = append(versions,
			func() (trust.Version, bool, error) { v, err := u.o.Trust.Applied(); return v, err == nil, err },
			u.o.Trust.Staged)
	}
	for _, get := range versions {
		v, ok, err := get()
		if err != nil {
			return trust.Entry{}, trust.Version{}, err
		}
		if !ok {
			continue
		}
		if e, ok := find(v); ok {
			return e, v, nil
		}
	}
	return trust.Entry{}, trust.Version{}, errNoTrustEntry
}

func (u *UI) trustEntryPage(w http.ResponseWriter, r *http.Request, ss *session) error {
	e, v, err := u.findTrustEntry(r)
	if err != nil {
		return err
	}
	view := trustEntryView{
		E: e, State: string(v.State), Version: v.Number, PEM: string(e.PEM()),
		Deletable: v.State == trust.StateApplied, Loc: u.location(),
	}
	return u.render(w, r, ss, u.page(ss, e.Name, "trust"), trustEntryPage(view))
}

// trustEntryPEM downloads an entry's certificate (and CRL) as PEM.
func (u *UI) trustEntryPEM(w http.ResponseWriter, r *http.Request, _ *session) error {
	e, _, err := u.findTrustEntry(r)
	if err != nil {
		return err
	}
	data := e.PEM()
	h := w.Header()
	h.Set("Content-Type", "application/x-pem-file")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": downloadName(e.Name) + ".pem"}))
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(data)))
	_, _ = w.Write(data) // a certificate sent as an attachment, never rendered
	return nil
}

// trustEntryURL is the detail page of an entry; version 0 looks in the
// applied version (then the staged one).
func trustEntryURL(e trust.Entry, version uint64) string {
	s := "/trust/" + url.PathEscape(string(e.List)) + "/" + url.PathEscape(e.ID)
	if version != 0 {
		s += "?version=" + strconv.FormatUint(version, 10)
	}
	return s
}

// trustEntryPEMURL downloads an entry's PEM.
func trustEntryPEMURL(e trust.Entry, version uint64) string {
	s := "/trust/" + url.PathEscape(string(e.List)) + "/" + url.PathEscape(e.ID) + "/pem"
	if version != 0 {
		s += "?version=" + strconv.FormatUint(version, 10)
	}
	return s
}

// breakableHex writes a colon-separated fingerprint with a line break
// opportunity after each colon, so that a table column of them can wrap.
func breakableHex(colon string) templ.Component {
	return templ.ComponentFunc(func(_ context.Context, w io.Writer) error {
		for i, part := range strings.Split(colon, ":") {
			if i > 0 {
				if _, err := io.WriteString(w, ":<wbr>"); err != nil {
					return err
				}
			}
			if _, err := io.WriteString(w, templ.EscapeString(part)); err != nil {
				return err
			}
		}
		return nil
	})
}

// trustCounts sums up a version's content.
func trustCounts(c trust.Counts) string {
	s := plural(c.Trust, "trust anchor", "trust anchors") + ", " + plural(c.Issuer, "issuer", "issuers")
	if c.Rejected > 0 {
		s += ", " + strconv.Itoa(c.Rejected) + " rejected"
	}
	if c.Removed > 0 {
		s += ", " + plural(c.Removed, "vault secret", "vault secrets") + " deleted here"
	}
	return s
}

// versionStateClass colours a version's state badge.
func versionStateClass(s trust.State) string {
	switch s {
	case trust.StateApplied:
		return "ok"
	case trust.StateStaged:
		return "warn"
	}
	return ""
}

func trustDeleteURL(e trust.Entry) string {
	return "/trust/" + url.PathEscape(string(e.List)) + "/" + url.PathEscape(e.ID) + "/delete"
}

// trustSource says where an entry came from: "vault <name> v<version>" or
// "upload".
func trustSource(s trust.Source) string {
	if s.Kind == trust.SourceVault {
		return fmt.Sprintf("vault %s v%d", s.Name, s.Version)
	}
	return string(s.Kind)
}

// trustDeleteQuestion is the confirmation of a delete: a synced entry is
// removed here only.
func trustDeleteQuestion(e trust.Entry) string {
	if e.Source.Kind == trust.SourceVault {
		return fmt.Sprintf("Stage the removal of %q? Only this gateway's copy is removed: the vault keeps its secret %q, "+
			"and later syncs leave it out until it is added from the vault again. Nothing changes until you apply.", e.Name, e.Source.Name)
	}
	return fmt.Sprintf("Stage the removal of %q? Nothing changes until you apply.", e.Name)
}

func listLabel(l trust.ListName) string {
	if l == trust.IssuerList {
		return "issuer list"
	}
	return "trust list"
}

// confirmQuestion says why an apply or rollback needs confirmation.
func confirmQuestion(c *trustConfirm) string {
	var why []string
	if c.Err.Sessions > 0 {
		why = append(why, fmt.Sprintf("%s connected with certificates of CAs it removes (%s); they are refused at their next connection",
			plural(c.Err.Sessions, "client is", "clients are"), strings.Join(c.Err.CAs, ", ")))
	}
	if c.Err.EmptiesTrustList {
		why = append(why, "it leaves the trust list empty: only the built-in local CA and the store's client CAs stay trusted")
	}
	return strings.Join(why, "; and ")
}

func caEntry(c *x509.Certificate, source string) trustEntry {
	sum := sha256.Sum256(c.Raw)
	return trustEntry{
		Name: c.Subject.CommonName, Source: source, Subject: c.Subject.String(), Issuer: c.Issuer.String(),
		NotAfter: c.NotAfter, Fingerprint: colonHex(fmt.Sprintf("%X", sum[:])),
	}
}

func issuerSource(k ca.IssuerKind) string {
	switch k {
	case ca.IssuerLocal:
		return "local CA intermediate"
	case ca.IssuerLocalPrevious:
		return "previous local intermediate (kept while its certificates are valid)"
	case ca.IssuerImported:
		return "imported issuer"
	}
	return string(k)
}

// colonHex writes a hex fingerprint as AA:BB:…, the way openssl shows it.
func colonHex(h string) string {
	h = strings.ToUpper(strings.ReplaceAll(h, ":", ""))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i:min(i+2, len(h))])
	}
	return b.String()
}
