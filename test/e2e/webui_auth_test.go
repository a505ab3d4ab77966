package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// location returns the URL the browser shows.
func location(ctx context.Context, t *testing.T) string {
	t.Helper()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatalf("read the browser's location: %v", err)
	}
	return loc
}

// wantPath fails the test unless the browser shows path (with query) on
// the web UI.
func wantPath(ctx context.Context, t *testing.T, d *daemon, path string) {
	t.Helper()
	if loc := location(ctx, t); loc != d.webBase+path {
		t.Fatalf("browser is at %s, want %s%s", loc, d.webBase, path)
	}
}

func TestWebUISetupAndLogin(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, baseSettings())
	ctx := newBrowser(t)

	// A fresh gateway sends every page to the setup form.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(d.webBase+"/"),
		chromedp.WaitVisible(dataTestID("setup-code")),
	); err != nil {
		t.Fatalf("open the web UI: %v", err)
	}
	wantPath(ctx, t, d, "/setup")
	shot(ctx, t, "setup")

	if err := chromedp.Do(ctx,
		chromedp.SendKeys(dataTestID("setup-code"), d.setupCode),
		chromedp.SendKeys(dataTestID("setup-password"), adminPassword),
		chromedp.SendKeys(dataTestID("setup-confirm"), adminPassword),
		chromedp.SetValue(dataTestID("setup-device-name"), "gw-test-1"),
		chromedp.SetValue(dataTestID("setup-timezone"), "Europe/Berlin"),
		chromedp.Click(dataTestID("setup-submit")),
		chromedp.WaitVisible(dataTestID("health")),
	); err != nil {
		t.Fatalf("complete setup: %v", err)
	}
	d.adminSet = true
	wantPath(ctx, t, d, "/")
	node, err := chromedp.Run(ctx, chromedp.Text(dataTestID("node-name")))
	if err != nil {
		t.Fatalf("read the node name: %v", err)
	}
	if node != "gw-test-1" {
		t.Errorf("node name shows %q, want gw-test-1", node)
	}
	var settings struct {
		Settings struct {
			Node     string `json:"node"`
			TimeZone string `json:"timezone"`
		} `json:"settings"`
	}
	d.api(t, "GET", "/api/v1/settings", nil, http.StatusOK, &settings)
	if s := settings.Settings; s.Node != "gw-test-1" || s.TimeZone != "Europe/Berlin" {
		t.Errorf("settings after setup: node %q, timezone %q; want gw-test-1, Europe/Berlin", s.Node, s.TimeZone)
	}
	shot(ctx, t, "dashboard")

	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{d.webBase + "/"}})
	if err != nil {
		t.Fatalf("read cookies: %v", err)
	}
	var session *network.Cookie
	for _, c := range res.Cookies {
		if c.Name == "__Host-edgegate-session" {
			session = c
		}
	}
	switch {
	case session == nil:
		t.Errorf("no __Host-edgegate-session cookie after setup (have %d cookies)", len(res.Cookies))
	case !session.Secure || !session.HTTPOnly || session.SameSite != network.CookieSameSiteStrict || session.Path != "/":
		t.Errorf("session cookie: Secure %v, HttpOnly %v, SameSite %q, Path %q; want Secure, HttpOnly, Strict, /",
			session.Secure, session.HTTPOnly, session.SameSite, session.Path)
	}

	// The setup code is single-use.
	status, body := d.apiRaw(t, "POST", "/api/v1/setup", "application/json",
		mustJSON(t, obj{"setup_code": d.setupCode, "password": "another-Passw0rd-1"}), false)
	if status != http.StatusConflict {
		t.Errorf("POST /api/v1/setup after setup: status %d, want 409: %s", status, body)
	}

	if err := chromedp.Do(ctx,
		chromedp.Click(dataTestID("logout")),
		chromedp.WaitVisible(dataTestID("login-password")),
	); err != nil {
		t.Fatalf("log out: %v", err)
	}
	wantPath(ctx, t, d, "/login")

	// Without a session a page sends the browser to log in, keeping where
	// it wanted to go; the done setup page does too.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(d.webBase+"/clients"),
		chromedp.WaitVisible(dataTestID("login-password")),
	); err != nil {
		t.Fatalf("open /clients after logout: %v", err)
	}
	wantPath(ctx, t, d, "/login?next=%2Fclients")
	if err := chromedp.Do(ctx,
		chromedp.Navigate(d.webBase+"/setup"),
		chromedp.WaitVisible(dataTestID("login-password")),
	); err != nil {
		t.Fatalf("open /setup after setup: %v", err)
	}
	wantPath(ctx, t, d, "/login")
	shot(ctx, t, "login")

	if err := chromedp.Do(ctx,
		chromedp.SendKeys(dataTestID("login-password"), adminPassword),
		chromedp.Click(dataTestID("login-submit")),
		chromedp.WaitVisible(dataTestID("health")),
	); err != nil {
		t.Fatalf("log in again: %v", err)
	}
	wantPath(ctx, t, d, "/")
}

