package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgegate/edgegate/gateway/admin"
	"github.com/edgegate/edgegate/gateway/auth"
	"github.com/edgegate/edgegate/gateway/broker"
	"github.com/edgegate/edgegate/gateway/broker/trace"
)

// routeCase is one request against a fresh, set-up gateway.
type routeCase struct {
	name string
	// file is the image's settings file (locked keys); "" means none.
	file   string
	before func(t *testing.T, e *env)
	r      req
	status int
	// code is the expected error code of an error answer.
	code  string
	check func(t *testing.T, e *env, w *httptest.ResponseRecorder)
}

func runRoutes(t *testing.T, cases []routeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.file).completeSetup()
			if tc.before != nil {
				tc.before(t, e)
			}
			r := tc.r
			if r.user == "" {
				r = r.asAdmin()
			}
			w := e.do(e.handler, r)
			if w.Code != tc.status {
				t.Fatalf("%s %s = %d %s; want %d", r.method, r.path, w.Code, w.Body.String(), tc.status)
			}
			if tc.code != "" {
				if got := decodeError(t, w); got.Code != tc.code {
					t.Fatalf("error code %q (%s); want %q", got.Code, got.Message, tc.code)
				}
			}
			if tc.check != nil {
				tc.check(t, e, w)
			}
		})
	}
}

func decodeBody[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %q: %v", w.Body.String(), err)
	}
	return v
}

func TestBrokerRoutes(t *testing.T) {
	t.Parallel()
	runRoutes(t, []routeCase{
		{name: "list clients", r: req{method: "GET", path: "/api/v1/clients"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if got := decodeBody[[]broker.ClientInfo](t, w); len(got) != 3 {
					t.Fatalf("got %d clients; want 3", len(got))
				}
			}},
		{name: "filter clients by username", r: req{method: "GET", path: "/api/v1/clients?q=BOB"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				got := decodeBody[[]broker.ClientInfo](t, w)
				if len(got) != 1 || got[0].ClientID != "sensor-2" {
					t.Fatalf("got %+v; want sensor-2 only", got)
				}
			}},
		{name: "filter clients none", r: req{method: "GET", path: "/api/v1/clients?q=nobody"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if strings.TrimSpace(w.Body.String()) != "[]" {
					t.Fatalf("got %s; want []", w.Body.String())
				}
			}},
		{name: "get client", r: req{method: "GET", path: "/api/v1/clients/sensor-1"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if got := decodeBody[broker.ClientInfo](t, w); got.Username != "alice" {
					t.Fatalf("got %+v", got)
				}
			}},
		{name: "get client with slash in id", r: req{method: "GET", path: "/api/v1/clients/dev%2Fwith%2Fslash"}, status: 200},
		{name: "get unknown client", r: req{method: "GET", path: "/api/v1/clients/nope"}, status: 404, code: "client_not_found"},
		{name: "kick client", r: req{method: "DELETE", path: "/api/v1/clients/sensor-1"}, status: 204,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if _, ok := e.broker.Client("sensor-1"); ok {
					t.Fatal("client still there")
				}
			}},
		{name: "kick unknown client", r: req{method: "DELETE", path: "/api/v1/clients/nope"}, status: 404, code: "client_not_found"},
		{name: "kick fails internally", before: func(t *testing.T, e *env) { e.api.o.Broker = kickErrBroker{e.broker} },
			r: req{method: "DELETE", path: "/api/v1/clients/sensor-1"}, status: 500, code: "internal_error",
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if strings.Contains(w.Body.String(), "disk on fire") {
					t.Fatal("internal error text leaked to the client")
				}
				if !strings.Contains(e.log.String(), "disk on fire") {
					t.Fatal("internal error not logged")
				}
			}},
		{name: "all subscriptions", r: req{method: "GET", path: "/api/v1/subscriptions"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if got := decodeBody[[]broker.Subscription](t, w); len(got) != 2 {
					t.Fatalf("got %+v", got)
				}
			}},
		{name: "one client's subscriptions", r: req{method: "GET", path: "/api/v1/subscriptions?clientid=sensor-2"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				got := decodeBody[[]broker.Subscription](t, w)
				if len(got) != 1 || got[0].Filter != "cmd/sensor-2/#" {
					t.Fatalf("got %+v", got)
				}
			}},
		{name: "subscriptions of no subscriptions", r: req{method: "GET", path: "/api/v1/subscriptions?clientid=dev/with/slash"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if strings.TrimSpace(w.Body.String()) != "[]" {
					t.Fatalf("got %s; want []", w.Body.String())
				}
			}},
		{name: "subscriptions of unknown client", r: req{method: "GET", path: "/api/v1/subscriptions?clientid=nope"}, status: 404, code: "client_not_found"},
		{name: "retained", r: req{method: "GET", path: "/api/v1/retained"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				got := decodeBody[[]map[string]any](t, w)
				byTopic := map[string]map[string]any{}
				for _, m := range got {
					byTopic[m["topic"].(string)] = m
				}
				if m := byTopic["status/sensor-1"]; m["payload"] != b64("online") || m["payload_text"] != "online" {
					t.Fatalf("text message shown as %v", m)
				}
				if m := byTopic["bin"]; m["payload"] != "/wD+" || m["payload_text"] != nil || m["size"] != 3.0 {
					t.Fatalf("binary message shown as %v; want base64 only", m)
				}
			}},
		{name: "delete retained", r: req{method: "DELETE", path: "/api/v1/retained/status/sensor-1"}, status: 204,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if len(e.broker.Retained()) != 2 {
					t.Fatal("not deleted")
				}
			}},
		{name: "delete retained with leading slash escaped", r: req{method: "DELETE", path: "/api/v1/retained/%2Fa%2Fb%2Fc"}, status: 204},
		{name: "delete retained with unescaped double slash", r: req{method: "DELETE", path: "/api/v1/retained//a/b/c"}, status: 400, code: "bad_path",
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if len(e.broker.Retained()) != 3 {
					t.Fatal("something was deleted")
				}
			}},
		{name: "delete retained unknown", r: req{method: "DELETE", path: "/api/v1/retained/none"}, status: 404, code: "retained_not_found"},
		{name: "delete retained wildcard", r: req{method: "DELETE", path: "/api/v1/retained/a/%2B"}, status: 400, code: "invalid_topic"},
		{name: "listeners sorted", r: req{method: "GET", path: "/api/v1/listeners"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				got := decodeBody[[]broker.ListenerStatus](t, w)
				if len(got) != 2 || got[0].Name != "tcp" {
					t.Fatalf("got %+v", got)
				}
			}},
		{name: "stats", r: req{method: "GET", path: "/api/v1/stats"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if got := decodeBody[map[string]any](t, w); got["node"] != "edgegate-test" {
					t.Fatalf("got %v", got)
				}
			}},
		{name: "stats need auth", r: req{method: "GET", path: "/api/v1/stats", user: "admin", pass: "wrong"}, status: 401, code: "unauthorized"},
		{name: "metrics without credentials", r: req{method: "GET", path: "/metrics", user: "-"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if !strings.Contains(w.Body.String(), "edgegate_uptime_seconds 42") || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
					t.Fatalf("metrics %q %q", w.Header().Get("Content-Type"), w.Body.String())
				}
			}},
		{name: "metrics from the LAN", r: req{method: "GET", path: "/metrics", user: "-", remote: "192.0.2.1:1234"}, status: 403, code: "not_loopback"},
	})
}

