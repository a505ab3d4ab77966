package acme

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/challenge/dns01"
	"github.com/go-acme/lego/v4/providers/dns/cloudflare"
	"github.com/go-acme/lego/v4/providers/dns/httpreq"
)

// DNSConfig configures the dns-01 challenge.
//
// Only a few providers are built in, because every lego provider adds to the
// binary (the AWS and RFC 2136 ones several MB each): "cloudflare" for the
// most common hosted DNS, "httpreq" to call any web hook, and "exec" to run a
// program on the gateway (e.g. a script around nsupdate).
type DNSConfig struct {
	// Provider is one of [DNSProviders].
	Provider string
	// Credentials are the provider's settings under the names of lego's
	// environment variables for it; unknown names are rejected:
	//   cloudflare: CLOUDFLARE_DNS_API_TOKEN (and optionally
	//     CLOUDFLARE_ZONE_API_TOKEN), or CLOUDFLARE_EMAIL with
	//     CLOUDFLARE_API_KEY; optional CLOUDFLARE_TTL (seconds, ≥ 120).
	//   httpreq: HTTPREQ_ENDPOINT (http or https URL), optional HTTPREQ_MODE
	//     ("RAW"), HTTPREQ_USERNAME and HTTPREQ_PASSWORD.
	//   exec: EXEC_PATH (absolute path of the program), optional EXEC_MODE
	//     ("RAW"). The program is run as "PROGRAM present|cleanup FQDN VALUE"
	//     (RAW: "PROGRAM present|cleanup -- DOMAIN TOKEN KEYAUTH"), like lego's
	//     exec provider; its output is discarded and it is killed when the
	//     operation ends.
	Credentials map[string]string
	// Resolvers, when set, are the DNS servers ("host" or "host:port") that
	// must serve the TXT record before the CA is asked to validate it. Empty
	// means lego's check: the system resolvers find the zone, then every
	// authoritative server of the zone is asked. Either way lego follows a
	// CNAME on _acme-challenge.<name> through the system resolvers (unless
	// LEGO_DISABLE_CNAME_SUPPORT=true is in the environment).
	Resolvers []string
	// PropagationTimeout bounds the wait for the record; zero means 2 minutes.
	PropagationTimeout time.Duration
	// PollingInterval is the pause between two checks; zero means 2 seconds.
	PollingInterval time.Duration
}

// String shows the credentials' names only, so that a logged or printed
// configuration does not leak them.
func (d DNSConfig) String() string {
	names := slices.Sorted(maps.Keys(d.Credentials))
	return fmt.Sprintf("{Provider:%s Credentials:%v Resolvers:%v PropagationTimeout:%v PollingInterval:%v}",
		d.Provider, names, d.Resolvers, d.PropagationTimeout, d.PollingInterval)
}

// LogValue is String for log/slog.
func (d DNSConfig) LogValue() slog.Value { return slog.StringValue(d.String()) }

// DNSProviders returns the names of the built-in dns-01 providers.
func DNSProviders() []string {
	return []string{"cloudflare", "exec", "httpreq"}
}

// dnsBuilder makes a provider for one operation: hc is bound to the
// operation's context, and so is ctx.
type dnsBuilder func(ctx context.Context, hc *http.Client) (challenge.Provider, error)

// dnsFactory is a validated DNSConfig.
type dnsFactory struct {
	name      string
	build     dnsBuilder
	resolvers []string
	timeout   time.Duration
	interval  time.Duration
}

