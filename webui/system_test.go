package webui

import (
	"encoding/json"
	"errors"
	"io/fs"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/gorilla/websocket"

	"github.com/edgegate/edgegate/gateway/backup"
)

func TestSystemPageShowsVersionLogsAndTraces(t *testing.T) {
	s := newSystemTest(t)
	s.log.Info("listener started", "name", "tcp", "address", "127.0.0.1:1883")
	s.log.Warn("certificate expires soon", "id", "c1")
	if _, err := s.tracer.Start("client", "sensor-1", "t1"); err != nil {
		t.Fatal(err)
	}

	doc := systemDoc(t, s.do(t, "GET", "/system", nil), http.StatusOK)
	for id, want := range map[string]string{
		"version-number": "1.2.3", "version-commit": "abc1234", "data-dir": s.layout.Dir,
	} {
		if got := textOf(systemFind(doc, id)); got != want {
			t.Errorf("%s = %q, want %q", id, got, want)
		}
	}
	if got := textOf(systemFind(doc, "version-go")); !strings.HasPrefix(got, "go") {
		t.Errorf("Go version %q", got)
	}
	if live, _ := doc.Find("body").Attr("data-live"); live != "logs" {
		t.Errorf("data-live = %q, want logs", live)
	}
	logs := systemFind(doc, "logs")
	if _, ok := logs.Attr("data-logs"); !ok {
		t.Error("the log list has no data-logs for live lines")
	}
	lines := logs.Find(`[data-testid="log-line"]`)
	if lines.Length() < 2 {
		t.Fatalf("%d log lines shown, want at least 2", lines.Length())
	}
	found := false
	lines.Each(func(_ int, l *goquery.Selection) {
		if strings.Contains(l.Text(), "certificate expires soon") {
			text, class := l.Text(), l.AttrOr("class", "")
			if !strings.Contains(text, "WARN") || !strings.Contains(text, "id=c1") || class != "level-warn" {
				t.Errorf("warning line %q, class %q", text, class)
			}
			found = true
		}
	})
	if !found {
		t.Error("the warning is not shown")
	}
	row := systemFind(doc, "trace-row")
	if row.Length() != 1 || !strings.Contains(textOf(row), "sensor-1") || !strings.Contains(textOf(row), "running") {
		t.Errorf("trace rows: %q", textOf(row))
	}
	if href := row.Find(`[data-testid="trace-download"]`).AttrOr("href", ""); href != "/system/traces/t1.log" {
		t.Errorf("download link %q", href)
	}
}

func TestSystemLiveLogLines(t *testing.T) {
	s := newSystemTest(t)
	srv := httptest.NewTLSServer(s.u.Handler())
	t.Cleanup(srv.Close)
	d := websocket.Dialer{TLSClientConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig, HandshakeTimeout: 5 * time.Second}
	h := http.Header{"Origin": {srv.URL}, "Cookie": {sessionCookie + "=" + s.ss.id}}
	ws, _, err := d.Dial("wss"+strings.TrimPrefix(srv.URL, "https")+"/live?feeds=logs", h)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	// The hub registers the socket just after the handshake.
	deadline := time.Now().Add(5 * time.Second)
	for !s.u.live.anyWants(feedLogs) {
		if time.Now().After(deadline) {
			t.Fatal("the websocket never joined the logs feed")
		}
		time.Sleep(time.Millisecond)
	}
	s.log.Error("store write failed", "bucket", "users")
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var ev struct {
			Type string  `json:"type"`
			Data logLine `json:"data"`
		}
		if err := ws.ReadJSON(&ev); err != nil {
			t.Fatalf("no log event: %v", err)
		}
		if ev.Type != "log" || !strings.Contains(ev.Data.Text, "store write failed") {
			continue
		}
		if ev.Data.Level != "error" || !strings.Contains(ev.Data.Text, "ERROR store write failed bucket=users") {
			t.Errorf("live line %+v", ev.Data)
		}
		return
	}
}

