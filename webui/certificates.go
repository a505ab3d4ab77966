package webui

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
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
	"time"

	"github.com/a-h/templ"

	"github.com/edgegate/edgegate/certs"
	"github.com/edgegate/edgegate/certs/bundle"
	"github.com/edgegate/edgegate/certs/ca"
)

func (u *UI) certificateRoutes() {
	route := func(pattern string, h handler) {
		u.authed(pattern, func(w http.ResponseWriter, r *http.Request, ss *session) error {
			if u.o.Certificates == nil {
				return userError(http.StatusServiceUnavailable, "The certificate store is not running on this gateway.")
			}
			return h(w, r, ss)
		})
	}
	route("GET /certificates", u.certificates)
	route("POST /certificates/create", u.createCertificate)
	route("POST /certificates/acme", u.requestACMECertificate)
	route("POST /certificates/import", u.importCertificate)
	route("GET /certificates/downloads/{token}", u.certificateDownload)
	route("GET /certificates/{id}", u.certificate)
	route("POST /certificates/{id}/export", u.exportCertificate)
	route("POST /certificates/{id}/renew", u.renewCertificate)
	route("POST /certificates/{id}/revoke", u.revokeCertificate)
	route("POST /certificates/{id}/delete", u.deleteCertificate)
}

// certificateURL is the detail page of certificate id.
func certificateURL(id string) string { return "/certificates/" + url.PathEscape(id) }

func certificateAction(id, action string) templ.SafeURL {
	return templ.SafeURL(certificateURL(id) + "/" + action)
}

// certificateStatus is a certificate's state as a badge: Label is valid,
// expiring, expired, revoked, not yet valid or invalid; Class is the
// badge's colour (ok, warn, bad).
type certificateStatus struct{ Label, Class string }

func statusOf(c certs.Certificate, now time.Time) certificateStatus {
	ms := now.UnixMilli()
	switch {
	case c.Revoked:
		return certificateStatus{"revoked", "bad"}
	case ms >= c.To:
		return certificateStatus{"expired", "bad"}
	case ms < c.From:
		return certificateStatus{"not yet valid", "warn"}
	case !c.Valid:
		return certificateStatus{"invalid", "bad"}
	case time.UnixMilli(c.To).Sub(now) < expiringSoon:
		return certificateStatus{"expiring", "warn"}
	}
	return certificateStatus{"valid", "ok"}
}

// usageOf names what a certificate may do (its key usages) and what the
// gateway does with it (its roles).
func usageOf(c certs.Certificate, leaf *x509.Certificate) []string {
	var out []string
	if leaf.IsCA {
		out = append(out, "CA")
	}
	for _, eku := range leaf.ExtKeyUsage {
		switch eku {
		case x509.ExtKeyUsageServerAuth:
			out = append(out, "TLS server")
		case x509.ExtKeyUsageClientAuth:
			out = append(out, "TLS client")
		case x509.ExtKeyUsageAny:
			out = append(out, "any purpose")
		}
	}
	for _, role := range c.Usage {
		switch role {
		case certs.RoleServer:
			out = append(out, "served by the TLS listeners")
		case certs.RoleClientCA:
			out = append(out, "trusted for client certificates")
		}
	}
	return out
}

func sourceLabel(s certs.Source) string {
	switch s {
	case certs.SourceLocal:
		return "issued by the local CA"
	case certs.SourceACME:
		return "obtained from the ACME CA"
	case certs.SourceImported:
		return "imported"
	}
	return string(s)
}

// certificateRow is one line of the certificates list.
type certificateRow struct {
	C      certs.Certificate
	Status certificateStatus
	Usage  []string
}

// localCAView is the local CA as the certificates page shows it.
type localCAView struct {
	Fingerprint string
	Issuer      string // the subject of the issuer that signs new certificates
	IssuerUntil time.Time
}

// certificatesView is the certificates page: the list, the local CA and
// the forms that add a certificate. Open names the form shown unfolded
// (the one with errors).
type certificatesView struct {
	Rows   []certificateRow
	CA     *localCAView
	ACME   bool // an ACME CA is configured
	Create createForm
	Order  acmeForm
	Import importForm
	Open   string // "create", "acme", "import" or ""
	Loc    *time.Location
}

