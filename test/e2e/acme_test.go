package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/pebbletest"
)

// The ACME tests run the gateway against Pebble (internal/pebbletest), whose
// validation authority reaches the gateway where a real CA would on ports
// 80 and 443: http-01 on the admin API's listener, tls-alpn-01 on the MQTT
// TLS listener. Every name resolves to 127.0.0.1 for Pebble; for the test's
// own clients the names do not resolve, so they dial 127.0.0.1 and name the
// host only for verification.

// acmeHost is the name the gateway orders certificates for.
const acmeHost = "gw.edgegate.test"

// acmeGateway is a daemon whose ACME settings point at its own Pebble.
type acmeGateway struct {
	*daemon
	pebble *pebbletest.Pebble
	// rootFile holds Pebble's issuing root, for mosquitto's --cafile.
	rootFile string
	roots    *x509.CertPool
}

// startACMEGateway starts a daemon (anonymous MQTT allowed), then Pebble
// validating on the daemon's admin API port (http-01) and MQTT TLS port
// (tls-alpn-01) and issuing certificates valid for validity (0: Pebble's
// default), then points the daemon's live settings at Pebble with the
// given challenge types.
func startACMEGateway(t *testing.T, validity time.Duration, challenges ...string) *acmeGateway {
	t.Helper()
	d := startDaemon(t, obj{"auth": obj{"allow_anonymous": true}})
	g := &acmeGateway{daemon: d}
	g.pebble = pebbletest.Start(t, pebbletest.Options{
		HTTPPort: portOf(t, strings.TrimPrefix(d.apiBase, "http://")),
		TLSPort:  portOf(t, d.addr("tls")),
		Validity: validity,
	})
	dir := t.TempDir()
	httpsCA := filepath.Join(dir, "pebble-https-ca.pem")
	writeFile(t, httpsCA, g.pebble.HTTPSRootsPEM())
	g.rootFile = filepath.Join(dir, "pebble-root.pem")
	writeFile(t, g.rootFile, g.pebble.IssuingRootPEM(t))
	g.roots = g.pebble.IssuingRoots(t)

	d.api(t, "PATCH", "/api/v1/settings", obj{"acme": obj{
		"directory_url":  g.pebble.DirectoryURL(),
		"email":          "ops@edgegate.test",
		"agree_to_terms": true,
		"challenges":     challenges,
		"root_ca_file":   httpsCA,
	}}, http.StatusOK, nil)
	return g
}

func portOf(t *testing.T, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("address %q: %v", hostport, err)
	}
	port, err := net.LookupPort("tcp", p)
	if err != nil {
		t.Fatalf("address %q: %v", hostport, err)
	}
	return port
}

// acmeCertificate is the part of the certificate entity these tests read.
type acmeCertificate struct {
	ID          string   `json:"id"`
	Source      string   `json:"source"`
	LetsEncrypt bool     `json:"letsEncrypt"`
	Serial      string   `json:"serial"`
	SANs        []string `json:"sans"`
	From        int64    `json:"from"`
	To          int64    `json:"to"`
	Revoked     bool     `json:"revoked"`
	Renewal     struct {
		NextAttempt int64  `json:"nextAttempt"`
		Failures    int    `json:"failures"`
		LastError   string `json:"lastError"`
	} `json:"renewal"`
}

// obtain orders a certificate for host through the API (served by the TLS
// listeners) and checks the entity it answers with.
func (g *acmeGateway) obtain(t *testing.T, host string) acmeCertificate {
	t.Helper()
	var c acmeCertificate
	g.api(t, "POST", "/api/v1/certificates/_letsencrypt", obj{"host": host}, http.StatusCreated, &c)
	if c.ID == "" || c.Source != "acme" || !c.LetsEncrypt || c.Serial == "" || !slices.Contains(c.SANs, host) {
		t.Fatalf("POST _letsencrypt answered %+v, want an ACME certificate for %s", c, host)
	}
	return c
}

func (g *acmeGateway) certificate(t *testing.T, id string) acmeCertificate {
	t.Helper()
	var c acmeCertificate
	g.api(t, "GET", "/api/v1/certificates/"+id, nil, http.StatusOK, &c)
	return c
}

// servedChain makes a TLS handshake with the MQTT TLS listener and returns
// the chain it served, unverified.
func (g *acmeGateway) servedChain(ctx context.Context, t *testing.T) []*x509.Certificate {
	t.Helper()
	dialer := &tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}} //nolint:gosec // verified by the caller
	conn, err := dialer.DialContext(ctx, "tcp", g.addr("tls"))
	if err != nil {
		t.Fatalf("TLS handshake with the MQTT TLS listener: %v", err)
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates
}

