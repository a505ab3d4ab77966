package admin

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// testIterations keeps PBKDF2 cheap in tests (auth's minimum).
const testIterations = 1000

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openDB(t *testing.T) (*bolt.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func openCreds(t *testing.T, db *bolt.DB, clk *clock) *Credentials {
	t.Helper()
	o := Options{HashIterations: testIterations}
	if clk != nil {
		o.Now = clk.Now
	}
	c, err := Open(db, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const goodPassword = "correct horse 42"

var codeFormat = regexp.MustCompile(`^[ABCDEFGHJKLMNPQRSTUVWXYZ2-9]{4}-[ABCDEFGHJKLMNPQRSTUVWXYZ2-9]{4}-[ABCDEFGHJKLMNPQRSTUVWXYZ2-9]{4}$`)

func TestSetupCodeLifecycle(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)

	first := openCreds(t, db, nil)
	code1, fresh, err := first.EnsureSetupCode()
	if err != nil || !fresh {
		t.Fatalf("EnsureSetupCode = %q, %v, %v; want a fresh code", code1, fresh, err)
	}
	if !codeFormat.MatchString(code1) {
		t.Fatalf("setup code %q is not XXXX-XXXX-XXXX from the unambiguous alphabet", code1)
	}
	again, fresh, err := first.EnsureSetupCode()
	if err != nil || fresh || again != code1 {
		t.Fatalf("second EnsureSetupCode in the same process = %q, %v, %v; want %q, false", again, fresh, err, code1)
	}

	// A restart (a new Credentials on the same database) makes a new code
	// and the old one stops working.
	second := openCreds(t, db, nil)
	code2, fresh, err := second.EnsureSetupCode()
	if err != nil || !fresh || code2 == code1 {
		t.Fatalf("EnsureSetupCode after restart = %q, %v, %v; want a fresh code other than %q", code2, fresh, err, code1)
	}
	if err := second.CompleteSetup(code1, goodPassword); !errors.Is(err, ErrBadSetupCode) {
		t.Fatalf("CompleteSetup with the previous run's code = %v; want ErrBadSetupCode", err)
	}
	if err := second.CompleteSetup("AAAA-AAAA-AAAA", goodPassword); !errors.Is(err, ErrBadSetupCode) {
		t.Fatalf("CompleteSetup with a wrong code = %v; want ErrBadSetupCode", err)
	}
	if err := second.CompleteSetup(code2, "short"); !errors.Is(err, ErrWeakPassword) {
		t.Fatalf("CompleteSetup with a weak password = %v; want ErrWeakPassword", err)
	}
	if second.CheckAdmin(goodPassword) {
		t.Fatal("CheckAdmin true before setup")
	}
	// Typed in lower case without dashes still works.
	typed := strings.ToLower(strings.ReplaceAll(code2, "-", ""))
	if err := second.CompleteSetup(typed, goodPassword); err != nil {
		t.Fatalf("CompleteSetup: %v", err)
	}
	if err := second.CompleteSetup(code2, goodPassword); !errors.Is(err, ErrSetupDone) {
		t.Fatalf("CompleteSetup a second time = %v; want ErrSetupDone", err)
	}
	if !second.CheckAdmin(goodPassword) || second.CheckAdmin(goodPassword+"x") {
		t.Fatal("CheckAdmin does not check the password set by setup")
	}
	done, err := second.SetupDone()
	if err != nil || !done {
		t.Fatalf("SetupDone = %v, %v", done, err)
	}
	for _, c := range []*Credentials{second, openCreds(t, db, nil)} {
		code, fresh, err := c.EnsureSetupCode()
		if code != "" || fresh || err != nil {
			t.Fatalf("EnsureSetupCode after setup = %q, %v, %v; want none", code, fresh, err)
		}
	}
}

func TestCompleteSetupIsSingleUseUnderRace(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	c := openCreds(t, db, nil)
	code, _, err := c.EnsureSetupCode()
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = c.CompleteSetup(code, goodPassword+string(rune('a'+i))) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrSetupDone):
		default:
			t.Errorf("CompleteSetup: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d concurrent CompleteSetup calls succeeded; want exactly 1", ok)
	}
}

func TestPasswordPolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		password string
		ok       bool
	}{
		{"", false},
		{"Ab1!", false},
		{"aaaaaaaaaaaa", false},
		{"abcdefghijkl", false},
		{"ABCDEFGHIJKL", false},
		{"123456789012", false},
		{"abcdefghij\x01k", false},
		{"\xff\xfeabcdefgh1", false},
		{strings.Repeat("aB", MaxPasswordLen), false},
		{"abcdefghi1", true},
		{goodPassword, true},
		{"paßwörter-sind-gut", true},
	}
	for _, tt := range tests {
		err := CheckPasswordPolicy(tt.password)
		if tt.ok != (err == nil) {
			t.Errorf("CheckPasswordPolicy(%q) = %v; want ok=%v", tt.password, err, tt.ok)
		}
		var weak *WeakPasswordError
		if err != nil && (!errors.Is(err, ErrWeakPassword) || !errors.As(err, &weak) || weak.Reason == "") {
			t.Errorf("CheckPasswordPolicy(%q) = %#v; want a *WeakPasswordError with a reason", tt.password, err)
		}
	}
}

