package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/edgegate/edgegate/certs"
	"github.com/edgegate/edgegate/gateway/admin"
)

const deploymentPath = "/api/deployments/" + testDeploymentID + "/tls"

// testCACert is a CA certificate in PEM, for two-way TLS.
func testCACert(t testing.TB) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Sensors CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// asKey returns r authenticated with an API key limited to scopes.
func (e *env) asKey(r req, scopes ...string) req {
	e.t.Helper()
	k, secret, err := e.admin.CreateAPIKey("deploy", scopes...)
	if err != nil {
		e.t.Fatal(err)
	}
	r.user, r.pass = k.ID, secret
	return r
}

func TestDeploymentTLS(t *testing.T) {
	t.Parallel()
	gw := newTestPair(t, "gw.example.com")
	other := newTestPair(t, "other.example.com")
	caPEM := testCACert(t)
	oneWay := jsonBody(t, map[string]string{"tlsType": "one-way", "cert": gw.chain, "key": gw.key})
	twoWay := jsonBody(t, map[string]string{"tlsType": "two-way", "cert": gw.chain, "key": gw.key, "cacert": caPEM})
	state := func(t *testing.T, w *httptest.ResponseRecorder, tlsType string) {
		t.Helper()
		got := decodeBody[deploymentTLS](t, w)
		if got.Status != "running" || got.TLSType != tlsType {
			t.Fatalf("got %+v; want running %s", got, tlsType)
		}
		if _, err := time.Parse(expireLayout, got.Expire); err != nil {
			t.Fatalf("expire %q is not \"YYYY-MM-DD HH:MM:SS\": %v", got.Expire, err)
		}
	}
	put := func(body string) func(*testing.T, *env) {
		return func(t *testing.T, e *env) {
			if w := e.do(e.handler, req{method: "POST", path: deploymentPath, body: body}.asAdmin()); w.Code != 200 {
				t.Fatalf("set deployment TLS: %d %s", w.Code, w.Body.String())
			}
		}
	}

	runRoutes(t, []routeCase{
		{name: "get: local certificate, one-way", r: req{method: "GET", path: deploymentPath}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) { state(t, w, "one-way") }},
		{name: "get: other deployment", r: req{method: "GET", path: "/api/deployments/nope/tls"}, status: 404, code: "deployment_not_found"},
		{name: "get: wrong secret", r: req{method: "GET", path: deploymentPath, user: admin.APIKeyPrefix + "x", pass: "y"},
			status: 401, code: "unauthorized"},
		{name: "post one-way", r: req{method: "POST", path: deploymentPath, body: oneWay}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				state(t, w, "one-way")
				c, _ := e.certs.Serving()
				if c.ID != deploymentCertID || c.Domain != "gw.example.com" {
					t.Fatalf("listeners serve %s (%s)", c.ID, c.Domain)
				}
				if want := time.UnixMilli(c.To).UTC().Format(expireLayout); decodeBody[deploymentTLS](t, w).Expire != want {
					t.Fatalf("expire is not the uploaded certificate's %s", want)
				}
			}},
		{name: "post two-way", r: req{method: "POST", path: deploymentPath, body: twoWay}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				state(t, w, "two-way")
				for name, l := range e.settings.Effective().Config.Listeners {
					if l.TLS != nil && l.TLS.ClientAuth != "required" {
						t.Fatalf("listener %s client_auth %q; want required", name, l.TLS.ClientAuth)
					}
				}
				if c, err := e.certs.Get(deploymentCAID); err != nil || !c.ClientCA {
					t.Fatalf("client CA not stored as one: %+v %v", c, err)
				}
			}},
		{name: "put replaces two-way by one-way", before: put(twoWay), r: req{method: "PUT", path: deploymentPath, body: oneWay}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				state(t, w, "one-way")
				for name, l := range e.settings.Effective().Config.Listeners {
					if l.TLS != nil && l.TLS.ClientAuth != "none" {
						t.Fatalf("listener %s client_auth %q; want none", name, l.TLS.ClientAuth)
					}
				}
			}},
		{name: "two-way without cacert", r: req{method: "POST", path: deploymentPath,
			body: jsonBody(t, map[string]string{"tlsType": "two-way", "cert": gw.chain, "key": gw.key})}, status: 422, code: "invalid_certificate"},
		{name: "cacert not a CA", r: req{method: "POST", path: deploymentPath,
			body: jsonBody(t, map[string]string{"tlsType": "two-way", "cert": gw.chain, "key": gw.key, "cacert": other.chain})},
			status: 422, code: "invalid_certificate"},
		{name: "key of another certificate", r: req{method: "POST", path: deploymentPath,
			body: jsonBody(t, map[string]string{"tlsType": "one-way", "cert": gw.chain, "key": other.key})}, status: 422, code: "invalid_certificate"},
		{name: "cert that does not parse", r: req{method: "POST", path: deploymentPath,
			body: jsonBody(t, map[string]string{"tlsType": "one-way", "cert": "MII...", "key": gw.key})}, status: 422, code: "invalid_certificate"},
		{name: "unknown tlsType", r: req{method: "POST", path: deploymentPath,
			body: jsonBody(t, map[string]string{"tlsType": "mutual", "cert": gw.chain, "key": gw.key})}, status: 422, code: "invalid_tls_type"},
		{name: "delete", before: put(twoWay), r: req{method: "DELETE", path: deploymentPath}, status: 204,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if c, _ := e.certs.Serving(); c.ID != certs.ServerCertificateID {
					t.Fatalf("after delete the listeners serve %s", c.ID)
				}
				for _, id := range []string{deploymentCertID, deploymentCAID} {
					if _, err := e.certs.Get(id); err == nil {
						t.Fatalf("%s still stored", id)
					}
				}
			}},
	})
}

