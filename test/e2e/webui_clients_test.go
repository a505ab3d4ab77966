package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// TestWebUIInspector watches a topic filter in the browser's message
// inspector while mosquitto_pub publishes, then publishes a retained test
// message from the page and deletes it from the retained table.
func TestWebUIInspector(t *testing.T) {
	t.Parallel()
	needTool(t, "mosquitto_pub")
	mctx := testContext(t, 2*time.Minute)
	d := startDaemon(t, obj{"auth": obj{"allow_anonymous": true}})
	ctx := newBrowser(t)
	questions := acceptDialogs(ctx, t)
	webLogin(ctx, t, d)

	if err := chromedp.Do(ctx,
		chromedp.Navigate(d.webBase+"/topics"),
		chromedp.WaitVisible(dataTestID("inspector-filter")),
		chromedp.SendKeys(dataTestID("inspector-filter"), "plant/#"),
		chromedp.Click(dataTestID("inspector-watch")),
		// The broker has subscribed the inspector once the page says so.
		chromedp.Poll[chromedp.Void](`document.querySelector("[data-watch-status]").textContent === "Watching plant/#"`,
			chromedp.WithPollingMutation()),
	); err != nil {
		t.Fatalf("start watching plant/#: %v", err)
	}

	mosqPub(mctx, t, append(mosqTCP(d, "tcp"), "-t", "plant/line1/temp", "-m", `{"celsius":21.5}`, "-q", "1")...)
	if err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](
		`[...document.querySelectorAll('[data-testid="inspected-message"]')].some((r) => r.textContent.includes("plant/line1/temp"))`,
		chromedp.WithPollingMutation())); err != nil {
		t.Fatalf("the published message does not show in the inspector: %v", err)
	}
	row, err := chromedp.Run(ctx, chromedp.Text(dataTestID("inspected-message")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(row, "plant/line1/temp") || !strings.Contains(row, "QoS 1") {
		t.Errorf("inspected message row %q: want the topic and QoS 1", row)
	}
	payload, err := chromedp.Run(ctx, chromedp.Text(dataTestID("inspected-payload")))
	if err != nil {
		t.Fatal(err)
	}
	// JSON is shown indented: that it was parsed, not echoed.
	if want := "{\n  \"celsius\": 21.5\n}"; payload != want {
		t.Errorf("inspected payload %q, want %q", payload, want)
	}
	shot(ctx, t, "topics")

	// A retained test message from the publish form lands in the retained
	// table, and the table deletes it again.
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(dataTestID("publish-topic"), "plant/line1/setpoint"),
		chromedp.SendKeys(dataTestID("publish-payload"), "22.5"),
		chromedp.SetValue(dataTestID("publish-qos"), "1"),
		chromedp.Click(dataTestID("publish-retain")),
	); err != nil {
		t.Fatalf("fill in the publish form: %v", err)
	}
	clientsSubmit(ctx, t, "publish-submit")
	clientsWantText(ctx, t, "flash", "Published to plant/line1/setpoint.")
	clientsWantText(ctx, t, "retained-topic", "plant/line1/setpoint")
	clientsWantText(ctx, t, "retained-payload", "22.5")

	clientsSubmit(ctx, t, "retained-delete")
	clientsWantQuestion(t, questions, "Delete the retained message on plant/line1/setpoint?")
	clientsWantText(ctx, t, "flash", "Deleted the retained message on plant/line1/setpoint.")
	if err := chromedp.Do(ctx, chromedp.WaitNotPresent(dataTestID("retained-row"))); err != nil {
		t.Fatalf("the deleted message is still listed: %v", err)
	}
	var retained []struct {
		Topic string `json:"topic"`
	}
	d.api(t, "GET", "/api/v1/retained", nil, http.StatusOK, &retained)
	if len(retained) != 0 {
		t.Errorf("the broker still retains %+v", retained)
	}
}

