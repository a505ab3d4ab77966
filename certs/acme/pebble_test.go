package acme

// The harness for tests against a real Pebble (Let's Encrypt's ACME test CA):
// a DNS server that resolves every name to 127.0.0.1 and serves TXT records
// set by the test, the gateway-side challenge servers (plain HTTP for
// http-01, TLS for tls-alpn-01) answering for every client the test makes,
// and the Pebble process on free ports, killed in t.Cleanup.
//
// Pebble's configuration and HTTPS certificate are generated here rather than
// copied from Pebble's module: the test then needs only the pebble binary,
// whichever way it was installed.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/challenge/http01"
	"github.com/miekg/dns"
)

// pebbleVersion is what scripts/install-test-deps.sh installs.
const pebbleVersion = "v2.10.1"

// findPebble returns the pebble binary: the one scripts/install-test-deps.sh
// installs into GOBIN (or GOPATH/bin), else one on PATH. Without one the test
// is skipped, or fails under CI=true.
func findPebble(t *testing.T) string {
	t.Helper()
	var candidates []string
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) > 0 && strings.TrimSpace(lines[0]) != "" {
			candidates = append(candidates, filepath.Join(strings.TrimSpace(lines[0]), "pebble"))
		}
		if len(lines) > 1 {
			if gopath := filepath.SplitList(strings.TrimSpace(lines[1])); len(gopath) > 0 && gopath[0] != "" {
				candidates = append(candidates, filepath.Join(gopath[0], "bin", "pebble"))
			}
		}
	}
	if p, err := exec.LookPath("pebble"); err == nil {
		candidates = append(candidates, p)
	}
	for _, p := range candidates {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	msg := "pebble " + pebbleVersion + " not found in GOBIN, GOPATH/bin or PATH; run scripts/install-test-deps.sh"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// memStore is an in-memory AccountStore that counts saves.
type memStore struct {
	mu    sync.Mutex
	data  map[string][]byte
	saves int
}

func newMemStore() *memStore { return &memStore{data: make(map[string][]byte)} }

func (s *memStore) LoadAccount(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.data[key]
	if !ok {
		return nil, ErrAccountNotFound
	}
	return slices.Clone(d), nil
}

func (s *memStore) SaveAccount(_ context.Context, key string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[key] = slices.Clone(data)
	s.saves++
	return nil
}

func (s *memStore) saveCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saves
}

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func debugLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testDNS answers A queries for every name with 127.0.0.1, AAAA with nothing
// (the challenge servers listen on IPv4 only) and TXT from its records.
type testDNS struct {
	addr string

	mu  sync.Mutex
	txt map[string][]string // lower-case FQDN → values
}

func startDNS(t *testing.T) *testDNS {
	t.Helper()
	// Pebble asks over TCP, Go's resolver over UDP: serve both on one port.
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	for range 5 {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close() // the TCP port is taken; try another
	}
	if err != nil {
		t.Fatalf("dns server: %v", err)
	}
	d := &testDNS{addr: pc.LocalAddr().String(), txt: make(map[string][]string)}
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: d}, {Listener: ln, Handler: d}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan error, 1)
		go func() { done <- srv.ActivateAndServe() }()
		select {
		case <-started:
		case err := <-done:
			t.Fatalf("dns server: %v", err)
		}
		t.Cleanup(func() {
			_ = srv.Shutdown()
			if err := <-done; err != nil {
				t.Logf("dns server: %v", err)
			}
		})
	}
	return d
}

func (d *testDNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	for _, q := range req.Question {
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 0}
		switch q.Qtype {
		case dns.TypeA:
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IPv4(127, 0, 0, 1)})
		case dns.TypeTXT:
			hdr.Rrtype = dns.TypeTXT
			d.mu.Lock()
			for _, v := range d.txt[strings.ToLower(q.Name)] {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: []string{v}})
			}
			d.mu.Unlock()
		}
	}
	_ = w.WriteMsg(m)
}

func (d *testDNS) setTXT(fqdn, value string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fqdn = strings.ToLower(dns.Fqdn(fqdn))
	d.txt[fqdn] = append(d.txt[fqdn], value)
}

func (d *testDNS) clearTXT(fqdn, value string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fqdn = strings.ToLower(dns.Fqdn(fqdn))
	d.txt[fqdn] = slices.DeleteFunc(d.txt[fqdn], func(v string) bool { return v == value })
	if len(d.txt[fqdn]) == 0 {
		delete(d.txt, fqdn)
	}
}

func (d *testDNS) records() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.txt)
}

