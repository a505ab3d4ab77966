package api

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/edgegate/edgegate/certs"
	"github.com/edgegate/edgegate/certs/bundle"
	"github.com/edgegate/edgegate/gateway/admin"
	"github.com/edgegate/edgegate/gateway/config"
)

// The certificate routes answer under both prefixes: /api/v1 like the rest
// of the API, and /api as seed 004 (Otoroshi) has it, so its scripts work.
var certificatePrefixes = []string{"/api/v1/certificates", "/api/certificates"}

func (a *API) certificateRoutes() {
	route := func(pattern string, h handlerFunc) {
		a.scoped(admin.ScopeCertificates, pattern, func(w http.ResponseWriter, r *http.Request) error {
			if a.o.Certificates == nil {
				return unavailable("the certificate store")
			}
			return h(w, r)
		})
	}
	for _, p := range certificatePrefixes {
		route("GET "+p, a.listCertificates)
		route("POST "+p, a.createCertificate)
		route("POST "+p+"/_import", a.importCertificate)
		route("POST "+p+"/_renew", a.renewCertificates)
		route("POST "+p+"/_create", a.issueCertificate)
		route("POST "+p+"/_sign", a.signCSR)
		route("POST "+p+"/_letsencrypt", a.obtainACMECertificate)
		route("POST "+p+"/{id}/_revoke", a.revokeCertificate)
		route("GET "+p+"/{id}", a.getCertificate)
		route("PUT "+p+"/{id}", a.putCertificate)
		route("PATCH "+p+"/{id}", a.patchCertificate)
		route("DELETE "+p+"/{id}", a.deleteCertificate)
		route("GET "+p+"/{id}/valid", a.certificateValidity)
		route("POST "+p+"/{id}/_export", a.exportCertificate)
	}
}

// certificateBody is a certificate as a client sends it: the entity itself
// (so a GET, edited, can be PUT back; derived fields are accepted and
// ignored) plus the key's password. A key is given in PEM with chain.
type certificateBody struct {
	certs.Certificate
	// PrivateKey is the PEM key of the leaf; write-only.
	PrivateKey string `json:"privateKey"`
	// Password decrypts an encrypted privateKey; it is never stored.
	Password *string `json:"password"`
}

func (b certificateBody) meta() certs.Meta {
	c := b.Certificate
	return certs.Meta{
		ID: c.ID, Name: c.Name, Description: c.Description, CARef: c.CARef, Exposed: c.Exposed,
		AutoRenew: c.AutoRenew, Client: c.Client, ClientCA: c.ClientCA, Tags: c.Tags, Metadata: c.Metadata,
	}
}

// parsed decodes the chain and key of b; a nil bundle means b carries no chain.
func (b certificateBody) parsed() (*bundle.Bundle, error) {
	if b.Chain == "" {
		if b.PrivateKey != "" {
			return nil, errorf(http.StatusUnprocessableEntity, "invalid_certificate", "privateKey given without chain")
		}
		return nil, nil
	}
	var password []byte
	if b.Password != nil {
		password = []byte(*b.Password)
	}
	bd, err := bundle.ParsePEM([]byte(b.Chain+"\n"+b.PrivateKey), password)
	if err != nil {
		return nil, invalidCertificate(err)
	}
	return bd, nil
}

func invalidCertificate(err error) error {
	return errorf(http.StatusUnprocessableEntity, "invalid_certificate", "%s", err)
}

// certificateError maps the manager's errors to answers.
func certificateError(err error, id string) error {
	switch {
	case errors.Is(err, certs.ErrNotFound):
		return notFound("certificate", id)
	case errors.Is(err, certs.ErrInUse):
		return errorf(http.StatusConflict, "certificate_in_use", "%s", err)
	case errors.Is(err, certs.ErrInvalid), errors.Is(err, certs.ErrNotRenewable):
		return invalidCertificate(err)
	}
	return err
}

