package acme

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/registration"
)

const testDirectory = "https://ca.example/directory"

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-value-must-not-appear"
	dns := func(provider string, creds map[string]string) *DNSConfig {
		return &DNSConfig{Provider: provider, Credentials: creds}
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; empty: valid
		is      error
	}{
		{name: "minimal", cfg: Config{DirectoryURL: testDirectory}},
		{name: "full", cfg: Config{
			DirectoryURL: ZeroSSL, Email: "ops@example.com", AgreeToTerms: true,
			EAB:     &EAB{KeyID: "kid", HMACKey: "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"},
			KeyType: KeyRSA2048, Challenges: []Challenge{DNS01},
			DNS:     dns("cloudflare", map[string]string{"CLOUDFLARE_DNS_API_TOKEN": secret, "CLOUDFLARE_TTL": "300"}),
			Timeout: time.Minute,
		}},
		{name: "http directory", cfg: Config{DirectoryURL: "http://ca.example/dir"}, wantErr: "not an https URL"},
		{name: "no directory", cfg: Config{}, wantErr: "not an https URL"},
		{name: "credentials in URL", cfg: Config{DirectoryURL: "https://u:p@ca.example/dir"}, wantErr: "credentials"},
		{name: "bad email", cfg: Config{DirectoryURL: testDirectory, Email: "Ops <ops@example.com>"}, wantErr: "plain address"},
		{name: "EAB without id", cfg: Config{DirectoryURL: testDirectory, EAB: &EAB{HMACKey: "abcd"}}, wantErr: "key id"},
		{name: "EAB bad key", cfg: Config{DirectoryURL: testDirectory, EAB: &EAB{KeyID: "k", HMACKey: secret + "!"}}, wantErr: "not base64url"},
		{name: "key type", cfg: Config{DirectoryURL: testDirectory, KeyType: "ed25519"}, wantErr: "unknown key type"},
		{name: "challenge", cfg: Config{DirectoryURL: testDirectory, Challenges: []Challenge{"tls-sni-01"}}, wantErr: "unknown challenge"},
		{name: "dns-01 without provider", cfg: Config{DirectoryURL: testDirectory, Challenges: []Challenge{DNS01}}, wantErr: "no DNS provider"},
		{name: "unknown provider", cfg: Config{DirectoryURL: testDirectory, DNS: dns("route53", nil)},
			wantErr: `unknown dns-01 provider "route53" (built in: cloudflare, exec, httpreq)`, is: ErrUnknownDNSProvider},
		{name: "misspelt credential", cfg: Config{DirectoryURL: testDirectory,
			DNS: dns("cloudflare", map[string]string{"CLOUDFLARE_API_TOKEN": secret})}, wantErr: `unknown credential "CLOUDFLARE_API_TOKEN"`},
		{name: "cloudflare without credentials", cfg: Config{DirectoryURL: testDirectory, DNS: dns("cloudflare", nil)}, wantErr: "credentials"},
		{name: "cloudflare key without email", cfg: Config{DirectoryURL: testDirectory,
			DNS: dns("cloudflare", map[string]string{"CLOUDFLARE_API_KEY": secret})}, wantErr: "must be set together"},
		{name: "cloudflare TTL", cfg: Config{DirectoryURL: testDirectory,
			DNS: dns("cloudflare", map[string]string{"CLOUDFLARE_DNS_API_TOKEN": secret, "CLOUDFLARE_TTL": "60"})}, wantErr: "≥ 120"},
		{name: "httpreq", cfg: Config{DirectoryURL: testDirectory,
			DNS: dns("httpreq", map[string]string{"HTTPREQ_ENDPOINT": "https://hook.example/acme", "HTTPREQ_PASSWORD": secret, "HTTPREQ_USERNAME": "u"})}},
		{name: "httpreq without endpoint", cfg: Config{DirectoryURL: testDirectory, DNS: dns("httpreq", nil)}, wantErr: "HTTPREQ_ENDPOINT"},
		{name: "httpreq credentials in endpoint", cfg: Config{DirectoryURL: testDirectory,
			DNS: dns("httpreq", map[string]string{"HTTPREQ_ENDPOINT": "https://u:" + secret + "@hook.example/"})}, wantErr: "must not contain credentials"},
		{name: "httpreq mode", cfg: Config{DirectoryURL: testDirectory,
			DNS: dns("httpreq", map[string]string{"HTTPREQ_ENDPOINT": "https://hook.example/", "HTTPREQ_MODE": "raw"})}, wantErr: "HTTPREQ_MODE"},
		{name: "exec", cfg: Config{DirectoryURL: testDirectory, DNS: dns("exec", map[string]string{"EXEC_PATH": "/usr/local/bin/dns-hook"})}},
		{name: "exec relative", cfg: Config{DirectoryURL: testDirectory, DNS: dns("exec", map[string]string{"EXEC_PATH": "dns-hook"})}, wantErr: "absolute"},
		{name: "resolver without host", cfg: Config{DirectoryURL: testDirectory,
			DNS: &DNSConfig{Provider: "exec", Credentials: map[string]string{"EXEC_PATH": "/bin/true"}, Resolvers: []string{":53"}}}, wantErr: "no host"},
		{name: "negative timeout", cfg: Config{DirectoryURL: testDirectory, Timeout: -time.Second}, wantErr: "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if _, err := New(tt.cfg, newMemStore()); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate: %v, want an error containing %q", err, tt.wantErr)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error shows a secret: %v", err)
			}
			if _, nerr := New(tt.cfg, newMemStore()); nerr == nil {
				t.Error("New accepted what Validate rejected")
			}
		})
	}
}

