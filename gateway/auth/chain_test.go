package auth

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/edgegate/edgegate/gateway/config"
)

// fastHash hashes with a low work factor, for tests.
func fastHash(t testing.TB, pw string) string {
	t.Helper()
	h, err := NewHash(config.HashPBKDF2SHA256, pw, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// seedUsers returns a store with alice (password alice-pw), root
// (superuser, root-pw), certroot (superuser, no password) and the client id
// entry sensor-9 (sensor-pw).
func seedUsers(t testing.TB) *Users {
	t.Helper()
	users := newTestUsers(t)
	for _, u := range []User{
		{Username: "alice", PasswordHash: fastHash(t, "alice-pw")},
		{Username: "root", PasswordHash: fastHash(t, "root-pw"), Superuser: true},
		{Username: "certroot", Superuser: true},
	} {
		if err := users.Add(u); err != nil {
			t.Fatal(err)
		}
	}
	if err := users.AddClientID(ClientIDEntry{ClientID: "sensor-9", PasswordHash: fastHash(t, "sensor-pw")}); err != nil {
		t.Fatal(err)
	}
	return users
}

func TestChain(t *testing.T) {
	t.Parallel()
	users := seedUsers(t)
	const (
		C = config.AuthCertificate
		U = config.AuthUsername
		I = config.AuthClientID
		H = config.AuthHTTP
		A = config.AuthAnonymous
	)
	cert := func(u, c string) certIdentity { return certIdentity{Username: u, ClientID: c} }
	cases := []struct {
		name      string
		links     []string
		anonymous bool
		l         login
		want      verdict
		super     bool
		link      string
	}{
		{"password ok", []string{U, A}, false, login{username: "alice", password: "alice-pw"}, allow, false, U},
		{"superuser password", []string{U}, false, login{username: "root", password: "root-pw"}, allow, true, U},
		{"wrong password denies before anonymous", []string{U, A}, true, login{username: "alice", password: "nope"}, deny, false, U},
		{"anonymous first lets a wrong password in", []string{A, U}, true, login{username: "alice", password: "nope"}, allow, false, A},
		{"anonymous first denies a right password", []string{A, U}, false, login{username: "alice", password: "alice-pw"}, deny, false, A},
		{"unknown user reaches anonymous", []string{U, I, A}, true, login{username: "mallory", password: "x"}, allow, false, A},
		{"unknown user, anonymous off", []string{U, I, A}, false, login{username: "mallory", password: "x"}, deny, false, A},
		{"all ignore", []string{C, U, I, H}, true, login{username: "mallory", clientID: "x"}, deny, false, ""},
		{"empty chain", nil, true, login{}, deny, false, ""},
		{"no password for a user", []string{U, A}, true, login{username: "alice"}, deny, false, U},
		{"user without password hash", []string{U, A}, true, login{username: "certroot", password: ""}, deny, false, U},
		{"clientid entry", []string{U, I}, false, login{clientID: "sensor-9", password: "sensor-pw"}, allow, false, I},
		{"clientid wrong password", []string{I, A}, true, login{clientID: "sensor-9", password: "x"}, deny, false, I},
		{"username decides before clientid", []string{U, I}, false, login{username: "alice", password: "sensor-pw", clientID: "sensor-9"}, deny, false, U},
		{"clientid decides before username", []string{I, U}, false, login{username: "alice", password: "sensor-pw", clientID: "sensor-9"}, allow, false, I},
		{"certificate", []string{C, U}, false, login{clientID: "sensor-1", cert: cert("", "sensor-1")}, allow, false, C},
		{"certificate before a wrong password", []string{C, U}, false, login{username: "alice", password: "x", cert: cert("", "c")}, allow, false, C},
		{"wrong password before certificate", []string{U, C}, false, login{username: "alice", password: "x", cert: cert("", "c")}, deny, false, U},
		{"certificate username is superuser", []string{C}, false, login{username: "certroot", cert: cert("certroot", "")}, allow, true, C},
		{"sent username is not a certificate's superuser", []string{C}, false, login{username: "root", cert: cert("", "sensor-1")}, allow, false, C},
		{"no certificate", []string{C, A}, false, login{username: "alice"}, deny, false, A},
		{"http not configured ignores", []string{H, A}, true, login{username: "alice"}, allow, false, A},
		{"long username ignored", []string{U, A}, true, login{username: string(make([]byte, 300))}, allow, false, A},
	}
	for _, c := range cases {
		backend, err := newHTTPBackend(config.HTTPAuth{}, newHTTPClient(), slog.New(slog.DiscardHandler), newFakeClock().now)
		if err != nil {
			t.Fatal(err)
		}
		ch, err := newChain(config.Auth{Chain: c.links, AllowAnonymous: c.anonymous}, users, backend, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		c.l.addr = netip.MustParseAddr("192.0.2.7")
		got := ch.authenticate(context.Background(), c.l)
		if got.verdict != c.want || got.superuser != c.super || got.link != c.link {
			t.Errorf("%s: got %v superuser=%v by %q; want %v superuser=%v by %q", c.name, got.verdict, got.superuser, got.link, c.want, c.super, c.link)
		}
	}
	if _, err := newChain(config.Auth{Chain: []string{"ldap"}}, users, nil, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("unknown link accepted")
	}
}