// The real implementations satisfy the interfaces (Settings is
// *gateway.Settings, which imports this package; the gateway's build checks
// it).
var (
	_ Broker = (*broker.Broker)(nil)
	_ Stats  = (*broker.Broker)(nil)
	_ Traces = (*trace.Tracer)(nil)
	_ Users  = (*auth.Users)(nil)
	_ Admin  = (*admin.Credentials)(nil)
)

// kickErrBroker fails Kick with an internal error.
type kickErrBroker struct{ *fakeBroker }

func (kickErrBroker) Kick(string) error { return errBoom }

func TestAuthentication(t *testing.T) {
	t.Parallel()
	runRoutes(t, []routeCase{
		{name: "no credentials", r: req{method: "GET", path: "/api/v1/clients", user: "-"}, status: 401, code: "unauthorized",
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if got := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, `Basic realm="edgegate"`) {
					t.Fatalf("WWW-Authenticate %q", got)
				}
			}},
		{name: "wrong admin password", r: req{method: "GET", path: "/api/v1/clients", user: "admin", pass: "nope"}, status: 401, code: "unauthorized"},
		{name: "unknown user", r: req{method: "GET", path: "/api/v1/clients", user: "root", pass: adminPassword}, status: 401, code: "unauthorized"},
		{name: "not loopback", r: req{method: "GET", path: "/api/v1/clients", remote: "192.0.2.1:1234"}, status: 403, code: "not_loopback"},
		{name: "not loopback publish", r: req{method: "POST", path: "/mqtt/publish", contentType: "application/x-www-form-urlencoded",
			body: "topic=a&message=b", remote: "192.0.2.1:1234"}, status: 403, code: "not_loopback"},
		{name: "ipv6 loopback", r: req{method: "GET", path: "/api/v1/clients", remote: "[::1]:5555"}, status: 200},
		{name: "ipv4-mapped loopback", r: req{method: "GET", path: "/api/v1/clients", remote: "[::ffff:127.0.0.1]:5555"}, status: 200},
		{name: "cross-origin browser request", r: req{method: "POST", path: "/mqtt/publish", contentType: "application/x-www-form-urlencoded",
			body: "topic=a&message=b", header: http.Header{"Sec-Fetch-Site": {"cross-site"}}}, status: 403, code: "cross_origin"},
	})

	t.Run("api key", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "").completeSetup()
		w := e.do(e.handler, req{method: "GET", path: "/api/v1/clients", user: e.keyID, pass: e.keySecret})
		if w.Code != 200 {
			t.Fatalf("with API key: %d %s", w.Code, w.Body.String())
		}
		w = e.do(e.handler, req{method: "GET", path: "/api/v1/clients", user: e.keyID, pass: e.keySecret + "x"})
		if w.Code != 401 {
			t.Fatalf("with a wrong API key secret: %d", w.Code)
		}
		w = e.do(e.handler, req{method: "PATCH", path: "/api/v1/settings", body: `{"log":{"level":"warn"}}`, user: e.keyID, pass: e.keySecret})
		if h, _ := e.settings.History(); w.Code != 200 || h[0].Author != "apikey:"+e.keyID {
			t.Fatalf("PATCH with an API key: %d, history %+v", w.Code, h)
		}
	})

	t.Run("local socket needs no credentials", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "").completeSetup()
		w := e.do(e.local, req{method: "PATCH", path: "/api/v1/settings", body: `{"log":{"level":"debug"}}`, remote: "@"})
		if w.Code != 200 {
			t.Fatalf("PATCH over the socket: %d %s", w.Code, w.Body.String())
		}
		if h, _ := e.settings.History(); h[0].Author != "local" {
			t.Fatalf("author %q; want local", h[0].Author)
		}
	})

	t.Run("failed attempts are rate limited", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "").completeSetup()
		bad := req{method: "GET", path: "/api/v1/clients", user: "admin", pass: "guess"}
		for i := range 10 {
			if w := e.do(e.handler, bad); w.Code != 401 {
				t.Fatalf("attempt %d: %d", i+1, w.Code)
			}
		}
		// Now even the right password waits: a guesser cannot tell.
		w := e.do(e.handler, req{method: "GET", path: "/api/v1/clients"}.asAdmin())
		if w.Code != 429 || decodeError(t, w).Code != "too_many_attempts" || w.Header().Get("Retry-After") != "60" {
			t.Fatalf("after 10 failures: %d Retry-After %q %s", w.Code, w.Header().Get("Retry-After"), w.Body.String())
		}
		// Another address is not blocked.
		if w := e.do(e.handler, req{method: "GET", path: "/api/v1/clients", remote: "[::1]:1"}.asAdmin()); w.Code != 200 {
			t.Fatalf("other address: %d", w.Code)
		}
		e.clock.Add(45 * time.Second)
		if w := e.do(e.handler, req{method: "GET", path: "/api/v1/clients"}.asAdmin()); w.Header().Get("Retry-After") != "15" {
			t.Fatalf("Retry-After after 45s = %q; want 15", w.Header().Get("Retry-After"))
		}
		e.clock.Add(15 * time.Second)
		if w := e.do(e.handler, req{method: "GET", path: "/api/v1/clients"}.asAdmin()); w.Code != 200 {
			t.Fatalf("after the window: %d", w.Code)
		}
	})
}

