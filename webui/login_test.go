package webui

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/edgegate/edgegate/gateway/admin"
)

const (
	loginSetupCode = "ABCD-EFGH-JKLM"
	loginPassword  = "correct horse battery staple"
)

// loginClock is a settable Options.Now.
type loginClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *loginClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *loginClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// loginUI is a UI on fakes for the setup and login flows.
type loginUI struct {
	t        *testing.T
	ui       *UI
	handler  http.Handler
	admin    *fakeAdmin
	settings *fakeSettings
	clock    *loginClock
}

// newLoginUI returns a UI before setup; with setUp, the admin password is
// loginPassword already.
func newLoginUI(t *testing.T, setUp bool) *loginUI {
	t.Helper()
	l := &loginUI{
		t: t, admin: &fakeAdmin{code: loginSetupCode}, settings: newFakeSettings(),
		clock: &loginClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
	}
	if setUp {
		l.admin.password = loginPassword
	}
	l.ui = New(Options{
		Admin: l.admin, Broker: fakeBroker{}, Settings: l.settings,
		Limiter: admin.NewFailLimiter(10, time.Minute), Now: l.clock.Now,
	})
	t.Cleanup(l.ui.Close)
	l.handler = l.ui.Handler()
	return l
}

// do serves r, with the session cookie when not nil.
func (l *loginUI) do(r *http.Request, cookie *http.Cookie) *http.Response {
	l.t.Helper()
	if cookie != nil {
		r.AddCookie(cookie)
	}
	w := httptest.NewRecorder()
	l.handler.ServeHTTP(w, r)
	return w.Result()
}

func (l *loginUI) get(path string, cookie *http.Cookie) *http.Response {
	l.t.Helper()
	return l.do(httptest.NewRequest(http.MethodGet, path, nil), cookie)
}

func loginPostForm(path string, form url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func (l *loginUI) post(path string, form url.Values, cookie *http.Cookie) *http.Response {
	l.t.Helper()
	return l.do(loginPostForm(path, form), cookie)
}

// login logs in with loginPassword and returns the session cookie.
func (l *loginUI) login() *http.Cookie {
	l.t.Helper()
	resp := l.post("/login", url.Values{"password": {loginPassword}}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		l.t.Fatalf("log in: status %d, want 303", resp.StatusCode)
	}
	return loginSessionCookie(l.t, resp)
}

// loginSessionCookie returns the session cookie a response sets.
func loginSessionCookie(t *testing.T, resp *http.Response) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			return c
		}
	}
	t.Fatalf("no %s cookie in %q", sessionCookie, resp.Header.Values("Set-Cookie"))
	return nil
}