// servedLeaf makes a TLS handshake with the MQTT TLS listener as a client
// that knows it as host and trusts roots, and returns the leaf it served.
func (g *acmeGateway) servedLeaf(ctx context.Context, t *testing.T, host string, roots *x509.CertPool) (*x509.Certificate, error) {
	t.Helper()
	dialer := &tls.Dialer{Config: &tls.Config{ServerName: host, RootCAs: roots, MinVersion: tls.VersionTLS12}}
	conn, err := dialer.DialContext(ctx, "tcp", g.addr("tls"))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}

func parseSerial(t *testing.T, hex string) *big.Int {
	t.Helper()
	n, ok := new(big.Int).SetString(hex, 16)
	if !ok {
		t.Fatalf("serial %q is not hex", hex)
	}
	return n
}

// localCA is the local CA's trust bundle (GET /pki/ca), PEM.
func localCA(t *testing.T, d *daemon) []byte {
	t.Helper()
	status, body := d.apiRaw(t, "GET", "/pki/ca", "", nil, false)
	if status != http.StatusOK {
		t.Fatalf("GET /pki/ca: status %d: %s", status, body)
	}
	return body
}

func localCAPool(t *testing.T, d *daemon) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(localCA(t, d)) {
		t.Fatal("GET /pki/ca: no certificate")
	}
	return pool
}

// TestACMEHTTP01 orders a certificate through http-01, answered on the admin
// API's listener, and shows that the MQTT TLS listener serves it: a Go
// client and mosquitto verify it against Pebble's issuing root (and
// mosquitto refuses it against the local CA's), and MQTT messages flow over
// it. Then it revokes the certificate: Pebble reports it revoked and the
// listener goes back to the local CA's certificate.
func TestACMEHTTP01(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 80*time.Second)
	g := startACMEGateway(t, 0, "http-01")
	c := g.obtain(t, acmeHost)
	if want := "Attempting to validate w/ HTTP: http://" + acmeHost + ":" + strings.TrimPrefix(g.apiBase, "http://127.0.0.1:") + "/.well-known/acme-challenge/"; !strings.Contains(g.pebble.Output(), want) {
		t.Errorf("pebble did not validate http-01 on the admin API's port (want %q in its log)", want)
	}

	leaf, err := g.servedLeaf(ctx, t, acmeHost, g.roots)
	if err != nil {
		t.Fatalf("TLS listener: %v", err)
	}
	if got := leaf.SerialNumber.Text(16); got != c.Serial {
		t.Fatalf("TLS listener serves serial %s, the ACME certificate is %s", got, c.Serial)
	}

	if haveMosquitto(t) {
		tlsArgs := []string{"-h", "127.0.0.1", "-p", g.port("tls"), "--insecure", "-V", "mqttv311"}
		t.Run("mosquitto verifies against Pebble's root", func(t *testing.T) {
			args := append(slices.Clone(tlsArgs), "--cafile", g.rootFile)
			sub := startMosqSub(ctx, t, append(slices.Clone(args), "-q", "1", "-t", "e2e/acme", "-C", "1", "-W", "20")...)
			sub.waitSubscribed(ctx)
			mosqPub(ctx, t, append(slices.Clone(args), "-q", "1", "-t", "e2e/acme", "-m", "over-acme-tls")...)
			if got, want := sub.wait(ctx), []string{msgLine(false, 1, "e2e/acme", "over-acme-tls")}; !slices.Equal(got, want) {
				t.Fatalf("mosquitto_sub printed %q, want %q (stderr %q)", got, want, sub.stderr.String())
			}
			if sub.code != 0 {
				t.Fatalf("mosquitto_sub exit code %d", sub.code)
			}
		})
		t.Run("mosquitto refuses it against the local CA", func(t *testing.T) {
			localFile := filepath.Join(t.TempDir(), "local-ca.pem")
			writeFile(t, localFile, localCA(t, g.daemon))
			args := append(slices.Clone(tlsArgs), "--cafile", localFile)
			// -d prints OpenSSL's reason.
			r := runMosquitto(ctx, t, "mosquitto_sub", append(args, "-d", "-t", "e2e/acme", "-C", "1", "-W", "10")...)
			if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "certificate verify failed") {
				t.Fatalf("mosquitto_sub with the local CA as --cafile: exit code %d, output %q %q; want a verification failure", r.code, r.stdout, r.stderr)
			}
		})
	}

	t.Run("revoke", func(t *testing.T) {
		serial := parseSerial(t, c.Serial)
		if st := g.pebble.CertStatus(t, serial); st.Status != "Valid" {
			t.Fatalf("before revocation pebble says %q", st.Status)
		}
		var revoked acmeCertificate
		g.api(t, "POST", "/api/v1/certificates/"+c.ID+"/_revoke", obj{"reason": "superseded"}, http.StatusOK, &revoked)
		if !revoked.Revoked {
			t.Errorf("_revoke answered %+v, want revoked", revoked)
		}
		const reasonSuperseded = 4 // RFC 5280
		st := g.pebble.CertStatus(t, serial)
		if st.Status != "Revoked" || st.Reason == nil || *st.Reason != reasonSuperseded {
			t.Fatalf("pebble says %q reason %v, want Revoked reason %d", st.Status, st.Reason, reasonSuperseded)
		}
		// The listeners go back to the local CA's certificate.
		chain := g.servedChain(ctx, t)
		if chain[0].SerialNumber.Cmp(leaf.SerialNumber) == 0 {
			t.Fatal("the TLS listener still serves the revoked ACME certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		if _, err := chain[0].Verify(x509.VerifyOptions{Roots: localCAPool(t, g.daemon), Intermediates: inter}); err != nil {
			t.Fatalf("after revocation the TLS listener serves %q, not a certificate of the local CA: %v", chain[0].Subject, err)
		}
	})
}

