package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The real vault server the trust sync tests run against: HashiCorp Vault
// v1.20.0 built from test/vaultserver by scripts/install-vault.sh (which
// scripts/install-test-deps.sh runs), in dev mode: in memory, unsealed, with
// a generated TLS CA and server certificate (-dev-tls), KV v2 mounted at
// secret/.
//
// The binary is EDGEGATE_VAULT_BIN when set, else the one the script links
// as <user cache dir>/edgegate/vault/current/vault.

const (
	// vaultStartTimeout bounds the wait for a started or resumed vault to
	// answer /v1/sys/health.
	vaultStartTimeout = 30 * time.Second
	// vaultPolicy is the policy cert logins get: read, list and write the
	// lists and the device status under secret/edgegate/.
	vaultPolicy = `
path "secret/data/edgegate/*" {
  capabilities = ["create", "read", "update", "list"]
}
path "secret/metadata/edgegate/*" {
  capabilities = ["create", "read", "update", "list"]
}
`
	// vaultCertRole is the cert auth role gateways log in as.
	vaultCertRole = "gateways"
)

// vaultServer is a running vault process started by startVault.
type vaultServer struct {
	t      testing.TB
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	logf   string        // the server's stdout and stderr
	addr   string        // 127.0.0.1:port
	token  string        // the root token
	caPEM  []byte
	http   *http.Client

	mu      sync.Mutex // guards stopped
	stopped bool
}

// vaultBinary returns the path of the vault binary, failing the test when
// there is none: the repository's rule is that tests needing a peer never
// skip.
func vaultBinary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("EDGEGATE_VAULT_BIN")
	if bin == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			t.Fatalf("vault: no user cache dir (%v); set EDGEGATE_VAULT_BIN or run scripts/install-vault.sh", err)
		}
		bin = filepath.Join(cache, "edgegate", "vault", "current", "vault")
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		msg := fmt.Sprintf("vault server binary %s not found or not executable (%v); run scripts/install-vault.sh (or scripts/install-test-deps.sh)", bin, err)
		if strings.EqualFold(os.Getenv("CI"), "true") {
			msg += " — required under CI=true"
		}
		t.Fatal(msg)
	}
	return bin
}

// startVault starts a vault dev server on a free port of 127.0.0.1 with TLS,
// writes the policy "edgegate", enables cert auth and creates the role
// "gateways" trusting certRoleCAs (PEM) with that policy. The process is
// killed at cleanup.
func startVault(ctx context.Context, t testing.TB, certRoleCAs []byte) *vaultServer {
	t.Helper()
	bin := vaultBinary(t)
	var v *vaultServer
	// Vault also listens on port+1 for cluster traffic, a port that can be
	// taken between the check and the start: try again then.
	for attempt := 1; ; attempt++ {
		var retry bool
		v, retry = launchVault(ctx, t, bin)
		if v != nil {
			break
		}
		if !retry || attempt == 3 {
			t.Fatal("vault: could not start")
		}
	}
	v.api(ctx, "PUT", "sys/policies/acl/edgegate", map[string]any{"policy": vaultPolicy}, nil)
	v.api(ctx, "POST", "sys/auth/cert", map[string]any{"type": "cert"}, nil)
	v.api(ctx, "POST", "auth/cert/certs/"+vaultCertRole, map[string]any{
		"certificate":    string(certRoleCAs),
		"token_policies": "edgegate",
	}, nil)
	return v
}