func loginParse(t *testing.T, resp *http.Response) *goquery.Document {
	t.Helper()
	defer resp.Body.Close()
	doc, err := goquery.NewDocumentFromReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func loginTestID(doc *goquery.Document, id string) *goquery.Selection {
	return doc.Find(`[data-testid="` + id + `"]`)
}

func loginWantRedirect(t *testing.T, resp *http.Response, to string) {
	t.Helper()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != to {
		t.Fatalf("status %d to %q, want 303 to %q", resp.StatusCode, resp.Header.Get("Location"), to)
	}
}

func TestSetupPageRendersForm(t *testing.T) {
	l := newLoginUI(t, false)
	for _, path := range []string{"/", "/clients", "/login"} {
		loginWantRedirect(t, l.get(path, nil), "/setup")
	}
	resp := l.get("/setup", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /setup: status %d", resp.StatusCode)
	}
	doc := loginParse(t, resp)
	form := loginTestID(doc, "setup-form")
	if method, _ := form.Attr("method"); form.Length() != 1 || method != "post" {
		t.Fatalf("setup form: %d found, method %q", form.Length(), method)
	}
	for _, id := range []string{"setup-code", "setup-password", "setup-confirm", "setup-device-name", "setup-timezone"} {
		in := loginTestID(doc, id)
		inputID, _ := in.Attr("id")
		if in.Length() != 1 || inputID == "" || doc.Find(`label[for="`+inputID+`"]`).Length() != 1 {
			t.Errorf("%s: want one input with a label", id)
		}
	}
	if tz, _ := loginTestID(doc, "setup-timezone").Attr("value"); tz != "UTC" {
		t.Errorf("time zone prefilled with %q, want the default UTC", tz)
	}
	if loginTestID(doc, "setup-submit").Length() != 1 {
		t.Error("no submit button")
	}
}

func TestSetupFieldErrors(t *testing.T) {
	valid := url.Values{
		"code": {loginSetupCode}, "password": {loginPassword}, "confirm": {loginPassword},
		"device_name": {"gw-1"}, "timezone": {"Europe/Berlin"},
	}
	for _, tc := range []struct {
		name, field, value, errorID string
	}{
		{"wrong code", "code", "WXYZ-WXYZ-WXYZ", "code-error"},
		{"weak password", "password", "short", "password-error"},
		{"mismatched confirm", "confirm", loginPassword + "!", "confirm-error"},
		{"invalid time zone", "timezone", "Mars/Olympus_Mons", "timezone-error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLoginUI(t, false)
			form := url.Values{}
			for k, v := range valid {
				form[k] = v
			}
			form.Set(tc.field, tc.value)
			if tc.field == "password" {
				form.Set("confirm", tc.value)
			}
			resp := l.post("/setup", form, nil)
			if resp.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422", resp.StatusCode)
			}
			if len(resp.Cookies()) != 0 {
				t.Errorf("a failed setup set cookies %v", resp.Cookies())
			}
			doc := loginParse(t, resp)
			for _, id := range []string{"code-error", "password-error", "confirm-error", "device_name-error", "timezone-error"} {
				if got, want := loginTestID(doc, id).Length(), tc.errorID == id; (got == 1) != want {
					t.Errorf("%s shown %d times, want shown: %v", id, got, want)
				}
			}
			for _, id := range []string{"setup-password", "setup-confirm"} {
				if v, _ := loginTestID(doc, id).Attr("value"); v != "" {
					t.Errorf("%s sent back with value %q", id, v)
				}
			}
			if done, _ := l.admin.SetupDone(); done {
				t.Error("setup done despite the error")
			}
			if len(l.settings.patches) != 0 {
				t.Errorf("settings changed: %q", l.settings.patches)
			}
		})
	}
}

func TestSetupSuccess(t *testing.T) {
	l := newLoginUI(t, false)
	resp := l.post("/setup", url.Values{
		"code": {loginSetupCode}, "password": {loginPassword}, "confirm": {loginPassword},
		"device_name": {"gw-1"}, "timezone": {"Europe/Berlin"},
	}, nil)
	loginWantRedirect(t, resp, "/")
	c := loginSessionCookie(t, resp)
	if !strings.HasPrefix(c.Name, "__Host-") || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" {
		t.Errorf("session cookie %q: want __Host- prefixed, Secure, HttpOnly, SameSite=Strict, Path=/, no Domain", resp.Header.Get("Set-Cookie"))
	}
	if !l.admin.CheckAdmin(loginPassword) {
		t.Error("the admin password is not set")
	}
	if cfg := l.settings.Effective().Config; cfg.Node != "gw-1" || cfg.TimeZone != "Europe/Berlin" {
		t.Errorf("settings: node %q, timezone %q; want gw-1, Europe/Berlin", cfg.Node, cfg.TimeZone)
	}

	// The session is logged in and the dashboard greets once.
	doc := loginParse(t, l.get("/", c))
	if loginTestID(doc, "health").Length() != 1 || !strings.Contains(loginTestID(doc, "flash").Text(), "Setup complete") {
		t.Errorf("dashboard after setup: health %d, flash %q", loginTestID(doc, "health").Length(), loginTestID(doc, "flash").Text())
	}
	if got := loginTestID(doc, "node-name").Text(); got != "gw-1" {
		t.Errorf("node name %q, want gw-1", got)
	}

	// Setup is over: its page and a second post go to the login page.
	loginWantRedirect(t, l.get("/setup", nil), "/login")
	loginWantRedirect(t, l.post("/setup", url.Values{
		"code": {loginSetupCode}, "password": {"another passphrase 2"}, "confirm": {"another passphrase 2"},
		"device_name": {"gw-2"}, "timezone": {"UTC"},
	}, nil), "/login")
	if !l.admin.CheckAdmin(loginPassword) {
		t.Error("a second setup changed the password")
	}
}