// pebbleOptions vary Pebble's configuration.
type pebbleOptions struct {
	// eabKeys, when set, makes Pebble require external account binding with
	// these key ids and base64url MAC keys.
	eabKeys map[string]string
}

// pebbleEnv is a running Pebble with its DNS and challenge servers.
type pebbleEnv struct {
	bin     string
	dir     string
	tlsPool *x509.CertPool // trusts Pebble's HTTPS certificate
	mgmt    *http.Client
	dns     *testDNS
	opts    pebbleOptions

	httpPort, tlsPort int
	// Pebble's own ports, kept across restarts.
	listenPort, mgmtPort int
	proc                 *pebbleProc

	mu            sync.Mutex
	clients       []*Client
	httpTokens    []string // tokens requested on the http-01 server
	alpnAnswered  int      // tls-alpn-01 handshakes answered with a challenge cert
	pebbleLogTail *lockedBuffer
}

// startPebble starts the DNS server, the challenge servers and Pebble.
func startPebble(t *testing.T, opts pebbleOptions) *pebbleEnv {
	t.Helper()
	env := &pebbleEnv{bin: findPebble(t), dir: t.TempDir(), opts: opts, pebbleLogTail: &lockedBuffer{}}
	env.dns = startDNS(t)
	env.writeTLSFiles(t)
	env.mgmt = &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: env.tlsPool}},
	}
	t.Cleanup(env.mgmt.CloseIdleConnections)
	env.serveHTTP01(t)
	env.serveTLSALPN01(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pebble output:\n%s", env.pebbleLogTail.String())
		}
	})

	var lastErr error
	for range 3 { // a free port can be taken by another test between pick and bind
		env.listenPort, env.mgmtPort = freePort(t), freePort(t)
		if lastErr = env.launch(t); lastErr == nil {
			return env
		}
	}
	t.Fatalf("start pebble: %v", lastErr)
	return nil
}

// restart kills Pebble and starts a fresh one, with an empty database, on
// the same ports: to the client it is the same CA that forgot everything.
func (env *pebbleEnv) restart(t *testing.T) {
	t.Helper()
	env.proc.stop()
	if err := env.launch(t); err != nil {
		t.Fatalf("restart pebble: %v", err)
	}
}

func (env *pebbleEnv) directoryURL() string {
	return fmt.Sprintf("https://127.0.0.1:%d/dir", env.listenPort)
}

// client returns a Client for this Pebble, answering challenges through the
// environment's servers. cfg's DirectoryURL and RootCAs are filled in.
func (env *pebbleEnv) client(t *testing.T, cfg Config, store AccountStore) *Client {
	t.Helper()
	cfg.DirectoryURL = env.directoryURL()
	cfg.RootCAs = env.tlsPool
	c, err := New(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	env.mu.Lock()
	env.clients = append(env.clients, c)
	env.mu.Unlock()
	return c
}

func (env *pebbleEnv) snapshotClients() []*Client {
	env.mu.Lock()
	defer env.mu.Unlock()
	return slices.Clone(env.clients)
}

func (env *pebbleEnv) servedTokens() []string {
	env.mu.Lock()
	defer env.mu.Unlock()
	return slices.Clone(env.httpTokens)
}

func (env *pebbleEnv) alpnCount() int {
	env.mu.Lock()
	defer env.mu.Unlock()
	return env.alpnAnswered
}

// serveHTTP01 runs the gateway's port-80 server: every client's HTTPHandler
// in front of a 404.
func (env *pebbleEnv) serveHTTP01(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	env.httpPort = ln.Addr().(*net.TCPAddr).Port
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token, ok := strings.CutPrefix(r.URL.Path, http01.PathPrefix); ok {
			env.mu.Lock()
			env.httpTokens = append(env.httpTokens, token)
			env.mu.Unlock()
		}
		next := http.NotFoundHandler()
		for _, c := range env.snapshotClients() {
			next = c.HTTPHandler(next)
		}
		next.ServeHTTP(w, r)
	})
	serve(t, &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, ln)
}

// serveTLSALPN01 runs the gateway's TLS server the way certs/tlsconf would:
// GetCertificate asks the clients for a challenge certificate first.
func (env *pebbleEnv) serveTLSALPN01(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	env.tlsPort = ln.Addr().(*net.TCPAddr).Port
	fallback := selfSigned(t, "fallback.edgegate.test")
	cfg := &tls.Config{
		NextProtos: []string{"http/1.1", ALPNProto},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			for _, c := range env.snapshotClients() {
				if cert, ok := c.ChallengeCertificate(hello); ok {
					env.mu.Lock()
					env.alpnAnswered++
					env.mu.Unlock()
					return cert, nil
				}
			}
			return fallback, nil
		},
	}
	srv := &http.Server{Handler: http.NotFoundHandler(), TLSConfig: cfg, ReadHeaderTimeout: 10 * time.Second}
	serve(t, srv, tls.NewListener(ln, cfg))
}

