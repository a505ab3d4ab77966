package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// stopTimeout is how long a SIGTERM'd daemon may take to exit (the
// product promises a clean exit within 5 s).
const stopTimeout = 5 * time.Second

// startTimeout bounds the wait for the "ready" banner line.
const startTimeout = 20 * time.Second

// adminPassword is the admin password every test sets with the setup code.
const adminPassword = "e2e-Admin-Passw0rd"

// testContext returns a context that ends before the test's own deadline.
func testContext(t testing.TB, limit time.Duration) context.Context {
	t.Helper()
	deadline := time.Now().Add(limit)
	if tt, ok := t.(*testing.T); ok {
		if d, ok := tt.Deadline(); ok && d.Add(-5*time.Second).Before(deadline) {
			deadline = d.Add(-5 * time.Second)
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	t.Cleanup(cancel)
	return ctx
}

// watchBuffer is an io.Writer whose content can be waited on.
type watchBuffer struct {
	mu      sync.Mutex
	buf     []byte
	changed chan struct{}
}

func newWatchBuffer() *watchBuffer { return &watchBuffer{changed: make(chan struct{})} }

func (w *watchBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	close(w.changed)
	w.changed = make(chan struct{})
	return len(p), nil
}

func (w *watchBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}

// waitFor waits until cond holds for the content, ctx ends, or done is
// closed (the writer's process exited) with cond still false.
func (w *watchBuffer) waitFor(ctx context.Context, done <-chan struct{}, cond func(string) bool) (string, error) {
	for {
		w.mu.Lock()
		s, ch := string(w.buf), w.changed
		w.mu.Unlock()
		if cond(s) {
			return s, nil
		}
		select {
		case <-ch:
		case <-done:
			// The process is gone, but the copy goroutine may have delivered
			// a last write just before: look once more.
			if s := w.String(); cond(s) {
				return s, nil
			}
			return w.String(), errors.New("process exited")
		case <-ctx.Done():
			return s, ctx.Err()
		}
	}
}

// daemonOptions configure a daemon.
type daemonOptions struct {
	// dataDir reuses a data directory; empty means a fresh t.TempDir().
	dataDir string
	// env is added to the daemon's environment.
	env []string
}

// daemon is one edgegate process under test, with what its banner said.
type daemon struct {
	t          testing.TB
	dataDir    string
	configPath string
	env        []string

	mu      sync.Mutex
	cmd     *exec.Cmd
	stdout  *watchBuffer
	stderr  *watchBuffer
	exited  chan struct{}
	waitErr error
	logs    []string // stderr of earlier runs, for failure reports

	listeners   map[string]*url.URL // by listener name
	apiBase     string              // http://127.0.0.1:port (without /api/v1)
	webBase     string              // https://127.0.0.1:port of the web UI
	fingerprint string              // local CA root SHA256
	setupCode   string
	adminSet    bool
}

// baseSettings binds everything to 127.0.0.1:0 and makes $SYS tick fast.
func baseSettings() map[string]any {
	return map[string]any{
		"listeners": map[string]any{
			"tcp": map[string]any{"bind": "127.0.0.1:0"},
			"tls": map[string]any{"bind": "127.0.0.1:0"},
			"ws":  map[string]any{"bind": "127.0.0.1:0"},
			"wss": map[string]any{"bind": "127.0.0.1:0"},
		},
		"api": map[string]any{"bind": "127.0.0.1:0", "https_bind": "127.0.0.1:0"},
		"sys": map[string]any{"interval": "1s"},
	}
}

// mergePatch applies an RFC 7396 merge patch to target in place.
func mergePatch(target, patch map[string]any) map[string]any {
	if target == nil {
		target = map[string]any{}
	}
	for k, v := range patch {
		if v == nil {
			delete(target, k)
			continue
		}
		if pm, ok := v.(map[string]any); ok {
			tm, _ := target[k].(map[string]any)
			target[k] = mergePatch(tm, pm)
			continue
		}
		target[k] = v
	}
	return target
}

// obj is shorthand for a JSON object in settings.
type obj = map[string]any

// newDaemon writes the settings file (baseSettings ⊕ settings) and returns
// a daemon that is not started yet.
func newDaemon(t testing.TB, settings map[string]any, o daemonOptions) *daemon {
	t.Helper()
	dir := o.dataDir
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "data")
	}
	s := mergePatch(baseSettings(), settings)
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatalf("encode settings: %v", err)
	}
	cfg := filepath.Join(t.TempDir(), "edgegate.json")
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, dataDir: dir, configPath: cfg, env: o.env}
	t.Cleanup(d.cleanup)
	return d
}

// startDaemon starts a fresh daemon with settings and waits until ready.
func startDaemon(t testing.TB, settings map[string]any) *daemon {
	t.Helper()
	d := newDaemon(t, settings, daemonOptions{})
	d.start()
	return d
}

