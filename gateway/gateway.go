// Package gateway wires edgegate's parts together: the store, settings,
// local CA and TLS configs, the MQTT broker with its auth hook, the admin
// API on TCP and on a local unix socket, and systemd notifications. New
// builds them, Run runs them until the context ends and stops them in
// reverse order.
package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/edgegate/edgegate/certs"
	"github.com/edgegate/edgegate/certs/acme"
	"github.com/edgegate/edgegate/certs/ca"
	"github.com/edgegate/edgegate/certs/keyseal"
	"github.com/edgegate/edgegate/certs/tlsconf"
	"github.com/edgegate/edgegate/certs/trustsync"
	"github.com/edgegate/edgegate/gateway/admin"
	"github.com/edgegate/edgegate/gateway/api"
	"github.com/edgegate/edgegate/gateway/auth"
	"github.com/edgegate/edgegate/gateway/backup"
	"github.com/edgegate/edgegate/gateway/broker"
	"github.com/edgegate/edgegate/gateway/broker/sys"
	"github.com/edgegate/edgegate/gateway/config"
	"github.com/edgegate/edgegate/gateway/logtail"
	"github.com/edgegate/edgegate/gateway/store"
	"github.com/edgegate/edgegate/systemd"
	"github.com/edgegate/edgegate/webui"
)

// SocketName is the admin socket in the data directory that the CLI uses.
const SocketName = "edgegate.sock"

// CAFileName is the local CA's certificate (PEM) in the data directory,
// for clients to trust.
const CAFileName = "ca.pem"

// DeviceKeyFileName is the device key in the data directory that seals the
// private keys of the store (certs/keyseal). A copy of the store without
// it reveals no key.
const DeviceKeyFileName = "device.key"

// traceDir holds the trace files in the data directory.
const traceDir = "traces"

// shutdownTimeout bounds a clean stop.
const shutdownTimeout = 4 * time.Second

// Options are the process-level inputs of a gateway.
type Options struct {
	DataDir  string
	Version  string
	Commit   string
	Logger   *slog.Logger
	Console  io.Writer // where the start banner is printed
	Notifier *systemd.Notifier
}

// Gateway is a configured edgegate, ready to Run.
type Gateway struct {
	opts     Options
	store    *store.Store
	settings *Settings
	ca       *ca.Authority
	tls      *tlsconf.Manager
	pools    *clientCAPools
	certs    *certs.Manager
	trust    *trustsync.Service
	auth     *auth.Hook
	users    *auth.Users
	admin    *admin.Credentials
	broker   *broker.Broker
	api      *api.API
	ui       *webui.UI
	log      *slog.Logger
	// restart asks Run for a clean stop that ends in ErrRestart.
	restart   chan struct{}
	activated bool // listeners came from systemd socket activation
}

