// Package pebbletest is test support, imported only by tests: it runs
// Pebble, Let's Encrypt's ACME test CA, as a process on free ports of
// 127.0.0.1, with a DNS server that resolves every name to 127.0.0.1, so
// Pebble's validation authority (VA) reaches the challenge servers of the
// test on the ports the test names.
//
// Pebble's configuration and HTTPS certificate are generated here rather
// than copied from Pebble's module: a test then needs only the pebble
// binary, whichever way it was installed (scripts/install-test-deps.sh
// installs it). Without one the test is skipped, or fails under CI=true.
package pebbletest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/loopbacktls"
)

// Version is the Pebble release scripts/install-test-deps.sh installs.
const Version = "v2.10.1"

// DefaultValidity is the lifetime of Pebble's certificates unless
// Options.Validity says otherwise (Pebble's own default).
const DefaultValidity = 90 * 24 * time.Hour

// startTimeout bounds the wait for a started Pebble to answer.
const startTimeout = 20 * time.Second

// Options configure Pebble.
type Options struct {
	// HTTPPort and TLSPort are where the VA validates http-01 and
	// tls-alpn-01 challenges: on 127.0.0.1, where every name resolves.
	// Zero leaves Pebble's defaults (5002 and 5001), which no hermetic
	// test should rely on.
	HTTPPort, TLSPort int
	// Validity is the lifetime of issued certificates, in whole seconds
	// (at least one); zero means DefaultValidity. Pebble sets NotAfter to
	// NotBefore + Validity - 1s.
	Validity time.Duration
	// EABKeys, when set, makes Pebble require external account binding
	// with these key ids and base64url MAC keys.
	EABKeys map[string]string
}

// Pebble is a running Pebble with its DNS server. It is stopped when the
// test ends.
type Pebble struct {
	// DNS is the resolver Pebble's VA asks; dns-01 tests set TXT records
	// in it.
	DNS *DNS

	bin   string
	dir   string
	opts  Options
	caPEM []byte         // the CA of Pebble's HTTPS certificate
	pool  *x509.CertPool // trusts Pebble's HTTPS certificate
	mgmt  *http.Client
	out   *LockedBuffer // Pebble's stdout and stderr, all runs

	// Pebble's own ports, kept across restarts.
	listenPort, mgmtPort int
	proc                 *process
}

// Start starts the DNS server and Pebble, and waits until Pebble's
// directory and management interface answer.
func Start(t testing.TB, o Options) *Pebble {
	t.Helper()
	if o.Validity != 0 && (o.Validity < time.Second || o.Validity%time.Second != 0) {
		t.Fatalf("pebbletest: validity %v is not a whole number of seconds", o.Validity)
	}
	p := &Pebble{bin: Binary(t), dir: t.TempDir(), opts: o, out: &LockedBuffer{}}
	p.DNS = StartDNS(t)
	p.writeTLSFiles(t)
	p.mgmt = &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: p.pool}},
	}
	t.Cleanup(p.mgmt.CloseIdleConnections)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pebble output:\n%s", p.out.String())
		}
	})

	var lastErr error
	for range 3 { // a free port can be taken by another test between pick and bind
		p.listenPort, p.mgmtPort = freePort(t), freePort(t)
		if lastErr = p.launch(t); lastErr == nil {
			return p
		}
	}
	t.Fatalf("start pebble: %v", lastErr)
	return nil
}

// Binary returns the pebble binary: the one scripts/install-test-deps.sh
// installs into GOBIN (or GOPATH/bin), else one on PATH. Without one the
// test is skipped, or fails under CI=true.
func Binary(t testing.TB) string {
	t.Helper()
	var candidates []string
	out, err := exec.CommandContext(t.Context(), "go", "env", "GOBIN", "GOPATH").Output()
	if err == nil {
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
	msg := "pebble " + Version + " not found in GOBIN, GOPATH/bin or PATH; run scripts/install-test-deps.sh"
	if strings.EqualFold(os.Getenv("CI"), "true") {
		t.Fatal(msg + " — required under CI=true")
	}
	t.Skip(msg)
	return ""
}

// DirectoryURL is the ACME directory.
func (p *Pebble) DirectoryURL() string {
	return fmt.Sprintf("https://127.0.0.1:%d/dir", p.listenPort)
}

// HTTPSRootsPEM is the CA of Pebble's HTTPS certificate (for the ACME
// client's root CAs, not for the certificates Pebble issues).
func (p *Pebble) HTTPSRootsPEM() []byte { return bytes.Clone(p.caPEM) }

// HTTPSRoots is HTTPSRootsPEM as a pool.
func (p *Pebble) HTTPSRoots() *x509.CertPool { return p.pool.Clone() }

// Output is what Pebble printed so far (all runs).
func (p *Pebble) Output() string { return p.out.String() }

// Restart kills Pebble and starts a fresh one, with an empty database and
// a new issuing CA, on the same ports: to a client it is the same CA that
// forgot everything.
func (p *Pebble) Restart(t testing.TB) {
	t.Helper()
	p.proc.stop()
	if err := p.launch(t); err != nil {
		t.Fatalf("restart pebble: %v", err)
	}
}

// IssuingRootPEM is the root Pebble issues certificates under, from its
// management interface (/roots/0). It changes when Pebble restarts.
func (p *Pebble) IssuingRootPEM(t testing.TB) []byte {
	t.Helper()
	status, body, err := p.mgmtGet(t.Context(), "/roots/0")
	if err != nil || status != http.StatusOK {
		t.Fatalf("get pebble's issuing root: %d %v", status, err)
	}
	if block, _ := pem.Decode(body); block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("pebble's issuing root is not PEM: %q", body)
	}
	return body
}

