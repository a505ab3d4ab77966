// Package config holds edgegate's settings: their types, the built-in
// defaults, strict JSON decoding with line:col errors, the layering of
// defaults ⊕ live store document ⊕ locked image file, and pure validation.
package config

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"github.com/edgegate/edgegate/gateway/acl"
)

// Config is the whole effective configuration of a gateway.
type Config struct {
	// Node names this broker in $SYS topics: $SYS/brokers/<node>/...
	Node string `json:"node"`
	// TimeZone is the IANA zone the web UI shows times in, e.g. "Europe/Berlin".
	TimeZone  string              `json:"timezone"`
	Listeners map[string]Listener `json:"listeners"`
	API       API                 `json:"api"`
	MQTT      MQTT                `json:"mqtt"`
	Auth      Auth                `json:"auth"`
	ACL       ACL                 `json:"acl"`
	Sys       Sys                 `json:"sys"`
	Trace     Trace               `json:"trace"`
	Memory    Memory              `json:"memory"`
	Log       Log                 `json:"log"`
	ACME      ACME                `json:"acme"`
	Trust     Trust               `json:"trust"`
}

// Listener types.
const (
	TypeTCP = "tcp" // MQTT over TCP
	TypeTLS = "tls" // MQTT over TLS
	TypeWS  = "ws"  // MQTT over WebSocket
	TypeWSS = "wss" // MQTT over WebSocket over TLS
)

// Listener is one MQTT network endpoint. Its key in Config.Listeners is its
// name, which is also the FileDescriptorName it takes under socket activation.
type Listener struct {
	Type string `json:"type"`
	// Bind is host:port; an empty host binds every address.
	Bind string `json:"bind"`
	// Path is the HTTP path of a ws/wss listener.
	Path string `json:"path,omitempty"`
	// MaxClients bounds the connections this listener holds at once; a
	// CONNECT over the limit is refused with "server unavailable" (v3) or
	// "quota exceeded" (v5).
	MaxClients int          `json:"max_clients"`
	Disabled   bool         `json:"disabled,omitempty"`
	TLS        *ListenerTLS `json:"tls,omitempty"`
}

// IsTLS reports whether the listener terminates TLS.
func (l Listener) IsTLS() bool { return l.Type == TypeTLS || l.Type == TypeWSS }

// IsWebSocket reports whether the listener speaks MQTT over WebSocket.
func (l Listener) IsWebSocket() bool { return l.Type == TypeWS || l.Type == TypeWSS }

// Client-certificate modes of a TLS listener.
const (
	ClientAuthNone     = "none"
	ClientAuthOptional = "optional"
	ClientAuthRequired = "required"
)

// ClientCALocal names the local CA as the client-certificate pool.
const ClientCALocal = "local"

// ListenerTLS configures a TLS listener.
type ListenerTLS struct {
	// ClientAuth is none, optional (verify when presented) or required.
	ClientAuth string `json:"client_auth"`
	// ClientCA is "local" (the gateway's local CA) or the path of a PEM
	// bundle of CA certificates whose client certificates are accepted.
	ClientCA string `json:"client_ca,omitempty"`
	// Identity maps a verified client certificate to the MQTT identity.
	Identity Identity `json:"identity"`
}

// Certificate fields an identity can be taken from.
const (
	CertFieldNone = ""    // keep what the client sent
	CertFieldCN   = "cn"  // subject common name
	CertFieldDNS  = "dns" // first DNS SAN
	CertFieldURI  = "uri" // first URI SAN (e.g. a SPIFFE ID)
	CertFieldDN   = "dn"  // full subject DN, RFC 2253 string
)

// Identity says which certificate field, if any, replaces the username and
// the client identifier a client sent.
type Identity struct {
	Username string `json:"username,omitempty"`
	ClientID string `json:"clientid,omitempty"`
}

// API configures the web servers: the plain-HTTP one (the admin API for
// loopback clients, the public PKI downloads and ACME http-01 challenges;
// everything else redirects to HTTPS) and the HTTPS one (the web UI and the
// admin API for any address).
type API struct {
	Bind string `json:"bind"`
	// HTTPSBind is the web UI's address; "" turns the UI off.
	HTTPSBind string `json:"https_bind"`
	// MaxBodyBytes limits request bodies.
	MaxBodyBytes int64 `json:"max_body_bytes"`
}