func newCertificatesView() certificatesView {
	return certificatesView{
		Create: createForm{Usage: "client", KeyType: keyTypeChoices[0].Value, ValidityDays: "365"},
		Order:  acmeForm{Serve: true},
	}
}

func (u *UI) certificates(w http.ResponseWriter, r *http.Request, ss *session) error {
	return u.renderCertificates(w, r, ss, http.StatusOK, newCertificatesView())
}

// renderCertificates fills v's list and local CA and renders it with status.
func (u *UI) renderCertificates(w http.ResponseWriter, r *http.Request, ss *session, status int, v certificatesView) error {
	list, err := u.o.Certificates.List()
	if err != nil {
		return err
	}
	now := u.o.Now()
	for _, c := range list {
		chain, err := certs.ParseChainPEM(c.Chain)
		if err != nil {
			return fmt.Errorf("certificate %q: %w", c.ID, err)
		}
		v.Rows = append(v.Rows, certificateRow{C: c, Status: statusOf(c, now), Usage: usageOf(c, chain[0])})
	}
	slices.SortStableFunc(v.Rows, func(a, b certificateRow) int {
		return strings.Compare(strings.ToLower(a.C.Name), strings.ToLower(b.C.Name))
	})
	if u.o.Authority != nil {
		v.CA = &localCAView{Fingerprint: u.o.Authority.RootFingerprint()}
		for _, iss := range u.o.Authority.Issuers() {
			if iss.Active {
				v.CA.Issuer, v.CA.IssuerUntil = iss.Cert.Subject.String(), iss.Cert.NotAfter
			}
		}
	}
	v.ACME = u.o.Settings != nil && u.o.Settings.Effective().Config.ACME.Enabled()
	v.Loc = u.location()
	u.renderStatus(w, r, ss, status, u.page(ss, "Certificates", "certificates"), certificatesPage(v))
	return nil
}

// createForm asks the local CA for a certificate.
type createForm struct {
	Name, CommonName, Hosts, Usage, KeyType, ValidityDays string
	AutoRenew                                             bool
	Errors                                                map[string]string
}

type choice struct{ Value, Label string }

// keyTypeChoices are the key types the local CA generates, default first.
var keyTypeChoices = []choice{
	{string(ca.KeyECDSAP256), "ECDSA P-256 (recommended)"},
	{string(ca.KeyECDSAP384), "ECDSA P-384"},
	{string(ca.KeyRSA2048), "RSA 2048 (for devices without ECDSA)"},
	{string(ca.KeyRSA3072), "RSA 3072"},
	{string(ca.KeyRSA4096), "RSA 4096"},
}

// maxValidityDays bounds a lifetime typed in the form; the CA also caps it
// at its issuer's expiry.
const maxValidityDays = 3650

// maxCommonName is X.509's upper bound for a CN (ub-common-name).
const maxCommonName = 64

// check validates the form, recording problems in f.Errors, and returns
// what to ask the certificate manager.
func (f *createForm) check() (certs.Meta, certs.IssueParams) {
	var p certs.IssueParams
	switch f.Usage {
	case "client":
		p.Client = true
	case "server":
		p.Server = true
	case "both":
		p.Client, p.Server = true, true
	default:
		f.Errors["create-usage"] = "Choose what the certificate is for."
	}
	switch {
	case f.CommonName == "":
		f.Errors["create-cn"] = "Enter the common name, e.g. the sensor's name."
	case len(f.CommonName) > maxCommonName:
		f.Errors["create-cn"] = fmt.Sprintf("At most %d characters.", maxCommonName)
	default:
		p.Subject = pkix.Name{CommonName: f.CommonName}.String()
		if _, err := ca.ParseDN(p.Subject); err != nil {
			f.Errors["create-cn"] = "The name holds characters a certificate subject cannot carry."
		}
	}
	p.Hosts = splitList(f.Hosts)
	if p.Server && len(p.Hosts) == 0 {
		f.Errors["create-hosts"] = "A server certificate needs the DNS names or IP addresses its clients connect to."
	}
	days, err := strconv.Atoi(f.ValidityDays)
	if err != nil || days < 1 || days > maxValidityDays {
		f.Errors["create-validity"] = fmt.Sprintf("Enter a number of days from 1 to %d.", maxValidityDays)
	}
	p.ValiditySeconds = int64(days) * 24 * 60 * 60
	if !slices.ContainsFunc(keyTypeChoices, func(c choice) bool { return c.Value == f.KeyType }) {
		f.Errors["create-key-type"] = "Choose a key type from the list."
	}
	p.KeyType = f.KeyType
	return certs.Meta{Name: f.Name, AutoRenew: f.AutoRenew, Client: p.Client}, p
}

