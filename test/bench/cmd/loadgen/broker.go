package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// brokerKind names a broker under test.
type brokerKind string

const (
	kindMosquitto brokerKind = "mosquitto"
	kindEdgegate  brokerKind = "edgegate"
)

// brokerOrder is the order within each run: A = mosquitto, B = edgegate.
var brokerOrder = []brokerKind{kindMosquitto, kindEdgegate}

const (
	startTimeout = 30 * time.Second
	stopTimeout  = 15 * time.Second
)

// launcher starts brokers and remembers the live ones so that they are
// killed whatever way the generator ends.
type launcher struct {
	edgegateBin  string
	mosquittoBin string
	pki          mosquittoPKI
	pinCPU       int // the broker's CPU; -1 leaves it unpinned
	maxClients   int // edgegate's listener max_clients
	logDir       string

	spawn chan spawnRequest

	mu   sync.Mutex
	live map[int]*exec.Cmd
}

type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

func newLauncher() *launcher {
	l := &launcher{spawn: make(chan spawnRequest), live: map[int]*exec.Cmd{}}
	go l.spawner()
	return l
}

// spawner starts every broker from one OS thread that lives as long as the
// process: Pdeathsig fires when the thread that forked the child exits, not
// the process, and the Go runtime may end other threads.
func (l *launcher) spawner() {
	runtime.LockOSThread()
	for r := range l.spawn {
		r.done <- r.cmd.Start()
	}
}

func (l *launcher) start(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Pdeathsig: syscall.SIGKILL, // the broker dies with the generator
		Setpgid:   true,            // a ^C reaches the generator, which stops the broker itself
	}
	r := spawnRequest{cmd: cmd, done: make(chan error, 1)}
	l.spawn <- r
	if err := <-r.done; err != nil {
		return err
	}
	l.mu.Lock()
	l.live[cmd.Process.Pid] = cmd
	l.mu.Unlock()
	return nil
}

func (l *launcher) forget(pid int) {
	l.mu.Lock()
	delete(l.live, pid)
	l.mu.Unlock()
}

// killAll kills, by PID, every broker still running.
func (l *launcher) killAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for pid, cmd := range l.live {
		fmt.Fprintf(os.Stderr, "loadgen: killing broker pid %d\n", pid)
		_ = cmd.Process.Kill()
		delete(l.live, pid)
	}
}

// argv wraps a command in taskset when the broker is pinned. taskset execs
// the broker, so the PID is the broker's.
func (l *launcher) argv(args ...string) []string {
	if l.pinCPU < 0 {
		return args
	}
	return append([]string{"taskset", "-c", strconv.Itoa(l.pinCPU)}, args...)
}

// broker is a running broker process.
type broker struct {
	kind    brokerKind
	pid     int
	tcp     endpoint
	tls     endpoint
	tlsInfo string // negotiated parameters of the probe connection
	// metricsURL is edgegate's /metrics; empty for mosquitto.
	metricsURL string

	l        *launcher
	cmd      *exec.Cmd
	dir      string
	log      *os.File
	exited   chan struct{}
	stopOnce sync.Once
}

// clientTLS is the generator's TLS configuration for both brokers: TLS 1.3
// with X25519 only (Go's default would offer the hybrid X25519MLKEM768,
// which edgegate's Go server accepts and mosquitto's OpenSSL 3.0 does not,
// so the key exchange would differ), and no session cache, so every
// handshake is a full one.
func clientTLS(roots *x509.CertPool) *tls.Config {
	return &tls.Config{
		RootCAs:            roots,
		ServerName:         "127.0.0.1",
		MinVersion:         tls.VersionTLS13,
		CurvePreferences:   []tls.CurveID{tls.X25519},
		ClientSessionCache: nil,
	}
}

// startBroker starts a fresh broker of kind with its own temporary
// directory and waits until it accepts MQTT over TCP and TLS.
func (l *launcher) startBroker(ctx context.Context, kind brokerKind, logName string) (*broker, error) {
	dir, err := os.MkdirTemp("", "bench-"+string(kind)+"-")
	if err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(l.logDir, logName+".log"))
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	b := &broker{kind: kind, l: l, dir: dir, log: log, exited: make(chan struct{})}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	switch kind {
	case kindMosquitto:
		err = b.startMosquitto(ctx)
	case kindEdgegate:
		err = b.startEdgegate(ctx)
	default:
		err = fmt.Errorf("unknown broker %q", kind)
	}
	if err == nil {
		err = b.probe(ctx)
	}
	if err != nil {
		b.stop()
		return nil, fmt.Errorf("start %s: %w%s", kind, err, b.logTail())
	}
	return b, nil
}

