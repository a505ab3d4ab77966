package webui

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/edgegate/edgegate/gateway/broker"
)

// clientsFleet is n connected sensors "sensor-000"…, sorted by id; every
// tenth has a client certificate.
func clientsFleet(n int) []broker.ClientInfo {
	out := make([]broker.ClientInfo, n)
	for i := range out {
		out[i] = broker.ClientInfo{
			ClientID: fmt.Sprintf("sensor-%03d", i), Username: fmt.Sprintf("user%d", i),
			Address: fmt.Sprintf("10.0.%d.%d:50000", i/100, i%100), Protocol: 4, Connected: true,
			ConnectedAt: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), Subscriptions: 2, Inflight: 1,
		}
		if i%10 == 0 {
			out[i].TLSIdentity = fmt.Sprintf("CN=boiler-%d,O=Plant", i)
		}
	}
	return out
}

func TestClientsListPagesAndSearches(t *testing.T) {
	t.Parallel()
	u, ss := newClientsTestUI(t, &clientsFakeBroker{clients: clientsFleet(250)})

	for _, tc := range []struct {
		target     string
		rows       int
		first      string // client id of the first row
		count      string
		page       string // "" when there is no pager
		prev, next string // hrefs, "" when absent
	}{
		{"/clients", 100, "sensor-000", "250 of 250 clients", "Page 1 of 3, rows 1–100", "", "/clients?page=2"},
		{"/clients?page=2", 100, "sensor-100", "250 of 250 clients", "Page 2 of 3, rows 101–200", "/clients?page=1", "/clients?page=3"},
		{"/clients?page=3", 50, "sensor-200", "250 of 250 clients", "Page 3 of 3, rows 201–250", "/clients?page=2", ""},
		{"/clients?page=99", 50, "sensor-200", "250 of 250 clients", "Page 3 of 3, rows 201–250", "/clients?page=2", ""},
		{"/clients?page=nope", 100, "sensor-000", "250 of 250 clients", "Page 1 of 3, rows 1–100", "", "/clients?page=2"},
		// Search ignores case and looks at the id, username, address and TLS identity.
		{"/clients?q=SENSOR-01", 10, "sensor-010", "10 of 250 clients", "", "", ""},
		{"/clients?q=user249", 1, "sensor-249", "1 of 250 clients", "", "", ""},
		{"/clients?q=10.0.2.", 50, "sensor-200", "50 of 250 clients", "", "", ""},
		{"/clients?q=cn%3Dboiler", 25, "sensor-000", "25 of 250 clients", "", "", ""},
		{"/clients?q=+sensor+&page=2", 100, "sensor-100", "250 of 250 clients", "Page 2 of 3, rows 101–200", "/clients?page=1&q=sensor", "/clients?page=3&q=sensor"},
		{"/clients?q=nobody", 0, "", "0 of 250 clients", "", "", ""},
	} {
		t.Run(tc.target, func(t *testing.T) {
			doc := clientsGet(t, u, ss, tc.target, http.StatusOK)
			rows := doc.Find(byTestID("client-row"))
			if rows.Length() != tc.rows {
				t.Errorf("%d rows, want %d", rows.Length(), tc.rows)
			}
			if got := textOf(rows.First().Find(byTestID("client-link"))); got != tc.first {
				t.Errorf("first row %q, want %q", got, tc.first)
			}
			if got := textOf(doc.Find(byTestID("clients-count"))); got != tc.count {
				t.Errorf("count %q, want %q", got, tc.count)
			}
			if got := textOf(doc.Find(byTestID("clients-page"))); got != tc.page {
				t.Errorf("pager %q, want %q", got, tc.page)
			}
			for id, want := range map[string]string{"clients-prev": tc.prev, "clients-next": tc.next} {
				if got := doc.Find(byTestID(id)).AttrOr("href", ""); got != want {
					t.Errorf("%s href %q, want %q", id, got, want)
				}
			}
			if tc.rows == 0 && doc.Find(byTestID("clients-empty")).Length() != 1 {
				t.Error("no empty-list message")
			}
		})
	}

	doc := clientsGet(t, u, ss, "/clients?q=sensor-010", http.StatusOK)
	if got := doc.Find(byTestID("clients-query")).AttrOr("value", ""); got != "sensor-010" {
		t.Errorf("search box holds %q, want the query", got)
	}
	row := doc.Find(byTestID("client-row"))
	cells := clientsCells(row)
	want := []string{"sensor-010", "user10", "10.0.0.10:50000", "MQTT 3.1.1", "CN=boiler-10,O=Plant", "2025-03-01 12:00:00 UTC", "2", "1"}
	if !slices.Equal(cells, want) {
		t.Errorf("row cells %q, want %q", cells, want)
	}
}