// A configuration printed or logged whole shows no secret.
func TestConfigRedaction(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-value-must-not-appear"
	cfg := Config{
		DirectoryURL: testDirectory,
		EAB:          &EAB{KeyID: "kid-1", HMACKey: secret},
		DNS:          &DNSConfig{Provider: "cloudflare", Credentials: map[string]string{"CLOUDFLARE_DNS_API_TOKEN": secret}},
	}
	var logged lockedBuffer
	debugLogger(&logged).Info("settings", "acme", cfg, "eab", cfg.EAB, "dns", cfg.DNS)
	for _, out := range []string{fmt.Sprintf("%v %+v %s", cfg, cfg, cfg.DNS), logged.String()} {
		if strings.Contains(out, secret) {
			t.Errorf("secret shown: %s", out)
		}
		if !strings.Contains(out, "kid-1") || !strings.Contains(out, "CLOUDFLARE_DNS_API_TOKEN") {
			t.Errorf("names missing: %s", out)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c, err := New(Config{DirectoryURL: testDirectory}, newMemStore())
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.KeyType != KeyECP256 || c.cfg.Timeout != DefaultTimeout ||
		strings.Join(challengeNames(c.cfg.Challenges), ",") != "http-01,tls-alpn-01" || c.dns != nil {
		t.Errorf("defaults: key %s, timeout %v, challenges %v, dns %v", c.cfg.KeyType, c.cfg.Timeout, c.cfg.Challenges, c.dns)
	}
	withDNS, err := New(Config{DirectoryURL: testDirectory,
		DNS: &DNSConfig{Provider: "exec", Credentials: map[string]string{"EXEC_PATH": "/bin/true"}}}, newMemStore())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(challengeNames(withDNS.cfg.Challenges), ","); got != "http-01,tls-alpn-01,dns-01" || withDNS.dns == nil {
		t.Errorf("with DNS: challenges %s", got)
	}
	if _, err := New(Config{DirectoryURL: testDirectory}, nil); err == nil {
		t.Error("New accepted a nil store")
	}
}

func challengeNames(cs []Challenge) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c)
	}
	return out
}

func TestCheckNames(t *testing.T) {
	t.Parallel()
	c, err := New(Config{DirectoryURL: testDirectory}, newMemStore())
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.checkNames([]string{" A.example.", "a.example", "b.example", "192.0.2.1"})
	if err != nil || strings.Join(got, " ") != "a.example b.example 192.0.2.1" {
		t.Errorf("checkNames = %v, %v", got, err)
	}
	for _, bad := range [][]string{nil, {""}, {"a.example", " . "}, {"*.example.com"}} {
		if _, err := c.checkNames(bad); err == nil {
			t.Errorf("checkNames(%q) accepted", bad)
		}
	}
}