func newDNSFactory(cfg DNSConfig) (*dnsFactory, error) {
	if cfg.PropagationTimeout <= 0 {
		cfg.PropagationTimeout = 2 * time.Minute
	}
	if cfg.PollingInterval <= 0 {
		cfg.PollingInterval = 2 * time.Second
	}
	f := &dnsFactory{
		name:     cfg.Provider,
		timeout:  cfg.PropagationTimeout,
		interval: cfg.PollingInterval,
	}
	for _, r := range cfg.Resolvers {
		if _, _, err := net.SplitHostPort(r); err != nil {
			r = net.JoinHostPort(r, "53")
		}
		if host, _, _ := net.SplitHostPort(r); host == "" {
			return nil, fmt.Errorf("dns resolver %q has no host", r)
		}
		f.resolvers = append(f.resolvers, r)
	}
	var err error
	switch cfg.Provider {
	case "cloudflare":
		f.build, err = cloudflareBuilder(cfg)
	case "httpreq":
		f.build, err = httpreqBuilder(cfg)
	case "exec":
		f.build, err = execBuilder(cfg)
	default:
		return nil, fmt.Errorf("%w %q (built in: %s)", ErrUnknownDNSProvider, cfg.Provider, strings.Join(DNSProviders(), ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("dns provider %s: %w", cfg.Provider, err)
	}
	return f, nil
}

// checkCredentialNames rejects names a provider does not know: a misspelt
// name would otherwise silently leave a setting unset.
func checkCredentialNames(creds map[string]string, known ...string) error {
	for name := range creds {
		if !slices.Contains(known, name) {
			return fmt.Errorf("unknown credential %q (known: %s)", name, strings.Join(known, ", "))
		}
	}
	return nil
}

func cloudflareBuilder(cfg DNSConfig) (dnsBuilder, error) {
	creds := cfg.Credentials
	if err := checkCredentialNames(creds, cloudflare.EnvDNSAPIToken, cloudflare.EnvZoneAPIToken,
		cloudflare.EnvEmail, cloudflare.EnvAPIKey, cloudflare.EnvTTL); err != nil {
		return nil, err
	}
	ttl := 120 // Cloudflare's minimum
	if s, ok := creds[cloudflare.EnvTTL]; ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 120 {
			return nil, fmt.Errorf("%s must be a number of seconds ≥ 120", cloudflare.EnvTTL)
		}
		ttl = n
	}
	build := func(_ context.Context, hc *http.Client) (challenge.Provider, error) {
		// The Config is built here, not with NewDefaultConfig, which reads the
		// process environment.
		return cloudflare.NewDNSProviderConfig(&cloudflare.Config{
			AuthToken:          creds[cloudflare.EnvDNSAPIToken],
			ZoneToken:          creds[cloudflare.EnvZoneAPIToken],
			AuthEmail:          creds[cloudflare.EnvEmail],
			AuthKey:            creds[cloudflare.EnvAPIKey],
			TTL:                ttl,
			PropagationTimeout: cfg.PropagationTimeout,
			PollingInterval:    cfg.PollingInterval,
			HTTPClient:         hc,
		})
	}
	// Building checks the combination of credentials; it does no I/O.
	if _, err := build(context.Background(), &http.Client{}); err != nil {
		return nil, err
	}
	return build, nil
}

func httpreqBuilder(cfg DNSConfig) (dnsBuilder, error) {
	creds := cfg.Credentials
	if err := checkCredentialNames(creds, httpreq.EnvEndpoint, httpreq.EnvMode,
		httpreq.EnvUsername, httpreq.EnvPassword); err != nil {
		return nil, err
	}
	endpoint, err := url.Parse(creds[httpreq.EnvEndpoint])
	if err != nil || (endpoint.Scheme != "http" && endpoint.Scheme != "https") || endpoint.Host == "" {
		return nil, fmt.Errorf("%s must be an http or https URL", httpreq.EnvEndpoint)
	}
	// lego puts the URL into its error messages.
	if endpoint.User != nil {
		return nil, fmt.Errorf("%s must not contain credentials; use %s and %s",
			httpreq.EnvEndpoint, httpreq.EnvUsername, httpreq.EnvPassword)
	}
	mode := creds[httpreq.EnvMode]
	if mode != "" && mode != "RAW" {
		return nil, fmt.Errorf("%s must be empty or RAW", httpreq.EnvMode)
	}
	return func(_ context.Context, hc *http.Client) (challenge.Provider, error) {
		ep := *endpoint
		return httpreq.NewDNSProviderConfig(&httpreq.Config{
			Endpoint:           &ep,
			Mode:               mode,
			Username:           creds[httpreq.EnvUsername],
			Password:           creds[httpreq.EnvPassword],
			PropagationTimeout: cfg.PropagationTimeout,
			PollingInterval:    cfg.PollingInterval,
			HTTPClient:         hc,
		})
	}, nil
}

// execBuilder replaces lego's exec provider, which runs the program without
// a deadline (a hung script would hang the renewal) and logs its output
// (which may contain credentials).
func execBuilder(cfg DNSConfig) (dnsBuilder, error) {
	creds := cfg.Credentials
	if err := checkCredentialNames(creds, "EXEC_PATH", "EXEC_MODE"); err != nil {
		return nil, err
	}
	program := creds["EXEC_PATH"]
	if !filepath.IsAbs(program) {
		return nil, errors.New("EXEC_PATH must be an absolute path")
	}
	mode := creds["EXEC_MODE"]
	if mode != "" && mode != "RAW" {
		return nil, errors.New("EXEC_MODE must be empty or RAW")
	}
	return func(ctx context.Context, _ *http.Client) (challenge.Provider, error) {
		return &execProvider{ctx: ctx, program: program, raw: mode == "RAW"}, nil
	}, nil
}

// execTimeout bounds one run of an exec provider's program.
const execTimeout = time.Minute

type execProvider struct {
	ctx     context.Context
	program string
	raw     bool
}

func (p *execProvider) Present(domain, token, keyAuth string) error {
	return p.run("present", domain, token, keyAuth)
}

func (p *execProvider) CleanUp(domain, token, keyAuth string) error {
	return p.run("cleanup", domain, token, keyAuth)
}

func (p *execProvider) run(command, domain, token, keyAuth string) error {
	var args []string
	if p.raw {
		args = []string{command, "--", domain, token, keyAuth}
	} else {
		info := dns01.GetChallengeInfo(domain, keyAuth)
		args = []string{command, info.EffectiveFQDN, info.Value}
	}
	ctx, cancel := context.WithTimeout(p.ctx, execTimeout)
	defer cancel()
	// The program is the operator's choice by configuration.
	cmd := exec.CommandContext(ctx, p.program, args...) //nolint:gosec // G204: configured program
	// A child the program left behind could hold its output open; stop
	// waiting for it soon after the program is killed.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("run %s %s: %w", p.program, command, err)
	}
	return nil
}

