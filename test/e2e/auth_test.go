package e2e

import (
	"context"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"hash"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// loginOutcome says whether a login should be accepted.
type loginOutcome bool

const (
	admitted loginOutcome = true
	refused  loginOutcome = false
)

// checkLogin connects with the Go MQTT 5 client and, when mosquitto is
// available, with mosquitto_pub (MQTT 3.1.1), and checks both get the
// expected answer. A refusal must be a CONNACK with a failure code: 0x86
// (bad user name or password) or 0x87 (not authorized) for MQTT 5, and
// mosquitto must report "bad user name or password" or "not authorised".
func checkLogin(ctx context.Context, t *testing.T, d *daemon, clientID, username, password string, want loginOutcome) {
	t.Helper()
	g, err := connectGo(ctx, t, tcpDialer(d.addr("tcp"), ""), connOpts{clientID: clientID, username: username, password: password})
	switch {
	case want == admitted && err != nil:
		t.Errorf("Go client %q user %q: refused (%v), want admitted", clientID, username, err)
	case want == refused && err == nil:
		t.Errorf("Go client %q user %q: admitted, want refused", clientID, username)
		g.close()
	case want == refused:
		if g == nil || g.connack == nil {
			t.Errorf("Go client %q user %q: refused without CONNACK: %v", clientID, username, err)
		} else if rc := g.connack.ReasonCode; rc != 0x86 && rc != 0x87 {
			t.Errorf("Go client %q user %q: CONNACK reason 0x%02x, want 0x86 bad username or password or 0x87 not authorized", clientID, username, rc)
		}
	default:
		g.close()
	}
	if !haveMosquitto(t) {
		return
	}
	args := append(mosqTCP(d, "tcp"), "-i", clientID+"-mq", "-q", "1", "-t", "e2e/login", "-m", "hello")
	if username != "" {
		args = append(args, "-u", username)
	}
	if password != "" {
		args = append(args, "-P", password)
	}
	r := runMosquitto(ctx, t, "mosquitto_pub", args...)
	switch {
	case want == admitted && r.code != 0:
		t.Errorf("mosquitto_pub user %q: exit %d (%s), want admitted", username, r.code, strings.TrimSpace(r.stderr))
	case want == refused && r.code == 0:
		t.Errorf("mosquitto_pub user %q: admitted, want refused", username)
	case want == refused && !strings.Contains(r.stderr, "bad user name or password") && !strings.Contains(r.stderr, "not authorised"):
		t.Errorf("mosquitto_pub user %q: refused with %q, want \"bad user name or password\" or \"not authorised\"", username, r.stderr)
	}
}

// TestAuthChainOrder proves the chain's links are asked in the configured
// order and the first that does not ignore decides: with anonymous first
// and allow_anonymous=false a valid user is denied; with username first the
// same user is admitted; with anonymous first and allowed, a wrong password
// never reaches the username link; a clientid/password entry is checked by
// the clientid link.
func TestAuthChainOrder(t *testing.T) {
	t.Parallel()
	type login struct {
		clientID, username, password string
		want                         loginOutcome
	}
	const alicePass = "Alice-Pass-1"
	cases := []struct {
		name   string
		chain  []string
		anon   bool
		logins []login
	}{
		{"anonymous first, anonymous off", []string{"anonymous", "username"}, false, []login{
			{"c1", "alice", alicePass, refused},
			{"c2", "", "", refused},
		}},
		{"username first, anonymous off", []string{"username", "anonymous"}, false, []login{
			{"c1", "alice", alicePass, admitted},
			{"c2", "alice", "not-her-password", refused},
			{"c3", "bob", "whatever", refused},
			{"c4", "", "", refused},
		}},
		{"anonymous first, anonymous on", []string{"anonymous", "username"}, true, []login{
			{"c1", "alice", "not-her-password", admitted},
			{"c2", "", "", admitted},
		}},
		{"username first, anonymous on", []string{"username", "anonymous"}, true, []login{
			{"c1", "alice", alicePass, admitted},
			{"c2", "alice", "not-her-password", refused},
			{"c3", "bob", "whatever", admitted},
			{"c4", "", "", admitted},
		}},
		{"clientid link", []string{"clientid", "anonymous"}, false, []login{
			{"dev-7", "any", "Dev7-Pass", admitted},
			{"dev-7", "any", "wrong", refused},
			{"dev-8", "alice", alicePass, refused}, // the username link is not in this chain
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t, 60*time.Second)
			d := startDaemon(t, obj{"auth": obj{
				"chain": c.chain, "allow_anonymous": c.anon,
				"failed_logins": obj{"max": 1000, "window": "1m"},
			}})
			d.addUser(t, "alice", alicePass, false)
			d.api(t, "POST", "/api/v1/clientids", obj{"clientid": "dev-7", "password": "Dev7-Pass"}, http.StatusCreated, nil)
			d.api(t, "POST", "/api/v1/clientids", obj{"clientid": "dev-7-mq", "password": "Dev7-Pass"}, http.StatusCreated, nil)
			for _, l := range c.logins {
				checkLogin(ctx, t, d, l.clientID, l.username, l.password, l.want)
			}
		})
	}
}