// serve runs srv on ln until the test ends.
func serve(t *testing.T, srv *http.Server, ln net.Listener) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// writeTLSFiles makes a CA and the HTTPS certificate Pebble serves.
func (env *pebbleEnv) writeTLSFiles(t *testing.T) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pebble test HTTPS CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(env.dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, filepath.Join(env.dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	env.tlsPool = x509.NewCertPool()
	env.tlsPool.AddCert(ca)
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// pebbleProc is one Pebble process.
type pebbleProc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd.Wait returned
	once   sync.Once
}

// stop kills the process and waits for it; safe to call twice.
func (p *pebbleProc) stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
}

// launch writes Pebble's configuration for the current ports and starts
// Pebble, waiting until its directory and management interface answer.
func (env *pebbleEnv) launch(t *testing.T) error {
	t.Helper()
	cfg := map[string]any{
		"listenAddress":           "127.0.0.1:" + strconv.Itoa(env.listenPort),
		"managementListenAddress": "127.0.0.1:" + strconv.Itoa(env.mgmtPort),
		"certificate":             filepath.Join(env.dir, "cert.pem"),
		"privateKey":              filepath.Join(env.dir, "key.pem"),
		"httpPort":                env.httpPort,
		"tlsPort":                 env.tlsPort,
		"ocspResponderURL":        "",
		"domainBlocklist":         []string{"blocked-domain.example"},
		// Retry-After for authorizations and orders: lego polls at this
		// pace, so keep it at Pebble's minimum.
		"retryAfter":   map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm": "ecdsa",
		"profiles": map[string]any{
			"default": map[string]any{"description": "default", "validityPeriod": 7776000},
		},
	}
	if len(env.opts.eabKeys) > 0 {
		cfg["externalAccountBindingRequired"] = true
		cfg["externalAccountMACKeys"] = env.opts.eabKeys
	}
	data, err := json.Marshal(map[string]any{"pebble": cfg})
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(env.dir, "pebble-config.json")
	writeFile(t, cfgPath, data)

	cmd := exec.Command(env.bin, "-config", cfgPath, "-dnsserver", env.dns.addr)
	cmd.Env = append(os.Environ(),
		"PEBBLE_VA_NOSLEEP=1",      // validate at once, not after a random pause
		"PEBBLE_WFE_NONCEREJECT=0", // no random badNonce rejections
		"PEBBLE_AUTHZREUSE=0",      // every order solves its challenges
	)
	cmd.Stdout = env.pebbleLogTail
	cmd.Stderr = env.pebbleLogTail
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", env.bin, err)
	}
	p := &pebbleProc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.stop)
	env.proc = p

	ready := func(url string) bool {
		resp, err := env.mgmt.Get(url)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	mgmtRoot := fmt.Sprintf("https://127.0.0.1:%d/roots/0", env.mgmtPort)
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for !ready(env.directoryURL()) || !ready(mgmtRoot) {
		select {
		case <-p.exited:
			return fmt.Errorf("pebble exited early: %s", lastLines(env.pebbleLogTail.String(), 3))
		case <-deadline.C:
			p.stop()
			return errors.New("pebble did not answer within 20s")
		case <-poll.C:
		}
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// issuingRoots returns Pebble's issuing root, from its management interface.
func (env *pebbleEnv) issuingRoots(t *testing.T) *x509.CertPool {
	t.Helper()
	resp, err := env.mgmt.Get(fmt.Sprintf("https://127.0.0.1:%d/roots/0", env.mgmtPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("get pebble root: %d %v", resp.StatusCode, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(body) {
		t.Fatalf("pebble root is not PEM: %q", body)
	}
	return pool
}

// certStatus is Pebble's management view of a certificate.
type certStatus struct {
	Status string
	Reason *uint
}

func (env *pebbleEnv) certStatus(t *testing.T, serial *big.Int) certStatus {
	t.Helper()
	resp, err := env.mgmt.Get(fmt.Sprintf("https://127.0.0.1:%d/cert-status-by-serial/%s", env.mgmtPort, serial.Text(16)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st certStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("cert status of %x: %d %v", serial, resp.StatusCode, err)
	}
	return st
}

// selfSigned returns a throwaway certificate for name.
func selfSigned(t *testing.T, name string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