// TestACMETLSALPN01 orders a certificate through tls-alpn-01, answered by
// the MQTT TLS listener, which then serves it.
func TestACMETLSALPN01(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 60*time.Second)
	g := startACMEGateway(t, 0, "tls-alpn-01")
	c := g.obtain(t, acmeHost)
	if strings.Contains(g.pebble.Output(), "validate w/ HTTP") {
		t.Error("pebble validated over HTTP though only tls-alpn-01 is enabled")
	}
	leaf, err := g.servedLeaf(ctx, t, acmeHost, g.roots)
	if err != nil {
		t.Fatalf("TLS listener: %v", err)
	}
	if got := leaf.SerialNumber.Text(16); got != c.Serial {
		t.Fatalf("TLS listener serves serial %s, the ACME certificate is %s", got, c.Serial)
	}
}

// acmeValidity is the lifetime of Pebble's certificates in the renewal
// test: short, so the gateway's scheduler renews within the test.
const acmeValidity = 30 * time.Second

// acmeRenewalGrace is how long after its planned time a renewal may take
// (an order against Pebble takes a few seconds, more under -race).
const acmeRenewalGrace = 20 * time.Second

// TestACMEAutomaticRenewal gets a short-lived certificate from Pebble and,
// without any further API call, waits for the gateway's scheduler to renew
// it at the time it planned (in Pebble's ARI window, which for a
// certificate this short is its whole lifetime): the API shows a new
// serial, which the TLS listener serves.
func TestACMEAutomaticRenewal(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 80*time.Second)
	g := startACMEGateway(t, acmeValidity, "http-01")
	first := g.obtain(t, acmeHost)
	from, to := time.UnixMilli(first.From), time.UnixMilli(first.To)
	if life := to.Sub(from); life > acmeValidity {
		t.Fatalf("pebble issued a certificate valid %v, want %v", life, acmeValidity)
	}
	planned := time.UnixMilli(g.certificate(t, first.ID).Renewal.NextAttempt)
	if planned.Before(from) || planned.After(to) {
		t.Fatalf("renewal planned at %s, outside the certificate's validity %s – %s",
			planned.Format(time.StampMilli), from.Format(time.StampMilli), to.Format(time.StampMilli))
	}

	renewCtx, cancel := context.WithDeadline(ctx, planned.Add(acmeRenewalGrace))
	defer cancel()
	var renewed acmeCertificate
	waitUntil(renewCtx, t, fmt.Sprintf("the renewal planned at %s (certificate valid until %s), %v grace",
		planned.Format(time.StampMilli), to.Format(time.StampMilli), acmeRenewalGrace), func() bool {
		renewed = g.certificate(t, first.ID)
		return renewed.Serial != first.Serial
	})
	if renewed.From < first.From || renewed.Revoked {
		t.Fatalf("after renewal the API shows %+v; the first certificate was %+v", renewed, first)
	}
	// The listener serves the new certificate from its next handshake on
	// (it may have been renewed again meanwhile: any serial but the first).
	leaf, err := g.servedLeaf(ctx, t, acmeHost, g.roots)
	if err != nil {
		t.Fatalf("TLS listener after renewal: %v", err)
	}
	if got := leaf.SerialNumber.Text(16); got == first.Serial {
		t.Fatalf("TLS listener still serves the first serial %s after renewal to %s", got, renewed.Serial)
	}
	if !strings.Contains(g.allLogs(), "certificate renewed") {
		t.Error("the daemon's log does not show the renewal")
	}
}