// launchVault starts one vault process and waits until it is healthy. It
// returns nil and whether to try again on another port when the process
// exited because a port was taken.
func launchVault(ctx context.Context, t testing.TB, bin string) (*vaultServer, bool) {
	t.Helper()
	port := freePortPair(t)
	dir := t.TempDir()
	v := &vaultServer{
		t:      t,
		exited: make(chan struct{}),
		logf:   filepath.Join(dir, "vault.log"),
		addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		token:  randomToken(t),
	}
	logFile, err := os.Create(v.logf)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child has its own descriptor
	certDir := filepath.Join(dir, "tls")
	if err := os.Mkdir(certDir, 0o700); err != nil {
		t.Fatal(err)
	}
	v.cmd = exec.Command(bin, "server", "-dev", "-dev-tls",
		"-dev-tls-cert-dir="+certDir,
		"-dev-root-token-id="+v.token,
		"-dev-listen-address="+v.addr,
		"-dev-no-store-token", // do not write ~/.vault-token
	)
	// The token is on the command line already; keep the environment from
	// pointing the server elsewhere (VAULT_ADDR, VAULT_DEV_*).
	v.cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}
	v.cmd.Stdout, v.cmd.Stderr = logFile, logFile
	v.cmd.SysProcAttr = childProcAttr()
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("start vault: %v", err)
	}
	go func() {
		_ = v.cmd.Wait()
		close(v.exited)
	}()
	t.Cleanup(v.kill)

	// The CA is written before the listener starts; wait for both.
	deadline := time.Now().Add(vaultStartTimeout)
	for v.caPEM == nil {
		if pem, err := os.ReadFile(filepath.Join(certDir, "vault-ca.pem")); err == nil && len(pem) > 0 {
			pool := x509.NewCertPool()
			if pool.AppendCertsFromPEM(pem) {
				v.caPEM = pem
				v.http = &http.Client{
					Timeout:   10 * time.Second,
					Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
				}
				break
			}
		}
		if !v.waitTick(ctx, deadline) {
			return v.startFailed()
		}
	}
	if !v.waitHealthy(ctx, deadline) {
		return v.startFailed()
	}
	return v, false
}

// startFailed reports why a vault did not come up: a taken port is worth
// another try; anything else fails the test.
func (v *vaultServer) startFailed() (*vaultServer, bool) {
	v.t.Helper()
	log, _ := os.ReadFile(v.logf)
	select {
	case <-v.exited:
		if bytes.Contains(log, []byte("address already in use")) {
			v.t.Logf("vault on %s: a port was taken; trying another", v.addr)
			return nil, true
		}
		v.t.Fatalf("vault exited before it was ready (%v):\n%s", v.cmd.ProcessState, tail(string(log), 4000))
	default:
		v.t.Fatalf("vault on %s not healthy within %s:\n%s", v.addr, vaultStartTimeout, tail(string(log), 4000))
	}
	return nil, false
}

// waitTick waits for the next poll and reports whether to go on: false
// when the process exited, ctx ended or deadline passed.
func (v *vaultServer) waitTick(ctx context.Context, deadline time.Time) bool {
	if time.Now().After(deadline) {
		return false
	}
	timer := time.NewTimer(50 * time.Millisecond)
	defer timer.Stop()
	select {
	case <-v.exited:
		return false
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// waitHealthy polls /v1/sys/health until the vault is initialized,
// unsealed and active (status 200).
func (v *vaultServer) waitHealthy(ctx context.Context, deadline time.Time) bool {
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		req, err := http.NewRequestWithContext(rctx, "GET", v.URL()+"/v1/sys/health", nil)
		if err != nil {
			cancel()
			v.t.Fatal(err)
		}
		resp, err := v.http.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		cancel()
		if err == nil && resp.StatusCode == http.StatusOK {
			return true
		}
		if !v.waitTick(ctx, deadline) {
			return false
		}
	}
}

// URL is the vault's https base URL.
func (v *vaultServer) URL() string { return "https://" + v.addr }

// CACertPEM is the dev TLS CA that issued the server's certificate.
func (v *vaultServer) CACertPEM() []byte { return v.caPEM }

// Put writes fields as a new version of the KV v2 secret secret/<path> and
// returns that version.
func (v *vaultServer) Put(path string, fields map[string]string) int {
	v.t.Helper()
	var resp struct {
		Data struct {
			Version int `json:"version"`
		} `json:"data"`
	}
	v.api(context.Background(), "POST", "secret/data/"+path, map[string]any{"data": fields}, &resp)
	return resp.Data.Version
}

// Get reads the latest version of secret/<path>: its string fields and
// its version; nil and 0 when there is none.
func (v *vaultServer) Get(path string) (map[string]string, int) {
	v.t.Helper()
	var resp struct {
		Data struct {
			Data     map[string]any `json:"data"`
			Metadata struct {
				Version int `json:"version"`
			} `json:"metadata"`
		} `json:"data"`
	}
	if status := v.apiStatus(context.Background(), "GET", "secret/data/"+path, nil, &resp); status == http.StatusNotFound {
		return nil, 0
	}
	fields := map[string]string{}
	for k, val := range resp.Data.Data {
		if s, ok := val.(string); ok {
			fields[k] = s
		}
	}
	return fields, resp.Data.Metadata.Version
}

// Stop takes the vault away with its state: dev mode keeps everything in
// memory, so the process is suspended (SIGSTOP), not ended. To a client a
// suspended vault is an unreachable one whose connections time out (the
// kernel still accepts them; nobody answers), not one that refuses them.
func (v *vaultServer) Stop() {
	v.t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.stopped {
		return
	}
	if err := v.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		v.t.Fatalf("suspend vault: %v", err)
	}
	// The signal is delivered asynchronously; wait until the kernel reports
	// the process stopped, so that nothing the test does next is answered.
	deadline := time.Now().Add(5 * time.Second)
	for processState(v.cmd.Process.Pid) != 'T' {
		if !v.waitTick(context.Background(), deadline) {
			v.t.Fatalf("vault (pid %d) did not stop", v.cmd.Process.Pid)
		}
	}
	v.stopped = true
}

