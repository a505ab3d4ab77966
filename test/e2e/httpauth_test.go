package e2e

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestHTTPAuthBackend proves seed 002's HTTP auth backend in the chain: the
// gateway asks auth_req (POST, form params with %u %P %c %a filled in) and
// follows its answer — 200 admits, 4xx denies even with anonymous allowed
// after it, a 5xx is ignored (on_error "ignore") so the next link decides —
// and asks acl_req (GET, %u %t %A) for topics no ACL rule matches.
func TestHTTPAuthBackend(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 60*time.Second)
	var (
		mu       sync.Mutex
		authSeen []url.Values
		aclSeen  []url.Values
	)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/auth":
			if r.Method != http.MethodPost {
				http.Error(w, "auth_req must be POST", http.StatusMethodNotAllowed)
				return
			}
			authSeen = append(authSeen, r.PostForm)
			switch u := r.PostForm.Get("username"); {
			case u == "http-user" && r.PostForm.Get("password") == "Http-Pass-1":
				w.WriteHeader(http.StatusOK)
			case u == "flaky":
				w.WriteHeader(http.StatusServiceUnavailable)
			default:
				w.WriteHeader(http.StatusUnauthorized)
			}
		case "/acl":
			aclSeen = append(aclSeen, r.URL.Query())
			// e2e/login is where checkLogin's mosquitto_pub publishes.
			if topic := r.URL.Query().Get("topic"); strings.HasPrefix(topic, "http-ok/") || topic == "e2e/login" {
				w.WriteHeader(http.StatusOK)
				return
			}
			w.WriteHeader(http.StatusForbidden)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(backend.Close)
	if u, _ := url.Parse(backend.URL); u.Hostname() != "127.0.0.1" {
		t.Fatalf("test HTTP backend on %s, want 127.0.0.1", backend.URL)
	}

	d := startDaemon(t, obj{
		"auth": obj{
			"chain":           []any{"http", "anonymous"},
			"allow_anonymous": true,
			"failed_logins":   obj{"max": 1000, "window": "1m"},
			"http": obj{
				"auth_req": obj{"url": backend.URL + "/auth", "method": "post", "params": "username=%u,password=%P,clientid=%c,ipaddr=%a"},
				"acl_req":  obj{"url": backend.URL + "/acl", "method": "get", "params": "username=%u,topic=%t,access=%A"},
				"on_error": "ignore",
			},
		},
		// A rule that matches no one, so every check falls through to acl_req.
		"acl": obj{"nomatch": "deny", "rules": []any{obj{"permission": "allow", "who": obj{"user": "nobody"}}}},
	})

	checkLogin(ctx, t, d, "http-ok", "http-user", "Http-Pass-1", admitted)
	checkLogin(ctx, t, d, "http-bad", "http-user", "wrong-pass", refused) // 401 wins over anonymous
	checkLogin(ctx, t, d, "http-flaky", "flaky", "x", admitted)           // 503 ignored: anonymous admits

	mu.Lock()
	var found bool
	for _, v := range authSeen {
		if v.Get("username") == "http-user" && v.Get("password") == "Http-Pass-1" && v.Get("clientid") == "http-ok" && v.Get("ipaddr") == "127.0.0.1" {
			found = true
		}
	}
	mu.Unlock()
	if !found {
		t.Errorf("auth_req never got username, password, clientid and ipaddr of http-ok: %v", authSeen)
	}

	g := mustConnectGo(ctx, t, tcpDialer(d.addr("tcp"), ""), connOpts{clientID: "http-acl", username: "http-user", password: "Http-Pass-1"})
	g.mustSubscribe(ctx, 1, "http-ok/#")
	if codes, err := g.subscribe(ctx, 1, "other/#"); err != nil || len(codes) != 1 || codes[0] < 0x80 {
		t.Errorf("subscribe other/# with acl_req answering 403: codes %v err %v, want refused", codes, err)
	}
	g.mustPublish(ctx, "http-ok/x", 1, false, "via-acl-req")
	g.expect(ctx, "http-ok/x", "via-acl-req")
	mu.Lock()
	defer mu.Unlock()
	var sub, pub bool
	for _, v := range aclSeen {
		if v.Get("username") == "http-user" && v.Get("topic") == "http-ok/#" && v.Get("access") == "1" {
			sub = true
		}
		if v.Get("username") == "http-user" && v.Get("topic") == "http-ok/x" && v.Get("access") == "2" {
			pub = true
		}
	}
	if !sub || !pub {
		t.Errorf("acl_req did not get the subscribe (access=1) and publish (access=2) checks: %v", aclSeen)
	}
}