func TestSetupFlow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	setup := func(code, password string) *httptest.ResponseRecorder {
		body, _ := json.Marshal(setupRequest{SetupCode: code, Password: password})
		return e.do(e.handler, req{method: "POST", path: "/api/v1/setup", body: string(body), user: "-"})
	}
	// Before setup nothing authenticates.
	if w := e.do(e.handler, req{method: "GET", path: "/api/v1/clients"}.asAdmin()); w.Code != 401 {
		t.Fatalf("before setup: %d", w.Code)
	}
	if w := setup("WRNG-CODE-XXXX", adminPassword); w.Code != 403 || decodeError(t, w).Code != "bad_setup_code" {
		t.Fatalf("wrong code: %d %s", w.Code, w.Body.String())
	}
	if w := setup(e.setupCode, "short"); w.Code != 422 || decodeError(t, w).Code != "weak_password" {
		t.Fatalf("weak password: %d %s", w.Code, w.Body.String())
	}
	if w := e.do(e.handler, req{method: "POST", path: "/api/v1/setup", body: "setup_code=x", contentType: "application/x-www-form-urlencoded", user: "-"}); w.Code != 415 {
		t.Fatalf("form body: %d", w.Code)
	}
	if w := setup(e.setupCode, adminPassword); w.Code != 204 {
		t.Fatalf("setup: %d %s", w.Code, w.Body.String())
	}
	if w := setup(e.setupCode, adminPassword); w.Code != 409 || decodeError(t, w).Code != "setup_done" {
		t.Fatalf("second setup: %d %s", w.Code, w.Body.String())
	}
	if w := e.do(e.handler, req{method: "GET", path: "/api/v1/clients"}.asAdmin()); w.Code != 200 {
		t.Fatalf("after setup: %d", w.Code)
	}
	if w := setup(e.setupCode, adminPassword); w.Code != 409 {
		t.Fatalf("setup from LAN-less loopback again: %d", w.Code)
	}
	if w := e.do(e.handler, req{method: "POST", path: "/api/v1/setup", body: "{}", user: "-", remote: "192.0.2.1:1234"}); w.Code != 403 {
		t.Fatalf("setup from the LAN: %d", w.Code)
	}
}

func TestSetupCodeGuessesAreRateLimited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	for range 10 {
		w := e.do(e.handler, req{method: "POST", path: "/api/v1/setup", body: `{"setup_code":"AAAA-AAAA-AAAA","password":"long enough 1"}`, user: "-"})
		if w.Code != 403 {
			t.Fatalf("guess: %d", w.Code)
		}
	}
	body := `{"setup_code":"` + e.setupCode + `","password":"long enough 1"}`
	if w := e.do(e.handler, req{method: "POST", path: "/api/v1/setup", body: body, user: "-"}); w.Code != 429 {
		t.Fatalf("right code after 10 guesses: %d; want 429", w.Code)
	}
}

func TestAdminPasswordAndAPIKeys(t *testing.T) {
	t.Parallel()
	runRoutes(t, []routeCase{
		{name: "change admin password", r: req{method: "PUT", path: "/api/v1/admin/password",
			body: `{"current_password":"` + adminPassword + `","new_password":"brand new Pass"}`}, status: 204,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if !e.admin.CheckAdmin("brand new Pass") {
					t.Fatal("password not changed")
				}
			}},
		{name: "change admin password wrong current", r: req{method: "PUT", path: "/api/v1/admin/password",
			body: `{"current_password":"nope","new_password":"brand new Pass"}`}, status: 403, code: "wrong_password"},
		{name: "change admin password weak", r: req{method: "PUT", path: "/api/v1/admin/password",
			body: `{"current_password":"` + adminPassword + `","new_password":"aaaaaaaaaaaaa"}`}, status: 422, code: "weak_password"},
		{name: "create api key", r: req{method: "POST", path: "/api/v1/apikeys", body: `{"name":"backup"}`}, status: 201,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				got := decodeBody[apiKeyCreated](t, w)
				if _, ok := e.admin.CheckAPIKey(got.ID, got.Secret); !ok || got.Name != "backup" {
					t.Fatalf("created %+v does not authenticate", got)
				}
				if w.Header().Get("Location") != "/api/v1/apikeys/"+got.ID {
					t.Fatalf("Location %q", w.Header().Get("Location"))
				}
			}},
		{name: "create api key without name", r: req{method: "POST", path: "/api/v1/apikeys", body: `{"name":""}`}, status: 422, code: "invalid_name"},
		{name: "list api keys hides secrets", r: req{method: "GET", path: "/api/v1/apikeys"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if strings.Contains(w.Body.String(), e.keySecret) || strings.Contains(w.Body.String(), "secret") {
					t.Fatalf("listing shows a secret: %s", w.Body.String())
				}
				if got := decodeBody[[]admin.APIKey](t, w); len(got) != 1 || got[0].ID != e.keyID {
					t.Fatalf("got %+v", got)
				}
			}},
		{name: "delete unknown api key", r: req{method: "DELETE", path: "/api/v1/apikeys/egk_unknown"}, status: 404, code: "api_key_not_found"},
	})

	t.Run("delete api key", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "").completeSetup()
		if w := e.do(e.handler, req{method: "DELETE", path: "/api/v1/apikeys/" + e.keyID}.asAdmin()); w.Code != 204 {
			t.Fatalf("delete: %d", w.Code)
		}
		if w := e.do(e.handler, req{method: "GET", path: "/api/v1/clients", user: e.keyID, pass: e.keySecret}); w.Code != 401 {
			t.Fatalf("deleted key: %d", w.Code)
		}
	})
}

