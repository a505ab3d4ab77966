package api

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegate/edgegate/gateway/admin"
	"github.com/edgegate/edgegate/gateway/auth"
	"github.com/edgegate/edgegate/gateway/config"
	"github.com/edgegate/edgegate/provisioning"
)

const (
	provisionDevice    = "gw-0042"
	provisionAdminPW   = "Provisioned 2026 admin"
	provisionKeySecret = "fleet-api-key-secret-0123456789abcdef"
)

// provisionFixture is a trusted signing key, written as the gateway's key
// directory, and a bundle with every part signed by it.
type provisionFixture struct {
	priv    ed25519.PrivateKey
	keysDir string
	bundle  []byte
	sig     []byte
}

func newProvisionFixture(t *testing.T) *provisionFixture {
	t.Helper()
	priv, err := provisioning.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := provisioning.EncodePublicKey(priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fleet.pub"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	adminHash, err := auth.NewHash(config.HashPBKDF2SHA256, provisionAdminPW, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(provisionKeySecret))
	doc := map[string]any{
		"version": 1, "device": provisionDevice,
		"issued_at": "2026-11-20T09:00:00Z", "expires_at": "2026-12-20T09:00:00Z",
		"settings":            map[string]any{"sys": map[string]any{"interval": "15s"}},
		"admin_password_hash": adminHash,
		"api_keys":            []any{map[string]any{"id": "egk_fleet", "name": "fleet", "secret_hash": hex.EncodeToString(sum[:])}},
		"mqtt_users":          []any{map[string]any{"username": "dashboard", "superuser": true}},
		"trust":               []any{map[string]any{"name": "fleet CA", "certificate": testCACert(t)}},
	}
	bundle, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return &provisionFixture{priv: priv, keysDir: dir, bundle: bundle, sig: provisioning.Sign(priv, bundle)}
}

// env returns a set-up gateway trusting the fixture's key.
func (f *provisionFixture) env(t *testing.T) *env {
	t.Helper()
	return newEnv(t, "", func(o *Options) {
		o.Provision = ProvisionOptions{KeysPath: f.keysDir, DeviceID: provisionDevice}
	}).completeSetup()
}

// provisionJSON is the JSON form of a provisioning request.
func provisionJSON(t *testing.T, bundle, sig []byte) string {
	t.Helper()
	b, err := json.Marshal(provisionRequest{Bundle: bundle, Signature: sig})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// provisionMultipart is the multipart form of a provisioning request.
func provisionMultipart(t *testing.T, parts ...[2]string) (body, contentType string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		w, err := mw.CreateFormFile(p[0], p[0]+".bin")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(p[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String(), mw.FormDataContentType()
}

func decodeReport(t *testing.T, w *httptest.ResponseRecorder) provisioning.Report {
	t.Helper()
	var rep provisioning.Report
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("report %q: %v", w.Body.String(), err)
	}
	return rep
}

// checkProvisioned checks that the fixture's bundle is in force.
func checkProvisioned(t *testing.T, e *env, rep provisioning.Report) {
	t.Helper()
	if rep.Status != provisioning.StatusApplied || rep.Applied.SettingsVersion == 0 {
		t.Fatalf("report %+v", rep)
	}
	if !e.admin.CheckAdmin(provisionAdminPW) || e.admin.CheckAdmin(adminPassword) {
		t.Fatal("the admin password is not the bundle's")
	}
	if _, ok := e.admin.CheckAPIKey("egk_fleet", provisionKeySecret); !ok {
		t.Fatal("the bundle's API key does not authenticate")
	}
	if u, err := e.users.Get("dashboard"); err != nil || !u.Superuser {
		t.Fatalf("user %+v, %v", u, err)
	}
	if e.settings.Effective().Config.Sys.Interval.Std().String() != "15s" {
		t.Fatal("settings not applied")
	}
	c, err := e.certs.Get(rep.Applied.ClientCAs[0])
	if err != nil || !c.ClientCA {
		t.Fatalf("client CA %+v, %v", c, err)
	}
	if h, _ := e.settings.History(); h[0].Author != "provision:"+rep.BundleSHA256[:12] {
		t.Fatalf("settings author %q", h[0].Author)
	}
}

// TestProvisionLocalSocket: the USB companion's path, the JSON form on the
// admin socket.
func TestProvisionLocalSocket(t *testing.T) {
	t.Parallel()
	f := newProvisionFixture(t)
	e := f.env(t)
	w := e.do(e.local, req{method: "POST", path: "/api/v1/provision", body: provisionJSON(t, f.bundle, f.sig), remote: "@"})
	if w.Code != http.StatusOK {
		t.Fatalf("POST /api/v1/provision = %d %s", w.Code, w.Body.String())
	}
	checkProvisioned(t, e, decodeReport(t, w))
	if log := e.log.String(); !strings.Contains(log, "provisioning bundle applied") || !strings.Contains(log, `"by":"local"`) {
		t.Fatalf("log %s", log)
	}
}

// TestProvisionAdminHTTPS: the admin uploads the two files over HTTPS.
func TestProvisionAdminHTTPS(t *testing.T) {
	t.Parallel()
	f := newProvisionFixture(t)
	e := f.env(t)
	body, ct := provisionMultipart(t, [2]string{"bundle", string(f.bundle)}, [2]string{"signature", string(f.sig)})
	w := e.do(e.api.TLSHandler(), req{method: "POST", path: "/api/v1/provision", body: body, contentType: ct,
		remote: "192.0.2.10:50000"}.asAdmin())
	if w.Code != http.StatusOK {
		t.Fatalf("POST /api/v1/provision = %d %s", w.Code, w.Body.String())
	}
	checkProvisioned(t, e, decodeReport(t, w))
}

func TestProvisionRoute(t *testing.T) {
	t.Parallel()
	f := newProvisionFixture(t)
	tampered := bytes.Replace(f.bundle, []byte(`"15s"`), []byte(`"16s"`), 1)
	good := provisionJSON(t, f.bundle, f.sig)
	multipartBody := func(parts ...[2]string) req {
		body, ct := provisionMultipart(t, parts...)
		return req{method: "POST", path: "/api/v1/provision", body: body, contentType: ct}
	}
	post := func(body string) req { return req{method: "POST", path: "/api/v1/provision", body: body} }
	// unchanged checks that a refused request changed nothing.
	unchanged := func(t *testing.T, e *env) {
		t.Helper()
		if !e.admin.CheckAdmin(adminPassword) {
			t.Fatal("the admin password changed")
		}
		if h, _ := e.settings.History(); len(h) != 0 {
			t.Fatalf("settings changed: %+v", h)
		}
		if us, _ := e.users.List(); len(us) != 0 {
			t.Fatalf("users added: %+v", us)
		}
	}
	cases := []struct {
		name   string
		r      req
		before func(e *env)
		status int
		// code is the error code, or the report's code for a 422.
		code string
	}{
		{name: "tampered", r: post(provisionJSON(t, tampered, f.sig)), status: 422, code: provisioning.CodeBadSignature},
		{name: "unsigned", r: post(provisionJSON(t, f.bundle, nil)), status: 422, code: provisioning.CodeUnsigned},
		{name: "multipart without signature", r: multipartBody([2]string{"bundle", string(f.bundle)}), status: 422, code: provisioning.CodeUnsigned},
		{name: "wrong device", before: func(e *env) { e.api.o.Provision.DeviceID = "gw-0043" }, r: post(good), status: 422,
			code: provisioning.CodeWrongDevice},
		{name: "no trusted keys", before: func(e *env) { e.api.o.Provision.KeysPath = filepath.Join(f.keysDir, "none") },
			r: post(good), status: 422, code: provisioning.CodeNoKeys},
		{name: "admin without provisioning methods", before: func(e *env) { e.api.o.Admin = plainAdmin{e.admin} },
			r: post(good), status: 422, code: provisioning.CodeUnavailable},
		{name: "no credentials", r: req{method: "POST", path: "/api/v1/provision", body: good, user: "-"}, status: 401, code: "unauthorized"},
		{name: "limited API key", r: req{method: "POST", path: "/api/v1/provision", body: good, user: "key:broker"},
			status: 403, code: "forbidden"},
		{name: "no bundle", r: post(`{"signature":"AAAA"}`), status: 400, code: "bad_request"},
		{name: "bad base64", r: post(`{"bundle":"not base64!","signature":""}`), status: 400, code: "bad_json"},
		{name: "unknown field", r: post(`{"bundle":"e30=","sig":""}`), status: 400, code: "bad_json"},
		{name: "plain text", r: req{method: "POST", path: "/api/v1/provision", body: "x", contentType: "text/plain"}, status: 415,
			code: "unsupported_media_type"},
		{name: "unknown part", r: multipartBody([2]string{"bundle", "{}"}, [2]string{"key", "x"}), status: 400, code: "bad_request"},
		{name: "part twice", r: multipartBody([2]string{"bundle", "{}"}, [2]string{"bundle", "{}"}), status: 400, code: "bad_request"},
		{name: "multipart without boundary", r: req{method: "POST", path: "/api/v1/provision", body: "x", contentType: "multipart/form-data"},
			status: 400, code: "bad_request"},
		{name: "too large", r: post(provisionJSON(t, bytes.Repeat([]byte{' '}, DefaultMaxBodyBytes), f.sig)), status: 413, code: "body_too_large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := f.env(t)
			if tc.before != nil {
				tc.before(e)
			}
			r := tc.r
			switch r.user {
			case "":
				r = r.asAdmin()
			case "key:broker":
				r = e.asKey(r, admin.ScopeBroker)
			}
			w := e.do(e.handler, r)
			if w.Code != tc.status {
				t.Fatalf("= %d %s; want %d", w.Code, w.Body.String(), tc.status)
			}
			if w.Code == http.StatusUnprocessableEntity {
				rep := decodeReport(t, w)
				if rep.Status != provisioning.StatusRefused || rep.Code != tc.code || rep.Message == "" {
					t.Fatalf("report %+v; want refused %s", rep, tc.code)
				}
			} else if got := decodeError(t, w); got.Code != tc.code {
				t.Fatalf("error %q (%s); want %q", got.Code, got.Message, tc.code)
			}
			unchanged(t, e)
		})
	}
}

// plainAdmin is an Admin without the provisioning methods.
type plainAdmin struct{ Admin }
