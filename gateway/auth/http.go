package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/edgegate/edgegate/gateway/config"
)

// Placeholders of HTTP backend params (seed 002's emq_auth_http).
const (
	phUsername = 'u'
	phClientID = 'c'
	phAddr     = 'a'
	phPassword = 'P'
	phTopic    = 't'
	phAccess   = 'A'
)

// Values of %A, as emq_auth_http sends them.
const (
	accessSubscribe = "1"
	accessPublish   = "2"
)

// maxCachedAnswers bounds the HTTP answer cache.
const maxCachedAnswers = 10_000

// maxResponseDrain is how much of a response body is read so the connection
// can be reused; the body's content is not used.
const maxResponseDrain = 4 << 10

// paramPart is a literal text or, when ph is not 0, a placeholder.
type paramPart struct {
	lit string
	ph  byte
}

// param is one name=value of a params template.
type param struct {
	name  string
	parts []paramPart
}

// httpParams is a parsed params template such as
// "clientid=%c,username=%u,password=%P".
type httpParams []param

// parseParams parses a params template: comma-separated name=value items;
// blanks around an item are dropped and empty items skipped. In a value %u,
// %c, %a, %P, %t and %A are placeholders, %% is a literal %, and any other %
// is literal text.
func parseParams(s string) (httpParams, error) {
	var ps httpParams
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, value, ok := strings.Cut(item, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("params: %q must be name=value", item)
		}
		p := param{name: name}
		var lit strings.Builder
		for i := 0; i < len(value); i++ {
			c := value[i]
			if c != '%' || i+1 == len(value) {
				lit.WriteByte(c)
				continue
			}
			switch n := value[i+1]; n {
			case phUsername, phClientID, phAddr, phPassword, phTopic, phAccess:
				if lit.Len() > 0 {
					p.parts = append(p.parts, paramPart{lit: lit.String()})
					lit.Reset()
				}
				p.parts = append(p.parts, paramPart{ph: n})
				i++
			case '%':
				lit.WriteByte('%')
				i++
			default:
				lit.WriteByte('%')
			}
		}
		if lit.Len() > 0 {
			p.parts = append(p.parts, paramPart{lit: lit.String()})
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// String returns the template in a form parseParams reads back to ps.
func (ps httpParams) String() string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.name)
		b.WriteByte('=')
		for _, part := range p.parts {
			if part.ph != 0 {
				b.WriteByte('%')
				b.WriteByte(part.ph)
			} else {
				b.WriteString(strings.ReplaceAll(part.lit, "%", "%%"))
			}
		}
	}
	return b.String()
}

// paramVars are the values of the placeholders for one request.
type paramVars struct {
	username, clientID, addr, password, topic, access string
}

// values renders the template.
func (ps httpParams) values(v paramVars) url.Values {
	out := make(url.Values, len(ps))
	for _, p := range ps {
		var b strings.Builder
		for _, part := range p.parts {
			switch part.ph {
			case 0:
				b.WriteString(part.lit)
			case phUsername:
				b.WriteString(v.username)
			case phClientID:
				b.WriteString(v.clientID)
			case phAddr:
				b.WriteString(v.addr)
			case phPassword:
				b.WriteString(v.password)
			case phTopic:
				b.WriteString(v.topic)
			case phAccess:
				b.WriteString(v.access)
			}
		}
		out.Add(p.name, b.String())
	}
	return out
}

// httpRequest is one configured call: auth_req, super_req or acl_req.
type httpRequest struct {
	name   string
	method string // http.MethodGet or http.MethodPost
	url    *url.URL
	params httpParams
}

func newHTTPRequest(name string, c config.HTTPRequest) (*httpRequest, error) {
	if c.URL == "" {
		return nil, nil
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("auth.http.%s.url: must be an http:// or https:// URL", name)
	}
	r := &httpRequest{name: name, url: u}
	switch strings.ToLower(c.Method) {
	case "get":
		r.method = http.MethodGet
	case "post", "":
		r.method = http.MethodPost
	default:
		return nil, fmt.Errorf("auth.http.%s.method: must be get or post", name)
	}
	if r.params, err = parseParams(c.Params); err != nil {
		return nil, fmt.Errorf("auth.http.%s.%w", name, err)
	}
	return r, nil
}

// httpBackend asks an HTTP service to authenticate clients, mark
// superusers and authorize topics, caching its answers.
type httpBackend struct {
	auth, super, acl *httpRequest // nil when not configured
	client           *http.Client
	timeout          time.Duration
	denyOnError      bool
	log              *slog.Logger
	cache            *answerCache
}

