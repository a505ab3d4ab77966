package auth

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/gateway/acl"
	"github.com/edgegate/edgegate/gateway/config"
)

func testAuthConfig() config.Auth {
	a := config.Defaults().Auth
	a.FailedLogins = config.RateLimit{Max: 3, Window: config.Duration(time.Minute)}
	return a
}

// hookEnv is a hook on a mochi server (never started) whose clients are made
// the way mochi's own tests make them: NewClient on one end of a pipe.
type hookEnv struct {
	t     *testing.T
	srv   *mqtt.Server
	hook  *Hook
	clock *fakeClock
	logs  *bytes.Buffer
}

func newHookEnv(t *testing.T, tweak func(*Options)) *hookEnv {
	t.Helper()
	e := &hookEnv{t: t, clock: newFakeClock(), logs: &bytes.Buffer{}}
	opts := Options{
		Users:  seedUsers(t),
		Auth:   testAuthConfig(),
		ACL:    config.ACL{NoMatch: "allow"},
		Logger: slog.New(slog.NewTextHandler(&syncWriter{w: e.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    e.clock.now,
		Listeners: map[string]config.Listener{
			"tcp": {Type: "tcp"},
			"tls": {Type: "tls", TLS: &config.ListenerTLS{
				ClientAuth: config.ClientAuthOptional,
				Identity:   config.Identity{ClientID: config.CertFieldCN, Username: config.CertFieldURI},
			}},
		},
	}
	if tweak != nil {
		tweak(&opts)
	}
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.hook = h
	e.srv = mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := e.srv.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Stop() })
	return e
}

// client returns a client on listener from remote, as ParseConnect leaves
// it for a v4 CONNECT by id/username.
func (e *hookEnv) client(listener, remote, id, username string, conn net.Conn) *mqtt.Client {
	if conn == nil {
		var other net.Conn
		conn, other = net.Pipe()
		e.t.Cleanup(func() { _ = conn.Close(); _ = other.Close() })
	}
	cl := e.srv.NewClient(conn, listener, id, false)
	cl.Net.Remote = remote
	cl.Properties.Username = []byte(username)
	cl.Properties.ProtocolVersion = 4
	return cl
}

func connectPacket(id, username, password string) packets.Packet {
	return packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			ClientIdentifier: id,
			Username:         []byte(username),
			UsernameFlag:     username != "",
			Password:         []byte(password),
			PasswordFlag:     password != "",
			Keepalive:        30,
			Clean:            true,
		},
	}
}

// login runs mochi's CONNECT hooks in its order.
func (e *hookEnv) login(cl *mqtt.Client, password string) bool {
	pk := connectPacket(cl.ID, string(cl.Properties.Username), password)
	if err := e.hook.OnConnect(cl, pk); err != nil {
		e.t.Fatalf("OnConnect: %v", err)
	}
	return e.hook.OnConnectAuthenticate(cl, pk)
}

func TestHookAuthenticate(t *testing.T) {
	t.Parallel()
	e := newHookEnv(t, nil)
	remote := "192.0.2.10:50000"
	if !e.login(e.client("tcp", remote, "c1", "alice", nil), "alice-pw") {
		t.Fatal("alice refused")
	}
	if e.login(e.client("tcp", remote, "c1", "", nil), "") {
		t.Error("anonymous allowed by default")
	}
	if e.login(e.client("tcp", remote, "c1", "alice", nil), "wrong-pw-1") {
		t.Error("wrong password allowed")
	}
	if e.login(e.client("tcp", remote, "c1", "alice", nil), "wrong-pw-2") {
		t.Error("wrong password allowed")
	}
	// Three failures: the address is refused even with the right password,
	// and the chain is not asked.
	if e.login(e.client("tcp", remote, "c1", "alice", nil), "alice-pw") {
		t.Error("blocked address allowed")
	}
	if !strings.Contains(e.logs.String(), "too many failed logins") {
		t.Error("refusal not logged")
	}
	if !e.login(e.client("tcp", "192.0.2.11:1", "c1", "alice", nil), "alice-pw") {
		t.Error("other address refused")
	}
	e.clock.advance(time.Minute)
	if !e.login(e.client("tcp", remote, "c1", "alice", nil), "alice-pw") {
		t.Error("still refused after the window")
	}

	// Anonymous, switched on without restart.
	a := testAuthConfig()
	a.AllowAnonymous = true
	if err := e.hook.SetAuth(a); err != nil {
		t.Fatal(err)
	}
	if !e.login(e.client("tcp", "192.0.2.12:1", "c2", "", nil), "") {
		t.Error("anonymous refused after SetAuth")
	}
	if err := e.hook.SetAuth(config.Auth{Chain: []string{"kerberos"}}); err == nil {
		t.Error("SetAuth accepted an unknown link")
	}
	if !e.login(e.client("tcp", "192.0.2.12:1", "c2", "", nil), "") {
		t.Error("a failed SetAuth changed the settings")
	}

	// Inline clients need no credentials.
	inline := e.srv.NewClient(nil, "local", "inline", true)
	if !e.hook.OnConnectAuthenticate(inline, packets.Packet{}) || !e.hook.OnACLCheck(inline, "$SYS/x", true) {
		t.Error("inline client refused")
	}

	for _, secret := range []string{"alice-pw", "wrong-pw-1", "wrong-pw-2"} {
		if strings.Contains(e.logs.String(), secret) {
			t.Errorf("password %q in the log:\n%s", secret, e.logs.String())
		}
	}
}