// New builds every part from the settings; nothing listens yet.
func New(st *store.Store, settings *Settings, o Options) (*Gateway, error) {
	cfg := settings.Effective().Config
	// Every log line from here on is also kept for the web UI's System page.
	tail := logtail.New(logtail.DefaultSize)
	o.Logger = slog.New(tail.Handler(o.Logger.Handler()))
	g := &Gateway{opts: o, store: st, settings: settings, log: o.Logger, restart: make(chan struct{}, 1)}
	settings.apply = g
	g.setMemoryLimit(cfg)

	sealer, err := keyseal.LoadOrCreate(filepath.Join(o.DataDir, DeviceKeyFileName), true)
	if err != nil {
		return nil, err
	}
	if g.ca, err = ca.Open(st.DB(), ca.Options{
		DeviceName: cfg.Node, Sealer: sealer, Logger: o.Logger.With("component", "ca"),
	}); err != nil {
		return nil, fmt.Errorf("local CA: %w", err)
	}
	if err := g.writeTrustBundleFile(); err != nil {
		return nil, err
	}
	g.tls = tlsconf.NewManager()
	g.pools = newClientCAPools(g.tls)
	if g.certs, err = certs.Open(certs.Options{
		DB: st.DB(), Sealer: sealer, CA: g.ca, TLS: g.pools,
		ServerNames: serverNames(), ServerValidity: ca.ServerValidity, ClientCAPool: config.ClientCALocal,
		OnTrustBundleChange: g.writeTrustBundle, Logger: o.Logger.With("component", "certs"),
	}); err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	g.tls.SetChallengeResponder(g.certs.ACMEChallengeCertificate)
	if err := g.setACME(cfg.ACME); err != nil {
		return nil, err
	}
	deviceID := sealer.DeviceID()
	if err := g.ensureDeviceCertificate(deviceID); err != nil {
		return nil, err
	}
	if err := g.openTrust(st, cfg.Trust, deviceID); err != nil {
		return nil, err
	}
	g.tls.SetClientCheck(g.checkClient)
	if g.users, err = auth.NewUsers(st.DB()); err != nil {
		return nil, fmt.Errorf("mqtt users: %w", err)
	}
	if g.auth, err = auth.New(auth.Options{
		Users: g.users, Auth: cfg.Auth, ACL: cfg.ACL, Listeners: cfg.Listeners,
		Logger: o.Logger.With("component", "auth"),
	}); err != nil {
		return nil, fmt.Errorf("mqtt auth: %w", err)
	}
	if g.admin, err = admin.Open(st.DB(), admin.Options{HashIterations: cfg.Auth.PBKDF2Iterations}); err != nil {
		return nil, fmt.Errorf("admin credentials: %w", err)
	}
	activated, err := systemd.ActivatedListeners()
	if err != nil {
		return nil, fmt.Errorf("socket activation: %w", err)
	}
	g.activated = len(activated) > 0
	if g.broker, err = broker.New(broker.Options{
		Config: cfg, DB: st.DB(), TLS: listenerTLS{g}, Auth: g.auth, Activated: activated,
		TraceDir: filepath.Join(o.DataDir, traceDir), Version: o.Version, Logger: o.Logger,
		Certificates: g.certificatesInUse,
	}); err != nil {
		return nil, err
	}
	limiter := admin.NewFailLimiter(10, time.Minute)
	g.api = api.New(api.Options{
		Admin: g.admin, Limiter: limiter, Users: g.users, Broker: g.broker, Settings: settings, Stats: g.broker,
		Traces: g.broker.Tracer(), Certificates: g.certs, Authority: g.ca, ACMEChallenges: g.certs.ACMEHTTPHandler(), DeploymentID: cfg.Node, MaxBodyBytes: cfg.API.MaxBodyBytes, Logger: o.Logger.With("component", "api"),
		Trust: g.trust, Provision: api.ProvisionOptions{DeviceID: deviceID},
	})
	if cfg.API.HTTPSBind != "" {
		g.ui = webui.New(webui.Options{
			Admin: g.admin, Limiter: limiter, Broker: g.broker, Users: g.users, Settings: settings,
			Certificates: g.certs, Authority: g.ca, Version: o.Version, Logger: o.Logger.With("component", "webui"),
			Commit: o.Commit, DataDir: o.DataDir, Logs: tail, Traces: g.broker.Tracer(),
			Backups: backup.NewManager(st.DB(), dataLayout(o.DataDir)), Restart: g.requestRestart,
			SettingsFile: settings.fileName, Trust: g.trust,
		})
	}
	return g, nil
}

// serverNames are the names the listener certificate covers.
func serverNames() []string {
	names := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		names = append(names, h, h+".local")
	}
	return names
}

// listenerTLS gives each TLS listener its config from certs/tlsconf, with
// its client-CA pool: the local CA or a PEM file of its own.
type listenerTLS struct{ g *Gateway }

func (t listenerTLS) ListenerConfig(name string, l config.Listener) (*tls.Config, error) {
	opts := tlsconf.ServerOptions{ClientAuth: tlsconf.None}
	if l.TLS != nil {
		mode, err := tlsconf.ParseClientAuth(l.TLS.ClientAuth)
		if err != nil {
			return nil, err
		}
		opts.ClientAuth = mode
		opts.ClientCAs = l.TLS.ClientCA
		if l.TLS.ClientCA != "" && l.TLS.ClientCA != config.ClientCALocal {
			pem, err := os.ReadFile(l.TLS.ClientCA)
			if err != nil {
				return nil, fmt.Errorf("client CA file: %w", err)
			}
			pool, err := tlsconf.LoadPoolPEM(pem)
			if err != nil {
				return nil, fmt.Errorf("client CA file %s: %w", l.TLS.ClientCA, err)
			}
			t.g.tls.SetClientCAs(l.TLS.ClientCA, pool)
		}
	}
	if l.IsWebSocket() {
		opts.NextProtos = []string{"http/1.1"}
	}
	return t.g.tls.ServerConfig(opts), nil
}

