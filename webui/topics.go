package webui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/edgegate/edgegate/gateway/acl"
	"github.com/edgegate/edgegate/gateway/broker"
)

func (u *UI) topicRoutes() {
	u.authed("GET /topics", u.topics)
	u.authed("POST /topics/retained/delete", u.deleteRetained)
	u.authed("POST /topics/publish", u.publish)
}

const (
	// topicsMaxRows bounds the subscription and retained tables: a fleet of
	// sensors can hold thousands of each, and the page must stay quick.
	topicsMaxRows = 200
	// subscribersShown is how many client ids a subscription row names.
	subscribersShown = 3
	// retainedSummaryLen is how many characters of a retained payload
	// its table row shows before the full view.
	retainedSummaryLen = 80
	// maxPublishForm bounds the publish form's body.
	maxPublishForm = 4 << 20
	// webPublisher is the publisher id of a message sent from this page.
	webPublisher = "web-ui"
)

// topicsView is the topics page: who subscribes to what, the retained
// messages, the inspector and the publish form.
type topicsView struct {
	Subscriptions []filterSubscribers
	Filters       int // distinct filters, of which Subscriptions shows at most topicsMaxRows
	Retained      []retainedRow
	RetainedTotal int
	Watch         string // the inspector's filter when the page opens
	Publish       publishForm
	Loc           *time.Location
}

// filterSubscribers is one topic filter and the clients subscribed to it.
type filterSubscribers struct {
	Filter  string
	MaxQoS  byte
	Count   int
	Clients []string // the first subscribersShown, by client id
}

// retainedRow is a retained message as its table row shows it.
type retainedRow struct {
	Topic   string
	Summary string // one short line
	Full    string // the whole preview, when Summary is not all of it
	Size    int
	QoS     byte
	Created time.Time
}

// publishForm is the test-message form.
type publishForm struct {
	Topic, Payload, QoS string
	Retain              bool
	Errors              map[string]string
}

func (u *UI) topics(w http.ResponseWriter, r *http.Request, ss *session) error {
	v := u.topicsData(publishForm{QoS: "0"})
	v.Watch = r.URL.Query().Get("filter")
	return u.render(w, r, ss, u.page(ss, "Topics & messages", "topics"), topicsPage(v))
}

// topicsData gathers what the page shows around the publish form f.
func (u *UI) topicsData(f publishForm) topicsView {
	v := topicsView{Publish: f, Loc: u.location()}
	v.Subscriptions, v.Filters = groupSubscriptions(u.o.Broker.Subscriptions(""))
	retained := u.o.Broker.Retained()
	v.RetainedTotal = len(retained)
	for _, m := range retained[:min(len(retained), topicsMaxRows)] {
		v.Retained = append(v.Retained, viewRetained(m))
	}
	return v
}

// groupSubscriptions turns subscriptions, sorted by client id, into one
// row per filter, sorted by filter, at most topicsMaxRows of them; it also
// returns how many filters there are.
func groupSubscriptions(subs []broker.Subscription) ([]filterSubscribers, int) {
	byFilter := map[string]*filterSubscribers{}
	for _, s := range subs {
		g := byFilter[s.Filter]
		if g == nil {
			g = &filterSubscribers{Filter: s.Filter}
			byFilter[s.Filter] = g
		}
		g.Count++
		g.MaxQoS = max(g.MaxQoS, s.QoS)
		if len(g.Clients) < subscribersShown {
			g.Clients = append(g.Clients, s.ClientID)
		}
	}
	out := make([]filterSubscribers, 0, len(byFilter))
	for _, g := range byFilter {
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b filterSubscribers) int { return strings.Compare(a.Filter, b.Filter) })
	return out[:min(len(out), topicsMaxRows)], len(out)
}