func setUp(t *testing.T, c *Credentials) {
	t.Helper()
	code, _, err := c.EnsureSetupCode()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CompleteSetup(code, goodPassword); err != nil {
		t.Fatal(err)
	}
}

func TestSetAdminPassword(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	c := openCreds(t, db, nil)
	if err := c.SetAdminPassword("", goodPassword); !errors.Is(err, ErrSetupRequired) {
		t.Fatalf("SetAdminPassword before setup = %v; want ErrSetupRequired", err)
	}
	setUp(t, c)
	const next = "another Passphrase"
	if err := c.SetAdminPassword("wrong password!", next); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("SetAdminPassword with a wrong current password = %v", err)
	}
	if err := c.SetAdminPassword(goodPassword, "weak"); !errors.Is(err, ErrWeakPassword) {
		t.Fatalf("SetAdminPassword to a weak password = %v", err)
	}
	if !c.CheckAdmin(goodPassword) { // fills the verification cache
		t.Fatal("CheckAdmin(old) false before the change")
	}
	if err := c.SetAdminPassword(goodPassword, next); err != nil {
		t.Fatal(err)
	}
	if c.CheckAdmin(goodPassword) {
		t.Fatal("old password still accepted (stale cache?)")
	}
	for range 2 { // the second check is served from the cache
		if !c.CheckAdmin(next) {
			t.Fatal("new password not accepted")
		}
	}
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	clk := &clock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	c := openCreds(t, db, clk)

	if _, _, err := c.CreateAPIKey("  "); !errors.Is(err, ErrInvalidAPIKeyName) {
		t.Fatalf("CreateAPIKey with an empty name = %v", err)
	}
	key, secret, err := c.CreateAPIKey("backup script")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key.ID, APIKeyPrefix) || strings.Contains(key.ID, ":") || len(secret) < 40 {
		t.Fatalf("key %+v secret %q: want an egk_ id and a long secret", key, secret)
	}
	clk.Add(time.Second) // the list is ordered by creation time
	other, _, err := c.CreateAPIKey("ci")
	if err != nil {
		t.Fatal(err)
	}
	if other.ID == key.ID {
		t.Fatal("two keys got the same id")
	}

	for _, tt := range []struct{ id, secret string }{
		{key.ID, secret + "x"},
		{key.ID, ""},
		{other.ID, secret},
		{"egk_unknown", secret},
		{"", ""},
	} {
		if _, ok := c.CheckAPIKey(tt.id, tt.secret); ok {
			t.Errorf("CheckAPIKey(%q, %q) accepted", tt.id, tt.secret)
		}
	}

	got, ok := c.CheckAPIKey(key.ID, secret)
	if !ok || got.ID != key.ID || got.Name != "backup script" || !got.LastUsed.Equal(clk.Now()) {
		t.Fatalf("CheckAPIKey = %+v, %v; want the key with LastUsed now", got, ok)
	}
	used := clk.Now()
	clk.Add(30 * time.Second)
	if got, _ := c.CheckAPIKey(key.ID, secret); !got.LastUsed.Equal(used) {
		t.Fatalf("LastUsed updated after 30s to %v; want it kept at %v", got.LastUsed, used)
	}
	clk.Add(31 * time.Second)
	if got, _ := c.CheckAPIKey(key.ID, secret); !got.LastUsed.Equal(clk.Now()) {
		t.Fatalf("LastUsed after 61s = %v; want %v", got.LastUsed, clk.Now())
	}

	list, err := c.ListAPIKeys()
	if err != nil || len(list) != 2 || list[0].ID != key.ID || list[1].ID != other.ID {
		t.Fatalf("ListAPIKeys = %+v, %v", list, err)
	}
	if err := c.DeleteAPIKey(key.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteAPIKey(key.ID); !errors.Is(err, ErrAPIKeyNotFound) {
		t.Fatalf("second DeleteAPIKey = %v; want ErrAPIKeyNotFound", err)
	}
	if _, ok := c.CheckAPIKey(key.ID, secret); ok {
		t.Fatal("deleted key still accepted")
	}
}

// TestNoPlaintextSecretsInDatabase greps the database file for every secret
// the package handled.
func TestNoPlaintextSecretsInDatabase(t *testing.T) {
	t.Parallel()
	db, path := openDB(t)
	c := openCreds(t, db, nil)
	code, _, err := c.EnsureSetupCode()
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{code, strings.ReplaceAll(code, "-", ""), goodPassword}

	// Look while the code is still stored, then after setup.
	check := func() {
		t.Helper()
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if bytes.Contains(raw, []byte(s)) {
				t.Errorf("database file contains the secret %q in plain text", s)
			}
		}
	}
	check()
	if err := c.CompleteSetup(code, goodPassword); err != nil {
		t.Fatal(err)
	}
	const next = "second Passphrase"
	if err := c.SetAdminPassword(goodPassword, next); err != nil {
		t.Fatal(err)
	}
	_, secret, err := c.CreateAPIKey("k")
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, next, secret)
	check()
}