// ErrRestart is returned by Run after a clean stop that the operator asked
// to be followed by a start (restart, restore, factory reset from the web
// UI): the caller closes the store and calls Reexec.
var ErrRestart = errors.New("gateway: restart requested")

// Run starts the broker and the admin servers, reports readiness, and
// blocks until ctx ends or a restart is requested; then it stops
// everything in reverse order.
func (g *Gateway) Run(ctx context.Context) error {
	ctx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	if err := g.broker.Start(ctx); err != nil {
		return err
	}
	cfg := g.settings.Effective().Config
	var lc net.ListenConfig
	apiLn, err := lc.Listen(ctx, "tcp", cfg.API.Bind)
	if err != nil {
		_ = g.broker.Close()
		return fmt.Errorf("admin API on %s: %w", cfg.API.Bind, err)
	}
	var webLn net.Listener
	httpsPort := ""
	if g.ui != nil {
		if webLn, err = lc.Listen(ctx, "tcp", cfg.API.HTTPSBind); err != nil {
			_ = apiLn.Close()
			_ = g.broker.Close()
			return fmt.Errorf("web UI on %s: %w", cfg.API.HTTPSBind, err)
		}
		_, httpsPort, _ = net.SplitHostPort(webLn.Addr().String())
	}
	sockLn, err := listenUnix(ctx, filepath.Join(g.opts.DataDir, SocketName))
	if err != nil {
		_ = apiLn.Close()
		if webLn != nil {
			_ = webLn.Close()
		}
		_ = g.broker.Close()
		return err
	}
	servers := []*http.Server{api.NewServer(g.httpHandler(httpsPort)), api.NewServer(g.api.LocalHandler())}
	listeners := []net.Listener{apiLn, sockLn}
	webAddr := ""
	if webLn != nil {
		webSrv := api.NewServer(g.httpsHandler())
		webSrv.TLSConfig = g.webTLSConfig()
		servers = append(servers, webSrv)
		listeners = append(listeners, tls.NewListener(webLn, webSrv.TLSConfig))
		webAddr = webLn.Addr().String()
	}
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Add(1)
		go func(srv *http.Server, ln net.Listener) {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				g.log.Error("web server stopped", "address", ln.Addr().String(), "error", err)
			}
		}(srv, listeners[i])
	}

	if err := g.printBanner(apiLn.Addr().String(), webAddr); err != nil {
		g.log.Warn("print start banner", "error", err)
	}
	notify := g.opts.Notifier
	_ = notify.Ready()
	_ = notify.Status(fmt.Sprintf("serving %d listeners", len(g.broker.Listeners())))
	wg.Add(2)
	go func() {
		defer wg.Done()
		notify.RunWatchdog(ctx)
	}()
	go func() {
		defer wg.Done()
		g.certs.Run(ctx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		g.trust.Run(ctx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		g.disconnectRefusedClients(ctx)
	}()

	restarting := false
	select {
	case <-ctx.Done():
	case <-g.restart:
		restarting = true
		stopRun() // ends what runs on ctx, as a signal would
	}
	if restarting {
		// Not STOPPING=1: systemd would then wait for the process to exit,
		// while a re-exec keeps it (and its pid) running.
		g.log.Info("restarting")
		_ = notify.Status("restarting")
	} else {
		g.log.Info("stopping")
		_ = notify.Stopping()
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if g.ui != nil {
		g.ui.Close() // websockets are hijacked: Shutdown does not end them
	}
	for _, srv := range servers {
		_ = srv.Shutdown(stopCtx)
	}
	brokerErr := g.broker.Close()
	wg.Wait()
	if restarting && brokerErr == nil {
		return ErrRestart
	}
	return brokerErr
}

// requestRestart asks Run to stop cleanly and return ErrRestart.
func (g *Gateway) requestRestart() {
	select {
	case g.restart <- struct{}{}:
	default: // already asked
	}
}

// Reexec closes st and replaces the process with a new run of the same
// binary, arguments and environment; the process id, and so systemd's or
// a shell's hold on it, stays. It returns only on failure. A socket-
// activated gateway cannot take its sockets along (they are not inherited
// across exec): it returns an error, so the process exits with a failure
// and systemd (Restart=on-failure) starts it again with its sockets.
func (g *Gateway) Reexec(st *store.Store) error {
	if g.activated {
		return errors.New("restart: socket-activated, exiting for systemd to start edgegate again")
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	return fmt.Errorf("restart: exec: %w", syscall.Exec("/proc/self/exe", os.Args, os.Environ())) //nolint:gosec // G204: this very binary with its own arguments
}

// dataLayout names the data directory's files for backups and resets.
func dataLayout(dir string) backup.Layout {
	return backup.Layout{Dir: dir, DeviceKey: DeviceKeyFileName, Derived: []string{CAFileName, traceDir}}
}

// OpenStore carries out a restore or factory reset that the web UI staged
// for this start (saying so on console), then opens the store.
func OpenStore(dataDir string, console io.Writer) (*store.Store, error) {
	did, err := backup.ApplyPending(dataLayout(dataDir))
	if err != nil {
		return nil, err
	}
	switch did {
	case backup.Restored:
		fmt.Fprintf(console, "edgegate: restored the backup staged in %s; the replaced database is kept as %s\n",
			filepath.Join(dataDir, backup.PendingRestore), store.FileName+backup.BeforeRestore)
	case backup.Reset:
		fmt.Fprintln(console, "edgegate: factory reset done; set the gateway up again with the new setup code")
	}
	return store.Open(dataDir, store.Options{})
}

// listenUnix opens the admin socket with owner-only permissions, replacing
// a stale socket file left by a crash (the store's lock proves no other
// edgegate runs on this data directory).
func listenUnix(ctx context.Context, path string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale admin socket: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("admin socket permissions: %w", err)
	}
	return ln, nil
}

// applySettings applies a saved settings change to the running parts.
func (g *Gateway) applySettings(old, next config.Config) error {
	var errs []error
	if err := g.auth.SetRules(next.ACL); err != nil {
		errs = append(errs, fmt.Errorf("acl: %w", err))
	}
	if err := g.auth.SetAuth(next.Auth); err != nil {
		errs = append(errs, fmt.Errorf("auth: %w", err))
	}
	if old.Memory != next.Memory {
		g.setMemoryLimit(next)
	}
	if !reflect.DeepEqual(old.ACME, next.ACME) {
		if err := g.setACME(next.ACME); err != nil {
			errs = append(errs, err)
		}
	}
	if err := g.configureTrust(old.Trust, next.Trust); err != nil {
		errs = append(errs, err)
	}
	if !reflect.DeepEqual(old.Listeners, next.Listeners) {
		g.auth.SetListeners(next.Listeners)
		if err := g.broker.ApplyListeners(next.Listeners, listenerTLS{g}); err != nil {
			errs = append(errs, err)
		}
	}
	if restart := config.RestartOnly(old, next); len(restart) > 0 {
		g.log.Warn("saved settings take effect at the next start", "settings", restart)
	}
	return errors.Join(errs...)
}

// writeFileAtomic replaces path with data so readers never see half a file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// setMemoryLimit makes the memory budget the runtime's soft limit, unless
// the operator set GOMEMLIMIT in the environment, which wins.
func (g *Gateway) setMemoryLimit(cfg config.Config) {
	if _, fromEnv := os.LookupEnv("GOMEMLIMIT"); fromEnv {
		return
	}
	limit := cfg.MemoryLimit()
	if limit <= 0 {
		limit = math.MaxInt64 // the runtime's "no limit"
	}
	debug.SetMemoryLimit(limit)
	g.log.Debug("memory limit", "bytes", limit)
}

// certificatesInUse lists the certificates the listeners serve or trust,
// and those whose automatic renewal fails, for the alarms and metrics of
// package sys.
func (g *Gateway) certificatesInUse() []sys.CertificateExpiry {
	list, err := g.certs.List()
	if err != nil {
		g.log.Error("list certificates for expiry alarms", "error", err)
		return nil
	}
	var out []sys.CertificateExpiry
	for _, c := range list {
		notAfter := time.UnixMilli(c.To)
		for _, u := range c.Usage {
			out = append(out, sys.CertificateExpiry{ID: c.ID, Usage: string(u), NotAfter: notAfter, RenewalError: c.Renewal.LastError})
		}
		if len(c.Usage) == 0 && c.AutoRenew && c.Renewal.LastError != "" {
			out = append(out, sys.CertificateExpiry{ID: c.ID, NotAfter: notAfter, RenewalError: c.Renewal.LastError})
		}
	}
	// The local CA's own certificates are in use too.
	roots := map[string]*x509.Certificate{}
	for _, iss := range g.ca.Issuers() {
		out = append(out, sys.CertificateExpiry{ID: "ca-" + string(iss.Kind) + "-" + iss.ID[:8], Usage: "issuer", NotAfter: iss.Cert.NotAfter})
		if iss.Root != nil {
			roots[ca.IssuerID(iss.Root)] = iss.Root
		}
	}
	for id, root := range roots {
		out = append(out, sys.CertificateExpiry{ID: "ca-root-" + id[:8], Usage: "trust-anchor", NotAfter: root.NotAfter})
	}
	slices.SortStableFunc(out, func(a, b sys.CertificateExpiry) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// writeTrustBundleFile writes the local CA's roots to <data>/ca.pem.
func (g *Gateway) writeTrustBundleFile() error {
	if err := writeFileAtomic(filepath.Join(g.opts.DataDir, CAFileName), g.ca.TrustBundlePEM(), 0o644); err != nil {
		return fmt.Errorf("write CA certificate: %w", err)
	}
	return nil
}

// writeTrustBundle rewrites ca.pem after a root rotation began or ended.
func (g *Gateway) writeTrustBundle() {
	if err := g.writeTrustBundleFile(); err != nil {
		g.log.Error("trust bundle changed", "error", err)
	}
}

// clientSweepInterval is how often live TLS sessions are checked against
// revocations and expiry: a revoked sensor is cut off within it.
const clientSweepInterval = 2 * time.Second

// disconnectRefusedClients disconnects, until ctx ends, the clients whose
// certificate was revoked or expired since they connected. New handshakes
// are refused by the same check in certs/tlsconf.
func (g *Gateway) disconnectRefusedClients(ctx context.Context) {
	tick := time.NewTicker(clientSweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			g.broker.DisconnectRefused(g.checkClient)
		}
	}
}

// setACME gives the certificate manager an ACME client for the settings
// (none when ACME is off). Nothing is sent to the CA until a certificate is
// ordered.
func (g *Gateway) setACME(s config.ACME) error {
	if !s.Enabled() {
		g.certs.SetACME(nil)
		return nil
	}
	cfg := acme.Config{
		DirectoryURL: s.DirectoryURL, Email: s.Email, AgreeToTerms: s.AgreeToTerms,
		KeyType: acme.KeyType(s.KeyType), Logger: g.log.With("component", "acme"),
	}
	for _, c := range s.Challenges {
		cfg.Challenges = append(cfg.Challenges, acme.Challenge(c))
	}
	if s.RootCAFile != "" {
		pem, err := os.ReadFile(s.RootCAFile)
		if err != nil {
			return fmt.Errorf("acme.root_ca_file: %w", err)
		}
		if cfg.RootCAs, err = tlsconf.LoadPoolPEM(pem); err != nil {
			return fmt.Errorf("acme.root_ca_file %s: %w", s.RootCAFile, err)
		}
	}
	if s.DNSProvider != "" {
		creds, err := readCredentials(s.DNSCredentialsFile)
		if err != nil {
			return fmt.Errorf("acme.dns_credentials_file: %w", err)
		}
		cfg.DNS = &acme.DNSConfig{Provider: s.DNSProvider, Credentials: creds}
	}
	client, err := acme.New(cfg, g.certs.ACMEAccounts())
	if err != nil {
		return fmt.Errorf("acme: %w", err)
	}
	g.certs.SetACME(client)
	return nil
}

// readCredentials reads KEY=VALUE lines (blank lines and # comments
// skipped), the format of a DNS provider's credentials file.
func readCredentials(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	creds := map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			// The line may hold a secret: name it by number only.
			return nil, fmt.Errorf("%s: line %d is not KEY=VALUE", path, i+1)
		}
		creds[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return creds, nil
}