func newHTTPBackend(c config.HTTPAuth, client *http.Client, log *slog.Logger, now func() time.Time) (*httpBackend, error) {
	b := &httpBackend{
		client:      client,
		timeout:     c.Timeout.Std(),
		denyOnError: c.OnError == config.OnErrorDeny,
		log:         log,
		cache:       newAnswerCache(now, c.CacheTTL.Std()),
	}
	switch c.OnError {
	case config.OnErrorIgnore, config.OnErrorDeny, "":
	default:
		return nil, fmt.Errorf("auth.http.on_error: must be %s or %s", config.OnErrorIgnore, config.OnErrorDeny)
	}
	var err error
	if b.auth, err = newHTTPRequest("auth_req", c.AuthReq); err != nil {
		return nil, err
	}
	if b.super, err = newHTTPRequest("super_req", c.SuperReq); err != nil {
		return nil, err
	}
	if b.acl, err = newHTTPRequest("acl_req", c.ACLReq); err != nil {
		return nil, err
	}
	return b, nil
}

// errBadStatus is a status that is neither 200 nor 4xx.
var errBadStatus = errors.New("unexpected HTTP status")

// ask makes (or answers from the cache) one call: 200 allows, 4xx denies,
// anything else (timeout, transport error, 5xx, other statuses) is an
// error, which means deny or ignore as on_error says. Errors are not cached.
func (b *httpBackend) ask(ctx context.Context, r *httpRequest, v paramVars) verdict {
	vals := r.params.values(v)
	body := vals.Encode()
	// The key covers everything sent, password included, so a different
	// password is never answered from the cache; only its digest is kept.
	key := sha256.Sum256([]byte(r.name + "\x00" + r.method + "\x00" + r.url.String() + "\x00" + body))
	if answer, ok := b.cache.get(key); ok {
		return answer
	}
	answer, err := b.do(ctx, r, body)
	if err != nil {
		// The error text of a failed request names its URL, query (and
		// so maybe a password) included: log only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		b.log.Warn("auth http backend failed", "request", r.name, "host", r.url.Host, "error", err, "deny", b.denyOnError)
		if b.denyOnError {
			return deny
		}
		return ignore
	}
	b.cache.put(key, answer)
	return answer
}

func (b *httpBackend) do(ctx context.Context, r *httpRequest, body string) (verdict, error) {
	if b.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.timeout)
		defer cancel()
	}
	u := *r.url
	var rd io.Reader
	if r.method == http.MethodGet {
		if u.RawQuery != "" && body != "" {
			u.RawQuery += "&" + body
		} else if body != "" {
			u.RawQuery = body
		}
	} else {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), rd)
	if err != nil {
		return ignore, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return ignore, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseDrain))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
		return allow, nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return deny, nil
	}
	return ignore, fmt.Errorf("%w %d", errBadStatus, resp.StatusCode)
}

// newHTTPClient is the client used when Options.HTTPClient is nil. It does
// not follow redirects: a redirect is an answer other than 200 or 4xx, and
// following one would resend a password to wherever it points.
func newHTTPClient() *http.Client {
	return &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// answerCache keeps HTTP answers for a TTL, keyed by a digest of the
// request.
type answerCache struct {
	now func() time.Time
	ttl time.Duration

	mu sync.Mutex
	m  map[[sha256.Size]byte]cachedAnswer
}

type cachedAnswer struct {
	answer  verdict
	expires time.Time
}

func newAnswerCache(now func() time.Time, ttl time.Duration) *answerCache {
	return &answerCache{now: now, ttl: ttl, m: map[[sha256.Size]byte]cachedAnswer{}}
}

func (c *answerCache) get(key [sha256.Size]byte) (verdict, bool) {
	if c.ttl <= 0 {
		return ignore, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok {
		return ignore, false
	}
	if !c.now().Before(e.expires) {
		delete(c.m, key)
		return ignore, false
	}
	return e.answer, true
}

func (c *answerCache) put(key [sha256.Size]byte, answer verdict) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.m) >= maxCachedAnswers {
		for k, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, k)
			}
		}
		// Still full of live answers: drop a tenth, arbitrary ones (map
		// order), so the sweep is not repeated on every insert.
		for k := range c.m {
			if len(c.m) < maxCachedAnswers*9/10 {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = cachedAnswer{answer: answer, expires: now.Add(c.ttl)}
}

func (c *answerCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