func TestWebUIWrongPasswordRateLimited(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, baseSettings())
	d.setupAdmin(t)
	ctx := newBrowser(t)

	if err := chromedp.Do(ctx,
		chromedp.Navigate(d.webBase+"/login"),
		chromedp.WaitVisible(dataTestID("login-password")),
	); err != nil {
		t.Fatalf("open the login page: %v", err)
	}
	// submit logs in with password and returns the answer's status and
	// the login page's error message.
	submit := func(password string) (int64, string, network.Headers) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.SendKeys(dataTestID("login-password"), password)); err != nil {
			t.Fatalf("type the password: %v", err)
		}
		resp, err := chromedp.RunResponse(ctx, chromedp.Click(dataTestID("login-submit")))
		if err != nil {
			t.Fatalf("submit the login form: %v", err)
		}
		msg, err := chromedp.Run(ctx, chromedp.Text(dataTestID("login-error")))
		if err != nil {
			t.Fatalf("read the login error (status %d): %v", resp.Status, err)
		}
		return resp.Status, msg, resp.Headers
	}
	// The limiter's window is one minute from the first failure.
	start := time.Now()
	for i := 1; i <= 10; i++ {
		if status, msg, _ := submit(fmt.Sprintf("wrong-password-%d", i)); status != http.StatusUnauthorized || msg != "Wrong password." {
			t.Fatalf("wrong password #%d: status %d, message %q; want 401, %q", i, status, msg, "Wrong password.")
		}
	}
	status, msg, headers := submit(adminPassword)
	if status != http.StatusTooManyRequests || !strings.Contains(msg, "Too many failed attempts") {
		if took := time.Since(start); took >= time.Minute {
			t.Fatalf("the 10 failed logins took %s, longer than the limiter's one-minute window", took)
		}
		t.Fatalf("right password after 10 failures: status %d, message %q; want 429, Too many failed attempts", status, msg)
	}
	if _, ok := headers["Retry-After"]; !ok {
		t.Errorf("429 answer without Retry-After (headers %v)", headers)
	}
	shot(ctx, t, "login-rate-limited")

	// The web UI and the admin API count failures together.
	if status, body := d.apiRaw(t, "GET", "/api/v1/users", "", nil, true); status != http.StatusTooManyRequests {
		t.Errorf("API with the right credentials after 10 failed web logins: status %d, want 429: %s", status, body)
	}
}