func TestClientDetail(t *testing.T) {
	t.Parallel()
	odd := "plant/line 1?#%"
	b := &clientsFakeBroker{
		clients: []broker.ClientInfo{
			{ClientID: "kept", Username: "k", Connected: false},
			{ClientID: odd, Username: "op", Address: "192.0.2.7:41000", Listener: "tls", Protocol: 5, Connected: true,
				TLSIdentity: "CN=line1", Keepalive: 30, Subscriptions: 2},
		},
		subs: []broker.Subscription{
			{ClientID: "kept", Filter: "x/#"},
			{ClientID: odd, Filter: "cmd/line1", QoS: 1},
			{ClientID: odd, Filter: "cfg/#", QoS: 2},
		},
	}
	u, ss := newClientsTestUI(t, b)

	doc := clientsGet(t, u, ss, "/clients", http.StatusOK)
	link := doc.Find(byTestID("client-link")).FilterFunction(func(_ int, s *goquery.Selection) bool { return s.Text() == odd })
	href := link.AttrOr("href", "")
	if href != "/clients/plant%2Fline%201%3F%23%25" {
		t.Fatalf("detail link %q: the id is not one escaped path segment", href)
	}

	doc = clientsGet(t, u, ss, href, http.StatusOK)
	if got := textOf(doc.Find(byTestID("client-id"))); got != odd {
		t.Errorf("detail shows client %q, want %q", got, odd)
	}
	subs := doc.Find(byTestID("client-subscription")).Map(func(_ int, s *goquery.Selection) string {
		return strings.Join(clientsCells(s), " ")
	})
	if !slices.Equal(subs, []string{"cmd/line1 1", "cfg/# 2"}) {
		t.Errorf("subscriptions %q", subs)
	}
	form := doc.Find(byTestID("client-kick-form"))
	if got := form.AttrOr("action", ""); got != href+"/kick" {
		t.Errorf("kick form posts to %q, want %q", got, href+"/kick")
	}
	if got := form.AttrOr("method", ""); got != "post" {
		t.Errorf("kick form method %q", got)
	}
	if got := form.AttrOr("data-confirm", ""); got != "Disconnect "+odd+"?" {
		t.Errorf("kick confirmation %q", got)
	}

	// An offline session can be looked at but not kicked.
	doc = clientsGet(t, u, ss, "/clients/kept", http.StatusOK)
	if doc.Find(byTestID("client-kick-form")).Length() != 0 {
		t.Error("an offline session offers a kick")
	}
	if got := textOf(doc.Find(byTestID("client-state"))); got != "offline, session kept" {
		t.Errorf("offline session state %q", got)
	}

	doc = clientsGet(t, u, ss, "/clients/ghost", http.StatusNotFound)
	if doc.Find(byTestID("error")).Length() != 1 {
		t.Error("unknown client: no error page")
	}
}

func TestKickClient(t *testing.T) {
	t.Parallel()
	b := &clientsFakeBroker{clients: clientsFleet(3)}
	u, ss := newClientsTestUI(t, b)

	w := clientsRequest(t, u, ss, http.MethodPost, "/clients/"+url.PathEscape("sensor-001")+"/kick", url.Values{})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/clients" {
		t.Fatalf("kick: status %d, Location %q; want 303 to /clients", w.Code, w.Header().Get("Location"))
	}
	if !slices.Equal(b.kicked, []string{"sensor-001"}) {
		t.Errorf("kicked %q", b.kicked)
	}
	doc := clientsGet(t, u, ss, "/clients", http.StatusOK)
	if got := textOf(doc.Find(byTestID("flash"))); got != "Disconnected sensor-001." {
		t.Errorf("flash %q", got)
	}
	if got := textOf(doc.Find(byTestID("clients-count"))); got != "2 of 2 clients" {
		t.Errorf("after the kick: %q", got)
	}

	w = clientsRequest(t, u, ss, http.MethodPost, "/clients/ghost/kick", url.Values{})
	if w.Code != http.StatusNotFound {
		t.Errorf("kick an unknown client: status %d, want 404", w.Code)
	}
	if doc := parseHTML(t, w); doc.Find(byTestID("error")).Length() != 1 {
		t.Error("kick an unknown client: no error page")
	}
}
