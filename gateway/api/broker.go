package api

import (
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/edgegate/edgegate/certs/trust"
	"github.com/edgegate/edgegate/gateway/acl"
	"github.com/edgegate/edgegate/gateway/broker"
	"github.com/edgegate/edgegate/gateway/broker/sys"
)

// Stats gives the broker's statistics (*broker.Broker).
type Stats interface {
	Stats() sys.Stats
}

func (a *API) listClients(w http.ResponseWriter, r *http.Request) error {
	if a.o.Broker == nil {
		return unavailable("the broker")
	}
	clients := a.o.Broker.Clients()
	if q := strings.ToLower(r.URL.Query().Get("q")); q != "" {
		clients = slices.DeleteFunc(clients, func(c broker.ClientInfo) bool {
			return !strings.Contains(strings.ToLower(c.ClientID), q) && !strings.Contains(strings.ToLower(c.Username), q)
		})
	}
	writeJSON(w, http.StatusOK, nonNil(clients))
	return nil
}

func (a *API) getClient(w http.ResponseWriter, r *http.Request) error {
	if a.o.Broker == nil {
		return unavailable("the broker")
	}
	id := r.PathValue("id")
	c, ok := a.o.Broker.Client(id)
	if !ok {
		return notFound("client", id)
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (a *API) kickClient(w http.ResponseWriter, r *http.Request) error {
	if a.o.Broker == nil {
		return unavailable("the broker")
	}
	id := r.PathValue("id")
	err := a.o.Broker.Kick(id)
	if errors.Is(err, broker.ErrClientNotFound) {
		return notFound("client", id)
	}
	if err != nil {
		return fmt.Errorf("kick client %q: %w", id, err)
	}
	a.log.Info("client kicked", "clientid", id, "by", authorOf(r))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listSubscriptions(w http.ResponseWriter, r *http.Request) error {
	if a.o.Broker == nil {
		return unavailable("the broker")
	}
	id := r.URL.Query().Get("clientid")
	if id != "" {
		if _, ok := a.o.Broker.Client(id); !ok {
			return notFound("client", id)
		}
	}
	writeJSON(w, http.StatusOK, nonNil(a.o.Broker.Subscriptions(id)))
	return nil
}

// retainedView is a retained message as the API shows it: the payload in
// base64, and also as text when it is valid UTF-8.
type retainedView struct {
	Topic       string    `json:"topic"`
	Payload     []byte    `json:"payload"`
	PayloadText *string   `json:"payload_text,omitempty"`
	Size        int       `json:"size"`
	QoS         byte      `json:"qos"`
	Created     time.Time `json:"created"`
}

func viewRetained(m broker.RetainedMessage) retainedView {
	v := retainedView{Topic: m.Topic, Payload: nonNil(m.Payload), Size: len(m.Payload), QoS: m.QoS, Created: m.Created}
	if utf8.Valid(m.Payload) {
		s := string(m.Payload)
		v.PayloadText = &s
	}
	return v
}

func (a *API) listRetained(w http.ResponseWriter, r *http.Request) error {
	if a.o.Broker == nil {
		return unavailable("the broker")
	}
	msgs := a.o.Broker.Retained()
	out := make([]retainedView, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, viewRetained(m))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// deleteRetained takes the topic from the path (a "/" inside a level
// boundary is fine; a leading "/" or an empty level must be sent as %2F).
func (a *API) deleteRetained(w http.ResponseWriter, r *http.Request) error {
	if a.o.Broker == nil {
		return unavailable("the broker")
	}
	topic := r.PathValue("topic")
	if err := acl.ValidTopicName(topic); err != nil {
		return errorf(http.StatusBadRequest, "invalid_topic", "%s", err)
	}
	err := a.o.Broker.DeleteRetained(topic)
	if errors.Is(err, broker.ErrRetainedNotFound) {
		return errorf(http.StatusNotFound, "retained_not_found", "no retained message on topic %q", topic)
	}
	if err != nil {
		return fmt.Errorf("delete retained message: %w", err)
	}
	a.log.Info("retained message deleted", "topic", topic, "by", authorOf(r))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listListeners(w http.ResponseWriter, r *http.Request) error {
	if a.o.Broker == nil {
		return unavailable("the broker")
	}
	ls := a.o.Broker.Listeners()
	sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
	writeJSON(w, http.StatusOK, nonNil(ls))
	return nil
}

// publishResult is the answer to both publish routes.
type publishResult struct {
	Result string `json:"result"`
}

// defaultPublisher is the publisher id of an HTTP publish without one.
const defaultPublisher = "http-publish"

// publishRequest is the body of POST /api/v1/publish.
type publishRequest struct {
	Topic   string `json:"topic"`
	Payload string `json:"payload"`
	// Encoding of Payload: "plain" (the default) or "base64".
	Encoding string `json:"encoding"`
	QoS      int    `json:"qos"`
	Retain   bool   `json:"retain"`
	ClientID string `json:"clientid"`
}

// message validates a JSON publish request.
func (p publishRequest) message() (broker.Message, error) {
	var payload []byte
	switch p.Encoding {
	case "", "plain":
		payload = []byte(p.Payload)
	case "base64":
		var err error
		if payload, err = base64.StdEncoding.DecodeString(p.Payload); err != nil {
			if payload, err = base64.RawStdEncoding.DecodeString(p.Payload); err != nil {
				return broker.Message{}, errorf(http.StatusBadRequest, "invalid_payload", "payload is not valid base64")
			}
		}
	default:
		return broker.Message{}, errorf(http.StatusBadRequest, "invalid_encoding", "encoding must be \"plain\" or \"base64\", not %q", p.Encoding)
	}
	if p.QoS < 0 || p.QoS > 2 {
		return broker.Message{}, errorf(http.StatusBadRequest, "invalid_qos", "qos must be 0, 1 or 2")
	}
	return newMessage(p.Topic, payload, byte(p.QoS), p.Retain, p.ClientID)
}

// newMessage checks what both publish routes share.
func newMessage(topic string, payload []byte, qos byte, retain bool, from string) (broker.Message, error) {
	if err := acl.ValidTopicName(topic); err != nil {
		return broker.Message{}, errorf(http.StatusBadRequest, "invalid_topic", "%s", err)
	}
	if from == "" {
		from = defaultPublisher
	}
	if !utf8.ValidString(from) || strings.IndexByte(from, 0) >= 0 || len(from) > 65535 {
		return broker.Message{}, errorf(http.StatusBadRequest, "invalid_clientid", "the publisher client id must be valid UTF-8 without NUL, at most 65535 bytes")
	}
	return broker.Message{Topic: topic, Payload: payload, QoS: qos, Retain: retain, From: from}, nil
}

func (a *API) publishJSON(w http.ResponseWriter, r *http.Request) error {
	if a.o.Broker == nil {
		return unavailable("the broker")
	}
	var req publishRequest
	if err := a.decodeJSON(w, r, &req); err != nil {
		return err
	}
	m, err := req.message()
	if err != nil {
		return err
	}
	return a.publish(w, r, m)
}

// publishFormFields are the fields of the EMQ HTTP publish form.
var publishFormFields = []string{"topic", "message", "qos", "retain", "client"}

// publishForm is the EMQ broker's HTTP publish API:
//
//	curl -u user:pass -d "qos=1&retain=0&topic=/a/b/c&message=hello" http://127.0.0.1:8080/mqtt/publish
//
// Fields: topic (required), message (may be empty), qos 0-2 (default 0),
// retain 0/1/true/false (default 0), client (the publisher id shown in
// traces). The body is application/x-www-form-urlencoded or
// multipart/form-data; fields in the URL query are not read, so a message
// never ends up in an access log.
func (a *API) publishForm(w http.ResponseWriter, r *http.Request) error {
	if a.o.Broker == nil {
		return unavailable("the broker")
	}
	m, err := a.parsePublishForm(w, r)
	if err != nil {
		return err
	}
	return a.publish(w, r, m)
}

func (a *API) parsePublishForm(w http.ResponseWriter, r *http.Request) (broker.Message, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != "application/x-www-form-urlencoded" && mt != "multipart/form-data") {
		return broker.Message{}, errorf(http.StatusUnsupportedMediaType, "unsupported_media_type",
			"the body must be a form (application/x-www-form-urlencoded or multipart/form-data)")
	}
	limit := a.maxBody()
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	if mt == "multipart/form-data" {
		// r.Body is bounded by the MaxBytesReader above, files included.
		err = r.ParseMultipartForm(limit) //nolint:gosec // G120: the body is limited by http.MaxBytesReader
	} else {
		err = r.ParseForm()
	}
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return broker.Message{}, errorf(http.StatusRequestEntityTooLarge, "body_too_large", "the request body is larger than %d bytes", tooLarge.Limit)
		}
		return broker.Message{}, errorf(http.StatusBadRequest, "bad_form", "the form could not be parsed")
	}
	if r.MultipartForm != nil {
		defer func() { _ = r.MultipartForm.RemoveAll() }()
		if len(r.MultipartForm.File) > 0 {
			return broker.Message{}, errorf(http.StatusBadRequest, "bad_form", "file fields are not accepted; send the message as a form value")
		}
	}
	form := r.PostForm
	for k, vs := range form {
		if !slices.Contains(publishFormFields, k) {
			return broker.Message{}, errorf(http.StatusBadRequest, "unknown_field", "unknown form field %q; the fields are topic, message, qos, retain and client", k)
		}
		if len(vs) > 1 {
			return broker.Message{}, errorf(http.StatusBadRequest, "duplicate_field", "form field %q is given %d times", k, len(vs))
		}
	}
	var qos byte
	if s := form.Get("qos"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 2 {
			return broker.Message{}, errorf(http.StatusBadRequest, "invalid_qos", "qos must be 0, 1 or 2, not %q", s)
		}
		qos = byte(n)
	}
	var retain bool
	switch s := form.Get("retain"); strings.ToLower(s) {
	case "", "0", "false":
	case "1", "true":
		retain = true
	default:
		return broker.Message{}, errorf(http.StatusBadRequest, "invalid_retain", "retain must be 0, 1, true or false, not %q", s)
	}
	if _, ok := form["topic"]; !ok {
		return broker.Message{}, errorf(http.StatusBadRequest, "invalid_topic", "the topic field is missing")
	}
	return newMessage(form.Get("topic"), []byte(form.Get("message")), qos, retain, form.Get("client"))
}

// publish hands m to the broker.
func (a *API) publish(w http.ResponseWriter, r *http.Request, m broker.Message) error {
	if a.o.Settings != nil {
		// The broker would accept it but no client with the default
		// packet size limit could receive it.
		if limit := a.o.Settings.Effective().Config.MQTT.MaxPacketSize; limit > 0 && m.PacketSize() > int64(limit) {
			return errorf(http.StatusRequestEntityTooLarge, "message_too_large", "the message does not fit in mqtt.max_packet_size (%d bytes)", limit)
		}
	}
	if err := a.o.Broker.Publish(m); err != nil {
		return fmt.Errorf("publish to %q: %w", m.Topic, err)
	}
	a.log.Debug("http publish", "topic", m.Topic, "qos", m.QoS, "retain", m.Retain, "bytes", len(m.Payload), "by", authorOf(r))
	writeJSON(w, http.StatusOK, publishResult{Result: "ok"})
	return nil
}

func (a *API) getStats(w http.ResponseWriter, r *http.Request) error {
	if a.o.Stats == nil {
		return unavailable("statistics")
	}
	writeJSON(w, http.StatusOK, a.stats())
	return nil
}

// stats is the broker's statistics with the trust lists' state added.
func (a *API) stats() sys.Stats {
	s := a.o.Stats.Stats()
	if a.o.Trust == nil {
		return s
	}
	t := &sys.TrustStats{Entries: map[string]int{}}
	if applied, err := a.o.Trust.Applied(); err == nil {
		t.AppliedVersion = applied.Number
		for _, l := range []trust.ListName{trust.TrustList, trust.IssuerList} {
			t.Entries[string(l)] = len(applied.List(l))
		}
	}
	st := a.o.Trust.Status()
	t.SyncEnabled, t.LastSuccess, t.Syncs, t.SyncErrors = st.Enabled, st.LastSuccess, st.Syncs, st.Errors
	s.Trust = t
	return s
}

// metrics serves Prometheus text. It needs no credentials (scrapers rarely
// carry them) but, like every route of Handler, answers loopback only.
func (a *API) metrics(w http.ResponseWriter, r *http.Request) error {
	if a.o.Stats == nil {
		return unavailable("statistics")
	}
	var b strings.Builder
	if err := sys.WritePrometheus(&b, a.stats()); err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	w.Header().Set("Content-Type", sys.PrometheusContentType)
	_, _ = w.Write([]byte(b.String()))
	return nil
}