// TestWebUIKickClient finds a connected sensor by searching the clients
// list, opens it and kicks it: the sensor's connection is closed with
// "administrative action" and it leaves the list.
func TestWebUIKickClient(t *testing.T) {
	t.Parallel()
	mctx := testContext(t, 2*time.Minute)
	d := startDaemon(t, obj{"auth": obj{"allow_anonymous": true}})
	dial := tcpDialer(d.addr("tcp"), "")
	sensor := mustConnectGo(mctx, t, dial, connOpts{clientID: "sensor-kick-1"})
	sensor.mustSubscribe(mctx, 1, "plant/kick-1/cmd")
	mustConnectGo(mctx, t, dial, connOpts{clientID: "sensor-stays-2"})
	ctx := newBrowser(t)
	questions := acceptDialogs(ctx, t)
	webLogin(ctx, t, d)

	if err := chromedp.Do(ctx,
		chromedp.Navigate(d.webBase+"/clients"),
		chromedp.WaitVisible(dataTestID("clients-table")),
	); err != nil {
		t.Fatalf("open the clients list: %v", err)
	}
	clientsWantText(ctx, t, "clients-count", "2 of 2 clients")
	shot(ctx, t, "clients")

	if err := chromedp.Do(ctx, chromedp.SendKeys(dataTestID("clients-query"), "kick-1")); err != nil {
		t.Fatalf("type a search: %v", err)
	}
	clientsSubmit(ctx, t, "clients-search-submit")
	clientsWantText(ctx, t, "clients-count", "1 of 2 clients")
	clientsWantText(ctx, t, "client-link", "sensor-kick-1")

	clientsSubmit(ctx, t, "client-link")
	clientsWantText(ctx, t, "client-id", "sensor-kick-1")
	if sub, err := chromedp.Run(ctx, chromedp.Text(dataTestID("client-subscription"))); err != nil || !strings.Contains(sub, "plant/kick-1/cmd") {
		t.Errorf("client subscriptions show %q (%v), want plant/kick-1/cmd", sub, err)
	}
	shot(ctx, t, "client-detail")

	clientsSubmit(ctx, t, "client-kick")
	clientsWantQuestion(t, questions, "Disconnect sensor-kick-1?")
	clientsWantText(ctx, t, "flash", "Disconnected sensor-kick-1.")
	if err := sensor.waitClosed(mctx); err != nil {
		t.Fatalf("the kicked sensor's connection stays open: %v", err)
	}
	if dc := sensor.serverDisconnect(); dc == nil || dc.ReasonCode != 0x98 {
		t.Errorf("the kicked sensor got DISCONNECT %+v, want reason 0x98 (administrative action)", dc)
	}

	// The broker drops the clean session as the connection ends, just
	// after the kick answered.
	waitUntil(mctx, t, "sensor-kick-1 to leave the broker", func() bool {
		var clients []clientInfo
		d.api(t, "GET", "/api/v1/clients", nil, http.StatusOK, &clients)
		for _, c := range clients {
			if c.ClientID == "sensor-kick-1" {
				return false
			}
		}
		return true
	})
	if err := chromedp.Do(ctx,
		chromedp.Navigate(d.webBase+"/clients?q=kick-1"),
		chromedp.WaitVisible(dataTestID("clients-empty")),
	); err != nil {
		t.Fatalf("search for the kicked client: %v", err)
	}
	clientsWantText(ctx, t, "clients-count", "0 of 1 clients")
}

// clientsSubmit clicks the element with data-testid id (a submit button
// or a link) and waits for the page it leads to.
func clientsSubmit(ctx context.Context, t *testing.T, id string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(dataTestID(id)))); err != nil {
		t.Fatalf("click %s: %v", id, err)
	}
}

// clientsWantQuestion checks that the form just submitted asked want
// first: acceptDialogs passed the question on before accepting it.
func clientsWantQuestion(t *testing.T, questions <-chan string, want string) {
	t.Helper()
	select {
	case q := <-questions:
		if q != want {
			t.Errorf("the page asked %q, want %q", q, want)
		}
	default:
		t.Errorf("the page did not ask %q", want)
	}
}

// clientsWantText checks the visible text of the first element with
// data-testid id.
func clientsWantText(ctx context.Context, t *testing.T, id, want string) {
	t.Helper()
	got, err := chromedp.Run(ctx, chromedp.Text(dataTestID(id)))
	if err != nil {
		t.Fatalf("read %s: %v", id, err)
	}
	if strings.TrimSpace(got) != want {
		t.Errorf("%s shows %q, want %q", id, got, want)
	}
}
