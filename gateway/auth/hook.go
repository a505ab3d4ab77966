package auth

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/gateway/acl"
	"github.com/edgegate/edgegate/gateway/config"
)

// maxDecisions bounds each client's cache of ACL decisions.
const maxDecisions = 64

// Options are the dependencies and initial settings of a Hook.
type Options struct {
	// Users is the account store; nil disables the username and clientid
	// links (they ignore every client).
	Users *Users
	Auth  config.Auth
	// ACL holds the rules (none means acl.DefaultRules) and the no-match
	// decision ("allow" or "deny"; empty means allow).
	ACL config.ACL
	// Listeners gives each listener's certificate identity mapping, by the
	// listener name clients carry in cl.Net.Listener.
	Listeners map[string]config.Listener
	Logger    *slog.Logger
	// Now is the clock of the failed-login limit and the HTTP answer
	// cache; nil means time.Now.
	Now func() time.Time
	// HTTPClient makes the HTTP backend's calls; nil means a client that
	// does not follow redirects. Timeouts come from Auth.HTTP.Timeout.
	HTTPClient *http.Client
}

// settings is one consistent snapshot of what the hook decides with. A
// change replaces the whole snapshot, so a check never mixes old and new.
type settings struct {
	// gen changes with every snapshot; cached ACL decisions of another
	// generation are stale.
	gen          uint64
	chain        *chain
	http         *httpBackend
	rules        acl.Rules
	nomatchAllow bool
}

// Hook is the mochi-mqtt hook that authenticates CONNECTs through the
// configured chain and authorizes PUBLISH, SUBSCRIBE and deliveries with the
// ACL. It provides OnConnect, OnConnectAuthenticate, OnACLCheck,
// OnDisconnect and OnClientExpired. It must be the only hook that provides
// OnConnectAuthenticate and OnACLCheck: mochi allows when any hook does.
type Hook struct {
	mqtt.HookBase

	users   *Users
	log     *slog.Logger
	now     func() time.Time
	client  *http.Client
	limiter *failureLimiter

	// ctx ends with Stop, aborting HTTP backend calls in flight.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex // serialises SetAuth and SetRules
	settings  atomic.Pointer[settings]
	listeners atomic.Pointer[map[string]config.Listener]

	// clients maps weak.Pointer[mqtt.Client] to *clientState. A weak key
	// lets the entry go with its client even on the paths where mochi
	// calls neither OnDisconnect nor OnClientExpired (a CONNACK that cannot
	// be written, a taken-over session).
	clients sync.Map
}

// clientState is what the hook remembers about an authenticated client.
type clientState struct {
	superuser bool
	username  string
	clientID  string
	addr      netip.Addr

	mu        sync.Mutex
	gen       uint64
	decisions map[decisionKey]bool
}

type decisionKey struct {
	topic string
	write bool
}

// New returns a hook with the given settings.
func New(opts Options) (*Hook, error) {
	h := &Hook{
		users:  opts.Users,
		log:    opts.Logger,
		now:    opts.Now,
		client: opts.HTTPClient,
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.client == nil {
		h.client = newHTTPClient()
	}
	h.limiter = newFailureLimiter(h.now, 0, 0)
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.SetListeners(opts.Listeners)
	h.settings.Store(&settings{})
	if err := h.SetAuth(opts.Auth); err != nil {
		return nil, err
	}
	if err := h.SetRules(opts.ACL); err != nil {
		return nil, err
	}
	return h, nil
}

// ID names the hook in mochi's logs.
func (h *Hook) ID() string { return "edgegate-auth" }

// Provides reports the hook methods mochi should call.
func (h *Hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnDisconnect, mqtt.OnClientExpired:
		return true
	}
	return false
}

// Init accepts mochi's AddHook config argument, which must be nil: settings
// come through New, SetAuth and SetRules.
func (h *Hook) Init(config any) error {
	if config != nil {
		return mqtt.ErrInvalidConfigType
	}
	return nil
}

// Stop aborts HTTP backend calls in flight.
func (h *Hook) Stop() error {
	h.cancel()
	return nil
}

