package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgegate/edgegate/certs"
	"github.com/edgegate/edgegate/certs/bundle"
)

// testPair is a self-signed certificate and its key in PEM, for imports.
type testPair struct{ chain, key string }

func newTestPair(t testing.TB, cn string) testPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(90 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	return testPair{
		chain: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		key:   string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
	}
}

func jsonBody(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// addPair imports p as id through the manager.
func addPair(t *testing.T, e *env, id string, p testPair) {
	t.Helper()
	bd, err := bundle.ParsePEM([]byte(p.chain+p.key), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.certs.Add(certs.Meta{ID: id}, bd.Chain, bd.Key, certs.SourceImported); err != nil {
		t.Fatal(err)
	}
}

func TestCertificateRoutes(t *testing.T) {
	t.Parallel()
	gw := newTestPair(t, "gw.example.com")
	other := newTestPair(t, "other.example.com")
	withGW := func(t *testing.T, e *env) { addPair(t, e, "gw", gw) }
	entity := func(t *testing.T, w *httptest.ResponseRecorder) certs.Certificate {
		t.Helper()
		if strings.Contains(w.Body.String(), "PRIVATE KEY") {
			t.Fatal("a private key was returned outside an export")
		}
		return decodeBody[certs.Certificate](t, w)
	}

	runRoutes(t, []routeCase{
		{name: "list has the listener certificate", r: req{method: "GET", path: "/api/v1/certificates"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				got := decodeBody[[]certs.Certificate](t, w)
				if len(got) != 1 || got[0].ID != certs.ServerCertificateID || !got[0].Valid || got[0].Usage[0] != certs.RoleServer {
					t.Fatalf("got %+v", got)
				}
			}},
		{name: "seed 004 prefix", r: req{method: "GET", path: "/api/certificates/" + certs.ServerCertificateID}, status: 200},
		{name: "credentials required", r: req{method: "GET", path: "/api/certificates", user: "-"}, status: 401, code: "unauthorized"},
		{name: "create from PEM", r: req{method: "POST", path: "/api/certificates",
			body: jsonBody(t, map[string]any{"id": "gw", "chain": gw.chain, "privateKey": gw.key, "tags": []string{"prod"}})},
			status: 201, check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				c := entity(t, w)
				if c.ID != "gw" || !c.HasKey || c.Domain != "gw.example.com" || c.Source != certs.SourceImported || w.Header().Get("Location") != "/api/v1/certificates/gw" {
					t.Fatalf("got %+v, Location %q", c, w.Header().Get("Location"))
				}
			}},
		{name: "create trust-only", r: req{method: "POST", path: "/api/certificates",
			body: jsonBody(t, map[string]any{"chain": gw.chain})}, status: 201,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if c := entity(t, w); c.HasKey || !strings.HasPrefix(c.ID, "cert_") {
					t.Fatalf("got %+v", c)
				}
			}},
		{name: "create garbage PEM", r: req{method: "POST", path: "/api/certificates",
			body: `{"chain":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}`}, status: 422, code: "invalid_certificate"},
		{name: "create key of another certificate", r: req{method: "POST", path: "/api/certificates",
			body: jsonBody(t, map[string]any{"chain": gw.chain, "privateKey": other.key})}, status: 422, code: "invalid_certificate"},
		{name: "create without chain", r: req{method: "POST", path: "/api/certificates", body: `{"name":"x"}`}, status: 422, code: "invalid_certificate"},
		{name: "create unknown field", r: req{method: "POST", path: "/api/certificates", body: `{"chian":"x"}`}, status: 400, code: "bad_json"},
		{name: "create taken id", before: withGW, r: req{method: "POST", path: "/api/certificates",
			body: jsonBody(t, map[string]any{"id": "gw", "chain": gw.chain})}, status: 422, code: "invalid_certificate"},
		{name: "get unknown", r: req{method: "GET", path: "/api/certificates/nope"}, status: 404, code: "certificate_not_found"},
		{name: "merge patch", before: withGW, r: req{method: "PATCH", path: "/api/certificates/gw",
			body: `{"tags":["a","b"],"metadata":{"site":"lyon"},"exposed":true}`}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				c := entity(t, w)
				if len(c.Tags) != 2 || c.Metadata["site"] != "lyon" || !c.Exposed || !c.HasKey {
					t.Fatalf("got %+v", c)
				}
			}},
		{name: "json patch", before: withGW, r: req{method: "PATCH", path: "/api/certificates/gw", contentType: "application/json-patch+json",
			body: `[{"op":"replace","path":"/description","value":"edge"},{"op":"add","path":"/tags/-","value":"x"}]`}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if c := entity(t, w); c.Description != "edge" || len(c.Tags) != 1 {
					t.Fatalf("got %+v", c)
				}
			}},
		{name: "json patch that does not apply", before: withGW, r: req{method: "PATCH", path: "/api/certificates/gw",
			contentType: "application/json-patch+json", body: `[{"op":"remove","path":"/nothing/here"}]`}, status: 422, code: "bad_patch"},
		{name: "patch the id", before: withGW, r: req{method: "PATCH", path: "/api/certificates/gw", body: `{"id":"other"}`},
			status: 422, code: "invalid_certificate"},
		{name: "patch replaces the chain", before: withGW, r: req{method: "PATCH", path: "/api/certificates/gw",
			body: jsonBody(t, map[string]any{"chain": other.chain, "privateKey": other.key})}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if c := entity(t, w); c.Domain != "other.example.com" {
					t.Fatalf("got %+v", c)
				}
			}},
		{name: "patch a chain the stored key does not match", before: withGW, r: req{method: "PATCH", path: "/api/certificates/gw",
			body: jsonBody(t, map[string]any{"chain": other.chain})}, status: 422, code: "invalid_certificate"},
		{name: "delete", before: withGW, r: req{method: "DELETE", path: "/api/certificates/gw"}, status: 204},
		{name: "delete the serving certificate", r: req{method: "DELETE", path: "/api/certificates/" + certs.ServerCertificateID},
			status: 409, code: "certificate_in_use"},
		{name: "valid", before: withGW, r: req{method: "GET", path: "/api/certificates/gw/valid"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if v := decodeBody[validity](t, w); !v.Valid {
					t.Fatalf("got %+v", v)
				}
			}},
		{name: "renew one", r: req{method: "POST", path: "/api/certificates/_renew", body: `{"id":"local-server"}`}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				c, _ := e.certs.Get(certs.ServerCertificateID)
				if len(c.Renewal.History) != 1 || !c.Renewal.History[0].OK {
					t.Fatalf("renewal not recorded: %+v", c.Renewal)
				}
			}},
		{name: "renew all due", r: req{method: "POST", path: "/api/certificates/_renew"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if got := decodeBody[renewResult](t, w); len(got.Renewed) != 0 {
					t.Fatalf("renewed %v; nothing is due", got.Renewed)
				}
			}},
		{name: "renew an imported certificate", before: withGW, r: req{method: "POST", path: "/api/certificates/_renew", body: `{"id":"gw"}`},
			status: 422, code: "invalid_certificate"},
		{name: "export PEM", before: withGW, r: req{method: "POST", path: "/api/certificates/gw/_export", body: `{"format":"pem"}`}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				out := decodeBody[exportResult](t, w)
				if _, err := bundle.ParsePEM([]byte(out.Chain+out.PrivateKey), nil); err != nil || out.PrivateKey == "" {
					t.Fatalf("export does not parse back: %v", err)
				}
			}},
		{name: "export p12 with a generated password", before: withGW, r: req{method: "POST", path: "/api/certificates/gw/_export",
			body: `{"format":"p12"}`}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				out := decodeBody[exportResult](t, w)
				der, _ := base64.StdEncoding.DecodeString(out.P12)
				bd, err := bundle.ParsePKCS12(der, out.Password)
				if err != nil || out.Password == "" || bd.Key == nil {
					t.Fatalf("p12 does not open with the returned password: %v", err)
				}
				if strings.Contains(e.log.String(), out.Password) {
					t.Fatal("the generated password was logged")
				}
			}},
		{name: "export unknown format", before: withGW, r: req{method: "POST", path: "/api/certificates/gw/_export", body: `{"format":"jks"}`},
			status: 422, code: "invalid_format"},
		{name: "import p12", r: req{method: "POST", path: "/api/certificates/_import", body: jsonBody(t, map[string]any{
			"id": "from-p12", "p12": p12Of(t, gw, "s3cret"), "password": "s3cret"})}, status: 201,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if c := entity(t, w); !c.HasKey || c.Domain != "gw.example.com" {
					t.Fatalf("got %+v", c)
				}
			}},
		{name: "import p12 wrong password", r: req{method: "POST", path: "/api/certificates/_import", body: jsonBody(t, map[string]any{
			"p12": p12Of(t, gw, "s3cret"), "password": "nope"})}, status: 422, code: "invalid_certificate"},
		{name: "import p12 not base64", r: req{method: "POST", path: "/api/certificates/_import", body: `{"p12":"%%%"}`},
			status: 422, code: "invalid_certificate"},
	})
}

