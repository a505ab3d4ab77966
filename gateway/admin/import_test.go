package admin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgegate/edgegate/gateway/auth"
	"github.com/edgegate/edgegate/gateway/config"
)

func mustPBKDF2(t *testing.T, password string, iterations int) string {
	t.Helper()
	h, err := auth.NewHash(config.HashPBKDF2SHA256, password, iterations)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestCheckAdminPasswordHash(t *testing.T) {
	t.Parallel()
	good := mustPBKDF2(t, "Provisioned pw 1", 10_000)
	f := strings.Split(good, "$")
	key32 := f[3]
	cases := []struct {
		name, hash string
		ok         bool
	}{
		{"made by NewHash", good, true},
		{"more iterations", mustPBKDF2(t, "x", 20_000), true},
		{"too few iterations", mustPBKDF2(t, "x", 9_999), false},
		{"iterations with a leading zero", "pbkdf2-sha256$010000$" + f[2] + "$" + key32, false},
		{"short salt", "pbkdf2-sha256$10000$c2FsdA$" + key32, false},
		{"padded salt", "pbkdf2-sha256$10000$" + f[2] + "==$" + key32, false},
		{"short key", "pbkdf2-sha256$10000$" + f[2] + "$AAAA", false},
		{"sha512", "pbkdf2-sha512$10000$" + f[2] + "$" + key32, false},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", false},
		{"empty", "", false},
		{"password", "Provisioned pw 1", false},
	}
	for _, tc := range cases {
		err := CheckAdminPasswordHash(tc.hash)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidPasswordHash)) {
			t.Errorf("%s: CheckAdminPasswordHash = %v; want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestSetAdminPasswordHash(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	c := openCreds(t, db, nil)
	code, _, err := c.EnsureSetupCode()
	if err != nil || code == "" {
		t.Fatalf("EnsureSetupCode = %q, %v", code, err)
	}
	if err := c.SetAdminPasswordHash("pbkdf2-sha256$1000$x$y"); !errors.Is(err, ErrInvalidPasswordHash) {
		t.Fatalf("invalid hash: %v", err)
	}
	if done, _ := c.SetupDone(); done {
		t.Fatal("an invalid hash completed the setup")
	}

	// Before setup, a hash completes it: the code is used up.
	if err := c.SetAdminPasswordHash(mustPBKDF2(t, "First provisioned 1", 10_000)); err != nil {
		t.Fatal(err)
	}
	if !c.CheckAdmin("First provisioned 1") {
		t.Fatal("the provisioned password does not log in")
	}
	if code, _, _ := c.EnsureSetupCode(); code != "" {
		t.Fatal("a setup code is still offered")
	}
	if err := c.CompleteSetup(code, "Another password 1"); !errors.Is(err, ErrSetupDone) {
		t.Fatalf("CompleteSetup after provisioning = %v", err)
	}

	// After setup it replaces the password, and the cached check of the
	// old one no longer passes.
	if err := c.SetAdminPasswordHash(mustPBKDF2(t, "Second provisioned 2", 10_000)); err != nil {
		t.Fatal(err)
	}
	if c.CheckAdmin("First provisioned 1") || !c.CheckAdmin("Second provisioned 2") {
		t.Fatal("the password was not replaced")
	}
}

func TestImportAPIKey(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	clk := &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	c := openCreds(t, db, clk)
	secret := "made-by-the-fleet-operator"
	sum := sha256.Sum256([]byte(secret))
	hash := hex.EncodeToString(sum[:])

	bad := []struct {
		name string
		key  APIKey
		hash string
		want error
	}{
		{"id without prefix", APIKey{ID: "fleet", Name: "n"}, hash, ErrInvalidAPIKey},
		{"id with upper case", APIKey{ID: "egk_Fleet", Name: "n"}, hash, ErrInvalidAPIKey},
		{"prefix alone", APIKey{ID: "egk_", Name: "n"}, hash, ErrInvalidAPIKey},
		{"short hash", APIKey{ID: "egk_fleet", Name: "n"}, hash[:62], ErrInvalidAPIKey},
		{"hash not hex", APIKey{ID: "egk_fleet", Name: "n"}, strings.Repeat("g", 64), ErrInvalidAPIKey},
		{"no name", APIKey{ID: "egk_fleet", Name: " "}, hash, ErrInvalidAPIKeyName},
		{"unknown scope", APIKey{ID: "egk_fleet", Name: "n", Scopes: []string{"root"}}, hash, ErrInvalidScope},
	}
	for _, tc := range bad {
		if err := c.ImportAPIKey(tc.key, tc.hash); !errors.Is(err, tc.want) {
			t.Errorf("%s: ImportAPIKey = %v; want %v", tc.name, err, tc.want)
		}
	}
	if keys, _ := c.ListAPIKeys(); len(keys) != 0 {
		t.Fatalf("refused keys were stored: %+v", keys)
	}

	key := APIKey{ID: "egk_fleet-monitor_1", Name: " monitor ", Scopes: []string{ScopeCertificates, ScopeBroker, ScopeBroker}}
	if err := c.ImportAPIKey(key, strings.ToUpper(hash)); err != nil {
		t.Fatal(err)
	}
	got, ok := c.CheckAPIKey(key.ID, secret)
	if !ok || got.Name != "monitor" || strings.Join(got.Scopes, ",") != "broker,certificates" || !got.Created.Equal(clk.Now()) {
		t.Fatalf("CheckAPIKey = %+v, %v", got, ok)
	}
	if _, ok := c.CheckAPIKey(key.ID, "wrong"); ok {
		t.Fatal("a wrong secret passed")
	}

	// Importing it again later replaces name and scopes, and keeps when
	// it was created and last used.
	created, lastUsed := got.Created, got.LastUsed
	clk.Add(time.Hour)
	if err := c.ImportAPIKey(APIKey{ID: key.ID, Name: "renamed"}, hash); err != nil {
		t.Fatal(err)
	}
	keys, err := c.ListAPIKeys()
	if err != nil || len(keys) != 1 {
		t.Fatalf("ListAPIKeys = %+v, %v", keys, err)
	}
	if k := keys[0]; k.Name != "renamed" || k.Scopes != nil || !k.Created.Equal(created) || !k.LastUsed.Equal(lastUsed) {
		t.Fatalf("replaced key %+v", k)
	}
}
