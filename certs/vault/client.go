package vault

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Client talks to one vault's KV v2 engine. It is safe for concurrent use.
type Client struct {
	cfg     Config
	address string // without a trailing slash
	http    *http.Client
	log     *slog.Logger

	mu  sync.Mutex // guards tok; held across a login so that only one runs
	tok token
}

// token is a token obtained by a login, with the time to log in again.
type token struct {
	value     string
	refreshAt time.Time // zero: the lease does not expire
}

// New returns a client for cfg, after applying the defaults and validating
// it. It does not contact the vault: the first request logs in.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	cfg.Prefix = strings.Trim(cfg.Prefix, "/")
	c := &Client{
		cfg:     cfg,
		address: strings.TrimSuffix(cfg.Address, "/"),
		log:     cfg.Logger,
	}
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		TLSClientConfig:       c.tlsConfig(),
		TLSHandshakeTimeout:   cfg.Timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: cfg.Timeout,
	}
	c.http = &http.Client{
		Transport: transport,
		// A redirect could carry the token to another host; Vault only
		// redirects from a standby, which a gateway should not be pointed at.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

// Close releases idle connections.
func (c *Client) Close() {
	c.http.CloseIdleConnections()
}

// tlsConfig verifies the server against the roots of the moment: RootCAs is
// asked on every handshake, so a new pool applies to the next connection.
func (c *Client) tlsConfig() *tls.Config {
	conf := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification is done by VerifyConnection, with the current roots.
		InsecureSkipVerify: true, //nolint:gosec // verified below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("vault server sent no certificate")
			}
			var roots *x509.CertPool
			if c.cfg.RootCAs != nil {
				roots = c.cfg.RootCAs()
			}
			intermediates := x509.NewCertPool()
			for _, cert := range cs.PeerCertificates[1:] {
				intermediates.AddCert(cert)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
				DNSName:       cs.ServerName,
				Roots:         roots,
				Intermediates: intermediates,
			})
			if err != nil {
				return fmt.Errorf("verify vault server certificate: %w", err)
			}
			return nil
		},
	}
	if c.cfg.ClientCertificate != nil {
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, err := c.cfg.ClientCertificate()
			if err != nil {
				return nil, fmt.Errorf("client certificate for vault: %w", err)
			}
			if cert == nil {
				return &tls.Certificate{}, nil // present none
			}
			return cert, nil
		}
	}
	return conf
}

// request is one call to the vault HTTP API.
type request struct {
	method string
	path   string // below /v1/, every segment already escaped
	query  url.Values
	body   any
	write  bool // a 403 means the policy refuses writes
	login  bool // no token; a refusal (400 too) is ErrForbidden
}

// call sends req with the current token and decodes a 2xx body into out (if
// not nil). A token from a login that gets a 403 is dropped and the request
// tried once more with a fresh login: the token may have expired mid-sync.
func (c *Client) call(ctx context.Context, req request, out any) error {
	tok, err := c.token(ctx)
	if err != nil {
		return err
	}
	err = c.send(ctx, req, tok, out)
	if errors.Is(err, ErrForbidden) && c.cfg.Auth.Method != AuthToken {
		c.forget(tok)
		c.log.Info("vault refused the token; logging in again", "path", req.path)
		if tok, err = c.token(ctx); err != nil {
			return err
		}
		err = c.send(ctx, req, tok, out)
	}
	if req.write {
		var e *apiError
		if errors.As(err, &e) && e.status == http.StatusForbidden {
			e.kinds = append([]error{ErrReadOnly}, e.kinds...)
		}
	}
	return err
}