// bcryptHash is bcrypt (cost 6) of "Bcrypt-Pass-9", as an EMQ database
// would hold it.
const bcryptHash = "$2a$06$sRk4awVAajEJmLiFhl76zOvdF/0ZUUur/3Y6k5hwsTDBiWC2iClFm"

func digestHex(h func() hash.Hash, parts ...string) string {
	d := h()
	for _, p := range parts {
		d.Write([]byte(p))
	}
	return hex.EncodeToString(d.Sum(nil))
}

// TestPasswordHashKinds imports a user for every password hash kind
// (plain, md5, sha, sha256, sha512 with no salt, salt prefix and salt
// suffix, EMQ's "salt sha256" spelling, pbkdf2 with sha256 and sha1,
// bcrypt) through the admin API, plus one with a password hashed by
// edgegate, and logs each in with mosquitto_pub -u/-P and the Go client:
// the right password is admitted, a wrong one refused. The API never shows
// a hash.
func TestPasswordHashKinds(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 90*time.Second)
	d := startDaemon(t, obj{"auth": obj{"failed_logins": obj{"max": 1000, "window": "1m"}}})

	pbkdf2Hex := func(h func() hash.Hash, pw, salt string, iter, n int) string {
		k, err := pbkdf2.Key(h, pw, []byte(salt), iter, n)
		if err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(k)
	}
	type user struct {
		name, password string
		hash           map[string]any // nil: plain password field
	}
	imp := func(kind, hash, salt, pos string) map[string]any {
		return obj{"kind": kind, "hash": hash, "salt": salt, "salt_position": pos}
	}
	users := []user{
		{"u-plain", "Plain-Pass-1", imp("plain", "Plain-Pass-1", "", "")},
		{"u-md5", "Md5-Pass-1", imp("md5", digestHex(md5.New, "Md5-Pass-1"), "", "")},
		{"u-md5-prefix", "Md5-Pass-2", imp("md5", digestHex(md5.New, "s4lt", "Md5-Pass-2"), "s4lt", "prefix")},
		{"u-sha-suffix", "Sha-Pass-1", imp("sha", digestHex(sha1.New, "Sha-Pass-1", "pepper"), "pepper", "suffix")},
		{"u-sha256", "Sha256-Pass-1", imp("sha256", digestHex(sha256.New, "Sha256-Pass-1"), "", "")},
		{"u-sha256-prefix", "Sha256-Pass-2", imp("sha256", digestHex(sha256.New, "NaCl", "Sha256-Pass-2"), "NaCl", "prefix")},
		{"u-salt-sha256", "Sha256-Pass-3", imp("salt sha256", digestHex(sha256.New, "emq", "Sha256-Pass-3"), "emq", "")},
		{"u-sha512-suffix", "Sha512-Pass-1", imp("sha512", digestHex(sha512.New, "Sha512-Pass-1", "xyz"), "xyz", "suffix")},
		{"u-pbkdf2-sha256", "Pbkdf2-Pass-1", imp("pbkdf2,sha256,1000,32", pbkdf2Hex(sha256.New, "Pbkdf2-Pass-1", "pbsalt", 1000, 32), "pbsalt", "")},
		{"u-pbkdf2-sha1", "Pbkdf2-Pass-2", imp("pbkdf2,sha,1000,20", pbkdf2Hex(sha1.New, "Pbkdf2-Pass-2", "pbsalt2", 1000, 20), "pbsalt2", "")},
		{"u-bcrypt", "Bcrypt-Pass-9", imp("bcrypt", bcryptHash, "", "")},
		{"u-new", "New-Pass-1", nil},
	}
	for _, u := range users {
		body := obj{"username": u.name}
		if u.hash == nil {
			body["password"] = u.password
		} else {
			body["password_hash"] = u.hash
		}
		d.api(t, "POST", "/api/v1/users", body, http.StatusCreated, nil)
	}
	listing := string(d.api(t, "GET", "/api/v1/users", nil, http.StatusOK, nil))
	for _, u := range users {
		if u.hash != nil && u.hash["hash"] != u.password && strings.Contains(listing, u.hash["hash"].(string)) {
			t.Errorf("GET /api/v1/users shows the hash of %s", u.name)
		}
		if strings.Contains(listing, u.password) {
			t.Errorf("GET /api/v1/users shows the password of %s", u.name)
		}
	}
	for _, u := range users {
		t.Run(u.name, func(t *testing.T) {
			checkLogin(ctx, t, d, u.name, u.name, u.password, admitted)
			checkLogin(ctx, t, d, u.name+"-x", u.name, u.password+"x", refused)
		})
	}
}