// splitList splits a list typed by hand on commas and white space.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
}

func (u *UI) createCertificate(w http.ResponseWriter, r *http.Request, ss *session) error {
	f := createForm{
		Name:         strings.TrimSpace(r.PostFormValue("name")),
		CommonName:   strings.TrimSpace(r.PostFormValue("common_name")),
		Hosts:        strings.TrimSpace(r.PostFormValue("hosts")),
		Usage:        r.PostFormValue("usage"),
		KeyType:      r.PostFormValue("key_type"),
		ValidityDays: strings.TrimSpace(r.PostFormValue("validity_days")),
		AutoRenew:    r.PostFormValue("auto_renew") != "",
		Errors:       map[string]string{},
	}
	meta, params := f.check()
	if len(f.Errors) == 0 {
		c, err := u.o.Certificates.Create(meta, params)
		switch {
		case errors.Is(err, certs.ErrInvalid):
			f.Errors["create"] = "The local CA refused the request: " + refusal(err)
		case err != nil:
			return err
		default:
			u.log.Info("certificate issued from the web UI", "id", c.ID, "subject", c.Subject, "serial", c.Serial)
			return u.redirect(w, r, ss, certificateURL(c.ID), fmt.Sprintf("Certificate %q issued by the local CA.", c.Name))
		}
	}
	v := newCertificatesView()
	v.Create, v.Open = f, "create"
	return u.renderCertificates(w, r, ss, http.StatusUnprocessableEntity, v)
}

// refusal is what is wrong according to an error wrapping certs.ErrInvalid
// (or, from the CA, ca.ErrInvalidRequest). These packages word that part
// for whoever made the request, e.g. which host name is not valid; the
// prefixes before it name internals and are left out.
func refusal(err error) string {
	s := err.Error()
	for _, sentinel := range []error{ca.ErrInvalidRequest, certs.ErrInvalid} {
		prefix := sentinel.Error() + ": "
		if i := strings.LastIndex(s, prefix); i >= 0 {
			return s[i+len(prefix):]
		}
	}
	return "the request is not valid"
}

// acmeForm orders a certificate from the ACME CA of the settings.
type acmeForm struct {
	Names, Name string
	Serve       bool
	Errors      map[string]string
}

// acmeWait bounds an action that waits on an ACME CA, which polls an order
// for minutes at worst (as the JSON API allows).
const acmeWait = 4 * time.Minute

// acmeContext is the context of an action that may wait on an ACME CA. It
// outlives the request, so that a closed tab does not abandon an order
// halfway, and it pushes the server's write deadline past it, so that the
// answer still reaches the browser.
func acmeContext(w http.ResponseWriter, r *http.Request) (context.Context, context.CancelFunc) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(acmeWait + 30*time.Second))
	return context.WithTimeout(context.WithoutCancel(r.Context()), acmeWait)
}

const msgNoACME = "No ACME CA is configured: set its directory URL under Listeners & settings first."