func p12Of(t testing.TB, p testPair, password string) string {
	t.Helper()
	bd, err := bundle.ParsePEM([]byte(p.chain+p.key), nil)
	if err != nil {
		t.Fatal(err)
	}
	der, err := bd.PKCS12(password, bundle.Modern)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// A certificate as GET returns it can be edited and PUT back whole.
func TestCertificatePutRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "").completeSetup()
	addPair(t, e, "gw", newTestPair(t, "gw.example.com"))
	w := e.do(e.handler, req{method: "GET", path: "/api/certificates/gw"}.asAdmin())
	c := decodeBody[certs.Certificate](t, w)
	c.Name, c.Description, c.AutoRenew = "Gateway", "public name", false
	w = e.do(e.handler, req{method: "PUT", path: "/api/certificates/gw", body: jsonBody(t, c)}.asAdmin())
	if w.Code != 200 {
		t.Fatalf("PUT = %d %s", w.Code, w.Body.String())
	}
	got, _ := e.certs.Get("gw")
	if got.Name != "Gateway" || got.Description != "public name" || !got.HasKey || got.SHA256 != c.SHA256 {
		t.Fatalf("after PUT: %+v", got)
	}
}

func TestIssueRevokeAndPKI(t *testing.T) {
	t.Parallel()
	runRoutes(t, []routeCase{
		{name: "create from the local CA", r: req{method: "POST", path: "/api/certificates/_create", body: `{"id":"sensor-1",
			"subject":"CN=sensor-1,O=Acme","hosts":["spiffe://acme/sensor-1"],"client":true,"keyType":"EC","keySize":384,"validity":"720h"}`},
			status: 201, check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				c := decodeBody[certs.Certificate](t, w)
				if c.KeyType != "ecdsa-p384" || !c.HasKey || !c.Client || c.Subject != "CN=sensor-1,O=Acme" || c.To-c.From < 719*3600*1000 {
					t.Fatalf("got %+v", c)
				}
			}},
		{name: "create with a bad host", r: req{method: "POST", path: "/api/certificates/_create", body: `{"client":true,"hosts":["a b"]}`},
			status: 422, code: "invalid_certificate"},
		{name: "create from an unknown CA", r: req{method: "POST", path: "/api/certificates/_create", body: `{"client":true,"caRef":"nope"}`},
			status: 422, code: "invalid_certificate"},
		{name: "revoke", before: func(t *testing.T, e *env) {
			if _, err := e.certs.Create(certs.Meta{ID: "sensor-1"}, certs.IssueParams{Client: true, Subject: "CN=sensor-1"}); err != nil {
				t.Fatal(err)
			}
		}, r: req{method: "POST", path: "/api/certificates/sensor-1/_revoke", body: `{"reason":"keyCompromise"}`}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				c := decodeBody[certs.Certificate](t, w)
				if !c.Revoked || c.Valid {
					t.Fatalf("got %+v", c)
				}
				// The CRL, fetched by a non-local client without credentials, lists it.
				crl := e.do(e.handler, req{method: "GET", path: "/pki/crl", user: "-", remote: "192.0.2.9:5000",
					header: http.Header{"Accept": {"application/pkix-crl"}}})
				list, err := x509.ParseRevocationList(crl.Body.Bytes())
				if crl.Code != 200 || err != nil {
					t.Fatalf("GET /pki/crl = %d, %v", crl.Code, err)
				}
				if len(list.RevokedCertificateEntries) != 1 || list.RevokedCertificateEntries[0].SerialNumber.Text(16) != c.Serial {
					t.Fatalf("CRL entries %+v; want serial %s", list.RevokedCertificateEntries, c.Serial)
				}
			}},
		{name: "revoke with an unknown reason", before: func(t *testing.T, e *env) {
			if _, err := e.certs.Create(certs.Meta{ID: "s"}, certs.IssueParams{Client: true, Subject: "CN=s"}); err != nil {
				t.Fatal(err)
			}
		}, r: req{method: "POST", path: "/api/certificates/s/_revoke", body: `{"reason":"bored"}`}, status: 422, code: "invalid_certificate"},
		{name: "trust bundle for anyone", r: req{method: "GET", path: "/pki/ca", user: "-", remote: "192.0.2.9:5000"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if w.Body.String() != string(e.ca.TrustBundlePEM()) {
					t.Fatal("not the trust bundle")
				}
			}},
		{name: "CRLs in PEM", r: req{method: "GET", path: "/pki/crl", user: "-"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if !strings.Contains(w.Body.String(), "-----BEGIN X509 CRL-----") {
					t.Fatalf("got %q", w.Body.String())
				}
			}},
		{name: "issuer certificate by id", r: req{method: "GET", path: "/pki/issuer/x.crt", user: "-"}, status: 404},
		{name: "CA view", r: req{method: "GET", path: "/api/v1/ca"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				v := decodeBody[authorityView](t, w)
				if v.RootFingerprint != e.ca.RootFingerprint() || len(v.Issuers) == 0 || !v.Issuers[0].Active {
					t.Fatalf("got %+v", v)
				}
				iss := e.do(e.handler, req{method: "GET", path: "/pki/issuer/" + v.Issuers[0].ID + ".crt", user: "-"})
				crl := e.do(e.handler, req{method: "GET", path: "/pki/crl/" + v.Issuers[0].ID + ".crl", user: "-"})
				if iss.Code != 200 || crl.Code != 200 {
					t.Fatalf("AIA issuer %d, CRL %d", iss.Code, crl.Code)
				}
			}},
		{name: "rotate root", r: req{method: "POST", path: "/api/v1/ca/_rotate_root"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				v := decodeBody[authorityView](t, w)
				if strings.Count(v.TrustBundle, "BEGIN CERTIFICATE") != 2 {
					t.Fatalf("trust bundle during the overlap holds %d roots; want old and new", strings.Count(v.TrustBundle, "BEGIN CERTIFICATE"))
				}
				again := e.do(e.handler, req{method: "POST", path: "/api/v1/ca/_rotate_root"}.asAdmin())
				if again.Code != 409 {
					t.Fatalf("second rotation during the overlap: %d", again.Code)
				}
				done := e.do(e.handler, req{method: "POST", path: "/api/v1/ca/_finish_rotation"}.asAdmin())
				if v := decodeBody[authorityView](t, done); done.Code != 200 || strings.Count(v.TrustBundle, "BEGIN CERTIFICATE") != 1 {
					t.Fatalf("finish rotation: %d %s", done.Code, done.Body.String())
				}
			}},
		{name: "rotate root with a bad key type", r: req{method: "POST", path: "/api/v1/ca/_rotate_root", body: `{"keyType":"dsa"}`},
			status: 422, code: "invalid_key_type"},
	})
}