func (a *API) listCertificates(w http.ResponseWriter, r *http.Request) error {
	list, err := a.o.Certificates.List()
	if err != nil {
		return err
	}
	if list == nil {
		list = []certs.Certificate{}
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (a *API) getCertificate(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	c, err := a.o.Certificates.Get(id)
	if err != nil {
		return certificateError(err, id)
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (a *API) createCertificate(w http.ResponseWriter, r *http.Request) error {
	var body certificateBody
	if err := a.decodeJSON(w, r, &body); err != nil {
		return err
	}
	bd, err := body.parsed()
	if err != nil {
		return err
	}
	if bd == nil {
		return errorf(http.StatusUnprocessableEntity, "invalid_certificate", "chain is required")
	}
	return a.addCertificate(w, r, body.meta(), bd)
}

func (a *API) addCertificate(w http.ResponseWriter, r *http.Request, meta certs.Meta, bd *bundle.Bundle) error {
	c, err := a.o.Certificates.Add(meta, bd.Chain, bd.Key, certs.SourceImported)
	return a.answerCreated(w, r, "certificate imported", c, err)
}

// answerCreated answers a request that added certificate c (err: it did
// not) with 201 and its Location.
func (a *API) answerCreated(w http.ResponseWriter, r *http.Request, event string, c certs.Certificate, err error) error {
	if err != nil {
		return certificateError(err, c.ID)
	}
	a.log.Info(event, "id", c.ID, "subject", c.Subject, "ca_ref", c.CARef, "by", authorOf(r))
	w.Header().Set("Location", certificatePrefixes[0]+"/"+url.PathEscape(c.ID))
	writeJSON(w, http.StatusCreated, c)
	return nil
}

// newEntity is what a request creating a certificate says about it.
type newEntity struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Description string            `json:"description"`
	ClientCA    bool              `json:"clientCA"`
	Tags        []string          `json:"tags"`
	Metadata    map[string]string `json:"metadata"`
}

func (n newEntity) meta() certs.Meta {
	return certs.Meta{ID: n.ID, Name: n.Name, Description: n.Description, ClientCA: n.ClientCA, Tags: n.Tags, Metadata: n.Metadata}
}

// importRequest is a PKCS#12 file, base64 in JSON, with what to call it.
type importRequest struct {
	newEntity
	P12      string `json:"p12"`
	Password string `json:"password"`
}

func (a *API) importCertificate(w http.ResponseWriter, r *http.Request) error {
	var req importRequest
	if err := a.decodeJSON(w, r, &req); err != nil {
		return err
	}
	der, err := base64.StdEncoding.DecodeString(req.P12)
	if err != nil || len(der) == 0 {
		return errorf(http.StatusUnprocessableEntity, "invalid_certificate", "p12 must be the PKCS#12 file in standard base64")
	}
	bd, err := bundle.ParsePKCS12(der, req.Password)
	if err != nil {
		return invalidCertificate(err)
	}
	return a.addCertificate(w, r, req.meta(), bd)
}

func (a *API) putCertificate(w http.ResponseWriter, r *http.Request) error {
	var body certificateBody
	if err := a.decodeJSON(w, r, &body); err != nil {
		return err
	}
	return a.updateCertificate(w, r, r.PathValue("id"), body)
}

// updateCertificate applies a full entity: its settable fields, and its
// chain (with privateKey) when that differs from the stored one.
func (a *API) updateCertificate(w http.ResponseWriter, r *http.Request, id string, body certificateBody) error {
	cur, err := a.o.Certificates.Get(id)
	if err != nil {
		return certificateError(err, id)
	}
	if body.Chain == cur.Chain && body.PrivateKey == "" {
		body.Chain = "" // unchanged: keep chain and key
	}
	bd, err := body.parsed()
	if err != nil {
		return err
	}
	var c certs.Certificate
	if bd == nil {
		c, err = a.o.Certificates.Update(id, body.meta(), nil, nil)
	} else {
		c, err = a.o.Certificates.Update(id, body.meta(), bd.Chain, bd.Key)
	}
	if err != nil {
		return certificateError(err, id)
	}
	a.log.Info("certificate changed", "id", id, "chain_replaced", bd != nil, "by", authorOf(r))
	writeJSON(w, http.StatusOK, c)
	return nil
}

// patchCertificate takes a JSON Merge Patch (RFC 7396; application/json or
// application/merge-patch+json) or a JSON Patch (RFC 6902;
// application/json-patch+json) of the entity as GET shows it.
func (a *API) patchCertificate(w http.ResponseWriter, r *http.Request) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	patch, err := a.readBody(w, r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	cur, err := a.o.Certificates.Get(id)
	if err != nil {
		return certificateError(err, id)
	}
	doc, err := json.Marshal(cur)
	if err != nil {
		return err
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var patched []byte
	if mt == "application/json-patch+json" {
		p, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			return errorf(http.StatusBadRequest, "bad_patch", "invalid JSON Patch: %s", err)
		}
		if patched, err = p.Apply(doc); err != nil {
			return errorf(http.StatusUnprocessableEntity, "bad_patch", "the JSON Patch does not apply: %s", err)
		}
	} else if patched, err = config.MergePatch(doc, patch); err != nil {
		return errorf(http.StatusBadRequest, "bad_patch", "invalid JSON Merge Patch: %s", err)
	}
	var body certificateBody
	if err := decodeStrict(patched, &body); err != nil {
		return err
	}
	return a.updateCertificate(w, r, id, body)
}

func (a *API) deleteCertificate(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := a.o.Certificates.Delete(id); err != nil {
		return certificateError(err, id)
	}
	a.log.Info("certificate deleted", "id", id, "by", authorOf(r))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type validity struct {
	ID     string `json:"id"`
	Valid  bool   `json:"valid"`
	Reason string `json:"reason,omitempty"`
}

func (a *API) certificateValidity(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	c, err := a.o.Certificates.Get(id)
	if err != nil {
		return certificateError(err, id)
	}
	writeJSON(w, http.StatusOK, validity{ID: c.ID, Valid: c.Valid, Reason: c.InvalidReason})
	return nil
}

type renewRequest struct {
	ID string `json:"id"`
}

type renewResult struct {
	Renewed []string `json:"renewed"`
}

// renewCertificates renews one certificate ({"id": …}) now, or, with an
// empty body or no id, every auto-renewed certificate that is due.
func (a *API) renewCertificates(w http.ResponseWriter, r *http.Request) error {
	allowSlowAnswer(w)
	body, err := a.readBody(w, r)
	if err != nil {
		return err
	}
	var req renewRequest
	if len(bytes.TrimSpace(body)) > 0 {
		if err := requireJSON(r); err != nil {
			return err
		}
		if err := decodeStrict(body, &req); err != nil {
			return err
		}
	}
	if req.ID != "" {
		c, err := a.o.Certificates.Renew(r.Context(), req.ID)
		if err != nil {
			return certificateError(err, req.ID)
		}
		a.log.Info("certificate renewed on request", "id", c.ID, "by", authorOf(r))
		writeJSON(w, http.StatusOK, renewResult{Renewed: []string{c.ID}})
		return nil
	}
	ids, err := a.o.Certificates.RenewDue(r.Context())
	if err != nil {
		return errorf(http.StatusBadGateway, "renewal_failed", "%s", err)
	}
	if ids == nil {
		ids = []string{}
	}
	writeJSON(w, http.StatusOK, renewResult{Renewed: ids})
	return nil
}

// exportRequest asks for a certificate with its private key.
type exportRequest struct {
	// Format is "pem" (chain and PKCS#8 key) or "p12".
	Format string `json:"format"`
	// Password protects a p12; empty means one is generated and returned.
	Password string `json:"password"`
	// Legacy picks the PKCS#12 encoding older devices read (3DES/RC2,
	// SHA-1) instead of AES-256 and PBKDF2.
	Legacy bool `json:"legacy"`
}

type exportResult struct {
	ID         string `json:"id"`
	Format     string `json:"format"`
	Chain      string `json:"chain,omitempty"`
	PrivateKey string `json:"privateKey,omitempty"`
	P12        string `json:"p12,omitempty"`
	// Password is the p12's password when the gateway generated it: shown
	// once, never stored.
	Password string `json:"password,omitempty"`
}

// exportCertificate is the one route that returns a private key: keys are
// write-only everywhere else.
func (a *API) exportCertificate(w http.ResponseWriter, r *http.Request) error {
	var req exportRequest
	if err := a.decodeJSON(w, r, &req); err != nil {
		return err
	}
	id := r.PathValue("id")
	c, err := a.o.Certificates.Get(id)
	if err != nil {
		return certificateError(err, id)
	}
	key, err := a.o.Certificates.Key(id)
	if err != nil {
		return certificateError(err, id)
	}
	if key == nil {
		return errorf(http.StatusUnprocessableEntity, "no_private_key", "certificate %q has no private key to export", id)
	}
	chain, err := certs.ParseChainPEM(c.Chain)
	if err != nil {
		return err
	}
	bd := &bundle.Bundle{Chain: chain, Key: key}
	out := exportResult{ID: id, Format: req.Format}
	switch req.Format {
	case "pem":
		keyPEM, err := bd.KeyPEM()
		if err != nil {
			return err
		}
		out.Chain, out.PrivateKey = c.Chain, string(keyPEM)
	case "p12":
		password := req.Password
		if password == "" {
			password = rand.Text()
			out.Password = password
		}
		enc := bundle.Modern
		if req.Legacy {
			enc = bundle.Legacy
		}
		p12, err := bd.PKCS12(password, enc)
		if err != nil {
			return err
		}
		out.P12 = base64.StdEncoding.EncodeToString(p12)
	default:
		return errorf(http.StatusUnprocessableEntity, "invalid_format", "format must be \"pem\" or \"p12\", not %q", req.Format)
	}
	a.log.Info("certificate exported with its key", "id", id, "format", req.Format, "by", authorOf(r))
	writeJSON(w, http.StatusOK, out)
	return nil
}

// createRequest is seed 004's "create from an existing CA": caRef names a
// CA of the store with its key; without it the local CA issues.
type createRequest struct {
	newEntity
	CARef     string `json:"caRef"`
	AutoRenew bool   `json:"autoRenew"`
	Exposed   bool   `json:"exposed"`

	Subject string   `json:"subject"`
	Hosts   []string `json:"hosts"`
	CA      bool     `json:"ca"`
	Client  bool     `json:"client"`
	Server  bool     `json:"server"`
	AIA     bool     `json:"includeAIA"`
	// KeyType is "ecdsa-p256", "rsa-2048", …, or seed 004's "RSA"/"EC"
	// with KeySize.
	KeyType            string          `json:"keyType"`
	KeySize            int             `json:"keySize"`
	SignatureAlgorithm string          `json:"signatureAlgorithm"`
	Validity           config.Duration `json:"validity"`
}

// keyTypeName turns seed 004's key type and size into a ca.KeyType name.
func (req createRequest) keyTypeName() string {
	if req.KeySize == 0 {
		return req.KeyType
	}
	switch strings.ToLower(req.KeyType) {
	case "rsa":
		return "rsa-" + strconv.Itoa(req.KeySize)
	case "ec", "ecdsa":
		return "ecdsa-p" + strconv.Itoa(req.KeySize)
	}
	return req.KeyType + "-" + strconv.Itoa(req.KeySize)
}

func (req createRequest) meta() certs.Meta {
	m := req.newEntity.meta()
	m.CARef, m.AutoRenew, m.Exposed, m.Client = req.CARef, req.AutoRenew, req.Exposed, req.Client
	return m
}

func (req createRequest) params() certs.IssueParams {
	return certs.IssueParams{
		Subject: req.Subject, Hosts: req.Hosts, CA: req.CA, Client: req.Client, Server: req.Server, AIA: req.AIA,
		KeyType: req.keyTypeName(), SignatureAlgorithm: req.SignatureAlgorithm,
		ValiditySeconds: int64(req.Validity.Std() / time.Second),
	}
}

func (a *API) issueCertificate(w http.ResponseWriter, r *http.Request) error {
	var req createRequest
	if err := a.decodeJSON(w, r, &req); err != nil {
		return err
	}
	c, err := a.o.Certificates.Create(req.meta(), req.params())
	return a.answerCreated(w, r, "certificate issued", c, err)
}

// signRequest is a CSR to sign, with the same options as _create but the
// key, which is the CSR's.
type signRequest struct {
	createRequest
	CSR string `json:"csr"`
}

func (a *API) signCSR(w http.ResponseWriter, r *http.Request) error {
	var req signRequest
	if err := a.decodeJSON(w, r, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.CSR) == "" {
		return errorf(http.StatusUnprocessableEntity, "invalid_certificate", "csr is required (PEM)")
	}
	c, err := a.o.Certificates.SignCSR(req.meta(), []byte(req.CSR), req.params())
	return a.answerCreated(w, r, "CSR signed", c, err)
}

type revokeRequest struct {
	// Reason is an RFC 5280 reason name, e.g. "keyCompromise".
	Reason string `json:"reason"`
}

func (a *API) revokeCertificate(w http.ResponseWriter, r *http.Request) error {
	var req revokeRequest
	body, err := a.readBody(w, r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decodeStrict(body, &req); err != nil {
			return err
		}
	}
	id := r.PathValue("id")
	c, err := a.o.Certificates.Revoke(r.Context(), id, req.Reason)
	if err != nil {
		return certificateError(err, id)
	}
	a.log.Warn("certificate revoked", "id", id, "reason", c.RevocationReason, "by", authorOf(r))
	writeJSON(w, http.StatusOK, c)
	return nil
}

// letsEncryptRequest is seed 004's "Let's Encrypt certificate": host (and
// more names if wanted) from the ACME CA of the settings.
type letsEncryptRequest struct {
	Host  string   `json:"host"`
	Hosts []string `json:"hosts"`
	ID    string   `json:"id"`
	Name  string   `json:"name"`
	// Serve makes the TLS listeners serve the certificate; default true.
	Serve *bool `json:"serve"`
}

func (a *API) obtainACMECertificate(w http.ResponseWriter, r *http.Request) error {
	allowSlowAnswer(w)
	var req letsEncryptRequest
	if err := a.decodeJSON(w, r, &req); err != nil {
		return err
	}
	names := req.Hosts
	if req.Host != "" {
		names = append([]string{req.Host}, names...)
	}
	serve := req.Serve == nil || *req.Serve
	c, err := a.o.Certificates.ObtainACME(r.Context(), certs.Meta{ID: req.ID, Name: req.Name}, names, serve)
	switch {
	case errors.Is(err, certs.ErrNoACME):
		return errorf(http.StatusConflict, "acme_not_configured", "%s", strings.TrimPrefix(err.Error(), "certs: "))
	case errors.Is(err, certs.ErrInvalid):
		return invalidCertificate(err)
	case err != nil:
		// The ACME CA refused or failed: its answer says why, and holds
		// nothing secret.
		a.log.Warn("ACME order failed", "names", names, "error", err)
		return errorf(http.StatusBadGateway, "acme_failed", "%s", strings.TrimPrefix(err.Error(), "certs: "))
	}
	return a.answerCreated(w, r, "ACME certificate obtained", c, nil)
}

// slowAnswer bounds routes that wait for an ACME CA (an order polls for
// minutes at worst, see acme.DefaultTimeout) instead of the server's write
// timeout, which would cut the answer off while the order goes on.
const slowAnswer = 4 * time.Minute

func allowSlowAnswer(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(slowAnswer))
}
