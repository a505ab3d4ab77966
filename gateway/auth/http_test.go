package auth

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgegate/edgegate/gateway/config"
)

func TestParseParams(t *testing.T) {
	t.Parallel()
	vars := paramVars{username: "u s", clientID: "c&1", addr: "192.0.2.1", password: "p=w,%", topic: "a/b", access: "2"}
	for _, c := range []struct {
		in   string
		want url.Values
	}{
		{"clientid=%c,username=%u,password=%P", url.Values{"clientid": {"c&1"}, "username": {"u s"}, "password": {"p=w,%"}}},
		{"access=%A,username=%u,clientid=%c,ipaddr=%a,topic=%t", url.Values{"access": {"2"}, "username": {"u s"}, "clientid": {"c&1"}, "ipaddr": {"192.0.2.1"}, "topic": {"a/b"}}},
		{" a = %u , ,b=x%%y,c=%z%,d=", url.Values{"a ": {" u s"}, "b": {"x%y"}, "c": {"%z%"}, "d": {""}}},
		{"id=dev-%c-%u", url.Values{"id": {"dev-c&1-u s"}}},
		{"k=%u,k=%c", url.Values{"k": {"u s", "c&1"}}},
		{"", url.Values{}},
	} {
		ps, err := parseParams(c.in)
		if err != nil {
			t.Errorf("parseParams(%q): %v", c.in, err)
			continue
		}
		if got := ps.values(vars); !reflect.DeepEqual(got, c.want) {
			t.Errorf("parseParams(%q).values = %v, want %v", c.in, got, c.want)
		}
	}
	for _, bad := range []string{"novalue", "=x", "a=1,b"} {
		if _, err := parseParams(bad); err == nil {
			t.Errorf("parseParams(%q) accepted", bad)
		}
	}
}

func FuzzHTTPParams(f *testing.F) {
	for _, s := range []string{
		"clientid=%c,username=%u,password=%P",
		"access=%A,username=%u,clientid=%c,ipaddr=%a,topic=%t",
		"a=%%u,b=%,c=%%%u%",
		" a = b ,,=",
		"x=%P%P%P",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := parseParams(s)
		if err != nil {
			return
		}
		again, err := parseParams(ps.String())
		if err != nil {
			t.Fatalf("String() of %q = %q does not parse: %v", s, ps.String(), err)
		}
		if len(ps) != 0 || len(again) != 0 {
			vars := paramVars{username: "U", clientID: "C", addr: "A", password: "P", topic: "T", access: "X"}
			if !reflect.DeepEqual(ps.values(vars), again.values(vars)) {
				t.Fatalf("%q and its String() %q render differently", s, ps.String())
			}
		}
		n := 0
		for _, vs := range ps.values(paramVars{}) {
			n += len(vs)
		}
		if n != len(ps) {
			t.Fatalf("%q: %d params rendered %d values", s, len(ps), n)
		}
	})
}

// authServer is an HTTP auth backend: username "good" is allowed, "super"
// is allowed and a superuser, "bad" denied, "broken" gets a 500, "moved" a
// redirect, "slow" waits until the test ends.
type authServer struct {
	*httptest.Server
	hits    atomic.Int64
	release chan struct{}
	mu      sync.Mutex
	last    *http.Request
	form    url.Values
}

