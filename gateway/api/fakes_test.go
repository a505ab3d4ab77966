package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/edgegate/edgegate/certs"
	"github.com/edgegate/edgegate/certs/ca"
	"github.com/edgegate/edgegate/certs/keyseal"
	"github.com/edgegate/edgegate/certs/tlsconf"
	"github.com/edgegate/edgegate/gateway/admin"
	"github.com/edgegate/edgegate/gateway/auth"
	"github.com/edgegate/edgegate/gateway/broker"
	"github.com/edgegate/edgegate/gateway/broker/sys"
	"github.com/edgegate/edgegate/gateway/broker/trace"
	"github.com/edgegate/edgegate/gateway/config"
	"github.com/edgegate/edgegate/gateway/store"
)

// fakeBroker is an in-memory Broker.
type fakeBroker struct {
	mu         sync.Mutex
	clients    []broker.ClientInfo
	subs       []broker.Subscription
	retained   map[string]broker.RetainedMessage
	published  []broker.Message
	publishErr error
}

func newFakeBroker() *fakeBroker {
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	return &fakeBroker{
		clients: []broker.ClientInfo{
			{ClientID: "sensor-1", Username: "alice", Address: "10.0.0.5:50000", Listener: "tcp", Protocol: 4, Connected: true, ConnectedAt: t0},
			{ClientID: "sensor-2", Username: "bob", Address: "10.0.0.6:50000", Listener: "tls", Protocol: 5, Connected: true, ConnectedAt: t0},
			{ClientID: "dev/with/slash", Username: "carol", Listener: "tcp", Protocol: 4},
		},
		subs: []broker.Subscription{
			{ClientID: "sensor-1", Filter: "cmd/sensor-1/#", QoS: 1},
			{ClientID: "sensor-2", Filter: "cmd/sensor-2/#", QoS: 0},
		},
		retained: map[string]broker.RetainedMessage{
			"status/sensor-1": {Topic: "status/sensor-1", Payload: []byte("online"), QoS: 1, Created: t0},
			"/a/b/c":          {Topic: "/a/b/c", Payload: []byte("leading slash"), Created: t0},
			"bin":             {Topic: "bin", Payload: []byte{0xff, 0x00, 0xfe}, Created: t0},
		},
	}
}

func (b *fakeBroker) Clients() []broker.ClientInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.clients)
}

func (b *fakeBroker) Client(id string) (broker.ClientInfo, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.clients {
		if c.ClientID == id {
			return c, true
		}
	}
	return broker.ClientInfo{}, false
}

func (b *fakeBroker) Kick(id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, c := range b.clients {
		if c.ClientID == id {
			b.clients = slices.Delete(b.clients, i, i+1)
			return nil
		}
	}
	return broker.ErrClientNotFound
}

func (b *fakeBroker) Subscriptions(clientID string) []broker.Subscription {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []broker.Subscription
	for _, s := range b.subs {
		if clientID == "" || s.ClientID == clientID {
			out = append(out, s)
		}
	}
	return out
}

func (b *fakeBroker) Retained() []broker.RetainedMessage {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []broker.RetainedMessage
	for _, m := range b.retained {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out
}

func (b *fakeBroker) DeleteRetained(topic string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.retained[topic]; !ok {
		return broker.ErrRetainedNotFound
	}
	delete(b.retained, topic)
	return nil
}

func (b *fakeBroker) Publish(m broker.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.publishErr != nil {
		return b.publishErr
	}
	b.published = append(b.published, m)
	if len(b.published) > 16 { // bounded for the fuzz targets
		b.published = slices.Delete(b.published, 0, 1)
	}
	return nil
}

func (b *fakeBroker) lastPublished() (broker.Message, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.published) == 0 {
		return broker.Message{}, false
	}
	return b.published[len(b.published)-1], true
}

func (b *fakeBroker) Listeners() []broker.ListenerStatus {
	return []broker.ListenerStatus{
		{Name: "tls", Type: "tls", Address: "127.0.0.1:8883", MaxClients: 10, ClientAuth: "optional"},
		{Name: "tcp", Type: "tcp", Address: "127.0.0.1:1883", Clients: 2, MaxClients: 10},
	}
}