func TestSystemTraces(t *testing.T) {
	s := newSystemTest(t)
	w := s.do(t, "POST", "/system/traces", url.Values{"kind": {"topic"}, "target": {"sensors/#"}, "name": {"sensors"}})
	if w.Code != http.StatusSeeOther {
		t.Fatalf("start: status %d\n%s", w.Code, w.Body)
	}
	list := s.tracer.List()
	if len(list) != 1 || list[0].Target != "sensors/#" || list[0].StopReason != "" {
		t.Fatalf("traces after start: %+v", list)
	}

	w = s.do(t, "GET", "/system/traces/sensors.log", nil)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `trace started: topic "sensors/#"`) {
		t.Fatalf("download: status %d: %s", w.Code, w.Body)
	}
	if _, params, _ := mime.ParseMediaType(w.Header().Get("Content-Disposition")); params["filename"] != "sensors.log" {
		t.Errorf("Content-Disposition %q", w.Header().Get("Content-Disposition"))
	}
	for _, name := range []string{"other.log", "..%2Fdevice.key"} {
		if w := s.do(t, "GET", "/system/traces/"+name, nil); w.Code != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", name, w.Code)
		}
	}

	w = s.do(t, "POST", "/system/traces/stop", url.Values{"kind": {"topic"}, "target": {"sensors/#"}})
	if w.Code != http.StatusSeeOther {
		t.Fatalf("stop: status %d", w.Code)
	}
	if list := s.tracer.List(); list[0].StopReason != "stopped" {
		t.Errorf("trace not stopped: %+v", list[0])
	}
	doc := systemDoc(t, s.do(t, "GET", "/system", nil), http.StatusOK)
	if got := textOf(systemFind(doc, "flash")); got != "Trace stopped." {
		t.Errorf("flash %q", got)
	}
	if systemFind(doc, "trace-stop").Length() != 0 {
		t.Error("a stopped trace still has a stop button")
	}

	for _, c := range []struct {
		form  url.Values
		field string
	}{
		{url.Values{"kind": {"topic"}, "target": {"a/#/b"}}, "trace-target"},
		{url.Values{"kind": {"client"}, "target": {""}}, "trace-target"},
		{url.Values{"kind": {"client"}, "target": {"c1"}, "name": {"../x"}}, "trace-name"},
		{url.Values{"kind": {"packets"}, "target": {"c1"}}, "trace-kind"},
	} {
		doc := systemDoc(t, s.do(t, "POST", "/system/traces", c.form), http.StatusUnprocessableEntity)
		if systemFind(doc, c.field+"-error").Length() != 1 {
			t.Errorf("%v: no %s error", c.form, c.field)
		}
		if got := systemFind(doc, "trace-target").AttrOr("value", ""); got != c.form.Get("target") {
			t.Errorf("%v: target not kept: %q", c.form, got)
		}
	}
}

func TestSystemBackupAndRestore(t *testing.T) {
	s := newSystemTest(t)
	for _, c := range []struct {
		form  url.Values
		field string
	}{
		{url.Values{"passphrase": {"short"}, "confirm": {"short"}}, "backup-passphrase"},
		{url.Values{"passphrase": {"long enough pass"}, "confirm": {"long enough pasS"}}, "backup-confirm"},
	} {
		doc := systemDoc(t, s.do(t, "POST", "/system/backup", c.form), http.StatusUnprocessableEntity)
		if systemFind(doc, c.field+"-error").Length() != 1 {
			t.Errorf("%v: no %s error", c.form, c.field)
		}
	}

	const pass = "long enough pass"
	w := s.do(t, "POST", "/system/backup", url.Values{"passphrase": {pass}, "confirm": {pass}})
	if w.Code != http.StatusOK {
		t.Fatalf("backup: status %d\n%s", w.Code, w.Body)
	}
	_, params, _ := mime.ParseMediaType(w.Header().Get("Content-Disposition"))
	want := "edgegate-edgegate-" + time.Now().UTC().Format("2006-01-02") + ".backup"
	if params["filename"] != want || w.Header().Get("Content-Type") != "application/octet-stream" {
		t.Errorf("download headers %v, want file %s", w.Header(), want)
	}
	file := w.Body.Bytes()

	for _, c := range []struct {
		name, pass, fileName string
		file                 []byte
		field                string
	}{
		{"wrong passphrase", "not the passphrase", "a.backup", file, "restore-passphrase"},
		{"truncated", pass, "a.backup", file[:len(file)-10], "restore-file"},
		{"not a backup", pass, "a.backup", []byte("hello"), "restore-file"},
		{"no file chosen", pass, "", nil, "restore-file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			doc := systemDoc(t, s.restore(t, c.pass, c.fileName, c.file), http.StatusUnprocessableEntity)
			if systemFind(doc, c.field+"-error").Length() != 1 {
				t.Errorf("no %s error", c.field)
			}
			if _, err := os.Stat(filepath.Join(s.layout.Dir, backup.PendingRestore)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("something was staged: %v", err)
			}
		})
	}
	if n := s.restarts.Load(); n != 0 {
		t.Fatalf("restarted %d times on refused restores", n)
	}

	w = s.restore(t, pass, "a.backup", file)
	doc := systemDoc(t, w, http.StatusOK)
	if systemFind(doc, "restarting").Length() != 1 || w.Header().Get("Refresh") == "" {
		t.Errorf("no restarting page: %s", w.Body)
	}
	if n := s.restarts.Load(); n != 1 {
		t.Errorf("restarts = %d, want 1", n)
	}
	if _, err := os.Stat(filepath.Join(s.layout.Dir, backup.PendingRestore, "edgegate.db")); err != nil {
		t.Errorf("restore not staged: %v", err)
	}
	for _, l := range s.tail.Lines() {
		if strings.Contains(l.Message+l.Attrs, pass) {
			t.Errorf("the passphrase is in the log: %s", l.Text())
		}
	}
	// The sessions end with the restart.
	if w := s.do(t, "GET", "/system", nil); w.Code != http.StatusSeeOther {
		t.Errorf("session still valid after the restore: status %d", w.Code)
	}
}