// attackerPage is a page on another site that posts a form to the web UI
// as soon as it loads, as a cross-site request forgery would.
func attackerPage(t *testing.T, action string, fields map[string]string) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		var inputs strings.Builder
		for k, v := range fields {
			fmt.Fprintf(&inputs, `<input type="hidden" name="%s" value="%s">`, html.EscapeString(k), html.EscapeString(v))
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!DOCTYPE html><html><head><title>Free prizes</title><script src="/submit.js" defer></script></head>`+
			`<body><form method="post" action="%s">%s<button>Win</button></form></body></html>`, html.EscapeString(action), inputs.String())
	})
	mux.HandleFunc("GET /submit.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, "document.forms[0].submit();\n")
	})
	srv := httptest.NewServer(mux) // 127.0.0.1:0
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

func TestWebUICSRFRefused(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, baseSettings())
	ctx := newBrowser(t)
	webLogin(ctx, t, d)

	for _, attack := range []struct {
		path   string
		fields map[string]string
	}{
		{"/logout", nil},
		{"/access/users", map[string]string{"username": "csrf-victim", "password": "csrf-Passw0rd-123", "superuser": "on"}},
	} {
		target := d.webBase + attack.path
		responses := chromedp.Events(ctx, network.ResponseReceived)
		if err := chromedp.Do(ctx,
			chromedp.Navigate(attackerPage(t, target, attack.fields)),
			chromedp.WaitVisible(dataTestID("error")),
		); err != nil {
			t.Fatalf("cross-site POST %s: wait for the error page: %v", attack.path, err)
		}
		for ev, err := range responses {
			if err != nil {
				t.Fatalf("cross-site POST %s: no answer seen: %v", attack.path, err)
			}
			if ev.Type == network.ResourceTypeDocument && ev.Response.URL == target {
				if ev.Response.Status != http.StatusForbidden {
					t.Errorf("cross-site POST %s: status %d, want 403", attack.path, ev.Response.Status)
				}
				break
			}
		}
		wantPath(ctx, t, d, attack.path)

		// The session survived and nothing changed.
		if err := chromedp.Do(ctx,
			chromedp.Navigate(d.webBase+"/"),
			chromedp.WaitVisible(dataTestID("health")),
		); err != nil {
			t.Fatalf("after the cross-site POST %s the dashboard does not show: %v", attack.path, err)
		}
	}
	var users []struct {
		Username string `json:"username"`
	}
	d.api(t, "GET", "/api/v1/users", nil, http.StatusOK, &users)
	for _, u := range users {
		if u.Username == "csrf-victim" {
			t.Errorf("the cross-site POST added user %q", u.Username)
		}
	}
}

func TestWebUIHTTPRedirect(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, baseSettings())
	web, err := url.Parse(d.webBase)
	if err != nil {
		t.Fatal(err)
	}
	noFollow := &http.Client{
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	do := func(method, path string) (status int, location string) {
		t.Helper()
		req, err := http.NewRequest(method, d.apiBase+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Location")
	}

	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/", http.StatusMovedPermanently},
		{"GET", "/clients?x=1", http.StatusMovedPermanently},
		// A form post keeps its method and body through the redirect.
		{"POST", "/login", http.StatusPermanentRedirect},
	} {
		status, location := do(tc.method, tc.path)
		want := "https://127.0.0.1:" + web.Port() + tc.path
		if status != tc.status || location != want {
			t.Errorf("%s http %s: %d to %q, want %d to %q", tc.method, tc.path, status, location, tc.status, want)
		}
	}

	// The CA certificate stays on plain HTTP for sensors without HTTPS.
	if status, _ := do("GET", "/pki/ca"); status != http.StatusOK {
		t.Errorf("GET http /pki/ca: status %d, want 200", status)
	}

	// Local tools keep the API on plain HTTP: setupAdmin and addUser post
	// to d.apiBase.
	d.setupAdmin(t)
	d.addUser(t, "http-tool", "http-Tool-Passw0rd", false)
	var users []struct {
		Username string `json:"username"`
	}
	body := d.api(t, "GET", "/api/v1/users", nil, http.StatusOK, nil)
	if err := json.Unmarshal(body, &users); err != nil || len(users) != 1 || users[0].Username != "http-tool" {
		t.Errorf("GET http /api/v1/users: %s (%v), want the one user http-tool", body, err)
	}
}

func TestWebUIScreenshots(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, baseSettings())
	ctx := newBrowser(t)
	webLogin(ctx, t, d)

	// The navigation lists every page (navItems in webui/layout.templ).
	type navLink struct {
		ID   string `json:"id"`
		Href string `json:"href"`
	}
	links, err := chromedp.Run(ctx, chromedp.Evaluate[[]navLink](
		`[...document.querySelectorAll('nav [data-testid^="nav-"]')].map(a => ({id: a.dataset.testid.slice(4), href: a.getAttribute('href')}))`))
	if err != nil {
		t.Fatalf("read the navigation: %v", err)
	}
	want := []string{"/", "/clients", "/topics", "/access", "/settings", "/certificates", "/trust", "/system"}
	var hrefs []string
	for _, l := range links {
		hrefs = append(hrefs, l.Href)
	}
	if strings.Join(hrefs, " ") != strings.Join(want, " ") {
		t.Errorf("navigation links %v, want %v", hrefs, want)
	}

	for _, l := range links {
		resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(d.webBase+l.Href))
		if err != nil {
			t.Fatalf("open %s: %v", l.Href, err)
		}
		if resp.Status != http.StatusOK {
			t.Errorf("%s: status %d, want 200", l.Href, resp.Status)
		}
		h1, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main h1")))
		if err != nil {
			t.Fatalf("%s: no <h1>: %v", l.Href, err)
		}
		failed, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('[data-testid="error"]') !== null`))
		if err != nil {
			t.Fatalf("%s: look for an error: %v", l.Href, err)
		}
		if failed || h1 == "" {
			t.Errorf("%s shows an error or no title (h1 %q)", l.Href, h1)
		}
		shot(ctx, t, l.ID)
	}
}
