package api

import (
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/edgegate/edgegate/certs/bundle"
	"github.com/edgegate/edgegate/certs/ca"
	"github.com/edgegate/edgegate/gateway/admin"
)

// Authority is the local CA (*ca.Authority): its public side for /pki,
// and the operations an administrator runs on it.
type Authority interface {
	TrustBundlePEM() []byte
	RootFingerprint() string
	CRL() []byte
	CRLPEM() []byte
	CRLByIssuerID(id string) ([]byte, bool)
	IssuerByID(id string) (ca.IssuerInfo, bool)
	Issuers() []ca.IssuerInfo
}

// pkiPrefix is where the local CA publishes its public material. These
// routes answer everyone, not only loopback clients: sensors fetch the
// trust bundle and CRLs (and AIA URLs point here), and none of it is secret.
const pkiPrefix = "/pki/"

// pkiHandler serves the trust bundle, the CRLs and the issuer certificates.
func (a *API) pkiHandler() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern string, h handlerFunc) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if a.o.Authority == nil {
				a.writeError(w, r, unavailable("the local CA"))
				return
			}
			w.Header().Set("Cache-Control", "no-cache")
			if err := h(w, r); err != nil {
				a.writeError(w, r, err)
			}
		})
	}
	route("GET /pki/ca", func(w http.ResponseWriter, r *http.Request) error {
		writeBytes(w, "application/x-pem-file", "edgegate-ca.pem", a.o.Authority.TrustBundlePEM())
		return nil
	})
	// /pki/crl is every issuer's CRL in PEM, or the active issuer's in DER
	// for a client that asks for application/pkix-crl.
	route("GET /pki/crl", func(w http.ResponseWriter, r *http.Request) error {
		if strings.Contains(r.Header.Get("Accept"), "application/pkix-crl") {
			writeBytes(w, "application/pkix-crl", "edgegate.crl", a.o.Authority.CRL())
			return nil
		}
		writeBytes(w, "application/x-pem-file", "edgegate-crl.pem", a.o.Authority.CRLPEM())
		return nil
	})
	route("GET /pki/crl/{file}", func(w http.ResponseWriter, r *http.Request) error {
		id, ok := strings.CutSuffix(r.PathValue("file"), ".crl")
		der, found := a.o.Authority.CRLByIssuerID(id)
		if !ok || !found {
			return notFound("CRL", r.PathValue("file"))
		}
		writeBytes(w, "application/pkix-crl", r.PathValue("file"), der)
		return nil
	})
	route("GET /pki/issuer/{file}", func(w http.ResponseWriter, r *http.Request) error {
		id, ok := strings.CutSuffix(r.PathValue("file"), ".crt")
		iss, found := a.o.Authority.IssuerByID(id)
		if !ok || !found {
			return notFound("issuer", r.PathValue("file"))
		}
		writeBytes(w, "application/pkix-cert", r.PathValue("file"), iss.Cert.Raw)
		return nil
	})
	return mux
}

// writeBytes sends a download. Callers pass the CA's own certificates and
// CRLs and a file name that matched a known issuer, never request text.
func writeBytes(w http.ResponseWriter, contentType, filename string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	_, _ = w.Write(body) //nolint:gosec // G705: DER/PEM of the CA, sent as a non-HTML attachment
}

// issuerView is one of the local CA's issuers as the API shows it.
type issuerView struct {
	ID       string    `json:"id"`
	Kind     string    `json:"kind"`
	Active   bool      `json:"active"`
	Subject  string    `json:"subject"`
	NotAfter time.Time `json:"notAfter"`
	Chain    string    `json:"chain"`
}

type authorityView struct {
	RootFingerprint string       `json:"rootFingerprint"`
	TrustBundle     string       `json:"trustBundle"`
	Issuers         []issuerView `json:"issuers"`
}

func (a *API) authorityRoutes() {
	a.scoped(admin.ScopeCertificates, "GET /api/v1/ca", a.getAuthority)
	a.scoped(admin.ScopeCertificates, "POST /api/v1/ca/_rotate_root", a.rotateRoot)
	a.scoped(admin.ScopeCertificates, "POST /api/v1/ca/_finish_rotation", a.finishRootRotation)
	a.scoped(admin.ScopeCertificates, "PUT /api/v1/ca/issuer", a.importIssuer)
	a.scoped(admin.ScopeCertificates, "DELETE /api/v1/ca/issuer", a.useLocalIssuer)
}

// issuerRequest is an enterprise intermediate and its key (seed 003's
// bring-your-own issuer): PEM (chain leaf first, then key) or a PKCS#12.
type issuerRequest struct {
	Chain      string `json:"chain"`
	PrivateKey string `json:"privateKey"`
	P12        string `json:"p12"`
	Password   string `json:"password"`
}

