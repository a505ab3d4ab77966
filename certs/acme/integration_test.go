package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/pebbletest"
)

// testTimeout bounds each ACME call of the Pebble tests; a hang fails the
// test with a deadline error instead of stalling the run.
const testTimeout = 60 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// verifyChain checks cert against Pebble's issuing root for every name, and
// that its key belongs to it.
func verifyChain(t *testing.T, env *pebbleEnv, cert *Certificate, names ...string) {
	t.Helper()
	pair, err := tls.X509KeyPair(cert.ChainPEM, cert.KeyPEM)
	if err != nil {
		t.Fatalf("chain and key do not pair: %v", err)
	}
	if len(pair.Certificate) < 2 {
		t.Fatalf("chain has %d certificates, want leaf and intermediate", len(pair.Certificate))
	}
	if !slices.Equal(pair.Certificate[0], cert.Leaf.Raw) {
		t.Fatal("Leaf is not the first certificate of ChainPEM")
	}
	if cert.Issuer == nil || !slices.Equal(pair.Certificate[1], cert.Issuer.Raw) {
		t.Fatal("Issuer is not the second certificate of ChainPEM")
	}
	inter := x509.NewCertPool()
	inter.AddCert(cert.Issuer)
	roots := env.IssuingRoots(t)
	for _, n := range names {
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: n, Roots: roots, Intermediates: inter}); err != nil {
			t.Errorf("verify for %s: %v", n, err)
		}
	}
	if cert.ARICertID == "" || cert.URL == "" {
		t.Errorf("ARICertID %q, URL %q: want both", cert.ARICertID, cert.URL)
	}
}

// TestPebbleHTTP01 registers and obtains a two-name certificate through
// http-01, asks for its renewal information, revokes it, and checks that no
// secret reached the log.
func TestPebbleHTTP01(t *testing.T) {
	t.Parallel()
	env := startPebble(t, pebbletest.Options{})
	ctx := testContext(t)
	store := newMemStore()
	logs := &lockedBuffer{}
	cfg := Config{
		Email:        "ops@edgegate.test",
		AgreeToTerms: true,
		Challenges:   []Challenge{HTTP01},
		Logger:       debugLogger(logs),
	}
	c := env.client(t, cfg, store)

	cert, err := c.Obtain(ctx, []string{"a.edgegate.test", "B.edgegate.test."})
	if err != nil {
		t.Fatalf("Obtain: %v", err)
	}
	verifyChain(t, env, cert, "a.edgegate.test", "b.edgegate.test")
	if got := len(env.servedTokens()); got < 2 {
		t.Errorf("http-01 server saw %d challenge requests, want one per name at least", got)
	}
	if store.saveCount() != 1 {
		t.Fatalf("store saved %d accounts, want 1", store.saveCount())
	}

	info, err := c.RenewalInfo(ctx, cert.Leaf)
	if err != nil {
		t.Fatalf("RenewalInfo: %v", err)
	}
	if !info.WindowStart.Before(info.WindowEnd) ||
		info.WindowStart.Before(cert.Leaf.NotBefore) || info.WindowEnd.After(cert.Leaf.NotAfter) {
		t.Errorf("renewal window %v – %v is not inside the validity %v – %v",
			info.WindowStart, info.WindowEnd, cert.Leaf.NotBefore, cert.Leaf.NotAfter)
	}
	if info.RetryAfter <= 0 {
		t.Errorf("RetryAfter %v, want Pebble's", info.RetryAfter)
	}

	if st := env.CertStatus(t, cert.Leaf.SerialNumber); st.Status != "Valid" {
		t.Fatalf("before revocation pebble says %q", st.Status)
	}
	if err := c.Revoke(ctx, cert.ChainPEM, ReasonSuperseded); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	st := env.CertStatus(t, cert.Leaf.SerialNumber)
	if st.Status != "Revoked" || st.Reason == nil || *st.Reason != ReasonSuperseded {
		t.Errorf("after revocation pebble says %q reason %v, want Revoked reason %d", st.Status, st.Reason, ReasonSuperseded)
	}

	// Nothing secret in the log: certificate and account keys, challenge
	// tokens.
	out := logs.String()
	for _, event := range []string{"acme account registered", "acme certificate obtained", "acme certificate revoked"} {
		if !strings.Contains(out, event) {
			t.Errorf("log lacks %q:\n%s", event, out)
		}
	}
	data, err := store.LoadAccount(ctx, accountKey(c.cfg.DirectoryURL, cfg.Email))
	if err != nil {
		t.Fatal(err)
	}
	var stored storedAccount
	if err := json.Unmarshal(data, &stored); err != nil {
		t.Fatal(err)
	}
	secrets := append([]string{pemBody(t, cert.KeyPEM), pemBody(t, []byte(stored.KeyPEM))}, env.servedTokens()...)
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("log contains a secret %.12q…", s)
		}
	}
}