func TestHTTPHandler(t *testing.T) {
	t.Parallel()
	c, err := New(Config{DirectoryURL: testDirectory}, newMemStore())
	if err != nil {
		t.Fatal(err)
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := c.HTTPHandler(next)
	if err := c.http01.Present("a.example", "tok-1", "tok-1.thumb"); err != nil {
		t.Fatal(err)
	}
	do := func(method, path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "http://a.example"+path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := do(http.MethodGet, "/.well-known/acme-challenge/tok-1"); code != http.StatusOK || body != "tok-1.thumb" {
		t.Errorf("pending token: %d %q", code, body)
	}
	if code, _ := do(http.MethodHead, "/.well-known/acme-challenge/tok-1"); code != http.StatusOK {
		t.Errorf("HEAD pending token: %d", code)
	}
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/.well-known/acme-challenge/other"},
		{http.MethodPost, "/.well-known/acme-challenge/tok-1"},
		{http.MethodGet, "/index.html"},
		{http.MethodGet, "/.well-known/acme-challenge/"},
	} {
		if code, _ := do(r.method, r.path); code != http.StatusTeapot {
			t.Errorf("%s %s: %d, want it passed to next", r.method, r.path, code)
		}
	}
	if err := c.http01.CleanUp("a.example", "tok-1", "tok-1.thumb"); err != nil {
		t.Fatal(err)
	}
	if code, _ := do(http.MethodGet, "/.well-known/acme-challenge/tok-1"); code != http.StatusTeapot {
		t.Errorf("token after cleanup: %d", code)
	}
	rec := httptest.NewRecorder()
	c.HTTPHandler(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("nil next: %d, want 404", rec.Code)
	}
}

func TestChallengeCertificate(t *testing.T) {
	t.Parallel()
	c, err := New(Config{DirectoryURL: testDirectory}, newMemStore())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.tlsALPN.Present("x.example", "tok", "tok.thumb"); err != nil {
		t.Fatal(err)
	}
	hello := func(sni string, protos ...string) *tls.ClientHelloInfo {
		return &tls.ClientHelloInfo{ServerName: sni, SupportedProtos: protos}
	}
	cert, ok := c.ChallengeCertificate(hello("X.Example", "h2", ALPNProto))
	if !ok {
		t.Fatal("no challenge certificate for a pending name")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	acmeIdentifier := asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31} // RFC 8737
	var hasExt bool
	for _, e := range leaf.Extensions {
		hasExt = hasExt || (e.Id.Equal(acmeIdentifier) && e.Critical)
	}
	if !hasExt || len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "x.example" {
		t.Errorf("challenge certificate: names %v, acmeIdentifier %v", leaf.DNSNames, hasExt)
	}
	for _, h := range []*tls.ClientHelloInfo{hello("x.example", "h2", "http/1.1"), hello("y.example", ALPNProto), hello("x.example"), nil} {
		if _, ok := c.ChallengeCertificate(h); ok {
			t.Errorf("challenge certificate for %+v", h)
		}
	}
	if err := c.tlsALPN.CleanUp("x.example", "tok", "tok.thumb"); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.ChallengeCertificate(hello("x.example", ALPNProto)); ok {
		t.Error("challenge certificate after cleanup")
	}
}

func testAccount(t testing.TB) *account {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &account{email: "ops@example.com", key: key,
		reg: &registration.Resource{URI: "https://ca.example/acct/1"}}
}

func TestAccountEncoding(t *testing.T) {
	t.Parallel()
	a := testAccount(t)
	data, err := encodeAccount(a, testDirectory)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeAccount(data, testDirectory, a.email)
	if err != nil {
		t.Fatal(err)
	}
	if got.reg.URI != a.reg.URI || !got.key.Public().(*ecdsa.PublicKey).Equal(a.key.Public()) || got.email != a.email {
		t.Error("decoded account differs")
	}

	mutate := func(f func(*storedAccount)) []byte {
		var s storedAccount
		if err := json.Unmarshal(data, &s); err != nil {
			t.Fatal(err)
		}
		f(&s)
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for name, bad := range map[string][]byte{
		"not json":       []byte("{"),
		"version":        mutate(func(s *storedAccount) { s.Version = 2 }),
		"directory":      mutate(func(s *storedAccount) { s.Directory = "https://other.example/dir" }),
		"email":          mutate(func(s *storedAccount) { s.Email = "x@example.com" }),
		"no URL":         mutate(func(s *storedAccount) { s.Registration = nil }),
		"URL scheme":     mutate(func(s *storedAccount) { s.Registration.URI = "file:///etc/passwd" }),
		"no key":         mutate(func(s *storedAccount) { s.KeyPEM = "" }),
		"key type":       mutate(func(s *storedAccount) { s.KeyPEM = strings.Replace(s.KeyPEM, "PRIVATE KEY", "EC PRIVATE KEY", 2) }),
		"trailing bytes": mutate(func(s *storedAccount) { s.KeyPEM += "junk" }),
	} {
		if _, err := decodeAccount(bad, testDirectory, a.email); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// FuzzDecodeAccount: a stored account from a damaged store never panics,
// and whatever decodes encodes to something that decodes the same.
func FuzzDecodeAccount(f *testing.F) {
	a := testAccount(f)
	data, err := encodeAccount(a, testDirectory)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(`{"version":1,"directory":"` + testDirectory + `","registration":{"uri":"https://x"},"key_pem":""}`))
	f.Add([]byte("null"))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := decodeAccount(data, testDirectory, "ops@example.com")
		if err != nil {
			return
		}
		again, err := encodeAccount(a, testDirectory)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		b, err := decodeAccount(again, testDirectory, "ops@example.com")
		if err != nil || b.reg.URI != a.reg.URI {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// fakeCA serves handler over HTTPS; the returned config trusts it.
func fakeCA(t *testing.T, handler http.Handler) Config {
	t.Helper()
	srv := httptest.NewTLSServer(handler)
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return Config{DirectoryURL: srv.URL + "/directory", RootCAs: pool, AgreeToTerms: true}
}

// A CA that is down fails Obtain at once, saying which step failed.
func TestUnreachableCA(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dir := "https://" + ln.Addr().String() + "/directory"
	ln.Close()
	c, err := New(Config{DirectoryURL: dir, AgreeToTerms: true}, newMemStore())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Obtain(testContext(t), []string{"a.example"})
	if !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), "acme: obtain [a.example]: register account at "+dir) {
		t.Errorf("Obtain: %v", err)
	}
}

// A server that answers garbage gives errors, not hangs or panics.
func TestGarbageCA(t *testing.T) {
	t.Parallel()
	cfg := fakeCA(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "<html>certainly not ACME</html>")
	}))
	c, err := New(cfg, newMemStore())
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	if _, err := c.Obtain(ctx, []string{"a.example"}); err == nil || !strings.Contains(err.Error(), "get directory") {
		t.Errorf("Obtain: %v", err)
	}
	leaf := testLeaf(t, true)
	if _, err := c.RenewalInfo(ctx, leaf); err == nil || errors.Is(err, ErrNoRenewalInfo) {
		t.Errorf("RenewalInfo: %v", err)
	}
	if err := c.Revoke(ctx, certPEM(leaf), ReasonUnspecified); err == nil || !strings.Contains(err.Error(), "acme: revoke certificate") {
		t.Errorf("Revoke: %v", err)
	}
}

