package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegate/edgegate/gateway/api"
	"github.com/edgegate/edgegate/gateway/auth"
	"github.com/edgegate/edgegate/gateway/broker/trace"
	"github.com/edgegate/edgegate/gateway/config"
	"github.com/edgegate/edgegate/gateway/store"
)

// cheapHashing keeps PBKDF2 fast in tests (the lowest work factor settings allow).
const cheapHashing = `{"auth":{"pbkdf2_iterations":10000}}`

// testSettings is the smallest api.Settings: fixed effective settings.
type testSettings struct{ eff config.Effective }

func (s testSettings) Effective() config.Effective { return s.eff }
func (s testSettings) Current() (store.SettingsVersion, error) {
	return store.SettingsVersion{}, nil
}
func (s testSettings) History() ([]store.SettingsVersion, error) { return nil, nil }
func (s testSettings) Apply(context.Context, []byte, string) (store.SettingsVersion, error) {
	return store.SettingsVersion{}, errors.New("read-only test settings")
}

// daemonEnv is a stand-in daemon: the real API (LocalHandler) with the real
// account store on the data directory's database and a real tracer, served
// on <data>/edgegate.sock.
type daemonEnv struct {
	dataDir string
	users   *auth.Users
	traces  *trace.Tracer
}

func newDataDir(t *testing.T) string {
	t.Helper()
	// A short path: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "egcli")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func startDaemon(t *testing.T) *daemonEnv {
	t.Helper()
	dataDir := newDataDir(t)
	st, err := store.Open(dataDir, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	users, err := auth.NewUsers(st.DB())
	if err != nil {
		t.Fatal(err)
	}
	eff, err := config.Load(config.Layers{Store: []byte(cheapHashing)})
	if err != nil {
		t.Fatal(err)
	}
	tracer := trace.New(trace.Options{Dir: filepath.Join(dataDir, "traces")})
	t.Cleanup(func() { _ = tracer.Stop() })
	serveAPI(t, dataDir, api.New(api.Options{Users: users, Settings: testSettings{eff}, Traces: tracer}))
	return &daemonEnv{dataDir: dataDir, users: users, traces: tracer}
}

type result struct {
	code           int
	stdout, stderr string
}

func runUserCmd(t *testing.T, dataDir, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := User(t.Context(), dataDir, args, strings.NewReader(stdin), &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

func runTraceCmd(t *testing.T, dataDir string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Trace(t.Context(), dataDir, args, &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

func mustRun(t *testing.T, r result, wantCode int, wantOut string) {
	t.Helper()
	if r.code != wantCode || !strings.Contains(r.stdout+r.stderr, wantOut) {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d and %q", r.code, r.stdout, r.stderr, wantCode, wantOut)
	}
}

func verifyPassword(t *testing.T, users *auth.Users, name, password string) {
	t.Helper()
	u, err := users.Get(name)
	if err != nil || !auth.VerifyPassword(u.PasswordHash, password) {
		t.Fatalf("user %q does not have password %q (%v)", name, password, err)
	}
}

func TestUserThroughDaemon(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)

	r := runUserCmd(t, d.dataDir, "", "add", "alice", "--superuser", "--password", "alice-pw")
	mustRun(t, r, 0, `added user "alice"`)
	if strings.Contains(r.stderr, "database directly") {
		t.Fatal("went to the database with the daemon running")
	}
	verifyPassword(t, d.users, "alice", "alice-pw")

	mustRun(t, runUserCmd(t, d.dataDir, "bob-pw\nignored\n", "add", "bob"), 0, `added user "bob"`)
	verifyPassword(t, d.users, "bob", "bob-pw")

	mustRun(t, runUserCmd(t, d.dataDir, "", "add", "alice", "--password", "x"), 1, `user "alice" already exists`)

	r = runUserCmd(t, d.dataDir, "", "list")
	mustRun(t, r, 0, "USERNAME")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[1])[:3], " ") != "alice yes yes" ||
		strings.Join(strings.Fields(lines[2])[:3], " ") != "bob no yes" {
		t.Fatalf("list:\n%s", r.stdout)
	}

	mustRun(t, runUserCmd(t, d.dataDir, "new-pw\r\n", "passwd", "alice"), 0, "changed the password")
	verifyPassword(t, d.users, "alice", "new-pw")
	mustRun(t, runUserCmd(t, d.dataDir, "", "passwd", "nobody", "--password", "x"), 1, `user "nobody" not found`)

	mustRun(t, runUserCmd(t, d.dataDir, "", "delete", "bob"), 0, `deleted user "bob"`)
	mustRun(t, runUserCmd(t, d.dataDir, "", "delete", "bob"), 1, `user "bob" not found`)
	if _, err := d.users.Get("bob"); !errors.Is(err, auth.ErrUserNotFound) {
		t.Fatalf("bob still there: %v", err)
	}

	// Names with a slash travel escaped.
	mustRun(t, runUserCmd(t, d.dataDir, "", "add", "site/7", "--password", "p"), 0, "added")
	mustRun(t, runUserCmd(t, d.dataDir, "", "passwd", "site/7", "--password", "q"), 0, "changed")
	verifyPassword(t, d.users, "site/7", "q")
}

func TestUserWithDaemonStopped(t *testing.T) {
	t.Parallel()
	for _, stale := range []bool{false, true} {
		name := "no socket"
		if stale {
			name = "stale socket"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dataDir := newDataDir(t)
			// The stored settings pick the work factor the CLI hashes with.
			st, err := store.Open(dataDir, store.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.SaveSettings([]byte(cheapHashing), "test", time.Now()); err != nil {
				t.Fatal(err)
			}
			st.Close()
			if stale {
				// A socket file nobody listens on, as a crash leaves it.
				ln, err := net.Listen("unix", filepath.Join(dataDir, SocketName))
				if err != nil {
					t.Fatal(err)
				}
				ln.(*net.UnixListener).SetUnlinkOnClose(false)
				ln.Close()
				if _, err := os.Stat(filepath.Join(dataDir, SocketName)); err != nil {
					t.Fatal(err)
				}
			}

			r := runUserCmd(t, dataDir, "", "add", "--superuser", "carol", "--password", "carol-pw")
			mustRun(t, r, 0, `added user "carol"`)
			mustRun(t, r, 0, "using the database directly")
			mustRun(t, runUserCmd(t, dataDir, "dave-pw\n", "add", "dave"), 0, "added")
			mustRun(t, runUserCmd(t, dataDir, "", "add", "dave", "--password", "x"), 1, "already exists")
			mustRun(t, runUserCmd(t, dataDir, "", "passwd", "dave", "--password", "dave-2"), 0, "changed")
			mustRun(t, runUserCmd(t, dataDir, "", "passwd", "erin", "--password", "x"), 1, "not found")
			r = runUserCmd(t, dataDir, "", "list")
			mustRun(t, r, 0, "carol")
			if !strings.Contains(r.stdout, "dave") {
				t.Fatalf("list:\n%s", r.stdout)
			}
			mustRun(t, runUserCmd(t, dataDir, "", "delete", "carol"), 0, "deleted")
			mustRun(t, runUserCmd(t, dataDir, "", "delete", "carol"), 1, "not found")

			st, err = store.Open(dataDir, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			users, err := auth.NewUsers(st.DB())
			if err != nil {
				t.Fatal(err)
			}
			verifyPassword(t, users, "dave", "dave-2")
			u, _ := users.Get("dave")
			if !strings.HasPrefix(u.PasswordHash, "pbkdf2-sha256$10000$") {
				t.Fatalf("hash %q; want the stored settings' pbkdf2 work factor", u.PasswordHash)
			}
			if _, err := users.Get("carol"); !errors.Is(err, auth.ErrUserNotFound) {
				t.Fatalf("carol: %v", err)
			}
		})
	}
}

func TestUserUsage(t *testing.T) {
	t.Parallel()
	dataDir := newDataDir(t)
	for _, tt := range []struct {
		args []string
		code int
	}{
		{nil, 2},
		{[]string{"bogus"}, 2},
		{[]string{"add"}, 2},
		{[]string{"add", "a", "b", "--password", "x"}, 2},
		{[]string{"add", "a", "--nope"}, 2},
		{[]string{"add", "a", "--password"}, 2},
		{[]string{"delete"}, 2},
		{[]string{"list", "x"}, 2},
		{[]string{"passwd", "a", "--superuser"}, 2},
		{[]string{"help"}, 0},
		{[]string{"add", "-h"}, 0},
	} {
		r := runUserCmd(t, dataDir, "", tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, "usage: edgegate user") {
			t.Errorf("user %q: exit %d, stderr %q; want exit %d with the usage", tt.args, r.code, r.stderr, tt.code)
		}
	}
	// Nothing above may have created the database.
	if _, err := os.Stat(filepath.Join(dataDir, store.FileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("usage errors touched the database: %v", err)
	}
}

func TestUserPasswordInput(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	mustRun(t, runUserCmd(t, d.dataDir, "", "add", "x"), 1, "no password on stdin")
	mustRun(t, runUserCmd(t, d.dataDir, "\n", "add", "x"), 1, "the password is empty")
	mustRun(t, runUserCmd(t, d.dataDir, "", "add", "x", "--password", ""), 1, "the password is empty")
	r := runUserCmd(t, d.dataDir, "last-line-no-newline", "add", "y")
	mustRun(t, r, 0, "added")
	verifyPassword(t, d.users, "y", "last-line-no-newline")
	if strings.Contains(r.stdout+r.stderr, "last-line-no-newline") {
		t.Fatal("the password was printed")
	}
	// "--" ends the flags, for names that start with "-".
	mustRun(t, runUserCmd(t, d.dataDir, "", "add", "--password", "p", "--", "-dash"), 0, `added user "-dash"`)
}

func TestTrace(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)

	r := runTraceCmd(t, d.dataDir, "client", "c1", "trace_c1.log")
	mustRun(t, r, 0, `tracing client "c1" to `+filepath.Join(d.dataDir, "traces", "trace_c1.log"))
	mustRun(t, runTraceCmd(t, d.dataDir, "client", "c1", "other"), 1, "already traced")
	mustRun(t, runTraceCmd(t, d.dataDir, "topic", "/a/#", "topic_a"), 0, `tracing topic "/a/#"`)
	mustRun(t, runTraceCmd(t, d.dataDir, "topic", "a/#/b", "bad"), 1, "invalid trace target")

	r = runTraceCmd(t, d.dataDir, "list")
	mustRun(t, r, 0, "KIND")
	if !strings.Contains(r.stdout, "c1") || !strings.Contains(r.stdout, "/a/#") || !strings.Contains(r.stdout, "running") {
		t.Fatalf("list:\n%s", r.stdout)
	}

	mustRun(t, runTraceCmd(t, d.dataDir, "client", "c1", "off"), 0, `stopped tracing client "c1"`)
	mustRun(t, runTraceCmd(t, d.dataDir, "stop", "topic", "/a/#"), 0, `stopped tracing topic "/a/#"`)
	mustRun(t, runTraceCmd(t, d.dataDir, "stop", "topic", "/a/#"), 1, "no topic trace")
	if got := d.traces.List(); len(got) != 2 || got[0].StopReason == "" || got[1].StopReason == "" {
		t.Fatalf("traces after stopping: %+v", got)
	}
	data, err := os.ReadFile(filepath.Join(d.dataDir, "traces", "trace_c1.log"))
	if err != nil || !strings.Contains(string(data), `trace started: client "c1"`) {
		t.Fatalf("trace file %q, %v", data, err)
	}
}

func TestTraceUsageAndDaemonDown(t *testing.T) {
	t.Parallel()
	dataDir := newDataDir(t)
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: edgegate trace"},
		{[]string{"client", "c1"}, 2, "usage"},
		{[]string{"client", "c1", "/tmp/x.log"}, 2, "must be a plain name"},
		{[]string{"stop", "ip", "x"}, 2, "usage"},
		{[]string{"list", "x"}, 2, "usage"},
		{[]string{"bogus"}, 2, "unknown verb"},
		{[]string{"help"}, 0, "usage"},
		{[]string{"list"}, 1, "edgegate is not running"},
		{[]string{"client", "c1", "f"}, 1, "edgegate is not running"},
		{[]string{"stop", "client", "c1"}, 1, "edgegate is not running"},
	} {
		r := runTraceCmd(t, dataDir, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("trace %q: exit %d, stderr %q; want exit %d with %q", tt.args, r.code, r.stderr, tt.code, tt.want)
		}
	}
}

func TestReadPasswordLine(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in, want string
		err      error
	}{
		{"secret\r", "secret", nil},
		{"secret\n", "secret", nil},
		{"secr\x7fret\r", "secret", nil},
		{"é\x7fe\r", "e", nil},
		{"junk\x15good\r", "good", nil},
		{"abc\x03", "", errInterrupted},
		{"\x04", "", io.EOF},
		{"ab\x04c\r", "abc", nil},
		{"tail", "tail", nil},
		{"", "", io.EOF},
	} {
		got, err := readPasswordLine(strings.NewReader(tt.in))
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("readPasswordLine(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestRunUnknownVerb(t *testing.T) {
	var stderr strings.Builder
	if code := Run(t.Context(), "nope", t.TempDir(), nil, strings.NewReader(""), io.Discard, &stderr); code != exitUsage || !strings.Contains(stderr.String(), `"nope"`) {
		t.Fatalf("Run(nope) = %d, %q; want %d naming the verb", code, stderr.String(), exitUsage)
	}
}

// serveAPI serves a's local handler on the admin socket of dataDir, as the
// daemon does, until the test ends.
func serveAPI(t *testing.T, dataDir string, a *api.API) {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(dataDir, SocketName))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(a.LocalHandler())
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
}
