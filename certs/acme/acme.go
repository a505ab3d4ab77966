// Package acme obtains, renews and revokes certificates from an ACME CA (Let's
// Encrypt, ZeroSSL, or a private CA such as step-ca) for the gateway's
// certificate manager. It is the only package of edgegate that imports lego.
//
// Challenges are answered by the gateway's own listeners, never by lego's
// standalone servers, so no extra port is opened:
//   - http-01: wrap the plain-HTTP listener's handler with [Client.HTTPHandler];
//   - tls-alpn-01: call [Client.ChallengeCertificate] first in the TLS
//     listener's GetCertificate and add [ALPNProto] to its NextProtos;
//   - dns-01: one of the few DNS providers named by [DNSProviders], configured
//     through [DNSConfig].
//
// The ACME account (its key and registration) is kept through [AccountStore],
// so a restarted gateway reuses its account instead of registering again.
//
// lego's API takes no contexts. Each operation therefore builds its own lego
// client whose HTTP transport is bound to the operation's context, and the
// operation is bounded by [Config.Timeout]: cancelling the context aborts the
// next network step. lego sleeps between polls of the CA (the CA's
// Retry-After, typically seconds) without watching the context, so a cancelled
// call can return up to one poll interval late.
package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	legolog "github.com/go-acme/lego/v4/log"
)

// Well-known ACME directories.
const (
	LetsEncryptProduction = "https://acme-v02.api.letsencrypt.org/directory"
	LetsEncryptStaging    = "https://acme-staging-v02.api.letsencrypt.org/directory"
	ZeroSSL               = "https://acme.zerossl.com/v2/DV90" // requires EAB
)

// ALPNProto is the ALPN protocol of the tls-alpn-01 challenge (RFC 8737). A
// TLS listener that answers the challenge must list it in NextProtos; a
// connection that negotiated it carries no application data and should be
// closed after the handshake.
const ALPNProto = "acme-tls/1"

// DefaultTimeout bounds an operation whose context has no earlier deadline.
const DefaultTimeout = 3 * time.Minute

// Revocation reasons (RFC 5280, section 5.3.1) that ACME CAs accept.
const (
	ReasonUnspecified          uint = 0
	ReasonKeyCompromise        uint = 1
	ReasonSuperseded           uint = 4
	ReasonCessationOfOperation uint = 5
)

// ErrNoRenewalInfo is returned (wrapped) by [Client.RenewalInfo] when the CA
// does not offer ACME Renewal Information (RFC 9773); the caller then falls
// back to renewing when a third of the lifetime is left.
var ErrNoRenewalInfo = errors.New("CA does not offer renewal information (ARI)")

// ErrAccountNotFound is returned by an [AccountStore]'s LoadAccount when no
// account is stored under the key.
var ErrAccountNotFound = errors.New("acme account not found")

// ErrTermsNotAgreed is returned (wrapped) when an account has to be registered
// but [Config.AgreeToTerms] is false.
var ErrTermsNotAgreed = errors.New("the CA's terms of service must be agreed to before an account is registered")

// ErrUnknownDNSProvider is returned (wrapped) by [Config.Validate] and [New]
// when [DNSConfig.Provider] is not one of [DNSProviders].
var ErrUnknownDNSProvider = errors.New("unknown dns-01 provider")

// KeyType is the type of the certificate keys [Client.Obtain] generates.
type KeyType string

// Key types. The zero value means KeyECP256.
const (
	KeyECP256  KeyType = "ec-p256"
	KeyECP384  KeyType = "ec-p384"
	KeyRSA2048 KeyType = "rsa-2048"
	KeyRSA4096 KeyType = "rsa-4096"
)

// Challenge is an ACME challenge type.
type Challenge string

// Challenge types.
const (
	HTTP01    Challenge = "http-01"
	TLSALPN01 Challenge = "tls-alpn-01"
	DNS01     Challenge = "dns-01"
)

