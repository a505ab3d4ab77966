package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// accessSubmit clicks a submit button and waits for the page the answer
// leads to (after the post/redirect/get), requiring it to load with want.
func accessSubmit(ctx context.Context, t *testing.T, what string, button chromedp.CSS, want int) {
	t.Helper()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(button))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if resp.Status != int64(want) {
		t.Fatalf("%s: page loaded with status %d, want %d", what, resp.Status, want)
	}
}

// accessText returns the text of the first element sel matches.
func accessText(ctx context.Context, t *testing.T, sel chromedp.CSS) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(sel))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return strings.Join(strings.Fields(s), " ")
}

// accessAttr returns an attribute of the first element sel matches.
func accessAttr(ctx context.Context, t *testing.T, sel chromedp.CSS, name string) string {
	t.Helper()
	attrs, err := chromedp.Run(ctx, chromedp.Attributes(sel))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return attrs[name]
}

// accessRule selects an element of ACL table row n (from 1).
func accessRule(n string, inner string) chromedp.CSS {
	return chromedp.CSS(`[data-testid="acl-rule"][data-rule="` + n + `"] ` + inner)
}

// accessAddUser adds an MQTT user on the Access page.
func accessAddUser(ctx context.Context, t *testing.T, d *daemon, username, password string) {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(d.webBase+"/access"),
		chromedp.WaitVisible(dataTestID("user-add-form")),
		chromedp.SendKeys(dataTestID("user-username"), username),
		chromedp.SendKeys(dataTestID("user-password"), password),
	); err != nil {
		t.Fatalf("fill the add-user form: %v", err)
	}
	accessSubmit(ctx, t, "add MQTT user "+username, dataTestID("user-add"), http.StatusOK)
	if got := accessText(ctx, t, dataTestID("flash")); got != `MQTT user "`+username+`" added.` {
		t.Errorf("after adding %s the page says %q", username, got)
	}
	row := chromedp.CSS(`[data-testid="user-row"][data-username="` + username + `"]`)
	if err := chromedp.Do(ctx, chromedp.WaitVisible(row)); err != nil {
		t.Fatalf("no row for %s: %v", username, err)
	}
}

// TestWebUIAddUserThenPublish proves an MQTT user added in the browser can
// log in to the broker with its password, and not with another.
func TestWebUIAddUserThenPublish(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, baseSettings())
	ctx := newBrowser(t)
	webLogin(ctx, t, d)
	const password = "Sensor-UI-Pass-1"
	accessAddUser(ctx, t, d, "sensor-ui", password)
	shot(ctx, t, "access")

	mctx := testContext(t, 30*time.Second)
	pub := append(mosqTCP(d, "tcp"), "-i", "sensor-ui-pub", "-u", "sensor-ui", "-t", "ui/test", "-m", "hi", "-q", "1")
	if r := runMosquitto(mctx, t, "mosquitto_pub", append(pub, "-P", password)...); r.code != 0 {
		t.Errorf("mosquitto_pub as sensor-ui: exit code %d\nstderr: %s", r.code, r.stderr)
	}
	if r := runMosquitto(mctx, t, "mosquitto_pub", append(pub, "-P", "not-"+password)...); r.code == 0 {
		t.Error("mosquitto_pub as sensor-ui with a wrong password succeeded")
	}
}

