package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// busyClients is how many sensors TestWebUIWithManyClients connects: the
// issue asks for a dashboard that stays usable with 5,000.
const busyClients = 5000

// TestWebUIWithManyClients connects 5,000 MQTT clients and checks that
// the dashboard, a search of the clients list and the live feed all answer
// with the right figures. Durations are logged, not asserted (timing
// belongs in benchmarks); the test's deadline bounds them.
func TestWebUIWithManyClients(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 4*time.Minute)
	d := startDaemon(t, obj{"auth": obj{"allow_anonymous": true}})
	d.setupAdmin(t)

	start := time.Now()
	connectMany(ctx, t, tcpDialer(d.addr("tcp"), ""), busyClients)
	t.Logf("%d clients connected in %v", busyClients, time.Since(start).Round(time.Millisecond))

	web := webSession(t, d)
	start = time.Now()
	page := web.get(t, "/")
	t.Logf("dashboard rendered in %v (%d bytes)", time.Since(start).Round(time.Millisecond), len(page))
	if !strings.Contains(page, fmt.Sprint(busyClients)) {
		t.Errorf("the dashboard does not show %d connected clients", busyClients)
	}

	start = time.Now()
	list := web.get(t, "/clients?q=busy-4999")
	t.Logf("client search rendered in %v (%d bytes)", time.Since(start).Round(time.Millisecond), len(list))
	if !strings.Contains(list, "busy-4999") || strings.Contains(list, "busy-4998") {
		t.Error("searching the clients list for busy-4999 does not narrow it to that client")
	}
	if full := web.get(t, "/clients"); len(full) > 2*len(list)+200_000 {
		t.Errorf("the unfiltered clients page is %d bytes: it must be paginated, not list %d clients", len(full), busyClients)
	}

	start = time.Now()
	point := web.liveStats(ctx, t)
	t.Logf("first live stats after %v", time.Since(start).Round(time.Millisecond))
	if point.Clients != busyClients {
		t.Errorf("live stats report %d clients; want %d", point.Clients, busyClients)
	}

	// The gateway stops cleanly with every client still connected.
	start = time.Now()
	if _, timedOut := d.signalAndWait(syscall.SIGTERM, time.Minute); timedOut {
		t.Fatalf("edgegate did not stop within a minute of SIGTERM with %d clients connected", busyClients)
	}
	t.Logf("stopped in %v with %d clients connected", time.Since(start).Round(time.Millisecond), busyClients)
}

// connectMany opens n anonymous MQTT 3.1.1 sessions named busy-<i>, kept
// open until the test ends.
func connectMany(ctx context.Context, t *testing.T, dial dialer, n int) {
	t.Helper()
	const workers = 32
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				conn, err := dial(ctx)
				if err != nil {
					t.Errorf("client %d: dial: %v", i, err)
					continue
				}
				t.Cleanup(func() { _ = conn.Close() })
				_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
				c := &rawClient{t: t, conn: conn, r: bufio.NewReader(conn), nextID: 1}
				if code, _, err := c.connect(rawOpts{clientID: fmt.Sprintf("busy-%d", i), clean: true, keepalive: 600}); err != nil || code != connackAccepted {
					t.Errorf("client %d: CONNACK %d, %v", i, code, err)
				}
				_ = conn.SetDeadline(time.Time{}) // idle until cleanup
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// webClient is a logged-in browser session without a browser.
type webClient struct {
	base   string
	client *http.Client
}

// webSession logs in to the web UI with the admin password.
func webSession(t *testing.T, d *daemon) *webClient {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &webClient{base: d.webBase, client: &http.Client{
		Jar: jar, Timeout: 60 * time.Second,
		// The daemon's local CA signed the certificate; the test only talks to 127.0.0.1.
		Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}}
	resp, err := w.client.PostForm(w.base+"/login", url.Values{"password": {adminPassword}, "next": {"/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/" {
		t.Fatalf("login: status %d at %s; want the dashboard", resp.StatusCode, resp.Request.URL)
	}
	return w
}

func (w *webClient) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := w.client.Get(w.base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, %v", path, resp.StatusCode, err)
	}
	return string(b)
}

// liveStats opens the page websocket and returns the first stats point.
func (w *webClient) liveStats(ctx context.Context, t *testing.T) (point struct {
	Clients int64 `json:"clients"`
}) {
	t.Helper()
	u, _ := url.Parse(w.base)
	h := http.Header{"Origin": {w.base}}
	for _, c := range w.client.Jar.Cookies(u) {
		h.Add("Cookie", c.Name+"="+c.Value)
	}
	dialer := websocket.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, HandshakeTimeout: 30 * time.Second}
	ws, resp, err := dialer.DialContext(ctx, "wss://"+u.Host+"/live?feeds=stats", h)
	if resp != nil {
		resp.Body.Close()
	}
	if err != nil {
		t.Fatalf("live websocket: %v", err)
	}
	defer ws.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = ws.SetReadDeadline(dl)
	}
	for {
		var ev struct {
			Type string `json:"type"`
			Data struct {
				Point json.RawMessage `json:"point"`
			} `json:"data"`
		}
		if err := ws.ReadJSON(&ev); err != nil {
			t.Fatalf("live websocket: %v", err)
		}
		if ev.Type == "stats" {
			if err := json.Unmarshal(ev.Data.Point, &point); err != nil {
				t.Fatal(err)
			}
			return point
		}
	}
}