func TestDeploymentTLSScopes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "").completeSetup()
	if w := e.do(e.handler, e.asKey(req{method: "GET", path: deploymentPath}, admin.ScopeBroker)); w.Code != 403 {
		t.Fatalf("key without the certificates scope: %d %s; want 403", w.Code, w.Body.String())
	}
	if w := e.do(e.handler, e.asKey(req{method: "GET", path: deploymentPath}, admin.ScopeCertificates)); w.Code != 200 {
		t.Fatalf("key with the certificates scope: %d %s", w.Code, w.Body.String())
	}
	if w := e.do(e.handler, e.asKey(req{method: "GET", path: "/api/v1/clients"}, admin.ScopeCertificates)); w.Code != 403 {
		t.Fatalf("certificates key on a broker route: %d; want 403", w.Code)
	}
	for _, path := range []string{"/api/certificates", "/api/v1/ca"} {
		if w := e.do(e.handler, e.asKey(req{method: "GET", path: path}, admin.ScopeBroker)); w.Code != 403 || decodeError(t, w).Code != "forbidden" {
			t.Fatalf("broker key on %s: %d; want 403 forbidden", path, w.Code)
		}
		if w := e.do(e.handler, e.asKey(req{method: "GET", path: path}, admin.ScopeCertificates)); w.Code != 200 {
			t.Fatalf("certificates key on %s: %d; want 200", path, w.Code)
		}
	}
}

// Seed 001: 6 writes and 60 reads per key and hour; the 7th write gets 429
// with Retry-After, and the budget comes back as the hour slides.
func TestDeploymentTLSRateLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "").completeSetup()
	gw := newTestPair(t, "gw.example.com")
	body := jsonBody(t, map[string]string{"tlsType": "one-way", "cert": gw.chain, "key": gw.key})
	write := e.asKey(req{method: "PUT", path: deploymentPath, body: body}, admin.ScopeCertificates)
	for i := range 6 {
		if w := e.do(e.handler, write); w.Code != 200 {
			t.Fatalf("write %d: %d %s", i+1, w.Code, w.Body.String())
		}
		e.clock.Add(time.Minute)
	}
	w := e.do(e.handler, write)
	if w.Code != 429 || decodeError(t, w).Code != "too_many_requests" {
		t.Fatalf("7th write: %d %s; want 429", w.Code, w.Body.String())
	}
	if ra, _ := strconv.Atoi(w.Header().Get("Retry-After")); ra != int((54 * time.Minute).Seconds()) {
		t.Fatalf("Retry-After %q; want the first write's slot to free in 54 min", w.Header().Get("Retry-After"))
	}
	// Another key has its own budget; reads are counted apart.
	if w := e.do(e.handler, e.asKey(write, admin.ScopeCertificates)); w.Code != 200 {
		t.Fatalf("other key's write: %d", w.Code)
	}
	read := write
	read.method, read.body = "GET", ""
	for i := range 60 {
		if w := e.do(e.handler, read); w.Code != 200 {
			t.Fatalf("read %d: %d", i+1, w.Code)
		}
	}
	if w := e.do(e.handler, read); w.Code != 429 {
		t.Fatalf("61st read: %d; want 429", w.Code)
	}
	e.clock.Add(54 * time.Minute)
	if w := e.do(e.handler, write); w.Code != 200 {
		t.Fatalf("write after the window slid: %d %s", w.Code, w.Body.String())
	}
}