// EAB is an external account binding: the key id and MAC key a CA such as
// ZeroSSL hands out to tie an ACME account to an account on its website.
type EAB struct {
	KeyID string
	// HMACKey is the MAC key as the CA shows it: base64url, with or without
	// padding.
	HMACKey string
}

// String shows the key id only, so that a logged or printed configuration
// does not leak the MAC key.
func (e EAB) String() string { return "{KeyID:" + e.KeyID + " HMACKey:<redacted>}" }

// LogValue is String for log/slog.
func (e EAB) LogValue() slog.Value { return slog.StringValue(e.String()) }

// Config configures a [Client].
type Config struct {
	// DirectoryURL is the CA's ACME directory (https), e.g.
	// [LetsEncryptProduction].
	DirectoryURL string
	// Email is the account's contact address; optional for most CAs.
	Email string
	// AgreeToTerms records that the operator agreed to the CA's terms of
	// service, which registering an account implies. Without it no account is
	// registered ([ErrTermsNotAgreed]); an already stored account still works.
	AgreeToTerms bool
	// EAB binds a new account to an external account; required by some CAs.
	EAB *EAB
	// RootCAs verifies the CA's own HTTPS certificate; nil means the system
	// roots. A private CA (or Pebble) needs its root here.
	RootCAs *x509.CertPool
	// KeyType is the type of certificate keys; empty means [KeyECP256].
	KeyType KeyType
	// Challenges are the challenge types offered to the CA. Empty means http-01
	// and tls-alpn-01, plus dns-01 when DNS is set. When the CA offers several,
	// lego tries tls-alpn-01, then http-01, then dns-01, and does not fall back
	// to the next one on failure: enable only what the gateway can answer.
	Challenges []Challenge
	// DNS configures dns-01; required when Challenges lists dns-01 and for
	// wildcard names.
	DNS *DNSConfig
	// Timeout bounds each operation whose context has no earlier deadline;
	// zero means [DefaultTimeout].
	Timeout time.Duration
	// Logger receives account and certificate events. Nil discards them. Keys,
	// tokens, EAB MAC keys and DNS credentials are never logged.
	Logger *slog.Logger
}

// Validate checks the configuration without any network access, so that a
// settings change can be rejected before it is applied.
func (c Config) Validate() error {
	_, err := c.normalize()
	return err
}

// normalize validates c and returns a copy with the defaults filled in.
func (c Config) normalize() (Config, error) {
	if err := validateDirectoryURL(c.DirectoryURL); err != nil {
		return c, err
	}
	c.Email = strings.TrimSpace(c.Email)
	if c.Email != "" {
		if a, err := mail.ParseAddress(c.Email); err != nil || a.Address != c.Email {
			return c, fmt.Errorf("acme: config: email %q is not a plain address", c.Email)
		}
	}
	if c.EAB != nil {
		if c.EAB.KeyID == "" {
			return c, errors.New("acme: config: EAB key id is empty")
		}
		if _, err := decodeEABKey(c.EAB.HMACKey); err != nil {
			return c, errors.New("acme: config: EAB MAC key is not base64url")
		}
	}
	if c.KeyType == "" {
		c.KeyType = KeyECP256
	}
	if _, err := certKeyType(c.KeyType); err != nil {
		return c, fmt.Errorf("acme: config: %w", err)
	}
	if len(c.Challenges) == 0 {
		c.Challenges = []Challenge{HTTP01, TLSALPN01}
		if c.DNS != nil {
			c.Challenges = append(c.Challenges, DNS01)
		}
	}
	for _, ch := range c.Challenges {
		switch ch {
		case HTTP01, TLSALPN01:
		case DNS01:
			if c.DNS == nil {
				return c, errors.New("acme: config: dns-01 is enabled but no DNS provider is configured")
			}
		default:
			return c, fmt.Errorf("acme: config: unknown challenge type %q", ch)
		}
	}
	c.Challenges = slices.Clone(c.Challenges)
	if c.DNS != nil {
		if _, err := newDNSFactory(*c.DNS); err != nil {
			return c, fmt.Errorf("acme: config: %w", err)
		}
	}
	if c.Timeout < 0 {
		return c, errors.New("acme: config: negative timeout")
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c, nil
}

func validateDirectoryURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("acme: config: directory URL: %w", err)
	}
	// RFC 8555, section 6.1: ACME is served over HTTPS only.
	if u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("acme: config: directory URL %q is not an https URL", s)
	}
	if u.User != nil {
		return errors.New("acme: config: directory URL must not contain credentials")
	}
	return nil
}