// IssuingRoots is IssuingRootPEM as a pool.
func (p *Pebble) IssuingRoots(t testing.TB) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(p.IssuingRootPEM(t)) {
		t.Fatal("pebble's issuing root does not parse")
	}
	return pool
}

// CertStatus is Pebble's management view of a certificate it issued.
type CertStatus struct {
	// Status is "Valid" or "Revoked".
	Status string
	// Reason is the revocation reason code (RFC 5280), when revoked.
	Reason *uint
}

// CertStatus asks Pebble about the certificate with serial.
func (p *Pebble) CertStatus(t testing.TB, serial *big.Int) CertStatus {
	t.Helper()
	status, body, err := p.mgmtGet(t.Context(), "/cert-status-by-serial/"+serial.Text(16))
	if err != nil || status != http.StatusOK {
		t.Fatalf("pebble's status of certificate %x: %d %v %s", serial, status, err, body)
	}
	var st CertStatus
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("pebble's status of certificate %x: %v: %s", serial, err, body)
	}
	return st
}

func (p *Pebble) mgmtGet(ctx context.Context, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d%s", p.mgmtPort, path), nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := p.mgmt.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

func freePort(t testing.TB) int {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// writeTLSFiles makes a CA and the HTTPS certificate Pebble serves, for
// 127.0.0.1 and localhost.
func (p *Pebble) writeTLSFiles(t testing.TB) {
	t.Helper()
	id := loopbacktls.New(t, "pebbletest HTTPS CA")
	writeFile(t, filepath.Join(p.dir, "cert.pem"), id.CertPEM)
	writeFile(t, filepath.Join(p.dir, "key.pem"), id.KeyPEM)
	p.caPEM, p.pool = id.CAPEM, id.Pool()
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// config is Pebble's configuration file for the current ports.
func (p *Pebble) config() ([]byte, error) {
	validity := DefaultValidity
	if p.opts.Validity != 0 {
		validity = p.opts.Validity
	}
	cfg := map[string]any{
		"listenAddress":           "127.0.0.1:" + strconv.Itoa(p.listenPort),
		"managementListenAddress": "127.0.0.1:" + strconv.Itoa(p.mgmtPort),
		"certificate":             filepath.Join(p.dir, "cert.pem"),
		"privateKey":              filepath.Join(p.dir, "key.pem"),
		"httpPort":                p.opts.HTTPPort,
		"tlsPort":                 p.opts.TLSPort,
		"ocspResponderURL":        "",
		// Retry-After for authorizations and orders: ACME clients poll at
		// this pace, so keep it at Pebble's minimum.
		"retryAfter":   map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm": "ecdsa",
		"profiles": map[string]any{
			"default": map[string]any{"description": "default", "validityPeriod": int64(validity / time.Second)},
		},
	}
	if p.opts.HTTPPort == 0 {
		delete(cfg, "httpPort")
	}
	if p.opts.TLSPort == 0 {
		delete(cfg, "tlsPort")
	}
	if len(p.opts.EABKeys) > 0 {
		cfg["externalAccountBindingRequired"] = true
		cfg["externalAccountMACKeys"] = p.opts.EABKeys
	}
	return json.Marshal(map[string]any{"pebble": cfg})
}

// launch writes Pebble's configuration for the current ports and starts
// Pebble, waiting until its directory and management interface answer.
func (p *Pebble) launch(t testing.TB) error {
	t.Helper()
	data, err := p.config()
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(p.dir, "pebble-config.json")
	writeFile(t, cfgPath, data)

	// The process lives until the test's cleanup kills it by its PID, not
	// until some request's context ends.
	cmd := exec.CommandContext(context.Background(), p.bin, //nolint:gosec // the pebble binary Binary found
		"-config", cfgPath, "-dnsserver", p.DNS.Addr())
	cmd.Env = append(os.Environ(),
		"PEBBLE_VA_NOSLEEP=1",      // validate at once, not after a random pause
		"PEBBLE_WFE_NONCEREJECT=0", // no random badNonce rejections
		"PEBBLE_AUTHZREUSE=0",      // every order solves its challenges
	)
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.bin, err)
	}
	proc := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(proc.exited)
	}()
	t.Cleanup(proc.stop)
	p.proc = proc

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	ready := func(url string) bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false
		}
		resp, err := p.mgmt.Do(req)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	mgmtRoot := fmt.Sprintf("https://127.0.0.1:%d/roots/0", p.mgmtPort)
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for !ready(p.DirectoryURL()) || !ready(mgmtRoot) {
		select {
		case <-proc.exited:
			return fmt.Errorf("pebble exited early: %s", lastLines(p.out.String(), 3))
		case <-ctx.Done():
			proc.stop()
			return fmt.Errorf("pebble did not answer within %v", startTimeout)
		case <-poll.C:
		}
	}
	return nil
}

// process is one Pebble process.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd.Wait returned
	once   sync.Once
}

// stop kills the process by its PID and waits for it; safe to call twice.
func (p *process) stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// LockedBuffer collects output written from several goroutines (a
// process's stdout and stderr, a logger used by concurrent requests).
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
