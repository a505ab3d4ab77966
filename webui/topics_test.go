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

func TestTopicsPageShowsSubscriptionsAndRetained(t *testing.T) {
	t.Parallel()
	b := &clientsFakeBroker{
		subs: []broker.Subscription{
			{ClientID: "a", Filter: "plant/#", QoS: 0},
			{ClientID: "b", Filter: "plant/#", QoS: 2},
			{ClientID: "b", Filter: "cmd/b", QoS: 1},
			{ClientID: "c", Filter: "plant/#", QoS: 1},
			{ClientID: "d", Filter: "plant/#", QoS: 0},
			{ClientID: "e", Filter: "$share/g/plant/+/temp", QoS: 1},
		},
		retained: []broker.RetainedMessage{
			{Topic: "bin", Payload: []byte{0xff, 0x00, 0x10}, QoS: 1, Created: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)},
			{Topic: "json", Payload: []byte(`{"celsius":21.5}`)},
			{Topic: "text", Payload: []byte("on")},
		},
	}
	u, ss := newClientsTestUI(t, b)
	doc := clientsGet(t, u, ss, "/topics", http.StatusOK)

	var subs [][]string
	doc.Find(byTestID("subscription-row")).Each(func(_ int, s *goquery.Selection) {
		subscribers := s.Find("li").Map(func(_ int, li *goquery.Selection) string { return textOf(li) })
		subs = append(subs, append(clientsCells(s)[:3], strings.Join(subscribers, ", ")))
	})
	want := [][]string{
		{"$share/g/plant/+/temp watch", "1", "1", "e"},
		{"cmd/b watch", "1", "1", "b"},
		{"plant/# watch", "4", "2", "a, b, c, and 1 more"},
	}
	if !slices.EqualFunc(subs, want, slices.Equal) {
		t.Errorf("subscription rows %q, want %q", subs, want)
	}
	links := doc.Find(byTestID("subscription-watch")).Map(func(_ int, s *goquery.Selection) string { return s.AttrOr("href", "") })
	// A shared subscription is watched by its inner filter, outside the group.
	wantLinks := []string{"/topics?filter=plant%2F%2B%2Ftemp#inspector", "/topics?filter=cmd%2Fb#inspector", "/topics?filter=plant%2F%23#inspector"}
	if !slices.Equal(links, wantLinks) {
		t.Errorf("watch links %q, want %q", links, wantLinks)
	}

	payloads := map[string]*goquery.Selection{}
	doc.Find(byTestID("retained-row")).Each(func(_ int, s *goquery.Selection) {
		payloads[textOf(s.Find(byTestID("retained-topic")))] = s.Find(byTestID("retained-payload"))
	})
	if len(payloads) != 3 {
		t.Fatalf("retained rows for %v, want bin, json, text", payloads)
	}
	if got := textOf(payloads["text"]); got != "on" {
		t.Errorf("text payload shows %q", got)
	}
	if got := textOf(payloads["bin"]); got != "hex ff0010" {
		t.Errorf("binary payload shows %q", got)
	}
	if got := payloads["json"].Find("pre").Text(); got != "{\n  \"celsius\": 21.5\n}" {
		t.Errorf("JSON payload's full view %q, want it indented", got)
	}
	form := doc.Find(byTestID("retained-delete-form")).First()
	if form.AttrOr("action", "") != "/topics/retained/delete" || form.AttrOr("method", "") != "post" ||
		form.Find(`input[name="topic"]`).AttrOr("value", "") != "bin" || form.AttrOr("data-confirm", "") == "" {
		h, _ := goquery.OuterHtml(form)
		t.Errorf("retained delete form: %s", h)
	}
}

func TestTopicsTablesAreBounded(t *testing.T) {
	t.Parallel()
	b := &clientsFakeBroker{}
	for i := range 5000 {
		id := fmt.Sprintf("sensor-%04d", i)
		b.subs = append(b.subs, broker.Subscription{ClientID: id, Filter: "cmd/" + id})
		b.retained = append(b.retained, broker.RetainedMessage{Topic: "state/" + id, Payload: []byte("ok")})
	}
	u, ss := newClientsTestUI(t, b)
	doc := clientsGet(t, u, ss, "/topics", http.StatusOK)
	for _, id := range []string{"subscription-row", "retained-row"} {
		if n := doc.Find(byTestID(id)).Length(); n != topicsMaxRows {
			t.Errorf("%d %s, want %d", n, id, topicsMaxRows)
		}
	}
	if got := textOf(doc.Find(byTestID("subscriptions-more"))); !strings.Contains(got, "200 of 5000") {
		t.Errorf("subscriptions note %q", got)
	}
	if got := textOf(doc.Find(byTestID("retained-more"))); !strings.Contains(got, "200 of 5000") {
		t.Errorf("retained note %q", got)
	}
}