func TestUserRoutes(t *testing.T) {
	t.Parallel()
	addAlice := func(t *testing.T, e *env) {
		h, err := auth.NewHash("pbkdf2-sha256", "alice-pw", 1000)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.users.Add(auth.User{Username: "alice", PasswordHash: h}); err != nil {
			t.Fatal(err)
		}
		if err := e.users.AddClientID(auth.ClientIDEntry{ClientID: "dev-1", PasswordHash: h}); err != nil {
			t.Fatal(err)
		}
	}
	noHashes := func(t *testing.T, w *httptest.ResponseRecorder) {
		t.Helper()
		if strings.Contains(w.Body.String(), "pbkdf2") || strings.Contains(w.Body.String(), "hash") {
			t.Fatalf("answer shows a hash: %s", w.Body.String())
		}
	}
	storedPassword := func(t *testing.T, e *env, name, password string) {
		t.Helper()
		u, err := e.users.Get(name)
		if err != nil || !auth.VerifyPassword(u.PasswordHash, password) {
			t.Fatalf("user %q: password %q not stored (%v)", name, password, err)
		}
	}
	runRoutes(t, []routeCase{
		{name: "list", before: addAlice, r: req{method: "GET", path: "/api/v1/users"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				noHashes(t, w)
				got := decodeBody[[]userView](t, w)
				if len(got) != 1 || got[0].Username != "alice" || !got[0].HasPassword {
					t.Fatalf("got %+v", got)
				}
			}},
		{name: "create", r: req{method: "POST", path: "/api/v1/users", body: `{"username":"bob","password":"bob-pw","superuser":true}`}, status: 201,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				noHashes(t, w)
				if got := decodeBody[userView](t, w); got.Username != "bob" || !got.Superuser {
					t.Fatalf("got %+v", got)
				}
				if w.Header().Get("Location") != "/api/v1/users/bob" {
					t.Fatalf("Location %q", w.Header().Get("Location"))
				}
				storedPassword(t, e, "bob", "bob-pw")
			}},
		{name: "create imports an EMQ sha256 hash", r: req{method: "POST", path: "/api/v1/users",
			// sha256("public"), EMQ's password_hash = sha256 without salt.
			body: `{"username":"emq","password_hash":{"kind":"sha256","hash":"efa1f375d76194fa51a3556a97e641e61685f914d446979da50a551a4333ffd7"}}`}, status: 201,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				storedPassword(t, e, "emq", "public")
			}},
		{name: "create imports a salted hash", r: req{method: "POST", path: "/api/v1/users",
			body: `{"username":"salty","password_hash":{"kind":"sha256","hash":"not-hex","salt":"s","salt_position":"prefix"}}`}, status: 422, code: "invalid_password_hash"},
		{name: "create with both password and hash", r: req{method: "POST", path: "/api/v1/users",
			body: `{"username":"x","password":"p","password_hash":{"kind":"plain","hash":"p"}}`}, status: 400},
		{name: "create duplicate", before: addAlice, r: req{method: "POST", path: "/api/v1/users", body: `{"username":"alice","password":"x"}`}, status: 409, code: "already_exists"},
		{name: "create empty name", r: req{method: "POST", path: "/api/v1/users", body: `{"username":"","password":"x"}`}, status: 422, code: "invalid_name"},
		{name: "create empty password", r: req{method: "POST", path: "/api/v1/users", body: `{"username":"x","password":""}`}, status: 422, code: "invalid_password"},
		{name: "create unknown field", r: req{method: "POST", path: "/api/v1/users", body: `{"username":"x","pasword":"typo"}`}, status: 400, code: "bad_json"},
		{name: "get", before: addAlice, r: req{method: "GET", path: "/api/v1/users/alice"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) { noHashes(t, w) }},
		{name: "get unknown", r: req{method: "GET", path: "/api/v1/users/nobody"}, status: 404, code: "user_not_found"},
		{name: "put password", before: addAlice, r: req{method: "PUT", path: "/api/v1/users/alice", body: `{"password":"new-pw"}`}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) { storedPassword(t, e, "alice", "new-pw") }},
		{name: "put superuser", before: addAlice, r: req{method: "PUT", path: "/api/v1/users/alice", body: `{"superuser":true}`}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if got := decodeBody[userView](t, w); !got.Superuser {
					t.Fatalf("got %+v", got)
				}
				storedPassword(t, e, "alice", "alice-pw")
			}},
		{name: "put nothing", before: addAlice, r: req{method: "PUT", path: "/api/v1/users/alice", body: `{}`}, status: 400},
		{name: "put unknown", r: req{method: "PUT", path: "/api/v1/users/nobody", body: `{"superuser":true}`}, status: 404, code: "user_not_found"},
		{name: "delete", before: addAlice, r: req{method: "DELETE", path: "/api/v1/users/alice"}, status: 204},
		{name: "delete unknown", r: req{method: "DELETE", path: "/api/v1/users/nobody"}, status: 404, code: "user_not_found"},

		{name: "clientids list", before: addAlice, r: req{method: "GET", path: "/api/v1/clientids"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				noHashes(t, w)
				if got := decodeBody[[]clientIDView](t, w); len(got) != 1 || got[0].ClientID != "dev-1" {
					t.Fatalf("got %+v", got)
				}
			}},
		{name: "clientids create", r: req{method: "POST", path: "/api/v1/clientids", body: `{"clientid":"dev-2","password":"pw2"}`}, status: 201,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				noHashes(t, w)
				if ent, err := e.users.GetClientID("dev-2"); err != nil || !auth.VerifyPassword(ent.PasswordHash, "pw2") {
					t.Fatalf("entry %+v %v", ent, err)
				}
			}},
		{name: "clientids create duplicate", before: addAlice, r: req{method: "POST", path: "/api/v1/clientids", body: `{"clientid":"dev-1","password":"x"}`}, status: 409},
		{name: "clientids get", before: addAlice, r: req{method: "GET", path: "/api/v1/clientids/dev-1"}, status: 200},
		{name: "clientids get unknown", r: req{method: "GET", path: "/api/v1/clientids/none"}, status: 404, code: "client_id_not_found"},
		{name: "clientids put", before: addAlice, r: req{method: "PUT", path: "/api/v1/clientids/dev-1", body: `{"password":"next"}`}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if ent, _ := e.users.GetClientID("dev-1"); !auth.VerifyPassword(ent.PasswordHash, "next") {
					t.Fatal("password not changed")
				}
			}},
		{name: "clientids put unknown", r: req{method: "PUT", path: "/api/v1/clientids/none", body: `{"password":"next"}`}, status: 404},
		{name: "clientids delete", before: addAlice, r: req{method: "DELETE", path: "/api/v1/clientids/dev-1"}, status: 204},
		{name: "clientids delete unknown", r: req{method: "DELETE", path: "/api/v1/clientids/none"}, status: 404},
	})
}

// lockedFile locks the ACL's nomatch and the TCP listener's bind.
const lockedFile = `{"acl":{"nomatch":"deny"},"listeners":{"tcp":{"bind":"127.0.0.1:1883"}}}`