// daemonEnv is the environment of a daemon: the test's, without anything
// systemd or a developer's shell might have set for a real edgegate.
func (d *daemon) daemonEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID", "EDGEGATE_DATA":
			continue
		}
		env = append(env, kv)
	}
	return append(env, d.env...)
}

// start runs the daemon and parses its banner until "ready".
func (d *daemon) start() {
	d.t.Helper()
	d.mu.Lock()
	if d.cmd != nil {
		d.mu.Unlock()
		d.t.Fatal("daemon already running")
	}
	cmd := exec.Command(edgegateBin, "serve", "--data", d.dataDir, "--config", d.configPath)
	cmd.Env = d.daemonEnv()
	cmd.SysProcAttr = childProcAttr()
	d.stdout, d.stderr = newWatchBuffer(), newWatchBuffer()
	cmd.Stdout, cmd.Stderr = d.stdout, d.stderr
	if err := cmd.Start(); err != nil {
		d.mu.Unlock()
		d.t.Fatalf("start edgegate: %v", err)
	}
	d.cmd = cmd
	d.exited = make(chan struct{})
	exited := d.exited
	go func() {
		err := cmd.Wait()
		d.mu.Lock()
		d.waitErr = err
		d.mu.Unlock()
		close(exited)
	}()
	d.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	out, err := d.stdout.waitFor(ctx, exited, func(s string) bool {
		return strings.HasPrefix(s, "ready\n") || strings.Contains(s, "\nready\n")
	})
	if err != nil {
		d.t.Fatalf("edgegate did not print \"ready\": %v\nstdout:\n%s\nstderr:\n%s", err, out, d.stderr.String())
	}
	d.parseBanner(out)
}

func (d *daemon) parseBanner(out string) {
	d.t.Helper()
	d.listeners = map[string]*url.URL{}
	d.apiBase, d.webBase, d.fingerprint, d.setupCode = "", "", "", ""
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "listener":
			u, err := url.Parse(f[2])
			if err != nil {
				d.t.Fatalf("banner line %q: %v", line, err)
			}
			d.listeners[f[1]] = u
		case len(f) >= 3 && f[0] == "admin" && f[1] == "api":
			u, err := url.Parse(f[2])
			if err != nil {
				d.t.Fatalf("banner line %q: %v", line, err)
			}
			d.apiBase = u.Scheme + "://" + u.Host
		case len(f) >= 3 && f[0] == "web" && f[1] == "ui":
			u, err := url.Parse(f[2])
			if err != nil {
				d.t.Fatalf("banner line %q: %v", line, err)
			}
			d.webBase = u.Scheme + "://" + u.Host
		case len(f) >= 4 && f[0] == "local" && f[1] == "ca" && f[2] == "SHA256":
			d.fingerprint = f[3]
		case len(f) >= 3 && f[0] == "setup" && f[1] == "code":
			d.setupCode = f[2]
		}
	}
	if d.apiBase == "" || len(d.listeners) == 0 || d.fingerprint == "" {
		d.t.Fatalf("incomplete start banner (want listeners, admin api, local ca):\n%s", out)
	}
	for name, u := range d.listeners {
		if h := u.Hostname(); h != "127.0.0.1" {
			d.t.Fatalf("listener %s announced on %s; the test binds everything to 127.0.0.1", name, u)
		}
	}
}

// addr returns host:port of a listener from the banner. A listener the
// banner did not show is a test error (reported with Errorf, which any
// goroutine may call); the address returned then fails to dial.
func (d *daemon) addr(listener string) string {
	u, ok := d.listeners[listener]
	if !ok {
		d.t.Errorf("no listener %q in the banner (have %v)", listener, d.listenerNames())
		return "no-listener-" + listener + ":0"
	}
	return u.Host
}

// port returns the port of a listener as a string, for mosquitto's -p.
func (d *daemon) port(listener string) string {
	_, p, _ := net.SplitHostPort(d.addr(listener))
	return p
}

// wsURL returns the ws:// or wss:// URL of a listener from the banner.
func (d *daemon) wsURL(listener string) string {
	if u, ok := d.listeners[listener]; ok {
		return u.String()
	}
	return "ws://" + d.addr(listener) + "/"
}

func (d *daemon) listenerNames() []string {
	var out []string
	for n := range d.listeners {
		out = append(out, n)
	}
	return out
}

func (d *daemon) running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cmd != nil
}