// fakeSettings layers documents with the real config.Load, as the gateway
// does, in memory.
type fakeSettings struct {
	mu       sync.Mutex
	file     []byte
	eff      config.Effective
	versions []store.SettingsVersion // oldest first
	now      time.Time
	applyErr error // returned after saving, like a listener that fails to restart
}

func newFakeSettings(t testing.TB, file string) *fakeSettings {
	t.Helper()
	s := &fakeSettings{file: []byte(file), now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	eff, err := config.Load(config.Layers{File: s.file, FileName: "edgegate.json"})
	if err != nil {
		t.Fatal(err)
	}
	s.eff = eff
	return s
}

func (s *fakeSettings) Effective() config.Effective {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eff
}

func (s *fakeSettings) Current() (store.SettingsVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.versions) == 0 {
		return store.SettingsVersion{}, nil
	}
	return s.versions[len(s.versions)-1], nil
}

func (s *fakeSettings) History() ([]store.SettingsVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.versions)
	slices.Reverse(out)
	return out, nil
}

func (s *fakeSettings) Apply(_ context.Context, patch []byte, author string) (store.SettingsVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := config.CheckPatch(patch, "settings patch"); err != nil {
		return store.SettingsVersion{}, err
	}
	for _, p := range config.PatchPaths(patch) {
		if s.eff.IsLocked(p) {
			return store.SettingsVersion{}, fmt.Errorf("locked: %s", p)
		}
	}
	var cur store.SettingsVersion
	if len(s.versions) > 0 {
		cur = s.versions[len(s.versions)-1]
	}
	doc, err := config.MergePatch(cur.Document, patch)
	if err != nil {
		return store.SettingsVersion{}, err
	}
	next, err := config.Load(config.Layers{Store: doc, File: s.file, FileName: "edgegate.json"})
	if err != nil {
		return store.SettingsVersion{}, err
	}
	v := store.SettingsVersion{Version: cur.Version + 1, Saved: s.now, Author: author, Document: doc}
	s.versions = append(s.versions, v)
	s.eff = next
	return v, s.applyErr
}

// fakeStats returns fixed statistics.
type fakeStats struct{}

func (fakeStats) Stats() sys.Stats {
	return sys.Stats{Node: "edgegate-test", Version: "test", UptimeSeconds: 42}
}

// fakeTraces keeps traces in a map, with the trace package's errors.
type fakeTraces struct {
	mu     sync.Mutex
	traces map[string]trace.Info
}

func (f *fakeTraces) Start(kind trace.Kind, target, name string) (trace.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if target == "" {
		return trace.Info{}, fmt.Errorf("%w: empty target", trace.ErrBadTarget)
	}
	if name == "" || strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") {
		return trace.Info{}, fmt.Errorf("%w %q", trace.ErrBadName, name)
	}
	key := string(kind) + "\x00" + target
	if _, ok := f.traces[key]; ok {
		return trace.Info{}, fmt.Errorf("%s %q: %w", kind, target, trace.ErrExists)
	}
	info := trace.Info{Kind: kind, Target: target, Name: name, File: "/data/traces/" + name, Started: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	f.traces[key] = info
	return info, nil
}

func (f *fakeTraces) StopTrace(kind trace.Kind, target string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := string(kind) + "\x00" + target
	if _, ok := f.traces[key]; !ok {
		return fmt.Errorf("%s %q: %w", kind, target, trace.ErrNotFound)
	}
	delete(f.traces, key)
	return nil
}

func (f *fakeTraces) List() []trace.Info {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []trace.Info
	for _, i := range f.traces {
		out = append(out, i)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Target < out[j].Target })
	return out
}

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const (
	adminPassword = "admin Passw0rd"
	// loopback is the RemoteAddr of test requests; httptest defaults to
	// 192.0.2.1:1234, which the loopback check refuses.
	loopback = "127.0.0.1:40000"
)

// env is an API on fakes plus the real admin credentials and MQTT user
// store on a bbolt database in a temporary directory.
type env struct {
	t         testing.TB
	api       *API
	handler   http.Handler
	local     http.Handler
	broker    *fakeBroker
	settings  *fakeSettings
	traces    *fakeTraces
	admin     *admin.Credentials
	users     *auth.Users
	certs     *certs.Manager
	ca        *ca.Authority
	clock     *testClock
	log       *syncBuffer
	setupCode string
	keyID     string
	keySecret string
}

