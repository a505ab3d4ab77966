package webui

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/edgegate/edgegate/gateway/broker"
	"github.com/edgegate/edgegate/gateway/broker/sys"
)

// clientsFakeBroker holds sessions, subscriptions and retained messages
// in memory and records kicks and publishes.
type clientsFakeBroker struct {
	mu        sync.Mutex
	clients   []broker.ClientInfo // sorted by client id, as the broker returns them
	subs      []broker.Subscription
	retained  []broker.RetainedMessage
	kicked    []string
	published []broker.Message
}

func (b *clientsFakeBroker) Clients() []broker.ClientInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]broker.ClientInfo(nil), b.clients...)
}

func (b *clientsFakeBroker) Client(id string) (broker.ClientInfo, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.clients {
		if c.ClientID == id {
			return c, true
		}
	}
	return broker.ClientInfo{}, false
}

func (b *clientsFakeBroker) Kick(id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, c := range b.clients {
		if c.ClientID == id {
			b.clients = append(b.clients[:i:i], b.clients[i+1:]...)
			b.kicked = append(b.kicked, id)
			return nil
		}
	}
	return broker.ErrClientNotFound
}

func (b *clientsFakeBroker) Subscriptions(clientID string) []broker.Subscription {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []broker.Subscription
	for _, s := range b.subs {
		if clientID == "" || s.ClientID == clientID {
			out = append(out, s)
		}
	}
	return out
}

func (b *clientsFakeBroker) Retained() []broker.RetainedMessage {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]broker.RetainedMessage(nil), b.retained...)
}

func (b *clientsFakeBroker) DeleteRetained(topic string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, m := range b.retained {
		if m.Topic == topic {
			b.retained = append(b.retained[:i:i], b.retained[i+1:]...)
			return nil
		}
	}
	return broker.ErrRetainedNotFound
}

func (b *clientsFakeBroker) Publish(m broker.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.published = append(b.published, m)
	return nil
}

func (*clientsFakeBroker) Listeners() []broker.ListenerStatus                  { return nil }
func (*clientsFakeBroker) Stats() sys.Stats                                    { return sys.Stats{} }
func (*clientsFakeBroker) WatchClients(func(broker.ClientEvent)) (stop func()) { return func() {} }
func (*clientsFakeBroker) WatchMessages(string, func(broker.WatchedMessage)) (func(), error) {
	return func() {}, nil
}

// newClientsTestUI is a UI on b with default settings and a logged-in
// session.
func newClientsTestUI(t *testing.T, b *clientsFakeBroker) (*UI, *session) {
	t.Helper()
	u := New(Options{Admin: &fakeAdmin{password: "set"}, Broker: b, Settings: newFakeSettings()})
	t.Cleanup(u.Close)
	return u, u.sessions.create()
}

// clientsRequest serves one request of the session ss; a non-nil form is
// posted.
func clientsRequest(t *testing.T, u *UI, ss *session, method, target string, form url.Values) *httptest.ResponseRecorder {
	t.Helper()
	return serveSession(u, ss, method, target, form)
}

// clientsGet renders a page for ss, requires status want and parses it.
func clientsGet(t *testing.T, u *UI, ss *session, target string, want int) *goquery.Document {
	t.Helper()
	w := clientsRequest(t, u, ss, http.MethodGet, target, nil)
	if w.Code != want {
		t.Fatalf("GET %s: status %d, want %d\n%s", target, w.Code, want, w.Body)
	}
	return parseHTML(t, w)
}

// clientsCells is the text of each cell of a table row.
func clientsCells(row *goquery.Selection) []string {
	return row.Find("td").Map(func(_ int, s *goquery.Selection) string { return textOf(s) })
}
