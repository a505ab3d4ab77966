// Package webui is the gateway's local web interface: server-rendered templ
// pages to set up, run and inspect the gateway, with live figures, client
// events, log lines and inspected messages pushed over one websocket per
// page. It calls the same domain packages as the JSON API (gateway/api),
// which it never imports.
//
// Every page is rendered with its data in one response; JavaScript only
// adds live updates and small conveniences. Browser requests are
// protected by a Secure, HttpOnly, SameSite=Strict session cookie, Go's
// cross-origin protection on every state-changing request, and a
// Content-Security-Policy that allows no inline script.
package webui

//go:generate go tool templ generate -log-level warn

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/a-h/templ"

	"github.com/edgegate/edgegate/gateway/admin"
	"github.com/edgegate/edgegate/gateway/config"
)

// Options are the UI's dependencies. Admin, Broker and Settings are
// required; a page whose dependency is nil says the feature is off.
type Options struct {
	Admin        Admin
	Limiter      *admin.FailLimiter // shared with the JSON API; nil: 10 per minute
	Broker       Broker
	Users        Users
	Settings     Settings
	Certificates Certificates
	Authority    Authority
	// Trust is the trust and issuer lists with their vault sync; nil
	// shows what the live pools hold without them.
	Trust Trust
	// SettingsFile names the image's settings file, whose settings the
	// settings page shows as locked.
	SettingsFile string
	Version      string
	// The System page: build and data directory, the log tail, traces,
	// backups, and Restart, which asks the gateway to stop cleanly and
	// start again (restore and factory reset end with it too).
	Commit  string
	DataDir string
	Logs    Logs
	Traces  Traces
	Backups Backups
	Restart func()
	// IdleTimeout ends unused sessions; zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	Logger      *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// UI serves the web interface. Build it with New, stop it with Close.
type UI struct {
	o        Options
	log      *slog.Logger
	mux      *http.ServeMux
	sessions *sessions
	assets   *assets
	live     *hub
	stopLogs func() // ends the feed of new log lines to the live hub
}

// New returns the UI on its dependencies; its live feed runs until Close.
func New(o Options) *UI {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.Limiter == nil {
		o.Limiter = admin.NewFailLimiter(10, time.Minute)
	}
	u := &UI{
		o:        o,
		log:      o.Logger,
		mux:      http.NewServeMux(),
		sessions: newSessions(o.IdleTimeout, o.Now),
		assets:   loadAssets(),
	}
	u.live = newHub(u)
	u.stopLogs = u.followLogs()
	u.routes()
	return u
}

// Close ends the live feed and closes every websocket.
func (u *UI) Close() {
	u.stopLogs()
	u.live.close()
}

// contentSecurityPolicy allows only the gateway's own scripts, styles and
// websocket; no inline script, no framing, forms post only to us.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

// Handler returns the UI. Mount it at / of the HTTPS server.
func (u *UI) Handler() http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.log.Warn("cross-origin request refused", "method", r.Method, "path", r.URL.Path, "origin", r.Header.Get("Origin"))
		u.renderError(w, r, http.StatusForbidden, "Request refused",
			"This request came from another site. Changes can only be made from the gateway's own pages.")
	}))
	inner := cop.Handler(u.mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Strict-Transport-Security", "max-age=31536000")
		inner.ServeHTTP(w, r)
	})
}

// handler is a page or action; a returned error is shown as an error page.
type handler func(w http.ResponseWriter, r *http.Request, ss *session) error

// authed registers a route that needs a logged-in session. Without one, a
// page request goes to the login page (or the setup page before setup).
func (u *UI) authed(pattern string, h handler) {
	u.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		ss, ok := u.sessions.fromRequest(r)
		if !ok {
			u.toLogin(w, r)
			return
		}
		if err := h(w, r, ss); err != nil {
			u.fail(w, r, err)
		}
	})
}

// toLogin sends a browser without a session to set up or log in, keeping
// where it wanted to go.
func (u *UI) toLogin(w http.ResponseWriter, r *http.Request) {
	if done, err := u.o.Admin.SetupDone(); err == nil && !done {
		http.Redirect(w, r, "/setup", http.StatusSeeOther)
		return
	}
	target := "/login"
	if r.Method == http.MethodGet && r.URL.Path != "/" {
		target += "?next=" + url.QueryEscape(r.URL.RequestURI())
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// httpError is an error with a status and a message fit for the user.
type httpError struct {
	status  int
	message string
}

func (e *httpError) Error() string { return e.message }

func userError(status int, format string, args ...any) error {
	return &httpError{status: status, message: fmt.Sprintf(format, args...)}
}

// fail shows err: its own message for an httpError, a generic one (and a
// log line) for anything else, whose text may hold internals.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	if errors.As(err, &he) {
		u.renderError(w, r, he.status, http.StatusText(he.status), he.message)
		return
	}
	u.log.Error("web ui request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	u.renderError(w, r, http.StatusInternalServerError, "Something went wrong",
		"The gateway could not complete this request. The details are in its log.")
}

func (u *UI) renderError(w http.ResponseWriter, r *http.Request, status int, title, message string) {
	_, loggedIn := u.sessions.fromRequest(r)
	u.renderStatus(w, r, nil, status, u.page(nil, title, ""), errorPage(title, message, loggedIn))
}

// page returns the layout data for a page; ss may be nil.
func (u *UI) page(ss *session, title, nav string) Page {
	p := Page{Title: title, Nav: nav, Version: u.o.Version, Asset: u.assets.url, LoggedIn: ss != nil}
	if u.o.Settings != nil {
		if node := u.o.Settings.Effective().Config.Node; node != config.DefaultNode {
			p.Node = node
		}
	}
	if ss != nil {
		p.Flash = u.sessions.takeFlash(ss)
	}
	return p
}

// render writes a full page with status 200.
func (u *UI) render(w http.ResponseWriter, r *http.Request, ss *session, p Page, body templ.Component) error {
	u.renderStatus(w, r, ss, http.StatusOK, p, body)
	return nil
}

func (u *UI) renderStatus(w http.ResponseWriter, r *http.Request, _ *session, status int, p Page, body templ.Component) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := layout(p).Render(templ.WithChildren(r.Context(), body), w); err != nil {
		u.log.Debug("render page", "path", r.URL.Path, "error", err)
	}
}

// redirect answers a successful form post: a message for the next page
// and a See Other to it (post/redirect/get).
func (u *UI) redirect(w http.ResponseWriter, r *http.Request, ss *session, to, flash string) error {
	if flash != "" {
		u.sessions.setFlash(ss, flash)
	}
	http.Redirect(w, r, to, http.StatusSeeOther) //nolint:gosec // G710: to is a path of this site (handlers pass constants or safeNext)
	return nil
}

// clientIP is the address failed logins are counted by.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// safeNext keeps a post-login redirect on this site.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

// author names the web UI administrator in settings history.
const author = "admin (web)"
