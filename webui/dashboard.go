package webui

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/edgegate/edgegate/certs"
	"github.com/edgegate/edgegate/gateway/broker/sys"
)

func (u *UI) dashboardRoutes() {
	u.authed("GET /{$}", u.dashboard)
}

// expiringSoon is how far ahead the dashboard lists certificates.
const expiringSoon = 30 * 24 * time.Hour

// dashboardView is everything the dashboard shows on first paint; the
// websocket keeps it current.
type dashboardView struct {
	Stats     sys.Stats
	Health    string // "ok", or what is wrong
	History   string // JSON of []statsPoint, for the chart
	Expiring  []certs.Certificate
	Loc       *time.Location
	Listeners int
}

func (u *UI) dashboard(w http.ResponseWriter, r *http.Request, ss *session) error {
	v := dashboardView{Stats: u.o.Broker.Stats(), Loc: u.location(), Health: "ok"}
	v.Listeners = len(u.o.Broker.Listeners())
	if n := len(v.Stats.Alarms); n > 0 {
		v.Health = plural(n, "alarm", "alarms") + " raised"
	}
	hist, err := json.Marshal(u.live.statsHistory())
	if err != nil {
		return err
	}
	v.History = string(hist)
	if u.o.Certificates != nil {
		list, err := u.o.Certificates.List()
		if err != nil {
			return err
		}
		soon := u.o.Now().Add(expiringSoon).UnixMilli()
		for _, c := range list {
			if !c.Revoked && c.To < soon && (len(c.Usage) > 0 || c.AutoRenew) {
				v.Expiring = append(v.Expiring, c)
			}
		}
		slices.SortFunc(v.Expiring, func(a, b certs.Certificate) int { return int(a.To - b.To) })
	}
	p := u.page(ss, "Dashboard", "dashboard")
	p.Live = feedStats + "," + feedClients
	return u.render(w, r, ss, p, dashboardPage(v))
}