func TestSettingsRoutes(t *testing.T) {
	t.Parallel()
	runRoutes(t, []routeCase{
		{name: "get", file: lockedFile, r: req{method: "GET", path: "/api/v1/settings"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				got := decodeBody[map[string]any](t, w)
				locked, _ := got["locked"].([]any)
				if got["version"] != 0.0 || len(locked) != 2 || got["settings"].(map[string]any)["node"] != "edgegate" {
					t.Fatalf("got %v", got)
				}
			}},
		{name: "patch", r: req{method: "PATCH", path: "/api/v1/settings", contentType: "application/merge-patch+json", body: `{"log":{"level":"debug"}}`}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				got := decodeBody[settingsView](t, w)
				if got.Version != 1 || got.Author != "admin" || got.Settings.Log.Level != "debug" {
					t.Fatalf("got %+v", got)
				}
			}},
		{name: "patch a locked path", file: lockedFile, r: req{method: "PATCH", path: "/api/v1/settings", body: `{"listeners":{"tcp":{"bind":":1884"}}}`}, status: 409, code: "locked_setting",
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				got := decodeError(t, w)
				if len(got.Paths) != 1 || got.Paths[0] != "listeners.tcp.bind" || !strings.Contains(got.Message, "listeners.tcp.bind") {
					t.Fatalf("got %+v", got)
				}
			}},
		{name: "patch an invalid value", r: req{method: "PATCH", path: "/api/v1/settings", body: `{"log":{"level":"loud"},"sys":{"clients_alarm_percent":500}}`}, status: 422, code: "invalid_settings",
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				got := decodeError(t, w)
				paths := map[string]bool{}
				for _, f := range got.Fields {
					paths[f.Path] = f.Problem != ""
				}
				if !paths["log.level"] || !paths["sys.clients_alarm_percent"] {
					t.Fatalf("fields %+v; want log.level and sys.clients_alarm_percent", got.Fields)
				}
				if v, _ := e.settings.Current(); v.Version != 0 {
					t.Fatal("an invalid patch was saved")
				}
			}},
		{name: "patch an unknown setting", r: req{method: "PATCH", path: "/api/v1/settings", body: "{\n  \"lgo\": {}\n}"}, status: 422, code: "invalid_settings",
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if got := decodeError(t, w); !strings.Contains(got.Message, "2:4") || !strings.Contains(got.Message, "lgo") {
					t.Fatalf("message %q; want the position 2:4 and the name", got.Message)
				}
			}},
		{name: "patch not an object", r: req{method: "PATCH", path: "/api/v1/settings", body: `[1]`}, status: 400, code: "bad_json"},
		{name: "patch empty", r: req{method: "PATCH", path: "/api/v1/settings", body: `{}`}, status: 400, code: "empty_patch"},
		{name: "patch saved but not applied", before: func(t *testing.T, e *env) { e.settings.applyErr = errBoom },
			r: req{method: "PATCH", path: "/api/v1/settings", body: `{"log":{"level":"debug"}}`}, status: 500, code: "apply_failed",
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if strings.Contains(w.Body.String(), "disk on fire") {
					t.Fatal("internal error leaked")
				}
			}},
		{name: "history", before: func(t *testing.T, e *env) {
			for _, p := range []string{`{"log":{"level":"debug"}}`, `{"log":{"level":"warn"}}`} {
				if _, err := e.settings.Apply(t.Context(), []byte(p), "admin"); err != nil {
					t.Fatal(err)
				}
			}
		}, r: req{method: "GET", path: "/api/v1/settings/history"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				got := decodeBody[[]map[string]any](t, w)
				if len(got) != 2 || got[0]["version"] != 2.0 {
					t.Fatalf("got %v", got)
				}
			}},
		{name: "history empty", r: req{method: "GET", path: "/api/v1/settings/history"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if strings.TrimSpace(w.Body.String()) != "[]" {
					t.Fatalf("got %s", w.Body.String())
				}
			}},
	})
}