// importIssuer makes the enterprise CA the issuer of new certificates.
func (a *API) importIssuer(w http.ResponseWriter, r *http.Request) error {
	if a.o.Authority == nil || a.o.Certificates == nil {
		return unavailable("the local CA")
	}
	var req issuerRequest
	if err := a.decodeJSON(w, r, &req); err != nil {
		return err
	}
	var (
		bd  *bundle.Bundle
		err error
	)
	if req.P12 != "" {
		der, derr := base64.StdEncoding.DecodeString(req.P12)
		if derr != nil {
			return errorf(http.StatusUnprocessableEntity, "invalid_certificate", "p12 must be standard base64")
		}
		bd, err = bundle.ParsePKCS12(der, req.Password)
	} else {
		bd, err = bundle.ParsePEM([]byte(req.Chain+"\n"+req.PrivateKey), []byte(req.Password))
	}
	if err != nil {
		return invalidCertificate(err)
	}
	if bd.Key == nil {
		return errorf(http.StatusUnprocessableEntity, "invalid_certificate", "the issuer's private key is required")
	}
	if err := a.o.Certificates.ImportIssuer(bd.Chain, bd.Key); err != nil {
		return certificateError(err, "")
	}
	a.log.Warn("the local CA issues from an imported CA now", "subject", bd.Leaf().Subject.String(), "by", authorOf(r))
	writeJSON(w, http.StatusOK, a.authorityView())
	return nil
}

// useLocalIssuer makes the local intermediate the issuer again.
func (a *API) useLocalIssuer(w http.ResponseWriter, r *http.Request) error {
	if a.o.Authority == nil || a.o.Certificates == nil {
		return unavailable("the local CA")
	}
	if err := a.o.Certificates.UseLocalIssuer(); err != nil {
		return err
	}
	a.log.Warn("the local CA issues from its own intermediate again", "by", authorOf(r))
	writeJSON(w, http.StatusOK, a.authorityView())
	return nil
}

func (a *API) authorityView() authorityView {
	v := authorityView{RootFingerprint: a.o.Authority.RootFingerprint(), TrustBundle: string(a.o.Authority.TrustBundlePEM())}
	for _, iss := range a.o.Authority.Issuers() {
		var chain strings.Builder
		for _, c := range iss.Chain {
			chain.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
		}
		v.Issuers = append(v.Issuers, issuerView{
			ID: iss.ID, Kind: string(iss.Kind), Active: iss.Active, Subject: iss.Cert.Subject.String(),
			NotAfter: iss.Cert.NotAfter.UTC(), Chain: chain.String(),
		})
	}
	return v
}

func (a *API) getAuthority(w http.ResponseWriter, r *http.Request) error {
	if a.o.Authority == nil {
		return unavailable("the local CA")
	}
	writeJSON(w, http.StatusOK, a.authorityView())
	return nil
}

type rotateRootRequest struct {
	// KeyType of the new root; empty keeps the current one.
	KeyType string `json:"keyType"`
}

// rotateRoot starts a root rotation: a new root and intermediate; the old
// root stays in the trust bundle during the overlap.
func (a *API) rotateRoot(w http.ResponseWriter, r *http.Request) error {
	if a.o.Authority == nil {
		return unavailable("the local CA")
	}
	var req rotateRootRequest
	if body, err := a.readBody(w, r); err != nil {
		return err
	} else if len(strings.TrimSpace(string(body))) > 0 {
		if err := decodeStrict(body, &req); err != nil {
			return err
		}
	}
	var kt ca.KeyType
	if req.KeyType != "" {
		var err error
		if kt, err = ca.ParseKeyType(req.KeyType); err != nil {
			return errorf(http.StatusUnprocessableEntity, "invalid_key_type", "%s", err)
		}
	}
	if a.o.Certificates == nil {
		return unavailable("the certificate store")
	}
	if err := a.o.Certificates.RotateRoot(kt); err != nil {
		return caError(err)
	}
	a.log.Warn("local CA root rotation started", "by", authorOf(r))
	writeJSON(w, http.StatusOK, a.authorityView())
	return nil
}

func (a *API) finishRootRotation(w http.ResponseWriter, r *http.Request) error {
	if a.o.Authority == nil || a.o.Certificates == nil {
		return unavailable("the local CA")
	}
	if err := a.o.Certificates.FinishRootRotation(); err != nil {
		return caError(err)
	}
	a.log.Warn("local CA root rotation finished: the previous root is no longer trusted", "by", authorOf(r))
	writeJSON(w, http.StatusOK, a.authorityView())
	return nil
}

func caError(err error) error {
	switch {
	case errors.Is(err, ca.ErrRotationInProgress):
		return errorf(http.StatusConflict, "rotation_in_progress", "%s", strings.TrimPrefix(err.Error(), "ca: "))
	case errors.Is(err, ca.ErrInvalidRequest):
		return errorf(http.StatusUnprocessableEntity, "invalid_request", "%s", strings.TrimPrefix(err.Error(), "ca: "))
	}
	return err
}