func (u *UI) requestACMECertificate(w http.ResponseWriter, r *http.Request, ss *session) error {
	f := acmeForm{
		Names:  strings.TrimSpace(r.PostFormValue("names")),
		Name:   strings.TrimSpace(r.PostFormValue("name")),
		Serve:  r.PostFormValue("serve") != "",
		Errors: map[string]string{},
	}
	status := http.StatusUnprocessableEntity
	names := splitList(f.Names)
	if len(names) == 0 {
		f.Errors["acme-names"] = "Enter at least one host name."
	} else {
		ctx, cancel := acmeContext(w, r)
		defer cancel()
		c, err := u.o.Certificates.ObtainACME(ctx, certs.Meta{Name: f.Name}, names, f.Serve)
		switch {
		case err == nil:
			u.log.Info("ACME certificate obtained from the web UI", "id", c.ID, "names", names, "serve", f.Serve)
			msg := fmt.Sprintf("Certificate for %s obtained from the ACME CA.", strings.Join(names, ", "))
			if f.Serve {
				msg += " The TLS listeners serve it from now on."
			}
			return u.redirect(w, r, ss, certificateURL(c.ID), msg)
		case errors.Is(err, certs.ErrNoACME):
			status = http.StatusConflict
			f.Errors["acme"] = msgNoACME
		case errors.Is(err, certs.ErrInvalid):
			f.Errors["acme"] = "The request was refused: " + refusal(err)
		default:
			u.log.Warn("ACME order from the web UI failed", "names", names, "error", err)
			status = http.StatusBadGateway
			f.Errors["acme"] = "The ACME CA did not issue the certificate. Check that the names resolve to this gateway " +
				"and that the CA can reach it to check them; the CA's answer is in the gateway's log."
		}
	}
	v := newCertificatesView()
	v.Order, v.Open = f, "acme"
	return u.renderCertificates(w, r, ss, status, v)
}

// importForm uploads a certificate (PEM or PKCS#12).
type importForm struct {
	Name     string
	ClientCA bool
	Errors   map[string]string
}

// The bounds of an import upload: a certificate file is at most
// bundle.MaxInputSize, and PEM certificate and key may come as two files.
const (
	maxImportFiles = 4
	maxImportBody  = 2*bundle.MaxInputSize + 64<<10
)

func (u *UI) importCertificate(w http.ResponseWriter, r *http.Request, ss *session) error {
	f := importForm{Errors: map[string]string{}}
	r.Body = http.MaxBytesReader(w, r.Body, maxImportBody)
	if err := r.ParseMultipartForm(maxImportBody); err != nil { //nolint:gosec // G120: the body is limited by http.MaxBytesReader
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			f.Errors["import-file"] = "The upload is too large: a certificate file is at most 1 MiB."
		} else {
			f.Errors["import-file"] = "The upload could not be read. Choose the file again."
		}
		return u.renderImport(w, r, ss, f)
	}
	defer func() { _ = r.MultipartForm.RemoveAll() }()
	f.Name = strings.TrimSpace(r.FormValue("name"))
	f.ClientCA = r.FormValue("client_ca") != ""
	files, problem := readUploads(r.MultipartForm.File["file"])
	if problem != "" {
		f.Errors["import-file"] = problem
		return u.renderImport(w, r, ss, f)
	}
	bd, field, problem := parseUpload(files, r.FormValue("password"))
	if problem != "" {
		f.Errors[field] = problem
		return u.renderImport(w, r, ss, f)
	}
	c, err := u.o.Certificates.Add(certs.Meta{Name: f.Name, ClientCA: f.ClientCA}, bd.Chain, bd.Key, certs.SourceImported)
	switch {
	case errors.Is(err, certs.ErrInvalid):
		f.Errors["import"] = "The certificate was refused: " + refusal(err)
		return u.renderImport(w, r, ss, f)
	case err != nil:
		return err
	}
	u.log.Info("certificate imported from the web UI", "id", c.ID, "subject", c.Subject, "with_key", bd.Key != nil)
	return u.redirect(w, r, ss, certificateURL(c.ID), fmt.Sprintf("Certificate %q imported.", c.Name))
}

func (u *UI) renderImport(w http.ResponseWriter, r *http.Request, ss *session, f importForm) error {
	v := newCertificatesView()
	v.Import, v.Open = f, "import"
	return u.renderCertificates(w, r, ss, http.StatusUnprocessableEntity, v)
}

// readUploads reads the uploaded files; a problem is said for the user.
func readUploads(headers []*multipart.FileHeader) ([][]byte, string) {
	switch {
	case len(headers) == 0:
		return nil, "Choose a certificate file: PEM (.pem, .crt, .key) or PKCS#12 (.p12, .pfx)."
	case len(headers) > maxImportFiles:
		return nil, fmt.Sprintf("Choose at most %d files.", maxImportFiles)
	}
	var files [][]byte
	for _, h := range headers {
		if h.Size > bundle.MaxInputSize {
			return nil, "The file is too large: a certificate file is at most 1 MiB."
		}
		file, err := h.Open()
		if err != nil {
			return nil, "The upload could not be read. Choose the file again."
		}
		data, err := io.ReadAll(file)
		_ = file.Close()
		if err != nil {
			return nil, "The upload could not be read. Choose the file again."
		}
		files = append(files, data)
	}
	return files, ""
}

