package webui

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	bolt "go.etcd.io/bbolt"

	"github.com/edgegate/edgegate/gateway/acl"
	"github.com/edgegate/edgegate/gateway/admin"
	"github.com/edgegate/edgegate/gateway/auth"
)

// accessStoredBase keeps MQTT password hashing cheap in tests.
const accessStoredBase = `{"auth": {"pbkdf2_iterations": 10000}}`

// storedRules returns the stored rules (nil: the defaults apply).
func storedRules(s *fakeStoredSettings) acl.Rules { return s.Effective().Config.ACL.Rules }

// accessFakeAdmin is the real credential store (API keys included) with
// setup done.
type accessFakeAdmin struct {
	*admin.Credentials
}

func (accessFakeAdmin) SetupDone() (bool, error) { return true, nil }

// accessEnv is a UI on real user and credential stores in a temporary
// bbolt file, fake settings, and a logged-in session.
type accessEnv struct {
	t        *testing.T
	u        *UI
	ss       *session
	users    *auth.Users
	admin    *admin.Credentials
	settings *fakeStoredSettings
	logs     *accessLogs
}

// accessLogs collects the UI's log lines.
type accessLogs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *accessLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *accessLogs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type accessEnvOptions struct {
	file    string // the image's settings file (locked paths)
	noUsers bool   // run without a user store
}

func newAccessTestUI(t *testing.T, o accessEnvOptions) *accessEnv {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "access.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	users, err := auth.NewUsers(db)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := admin.Open(db, admin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := &accessEnv{t: t, users: users, admin: creds, settings: newFakeStoredSettings(t, accessStoredBase, o.file), logs: &accessLogs{}}
	opts := Options{
		Admin: accessFakeAdmin{creds}, Settings: e.settings, Users: users,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if o.noUsers {
		opts.Users = nil
	}
	e.u = New(opts)
	t.Cleanup(e.u.Close)
	e.ss = e.u.sessions.create()
	return e
}

// do serves one request of the session; a non-nil form is posted.
func (e *accessEnv) do(method, target string, form url.Values) *httptest.ResponseRecorder {
	return serveSession(e.u, e.ss, method, target, form)
}

// get renders a page, requires status want and parses it.
func (e *accessEnv) get(target string, want int) *goquery.Document {
	e.t.Helper()
	w := e.do(http.MethodGet, target, nil)
	if w.Code != want {
		e.t.Fatalf("GET %s: status %d, want %d\n%s", target, w.Code, want, w.Body)
	}
	return parseHTML(e.t, w)
}

// post posts form and requires status want; it returns the response.
func (e *accessEnv) post(target string, form url.Values, want int) *httptest.ResponseRecorder {
	e.t.Helper()
	w := e.do(http.MethodPost, target, form)
	if w.Code != want {
		e.t.Fatalf("POST %s: status %d, want %d\n%s", target, w.Code, want, w.Body)
	}
	return w
}

// postOK posts form, requires a redirect to location and returns the flash
// the next page shows.
func (e *accessEnv) postOK(target string, form url.Values, location string) string {
	e.t.Helper()
	w := e.post(target, form, http.StatusSeeOther)
	if got := w.Header().Get("Location"); got != location {
		e.t.Fatalf("POST %s: redirect to %q, want %q", target, got, location)
	}
	return textOf(e.get("/access", http.StatusOK).Find(byTestID("flash")))
}

// rev is the rule fingerprint the page carries in its row forms.
func (e *accessEnv) rev() string {
	e.t.Helper()
	doc := e.get("/access", http.StatusOK)
	rev, ok := doc.Find(byTestID("acl-rule") + ` form input[name="rev"]`).First().Attr("value")
	if !ok || rev == "" {
		e.t.Fatal("no rev in the ACL rule forms")
	}
	return rev
}

// accessRuleRows returns the text of the cells of each ACL row.
func accessRuleRows(doc *goquery.Document) [][]string {
	var rows [][]string
	doc.Find(byTestID("acl-rule")).Each(func(_ int, row *goquery.Selection) {
		rows = append(rows, row.Find("td").Map(func(_ int, s *goquery.Selection) string { return textOf(s) }))
	})
	return rows
}

// accessRuleStrings shows rules in acl.conf syntax, for comparisons.
func accessRuleStrings(rules acl.Rules) []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.String()
	}
	return out
}
