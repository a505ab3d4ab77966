package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// FieldError is one invalid setting: Path is the dotted settings path.
type FieldError struct {
	Path    string
	Problem string
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Problem }

// FieldErrors lists every *FieldError in err, which may wrap or join
// several (as Validate and a settings service's Apply return them). It
// walks the whole tree: errors.As would stop at the first.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) { //nolint:errorlint // the walk visits every wrapped error itself
		case *FieldError:
			out = append(out, e)
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		case interface{ Unwrap() error }:
			if inner := e.Unwrap(); inner != nil {
				walk(inner)
			}
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

// Validate checks the whole configuration and returns every problem found,
// joined, each a *FieldError naming the setting. It does no I/O.
func (c Config) Validate() error {
	v := &validator{}
	if !nodeName.MatchString(c.Node) {
		v.add("node", "must be 1-64 letters, digits, '.', '_', '-' or '@'")
	}
	if _, err := time.LoadLocation(c.TimeZone); err != nil || c.TimeZone == "" || c.TimeZone == "Local" {
		v.add("timezone", "must be an IANA time zone such as UTC or Europe/Berlin")
	}
	v.listeners(c.Listeners)
	v.bind("api.bind", c.API.Bind)
	if c.API.HTTPSBind != "" {
		v.bind("api.https_bind", c.API.HTTPSBind)
	}
	v.positive("api.max_body_bytes", c.API.MaxBodyBytes)
	v.mqtt(c.MQTT)
	v.auth(c.Auth)
	if c.ACL.NoMatch != "allow" && c.ACL.NoMatch != "deny" {
		v.add("acl.nomatch", "must be allow or deny")
	}
	if err := c.ACL.Rules.Validate(); err != nil {
		v.add("acl.rules", "%v", err)
	}
	v.atLeast("sys.interval", c.Sys.Interval, time.Second)
	if c.Sys.ClientsAlarmPercent < 1 || c.Sys.ClientsAlarmPercent > 100 {
		v.add("sys.clients_alarm_percent", "must be between 1 and 100")
	}
	v.atLeast("sys.long_gc", c.Sys.LongGC, time.Millisecond)
	v.positive("trace.max_bytes", c.Trace.MaxBytes)
	if b := c.Memory.BudgetBytes; b != 0 && b < 16<<20 {
		v.add("memory.budget_bytes", "must be 0 (no budget) or at least 16 MiB")
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.Log.Level)); err != nil {
		v.add("log.level", "must be debug, info, warn or error")
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		v.add("log.format", "must be text or json")
	}
	v.acme(c.ACME)
	v.trust(c.Trust)
	return errors.Join(v.errs...)
}

