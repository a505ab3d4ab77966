package vault

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"
)

// The two lists synced from the vault.
const (
	TrustList  = "trust"
	IssuerList = "issuer"
)

// statusList is the folder holding one status secret per device.
const statusList = "status"

// Defaults applied by New to the zero fields of Config.
const (
	DefaultMount          = "secret"
	DefaultPrefix         = "edgegate"
	DefaultField          = "certificate"
	DefaultTimeout        = 10 * time.Second
	DefaultAppRoleMount   = "approle"
	DefaultCertAuthMount  = "cert"
	maxResponseBytes      = 1 << 20 // a CA bundle is a few KiB; a fleet list of keys fits easily
	maxListKeys           = 10000
	maxNameLen            = 255
	maxErrorMessages      = 3
	maxErrorMessageLength = 200
)

// AuthMethod is how the client gets its Vault token.
type AuthMethod string

// The supported auth methods.
const (
	AuthToken   AuthMethod = "token"   // a fixed token; never renewed
	AuthAppRole AuthMethod = "approle" // role_id + secret_id login
	AuthCert    AuthMethod = "cert"    // TLS certificate login with the device certificate
)

// Auth configures how the client logs in.
type Auth struct {
	Method           AuthMethod
	Token            string // AuthToken
	RoleID, SecretID string // AuthAppRole
	Mount            string // auth mount; default "approle" or "cert"
	Role             string // AuthCert: the certificate role to log in against (optional)
}

// String never shows credentials, so an Auth printed by mistake leaks nothing.
func (a Auth) String() string {
	return fmt.Sprintf("vault.Auth{Method: %q, Mount: %q, Role: %q}", a.Method, a.Mount, a.Role)
}

// LogValue keeps credentials out of structured logs too.
func (a Auth) LogValue() slog.Value {
	return slog.GroupValue(slog.String("method", string(a.Method)), slog.String("mount", a.Mount))
}

// Config configures a Client.
type Config struct {
	// Address is the vault's base URL. It must be https, except that http is
	// accepted for a loopback host (127.0.0.1, ::1, localhost): a token sent in
	// clear text over a network is not acceptable, but a vault agent or dev
	// server on the same machine is.
	Address   string
	Namespace string // sent as X-Vault-Namespace when set
	Mount     string // KV v2 mount; default "secret"
	Prefix    string // path prefix inside the mount; default "edgegate"
	Field     string // the field of each secret holding the PEM; default "certificate"
	Auth      Auth

	// RootCAs returns the roots trusted for the vault's server certificate.
	// It is asked for every new connection, so a new pool applies without a
	// restart; nil, or a nil pool, means the system roots.
	RootCAs func() *x509.CertPool
	// ClientCertificate returns the device certificate. It is required for
	// cert auth and, when set, presented on every TLS connection.
	ClientCertificate func() (*tls.Certificate, error)

	Timeout time.Duration // per request; default 10s
	Logger  *slog.Logger  // default slog.Default()
	// Now is the clock used for token leases; default time.Now. Tests set it.
	Now func() time.Time
}

// withDefaults returns c with its zero fields set to the defaults.
func (c Config) withDefaults() Config {
	if c.Mount == "" {
		c.Mount = DefaultMount
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Field == "" {
		c.Field = DefaultField
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Auth.Mount == "" {
		switch c.Auth.Method {
		case AuthAppRole:
			c.Auth.Mount = DefaultAppRoleMount
		case AuthCert:
			c.Auth.Mount = DefaultCertAuthMount
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports every problem with c (after defaults), joined. It is pure.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if err := validateAddress(c.Address); err != nil {
		errs = append(errs, err)
	}
	if err := validatePath("mount", c.Mount); err != nil {
		errs = append(errs, err)
	}
	if err := validatePath("prefix", strings.Trim(c.Prefix, "/")); err != nil {
		errs = append(errs, err)
	}
	if strings.TrimSpace(c.Field) != c.Field {
		errs = append(errs, fmt.Errorf("field %q: leading or trailing space", c.Field))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %v: negative", c.Timeout))
	}
	if err := validatePath("auth mount", c.Auth.Mount); c.Auth.Method != AuthToken && err != nil {
		errs = append(errs, err)
	}
	switch c.Auth.Method {
	case AuthToken:
		if c.Auth.Token == "" {
			errs = append(errs, errors.New("token auth: token is empty"))
		}
	case AuthAppRole:
		if c.Auth.RoleID == "" {
			errs = append(errs, errors.New("approle auth: role_id is empty"))
		}
		if c.Auth.SecretID == "" {
			errs = append(errs, errors.New("approle auth: secret_id is empty"))
		}
	case AuthCert:
		if c.ClientCertificate == nil {
			errs = append(errs, errors.New("cert auth: no client certificate configured"))
		}
	default:
		errs = append(errs, fmt.Errorf("auth method %q: want token, approle or cert", c.Auth.Method))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("vault config: %w", err)
	}
	return nil
}

func validateAddress(address string) error {
	u, err := url.Parse(address)
	if err != nil {
		return fmt.Errorf("address: %w", err)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return fmt.Errorf("address %q: want scheme://host[:port]", address)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("address %q: http is only allowed to a loopback host; use https", address)
	default:
		return fmt.Errorf("address %q: scheme must be https", address)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validatePath checks a mount or prefix: slash-separated non-empty segments
// that cannot climb out of where they are put.
func validatePath(what, p string) error {
	if p == "" {
		return fmt.Errorf("%s is empty", what)
	}
	for seg := range strings.SplitSeq(p, "/") {
		if err := validateName(seg); err != nil {
			return fmt.Errorf("%s %q: %w", what, p, err)
		}
	}
	return nil
}

// validateName checks one path segment: a secret name or a device id.
func validateName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case len(name) > maxNameLen:
		return fmt.Errorf("name longer than %d bytes", maxNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("name %q not allowed", name)
	case strings.ContainsAny(name, "/\\?#%"):
		return fmt.Errorf("name %q: contains one of / \\ ? # %%", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("name %q: control character", name)
		}
	}
	return nil
}
