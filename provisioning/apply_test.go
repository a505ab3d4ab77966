package provisioning_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
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
	"github.com/edgegate/edgegate/provisioning"
)

// testGateway is an Applier on the real admin credentials, MQTT accounts
// and certificate store (on one bbolt database) and the settings in memory.
type testGateway struct {
	applier  *provisioning.Applier
	fleet    signer
	settings *fakeSettings
	admin    *admin.Credentials
	users    *auth.Users
	certs    *certs.Manager
	log      *syncBuffer
}

func newTestGateway(t *testing.T, settingsFile string) *testGateway {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "gw.db"), 0o600, &bolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	creds, err := admin.Open(db, admin.Options{HashIterations: 1000, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := creds.EnsureSetupCode(); err != nil {
		t.Fatal(err)
	}
	users, err := auth.NewUsers(db)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := keyseal.New(bytes.Repeat([]byte{7}, keyseal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return now }
	local, err := ca.Open(db, ca.Options{DeviceName: "provision-test", Now: clock, Sealer: sealer})
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := certs.Open(certs.Options{DB: db, Sealer: sealer, CA: local, TLS: tlsconf.NewManager(),
		ServerNames: []string{"localhost"}, ServerValidity: ca.ServerValidity, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	g := &testGateway{fleet: newSigner(t), settings: newFakeSettings(t, settingsFile), admin: creds, users: users, certs: mgr, log: &syncBuffer{}}
	g.applier = &provisioning.Applier{
		KeysPath: writeKeys(t, g.fleet),
		DeviceID: testDevice,
		Gateway:  provisioning.Gateway{Settings: g.settings, Admin: creds, Users: users, Certificates: mgr},
		Now:      clock,
		Logger:   slog.New(slog.NewJSONHandler(g.log, nil)),
	}
	return g
}

// apply signs data with the fleet key and applies it.
func (g *testGateway) apply(t *testing.T, data []byte) provisioning.Report {
	t.Helper()
	return g.applier.Apply(t.Context(), data, provisioning.Sign(g.fleet.priv, data), "local")
}

// state is what a bundle can change, to compare before and after.
type state struct {
	settings  int
	setupDone bool
	keys      int
	users     int
	clientCAs int
}

func (g *testGateway) state(t *testing.T) state {
	t.Helper()
	done, err := g.admin.SetupDone()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := g.admin.ListAPIKeys()
	if err != nil {
		t.Fatal(err)
	}
	us, err := g.users.List()
	if err != nil {
		t.Fatal(err)
	}
	list, err := g.certs.List()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range list {
		if c.ClientCA {
			n++
		}
	}
	return state{settings: len(g.settings.history()), setupDone: done, keys: len(keys), users: len(us), clientCAs: n}
}

// checkApplied checks that every part of goodDoc is in force.
func (g *testGateway) checkApplied(t *testing.T, rep provisioning.Report) {
	t.Helper()
	if rep.Status != provisioning.StatusApplied || rep.Code != "" {
		t.Fatalf("report %+v", rep)
	}
	if eff := g.settings.Effective().Config; eff.Node != "plant-7" || eff.Sys.Interval.Std() != 10*time.Second {
		t.Fatalf("settings node %q interval %v", eff.Node, eff.Sys.Interval)
	}
	if h := g.settings.history(); h[len(h)-1].Author != "provision:"+rep.BundleSHA256[:12] {
		t.Fatalf("settings author %q", h[len(h)-1].Author)
	}
	if !g.admin.CheckAdmin(adminPW) {
		t.Fatal("the admin password is not the bundle's")
	}
	if k, ok := g.admin.CheckAPIKey("egk_fleet-monitor", apiSecret); !ok || k.Name != "fleet monitor" || len(k.Scopes) != 1 {
		t.Fatalf("API key %+v, %v", k, ok)
	}
	u, err := g.users.Get("sensor")
	if err != nil || !auth.VerifyPassword(u.PasswordHash, sensorPW) || u.Superuser {
		t.Fatalf("user sensor %+v, %v", u, err)
	}
	if u, err := g.users.Get("dashboard"); err != nil || !u.Superuser || u.PasswordHash != "" {
		t.Fatalf("user dashboard %+v, %v", u, err)
	}
	if len(rep.Applied.ClientCAs) != 1 {
		t.Fatalf("client CAs %v", rep.Applied.ClientCAs)
	}
	c, err := g.certs.Get(rep.Applied.ClientCAs[0])
	if err != nil || !c.ClientCA || c.Name != "fleet devices" || c.HasKey {
		t.Fatalf("client CA %+v, %v", c, err)
	}
}

func TestApplyGoodBundle(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, "")
	data := encode(t, goodDoc())
	rep := g.apply(t, data)
	g.checkApplied(t, rep)
	want := provisioning.Applied{SettingsVersion: 1, AdminPassword: true, APIKeys: []string{"egk_fleet-monitor"},
		MQTTUsers: []string{"sensor", "dashboard"}, ClientCAs: rep.Applied.ClientCAs}
	if got, _ := json.Marshal(rep.Applied); string(got) != string(mustJSON(t, want)) {
		t.Fatalf("applied %s", got)
	}
	if rep.Key != g.fleet.pub.Fingerprint() || rep.Device != testDevice || rep.BundleSHA256 != sha256Hex(string(data)) ||
		!rep.Time.Equal(now) || !strings.HasPrefix(rep.Message, "applied settings node, sys.interval; admin password;") {
		t.Fatalf("report %+v", rep)
	}
	if done, _ := g.admin.SetupDone(); !done {
		t.Fatal("the bundle's admin password did not complete the setup")
	}
	if code, _, _ := g.admin.EnsureSetupCode(); code != "" {
		t.Fatal("a setup code is still offered")
	}

	// Applying it again changes nothing but the settings version.
	before := g.state(t)
	again := g.apply(t, data)
	g.checkApplied(t, again)
	after := g.state(t)
	if before.keys != after.keys || before.users != after.users || before.clientCAs != after.clientCAs {
		t.Fatalf("second apply: %+v -> %+v", before, after)
	}
	if again.Applied.ClientCAs[0] != rep.Applied.ClientCAs[0] {
		t.Fatalf("client CA stored twice: %v then %v", rep.Applied.ClientCAs, again.Applied.ClientCAs)
	}

	// The log has the outcome and no hash or secret.
	log := g.log.String()
	if !strings.Contains(log, "provisioning bundle applied") || !strings.Contains(log, rep.BundleSHA256) {
		t.Fatalf("log %s", log)
	}
	for _, secret := range []string{adminHash, apiSecretHash, apiSecret, sensorPW, "s4lt"} {
		if strings.Contains(log, secret) {
			t.Fatalf("the log holds a secret %q: %s", secret, log)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestApplyRefusedChangesNothing: every refused bundle leaves the gateway
// as it was, with a reason.
func TestApplyRefusedChangesNothing(t *testing.T) {
	t.Parallel()
	good := encode(t, goodDoc())
	cases := []struct {
		name string
		// file is the image's settings file.
		file string
		// bundle returns the bundle and its signature.
		bundle func(g *testGateway) ([]byte, []byte)
		code   string
		msg    string
	}{
		{name: "tampered byte", code: provisioning.CodeBadSignature, bundle: func(g *testGateway) ([]byte, []byte) {
			sig := provisioning.Sign(g.fleet.priv, good)
			return bytes.Replace(good, []byte(`"plant-7"`), []byte(`"plant-X"`), 1), sig
		}},
		{name: "wrong key", code: provisioning.CodeBadSignature, bundle: func(*testGateway) ([]byte, []byte) {
			return good, provisioning.Sign(newSigner(t).priv, good)
		}},
		{name: "unsigned", code: provisioning.CodeUnsigned, bundle: func(*testGateway) ([]byte, []byte) { return good, nil }},
		{name: "expired", code: provisioning.CodeExpired, bundle: signed(encode(t, with(func(d map[string]any) {
			d["expires_at"] = "2026-11-22T00:00:00Z"
		})))},
		{name: "wrong device", code: provisioning.CodeWrongDevice, bundle: signed(encode(t, with(func(d map[string]any) {
			d["device"] = "gw-9999"
		})))},
		{name: "unknown key", code: provisioning.CodeInvalid, msg: `unknown key "vault"`, bundle: signed(encode(t, with(func(d map[string]any) {
			d["vault"] = map[string]any{"address": "https://127.0.0.1:8200"}
		})))},
		{name: "invalid part", code: provisioning.CodeInvalid, msg: "mqtt_users[0].password_hash", bundle: signed(encode(t, with(func(d map[string]any) {
			d["mqtt_users"] = []any{map[string]any{"username": "x", "password_hash": map[string]any{"kind": "md5", "hash": "00"}}}
		})))},
		{name: "invalid settings patch", code: provisioning.CodeInvalidSettings, msg: "settings.node", bundle: signed(encode(t, with(func(d map[string]any) {
			d["settings"] = map[string]any{"node": "no spaces allowed", "sys": map[string]any{"interval": "10s"}}
		})))},
		{name: "locked setting", file: `{"node":"from-the-image"}`, code: provisioning.CodeLocked, msg: "settings.node", bundle: signed(good)},
		{name: "client CA revoked in the store", code: provisioning.CodeInvalid, msg: "revoked", bundle: func(g *testGateway) ([]byte, []byte) {
			chain, err := certs.ParseChainPEM(fleetCA)
			if err != nil {
				t.Fatal(err)
			}
			c, err := g.certs.Add(certs.Meta{ID: "fleet-ca"}, chain, nil, certs.SourceImported)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := g.certs.Revoke(t.Context(), c.ID, "keyCompromise"); err != nil {
				t.Fatal(err)
			}
			return good, provisioning.Sign(g.fleet.priv, good)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newTestGateway(t, tc.file)
			data, sig := tc.bundle(g)
			before := g.state(t)
			rep := g.applier.Apply(t.Context(), data, sig, "local")
			if rep.Status != provisioning.StatusRefused || rep.Code != tc.code || !strings.Contains(rep.Message, tc.msg) {
				t.Fatalf("report %s %s %q; want refused %s with %q", rep.Status, rep.Code, rep.Message, tc.code, tc.msg)
			}
			if after := g.state(t); after != before {
				t.Fatalf("refused bundle changed the gateway: %+v -> %+v", before, after)
			}
			if rep.Applied.SettingsVersion != 0 || g.admin.CheckAdmin(adminPW) {
				t.Fatalf("applied %+v", rep.Applied)
			}
			if !strings.Contains(g.log.String(), "provisioning bundle refused") {
				t.Fatalf("refusal not logged: %s", g.log.String())
			}
		})
	}
}

// signed returns a bundle function signing data with the gateway's key.
func signed(data []byte) func(g *testGateway) ([]byte, []byte) {
	return func(g *testGateway) ([]byte, []byte) { return data, provisioning.Sign(g.fleet.priv, data) }
}

func TestApplyWithoutKeys(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, "")
	g.applier.KeysPath = filepath.Join(t.TempDir(), "none")
	rep := g.apply(t, encode(t, goodDoc()))
	if rep.Status != provisioning.StatusRefused || rep.Code != provisioning.CodeNoKeys {
		t.Fatalf("report %+v", rep)
	}
}

func TestApplyMissingPart(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, "")
	g.applier.Gateway.Users = nil
	g.applier.Gateway.Certificates = nil
	before := g.state(t)
	rep := g.apply(t, encode(t, goodDoc()))
	if rep.Status != provisioning.StatusRefused || rep.Code != provisioning.CodeUnavailable ||
		!strings.Contains(rep.Message, "client CAs, MQTT users") {
		t.Fatalf("report %+v", rep)
	}
	if g.state(t) != before {
		t.Fatal("changed")
	}
}

// failingUsers fails every write, like a full disk.
type failingUsers struct{ *auth.Users }

var errDisk = errors.New("disk full at /var/lib/edgegate/edgegate.db")

func (failingUsers) Add(auth.User) error { return errDisk }

func TestApplyFailureMidway(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, "")
	g.applier.Gateway.Users = failingUsers{g.users}
	rep := g.apply(t, encode(t, goodDoc()))
	if rep.Status != provisioning.StatusFailed || rep.Code != provisioning.CodeApplyFailed ||
		!strings.Contains(rep.Message, "applying it again is safe") || strings.Contains(rep.Message, "disk full") {
		t.Fatalf("report %+v", rep)
	}
	// Settings and client CAs come first and were applied; the report
	// says so.
	if rep.Applied.SettingsVersion != 1 || len(rep.Applied.ClientCAs) != 1 || rep.Applied.MQTTUsers != nil || rep.Applied.AdminPassword {
		t.Fatalf("applied %+v", rep.Applied)
	}
	if !strings.Contains(g.log.String(), "disk full") {
		t.Fatal("the failure is not logged")
	}
	// Once the disk is fixed, the same bundle completes the job.
	g.applier.Gateway.Users = g.users
	g.checkApplied(t, g.apply(t, encode(t, goodDoc())))
}

func TestApplySettingsSavedNotApplied(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, "")
	g.settings.applyErr = errors.New("listen tcp :1883: address already in use")
	rep := g.apply(t, encode(t, goodDoc()))
	if rep.Status != provisioning.StatusApplied || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "version 1") {
		t.Fatalf("report %+v", rep)
	}
	if !g.admin.CheckAdmin(adminPW) {
		t.Fatal("the rest of the bundle was not applied")
	}
}

// TestApplyTrustsStoredCA: a CA already in the store, not yet trusted for
// clients, is made a client CA in place rather than stored twice.
func TestApplyTrustsStoredCA(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, "")
	chain, err := certs.ParseChainPEM(fleetCA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.certs.Add(certs.Meta{ID: "fleet-ca", Tags: []string{"keep"}}, chain, nil, certs.SourceImported); err != nil {
		t.Fatal(err)
	}
	rep := g.apply(t, encode(t, goodDoc()))
	if rep.Status != provisioning.StatusApplied || len(rep.Applied.ClientCAs) != 1 || rep.Applied.ClientCAs[0] != "fleet-ca" {
		t.Fatalf("report %+v", rep)
	}
	c, err := g.certs.Get("fleet-ca")
	if err != nil || !c.ClientCA || len(c.Tags) != 1 {
		t.Fatalf("certificate %+v, %v", c, err)
	}
}

// syncBuffer is a log sink safe for concurrent use.
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