func TestLoginWrongPassword(t *testing.T) {
	l := newLoginUI(t, true)
	resp := l.post("/login", url.Values{"password": {"not the password"}}, nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", resp.StatusCode)
	}
	if len(resp.Cookies()) != 0 {
		t.Errorf("a failed login set cookies %v", resp.Cookies())
	}
	doc := loginParse(t, resp)
	if got := loginTestID(doc, "login-error").Text(); got != "Wrong password." {
		t.Errorf("login error %q", got)
	}
}

func TestLoginRedirectsToNextOnThisSiteOnly(t *testing.T) {
	l := newLoginUI(t, true)
	loginWantRedirect(t, l.get("/clients?x=1", nil), "/login?next="+url.QueryEscape("/clients?x=1"))
	doc := loginParse(t, l.get("/login?next="+url.QueryEscape("/clients?x=1"), nil))
	if next, _ := doc.Find(`input[name="next"]`).Attr("value"); next != "/clients?x=1" {
		t.Errorf("login form next = %q", next)
	}
	for next, want := range map[string]string{
		"/clients?x=1":         "/clients?x=1",
		"":                     "/",
		"//evil.example/":      "/",
		"/\\evil.example/":     "/",
		"https://evil.example": "/",
	} {
		loginWantRedirect(t, l.post("/login", url.Values{"password": {loginPassword}, "next": {next}}, nil), want)
	}
}

func TestLoginRateLimited(t *testing.T) {
	l := newLoginUI(t, true)
	for i := range 10 {
		if resp := l.post("/login", url.Values{"password": {"guess " + strconv.Itoa(i)}}, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: status %d, want 401", i, resp.StatusCode)
		}
	}
	// Blocked now, even with the right password.
	resp := l.post("/login", url.Values{"password": {loginPassword}}, nil)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429", resp.StatusCode)
	}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || secs < 1 || secs > 60 {
		t.Errorf("Retry-After %q, want 1..60 seconds", resp.Header.Get("Retry-After"))
	}
	if len(resp.Cookies()) != 0 {
		t.Errorf("a blocked login set cookies %v", resp.Cookies())
	}
	doc := loginParse(t, resp)
	if msg := loginTestID(doc, "login-error").Text(); !strings.Contains(msg, "Too many failed attempts") {
		t.Errorf("login error %q", msg)
	}

	// Another address is not blocked; this one is again after the window.
	other := loginPostForm("/login", url.Values{"password": {loginPassword}})
	other.RemoteAddr = "192.0.2.99:4000"
	loginWantRedirect(t, l.do(other, nil), "/")
	l.clock.advance(time.Minute)
	loginWantRedirect(t, l.post("/login", url.Values{"password": {loginPassword}}, nil), "/")
}

func TestSetupWrongCodesRateLimited(t *testing.T) {
	l := newLoginUI(t, false)
	form := url.Values{
		"code": {"WXYZ-WXYZ-WXYZ"}, "password": {loginPassword}, "confirm": {loginPassword},
		"device_name": {"gw-1"}, "timezone": {"UTC"},
	}
	for i := range 10 {
		if resp := l.post("/setup", form, nil); resp.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("wrong code %d: status %d, want 422", i, resp.StatusCode)
		}
	}
	form.Set("code", loginSetupCode)
	if resp := l.post("/setup", form, nil); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("right code after 10 wrong ones: status %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if done, _ := l.admin.SetupDone(); done {
		t.Error("setup done while blocked")
	}
}