// parseUpload decodes the uploaded files as one PEM bundle (certificates
// and key may come in separate files) or as a single PKCS#12 file. A
// problem is said for the user, for the form field it concerns.
func parseUpload(files [][]byte, password string) (bd *bundle.Bundle, field, problem string) {
	if joined := bytes.Join(files, []byte("\n")); bytes.Contains(joined, []byte("-----BEGIN ")) {
		bd, err := bundle.ParsePEM(joined, []byte(password))
		if err != nil {
			field, problem = uploadProblem(err, false)
		}
		return bd, field, problem
	}
	if len(files) > 1 {
		return nil, "import-file", "Only PEM files can be combined: choose a single PKCS#12 file."
	}
	bd, err := bundle.ParsePKCS12(files[0], password)
	if err != nil {
		field, problem = uploadProblem(err, true)
	}
	return bd, field, problem
}

// uploadProblem says what is wrong with an upload bundle refused.
func uploadProblem(err error, pkcs12 bool) (field, problem string) {
	switch {
	case errors.Is(err, bundle.ErrBadPassword) && pkcs12:
		return "import-password", "Wrong password for this PKCS#12 file."
	case errors.Is(err, bundle.ErrBadPassword):
		return "import-password", "The private key is encrypted: enter its password (this one is wrong or missing)."
	case errors.Is(err, bundle.ErrTooLarge):
		return "import-file", "The file is too large: at most 1 MiB and 16 certificates."
	case errors.Is(err, bundle.ErrKeyMismatch):
		return "import-file", "The private key does not belong to the certificate."
	case errors.Is(err, bundle.ErrNotAChain):
		return "import-file", "The certificates do not form one chain: leave out those that did not issue the certificate or its issuers."
	case errors.Is(err, bundle.ErrUnsupportedKey):
		return "import-file", "This kind of private key is not supported: use ECDSA P-256 or P-384, RSA of at least 2048 bits, or Ed25519."
	case errors.Is(err, bundle.ErrNoCertificate) && !pkcs12:
		return "import-file", "The file holds no certificate."
	case pkcs12:
		return "import-file", "The file is neither PEM nor PKCS#12."
	}
	return "import-file", "The PEM file is malformed, or holds something other than certificates and at most one private key."
}

// chainEntry is one certificate of a chain on the detail page.
type chainEntry struct {
	Subject, Issuer, Serial, Fingerprint string
	NotBefore, NotAfter                  time.Time
}

// revocationReasons are the RFC 5280 reasons offered for a revocation
// (certs.ParseReason names); the CA-only and temporary ones are left out.
var revocationReasons = []choice{
	{"unspecified", "Unspecified"},
	{"keyCompromise", "Key compromise: the private key may be known to others"},
	{"superseded", "Superseded: replaced by a new certificate"},
	{"cessationOfOperation", "Cessation of operation: the device is retired"},
	{"affiliationChanged", "Affiliation changed"},
	{"privilegeWithdrawn", "Privilege withdrawn"},
}

// certificateDetailView is the detail page of one certificate. Errors
// holds a failed action's message by form ("renew", "revoke",
// "revoke-reason", "delete").
type certificateDetailView struct {
	C         certs.Certificate
	Status    certificateStatus
	Usage     []string
	Chain     []chainEntry
	Renewable bool
	Deletable bool   // not while the listeners serve it
	Reason    string // the revocation reason selected
	Errors    map[string]string
	Loc       *time.Location
}

func (u *UI) certificate(w http.ResponseWriter, r *http.Request, ss *session) error {
	return u.renderCertificate(w, r, ss, http.StatusOK, r.PathValue("id"), "unspecified", nil)
}