// MQTT holds protocol limits.
type MQTT struct {
	// MaxPacketSize is the largest packet accepted, in bytes.
	MaxPacketSize uint32 `json:"max_packet_size"`
	// ReceiveMaximum is how many unacknowledged QoS 1/2 messages a client may
	// send to us at once.
	ReceiveMaximum uint16 `json:"receive_maximum"`
	// MaxQueuedMessages and MaxQueuedBytes bound what is kept for one client
	// (offline or slow); beyond them messages are dropped and counted in
	// messages/dropped.
	MaxQueuedMessages int   `json:"max_queued_messages"`
	MaxQueuedBytes    int64 `json:"max_queued_bytes"`
	// MaxSessionExpiry caps how long a disconnected persistent session is kept.
	MaxSessionExpiry Duration `json:"max_session_expiry"`
	// ClientWriteQueue is the number of packets queued for writing per
	// client. A QoS 0 message for a client whose queue is full is dropped
	// (and counted); a QoS 1/2 one waits in the client's session, within
	// MaxQueuedMessages and MaxQueuedBytes, until the queue has room.
	ClientWriteQueue int `json:"client_write_queue"`
	// RetainAvailable enables retained messages.
	RetainAvailable bool `json:"retain_available"`
}

// Links of the authentication chain.
const (
	AuthCertificate = "certificate" // a verified client certificate mapped to an identity
	AuthUsername    = "username"    // username/password users
	AuthClientID    = "clientid"    // clientid/password entries
	AuthHTTP        = "http"        // the HTTP backend
	AuthAnonymous   = "anonymous"   // allow or deny clients no earlier link decided
)

// Password hash kinds for new users.
const (
	HashPBKDF2SHA256 = "pbkdf2-sha256"
	HashBcrypt       = "bcrypt"
)

// Auth configures client authentication.
type Auth struct {
	// Chain is the order in which links are asked; each answers allow, deny
	// or ignore (ask the next).
	Chain          []string `json:"chain"`
	AllowAnonymous bool     `json:"allow_anonymous"`
	// PasswordHash is the hash used for passwords set through edgegate.
	PasswordHash     string `json:"password_hash"`
	PBKDF2Iterations int    `json:"pbkdf2_iterations"`
	// FailedLogins limits failed CONNECTs per remote IP.
	FailedLogins RateLimit `json:"failed_logins"`
	HTTP         HTTPAuth  `json:"http"`
}

// RateLimit allows Max events per Window.
type RateLimit struct {
	Max    int      `json:"max"`
	Window Duration `json:"window"`
}

// Outcomes of the HTTP backend when it fails (timeout or 5xx).
const (
	OnErrorIgnore = "ignore"
	OnErrorDeny   = "deny"
)

// HTTPAuth is seed 002's emq_auth_http: an HTTP service decides auth, superuser
// and ACL. A request with an empty URL is not made.
type HTTPAuth struct {
	AuthReq  HTTPRequest `json:"auth_req"`
	SuperReq HTTPRequest `json:"super_req"`
	ACLReq   HTTPRequest `json:"acl_req"`
	Timeout  Duration    `json:"timeout"`
	// OnError is what a timeout or 5xx answer means: ignore or deny.
	OnError string `json:"on_error"`
	// CacheTTL keeps answers this long.
	CacheTTL Duration `json:"cache_ttl"`
}

// HTTPRequest is one call of the HTTP backend. Params is a comma-separated
// list of name=value with placeholders %u username, %c clientid, %a address,
// %P password, %t topic, %A access (1 subscribe, 2 publish).
type HTTPRequest struct {
	URL    string `json:"url,omitempty"`
	Method string `json:"method,omitempty"`
	Params string `json:"params,omitempty"`
}

// ACL configures authorization.
type ACL struct {
	// NoMatch is allow or deny: the decision when no rule matches.
	NoMatch string `json:"nomatch"`
	// Rules are checked in order, first match wins. Absent means
	// acl.DefaultRules (seed 002's acl.conf).
	Rules acl.Rules `json:"rules,omitempty"`
}