func newAuthServer(t *testing.T) *authServer {
	s := &authServer{release: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		_ = r.ParseForm()
		s.mu.Lock()
		s.last, s.form = r, r.Form
		s.mu.Unlock()
		user := r.Form.Get("username")
		if strings.HasSuffix(r.URL.Path, "/super") {
			if user == "super" {
				return
			}
			w.WriteHeader(http.StatusForbidden)
			return
		}
		switch user {
		case "good", "super":
			_, _ = w.Write([]byte("ok"))
		case "bad":
			w.WriteHeader(http.StatusUnauthorized)
		case "broken":
			w.WriteHeader(http.StatusBadGateway)
		case "moved":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case "slow":
			select {
			case <-s.release:
			case <-r.Context().Done():
			}
		default:
			if strings.HasSuffix(r.URL.Path, "/acl") && r.Form.Get("topic") == "allowed/topic" {
				return
			}
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	t.Cleanup(func() {
		close(s.release)
		s.Close()
	})
	return s
}

func (s *authServer) lastRequest() (*http.Request, url.Values) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.form
}

func httpAuthConfig(base, method, onError string) config.HTTPAuth {
	return config.HTTPAuth{
		AuthReq:  config.HTTPRequest{URL: base + "/auth?source=edgegate", Method: method, Params: "clientid=%c,username=%u,password=%P,ip=%a"},
		SuperReq: config.HTTPRequest{URL: base + "/super", Method: method, Params: "clientid=%c,username=%u"},
		ACLReq:   config.HTTPRequest{URL: base + "/acl", Method: "get", Params: "access=%A,username=%u,clientid=%c,ipaddr=%a,topic=%t"},
		Timeout:  config.Duration(time.Second),
		OnError:  onError,
		CacheTTL: config.Duration(30 * time.Second),
	}
}

func newTestChainHTTP(t *testing.T, c config.HTTPAuth, clock *fakeClock, log *slog.Logger) *chain {
	t.Helper()
	backend, err := newHTTPBackend(c, newHTTPClient(), log, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := newChain(config.Auth{Chain: []string{config.AuthHTTP, config.AuthAnonymous}, AllowAnonymous: true}, nil, backend, log)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func TestHTTPAuth(t *testing.T) {
	t.Parallel()
	srv := newAuthServer(t)
	for _, method := range []string{"get", "post"} {
		for _, onError := range []string{config.OnErrorIgnore, config.OnErrorDeny} {
			errVerdict, errLink := allow, config.AuthAnonymous
			if onError == config.OnErrorDeny {
				errVerdict, errLink = deny, config.AuthHTTP
			}
			ch := newTestChainHTTP(t, httpAuthConfig(srv.URL, method, onError), newFakeClock(), slog.New(slog.DiscardHandler))
			for _, c := range []struct {
				user  string
				want  verdict
				super bool
				link  string
			}{
				{"good", allow, false, config.AuthHTTP},
				{"super", allow, true, config.AuthHTTP},
				{"bad", deny, false, config.AuthHTTP},
				{"broken", errVerdict, false, errLink},
				{"moved", errVerdict, false, errLink},
			} {
				got := ch.authenticate(context.Background(), login{username: c.user, clientID: "cid 1", password: "p@ss&word", addr: netip.MustParseAddr("192.0.2.9")})
				if got.verdict != c.want || got.superuser != c.super || got.link != c.link {
					t.Errorf("%s/%s %s: got %v super=%v by %s; want %v super=%v by %s", method, onError, c.user, got.verdict, got.superuser, got.link, c.want, c.super, c.link)
				}
			}
			// The request carried the params the way its method says (a
			// new password, so not from the cache).
			ch.authenticate(context.Background(), login{username: "bad", clientID: "cid 1", password: "p@ss&word2", addr: netip.MustParseAddr("192.0.2.9")})
			r, form := srv.lastRequest()
			if r.Method != strings.ToUpper(method) {
				t.Errorf("method %s, want %s", r.Method, method)
			}
			want := url.Values{"clientid": {"cid 1"}, "username": {"bad"}, "password": {"p@ss&word2"}, "ip": {"192.0.2.9"}}
			if method == "get" {
				if got := r.URL.Query(); got.Get("source") != "edgegate" || got.Get("password") != "p@ss&word2" {
					t.Errorf("GET query %v", got)
				}
			} else {
				if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
					t.Errorf("POST content type %q", ct)
				}
				if r.URL.Query().Get("password") != "" {
					t.Error("POST sent the password in the URL")
				}
			}
			for k, v := range want {
				if !reflect.DeepEqual(form[k], v) {
					t.Errorf("%s param %s = %q, want %q", method, k, form[k], v)
				}
			}
		}
	}
}

func TestHTTPTimeout(t *testing.T) {
	t.Parallel()
	srv := newAuthServer(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, c := range []struct {
		onError string
		want    verdict
	}{
		{config.OnErrorIgnore, allow}, // on to anonymous
		{config.OnErrorDeny, deny},
	} {
		cfg := httpAuthConfig(srv.URL, "get", c.onError)
		cfg.Timeout = config.Duration(20 * time.Millisecond)
		ch := newTestChainHTTP(t, cfg, newFakeClock(), log)
		got := ch.authenticate(context.Background(), login{username: "slow", password: "TOPSECRET-pw"})
		if got.verdict != c.want {
			t.Errorf("on_error %s: timeout gave %v, want %v", c.onError, got.verdict, c.want)
		}
	}
	// A cancelled context (the hook stopping) ends a call at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ch := newTestChainHTTP(t, httpAuthConfig(srv.URL, "get", config.OnErrorDeny), newFakeClock(), log)
	if got := ch.authenticate(ctx, login{username: "slow", password: "TOPSECRET-pw"}); got.verdict != deny {
		t.Errorf("cancelled call gave %v", got.verdict)
	}
	if !strings.Contains(logs.String(), "auth http backend failed") {
		t.Errorf("failure not logged: %s", logs.String())
	}
	if strings.Contains(logs.String(), "TOPSECRET") {
		t.Errorf("password in the log: %s", logs.String())
	}
}

func TestHTTPCache(t *testing.T) {
	t.Parallel()
	srv := newAuthServer(t)
	clock := newFakeClock()
	cfg := httpAuthConfig(srv.URL, "post", config.OnErrorIgnore)
	cfg.SuperReq = config.HTTPRequest{} // count auth_req calls only
	ch := newTestChainHTTP(t, cfg, clock, slog.New(slog.DiscardHandler))
	ask := func(user, pw string) verdict {
		return ch.authenticate(context.Background(), login{username: user, password: pw}).verdict
	}
	for range 3 {
		if ask("good", "pw1") != allow {
			t.Fatal("good not allowed")
		}
	}
	if n := srv.hits.Load(); n != 1 {
		t.Errorf("3 identical logins made %d calls, want 1", n)
	}
	for range 2 { // the second answer comes from the cache
		if ask("bad", "pw1") != deny {
			t.Fatal("bad not denied")
		}
	}
	if n := srv.hits.Load(); n != 2 {
		t.Errorf("denials: %d calls, want 2", n)
	}
	// Another password is another question.
	ask("good", "pw2")
	if n := srv.hits.Load(); n != 3 {
		t.Errorf("new password: %d calls, want 3", n)
	}
	// Errors are not cached.
	ask("broken", "pw")
	ask("broken", "pw")
	if n := srv.hits.Load(); n != 5 {
		t.Errorf("errors: %d calls, want 5", n)
	}
	clock.advance(31 * time.Second)
	ask("good", "pw1")
	if n := srv.hits.Load(); n != 6 {
		t.Errorf("after the TTL: %d calls, want 6", n)
	}
	// TTL 0 disables the cache.
	cfg.CacheTTL = 0
	ch = newTestChainHTTP(t, cfg, clock, slog.New(slog.DiscardHandler))
	ask("good", "pw1")
	ask("good", "pw1")
	if n := srv.hits.Load(); n != 8 {
		t.Errorf("no cache: %d calls, want 8", n)
	}
}

func TestAnswerCacheBounded(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	c := newAnswerCache(clock.now, time.Minute)
	for i := range maxCachedAnswers + 10 {
		c.put([32]byte{byte(i), byte(i >> 8), byte(i >> 16)}, allow)
	}
	if n := c.len(); n > maxCachedAnswers {
		t.Errorf("cache holds %d answers, limit %d", n, maxCachedAnswers)
	}
}

func TestHTTPBackendConfigErrors(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.DiscardHandler)
	for _, c := range []config.HTTPAuth{
		{AuthReq: config.HTTPRequest{URL: "ftp://x/", Method: "get"}},
		{AuthReq: config.HTTPRequest{URL: "http://x/", Method: "put"}},
		{ACLReq: config.HTTPRequest{URL: "http://x/", Method: "get", Params: "topic"}},
		{OnError: "retry"},
	} {
		if _, err := newHTTPBackend(c, newHTTPClient(), log, time.Now); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// syncWriter serialises writes from concurrent goroutines into a buffer.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