func viewRetained(m broker.RetainedMessage) retainedRow {
	row := retainedRow{Topic: m.Topic, Size: len(m.Payload), QoS: m.QoS, Created: m.Created}
	p := preview(broker.WatchedMessage{Payload: m.Payload})
	full := p.JSON
	switch {
	case full != "":
	case p.Text != "" || len(m.Payload) == 0:
		full = p.Text
	default:
		full = "hex " + p.Hex
	}
	if p.Truncated {
		full += " … (" + strconv.Itoa(p.Size) + " bytes)"
	}
	row.Summary = strings.Join(strings.Fields(full), " ")
	if utf8.RuneCountInString(row.Summary) > retainedSummaryLen {
		row.Summary = string([]rune(row.Summary)[:retainedSummaryLen]) + "…"
	}
	if row.Summary != full {
		row.Full = full
	}
	return row
}

// watchURL opens the page with the inspector set to filter. A shared
// subscription is watched by its inner filter: the inspector joining the
// share group would take messages away from its members.
func watchURL(filter string) string {
	_, filter, _ = acl.SplitShared(filter)
	return "/topics?" + url.Values{"filter": {filter}}.Encode() + "#inspector"
}

func (u *UI) deleteRetained(w http.ResponseWriter, r *http.Request, ss *session) error {
	topic := r.PostFormValue("topic")
	if err := acl.ValidTopicName(topic); err != nil {
		return userError(http.StatusBadRequest, "The %s.", err)
	}
	err := u.o.Broker.DeleteRetained(topic)
	if errors.Is(err, broker.ErrRetainedNotFound) {
		return userError(http.StatusNotFound, "There is no retained message on %q; it may have been deleted already.", topic)
	}
	if err != nil {
		return fmt.Errorf("delete retained message on %q: %w", topic, err)
	}
	u.log.Info("retained message deleted from the web UI", "topic", topic)
	return u.redirect(w, r, ss, "/topics", "Deleted the retained message on "+topic+".")
}

func (u *UI) publish(w http.ResponseWriter, r *http.Request, ss *session) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxPublishForm)
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return userError(http.StatusRequestEntityTooLarge, "The message is larger than the %d bytes this page can send.", tooLarge.Limit)
		}
		return userError(http.StatusBadRequest, "The form could not be read.")
	}
	f := publishForm{
		Topic: r.PostFormValue("topic"), Payload: r.PostFormValue("payload"), QoS: r.PostFormValue("qos"),
		Retain: r.PostFormValue("retain") != "", Errors: map[string]string{},
	}
	if err := acl.ValidTopicName(f.Topic); err != nil {
		f.Errors["topic"] = "The " + err.Error() + "."
	}
	qos, err := strconv.Atoi(f.QoS)
	if err != nil || qos < 0 || qos > 2 {
		f.Errors["qos"] = "Choose QoS 0, 1 or 2."
	}
	m := broker.Message{Topic: f.Topic, Payload: []byte(f.Payload), QoS: byte(qos), Retain: f.Retain, From: webPublisher}
	if limit := u.maxPacketSize(); limit > 0 && len(f.Errors) == 0 && m.PacketSize() > int64(limit) {
		f.Errors["payload"] = fmt.Sprintf("Too large: with its topic the message needs %d bytes; the broker's maximum packet size is %d.", m.PacketSize(), limit)
	}
	if len(f.Errors) > 0 {
		u.renderStatus(w, r, ss, http.StatusUnprocessableEntity, u.page(ss, "Topics & messages", "topics"), topicsPage(u.topicsData(f)))
		return nil
	}
	if err := u.o.Broker.Publish(m); err != nil {
		return fmt.Errorf("publish to %q: %w", m.Topic, err)
	}
	u.log.Info("test message published from the web UI", "topic", m.Topic, "qos", m.QoS, "retain", m.Retain, "bytes", len(m.Payload))
	return u.redirect(w, r, ss, "/topics", "Published to "+m.Topic+".")
}

// maxPacketSize is the mqtt.max_packet_size setting, 0 when unknown: a
// bigger message would be accepted but no client could receive it.
func (u *UI) maxPacketSize() uint32 {
	if u.o.Settings == nil {
		return 0
	}
	return u.o.Settings.Effective().Config.MQTT.MaxPacketSize
}