func TestSystemRestartAndFactoryReset(t *testing.T) {
	s := newSystemTest(t)
	w := s.do(t, "POST", "/system/reset", url.Values{"confirm_name": {"other"}, "keep_device_key": {"on"}})
	doc := systemDoc(t, w, http.StatusUnprocessableEntity)
	if got := textOf(systemFind(doc, "reset-confirm-error")); !strings.Contains(got, "edgegate") {
		t.Errorf("reset error %q", got)
	}
	if _, ok := systemFind(doc, "reset-keep").Attr("checked"); !ok {
		t.Error("the keep box, sent checked, is shown unchecked")
	}
	if s.restarts.Load() != 0 {
		t.Fatal("restarted on a wrong confirmation")
	}

	w = s.do(t, "POST", "/system/reset", url.Values{"confirm_name": {"edgegate"}})
	systemDoc(t, w, http.StatusOK)
	marker, err := os.ReadFile(filepath.Join(s.layout.Dir, backup.PendingReset))
	if err != nil {
		t.Fatalf("reset not staged: %v", err)
	}
	var m struct {
		Keep bool `json:"keep_device_key"`
	}
	if err := json.Unmarshal(marker, &m); err != nil || m.Keep {
		t.Errorf("marker %s: keep the device key without the box checked", marker)
	}
	if n := s.restarts.Load(); n != 1 {
		t.Errorf("restarts = %d, want 1", n)
	}

	s.ss = s.u.sessions.create()
	w = s.do(t, "POST", "/system/restart", url.Values{})
	if systemFind(systemDoc(t, w, http.StatusOK), "restarting").Length() != 1 {
		t.Error("no restarting page")
	}
	if n := s.restarts.Load(); n != 2 {
		t.Errorf("restarts = %d, want 2", n)
	}
}

func TestSystemWithoutOptionalParts(t *testing.T) {
	u := New(Options{Admin: &fakeAdmin{password: "set"}, Broker: fakeBroker{}, Settings: newFakeSettings()})
	t.Cleanup(u.Close)
	s := &systemTest{u: u, ss: u.sessions.create()}
	doc := systemDoc(t, s.do(t, "GET", "/system", nil), http.StatusOK)
	for _, id := range []string{"logs", "traces", "backup-form", "restore-form", "restart-form", "reset-form"} {
		if systemFind(doc, id).Length() != 0 {
			t.Errorf("%s shown without its dependency", id)
		}
	}
	for _, path := range []string{"/system/restart", "/system/reset", "/system/backup", "/system/traces"} {
		if w := s.do(t, "POST", path, url.Values{}); w.Code != http.StatusServiceUnavailable {
			t.Errorf("POST %s: status %d, want 503", path, w.Code)
		}
	}
}