func TestACLRoutes(t *testing.T) {
	t.Parallel()
	const rules = `{"nomatch":"deny","rules":[
		{"permission":"allow","who":{"user":"alice"},"access":"publish","topics":["sensors/%u/#"]},
		{"permission":"deny","who":"all","access":"subscribe","topics":[{"eq":"#"}]},
		{"permission":"allow","who":{"ipaddr":"10.0.0.0/8"},"access":"pubsub","topics":["lan/#"]}
	]}`
	putRules := func(t *testing.T, e *env) {
		if w := e.do(e.handler, req{method: "PUT", path: "/api/v1/acl", body: rules}.asAdmin()); w.Code != 200 {
			t.Fatalf("PUT acl: %d %s", w.Code, w.Body.String())
		}
	}
	check := func(body string, matched bool, rule int, decision string) func(*testing.T, *env, *httptest.ResponseRecorder) {
		return func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
			got := decodeBody[aclDecision](t, w)
			if got.Matched != matched || got.Rule != rule || got.Decision != decision {
				t.Fatalf("check %s = %+v; want matched=%v rule=%d decision=%s", body, got, matched, rule, decision)
			}
		}
	}
	checkReq := func(body string) req { return req{method: "POST", path: "/api/v1/acl/check", body: body} }
	const (
		alicePub  = `{"username":"alice","clientid":"c1","ipaddr":"192.168.1.2","access":"publish","topic":"sensors/alice/t"}`
		bobPub    = `{"username":"bob","clientid":"c2","ipaddr":"192.168.1.2","access":"publish","topic":"sensors/alice/t"}`
		subAll    = `{"username":"bob","access":"subscribe","topic":"#"}`
		lanPub    = `{"ipaddr":"10.1.2.3","access":"publish","topic":"lan/x"}`
		localSys  = `{"ipaddr":"127.0.0.1","access":"subscribe","topic":"$SYS/#"}`
		remoteSys = `{"ipaddr":"192.0.2.9","access":"subscribe","topic":"$SYS/#"}`
	)
	runRoutes(t, []routeCase{
		{name: "get default", r: req{method: "GET", path: "/api/v1/acl"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				got := decodeBody[map[string]any](t, w)
				if got["default"] != true || got["nomatch"] != "allow" || len(got["rules"].([]any)) != 5 {
					t.Fatalf("got %v", got)
				}
			}},
		{name: "put", r: req{method: "PUT", path: "/api/v1/acl", body: rules}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				got := decodeBody[map[string]any](t, w)
				if got["default"] != false || got["nomatch"] != "deny" || len(got["rules"].([]any)) != 3 {
					t.Fatalf("got %v", got)
				}
				if c := e.settings.Effective().Config.ACL; len(c.Rules) != 3 || c.NoMatch != "deny" {
					t.Fatalf("settings ACL %+v", c)
				}
			}},
		{name: "put empty rules means defaults", before: putRules, r: req{method: "PUT", path: "/api/v1/acl", body: `{"nomatch":"allow","rules":[]}`}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if got := decodeBody[aclView](t, w); !got.Default || len(got.Rules) != 5 {
					t.Fatalf("got %+v", got)
				}
			}},
		{name: "put invalid rule", r: req{method: "PUT", path: "/api/v1/acl",
			body: `{"nomatch":"maybe","rules":[{"permission":"allow","who":"all"},{"permission":"allow","who":"all","access":"publish","topics":["a/#/b"]}]}`},
			status: 422, code: "invalid_settings",
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				got := decodeError(t, w)
				if len(got.Fields) != 2 || got.Fields[0].Path != "acl.nomatch" || got.Fields[1].Path != "acl.rules[1]" {
					t.Fatalf("fields %+v", got.Fields)
				}
			}},
		{name: "put locked nomatch", file: lockedFile, r: req{method: "PUT", path: "/api/v1/acl", body: strings.Replace(rules, `"deny"`, `"allow"`, 1)},
			status: 409, code: "locked_setting",
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if got := decodeError(t, w); len(got.Paths) != 1 || got.Paths[0] != "acl.nomatch" {
					t.Fatalf("got %+v", got)
				}
			}},
		{name: "put with locked nomatch unchanged", file: lockedFile, r: req{method: "PUT", path: "/api/v1/acl", body: rules}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if got := decodeBody[aclView](t, w); got.Default || len(got.Rules) != 3 || got.NoMatch != "deny" {
					t.Fatalf("got %+v", got)
				}
			}},
		{name: "check rule 0 allows", before: putRules, r: checkReq(alicePub), status: 200, check: check(alicePub, true, 0, "allow")},
		{name: "check nomatch", before: putRules, r: checkReq(bobPub), status: 200, check: check(bobPub, false, -1, "deny")},
		{name: "check deny #", before: putRules, r: checkReq(subAll), status: 200, check: check(subAll, true, 1, "deny")},
		{name: "check ipaddr", before: putRules, r: checkReq(lanPub), status: 200, check: check(lanPub, true, 2, "allow")},
		{name: "check default rules local $SYS", r: checkReq(localSys), status: 200, check: check(localSys, true, 1, "allow")},
		{name: "check default rules remote $SYS", r: checkReq(remoteSys), status: 200, check: check(remoteSys, true, 3, "deny")},
		{name: "check bad access", r: checkReq(`{"access":"read","topic":"a"}`), status: 400, code: "invalid_access"},
		{name: "check bad ip", r: checkReq(`{"access":"publish","topic":"a","ipaddr":"10.0.0.300"}`), status: 400, code: "invalid_ipaddr"},
		{name: "check wildcard publish", r: checkReq(`{"access":"publish","topic":"a/#"}`), status: 400, code: "invalid_topic"},
	})
}

