package webui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/edgegate/edgegate/gateway/broker"
)

func (u *UI) clientRoutes() {
	u.authed("GET /clients", u.clients)
	u.authed("GET /clients/{id}", u.clientDetail)
	u.authed("POST /clients/{id}/kick", u.kickClient)
}

// clientsPerPage bounds the rows of the clients list: a gateway with
// thousands of sensors is searched and paged on the server, never rendered
// whole.
const clientsPerPage = 100

// clientsView is one page of the clients list.
type clientsView struct {
	Query   string
	Clients []broker.ClientInfo // this page's rows
	Matched int                 // clients matching Query
	Total   int                 // all sessions
	Page    int                 // 1-based
	Pages   int
	First   int // the 1-based number of the first row shown
	Loc     *time.Location
}

func (u *UI) clients(w http.ResponseWriter, r *http.Request, ss *session) error {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	all := u.o.Broker.Clients()
	matched := all
	if q != "" {
		matched = matchClients(all, q)
	}
	v := clientsView{Query: q, Matched: len(matched), Total: len(all), Loc: u.location()}
	v.Pages = max(1, (len(matched)+clientsPerPage-1)/clientsPerPage)
	v.Page, _ = strconv.Atoi(r.URL.Query().Get("page"))
	v.Page = min(max(v.Page, 1), v.Pages)
	start := (v.Page - 1) * clientsPerPage
	v.Clients = matched[start:min(start+clientsPerPage, len(matched))]
	v.First = start + 1
	return u.render(w, r, ss, u.page(ss, "Clients", "clients"), clientsPage(v))
}

// matchClients keeps the clients whose id, username, address or TLS
// identity contains q, ignoring case.
func matchClients(all []broker.ClientInfo, q string) []broker.ClientInfo {
	q = strings.ToLower(q)
	var out []broker.ClientInfo
	for _, c := range all {
		for _, field := range []string{c.ClientID, c.Username, c.Address, c.TLSIdentity} {
			if strings.Contains(strings.ToLower(field), q) {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// clientsPageURL links to page n of the list for query q.
func clientsPageURL(q string, n int) string {
	v := url.Values{"page": {strconv.Itoa(n)}}
	if q != "" {
		v.Set("q", q)
	}
	return "/clients?" + v.Encode()
}

// clientURL is a client's page. Client ids may hold "/", "?" or "%": the
// id is one escaped path segment, which r.PathValue unescapes.
func clientURL(id string) string {
	return "/clients/" + url.PathEscape(id)
}

// clientDetailView is one client's page.
type clientDetailView struct {
	Client        broker.ClientInfo
	Subscriptions []broker.Subscription
	Loc           *time.Location
}

func (u *UI) clientDetail(w http.ResponseWriter, r *http.Request, ss *session) error {
	id := r.PathValue("id")
	c, ok := u.o.Broker.Client(id)
	if !ok {
		return clientNotFound(id)
	}
	v := clientDetailView{Client: c, Subscriptions: u.o.Broker.Subscriptions(id), Loc: u.location()}
	return u.render(w, r, ss, u.page(ss, "Client "+id, "clients"), clientDetailPage(v))
}

func (u *UI) kickClient(w http.ResponseWriter, r *http.Request, ss *session) error {
	id := r.PathValue("id")
	err := u.o.Broker.Kick(id)
	if errors.Is(err, broker.ErrClientNotFound) {
		return clientNotFound(id)
	}
	if err != nil {
		return fmt.Errorf("kick client %q: %w", id, err)
	}
	u.log.Info("client disconnected from the web UI", "client", id)
	return u.redirect(w, r, ss, "/clients", "Disconnected "+id+".")
}

func clientNotFound(id string) error {
	return userError(http.StatusNotFound, "No client with the id %q is connected or has a session.", id)
}

// protocolName shows the MQTT protocol level a client connected with.
func protocolName(level byte) string {
	switch level {
	case 3:
		return "MQTT 3.1"
	case 4:
		return "MQTT 3.1.1"
	case 5:
		return "MQTT 5"
	}
	return "level " + strconv.Itoa(int(level))
}

// connectedSince is when a connected client connected; an offline
// session's old connect time would mislead.
func connectedSince(c broker.ClientInfo, loc *time.Location) string {
	if !c.Connected {
		return "—"
	}
	return formatTime(c.ConnectedAt, loc)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