// Sys configures $SYS topics, alarms and sysmon warnings.
type Sys struct {
	Interval Duration `json:"interval"`
	// HeapAlarmBytes raises the high_memory alarm when the Go heap exceeds it.
	HeapAlarmBytes uint64 `json:"heap_alarm_bytes"`
	// ClientsAlarmPercent raises an alarm when a listener's clients reach
	// this share of its max_clients.
	ClientsAlarmPercent int `json:"clients_alarm_percent"`
	// LongGC warns on a GC pause longer than this.
	LongGC Duration `json:"long_gc"`
}

// Trace configures client and topic traces.
type Trace struct {
	// MaxBytes caps one trace file; tracing stops when it is reached.
	MaxBytes int64 `json:"max_bytes"`
}

// Memory is the gateway's memory budget.
type Memory struct {
	// BudgetBytes is what the whole gateway may use; 0 leaves the Go
	// runtime's defaults. It becomes the runtime's soft memory limit
	// (GOMEMLIMIT, unless that is set in the environment), and it caps each
	// session's queue so that the queues of every client the listeners admit
	// fit in half of it.
	BudgetBytes int64 `json:"budget_bytes"`
}

// MemoryLimit is the Go runtime soft limit derived from the budget, with
// headroom for what the runtime does not count (stacks it cannot free at
// once, the binary itself); 0 means no limit.
func (c Config) MemoryLimit() int64 {
	return c.Memory.BudgetBytes / 10 * 9
}

// SessionQueueBytes is the effective per-session queue bound: the
// configured mqtt.max_queued_bytes, lowered by the memory budget.
func (c Config) SessionQueueBytes() int64 {
	q := c.MQTT.MaxQueuedBytes
	if c.Memory.BudgetBytes <= 0 {
		return q
	}
	clients := int64(0)
	for _, l := range c.Listeners {
		if !l.Disabled {
			clients += int64(l.MaxClients)
		}
	}
	if clients == 0 {
		return q
	}
	return max(min(q, c.Memory.BudgetBytes/2/clients), minSessionQueueBytes)
}

// minSessionQueueBytes keeps at least a few messages queueable per session
// whatever the budget.
const minSessionQueueBytes = 4 << 10

// Log configures the process log.
type Log struct {
	Level  string `json:"level"`  // debug, info, warn, error
	Format string `json:"format"` // text or json
}

// ACME challenge types the gateway answers.
const (
	// ChallengeHTTP01 is answered on the admin API's HTTP listener
	// (api.bind), which must be reachable on port 80 from the CA.
	ChallengeHTTP01 = "http-01"
	// ChallengeTLSALPN01 is answered on the TLS listeners, one of which must
	// be reachable on port 443 from the CA.
	ChallengeTLSALPN01 = "tls-alpn-01"
	// ChallengeDNS01 is answered through a DNS provider (ACME.DNSProvider);
	// the only way to wildcard names and to gateways the CA cannot reach.
	ChallengeDNS01 = "dns-01"
)

// DNSProviders are the DNS providers dns-01 can use (see certs/acme).
var DNSProviders = []string{"cloudflare", "exec", "httpreq"}

// ACME is the ACME CA the gateway obtains certificates from (Let's Encrypt,
// ZeroSSL, a private ACME CA).
type ACME struct {
	// DirectoryURL is the CA's directory; empty turns ACME off.
	DirectoryURL string `json:"directory_url"`
	// Email is the account's contact address.
	Email string `json:"email"`
	// AgreeToTerms accepts the CA's terms of service; registering needs it.
	AgreeToTerms bool `json:"agree_to_terms"`
	// Challenges are the challenge types to answer.
	Challenges []string `json:"challenges"`
	// KeyType of certificate keys: ec-p256 (default), ec-p384, rsa-2048,
	// rsa-4096.
	KeyType string `json:"key_type,omitempty"`
	// RootCAFile is a PEM file with the roots of the CA's own HTTPS, for a
	// private ACME CA; empty means the system roots.
	RootCAFile string `json:"root_ca_file,omitempty"`
	// DNSProvider answers dns-01 (one of DNSProviders); its credentials are
	// read from DNSCredentialsFile, KEY=VALUE lines under lego's variable
	// names (e.g. CLOUDFLARE_DNS_API_TOKEN=…), an owner-only file rather
	// than settings, which the API shows.
	DNSProvider        string `json:"dns_provider,omitempty"`
	DNSCredentialsFile string `json:"dns_credentials_file,omitempty"`
}