func (b *broker) run(cmd *exec.Cmd) error {
	b.cmd = cmd
	if err := b.l.start(cmd); err != nil {
		return err
	}
	b.pid = cmd.Process.Pid
	go func() {
		_ = cmd.Wait()
		close(b.exited)
	}()
	return nil
}

func (b *broker) startMosquitto(ctx context.Context) error {
	tcpPort, err := freePort()
	if err != nil {
		return err
	}
	tlsPort, err := freePort()
	if err != nil {
		return err
	}
	conf := filepath.Join(b.dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(mosquittoConf(b.dir, tcpPort, tlsPort, b.l.pki)), 0o600); err != nil {
		return err
	}
	args := b.l.argv(b.l.mosquittoBin, "-c", conf)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = b.log, b.log
	if err := b.run(cmd); err != nil {
		return err
	}
	roots, err := loadPool(b.l.pki.CAFile)
	if err != nil {
		return err
	}
	b.tcp = endpoint{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(tcpPort))}
	b.tls = endpoint{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort)), tls: clientTLS(roots)}
	// Ready when the TCP listener accepts; probe then checks MQTT on both.
	for {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", b.tcp.addr)
		if err == nil {
			_ = c.Close()
			return nil
		}
		select {
		case <-b.exited:
			return errors.New("mosquitto exited")
		case <-ctx.Done():
			return fmt.Errorf("mosquitto not listening: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// mosquittoConf is mosquitto's side of the equivalent settings (see the
// notes in the report): anonymous, persistence on, TLS with the same key
// type, queue bound as edgegate's default, no connection limit.
func mosquittoConf(dir string, tcpPort, tlsPort int, pki mosquittoPKI) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# written by test/bench/cmd/loadgen\n")
	fmt.Fprintf(&b, "per_listener_settings false\nallow_anonymous true\n")
	fmt.Fprintf(&b, "persistence true\npersistence_location %s/\n", dir)
	fmt.Fprintf(&b, "set_tcp_nodelay true\nmax_queued_messages 1000\nmax_inflight_messages 20\n")
	fmt.Fprintf(&b, "sys_interval 60\nlog_dest stderr\nlog_type error\nlog_type warning\n")
	if os.Geteuid() == 0 {
		// As root, mosquitto would switch to the mosquitto user, which
		// cannot read the temporary directory; edgegate runs as root here too.
		fmt.Fprintf(&b, "user root\n")
	}
	fmt.Fprintf(&b, "\nlistener %d 127.0.0.1\nmax_connections -1\n", tcpPort)
	fmt.Fprintf(&b, "\nlistener %d 127.0.0.1\nmax_connections -1\n", tlsPort)
	fmt.Fprintf(&b, "cafile %s\ncertfile %s\nkeyfile %s\n", pki.CAFile, pki.CertFile, pki.KeyFile)
	return b.String()
}

// edgegateSettings is edgegate's side: a JSON merge patch over its
// defaults.
func edgegateSettings(maxClients int) ([]byte, error) {
	listener := func(clientAuth string) map[string]any {
		l := map[string]any{"bind": "127.0.0.1:0", "max_clients": maxClients}
		if clientAuth != "" {
			// mosquitto without require_certificate asks for no client
			// certificate; edgegate's default "optional" would ask.
			l["tls"] = map[string]any{"client_auth": clientAuth}
		}
		return l
	}
	return json.MarshalIndent(map[string]any{
		"listeners": map[string]any{
			"tcp": listener(""),
			"tls": listener("none"),
			"ws":  nil,
			"wss": nil,
		},
		"api":  map[string]any{"bind": "127.0.0.1:0"},
		"auth": map[string]any{"allow_anonymous": true},
		"acl":  map[string]any{"rules": []any{map[string]any{"permission": "allow", "who": "all"}}},
		"log":  map[string]any{"level": "warn"},
	}, "", "  ")
}

func (b *broker) startEdgegate(ctx context.Context) error {
	settings, err := edgegateSettings(b.l.maxClients)
	if err != nil {
		return err
	}
	conf := filepath.Join(b.dir, "edgegate.json")
	if err := os.WriteFile(conf, settings, 0o600); err != nil {
		return err
	}
	data := filepath.Join(b.dir, "data")
	args := b.l.argv(b.l.edgegateBin, "serve", "--data", data, "--config", conf)
	cmd := exec.Command(args[0], args[1:]...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = b.log
	if err := b.run(cmd); err != nil {
		return err
	}
	banner := make(chan []string, 1)
	go func() {
		var lines []string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(b.log, line)
			lines = append(lines, line)
			if strings.TrimSpace(line) == "ready" {
				banner <- lines
				lines = nil
			}
		}
		close(banner)
	}()
	var lines []string
	select {
	case l, ok := <-banner:
		if !ok {
			return errors.New("edgegate exited before printing ready")
		}
		lines = l
	case <-ctx.Done():
		return fmt.Errorf("no ready line from edgegate: %w", ctx.Err())
	}
	addrs := parseBanner(lines)
	if addrs["mqtt"] == "" || addrs["mqtts"] == "" {
		return fmt.Errorf("banner has no mqtt:// and mqtts:// listener: %q", lines)
	}
	roots, err := loadPool(filepath.Join(data, "ca.pem"))
	if err != nil {
		return err
	}
	b.tcp = endpoint{addr: addrs["mqtt"]}
	b.tls = endpoint{addr: addrs["mqtts"], tls: clientTLS(roots)}
	if api := addrs["http"]; api != "" {
		b.metricsURL = "http://" + api + "/metrics"
	}
	return nil
}

// parseBanner returns the addresses of edgegate's start banner by URL
// scheme: listeners ("listener tcp  mqtt://127.0.0.1:1883") and the admin
// API ("admin api  http://127.0.0.1:8080/api/v1"). The first of a scheme
// wins.
func parseBanner(lines []string) map[string]string {
	addrs := map[string]string{}
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) != 3 || (f[0] != "listener" && (f[0] != "admin" || f[1] != "api")) {
			continue
		}
		scheme, rest, ok := strings.Cut(f[2], "://")
		if !ok {
			continue
		}
		host, _, _ := strings.Cut(rest, "/")
		if _, ok := addrs[scheme]; !ok {
			addrs[scheme] = host
		}
	}
	return addrs
}