var (
	nodeName     = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,64}$`)
	listenerName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
)

type validator struct{ errs []error }

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Path: path, Problem: fmt.Sprintf(format, args...)})
}

func (v *validator) positive(path string, n int64) {
	if n <= 0 {
		v.add(path, "must be greater than 0")
	}
}

func (v *validator) atLeast(path string, d Duration, least time.Duration) {
	if d.Std() < least {
		v.add(path, "must be at least %s", least)
	}
}

func (v *validator) bind(path, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.add(path, "must be host:port, e.g. \":1883\" or \"127.0.0.1:1883\"")
		return
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		v.add(path, "host %q must be an IP address, localhost or empty", host)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		v.add(path, "port %q must be a number from 0 to 65535", port)
	}
}

func (v *validator) listeners(ls map[string]Listener) {
	if len(ls) == 0 {
		v.add("listeners", "at least one listener is required")
	}
	names := make([]string, 0, len(ls))
	for name := range ls {
		names = append(names, name)
	}
	sort.Strings(names)
	binds := map[string]string{}
	for _, name := range names {
		l := ls[name]
		p := "listeners." + name
		if !listenerName.MatchString(name) {
			v.add(p, "name must be 1-32 lower-case letters, digits, '-' or '_'")
		}
		switch l.Type {
		case TypeTCP, TypeTLS, TypeWS, TypeWSS:
		default:
			v.add(p+".type", "must be tcp, tls, ws or wss, not %q", l.Type)
		}
		v.bind(p+".bind", l.Bind)
		if l.Disabled {
			continue
		}
		if other, dup := binds[l.Bind]; dup && !strings.HasSuffix(l.Bind, ":0") {
			v.add(p+".bind", "%s is already used by listener %q", l.Bind, other)
		}
		binds[l.Bind] = name
		if l.MaxClients < 1 {
			v.add(p+".max_clients", "must be at least 1")
		}
		if l.IsWebSocket() {
			if !strings.HasPrefix(l.Path, "/") {
				v.add(p+".path", "must start with '/'")
			}
		} else if l.Path != "" {
			v.add(p+".path", "only ws and wss listeners have a path")
		}
		v.listenerTLS(p+".tls", l)
	}
}

func (v *validator) listenerTLS(p string, l Listener) {
	if !l.IsTLS() {
		if l.TLS != nil {
			v.add(p, "only tls and wss listeners take TLS settings")
		}
		return
	}
	if l.TLS == nil {
		return
	}
	switch l.TLS.ClientAuth {
	case ClientAuthNone, ClientAuthOptional, ClientAuthRequired:
	default:
		v.add(p+".client_auth", "must be none, optional or required")
	}
	if l.TLS.ClientAuth != ClientAuthNone && l.TLS.ClientCA == "" {
		v.add(p+".client_ca", "is required when client_auth is %s: \"local\" or a PEM file path", l.TLS.ClientAuth)
	}
	if ca := l.TLS.ClientCA; ca != "" && ca != ClientCALocal && !strings.HasPrefix(ca, "/") {
		v.add(p+".client_ca", "must be \"local\" or an absolute file path")
	}
	fields := []string{CertFieldNone, CertFieldCN, CertFieldDNS, CertFieldURI, CertFieldDN}
	if !slices.Contains(fields, l.TLS.Identity.Username) {
		v.add(p+".identity.username", "must be cn, dns, uri, dn or empty")
	}
	if !slices.Contains(fields, l.TLS.Identity.ClientID) {
		v.add(p+".identity.clientid", "must be cn, dns, uri, dn or empty")
	}
	mapped := l.TLS.Identity.Username != "" || l.TLS.Identity.ClientID != ""
	if mapped && l.TLS.ClientAuth == ClientAuthNone {
		v.add(p+".identity", "needs client_auth optional or required")
	}
}

func (v *validator) mqtt(m MQTT) {
	if m.MaxPacketSize < 64 || m.MaxPacketSize > 256<<20 {
		v.add("mqtt.max_packet_size", "must be between 64 bytes and 256 MiB")
	}
	if m.ReceiveMaximum < 1 {
		v.add("mqtt.receive_maximum", "must be at least 1")
	}
	if m.MaxQueuedMessages < 1 || m.MaxQueuedMessages > 65535 {
		v.add("mqtt.max_queued_messages", "must be between 1 and 65535")
	}
	v.positive("mqtt.max_queued_bytes", m.MaxQueuedBytes)
	v.atLeast("mqtt.max_session_expiry", m.MaxSessionExpiry, 0)
	if m.ClientWriteQueue < 1 || m.ClientWriteQueue > 8192 {
		v.add("mqtt.client_write_queue", "must be between 1 and 8192")
	}
}

func (v *validator) auth(a Auth) {
	links := []string{AuthCertificate, AuthUsername, AuthClientID, AuthHTTP, AuthAnonymous}
	seen := map[string]bool{}
	if len(a.Chain) == 0 {
		v.add("auth.chain", "must list at least one of %s", strings.Join(links, ", "))
	}
	for i, link := range a.Chain {
		p := fmt.Sprintf("auth.chain[%d]", i)
		if !slices.Contains(links, link) {
			v.add(p, "unknown link %q; known: %s", link, strings.Join(links, ", "))
		}
		if seen[link] {
			v.add(p, "%q appears twice", link)
		}
		seen[link] = true
	}
	if a.PasswordHash != HashPBKDF2SHA256 && a.PasswordHash != HashBcrypt {
		v.add("auth.password_hash", "must be %s or %s", HashPBKDF2SHA256, HashBcrypt)
	}
	if a.PBKDF2Iterations < 10000 || a.PBKDF2Iterations > 10_000_000 {
		v.add("auth.pbkdf2_iterations", "must be between 10000 and 10000000")
	}
	if a.FailedLogins.Max < 1 {
		v.add("auth.failed_logins.max", "must be at least 1")
	}
	v.atLeast("auth.failed_logins.window", a.FailedLogins.Window, time.Second)
	for name, r := range map[string]HTTPRequest{"auth_req": a.HTTP.AuthReq, "super_req": a.HTTP.SuperReq, "acl_req": a.HTTP.ACLReq} {
		v.httpRequest("auth.http."+name, r)
	}
	v.atLeast("auth.http.timeout", a.HTTP.Timeout, 10*time.Millisecond)
	if a.HTTP.OnError != OnErrorIgnore && a.HTTP.OnError != OnErrorDeny {
		v.add("auth.http.on_error", "must be ignore or deny")
	}
	v.atLeast("auth.http.cache_ttl", a.HTTP.CacheTTL, 0)
}

func (v *validator) httpRequest(p string, r HTTPRequest) {
	if r.URL == "" {
		return
	}
	u, err := url.Parse(r.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.add(p+".url", "must be an http:// or https:// URL")
	}
	if m := strings.ToLower(r.Method); m != "get" && m != "post" {
		v.add(p+".method", "must be get or post")
	}
	for _, kv := range strings.Split(r.Params, ",") {
		if kv == "" {
			continue
		}
		if name, _, ok := strings.Cut(kv, "="); !ok || name == "" {
			v.add(p+".params", "%q must be name=value", kv)
		}
	}
}

func (v *validator) acme(a ACME) {
	if !a.Enabled() {
		return
	}
	if u, err := url.Parse(a.DirectoryURL); err != nil || u.Scheme != "https" || u.Host == "" {
		v.add("acme.directory_url", "must be an https URL, e.g. https://acme-v02.api.letsencrypt.org/directory")
	}
	if a.Email != "" {
		if _, err := mail.ParseAddress(a.Email); err != nil {
			v.add("acme.email", "must be an e-mail address")
		}
	}
	if len(a.Challenges) == 0 {
		v.add("acme.challenges", "must name at least one of %s, %s, %s", ChallengeHTTP01, ChallengeTLSALPN01, ChallengeDNS01)
	}
	for i, c := range a.Challenges {
		if c != ChallengeHTTP01 && c != ChallengeTLSALPN01 && c != ChallengeDNS01 {
			v.add(fmt.Sprintf("acme.challenges[%d]", i), "must be %s, %s or %s", ChallengeHTTP01, ChallengeTLSALPN01, ChallengeDNS01)
		}
	}
	dns := slices.Contains(a.Challenges, ChallengeDNS01)
	switch {
	case dns && !slices.Contains(DNSProviders, a.DNSProvider):
		v.add("acme.dns_provider", "must be one of %s for the dns-01 challenge", strings.Join(DNSProviders, ", "))
	case dns && a.DNSCredentialsFile == "":
		v.add("acme.dns_credentials_file", "must name the file holding the DNS provider's credentials")
	case !dns && (a.DNSProvider != "" || a.DNSCredentialsFile != ""):
		v.add("acme.dns_provider", "is set but acme.challenges does not include %s", ChallengeDNS01)
	}
	switch a.KeyType {
	case "", "ec-p256", "ec-p384", "rsa-2048", "rsa-4096":
	default:
		v.add("acme.key_type", "must be ec-p256, ec-p384, rsa-2048 or rsa-4096")
	}
}

// vaultPath is a KV v2 mount or prefix: path segments that do not start
// with a dot (so no "." or "..").
var vaultPath = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*$`)