func TestPublishRoutes(t *testing.T) {
	t.Parallel()
	const form = "application/x-www-form-urlencoded"
	published := func(want broker.Message) func(*testing.T, *env, *httptest.ResponseRecorder) {
		return func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
			if strings.TrimSpace(w.Body.String()) != `{"result":"ok"}` {
				t.Fatalf("body %s", w.Body.String())
			}
			got, ok := e.broker.lastPublished()
			if !ok || got.Topic != want.Topic || string(got.Payload) != string(want.Payload) || got.QoS != want.QoS || got.Retain != want.Retain || got.From != want.From {
				t.Fatalf("published %+v; want %+v", got, want)
			}
		}
	}
	nothingPublished := func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
		if m, ok := e.broker.lastPublished(); ok {
			t.Fatalf("published %+v", m)
		}
	}
	formReq := func(body string) req {
		return req{method: "POST", path: "/mqtt/publish", contentType: form, body: body}
	}
	runRoutes(t, []routeCase{
		// Seed 002's exact curl body.
		{name: "seed curl", r: formReq("qos=1&retain=0&topic=/a/b/c&message=hello from http..."), status: 200,
			check: published(broker.Message{Topic: "/a/b/c", Payload: []byte("hello from http..."), QoS: 1, From: defaultPublisher})},
		{name: "retain true with client", r: formReq("topic=t&message=x&retain=true&client=erp"), status: 200,
			check: published(broker.Message{Topic: "t", Payload: []byte("x"), Retain: true, From: "erp"})},
		{name: "defaults", r: formReq("topic=t"), status: 200,
			check: published(broker.Message{Topic: "t", Payload: []byte{}, From: defaultPublisher})},
		{name: "escaped", r: formReq("topic=a%2Fb&message=50%25+off%26more"), status: 200,
			check: published(broker.Message{Topic: "a/b", Payload: []byte("50% off&more"), From: defaultPublisher})},
		{name: "multipart", r: req{method: "POST", path: "/mqtt/publish", contentType: "multipart/form-data; boundary=XX",
			body: "--XX\r\nContent-Disposition: form-data; name=\"topic\"\r\n\r\nm/p\r\n--XX\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\nhi\r\n--XX--\r\n"},
			status: 200, check: published(broker.Message{Topic: "m/p", Payload: []byte("hi"), From: defaultPublisher})},
		{name: "wildcard topic", r: formReq("topic=a/%23&message=x"), status: 400, code: "invalid_topic", check: nothingPublished},
		{name: "plus topic", r: formReq("topic=a/%2B/b&message=x"), status: 400, code: "invalid_topic", check: nothingPublished},
		{name: "empty topic", r: formReq("topic=&message=x"), status: 400, code: "invalid_topic", check: nothingPublished},
		{name: "missing topic", r: formReq("message=x"), status: 400, code: "invalid_topic", check: nothingPublished},
		{name: "invalid utf-8 topic", r: formReq("topic=%FF&message=x"), status: 400, code: "invalid_topic", check: nothingPublished},
		{name: "qos 3", r: formReq("topic=t&qos=3"), status: 400, code: "invalid_qos", check: nothingPublished},
		{name: "retain yes", r: formReq("topic=t&retain=yes"), status: 400, code: "invalid_retain", check: nothingPublished},
		{name: "unknown field", r: formReq("topic=t&payload=x"), status: 400, code: "unknown_field", check: nothingPublished},
		{name: "duplicate field", r: formReq("topic=t&topic=u"), status: 400, code: "duplicate_field", check: nothingPublished},
		{name: "query is not read", r: req{method: "POST", path: "/mqtt/publish?topic=q", contentType: form, body: "message=x"}, status: 400, code: "invalid_topic"},
		{name: "json to the form route", r: req{method: "POST", path: "/mqtt/publish", body: `{"topic":"t"}`}, status: 415, code: "unsupported_media_type"},
		{name: "form needs auth", r: req{method: "POST", path: "/mqtt/publish", contentType: form, body: "topic=t", user: "admin", pass: "x"}, status: 401},
		{name: "broker failure", before: func(t *testing.T, e *env) { e.broker.publishErr = errBoom }, r: formReq("topic=t"), status: 500, code: "internal_error"},
		{name: "larger than max packet size", before: func(t *testing.T, e *env) {
			if _, err := e.settings.Apply(t.Context(), []byte(`{"mqtt":{"max_packet_size":64}}`), "t"); err != nil {
				t.Fatal(err)
			}
		}, r: formReq("topic=t&message=" + strings.Repeat("x", 60)), status: 413, code: "message_too_large", check: nothingPublished},

		{name: "json plain", r: req{method: "POST", path: "/api/v1/publish", body: `{"topic":"x/y","payload":"hi","qos":2,"retain":true,"clientid":"ui"}`}, status: 200,
			check: published(broker.Message{Topic: "x/y", Payload: []byte("hi"), QoS: 2, Retain: true, From: "ui"})},
		{name: "json base64", r: req{method: "POST", path: "/api/v1/publish", body: `{"topic":"x","payload":"AP8=","encoding":"base64"}`}, status: 200,
			check: published(broker.Message{Topic: "x", Payload: []byte{0, 0xff}, From: defaultPublisher})},
		{name: "json bad base64", r: req{method: "POST", path: "/api/v1/publish", body: `{"topic":"x","payload":"!!","encoding":"base64"}`}, status: 400, code: "invalid_payload"},
		{name: "json bad encoding", r: req{method: "POST", path: "/api/v1/publish", body: `{"topic":"x","encoding":"hex"}`}, status: 400, code: "invalid_encoding"},
		{name: "json wildcard", r: req{method: "POST", path: "/api/v1/publish", body: `{"topic":"x/#"}`}, status: 400, code: "invalid_topic"},
		{name: "json empty topic", r: req{method: "POST", path: "/api/v1/publish", body: `{"payload":"x"}`}, status: 400, code: "invalid_topic"},
		{name: "json qos -1", r: req{method: "POST", path: "/api/v1/publish", body: `{"topic":"x","qos":-1}`}, status: 400, code: "invalid_qos"},
		{name: "json qos as string", r: req{method: "POST", path: "/api/v1/publish", body: `{"topic":"x","qos":"1"}`}, status: 400, code: "bad_json"},
	})
}

func TestTraceRoutes(t *testing.T) {
	t.Parallel()
	start := func(kind, target, name string) func(*testing.T, *env) {
		return func(t *testing.T, e *env) {
			if _, err := e.traces.Start(trace.Kind(kind), target, name); err != nil {
				t.Fatal(err)
			}
		}
	}
	runRoutes(t, []routeCase{
		{name: "start client", r: req{method: "POST", path: "/api/v1/traces", body: `{"kind":"client","target":"c1","name":"c1.log"}`}, status: 201,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if got := decodeBody[trace.Info](t, w); got.Kind != trace.Client || got.Target != "c1" {
					t.Fatalf("got %+v", got)
				}
			}},
		{name: "start duplicate", before: start("client", "c1", "a"), r: req{method: "POST", path: "/api/v1/traces", body: `{"kind":"client","target":"c1","name":"b"}`}, status: 409, code: "trace_conflict"},
		{name: "start bad name", r: req{method: "POST", path: "/api/v1/traces", body: `{"kind":"topic","target":"a/#","name":"../x"}`}, status: 422, code: "invalid_trace_name"},
		{name: "start bad kind", r: req{method: "POST", path: "/api/v1/traces", body: `{"kind":"ip","target":"x","name":"x"}`}, status: 400, code: "invalid_kind"},
		{name: "list", before: start("topic", "a/#", "t"), r: req{method: "GET", path: "/api/v1/traces"}, status: 200,
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if got := decodeBody[[]trace.Info](t, w); len(got) != 1 || got[0].Target != "a/#" {
					t.Fatalf("got %+v", got)
				}
			}},
		{name: "stop topic with escaped #", before: start("topic", "/a/#", "t"), r: req{method: "DELETE", path: "/api/v1/traces/topic/%2Fa%2F%23"}, status: 204},
		{name: "stop topic unescaped slashes", before: start("topic", "a/b/+", "t"), r: req{method: "DELETE", path: "/api/v1/traces/topic/a/b/+"}, status: 204},
		{name: "stop unknown", r: req{method: "DELETE", path: "/api/v1/traces/client/none"}, status: 404, code: "trace_not_found"},
		{name: "stop bad kind", r: req{method: "DELETE", path: "/api/v1/traces/ip/x"}, status: 400, code: "invalid_kind"},
	})
}