type envOption func(*Options)

func newEnv(t testing.TB, settingsFile string, opts ...envOption) *env {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "api.db"), 0o600, &bolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	creds, err := admin.Open(db, admin.Options{HashIterations: 1000})
	if err != nil {
		t.Fatal(err)
	}
	users, err := auth.NewUsers(db)
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	certificates, authority := newCertificates(t, db, clock.Now)
	e := &env{
		t: t, broker: newFakeBroker(), settings: newFakeSettings(t, settingsFile),
		traces: &fakeTraces{traces: map[string]trace.Info{}}, admin: creds, users: users,
		clock: clock, log: &syncBuffer{}, certs: certificates, ca: authority,
	}
	if e.setupCode, _, err = creds.EnsureSetupCode(); err != nil {
		t.Fatal(err)
	}
	o := Options{
		Admin: creds, Users: users, Broker: e.broker, Settings: e.settings, Stats: fakeStats{}, Traces: e.traces,
		Certificates: certificates, Authority: authority, DeploymentID: testDeploymentID,
		Logger: slog.New(slog.NewJSONHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    e.clock.Now,
	}
	for _, opt := range opts {
		opt(&o)
	}
	e.api = New(o)
	e.handler = e.api.Handler()
	e.local = e.api.LocalHandler()
	return e
}

// testDeploymentID is the gateway's id in the deployment TLS API tests.
const testDeploymentID = "ge6a1a75"

// newCertificates is the real certificate manager on db, with a local CA.
func newCertificates(t testing.TB, db *bolt.DB, now func() time.Time) (*certs.Manager, *ca.Authority) {
	t.Helper()
	sealer, err := keyseal.New(bytes.Repeat([]byte{1}, keyseal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	local, err := ca.Open(db, ca.Options{DeviceName: "api-test", Now: now, Sealer: sealer})
	if err != nil {
		t.Fatal(err)
	}
	m, err := certs.Open(certs.Options{
		DB: db, Sealer: sealer, CA: local, TLS: tlsconf.NewManager(), ServerNames: []string{"localhost"},
		ServerValidity: ca.ServerValidity, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m, local
}

// completeSetup sets the admin password and makes an API key.
func (e *env) completeSetup() *env {
	e.t.Helper()
	if err := e.admin.CompleteSetup(e.setupCode, adminPassword); err != nil {
		e.t.Fatal(err)
	}
	k, secret, err := e.admin.CreateAPIKey("test key")
	if err != nil {
		e.t.Fatal(err)
	}
	e.keyID, e.keySecret = k.ID, secret
	return e
}

// req describes one test request.
type req struct {
	method, path string
	body         string
	contentType  string // "" means application/json when body is set
	user, pass   string // Basic credentials; "-" means none (runRoutes fills in the admin's for "")
	remote       string // "" means loopback
	header       http.Header
}

func (e *env) do(h http.Handler, r req) *httptest.ResponseRecorder {
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr := httptest.NewRequest(r.method, r.path, body)
	hr.RemoteAddr = loopback
	if r.remote != "" {
		hr.RemoteAddr = r.remote
	}
	ct := r.contentType
	if ct == "" && r.body != "" {
		ct = "application/json"
	}
	if ct != "-" && ct != "" {
		hr.Header.Set("Content-Type", ct)
	}
	if r.user != "" && r.user != "-" {
		hr.SetBasicAuth(r.user, r.pass)
	}
	for k, vs := range r.header {
		hr.Header[k] = vs
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, hr)
	return w
}

// asAdmin returns r with the admin's credentials.
func (r req) asAdmin() req { r.user, r.pass = admin.AdminUser, adminPassword; return r }

// decodeError decodes an error answer, failing on anything else.
func decodeError(t testing.TB, w *httptest.ResponseRecorder) Error {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error answer Content-Type %q; want application/json (body %q)", ct, w.Body.String())
	}
	var e Error
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("error answer %q: %v", w.Body.String(), err)
	}
	if e.Code == "" || e.Message == "" {
		t.Fatalf("error answer %q lacks code or message", w.Body.String())
	}
	return e
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

var errBoom = errors.New("disk on fire: /var/lib/edgegate/secret-path")