// dnsSolver wraps a provider for lego: it sets the propagation timeouts and
// logs failed cleanups, which lego only reports through its silenced log.
type dnsSolver struct {
	p        challenge.Provider
	name     string
	log      *slog.Logger
	timeout  time.Duration
	interval time.Duration
}

func (f *dnsFactory) solver(ctx context.Context, base http.RoundTripper, log *slog.Logger) (*dnsSolver, error) {
	hc := newOpClient(ctx, base)
	hc.Timeout = 30 * time.Second
	p, err := f.build(ctx, hc)
	if err != nil {
		return nil, fmt.Errorf("dns provider %s: %w", f.name, err)
	}
	return &dnsSolver{p: p, name: f.name, log: log, timeout: f.timeout, interval: f.interval}, nil
}

func (s *dnsSolver) Present(domain, token, keyAuth string) error {
	if err := s.p.Present(domain, token, keyAuth); err != nil {
		return fmt.Errorf("dns provider %s: present record for %s: %w", s.name, domain, err)
	}
	s.log.Debug("acme challenge presented", "type", DNS01, "domain", domain, "provider", s.name)
	return nil
}

func (s *dnsSolver) CleanUp(domain, token, keyAuth string) error {
	if err := s.p.CleanUp(domain, token, keyAuth); err != nil {
		s.log.Warn("acme dns-01 record not removed", "domain", domain, "provider", s.name, "err", err)
		return fmt.Errorf("dns provider %s: remove record for %s: %w", s.name, domain, err)
	}
	return nil
}

// Timeout implements lego's challenge.ProviderTimeout.
func (s *dnsSolver) Timeout() (timeout, interval time.Duration) {
	return s.timeout, s.interval
}

// preCheck is lego's propagation check made aware of the operation's
// context (lego's waits for propagation do not watch it) and, when resolvers
// are configured, asking those instead of lego's choice of servers.
func (f *dnsFactory) preCheck(ctx context.Context) dns01.ChallengeOption {
	return dns01.WrapPreCheck(func(_, fqdn, value string, check dns01.PreCheckFunc) (bool, error) {
		if ctx.Err() != nil {
			// stop=true ends lego's wait with this error.
			return true, fmt.Errorf("wait for TXT %s: %w", fqdn, context.Cause(ctx))
		}
		if len(f.resolvers) == 0 {
			return check(fqdn, value)
		}
		return txtVisible(ctx, f.resolvers, fqdn, value)
	})
}

// txtVisible reports whether every resolver serves value in the TXT records
// of fqdn. An error means "not yet" to lego, which keeps polling.
func txtVisible(ctx context.Context, resolvers []string, fqdn, value string) (bool, error) {
	for _, addr := range resolvers {
		r := &net.Resolver{
			PreferGo: true,
			Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			},
		}
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		txts, err := r.LookupTXT(qctx, fqdn)
		cancel()
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("look up TXT %s at %s: %w", fqdn, addr, err)
		}
		if !slices.Contains(txts, value) {
			return false, nil
		}
	}
	return true, nil
}