// A directory that makes sense but whose endpoints answer garbage.
func TestGarbageEndpoints(t *testing.T) {
	t.Parallel()
	var base string
	cfg := fakeCA(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/directory" {
			_ = json.NewEncoder(w).Encode(map[string]string{
				"newNonce": base + "/nonce", "newAccount": base + "/account", "newOrder": base + "/order",
				"renewalInfo": base + "/ari",
			})
			return
		}
		w.Header().Set("Replay-Nonce", "bm9uY2U")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, "\x00\x01 garbage")
	}))
	base = strings.TrimSuffix(cfg.DirectoryURL, "/directory")
	c, err := New(cfg, newMemStore())
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	if _, err := c.Obtain(ctx, []string{"a.example"}); err == nil || !strings.Contains(err.Error(), "register account at") {
		t.Errorf("Obtain: %v", err)
	}
	if _, err := c.RenewalInfo(ctx, testLeaf(t, true)); err == nil || errors.Is(err, ErrNoRenewalInfo) {
		t.Errorf("RenewalInfo: %v", err)
	}
}

// A CA that accepts connections and never answers is bounded by the context.
func TestHangingCA(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	cfg := fakeCA(t, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	c, err := New(cfg, newMemStore())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.Obtain(ctx, []string{"a.example"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Obtain: %v, want the context's deadline", err)
	}
	// The client's own Timeout bounds a context without deadline.
	cfg.Timeout = 300 * time.Millisecond
	c2, err := New(cfg, newMemStore())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.RenewalInfo(t.Context(), testLeaf(t, true)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("RenewalInfo: %v, want the timeout", err)
	}
}

func TestNoRenewalInfo(t *testing.T) {
	t.Parallel()
	var base string
	cfg := fakeCA(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{
			"newNonce": base + "/nonce", "newAccount": base + "/account", "newOrder": base + "/order",
		})
	}))
	base = strings.TrimSuffix(cfg.DirectoryURL, "/directory")
	c, err := New(cfg, newMemStore())
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	if _, err := c.RenewalInfo(ctx, testLeaf(t, true)); !errors.Is(err, ErrNoRenewalInfo) {
		t.Errorf("CA without ARI: %v, want ErrNoRenewalInfo", err)
	}
	if _, err := c.RenewalInfo(ctx, testLeaf(t, false)); !errors.Is(err, ErrNoRenewalInfo) {
		t.Errorf("certificate without AKI: %v, want ErrNoRenewalInfo", err)
	}
	if _, err := c.RenewalInfo(ctx, nil); err == nil {
		t.Error("nil certificate accepted")
	}
}