// TestPebbleAccountReuse: a second client on the same store (a restarted
// gateway) uses the stored account, and renews the first client's
// certificate, naming it as replaced (RFC 9773), which Pebble checks belongs
// to the same account.
func TestPebbleAccountReuse(t *testing.T) {
	t.Parallel()
	env := startPebble(t, pebbletest.Options{})
	ctx := testContext(t)
	store := newMemStore()
	cfg := Config{AgreeToTerms: true, Challenges: []Challenge{HTTP01}}
	c := env.client(t, cfg, store)
	cert, err := c.Obtain(ctx, []string{"reuse.edgegate.test"})
	if err != nil {
		t.Fatalf("Obtain: %v", err)
	}

	c2 := env.client(t, cfg, store)
	renewed, err := c2.Renew(ctx, []string{"reuse.edgegate.test"}, cert.Leaf)
	if err != nil {
		t.Fatalf("Renew with the stored account: %v", err)
	}
	verifyChain(t, env, renewed, "reuse.edgegate.test")
	if store.saveCount() != 1 || c2.acct.reg.URI != c.acct.reg.URI {
		t.Errorf("second client: %d saves, account %s; want 1 save and account %s",
			store.saveCount(), c2.acct.reg.URI, c.acct.reg.URI)
	}
	if renewed.Leaf.SerialNumber.Cmp(cert.Leaf.SerialNumber) == 0 || string(renewed.KeyPEM) == string(cert.KeyPEM) {
		t.Error("Renew returned the old certificate or key")
	}
}

// pemBody returns a middle slice of the base64 body of PEM data, the part a
// leak would show.
func pemBody(t *testing.T, data []byte) string {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("not PEM: %q", data)
	}
	b64 := base64.StdEncoding.EncodeToString(block.Bytes)
	return b64[len(b64)/3 : len(b64)/3+24]
}

// TestPebbleTLSALPN01 obtains a certificate whose challenge the gateway's TLS
// listener answers through ChallengeCertificate.
func TestPebbleTLSALPN01(t *testing.T) {
	t.Parallel()
	env := startPebble(t, pebbletest.Options{})
	ctx := testContext(t)
	c := env.client(t, Config{AgreeToTerms: true, Challenges: []Challenge{TLSALPN01}}, newMemStore())

	cert, err := c.Obtain(ctx, []string{"tls.edgegate.test"})
	if err != nil {
		t.Fatalf("Obtain: %v", err)
	}
	verifyChain(t, env, cert, "tls.edgegate.test")
	if env.alpnCount() == 0 {
		t.Error("no tls-alpn-01 handshake was answered with a challenge certificate")
	}
	if len(env.servedTokens()) != 0 {
		t.Error("http-01 was used though only tls-alpn-01 is enabled")
	}
	// The challenge certificate is gone once the order is done.
	hello := &tls.ClientHelloInfo{ServerName: "tls.edgegate.test", SupportedProtos: []string{ALPNProto}}
	if _, ok := c.ChallengeCertificate(hello); ok {
		t.Error("challenge certificate still served after the order")
	}
}