// enterpriseCA is a root and an intermediate (with its key, PEM) such as a
// company would hand a gateway to issue from.
func enterpriseCA(t *testing.T) (chainPEM, keyPEM string) {
	t.Helper()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	mk := func(cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, pathLen int) (*x509.Certificate, *ecdsa.PrivateKey) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: []string{"Acme"}},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, MaxPathLen: pathLen, MaxPathLenZero: pathLen == 0,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		}
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c, key
	}
	root, rootKey := mk("Acme Root", nil, nil, 1)
	inter, interKey := mk("Acme Gateways CA", root, rootKey, 0)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(interKey)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: inter.Raw})) +
			string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}

func testCSR(t *testing.T, cn string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func TestCSRIssuerAndJWKS(t *testing.T) {
	t.Parallel()
	chainPEM, keyPEM := enterpriseCA(t)
	leaf := newTestPair(t, "not-a-ca.example.com")
	runRoutes(t, []routeCase{
		{name: "sign a CSR", r: req{method: "POST", path: "/api/certificates/_sign",
			body: jsonBody(t, map[string]any{"id": "dev-1", "csr": testCSR(t, "dev-1.example.com"), "server": true})}, status: 201,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				c := decodeBody[certs.Certificate](t, w)
				if c.HasKey || c.AutoRenew || c.Domain != "dev-1.example.com" || !c.Valid {
					t.Fatalf("got %+v", c)
				}
			}},
		{name: "sign garbage", r: req{method: "POST", path: "/api/certificates/_sign", body: `{"csr":"nope","server":true}`},
			status: 422, code: "invalid_certificate"},
		{name: "bring your own issuer", r: req{method: "PUT", path: "/api/v1/ca/issuer",
			body: jsonBody(t, map[string]string{"chain": chainPEM, "privateKey": keyPEM})}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				c, err := e.certs.Create(certs.Meta{ID: "s"}, certs.IssueParams{Client: true, Subject: "CN=s"})
				if err != nil || c.Issuer != "CN=Acme Gateways CA,O=Acme" {
					t.Fatalf("issued by %q (%v); want the imported issuer", c.Issuer, err)
				}
				if serving, _ := e.certs.Serving(); serving.Issuer != c.Issuer {
					t.Fatalf("listener certificate issued by %q; want it re-issued by the imported issuer", serving.Issuer)
				}
				back := e.do(e.handler, req{method: "DELETE", path: "/api/v1/ca/issuer"}.asAdmin())
				c, _ = e.certs.Create(certs.Meta{ID: "s2"}, certs.IssueParams{Client: true, Subject: "CN=s2"})
				if back.Code != 200 || c.Issuer == "CN=Acme Gateways CA,O=Acme" {
					t.Fatalf("after DELETE /api/v1/ca/issuer: %d, issued by %q", back.Code, c.Issuer)
				}
			}},
		{name: "issuer that is not a CA", r: req{method: "PUT", path: "/api/v1/ca/issuer",
			body: jsonBody(t, map[string]string{"chain": leaf.chain, "privateKey": leaf.key})}, status: 422, code: "invalid_certificate"},
		{name: "issuer without its key", r: req{method: "PUT", path: "/api/v1/ca/issuer",
			body: jsonBody(t, map[string]string{"chain": chainPEM})}, status: 422, code: "invalid_certificate"},
		{name: "jwks lists exposed certificates to anyone", before: func(t *testing.T, e *env) {
			addPair(t, e, "signing", newTestPair(t, "jwt.example.com"))
			addPair(t, e, "hidden", newTestPair(t, "hidden.example.com"))
			if _, err := e.certs.Update("signing", certs.Meta{Exposed: true}, nil, nil); err != nil {
				t.Fatal(err)
			}
		}, r: req{method: "GET", path: "/.well-known/jwks.json", user: "-", remote: "192.0.2.9:5000"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				set := decodeBody[jwkSet](t, w)
				if len(set.Keys) != 1 || set.Keys[0].Kid != "signing" || set.Keys[0].Kty != "EC" || set.Keys[0].Crv != "P-256" ||
					len(set.Keys[0].X) != 43 || len(set.Keys[0].Y) != 43 || len(set.Keys[0].X5c) != 1 {
					t.Fatalf("got %+v", set)
				}
			}},
	})
}