func TestRequestErrors(t *testing.T) {
	t.Parallel()
	runRoutes(t, []routeCase{
		{name: "bad json with position", r: req{method: "POST", path: "/api/v1/users", body: "{\n  \"username\": \"x\",\n  \"password\": nope\n}"}, status: 400, code: "bad_json",
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if got := decodeError(t, w); !strings.Contains(got.Message, "line 3, column 16") {
					t.Fatalf("message %q; want line 3, column 16 (the 'o' of nope)", got.Message)
				}
			}},
		{name: "wrong type with position", r: req{method: "POST", path: "/api/v1/users", body: `{"username": 7}`}, status: 400, code: "bad_json",
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if got := decodeError(t, w); !strings.Contains(got.Message, "line 1, column") || !strings.Contains(got.Message, "username") {
					t.Fatalf("message %q", got.Message)
				}
			}},
		{name: "truncated json", r: req{method: "POST", path: "/api/v1/users", body: `{"username": "x"`}, status: 400, code: "bad_json"},
		{name: "trailing data", r: req{method: "POST", path: "/api/v1/users", body: `{"username":"x","password":"y"} {}`}, status: 400, code: "bad_json"},
		{name: "empty body", r: req{method: "POST", path: "/api/v1/apikeys", contentType: "application/json"}, status: 400, code: "bad_json"},
		{name: "unknown field", r: req{method: "POST", path: "/api/v1/apikeys", body: `{"name":"x","admin":true}`}, status: 400, code: "bad_json",
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if got := decodeError(t, w); !strings.Contains(got.Message, `"admin"`) {
					t.Fatalf("message %q", got.Message)
				}
			}},
		{name: "wrong content type", r: req{method: "POST", path: "/api/v1/apikeys", body: `{"name":"x"}`, contentType: "text/plain"}, status: 415, code: "unsupported_media_type"},
		{name: "no content type", r: req{method: "POST", path: "/api/v1/apikeys", body: `{"name":"x"}`, contentType: "-"}, status: 415, code: "unsupported_media_type"},
		{name: "json charset is fine", r: req{method: "POST", path: "/api/v1/apikeys", body: `{"name":"x"}`, contentType: "application/json; charset=utf-8"}, status: 201},
		{name: "method not allowed", r: req{method: "PUT", path: "/api/v1/clients"}, status: 405, code: "method_not_allowed",
			check: func(t *testing.T, e *env, w *httptest.ResponseRecorder) {
				if !strings.Contains(w.Header().Get("Allow"), "GET") {
					t.Fatalf("Allow %q", w.Header().Get("Allow"))
				}
			}},
		{name: "unknown route", r: req{method: "GET", path: "/api/v1/nothing"}, status: 404, code: "not_found"},
		{name: "dot segments", r: req{method: "GET", path: "/api/v1/x/../clients"}, status: 400, code: "bad_path"},
	})

	t.Run("body too large", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "", func(o *Options) { o.MaxBodyBytes = 64 }).completeSetup()
		big := `{"name":"` + strings.Repeat("x", 100) + `"}`
		w := e.do(e.handler, req{method: "POST", path: "/api/v1/apikeys", body: big}.asAdmin())
		if w.Code != 413 || decodeError(t, w).Code != "body_too_large" {
			t.Fatalf("JSON: %d %s", w.Code, w.Body.String())
		}
		w = e.do(e.handler, req{method: "POST", path: "/mqtt/publish", contentType: "application/x-www-form-urlencoded", body: "topic=t&message=" + strings.Repeat("x", 100)}.asAdmin())
		if w.Code != 413 || decodeError(t, w).Code != "body_too_large" {
			t.Fatalf("form: %d %s", w.Code, w.Body.String())
		}
	})

	t.Run("body limit from settings", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, `{"api":{"max_body_bytes":32}}`).completeSetup()
		w := e.do(e.handler, req{method: "POST", path: "/api/v1/apikeys", body: `{"name":"` + strings.Repeat("x", 40) + `"}`}.asAdmin())
		if w.Code != 413 {
			t.Fatalf("%d %s", w.Code, w.Body.String())
		}
	})

	t.Run("missing dependencies answer 503", func(t *testing.T) {
		t.Parallel()
		a := New(Options{})
		for _, path := range []string{"/api/v1/clients", "/api/v1/traces", "/api/v1/settings", "/metrics",
			"/api/certificates", "/api/v1/certificates/x", "/api/v1/ca"} {
			w := httptest.NewRecorder()
			r := httptest.NewRequest("GET", path, nil)
			a.LocalHandler().ServeHTTP(w, r)
			if w.Code != 503 {
				t.Errorf("GET %s without its dependency: %d", path, w.Code)
			}
		}
		// The public routes, which only the TCP handler serves.
		for _, path := range []string{"/pki/ca", "/.well-known/jwks.json"} {
			w := httptest.NewRecorder()
			a.Handler().ServeHTTP(w, httptest.NewRequest("GET", path, nil))
			if w.Code != 503 {
				t.Errorf("GET %s without its dependency: %d", path, w.Code)
			}
		}
	})
}

// TestLogsNoSecrets runs requests that carry secrets and checks the log.
func TestLogsNoSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "")
	setupBody := `{"setup_code":"` + e.setupCode + `","password":"` + adminPassword + `"}`
	e.do(e.handler, req{method: "POST", path: "/api/v1/setup", body: setupBody, user: "-"})
	e.do(e.handler, req{method: "GET", path: "/api/v1/clients"}.asAdmin())
	e.do(e.handler, req{method: "GET", path: "/api/v1/clients", user: "admin", pass: "wrong-guess-secret"})
	w := e.do(e.handler, req{method: "POST", path: "/api/v1/apikeys", body: `{"name":"k"}`}.asAdmin())
	key := decodeBody[apiKeyCreated](t, w)
	e.do(e.handler, req{method: "GET", path: "/api/v1/clients", user: key.ID, pass: key.Secret})
	e.do(e.handler, req{method: "POST", path: "/api/v1/users", body: `{"username":"u","password":"mqtt-user-secret"}`}.asAdmin())
	e.do(e.handler, req{method: "POST", path: "/mqtt/publish", contentType: "application/x-www-form-urlencoded", body: "topic=t&message=payload-secret"}.asAdmin())

	logs := e.log.String()
	if !strings.Contains(logs, `"msg":"api request"`) || !strings.Contains(logs, `"status":201`) {
		t.Fatalf("requests not logged at debug:\n%s", logs)
	}
	for _, s := range []string{e.setupCode, adminPassword, "wrong-guess-secret", key.Secret, "mqtt-user-secret", "payload-secret", "Basic ", "Authorization"} {
		if strings.Contains(logs, s) {
			t.Errorf("log contains %q:\n%s", s, logs)
		}
	}
}

func TestNewServerTimeouts(t *testing.T) {
	t.Parallel()
	s := NewServer(http.NotFoundHandler())
	if s.ReadHeaderTimeout != 5*time.Second || s.ReadTimeout != 30*time.Second || s.WriteTimeout != 30*time.Second ||
		s.IdleTimeout != 120*time.Second || s.MaxHeaderBytes != 64<<10 {
		t.Fatalf("server %+v", s)
	}
}