func (u *UI) renderCertificate(w http.ResponseWriter, r *http.Request, ss *session, status int, id, reason string, errs map[string]string) error {
	c, err := u.o.Certificates.Get(id)
	if err != nil {
		return lookupError(err)
	}
	chain, err := certs.ParseChainPEM(c.Chain)
	if err != nil {
		return fmt.Errorf("certificate %q: %w", id, err)
	}
	v := certificateDetailView{
		C: c, Status: statusOf(c, u.o.Now()), Usage: usageOf(c, chain[0]), Renewable: c.Source != certs.SourceImported,
		Deletable: !slices.Contains(c.Usage, certs.RoleServer), Reason: reason, Errors: errs, Loc: u.location(),
	}
	for _, cert := range chain {
		v.Chain = append(v.Chain, chainEntry{
			Subject: cert.Subject.String(), Issuer: cert.Issuer.String(), Serial: cert.SerialNumber.Text(16),
			Fingerprint: sha256Fingerprint(cert.Raw), NotBefore: cert.NotBefore, NotAfter: cert.NotAfter,
		})
	}
	u.renderStatus(w, r, ss, status, u.page(ss, c.Name, "certificates"), certificateDetailPage(v))
	return nil
}

// lookupError answers a certificate id the store does not know.
func lookupError(err error) error {
	if errors.Is(err, certs.ErrNotFound) {
		return userError(http.StatusNotFound, "There is no such certificate. It may have been deleted.")
	}
	return err
}

// exportView shows an exported file's password once, with its link.
type exportView struct {
	C        certs.Certificate
	Password string
	File     string
	URL      string
	Legacy   bool
}

// exportCertificate makes a PKCS#12 file of the certificate, its chain and
// its key, for a sensor. The password is generated, shown in this answer
// only and stored nowhere; the file waits in the session for one download.
func (u *UI) exportCertificate(w http.ResponseWriter, r *http.Request, ss *session) error {
	id := r.PathValue("id")
	var enc bundle.Encoding
	switch r.PostFormValue("encoding") {
	case "", "modern":
		enc = bundle.Modern
	case "legacy":
		enc = bundle.Legacy
	default:
		return userError(http.StatusUnprocessableEntity, "Choose the file's encryption from the list.")
	}
	c, err := u.o.Certificates.Get(id)
	if err != nil {
		return lookupError(err)
	}
	key, err := u.o.Certificates.Key(id)
	if err != nil {
		return lookupError(err)
	}
	if key == nil {
		return userError(http.StatusConflict, "The gateway has no private key for this certificate, so there is nothing to export for a sensor.")
	}
	chain, err := certs.ParseChainPEM(c.Chain)
	if err != nil {
		return fmt.Errorf("export %q: %w", id, err)
	}
	password := rand.Text()
	p12, err := (&bundle.Bundle{Chain: chain, Key: key}).PKCS12(password, enc)
	if err != nil {
		return fmt.Errorf("export %q: %w", id, err)
	}
	file := downloadName(c.Name) + ".p12"
	token := u.sessions.addDownload(ss, download{name: file, contentType: "application/x-pkcs12", data: p12})
	u.log.Info("certificate exported with its key from the web UI", "id", id, "encoding", enc.String())
	v := exportView{C: c, Password: password, File: file, URL: "/certificates/downloads/" + token, Legacy: enc == bundle.Legacy}
	u.renderStatus(w, r, ss, http.StatusOK, u.page(ss, "Export "+c.Name, "certificates"), certificateExportPage(v))
	return nil
}

// downloadName makes a file name of a certificate name: letters, digits,
// '.', '_' and '-' only, so that it needs no quoting anywhere.
func downloadName(name string) string {
	out := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, name)
	out = strings.Trim(out, "._")
	if out == "" {
		return "certificate"
	}
	return out[:min(len(out), 64)]
}

// certificateDownload serves an exported file once.
func (u *UI) certificateDownload(w http.ResponseWriter, r *http.Request, ss *session) error {
	d, ok := u.sessions.takeDownload(ss, r.PathValue("token"))
	if !ok {
		return userError(http.StatusNotFound,
			"This download is gone: an exported file can be downloaded once. Export the certificate again for a new file and password.")
	}
	h := w.Header()
	h.Set("Content-Type", d.contentType)
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": d.name}))
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(d.data)))
	_, _ = w.Write(d.data) // a PKCS#12 file sent as an attachment, never rendered
	return nil
}