// Start resumes a vault suspended by Stop and waits until it answers.
func (v *vaultServer) Start() {
	v.t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.stopped {
		return
	}
	if err := v.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		v.t.Fatalf("resume vault: %v", err)
	}
	v.stopped = false
	if !v.waitHealthy(context.Background(), time.Now().Add(vaultStartTimeout)) {
		log, _ := os.ReadFile(v.logf)
		v.t.Fatalf("vault not healthy after resuming:\n%s", tail(string(log), 4000))
	}
}

// kill ends the process by its pid (SIGKILL ends a suspended process too)
// and shows its log when the test failed.
func (v *vaultServer) kill() {
	select {
	case <-v.exited:
	default:
		_ = v.cmd.Process.Kill()
		<-v.exited
	}
	if v.t.Failed() {
		if log, err := os.ReadFile(v.logf); err == nil {
			v.t.Logf("vault log (last lines):\n%s", tail(string(log), 6000))
		}
	}
}

// api calls the vault HTTP API with the root token and fails the test
// unless the answer is a 2xx; out, if not nil, receives the JSON body.
func (v *vaultServer) api(ctx context.Context, method, path string, in, out any) {
	v.t.Helper()
	if status := v.apiStatus(ctx, method, path, in, out); status/100 != 2 {
		v.t.Fatalf("vault %s /v1/%s: status %d", method, path, status)
	}
}

// apiStatus is api that returns the status rather than failing on a
// non-2xx one (a transport error still fails the test).
func (v *vaultServer) apiStatus(ctx context.Context, method, path string, in, out any) int {
	v.t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			v.t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, v.URL()+"/v1/"+path, body)
	if err != nil {
		v.t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", v.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := v.http.Do(req)
	if err != nil {
		v.t.Fatalf("vault %s /v1/%s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		v.t.Fatalf("vault %s /v1/%s: read body: %v", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		if resp.StatusCode != http.StatusNotFound {
			v.t.Logf("vault %s /v1/%s: status %d: %s", method, path, resp.StatusCode, data)
		}
		return resp.StatusCode
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			v.t.Fatalf("vault %s /v1/%s: decode %s: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}

// certLogins returns how many tokens cert logins to the role have created
// and are still valid, by looking at every token's accessor (root only).
func (v *vaultServer) certLogins(ctx context.Context) int {
	v.t.Helper()
	var list struct {
		Data struct {
			Keys []string `json:"keys"`
		} `json:"data"`
	}
	v.api(ctx, "LIST", "auth/token/accessors", nil, &list)
	n := 0
	for _, acc := range list.Data.Keys {
		var info struct {
			Data struct {
				Path string            `json:"path"`
				Meta map[string]string `json:"meta"`
			} `json:"data"`
		}
		v.api(ctx, "POST", "auth/token/lookup-accessor", map[string]string{"accessor": acc}, &info)
		if info.Data.Path == "auth/cert/login" && info.Data.Meta["cert_name"] == vaultCertRole {
			n++
		}
	}
	return n
}

// freePortPair returns a port p of 127.0.0.1 that is free with p+1 (the
// dev server's cluster port) free too, at the time of asking.
func freePortPair(t testing.TB) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		next, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+1)))
		ln.Close()
		if err == nil {
			next.Close()
			return port
		}
	}
	t.Fatal("no pair of free ports on 127.0.0.1")
	return 0
}

// processState is the state letter of /proc/<pid>/stat (R, S, T, Z...), 0
// when it cannot be read.
func processState(pid int) byte {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name is in parentheses and may contain anything: the
	// state follows the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return 0
	}
	return stat[i+2]
}

func randomToken(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "root-" + hex.EncodeToString(b)
}