// probe connects over TCP and TLS once, checks that the server key is
// ECDSA P-256 and records what TLS negotiated.
func (b *broker) probe(ctx context.Context) error {
	for _, t := range []endpoint{b.tcp, b.tls} {
		c, err := t.connect(ctx, "bench-probe", 512, 512)
		if err != nil {
			return fmt.Errorf("probe %s: %w", t.addr, err)
		}
		if tc, ok := c.conn.(*tls.Conn); ok {
			cs := tc.ConnectionState()
			leaf := cs.PeerCertificates[0]
			key, ok := leaf.PublicKey.(*ecdsa.PublicKey)
			if !ok || key.Curve != elliptic.P256() {
				c.close()
				return fmt.Errorf("%s serves a %v certificate, want ECDSA P-256", b.kind, leaf.PublicKeyAlgorithm)
			}
			b.tlsInfo = fmt.Sprintf("%s, %s, %s, ECDSA P-256 server key, %d certificates sent",
				tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite), cs.CurveID, len(cs.PeerCertificates))
		}
		c.disconnect()
	}
	return nil
}

// stop ends the broker (SIGTERM, then SIGKILL after stopTimeout) and
// removes its directory. It is safe to call more than once.
func (b *broker) stop() {
	b.stopOnce.Do(func() {
		if b.cmd != nil && b.cmd.Process != nil {
			_ = b.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-b.exited:
			case <-time.After(stopTimeout):
				fmt.Fprintf(os.Stderr, "loadgen: %s (pid %d) ignored SIGTERM for %s; killing it\n", b.kind, b.pid, stopTimeout)
				_ = b.cmd.Process.Kill()
				<-b.exited
			}
			b.l.forget(b.pid)
		}
		_ = b.log.Close()
		_ = os.RemoveAll(b.dir)
	})
}

// alive reports whether the process is still running.
func (b *broker) alive() bool {
	select {
	case <-b.exited:
		return false
	default:
		return true
	}
}

// logTail is the end of the broker's log, for error messages.
func (b *broker) logTail() string {
	data, err := os.ReadFile(b.log.Name())
	if err != nil || len(data) == 0 {
		return ""
	}
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return "\n--- " + b.log.Name() + " (end) ---\n" + string(data)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	return port, ln.Close()
}

func loadPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s: no certificate", path)
	}
	return pool, nil
}

// version runs a broker binary to learn its version string.
func version(ctx context.Context, bin string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

// counterNames are edgegate's /metrics counters the report records.
var counterNames = map[string]string{
	"edgegate_messages_received_total": "messages_received",
	"edgegate_messages_sent_total":     "messages_sent",
	"edgegate_messages_dropped_total":  "messages_dropped",
}

// counters reads the broker's message counters: edgegate's /metrics (open
// to loopback clients); nil for mosquitto, whose $SYS counters are
// published only every sys_interval.
func (b *broker) counters() map[string]float64 {
	if b.metricsURL == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.metricsURL, nil)
	if err != nil {
		return nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil
	}
	return parseCounters(string(body), counterNames)
}

// parseCounters picks unlabelled samples out of a Prometheus text
// exposition, renamed by names.
func parseCounters(text string, names map[string]string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		name, ok := names[f[0]]
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			out[name] = v
		}
	}
	return out
}