func (u *UI) renewCertificate(w http.ResponseWriter, r *http.Request, ss *session) error {
	id := r.PathValue("id")
	ctx, cancel := acmeContext(w, r)
	defer cancel()
	c, err := u.o.Certificates.Renew(ctx, id)
	var status int
	var problem string
	switch {
	case err == nil:
		u.log.Info("certificate renewed from the web UI", "id", id, "serial", c.Serial)
		return u.redirect(w, r, ss, certificateURL(id),
			fmt.Sprintf("Certificate renewed: the new one is valid until %s.", formatMillis(c.To, u.location())))
	case errors.Is(err, certs.ErrNotFound):
		return lookupError(err)
	case errors.Is(err, certs.ErrNotRenewable):
		status, problem = http.StatusConflict, "The gateway cannot renew this certificate: it was not issued with a key here. Import its successor instead."
	case errors.Is(err, certs.ErrNoACME):
		status, problem = http.StatusConflict, msgNoACME
	default:
		u.log.Warn("certificate renewal from the web UI failed", "id", id, "error", err)
		status, problem = http.StatusBadGateway, "The renewal failed; the reason is in the gateway's log. The current certificate stays in use."
	}
	return u.renderCertificate(w, r, ss, status, id, "unspecified", map[string]string{"renew": problem})
}

func (u *UI) revokeCertificate(w http.ResponseWriter, r *http.Request, ss *session) error {
	id := r.PathValue("id")
	reason := r.PostFormValue("reason")
	if !slices.ContainsFunc(revocationReasons, func(c choice) bool { return c.Value == reason }) {
		return u.renderCertificate(w, r, ss, http.StatusUnprocessableEntity, id, "unspecified",
			map[string]string{"revoke-reason": "Choose a reason from the list."})
	}
	cur, err := u.o.Certificates.Get(id)
	if err != nil {
		return lookupError(err)
	}
	ctx, cancel := acmeContext(w, r) // an ACME certificate is revoked at its CA
	defer cancel()
	c, err := u.o.Certificates.Revoke(ctx, id, reason)
	var status int
	var problem string
	switch {
	case err == nil:
		u.log.Warn("certificate revoked from the web UI", "id", id, "serial", c.Serial, "reason", reason)
		return u.redirect(w, r, ss, certificateURL(id),
			fmt.Sprintf("Certificate %q revoked. Clients presenting it are refused from now on.", c.Name))
	case errors.Is(err, certs.ErrNotFound):
		return lookupError(err)
	case errors.Is(err, certs.ErrNoACME):
		status, problem = http.StatusConflict, "This certificate comes from an ACME CA, and none is configured now to revoke it at."
	case errors.Is(err, certs.ErrInvalid):
		status, problem = http.StatusUnprocessableEntity, "The revocation was refused: "+refusal(err)
	case cur.Source == certs.SourceACME:
		u.log.Warn("ACME revocation from the web UI failed", "id", id, "error", err)
		status, problem = http.StatusBadGateway, "The ACME CA did not revoke the certificate; its answer is in the gateway's log."
	default:
		return err
	}
	return u.renderCertificate(w, r, ss, status, id, reason, map[string]string{"revoke": problem})
}

func (u *UI) deleteCertificate(w http.ResponseWriter, r *http.Request, ss *session) error {
	id := r.PathValue("id")
	c, err := u.o.Certificates.Get(id)
	if err != nil {
		return lookupError(err)
	}
	err = u.o.Certificates.Delete(id)
	switch {
	case errors.Is(err, certs.ErrInUse):
		return u.renderCertificate(w, r, ss, http.StatusConflict, id, "unspecified",
			map[string]string{"delete": "The TLS listeners serve this certificate: have them serve another one before deleting it."})
	case err != nil:
		return lookupError(err)
	}
	u.log.Info("certificate deleted from the web UI", "id", id)
	return u.redirect(w, r, ss, "/certificates", fmt.Sprintf("Certificate %q deleted.", c.Name))
}

// sha256Fingerprint is a certificate's SHA-256 as AA:BB:….
func sha256Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return colonHex(hex.EncodeToString(sum[:]))
}