func TestTermsNotAgreed(t *testing.T) {
	t.Parallel()
	cfg := fakeCA(t, http.NotFoundHandler())
	cfg.AgreeToTerms = false
	c, err := New(cfg, newMemStore())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Obtain(testContext(t), []string{"a.example"}); !errors.Is(err, ErrTermsNotAgreed) {
		t.Errorf("Obtain: %v, want ErrTermsNotAgreed", err)
	}
}

// A stored account that cannot be read is an error, not a silent new
// registration (which would orphan the old account and its certificates).
func TestStoreErrors(t *testing.T) {
	t.Parallel()
	cfg := fakeCA(t, http.NotFoundHandler())
	store := newMemStore()
	store.data[accountKey(cfg.DirectoryURL, "")] = []byte(`{"version":1}`)
	c, err := New(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Obtain(testContext(t), []string{"a.example"}); err == nil || !strings.Contains(err.Error(), "load account for") {
		t.Errorf("Obtain with a damaged account: %v", err)
	}
	if err := c.Revoke(testContext(t), []byte("not pem"), 0); err == nil {
		t.Error("Revoke accepted garbage")
	}
}

func TestExecProvider(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := filepath.Join(dir, "hook.sh")
	out := filepath.Join(dir, "args")
	writeFile(t, script, []byte("#!/bin/sh\necho \"$@\" >> "+out+"\n"))
	if err := os.Chmod(script, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := newDNSFactory(DNSConfig{Provider: "exec", Credentials: map[string]string{"EXEC_PATH": script, "EXEC_MODE": "RAW"}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.build(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Present("a.example", "tok", "tok.thumb"); err != nil {
		t.Fatal(err)
	}
	if err := p.CleanUp("a.example", "tok", "tok.thumb"); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := "present -- a.example tok tok.thumb\ncleanup -- a.example tok tok.thumb\n"; string(got) != want {
		t.Errorf("hook ran with %q, want %q", got, want)
	}

	// A hook that hangs is killed with the operation.
	hang := filepath.Join(dir, "hang.sh")
	writeFile(t, hang, []byte("#!/bin/sh\nexec sleep 600\n"))
	if err := os.Chmod(hang, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err = newDNSFactory(DNSConfig{Provider: "exec", Credentials: map[string]string{"EXEC_PATH": hang, "EXEC_MODE": "RAW"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if p, err = f.build(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Present("a.example", "tok", "tok.thumb"); err == nil {
		t.Error("hanging hook: no error")
	}
}

// testLeaf returns a certificate signed by a throwaway CA, with or without
// an authority key identifier.
func testLeaf(t *testing.T, withAKI bool) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0x1234),
		Subject:      pkix.Name{CommonName: "a.example"},
		DNSNames:     []string{"a.example"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	parent := tmpl
	if withAKI {
		parent = &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, SubjectKeyId: []byte{1, 2, 3, 4}}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if withAKI != (len(leaf.AuthorityKeyId) > 0) {
		t.Fatalf("test leaf AKI %x, want present=%v", leaf.AuthorityKeyId, withAKI)
	}
	return leaf
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}