func decodeEABKey(s string) ([]byte, error) {
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil && len(b) > 0 {
		return b, nil
	}
	b, err := base64.URLEncoding.DecodeString(s)
	if err == nil && len(b) == 0 {
		err = errors.New("empty key")
	}
	return b, err
}

// AccountStore persists ACME accounts. data is an opaque JSON document that
// contains the account's private key: store it as a secret. key identifies
// the account by directory URL and email. Implementations must be safe for
// concurrent use.
type AccountStore interface {
	// LoadAccount returns the data saved under key, or an error wrapping
	// [ErrAccountNotFound] (or empty data and no error) when there is none.
	LoadAccount(ctx context.Context, key string) ([]byte, error)
	// SaveAccount stores data under key, replacing what was there.
	SaveAccount(ctx context.Context, key string, data []byte) error
}

// Client talks to one ACME CA with one account. It is safe for concurrent
// use; operations that use the account run one at a time.
type Client struct {
	cfg   Config
	store AccountStore
	log   *slog.Logger

	// acmeTransport reaches the CA (trusting cfg.RootCAs); dnsTransport reaches
	// DNS provider APIs (system roots). Both are shared by all operations so
	// that connections are reused.
	acmeTransport *http.Transport
	dnsTransport  *http.Transport
	dns           *dnsFactory // nil when dns-01 is not enabled

	http01  *http01Solver
	tlsALPN *tlsALPNSolver

	// sem serialises account use and challenge solving: one account
	// registration at a time, and no two orders presenting tls-alpn-01
	// certificates for the same name at once.
	sem chan struct{}
	// acct is the loaded or registered account; guarded by sem.
	acct *account
}

// New returns a client for cfg. It does no network access; the account is
// loaded from store, or registered, on first use.
func New(cfg Config, store AccountStore) (*Client, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if store == nil {
		return nil, errors.New("acme: new client: nil account store")
	}
	silenceLego()

	c := &Client{
		cfg:           cfg,
		store:         store,
		log:           cfg.Logger,
		acmeTransport: newTransport(cfg.RootCAs),
		dnsTransport:  newTransport(nil),
		http01:        newHTTP01Solver(),
		tlsALPN:       newTLSALPNSolver(),
		sem:           make(chan struct{}, 1),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.http01.log = c.log
	c.tlsALPN.log = c.log
	if slices.Contains(cfg.Challenges, DNS01) {
		if c.dns, err = newDNSFactory(*cfg.DNS); err != nil {
			return nil, fmt.Errorf("acme: new client: %w", err)
		}
	}
	return c, nil
}

// newTransport returns the HTTP transport for the CA or a DNS API. Its
// timeouts bound each step of a request; the operation's context bounds the
// whole.
func newTransport(roots *x509.CertPool) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   2,
		ForceAttemptHTTP2:     true,
	}
}

// opContext bounds an operation by the configured timeout.
func (c *Client) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cfg.Timeout)
}

// acquire waits for sem or for ctx.
func (c *Client) acquire(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (c *Client) release() { <-c.sem }

// silenceLegoOnce guards lego's process-wide logger, the one global this
// package touches: lego logs through it rather than through anything a caller
// passes in, and lego's exec provider would forward script output there.
var silenceLegoOnce sync.Once

// silenceLego discards lego's own log lines. The events that matter (account
// registered, certificate obtained, challenge cleanup failed) are logged by
// this package through Config.Logger, with structured keys and no secrets.
func silenceLego() {
	silenceLegoOnce.Do(func() {
		legolog.Logger = log.New(io.Discard, "", 0)
	})
}