// SetAuth applies new authentication settings (chain, anonymous, failed
// login limit, HTTP backend) to the next CONNECT and ACL check. The HTTP
// answer cache starts empty. On error nothing changes.
func (h *Hook) SetAuth(c config.Auth) error {
	backend, err := newHTTPBackend(c.HTTP, h.client, h.log, h.now)
	if err != nil {
		return err
	}
	ch, err := newChain(c, h.users, backend, h.log)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s := *h.settings.Load()
	s.gen++
	s.chain, s.http = ch, backend
	h.settings.Store(&s)
	h.limiter.set(c.FailedLogins.Max, c.FailedLogins.Window.Std())
	return nil
}

// SetRules applies new ACL rules and no-match decision to the next check;
// decisions cached for connected clients are dropped. Empty rules mean
// acl.DefaultRules. On error nothing changes.
func (h *Hook) SetRules(c config.ACL) error {
	rules := c.Rules
	if len(rules) == 0 {
		rules = acl.DefaultRules()
	}
	if err := rules.Validate(); err != nil {
		return fmt.Errorf("acl.rules: %w", err)
	}
	var nomatchAllow bool
	switch c.NoMatch {
	case "allow", "":
		nomatchAllow = true
	case "deny":
	default:
		return fmt.Errorf("acl.nomatch: must be allow or deny")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s := *h.settings.Load()
	s.gen++
	s.rules, s.nomatchAllow = cloneRules(rules), nomatchAllow
	h.settings.Store(&s)
	return nil
}

// cloneRules copies rules so a caller changing its config afterwards does
// not change what is enforced.
func cloneRules(rs acl.Rules) acl.Rules {
	out := slices.Clone(rs)
	for i := range out {
		out[i].Topics = slices.Clone(out[i].Topics)
	}
	return out
}

// SetListeners replaces the listeners whose identity mapping OnConnect
// applies; it takes effect for the next CONNECT.
func (h *Hook) SetListeners(ls map[string]config.Listener) {
	m := maps.Clone(ls)
	h.listeners.Store(&m)
}

func (h *Hook) listener(name string) config.Listener {
	return (*h.listeners.Load())[name]
}

// OnConnect replaces the client id and username with those the listener
// maps from a verified client certificate. mochi calls it before
// authentication and before it looks for a session to resume, so the
// session is keyed by the certificate's identity.
func (h *Hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if cl.Net.Inline {
		return nil
	}
	id := listenerIdentity(h.listener(cl.Net.Listener), cl.Net.Conn)
	if !id.mapped() {
		return nil
	}
	if id.ClientID != "" && id.ClientID != cl.ID {
		h.log.Debug("client id taken from certificate", "sent", cl.ID, "client", id.ClientID, "listener", cl.Net.Listener)
		cl.ID = id.ClientID
		if cl.Properties.ProtocolVersion == 5 {
			// Tell an MQTT 5 client the identifier its session has.
			cl.Properties.Props.AssignedClientID = cl.ID
		}
	}
	if id.Username != "" {
		cl.Properties.Username = []byte(id.Username)
	}
	return nil
}

// OnConnectAuthenticate refuses addresses over the failed-login limit, then
// asks the chain.
func (h *Hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if cl.Net.Inline {
		return true
	}
	addr := remoteAddr(cl)
	log := h.log.With("client", cl.ID, "username", string(cl.Properties.Username), "listener", cl.Net.Listener, "remote", cl.Net.Remote)
	if h.limiter.blocked(addr) {
		log.Warn("login refused: too many failed logins from this address")
		return false
	}
	s := h.settings.Load()
	out := s.chain.authenticate(h.ctx, login{
		clientID: cl.ID,
		username: string(cl.Properties.Username),
		password: string(pk.Connect.Password),
		addr:     addr,
		cert:     listenerIdentity(h.listener(cl.Net.Listener), cl.Net.Conn),
	})
	if out.verdict != allow {
		h.limiter.fail(addr)
		log.Info("login denied", "link", out.link, "reason", out.reason)
		return false
	}
	st := &clientState{
		superuser: out.superuser,
		username:  string(cl.Properties.Username),
		clientID:  cl.ID,
		addr:      addr,
	}
	key := weak.Make(cl)
	h.clients.Store(key, st)
	runtime.AddCleanup(cl, func(k weak.Pointer[mqtt.Client]) { h.clients.Delete(k) }, key)
	log.Info("login", "link", out.link, "reason", out.reason, "superuser", out.superuser)
	return true
}

// OnDisconnect forgets a client whose session ends with the connection. A
// persistent session keeps its state: messages are still checked against
// it while they queue for the client.
func (h *Hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if expire || cl.IsTakenOver() {
		h.clients.Delete(weak.Make(cl))
	}
}

// OnClientExpired forgets a client whose persistent session expired.
func (h *Hook) OnClientExpired(cl *mqtt.Client) {
	h.clients.Delete(weak.Make(cl))
}

func (h *Hook) state(cl *mqtt.Client) *clientState {
	if v, ok := h.clients.Load(weak.Make(cl)); ok {
		return v.(*clientState)
	}
	return nil
}

// OnACLCheck decides whether cl may publish to topic (write) or subscribe
// to the filter topic (!write). mochi also asks with !write before it
// delivers a message to a subscriber, with the message's topic name: that is
// checked as a subscription to exactly that topic, so a rule that denies a
// subscription also stops deliveries through a wider filter, a resumed
// session or a rule change after subscribing.
//
// Superusers may do anything. Otherwise the first matching rule decides.
// When none matches: a $SYS topic is denied unless the client connects from
// a loopback address; then acl_req is asked if configured; then acl.nomatch
// decides.
func (h *Hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	st := h.state(cl)
	known := st != nil
	if !known {
		// Not authenticated by this hook in this process, such as a
		// session restored from storage: judge it by what it carries,
		// without superuser rights.
		st = &clientState{username: string(cl.Properties.Username), clientID: cl.ID, addr: remoteAddr(cl)}
	} else if st.superuser {
		return true
	}
	s := h.settings.Load()
	k := decisionKey{topic: topic, write: write}
	if known {
		if ok, found := st.cached(s.gen, k); found {
			return ok
		}
	}
	ok, rule, why, cacheable := h.decide(s, st, topic, write)
	if known && cacheable {
		st.store(s.gen, k, ok)
	}
	if !ok {
		h.log.Debug("acl denied", "client", st.clientID, "username", st.username, "topic", topic, "publish", write, "by", why, "rule", rule)
	}
	return ok
}

// decide runs the ACL. rule is the index of the deciding rule, or -1; why
// names what decided. cacheable is false for an HTTP answer, which has its
// own cache and TTL.
func (h *Hook) decide(s *settings, st *clientState, topic string, write bool) (ok bool, rule int, why string, cacheable bool) {
	access := acl.Subscribe
	if write {
		access = acl.Publish
	}
	if i, perm, matched := s.rules.Match(acl.Request{
		Username: st.username,
		ClientID: st.clientID,
		Addr:     st.addr,
		Access:   access,
		Topic:    topic,
	}); matched {
		return perm == acl.Allow, i, "rule", true
	}
	inner := topic
	if !write {
		_, inner, _ = acl.SplitShared(topic)
	}
	if strings.HasPrefix(inner, "$SYS") && !st.addr.Unmap().IsLoopback() {
		return false, -1, "$SYS is local only", true
	}
	if s.http != nil && s.http.acl != nil {
		v := paramVars{username: st.username, clientID: st.clientID, topic: inner, access: accessSubscribe}
		if write {
			v.access = accessPublish
		}
		if st.addr.IsValid() {
			v.addr = st.addr.String()
		}
		switch s.http.ask(h.ctx, s.http.acl, v) {
		case allow:
			return true, -1, "http acl_req", false
		case deny:
			return false, -1, "http acl_req", false
		}
	}
	return s.nomatchAllow, -1, "nomatch", true
}

func (st *clientState) cached(gen uint64, k decisionKey) (ok, found bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.gen != gen || st.decisions == nil {
		return false, false
	}
	ok, found = st.decisions[k]
	return ok, found
}

// store caches a decision, starting a new cache when the settings changed.
func (st *clientState) store(gen uint64, k decisionKey, ok bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.gen != gen || st.decisions == nil {
		st.gen, st.decisions = gen, make(map[decisionKey]bool, 8)
	}
	if len(st.decisions) >= maxDecisions {
		for old := range st.decisions {
			delete(st.decisions, old)
			break
		}
	}
	st.decisions[k] = ok
}

// remoteAddr returns the client's IP address, unmapped, or the zero Addr
// when the connection has none (a pipe).
func remoteAddr(cl *mqtt.Client) netip.Addr {
	if ap, err := netip.ParseAddrPort(cl.Net.Remote); err == nil {
		return ap.Addr().Unmap()
	}
	if a, err := netip.ParseAddr(cl.Net.Remote); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}

var _ mqtt.Hook = (*Hook)(nil)