// token returns a valid token, logging in when there is none or its lease
// is near its end.
func (c *Client) token(ctx context.Context) (string, error) {
	if c.cfg.Auth.Method == AuthToken {
		return c.cfg.Auth.Token, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok.value != "" && (c.tok.refreshAt.IsZero() || c.cfg.Now().Before(c.tok.refreshAt)) {
		return c.tok.value, nil
	}
	tok, err := c.login(ctx)
	if err != nil {
		return "", err
	}
	c.tok = tok
	return tok.value, nil
}

// forget drops tok unless another caller has already replaced it.
func (c *Client) forget(tok string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok.value == tok {
		c.tok = token{}
	}
}

// loginResponse is the documented login answer (AppRole and cert auth alike).
type loginResponse struct {
	Auth *struct {
		ClientToken   string `json:"client_token"`
		LeaseDuration int64  `json:"lease_duration"`
		Renewable     bool   `json:"renewable"`
	} `json:"auth"`
}

func (c *Client) login(ctx context.Context) (token, error) {
	var body any
	switch c.cfg.Auth.Method {
	case AuthAppRole:
		body = map[string]string{"role_id": c.cfg.Auth.RoleID, "secret_id": c.cfg.Auth.SecretID}
	case AuthCert:
		m := map[string]string{}
		if c.cfg.Auth.Role != "" {
			m["name"] = c.cfg.Auth.Role
		}
		body = m
	default:
		return token{}, fmt.Errorf("vault login: auth method %q has no login", c.cfg.Auth.Method)
	}
	req := request{method: http.MethodPost, path: "auth/" + escapePath(c.cfg.Auth.Mount) + "/login", body: body, login: true}
	var resp loginResponse
	start := c.cfg.Now()
	if err := c.send(ctx, req, "", &resp); err != nil {
		return token{}, fmt.Errorf("vault login (%s): %w", c.cfg.Auth.Method, err)
	}
	tok, err := parseLogin(resp, start)
	if err != nil {
		return token{}, fmt.Errorf("vault login (%s): %w", c.cfg.Auth.Method, err)
	}
	c.log.Info("logged in to vault", "method", string(c.cfg.Auth.Method), "mount", c.cfg.Auth.Mount,
		"lease", time.Duration(resp.Auth.LeaseDuration)*time.Second)
	return tok, nil
}

// parseLogin turns a login answer into a token to be renewed (by logging in
// again) after three quarters of its lease, well before it expires.
func parseLogin(resp loginResponse, now time.Time) (token, error) {
	if resp.Auth == nil || resp.Auth.ClientToken == "" {
		return token{}, fmt.Errorf("%w: no auth.client_token in the login response", ErrBadResponse)
	}
	if resp.Auth.LeaseDuration < 0 {
		return token{}, fmt.Errorf("%w: negative auth.lease_duration", ErrBadResponse)
	}
	tok := token{value: resp.Auth.ClientToken}
	if lease := time.Duration(resp.Auth.LeaseDuration) * time.Second; lease > 0 {
		tok.refreshAt = now.Add(lease * 3 / 4)
	}
	return tok, nil
}

// apiError is a failed request: what was asked, the status if any, and the
// sentinels it matches.
type apiError struct {
	method, path string
	status       int      // 0: no response
	messages     []string // from the vault's {"errors": [...]}
	kinds        []error  // sentinels, then the cause
}

func (e *apiError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s /v1/%s", e.method, e.path)
	if e.status != 0 {
		fmt.Fprintf(&b, ": status %d", e.status)
	}
	if len(e.messages) > 0 {
		fmt.Fprintf(&b, " %q", e.messages)
	}
	for _, k := range e.kinds {
		b.WriteString(": ")
		b.WriteString(k.Error())
	}
	return b.String()
}

func (e *apiError) Unwrap() []error { return e.kinds }

// send does one HTTP exchange, bounded by the configured timeout.
func (c *Client) send(ctx context.Context, req request, tok string, out any) error {
	fail := func(status int, messages []string, kinds ...error) error {
		return &apiError{method: req.method, path: req.path, status: status, messages: messages, kinds: kinds}
	}
	var body io.Reader
	if req.body != nil {
		data, err := json.Marshal(req.body)
		if err != nil {
			return fmt.Errorf("%s /v1/%s: encode body: %w", req.method, req.path, err)
		}
		body = bytes.NewReader(data)
	}
	target := c.address + "/v1/" + req.path
	if len(req.query) > 0 {
		target += "?" + req.query.Encode()
	}
	rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(rctx, req.method, target, body)
	if err != nil {
		return fmt.Errorf("%s /v1/%s: %w", req.method, req.path, err)
	}
	if tok != "" {
		hreq.Header.Set("X-Vault-Token", tok)
	}
	if c.cfg.Namespace != "" {
		hreq.Header.Set("X-Vault-Namespace", c.cfg.Namespace)
	}
	hreq.Header.Set("X-Vault-Request", "true")
	if body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(hreq)
	if err != nil {
		if ctx.Err() != nil { // the caller gave up: not the vault's fault
			return fail(0, nil, ctx.Err())
		}
		return fail(0, nil, ErrUnavailable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		if ctx.Err() != nil {
			return fail(resp.StatusCode, nil, ctx.Err())
		}
		return fail(resp.StatusCode, nil, ErrUnavailable, err)
	}
	if len(data) > maxResponseBytes {
		return fail(resp.StatusCode, nil, ErrBadResponse, fmt.Errorf("body over %d bytes", maxResponseBytes))
	}
	status := resp.StatusCode
	if status >= 200 && status < 300 {
		if out == nil || status == http.StatusNoContent {
			return nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return fail(status, nil, ErrBadResponse, err)
		}
		return nil
	}
	messages := errorMessages(data)
	switch {
	case status == http.StatusForbidden || (req.login && (status == http.StatusBadRequest || status == http.StatusUnauthorized)):
		return fail(status, messages, ErrForbidden)
	case status == http.StatusNotFound:
		return fail(status, messages, ErrNotFound)
	case status == http.StatusBadRequest && containsAny(messages, "check-and-set"):
		return fail(status, messages, ErrConflict)
	case status >= 500 || status == http.StatusTooManyRequests:
		return fail(status, messages, ErrUnavailable)
	default:
		return fail(status, messages, ErrBadResponse)
	}
}

// errorMessages extracts the documented {"errors": [...]} list, bounded, for
// error messages. Vault's messages name paths and causes, never secrets.
func errorMessages(body []byte) []string {
	var e struct {
		Errors []string `json:"errors"`
	}
	if json.Unmarshal(body, &e) != nil {
		return nil
	}
	if len(e.Errors) > maxErrorMessages {
		e.Errors = e.Errors[:maxErrorMessages]
	}
	for i, m := range e.Errors {
		if len(m) > maxErrorMessageLength {
			e.Errors[i] = m[:maxErrorMessageLength] + "…"
		}
	}
	return e.Errors
}

func containsAny(messages []string, s string) bool {
	for _, m := range messages {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// escapePath escapes each segment of a slash-separated path.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
