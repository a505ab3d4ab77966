// Package api is edgegate's JSON admin API as an http.Handler: broker
// clients, subscriptions and retained messages, MQTT users and client ids,
// the ACL, settings with their history, statistics, traces, API keys, and
// the HTTP publish endpoint of the EMQ broker (POST /mqtt/publish).
//
// The package is thin: a handler decodes the request, calls one of the small
// domain interfaces declared here (implemented by the broker, auth, admin and
// settings packages) and encodes the answer. Errors are JSON objects
// {"code": "snake_case", "message": "..."}; an internal error is logged and
// answered with a generic message.
//
// Two handlers serve the same routes. Handler is for the TCP listener: it
// answers loopback clients only, and every route but /api/v1/setup and
// /metrics needs HTTP Basic credentials, "admin:<password>" or
// "<API key id>:<secret>". LocalHandler is for the unix socket in the data
// directory, whose file permissions already authenticate the caller (the
// edgegate CLI), so it asks for no credentials.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"path"
	"strings"
	"time"

	"github.com/edgegate/edgegate/gateway/admin"
)

// acmeChallengePrefix is where ACME CAs fetch http-01 answers; like /pki it
// answers everyone: the CA connects from the internet.
const acmeChallengePrefix = "/.well-known/acme-challenge/"

// DefaultMaxBodyBytes limits request bodies when neither Options nor the
// settings say otherwise.
const DefaultMaxBodyBytes = 1 << 20

// Options are the API's dependencies. A nil domain dependency makes its
// routes answer 503 (a gateway without that part), never panic.
type Options struct {
	Admin        Admin
	Users        Users
	Broker       Broker
	Settings     Settings
	Stats        Stats
	Traces       Traces
	Certificates Certificates
	// Authority is the local CA, for /pki and /api/v1/ca.
	Authority Authority
	// ACMEChallenges answers ACME http-01 challenges under
	// /.well-known/acme-challenge/, for every client; nil answers 404.
	ACMEChallenges http.Handler
	// DeploymentID is this gateway's id in the deployment TLS API
	// (/api/deployments/{id}/tls); "" turns that API off.
	DeploymentID string
	// Trust is the trust and issuer lists with their vault sync.
	Trust Trust
	// Provision configures POST /api/v1/provision.
	Provision ProvisionOptions

	// MaxBodyBytes limits request bodies; 0 means the live settings'
	// api.max_body_bytes, or DefaultMaxBodyBytes without Settings.
	MaxBodyBytes int64
	// Limiter counts failed authentications (and wrong setup codes) by IP
	// address; the web UI shares it. Nil means 10 per minute, not shared.
	Limiter *admin.FailLimiter

	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// API serves the admin API. Build it with New.
type API struct {
	o       Options
	log     *slog.Logger
	mux     *http.ServeMux
	limiter *admin.FailLimiter
}

// New returns the API on the given dependencies.
func New(o Options) *API {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Limiter == nil {
		o.Limiter = admin.NewFailLimiter(10, time.Minute)
	}
	a := &API{
		o:       o,
		log:     o.Logger,
		mux:     http.NewServeMux(),
		limiter: o.Limiter,
	}
	a.routes()
	return a
}

// NewServer returns an http.Server for h with the house timeouts: a slow or
// stalled client cannot hold a connection or a goroutine for long.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn),
	}
}

type ctxKey int

const localKey ctxKey = iota

// isLocal reports whether r came through LocalHandler.
func isLocal(r *http.Request) bool {
	v, _ := r.Context().Value(localKey).(bool)
	return v
}

// Handler returns the API for the plain-HTTP listener: loopback clients
// only (a password must not cross the network in clear), Basic
// authentication, and cross-origin browser requests refused so a web page
// cannot use credentials a browser cached (CSRF). The public PKI routes
// and ACME challenges answer everyone.
func (a *API) Handler() http.Handler { return a.handler(true) }