// signalAndWait sends sig and waits up to limit for the process to exit.
func (d *daemon) signalAndWait(sig syscall.Signal, limit time.Duration) (exitCode int, timedOut bool) {
	d.mu.Lock()
	cmd, exited := d.cmd, d.exited
	d.mu.Unlock()
	if cmd == nil {
		return -1, false
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(limit):
		return -1, true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.logs = append(d.logs, d.stderr.String())
	d.cmd = nil
	code := cmd.ProcessState.ExitCode()
	return code, false
}

// stop sends SIGTERM and requires a clean exit (code 0) within 5 s.
func (d *daemon) stop() {
	d.t.Helper()
	code, timedOut := d.signalAndWait(syscall.SIGTERM, stopTimeout)
	if timedOut {
		d.kill()
		d.t.Fatalf("edgegate did not exit within %s of SIGTERM", stopTimeout)
	}
	if code != 0 {
		d.t.Fatalf("edgegate exited with code %d after SIGTERM, want 0\nstderr:\n%s", code, tail(d.lastLog(), 4000))
	}
}

// kill sends SIGKILL (kill -9) to the daemon and waits for it to die.
func (d *daemon) kill() {
	d.t.Helper()
	if _, timedOut := d.signalAndWait(syscall.SIGKILL, 10*time.Second); timedOut {
		d.t.Fatal("edgegate did not die on SIGKILL")
	}
}

// restart stops the daemon cleanly and starts it again on the same data.
func (d *daemon) restart() {
	d.t.Helper()
	d.stop()
	d.start()
}

func (d *daemon) lastLog() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.logs) == 0 {
		return ""
	}
	return d.logs[len(d.logs)-1]
}

// logs returns the stderr of every run so far, the current one included.
func (d *daemon) allLogs() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := strings.Join(d.logs, "")
	if d.cmd != nil {
		s += d.stderr.String()
	}
	return s
}

// waitLog waits until the current run's stderr satisfies cond.
func (d *daemon) waitLog(ctx context.Context, cond func(string) bool) (string, error) {
	d.mu.Lock()
	buf, exited := d.stderr, d.exited
	d.mu.Unlock()
	return buf.waitFor(ctx, exited, cond)
}

func (d *daemon) cleanup() {
	if d.running() {
		if _, timedOut := d.signalAndWait(syscall.SIGTERM, stopTimeout); timedOut {
			d.t.Errorf("edgegate did not exit within %s of SIGTERM at cleanup; killing it", stopTimeout)
			d.signalAndWait(syscall.SIGKILL, 10*time.Second)
		}
	}
	if d.t.Failed() {
		d.t.Logf("edgegate stderr (data %s):\n%s", d.dataDir, tail(d.allLogs(), 12000))
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// --- admin API ---

var apiClient = &http.Client{
	Timeout:   15 * time.Second,
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
}

// setupAdmin sets the admin password with the banner's one-time code
// (once per data directory).
func (d *daemon) setupAdmin(t testing.TB) {
	t.Helper()
	if d.adminSet {
		return
	}
	if d.setupCode == "" {
		t.Fatal("no setup code in the banner")
	}
	status, body := d.apiRaw(t, "POST", "/api/v1/setup", "application/json",
		mustJSON(t, obj{"setup_code": d.setupCode, "password": adminPassword}), false)
	if status != http.StatusNoContent && status != http.StatusOK {
		t.Fatalf("POST /api/v1/setup: status %d: %s", status, body)
	}
	d.adminSet = true
}

// apiRaw makes one request to the admin API over TCP.
func (d *daemon) apiRaw(t testing.TB, method, path, contentType string, body []byte, withAuth bool) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, d.apiBase+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if withAuth {
		req.SetBasicAuth("admin", adminPassword)
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, b
}

// api makes an authenticated JSON request and decodes the answer into out
// (when not nil), failing the test unless the status is want.
func (d *daemon) api(t testing.TB, method, path string, in any, want int, out any) []byte {
	t.Helper()
	d.setupAdmin(t)
	var body []byte
	ct := ""
	if in != nil {
		body, ct = mustJSON(d.t, in), "application/json"
	}
	status, b := d.apiRaw(t, method, path, ct, body, true)
	if status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	return b
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// clientInfo is an entry of GET /api/v1/clients.
type clientInfo struct {
	ClientID    string `json:"clientid"`
	Username    string `json:"username"`
	Address     string `json:"address"`
	Listener    string `json:"listener"`
	Protocol    int    `json:"protocol"`
	Connected   bool   `json:"connected"`
	TLSIdentity string `json:"tls_identity"`
	Inflight    int    `json:"inflight"`
}

// listenerStatus is an entry of GET /api/v1/listeners.
type listenerStatus struct {
	Name       string `json:"name"`
	Address    string `json:"address"`
	Clients    int    `json:"clients"`
	MaxClients int    `json:"max_clients"`
}

// addUser creates an MQTT user through the admin API.
func (d *daemon) addUser(t testing.TB, username, password string, superuser bool) {
	t.Helper()
	d.api(t, "POST", "/api/v1/users", obj{"username": username, "password": password, "superuser": superuser}, http.StatusCreated, nil)
}

// cli runs an edgegate CLI verb against this daemon's data directory.
func (d *daemon) cli(ctx context.Context, t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.CommandContext(ctx, edgegateBin, args...)
	cmd.Env = append(d.daemonEnv(), "EDGEGATE_DATA="+d.dataDir)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("edgegate %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), code
}

// waitUntil polls cond (an API query, typically) until it holds. It is for
// state with no event to wait on; each round trip is the pacing.
func waitUntil(ctx context.Context, t testing.TB, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}