// TestPebbleDNS01 obtains a wildcard certificate through dns-01 with the
// httpreq provider, whose endpoint here sets records in the test's DNS
// server that Pebble queries.
//
// It is not parallel: it sets LEGO_DISABLE_CNAME_SUPPORT, without which lego
// asks the system's resolvers whether _acme-challenge names are CNAMEs.
func TestPebbleDNS01(t *testing.T) {
	t.Setenv("LEGO_DISABLE_CNAME_SUPPORT", "true")
	env := startPebble(t, pebbletest.Options{})
	ctx := testContext(t)

	const user, password = "hook", "hook-password-not-for-logs"
	var presented, cleaned atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		var msg struct{ FQDN, Value string }
		if u != user || p != password || json.NewDecoder(r.Body).Decode(&msg) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		switch r.URL.Path {
		case "/present":
			presented.Add(1)
			env.DNS.SetTXT(msg.FQDN, msg.Value)
		case "/cleanup":
			cleaned.Add(1)
			env.DNS.ClearTXT(msg.FQDN, msg.Value)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(hook.Close)

	logs := &lockedBuffer{}
	c := env.client(t, Config{
		AgreeToTerms: true,
		Challenges:   []Challenge{DNS01},
		DNS: &DNSConfig{
			Provider: "httpreq",
			Credentials: map[string]string{
				"HTTPREQ_ENDPOINT": hook.URL,
				"HTTPREQ_USERNAME": user,
				"HTTPREQ_PASSWORD": password,
			},
			Resolvers:       []string{env.DNS.Addr()},
			PollingInterval: 50 * time.Millisecond,
		},
		Logger: debugLogger(logs),
	}, newMemStore())

	cert, err := c.Obtain(ctx, []string{"*.wild.edgegate.test", "wild.edgegate.test"})
	if err != nil {
		t.Fatalf("Obtain: %v", err)
	}
	verifyChain(t, env, cert, "x.wild.edgegate.test", "wild.edgegate.test")
	if presented.Load() != 2 || cleaned.Load() != 2 {
		t.Errorf("hook saw %d presents and %d cleanups, want 2 of each", presented.Load(), cleaned.Load())
	}
	if n := env.DNS.TXTNames(); n != 0 {
		t.Errorf("%d TXT records left after the order", n)
	}
	if strings.Contains(logs.String(), password) {
		t.Error("log contains the DNS provider's password")
	}
}

// TestPebbleEAB registers through external account binding, and shows the
// error a CA that requires it gives without.
func TestPebbleEAB(t *testing.T) {
	t.Parallel()
	const kid = "kid-1"
	const hmac = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W" // Pebble's sample
	env := startPebble(t, pebbletest.Options{EABKeys: map[string]string{kid: hmac}})
	ctx := testContext(t)

	without := env.client(t, Config{AgreeToTerms: true, Challenges: []Challenge{HTTP01}}, newMemStore())
	_, err := without.Obtain(ctx, []string{"eab.edgegate.test"})
	if err == nil || !strings.Contains(err.Error(), "register account at "+env.DirectoryURL()) {
		t.Fatalf("Obtain without EAB: %v, want a registration error", err)
	}

	logs := &lockedBuffer{}
	with := env.client(t, Config{
		AgreeToTerms: true,
		Challenges:   []Challenge{HTTP01},
		EAB:          &EAB{KeyID: kid, HMACKey: hmac},
		Logger:       debugLogger(logs),
	}, newMemStore())
	cert, err := with.Obtain(ctx, []string{"eab.edgegate.test"})
	if err != nil {
		t.Fatalf("Obtain with EAB: %v", err)
	}
	verifyChain(t, env, cert, "eab.edgegate.test")
	if strings.Contains(logs.String(), hmac) {
		t.Error("log contains the EAB MAC key")
	}
}

// TestPebbleAccountGone: a CA that lost the stored account (here, Pebble
// restarted with an empty database) gets a new registration, and the order
// goes through.
func TestPebbleAccountGone(t *testing.T) {
	t.Parallel()
	env := startPebble(t, pebbletest.Options{})
	ctx := testContext(t)
	store := newMemStore()
	logs := &lockedBuffer{}
	c := env.client(t, Config{AgreeToTerms: true, Challenges: []Challenge{HTTP01}, Logger: debugLogger(logs)}, store)
	old, err := c.Obtain(ctx, []string{"gone.edgegate.test"})
	if err != nil {
		t.Fatalf("Obtain: %v", err)
	}

	env.Restart(t)
	cert, err := c.Renew(ctx, []string{"gone.edgegate.test"}, old.Leaf)
	if err != nil {
		t.Fatalf("Renew after the CA forgot the account: %v", err)
	}
	verifyChain(t, env, cert, "gone.edgegate.test")
	if store.saveCount() != 2 {
		t.Errorf("store saved %d accounts, want 2 (the first and its replacement)", store.saveCount())
	}
	if !strings.Contains(logs.String(), "no longer exists") {
		t.Errorf("the re-registration was not logged:\n%s", logs.String())
	}
}