func TestHookCertificateIdentity(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	sensor := sensorCert(t, ca)
	e := newHookEnv(t, func(o *Options) {
		o.Auth.Chain = []string{config.AuthCertificate, config.AuthUsername}
	})

	conn := handshake(t, ca, serverTLS(t, ca, tls.VerifyClientCertIfGiven), &sensor)
	cl := e.client("tls", "192.0.2.20:1", "what-the-client-sent", "admin", conn)
	cl.Properties.ProtocolVersion = 5
	if !e.login(cl, "") {
		t.Fatal("certificate client refused")
	}
	if cl.ID != "sensor-1" || string(cl.Properties.Username) != "spiffe://plant7.example/sensor/1" {
		t.Errorf("identity = %q / %q", cl.ID, cl.Properties.Username)
	}
	if cl.Properties.Props.AssignedClientID != "sensor-1" {
		t.Errorf("v5 assigned client id = %q", cl.Properties.Props.AssignedClientID)
	}

	// The same certificate on a listener without a mapping is no identity,
	// and a client without a certificate on the mapped listener keeps what
	// it sent.
	conn2 := handshake(t, ca, serverTLS(t, ca, tls.VerifyClientCertIfGiven), &sensor)
	if cl := e.client("tcp", "192.0.2.20:2", "x", "", conn2); e.login(cl, "") || cl.ID != "x" {
		t.Errorf("unmapped listener: allowed or renamed to %q", cl.ID)
	}
	conn3 := handshake(t, ca, serverTLS(t, ca, tls.VerifyClientCertIfGiven), nil)
	cl3 := e.client("tls", "192.0.2.20:3", "x", "alice", conn3)
	if !e.login(cl3, "alice-pw") || cl3.ID != "x" || string(cl3.Properties.Username) != "alice" {
		t.Errorf("no certificate: identity %q/%q", cl3.ID, cl3.Properties.Username)
	}
}