// Trust configures the trust list and issuer list (certs/trust) and their
// sync from a vault.
type Trust struct {
	// AutoApply applies a synced version at once when every entry passes
	// validation and no connected client would lose its CA; otherwise the
	// version waits, staged, for an operator.
	AutoApply bool `json:"auto_apply"`
	// History is how many applied versions are kept for rollback.
	History int   `json:"history"`
	Vault   Vault `json:"vault"`
}

// Vault auth methods.
const (
	VaultAuthCert    = "cert"    // TLS certificate auth with the device certificate
	VaultAuthToken   = "token"   // a token from the credentials file
	VaultAuthAppRole = "approle" // role id and secret id from the credentials file
)

// Vault is where the trust and issuer lists are synced from: a HashiCorp
// Vault or OpenBao KV v2 mount holding one secret per certificate under
// <prefix>/trust/ and <prefix>/issuer/.
type Vault struct {
	// Address is the vault's https URL; empty turns sync off.
	Address   string `json:"address"`
	Namespace string `json:"namespace,omitempty"`
	// Mount is the KV v2 secrets engine's mount, Prefix the path under it.
	Mount  string `json:"mount"`
	Prefix string `json:"prefix"`
	// Field is the secret field holding the PEM.
	Field string `json:"field"`
	// AuthMethod is cert (the device certificate; no shared secret),
	// token or approle. AuthMount is the auth method's mount when not the
	// default one, CertRole the cert auth role to log in as.
	AuthMethod string `json:"auth_method"`
	AuthMount  string `json:"auth_mount,omitempty"`
	CertRole   string `json:"cert_role,omitempty"`
	// CredentialsFile holds the token (VAULT_TOKEN=…) or the AppRole
	// (VAULT_ROLE_ID=…, VAULT_SECRET_ID=…) as KEY=VALUE lines: an
	// owner-only file rather than settings, which the API shows.
	CredentialsFile string `json:"credentials_file,omitempty"`
	// CAFile is a PEM file of roots for the vault's HTTPS; the trust list
	// and the system roots are trusted too.
	CAFile string `json:"ca_file,omitempty"`
	// PollInterval is the time between syncs (with jitter).
	PollInterval Duration `json:"poll_interval"`
	// Publish writes uploaded certificates to the vault on apply, so the
	// rest of the fleet receives them; ReportStatus writes this gateway's
	// applied version to <prefix>/status/<device id> after each sync.
	Publish      bool `json:"publish"`
	ReportStatus bool `json:"report_status"`
}

// Enabled reports whether vault sync is configured.
func (v Vault) Enabled() bool { return v.Address != "" }

// Enabled reports whether ACME is configured.
func (a ACME) Enabled() bool { return a.DirectoryURL != "" }

// Duration is a time.Duration written in JSON as a Go duration string ("60s").
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string such as "1m30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		// The decoder fills in the field path of an UnmarshalTypeError.
		return &json.UnmarshalTypeError{Value: "non-string", Type: reflect.TypeFor[Duration]()}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &json.UnmarshalTypeError{Value: fmt.Sprintf("string %q", s), Type: reflect.TypeFor[Duration]()}
	}
	*d = Duration(v)
	return nil
}

// Std returns the duration as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// RestartOnly names the changed settings that apply only at the next
// start; everything else applies to the running gateway when saved.
func RestartOnly(old, next Config) []string {
	var out []string
	if old.Node != next.Node {
		out = append(out, "node")
	}
	if old.API != next.API {
		out = append(out, "api")
	}
	if old.MQTT != next.MQTT {
		out = append(out, "mqtt")
	}
	if old.Sys != next.Sys {
		out = append(out, "sys")
	}
	if old.Trace != next.Trace {
		out = append(out, "trace")
	}
	if old.Trust.History != next.Trust.History {
		out = append(out, "trust.history")
	}
	if old.SessionQueueBytes() != next.SessionQueueBytes() {
		out = append(out, "session queue bound (mqtt.max_queued_bytes, memory.budget_bytes)")
	}
	return out
}