// TLSHandler returns the API for the HTTPS listener, which the web UI
// shares: as Handler, but credentials may come from any address.
func (a *API) TLSHandler() http.Handler { return a.handler(false) }

func (a *API) handler(loopbackOnly bool) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.writeError(w, r, errorf(http.StatusForbidden, "cross_origin", "cross-origin browser requests are not allowed"))
	}))
	inner := cop.Handler(http.HandlerFunc(a.serve))
	pki := a.pkiHandler()
	return a.logRequests(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, pkiPrefix) {
			pki.ServeHTTP(w, r)
			return
		}
		if r.URL.Path == jwksPath && r.Method == http.MethodGet {
			a.jwks(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, acmeChallengePrefix) && a.o.ACMEChallenges != nil {
			a.o.ACMEChallenges.ServeHTTP(w, r)
			return
		}
		if loopbackOnly && !isLoopback(r.RemoteAddr) {
			a.writeError(w, r, errorf(http.StatusForbidden, "not_loopback", "over plain HTTP the admin API answers on the loopback interface only; use HTTPS"))
			return
		}
		inner.ServeHTTP(w, r)
	}))
}

// LocalHandler returns the API for the unix socket: the socket's file
// permissions authenticate the caller, so no credentials are asked and
// changes are recorded with the author "local".
func (a *API) LocalHandler() http.Handler {
	return a.logRequests(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.serve(w, r.WithContext(context.WithValue(r.Context(), localKey, true)))
	}))
}

func isLoopback(remoteAddr string) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	return ap.Addr().Unmap().IsLoopback()
}

// serve dispatches to the mux after refusing paths the mux would clean and
// redirect: DELETE /api/v1/retained//a/b would otherwise be redirected to
// delete "a/b". A topic's "/" is sent as %2F.
func (a *API) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	p := r.URL.EscapedPath()
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	if p == "" || clean != p {
		a.writeError(w, r, errorf(http.StatusBadRequest, "bad_path",
			"the path has empty or dot segments; escape a \"/\" inside a client id or topic as %%2F"))
		return
	}
	h, pattern := a.mux.Handler(r)
	if pattern == "" {
		// The mux's own 404 and 405 answers are plain text; keep their
		// status (and Allow header) with a JSON body.
		h.ServeHTTP(&muxErrorWriter{ResponseWriter: w, a: a, r: r}, r)
		return
	}
	a.mux.ServeHTTP(w, r)
}

// muxErrorWriter turns the mux's plain-text error answers into JSON ones.
type muxErrorWriter struct {
	http.ResponseWriter
	a       *API
	r       *http.Request
	swallow bool
}

func (m *muxErrorWriter) WriteHeader(code int) {
	if code < 400 {
		m.ResponseWriter.WriteHeader(code)
		return
	}
	m.swallow = true
	m.Header().Del("Content-Length")
	switch code {
	case http.StatusNotFound:
		m.a.writeError(m.ResponseWriter, m.r, errorf(code, "not_found", "no such API route"))
	case http.StatusMethodNotAllowed:
		m.a.writeError(m.ResponseWriter, m.r, errorf(code, "method_not_allowed", "method %s is not allowed here", m.r.Method))
	default:
		m.a.writeError(m.ResponseWriter, m.r, errorf(code, "bad_request", "%s", strings.ToLower(http.StatusText(code))))
	}
}

func (m *muxErrorWriter) Write(b []byte) (int, error) {
	if m.swallow {
		return len(b), nil
	}
	return m.ResponseWriter.Write(b)
}

// statusWriter records the status of a response for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logRequests logs every request at debug level. Neither headers (the
// Authorization header carries the password) nor bodies are logged.
func (a *API) logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := a.o.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		a.log.LogAttrs(r.Context(), slog.LevelDebug, "api request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", sw.status),
			slog.Duration("duration", a.o.Now().Sub(start)),
		)
	})
}