func TestSessionEndsOnLogout(t *testing.T) {
	l := newLoginUI(t, true)
	c := l.login()
	if resp := l.get("/", c); resp.StatusCode != http.StatusOK {
		t.Fatalf("dashboard with the session: status %d", resp.StatusCode)
	}
	resp := l.post("/logout", nil, c)
	loginWantRedirect(t, resp, "/login")
	if cleared := loginSessionCookie(t, resp); cleared.MaxAge >= 0 || cleared.Value != "" {
		t.Errorf("logout cookie %q, want it cleared", resp.Header.Get("Set-Cookie"))
	}
	// The old cookie no longer works, for pages and for actions.
	loginWantRedirect(t, l.get("/", c), "/login")
	loginWantRedirect(t, l.post("/logout", nil, c), "/login")
}

func TestSessionIdleExpiry(t *testing.T) {
	l := newLoginUI(t, true)
	c := l.login()
	// Use keeps it alive...
	for range 3 {
		l.clock.advance(DefaultIdleTimeout - time.Second)
		if resp := l.get("/", c); resp.StatusCode != http.StatusOK {
			t.Fatalf("session used within the idle timeout: status %d, want 200", resp.StatusCode)
		}
	}
	// ...and a whole idle timeout without use ends it.
	l.clock.advance(DefaultIdleTimeout)
	loginWantRedirect(t, l.get("/", c), "/login")
	l.clock.advance(-DefaultIdleTimeout)
	loginWantRedirect(t, l.get("/", c), "/login") // gone, not just hidden
}

func TestCSRFCrossSiteRequestsRefused(t *testing.T) {
	l := newLoginUI(t, true)
	c := l.login()
	for _, path := range []string{"/logout", "/login", "/setup", "/access/users"} {
		r := loginPostForm(path, url.Values{"password": {loginPassword}, "username": {"mallory"}})
		r.Header.Set("Origin", "https://evil.example")
		r.Header.Set("Sec-Fetch-Site", "cross-site")
		resp := l.do(r, c)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site POST %s: status %d, want 403", path, resp.StatusCode)
			continue
		}
		if len(resp.Cookies()) != 0 {
			t.Errorf("cross-site POST %s set cookies %v", path, resp.Cookies())
		}
		if doc := loginParse(t, resp); loginTestID(doc, "error").Length() != 1 {
			t.Errorf("cross-site POST %s: no error page", path)
		}
	}
	// The session is untouched.
	if resp := l.get("/", c); resp.StatusCode != http.StatusOK {
		t.Errorf("dashboard after the refused requests: status %d, want 200", resp.StatusCode)
	}
	// A same-origin post from the gateway's own page goes through.
	r := loginPostForm("/logout", nil)
	r.Header.Set("Origin", "https://example.com") // httptest's Host
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	loginWantRedirect(t, l.do(r, c), "/login")
}

func TestLoginContentSecurityPolicyOnEveryResponse(t *testing.T) {
	l := newLoginUI(t, true)
	c := l.login()
	crossSite := loginPostForm("/logout", nil)
	crossSite.Header.Set("Sec-Fetch-Site", "cross-site")
	for name, resp := range map[string]*http.Response{
		"login page":     l.get("/login", nil),
		"wrong password": l.post("/login", url.Values{"password": {"nope"}}, nil),
		"login redirect": l.get("/", nil),
		"setup redirect": l.get("/setup", nil),
		"dashboard":      l.get("/", c),
		"not found":      l.get("/no/such/page", c),
		"cross-site":     l.do(crossSite, c),
		"static asset":   l.get(l.ui.assets.url("app.js"), nil),
	} {
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s (status %d): Content-Security-Policy %q", name, resp.StatusCode, csp)
		}
	}
}