// TestCertificateIdentity proves two-way TLS identity mapping: with
// identity.username "cn" and identity.clientid "uri" a client's username
// and client id come from its certificate, whatever it sent (checked in
// GET /api/v1/clients and in the MQTT 5 CONNACK's assigned client id); the
// certificate link admits it with anonymous off; and an ACL rule with %u
// confines it to its own topics. A user record named like a certificate's
// CN can make that identity a superuser.
func TestCertificateIdentity(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 90*time.Second)
	rules := []any{
		obj{"permission": "allow", "who": "all", "access": "pubsub", "topics": []any{"sensors/%u/#"}},
		obj{"permission": "deny", "who": "all", "access": "pubsub", "topics": []any{"sensors/#"}},
	}
	d := newDaemon(t, obj{
		"listeners": obj{"tls": obj{"tls": obj{
			"client_auth": "required", "client_ca": "local",
			"identity": obj{"username": "cn", "clientid": "uri"},
		}}},
		"acl": obj{"rules": rules},
	}, daemonOptions{})
	d.start()
	d.stop()
	const uri = "spiffe://edgegate.test/sensor/42"
	p := openLocalCA(t, d,
		clientCertRequest{name: "s42", cn: "sensor-42", uris: []string{uri}},
		clientCertRequest{name: "boss", cn: "boss"},
	)
	d.start()
	d.setupAdmin(t)
	// boss: a superuser with no password, only reachable through its certificate.
	d.api(t, "POST", "/api/v1/users", obj{"username": "boss", "superuser": true}, http.StatusCreated, nil)
	s42 := p.certs["s42"]
	dial := tlsDialer(d.addr("tls"), p.tlsConfig(&s42))

	g := mustConnectGo(ctx, t, dial, connOpts{clientID: "claimed-id", username: "claimed-user"})
	if g.connack.Properties == nil || g.connack.Properties.AssignedClientID != uri {
		var got string
		if g.connack.Properties != nil {
			got = g.connack.Properties.AssignedClientID
		}
		t.Errorf("CONNACK assigned client id %q, want %q (from the URI SAN)", got, uri)
	}
	var clients []clientInfo
	d.api(t, "GET", "/api/v1/clients", nil, http.StatusOK, &clients)
	var found *clientInfo
	for i, c := range clients {
		if c.ClientID == "claimed-id" {
			t.Errorf("the client kept the id it sent: %+v", c)
		}
		if c.ClientID == uri {
			found = &clients[i]
		}
	}
	if found == nil {
		t.Fatalf("no client %q in GET /api/v1/clients: %+v", uri, clients)
	}
	if found.Username != "sensor-42" {
		t.Errorf("client %q has username %q, want the certificate CN sensor-42", uri, found.Username)
	}
	if !strings.Contains(found.TLSIdentity, "CN=sensor-42") {
		t.Errorf("client %q tls_identity %q, want the certificate subject", uri, found.TLSIdentity)
	}

	// %u: its own subtree only.
	g.mustSubscribe(ctx, 1, "sensors/sensor-42/#")
	if codes, err := g.subscribe(ctx, 1, "sensors/sensor-43/#"); err != nil || len(codes) != 1 || codes[0] < 0x80 {
		t.Errorf("subscribe to another sensor's topics: codes %v err %v, want a refusal (>= 0x80)", codes, err)
	}
	boss := p.certs["boss"]
	observer := mustConnectGo(ctx, t, tlsDialer(d.addr("tls"), p.tlsConfig(&boss)), connOpts{clientID: "observer"})
	observer.mustSubscribe(ctx, 1, "sensors/#") // superuser through its certificate
	if err := g.publish(ctx, "sensors/sensor-43/temp", 1, false, "forged"); err == nil {
		t.Logf("publish to another sensor's topic was acknowledged without error (MQTT 5 may still drop it)")
	}
	g.mustPublish(ctx, "sensors/sensor-42/temp", 1, false, "21.5")
	observer.expect(ctx, "sensors/sensor-42/temp", "21.5") // and not "forged" before it
	g.expect(ctx, "sensors/sensor-42/temp", "21.5")

	if !haveMosquitto(t) {
		return
	}
	// Every connection with this certificate has the same client id, so
	// the Go client leaves first (a second one would take its session over).
	g.close()
	tlsArgs := []string{"-h", "127.0.0.1", "-p", d.port("tls"), "--cafile", p.rootFile}
	mosq := append(slices.Clone(tlsArgs), "--cert", s42.certFile, "--key", s42.keyFile)
	ms := startMosqSub(ctx, t, append(mosq, "-i", "ignored-id", "-q", "1", "-t", "sensors/sensor-42/#", "-C", "1", "-W", "20")...)
	if got := ms.waitSubscribed(ctx); got != "1" {
		t.Fatalf("mosquitto_sub with the certificate: granted %q, want 1", got)
	}
	waitUntil(ctx, t, "the mosquitto client to show with the certificate's identity", func() bool {
		var c clientInfo
		status, body := d.apiRaw(t, "GET", "/api/v1/clients/"+url.PathEscape(uri), "", nil, true)
		return status == http.StatusOK && json.Unmarshal(body, &c) == nil && c.Connected && c.Username == "sensor-42"
	})
	// boss has no URI SAN: it keeps the client id it sends.
	mosqPub(ctx, t, append(slices.Clone(tlsArgs), "--cert", boss.certFile, "--key", boss.keyFile,
		"-i", "boss-pub", "-q", "1", "-t", "sensors/sensor-42/hum", "-m", "40")...)
	if got, want := ms.wait(ctx), []string{msgLine(false, 1, "sensors/sensor-42/hum", "40")}; !equalStrings(got, want) {
		t.Errorf("mosquitto_sub got %q, want %q", got, want)
	}
	denied := startMosqSub(ctx, t, append(mosq, "-q", "1", "-t", "sensors/sensor-43/#", "-C", "1", "-W", "20")...)
	if got := denied.waitSubscribed(ctx); got != "128" {
		t.Errorf("mosquitto_sub to another sensor's topics: granted %q, want 128 (refused)", got)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestWrongPassword proves a wrong password gets the protocol's refusal
// (MQTT 5 CONNACK 0x86/0x87, MQTT 3.1.1 return code 4/5, mosquitto's
// message), that the daemon logs the refusal without the password even at
// debug level, that other clients are not affected, and that failed logins
// are rate-limited per IP address.
func TestWrongPassword(t *testing.T) {
	t.Parallel()
	const (
		right = "Carol-Right-Pass-51"
		wrong = "Wr0ng-Secret-Marker-93"
	)
	t.Run("refused and not logged", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, 60*time.Second)
		d := startDaemon(t, obj{
			"log":  obj{"level": "debug"},
			"auth": obj{"failed_logins": obj{"max": 1000, "window": "1m"}},
		})
		d.addUser(t, "carol", right, false)
		bystander := mustConnectGo(ctx, t, tcpDialer(d.addr("tcp"), ""), connOpts{clientID: "bystander", username: "carol", password: right})
		bystander.mustSubscribe(ctx, 1, "e2e/bystander")

		checkLogin(ctx, t, d, "intruder", "carol", wrong, refused)
		raw := dialRaw(ctx, t, tcpDialer(d.addr("tcp"), ""))
		code, _, err := raw.connect(rawOpts{clientID: "intruder-v3", username: "carol", password: wrong, clean: true})
		if err != nil {
			t.Fatalf("raw CONNECT: %v", err)
		}
		if code != connackBadCredentials && code != connackNotAuthorized {
			t.Errorf("MQTT 3.1.1 CONNACK return code %d, want 4 (bad user name or password) or 5 (not authorized)", code)
		}

		bystander.mustPublish(ctx, "e2e/bystander", 1, false, "still here")
		bystander.expect(ctx, "e2e/bystander", "still here")

		logs, err := d.waitLog(ctx, func(s string) bool { return strings.Contains(s, "intruder-v3") })
		if err != nil {
			t.Fatalf("no log line about the refused login of intruder-v3: %v", err)
		}
		for _, secret := range []string{wrong, right} {
			if strings.Contains(logs, secret) {
				t.Errorf("the daemon's log contains a password (%q)", secret)
			}
		}
	})
	t.Run("rate limited per IP", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, 60*time.Second)
		d := startDaemon(t, obj{"auth": obj{"failed_logins": obj{"max": 3, "window": "10m"}}})
		d.addUser(t, "carol", right, false)
		for i := range 3 {
			raw := dialRaw(ctx, t, tcpDialer(d.addr("tcp"), ""))
			if code, _, err := raw.connect(rawOpts{clientID: "guess", username: "carol", password: wrong, clean: true}); err != nil || code == connackAccepted {
				t.Fatalf("wrong password %d: code %d err %v, want refused", i+1, code, err)
			}
		}
		raw := dialRaw(ctx, t, tcpDialer(d.addr("tcp"), ""))
		code, _, err := raw.connect(rawOpts{clientID: "guess", username: "carol", password: right, clean: true})
		if err == nil && code == connackAccepted {
			t.Errorf("after 3 failed logins (max 3) the right password was accepted from the same address; want it blocked for the window")
		}
		// Another loopback address is another IP: not blocked.
		other := dialRaw(ctx, t, tcpDialer(d.addr("tcp"), "127.0.0.2"))
		other.mustConnect(rawOpts{clientID: "other-ip", username: "carol", password: right, clean: true})
	})
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