func (v *validator) trust(t Trust) {
	if t.History < 1 || t.History > 1000 {
		v.add("trust.history", "must be between 1 and 1000")
	}
	vt := t.Vault
	if !vt.Enabled() {
		return
	}
	if u, err := url.Parse(vt.Address); err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		v.add("trust.vault.address", "must be an https URL without a path, e.g. https://vault.example:8200")
	}
	if !vaultPath.MatchString(vt.Mount) {
		v.add("trust.vault.mount", "must be a vault path such as secret")
	}
	if !vaultPath.MatchString(vt.Prefix) {
		v.add("trust.vault.prefix", "must be a vault path such as edgegate or fleet/edgegate")
	}
	if vt.AuthMount != "" && !vaultPath.MatchString(vt.AuthMount) {
		v.add("trust.vault.auth_mount", "must be a vault path such as cert")
	}
	if vt.Field == "" {
		v.add("trust.vault.field", "must name the secret field holding the PEM")
	}
	switch vt.AuthMethod {
	case VaultAuthCert:
	case VaultAuthToken, VaultAuthAppRole:
		if vt.CredentialsFile == "" {
			v.add("trust.vault.credentials_file", "must name the file holding the %s credentials", vt.AuthMethod)
		}
	default:
		v.add("trust.vault.auth_method", "must be %s, %s or %s", VaultAuthCert, VaultAuthToken, VaultAuthAppRole)
	}
	v.atLeast("trust.vault.poll_interval", vt.PollInterval, 10*time.Second)
}