func TestHookACL(t *testing.T) {
	t.Parallel()
	rules, err := acl.ParseConf(`
{allow, {user, "alice"}, publish, ["devices/%u/#"]}.
{deny, all, subscribe, ["secret/#"]}.
{allow, all, subscribe, ["clients/%c/#"]}.
{deny, {user, "alice"}, pubsub, ["#"]}.
`)
	if err != nil {
		t.Fatal(err)
	}
	e := newHookEnv(t, func(o *Options) { o.ACL = config.ACL{NoMatch: "allow", Rules: rules} })
	alice := e.client("tcp", "192.0.2.30:1", "c-alice", "alice", nil)
	root := e.client("tcp", "192.0.2.31:1", "c-root", "root", nil)
	bob := e.client("tcp", "192.0.2.32:1", "c-bob", "", nil)
	local := e.client("tcp", "127.0.0.1:1", "c-local", "", nil)
	local6 := e.client("tcp", "[::1]:1", "c-local6", "", nil)
	a := testAuthConfig()
	a.AllowAnonymous = true
	if err := e.hook.SetAuth(a); err != nil {
		t.Fatal(err)
	}
	for cl, pw := range map[*mqtt.Client]string{alice: "alice-pw", root: "root-pw", bob: "", local: "", local6: ""} {
		if !e.login(cl, pw) {
			t.Fatalf("%s refused", cl.ID)
		}
	}
	for _, c := range []struct {
		cl    *mqtt.Client
		topic string
		write bool
		want  bool
	}{
		{alice, "devices/alice/temp", true, true},
		{alice, "devices/bob/temp", true, false}, // the catch-all deny
		{alice, "anything", false, false},
		{alice, "secret/x", false, false},
		{alice, "$share/g/secret/x", false, false}, // shared: the inner filter is checked
		{bob, "secret/x", false, false},
		{bob, "$share/g/secret/#", false, false},
		{bob, "secret/x", true, true}, // nomatch allow
		{bob, "clients/c-bob/cmd", false, true},
		{bob, "weather", false, true},
		{bob, "$SYS/broker/uptime", false, false}, // no rule: $SYS is local only
		{bob, "$share/g/$SYS/broker/uptime", false, false},
		{local, "$SYS/broker/uptime", false, true},
		{local6, "$SYS/#", false, true},
		{root, "secret/x", false, true}, // superuser
		{root, "$SYS/#", false, true},
		{root, "devices/bob/temp", true, true},
	} {
		// Twice: the second answer may come from the cache.
		for range 2 {
			if got := e.hook.OnACLCheck(c.cl, c.topic, c.write); got != c.want {
				t.Errorf("%s %s write=%v: %v, want %v", c.cl.ID, c.topic, c.write, got, c.want)
			}
		}
	}

	// New rules apply to cached decisions at once.
	if !e.hook.OnACLCheck(bob, "weather", false) {
		t.Fatal("setup")
	}
	if err := e.hook.SetRules(config.ACL{NoMatch: "deny", Rules: rules}); err != nil {
		t.Fatal(err)
	}
	if e.hook.OnACLCheck(bob, "weather", false) {
		t.Error("stale cached decision after SetRules")
	}
	if err := e.hook.SetRules(config.ACL{NoMatch: "maybe"}); err == nil {
		t.Error("SetRules accepted nomatch maybe")
	}
	if err := e.hook.SetRules(config.ACL{Rules: acl.Rules{{}}}); err == nil {
		t.Error("SetRules accepted an invalid rule")
	}
	if e.hook.OnACLCheck(bob, "weather", false) {
		t.Error("a failed SetRules changed the rules")
	}

	// Default rules (seed 002's acl.conf): "#" and $SYS only from localhost.
	if err := e.hook.SetRules(config.ACL{NoMatch: "deny"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cl    *mqtt.Client
		topic string
		want  bool
	}{
		{bob, "#", false},
		{bob, "$SYS/#", false},
		{bob, "a/#", true},
		{local, "#", true},
		{local, "$SYS/#", true},
	} {
		if got := e.hook.OnACLCheck(c.cl, c.topic, false); got != c.want {
			t.Errorf("default rules: %s subscribe %s: %v, want %v", c.cl.ID, c.topic, got, c.want)
		}
	}

	// A session that ends forgets the superuser flag; a persistent one
	// keeps it for the deliveries queued while it is offline.
	e.hook.OnDisconnect(root, nil, false)
	if !e.hook.OnACLCheck(root, "secret/x", false) {
		t.Error("persistent session lost its superuser flag")
	}
	e.hook.OnDisconnect(root, nil, true)
	if e.hook.OnACLCheck(root, "#", false) {
		t.Error("ended session kept its superuser flag")
	}
}

func TestHookACLHTTP(t *testing.T) {
	t.Parallel()
	srv := newAuthServer(t)
	rules, err := acl.ParseConf(`{deny, all, publish, ["blocked/#"]}.`)
	if err != nil {
		t.Fatal(err)
	}
	e := newHookEnv(t, func(o *Options) {
		o.Auth.HTTP = httpAuthConfig(srv.URL, "get", config.OnErrorIgnore)
		o.Auth.HTTP.AuthReq = config.HTTPRequest{}
		o.Auth.HTTP.CacheTTL = 0
		o.ACL = config.ACL{NoMatch: "deny", Rules: rules}
	})
	alice := e.client("tcp", "192.0.2.40:1", "c-alice", "alice", nil)
	if !e.login(alice, "alice-pw") {
		t.Fatal("alice refused")
	}
	if e.hook.OnACLCheck(alice, "blocked/x", true) {
		t.Error("a rule's deny was overridden")
	}
	if n := srv.hits.Load(); n != 0 {
		t.Errorf("a matching rule still asked the backend (%d calls)", n)
	}
	for range 2 {
		if !e.hook.OnACLCheck(alice, "allowed/topic", true) {
			t.Error("acl_req allow ignored")
		}
	}
	if n := srv.hits.Load(); n != 2 {
		t.Errorf("HTTP answers cached per client: %d calls, want 2", n)
	}
	_, form := srv.lastRequest()
	if form.Get("access") != "2" || form.Get("topic") != "allowed/topic" || form.Get("username") != "alice" || form.Get("clientid") != "c-alice" || form.Get("ipaddr") != "192.0.2.40" {
		t.Errorf("acl_req params %v", form)
	}
	if e.hook.OnACLCheck(alice, "other", false) {
		t.Error("acl_req deny ignored")
	}
	if _, form := srv.lastRequest(); form.Get("access") != "1" {
		t.Errorf("subscribe access = %q, want 1", form.Get("access"))
	}
	// $SYS stays local even if the backend would allow it.
	if e.hook.OnACLCheck(alice, "$SYS/broker", false) {
		t.Error("$SYS allowed to a remote client")
	}
}

func TestHookForgetsCollectedClients(t *testing.T) {
	e := newHookEnv(t, nil)
	func() {
		cl := e.client("tcp", "192.0.2.50:1", "c1", "alice", nil)
		if !e.login(cl, "alice-pw") {
			t.Fatal("refused")
		}
	}()
	count := func() int {
		n := 0
		e.hook.clients.Range(func(any, any) bool { n++; return true })
		return n
	}
	for i := 0; count() != 0; i++ {
		if i == 1000 {
			t.Fatal("client state outlived its client")
		}
		runtime.GC()
		runtime.Gosched()
	}
}

// TestHookBroker runs the hook in a mochi broker with a TLS listener: the
// certificate's identity becomes the session key, so a reconnect with the
// same certificate resumes the session whatever client id it sends.
func TestHookBroker(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	sensor := sensorCert(t, ca)
	h, err := New(Options{
		Users: seedUsers(t),
		Auth:  testAuthConfig(),
		Listeners: map[string]config.Listener{"tls": {Type: "tls", TLS: &config.ListenerTLS{
			ClientAuth: config.ClientAuthOptional,
			Identity:   config.Identity{ClientID: config.CertFieldCN},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	srvTLS := serverTLS(t, ca, tls.VerifyClientCertIfGiven)
	srvTLS.SessionTicketsDisabled = false
	l := listeners.NewTCP(listeners.Config{Type: "tcp", ID: "tls", Address: "127.0.0.1:0", TLSConfig: srvTLS})
	if err := srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })

	var mu sync.Mutex
	connect := func(cert *tls.Certificate, id string, clean bool) (sessionPresent bool, code byte) {
		mu.Lock()
		defer mu.Unlock()
		conf := &tls.Config{RootCAs: ca.pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
		if cert != nil {
			conf.Certificates = []tls.Certificate{*cert}
		}
		conn, err := tls.Dial("tcp", l.Address(), conf)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		pk := connectPacket(id, "", "")
		pk.Connect.Clean = clean
		var buf bytes.Buffer
		if err := pk.ConnectEncode(&buf); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(buf.Bytes()); err != nil {
			t.Fatal(err)
		}
		ack := make([]byte, 4)
		if _, err := io.ReadFull(bufio.NewReader(conn), ack); err != nil {
			t.Fatal(err)
		}
		if ack[0] != packets.Connack<<4 || ack[1] != 2 {
			t.Fatalf("not a v4 CONNACK: % x", ack)
		}
		return ack[2]&1 == 1, ack[3]
	}

	if _, code := connect(nil, "intruder", true); code == 0 {
		t.Error("client without certificate or password accepted")
	}
	if present, code := connect(&sensor, "first-id", false); code != 0 || present {
		t.Fatalf("first connect: code %d present %v", code, present)
	}
	if _, ok := srv.Clients.Get("sensor-1"); !ok {
		t.Error("session not kept under the certificate's identity")
	}
	if present, code := connect(&sensor, "second-id", false); code != 0 || !present {
		t.Errorf("reconnect with another client id: code %d, session present %v", code, present)
	}
}

func BenchmarkOnACLCheck(b *testing.B) {
	h, err := New(Options{Auth: testAuthConfig(), ACL: config.ACL{NoMatch: "allow"}})
	if err != nil {
		b.Fatal(err)
	}
	srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	cl := srv.NewClient(c1, "tcp", "bench", false)
	cl.Net.Remote = "192.0.2.1:1"
	a := testAuthConfig()
	a.AllowAnonymous = true
	_ = h.SetAuth(a)
	if !h.OnConnectAuthenticate(cl, connectPacket("bench", "", "")) {
		b.Fatal("refused")
	}
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			h.OnACLCheck(cl, "plant/7/line/3/temperature", false)
		}
	})
	b.Run("match", func(b *testing.B) {
		st := h.state(cl)
		s := h.settings.Load()
		for b.Loop() {
			h.decide(s, st, "plant/7/line/3/temperature", false)
		}
	})
}