// TestWebUIACLRefusesPublish adds a deny rule in the browser, moves it to
// the top, checks it with the rule tester and proves the broker applies it
// at once. MQTT 3.1.1 cannot tell the publisher its publish was refused,
// so the proof is on the subscriber's side: a marker published after the
// refused message arrives, and the refused message never came before it
// (one subscriber connection delivers in order).
func TestWebUIACLRefusesPublish(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, baseSettings())
	ctx := newBrowser(t)
	webLogin(ctx, t, d)
	const password = "Sensor-UI-Pass-1"
	d.addUser(t, "sensor-ui", password, false)
	d.addUser(t, "observer", "Observer-Pass-1", false)

	mctx := testContext(t, 60*time.Second)
	obs := mustConnectGo(mctx, t, tcpDialer(d.addr("tcp"), "127.0.0.1"),
		connOpts{clientID: "observer", username: "observer", password: "Observer-Pass-1"})
	obs.mustSubscribe(mctx, 1, "ui/#")
	publish := func(topic, payload string) mosqResult {
		return runMosquitto(mctx, t, "mosquitto_pub", append(mosqTCP(d, "tcp"),
			"-i", "sensor-ui-pub", "-u", "sensor-ui", "-P", password, "-t", topic, "-m", payload, "-q", "1")...)
	}
	if r := publish("ui/blocked", "before"); r.code != 0 {
		t.Fatalf("publish before the rule: exit code %d\nstderr: %s", r.code, r.stderr)
	}
	obs.expect(mctx, "ui/blocked", "before")

	// The default rules apply; the new rule goes to the end (rule 6) and
	// moves up to the top one row at a time.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(d.webBase+"/access"),
		chromedp.WaitVisible(dataTestID("acl-add-form")),
		chromedp.SetValue(dataTestID("rule-permission"), "deny"),
		chromedp.SetValue(dataTestID("rule-who-kind"), "user"),
		chromedp.SendKeys(dataTestID("rule-who"), "sensor-ui"),
		chromedp.SetValue(dataTestID("rule-access"), "publish"),
		chromedp.SendKeys(dataTestID("rule-topics"), "ui/blocked"),
	); err != nil {
		t.Fatalf("fill the add-rule form: %v", err)
	}
	if got := accessAttr(ctx, t, dataTestID("rule-position"), "value"); got != "6" {
		t.Fatalf("a new rule's position is %q, want 6 (after the five default rules)", got)
	}
	accessSubmit(ctx, t, "add the deny rule", dataTestID("rule-submit"), http.StatusOK)
	const rule = "deny user sensor-ui publish ui/blocked"
	if got := accessText(ctx, t, accessRule("6", "")); !strings.HasPrefix(got, "6 "+rule) {
		t.Fatalf("rule 6 shows %q, want %q", got, rule)
	}
	for n := 6; n > 1; n-- {
		from, to := string(rune('0'+n)), string(rune('0'+n-1))
		accessSubmit(ctx, t, "move rule "+from+" up", accessRule(from, `[data-testid="acl-up"]`), http.StatusOK)
		if got := accessText(ctx, t, accessRule(to, "")); !strings.HasPrefix(got, to+" "+rule) {
			t.Fatalf("after moving rule %s up, rule %s shows %q", from, to, got)
		}
	}
	if got := accessText(ctx, t, dataTestID("flash")); got != "ACL rule 2 is now rule 1." {
		t.Errorf("flash %q", got)
	}

	// The tester names the new rule for this publish.
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(dataTestID("test-username"), "sensor-ui"),
		chromedp.SendKeys(dataTestID("test-clientid"), "sensor-ui-pub"),
		chromedp.SendKeys(dataTestID("test-ipaddr"), "127.0.0.1"),
		chromedp.SendKeys(dataTestID("test-topic"), "ui/blocked"),
		chromedp.SetValue(dataTestID("test-action"), "publish"),
	); err != nil {
		t.Fatalf("fill the rule tester: %v", err)
	}
	accessSubmit(ctx, t, "test the rules", dataTestID("test-submit"), http.StatusOK)
	result := dataTestID("acl-test-result")
	if rule, decision := accessAttr(ctx, t, result, "data-rule"), accessAttr(ctx, t, result, "data-decision"); rule != "1" || decision != "deny" {
		t.Errorf("tester: rule %q decides %q, want rule 1, deny (%q)", rule, decision, accessText(ctx, t, result))
	}
	if class := accessAttr(ctx, t, accessRule("1", ""), "class"); !strings.Contains(class, "match") {
		t.Errorf("the matching row is not highlighted (class %q)", class)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil || !strings.Contains(loc, "/access?test=1&") || !strings.Contains(loc, "topic=ui%2Fblocked") {
		t.Errorf("the tester's answer is not at a shareable address: %q (%v)", loc, err)
	}
	shot(ctx, t, "access-acl")

	// Broker side: the refused message is not delivered, the marker is.
	r := publish("ui/blocked", "after")
	t.Logf("publish refused by the ACL: mosquitto_pub exit code %d (%s)", r.code, strings.TrimSpace(r.stderr))
	if r := publish("ui/marker", "marker"); r.code != 0 {
		t.Fatalf("publish the marker: exit code %d\nstderr: %s", r.code, r.stderr)
	}
	obs.expect(mctx, "ui/marker", "marker")
}