func TestTopicsInspectorMarkup(t *testing.T) {
	t.Parallel()
	u, ss := newClientsTestUI(t, &clientsFakeBroker{})
	doc := clientsGet(t, u, ss, "/topics?filter=plant%2F%23", http.StatusOK)

	form := doc.Find("form[data-inspector]")
	if form.Length() != 1 {
		t.Fatal("no form[data-inspector]")
	}
	if got := form.AttrOr("data-filter", ""); got != "plant/#" {
		t.Errorf("a watch link's filter is not started: data-filter %q", got)
	}
	if got := form.Find(`input[name="filter"]`).AttrOr("value", ""); got != "plant/#" {
		t.Errorf("filter box holds %q", got)
	}
	buttons := form.Find(`button[type="submit"]`).Map(func(_ int, s *goquery.Selection) string {
		return s.AttrOr("value", "") + ":" + textOf(s)
	})
	if !slices.Equal(buttons, []string{"watch:Watch", "stop:Stop"}) {
		t.Errorf("inspector buttons %q", buttons)
	}
	formats := doc.Find("select[data-payload-format] option").Map(func(_ int, s *goquery.Selection) string { return s.AttrOr("value", "") })
	if !slices.Equal(formats, []string{"auto", "text", "json", "hex"}) {
		t.Errorf("payload formats %q", formats)
	}
	if doc.Find("[data-watch-status]").Length() != 1 || doc.Find("table tbody[data-messages]").Length() != 1 {
		t.Error("no watch status or message table body")
	}
	// Every control has a label.
	doc.Find("main input:not([type=hidden]), main select, main textarea").Each(func(_ int, s *goquery.Selection) {
		id := s.AttrOr("id", "")
		if s.ParentsFiltered("label").Length() == 0 && (id == "" || doc.Find(`label[for="`+id+`"]`).Length() == 0) {
			h, _ := goquery.OuterHtml(s)
			t.Errorf("control without a label: %s", h)
		}
	})
}

func TestDeleteRetained(t *testing.T) {
	t.Parallel()
	b := &clientsFakeBroker{retained: []broker.RetainedMessage{{Topic: "plant/line1/state", Payload: []byte("on")}}}
	u, ss := newClientsTestUI(t, b)

	w := clientsRequest(t, u, ss, http.MethodPost, "/topics/retained/delete", url.Values{"topic": {"plant/line1/state"}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/topics" {
		t.Fatalf("delete: status %d, Location %q; want 303 to /topics", w.Code, w.Header().Get("Location"))
	}
	if len(b.Retained()) != 0 {
		t.Error("the retained message is still there")
	}
	doc := clientsGet(t, u, ss, "/topics", http.StatusOK)
	if got := textOf(doc.Find(byTestID("flash"))); got != "Deleted the retained message on plant/line1/state." {
		t.Errorf("flash %q", got)
	}
	if doc.Find(byTestID("retained-row")).Length() != 0 {
		t.Error("the deleted message is still listed")
	}

	for topic, want := range map[string]int{"plant/line1/state": http.StatusNotFound, "plant/#": http.StatusBadRequest, "": http.StatusBadRequest} {
		w := clientsRequest(t, u, ss, http.MethodPost, "/topics/retained/delete", url.Values{"topic": {topic}})
		if w.Code != want {
			t.Errorf("delete %q: status %d, want %d", topic, w.Code, want)
		}
		if parseHTML(t, w).Find(byTestID("error")).Length() != 1 {
			t.Errorf("delete %q: no error page", topic)
		}
	}
}

func TestPublishTestMessage(t *testing.T) {
	t.Parallel()
	b := &clientsFakeBroker{}
	u, ss := newClientsTestUI(t, b)

	w := clientsRequest(t, u, ss, http.MethodPost, "/topics/publish",
		url.Values{"topic": {"plant/line1/cmd"}, "payload": {`{"on":true}`}, "qos": {"1"}, "retain": {"1"}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/topics" {
		t.Fatalf("publish: status %d, Location %q; want 303 to /topics", w.Code, w.Header().Get("Location"))
	}
	want := broker.Message{Topic: "plant/line1/cmd", Payload: []byte(`{"on":true}`), QoS: 1, Retain: true, From: webPublisher}
	if len(b.published) != 1 || fmt.Sprint(b.published[0]) != fmt.Sprint(want) {
		t.Errorf("published %+v, want %+v", b.published, want)
	}
	doc := clientsGet(t, u, ss, "/topics", http.StatusOK)
	if got := textOf(doc.Find(byTestID("flash"))); got != "Published to plant/line1/cmd." {
		t.Errorf("flash %q", got)
	}

	for _, tc := range []struct {
		name  string
		form  url.Values
		field string
		say   string
	}{
		{"wildcard topic", url.Values{"topic": {"plant/#"}, "payload": {"keep me"}, "qos": {"2"}}, "publish-topic", "wildcard"},
		{"empty topic", url.Values{"topic": {""}, "payload": {"keep me"}, "qos": {"2"}}, "publish-topic", "empty"},
		{"bad qos", url.Values{"topic": {"a"}, "payload": {"keep me"}, "qos": {"3"}}, "publish-qos", "QoS 0, 1 or 2"},
		{"too large", url.Values{"topic": {"a"}, "payload": {strings.Repeat("x", 1<<20)}, "qos": {"2"}}, "publish-payload", "maximum packet size is 1048576"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := clientsRequest(t, u, ss, http.MethodPost, "/topics/publish", tc.form)
			if w.Code != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422", w.Code)
			}
			doc := parseHTML(t, w)
			if got := textOf(doc.Find(byTestID(tc.field + "-error"))); !strings.Contains(got, tc.say) {
				t.Errorf("%s error %q, want it to say %q", tc.field, got, tc.say)
			}
			if got := doc.Find("#"+tc.field).AttrOr("aria-invalid", ""); got != "true" {
				t.Errorf("%s not marked invalid", tc.field)
			}
			// What was typed is kept.
			if got := doc.Find(byTestID("publish-payload")).Text(); got != tc.form.Get("payload") {
				t.Errorf("payload box holds %d bytes, want what was sent", len(got))
			}
			if got := doc.Find(byTestID("publish-topic")).AttrOr("value", ""); got != tc.form.Get("topic") {
				t.Errorf("topic box holds %q", got)
			}
			if tc.field != "publish-qos" {
				if got := doc.Find(`#publish-qos option[selected]`).AttrOr("value", ""); got != tc.form.Get("qos") {
					t.Errorf("QoS %q selected, want %q", got, tc.form.Get("qos"))
				}
			}
		})
	}
	if len(b.published) != 1 {
		t.Errorf("invalid forms published: %+v", b.published[1:])
	}
}