// handlerFunc is a route handler; a returned error is answered by
// writeError.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// open registers a route that needs no credentials.
func (a *API) open(pattern string, h handlerFunc) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			a.writeError(w, r, err)
		}
	})
}

// authed registers a route that needs credentials (except on the local
// socket) and no API key scope: only unlimited keys and the admin use it.
func (a *API) authed(pattern string, h handlerFunc) {
	a.scoped("", pattern, h)
}

// scoped registers a route that needs credentials allowed in scope.
func (a *API) scoped(scope, pattern string, h handlerFunc) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		p, err := a.authenticate(r)
		if err == nil && !p.may(scope) {
			err = errorf(http.StatusForbidden, "forbidden", "this API key's scopes do not cover this route")
		}
		if err == nil {
			r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
			err = h(w, r)
		}
		if err != nil {
			a.writeError(w, r, err)
		}
	})
}

func (a *API) routes() {
	a.open("POST /api/v1/setup", a.setup)
	a.authed("PUT /api/v1/admin/password", a.changeAdminPassword)

	a.scoped(admin.ScopeBroker, "GET /api/v1/clients", a.listClients)
	a.scoped(admin.ScopeBroker, "GET /api/v1/clients/{id}", a.getClient)
	a.scoped(admin.ScopeBroker, "DELETE /api/v1/clients/{id}", a.kickClient)
	a.scoped(admin.ScopeBroker, "GET /api/v1/subscriptions", a.listSubscriptions)
	a.scoped(admin.ScopeBroker, "GET /api/v1/retained", a.listRetained)
	a.scoped(admin.ScopeBroker, "DELETE /api/v1/retained/{topic...}", a.deleteRetained)
	a.scoped(admin.ScopeBroker, "GET /api/v1/listeners", a.listListeners)
	a.scoped(admin.ScopeBroker, "POST /api/v1/publish", a.publishJSON)
	a.scoped(admin.ScopeBroker, "POST /mqtt/publish", a.publishForm)

	a.authed("GET /api/v1/users", a.listUsers)
	a.authed("POST /api/v1/users", a.createUser)
	a.authed("GET /api/v1/users/{username}", a.getUser)
	a.authed("PUT /api/v1/users/{username}", a.updateUser)
	a.authed("DELETE /api/v1/users/{username}", a.deleteUser)
	a.authed("GET /api/v1/clientids", a.listClientIDs)
	a.authed("POST /api/v1/clientids", a.createClientID)
	a.authed("GET /api/v1/clientids/{clientid}", a.getClientID)
	a.authed("PUT /api/v1/clientids/{clientid}", a.updateClientID)
	a.authed("DELETE /api/v1/clientids/{clientid}", a.deleteClientID)

	a.authed("GET /api/v1/acl", a.getACL)
	a.authed("PUT /api/v1/acl", a.putACL)
	a.authed("POST /api/v1/acl/check", a.checkACL)

	a.authed("GET /api/v1/settings", a.getSettings)
	a.authed("PATCH /api/v1/settings", a.patchSettings)
	a.authed("GET /api/v1/settings/history", a.settingsHistory)
	a.authed("POST /api/v1/provision", a.provision)

	a.scoped(admin.ScopeBroker, "GET /api/v1/stats", a.getStats)
	a.open("GET /metrics", a.metrics)

	a.authed("GET /api/v1/apikeys", a.listAPIKeys)
	a.authed("POST /api/v1/apikeys", a.createAPIKey)
	a.authed("DELETE /api/v1/apikeys/{id}", a.deleteAPIKey)

	a.scoped(admin.ScopeBroker, "GET /api/v1/traces", a.listTraces)
	a.scoped(admin.ScopeBroker, "POST /api/v1/traces", a.startTrace)
	a.scoped(admin.ScopeBroker, "DELETE /api/v1/traces/{kind}/{target...}", a.stopTrace)

	a.certificateRoutes()
	a.trustRoutes()
	a.deploymentRoutes()
	a.authorityRoutes()
}
