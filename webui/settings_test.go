package webui

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/edgegate/edgegate/gateway/broker"
	"github.com/edgegate/edgegate/gateway/config"
)

func TestSettingsPageShowsSettingsAndLiveListeners(t *testing.T) {
	e := newSettingsTestUI(t, `{"listeners": {"tcp": {"bind": "127.0.0.1:0"}}}`,
		broker.ListenerStatus{Name: "tcp", Type: "tcp", Address: "127.0.0.1:41883", Clients: 3, MaxClients: 10000},
		broker.ListenerStatus{Name: "tls", Type: "tls", Address: "127.0.0.1:48883", MaxClients: 10000, ClientAuth: "optional"},
	)
	doc := e.page()

	if got := textOf(doc.Find(byTestID("listener-address-tcp"))); got != "127.0.0.1:41883" {
		t.Errorf("tcp address = %q", got)
	}
	if got := textOf(doc.Find(byTestID("listener-clients-tcp"))); got != "3 / 10000" {
		t.Errorf("tcp clients = %q", got)
	}
	if got := textOf(doc.Find(byTestID("listener-address-ws"))); got != "not running" {
		t.Errorf("ws, which the broker does not run, shows %q", got)
	}

	for _, name := range []string{"tcp", "tls", "ws", "wss"} {
		if doc.Find(byTestID("listener-form-"+name)).Length() != 1 {
			t.Errorf("no form for listener %s", name)
		}
	}
	want := map[string]string{
		"listeners-tcp-max_clients":           "10000",
		"listeners-ws-path":                   "/mqtt",
		"listeners-tls-tls-client_auth":       "optional",
		"listeners-tls-tls-client_ca":         "local",
		"listeners-tls-tls-identity-username": "",
		"listeners-wss-tls-client_auth":       "none",
		"auth-chain-0":                        "certificate",
		"auth-chain-4":                        "anonymous",
		"sys-interval":                        "1m",
		"mqtt-max_packet_size":                "1048576",
		"mqtt-max_session_expiry":             "24h",
		"memory-budget_bytes":                 "0",
		"log-level":                           "info",
	}
	for id, v := range want {
		if got := settingsValue(t, doc, id); got != v {
			t.Errorf("%s = %q, want %q", id, got, v)
		}
	}
	for _, id := range []string{"listeners-tcp-path", "listeners-tcp-tls-client_auth", "listeners-ws-tls-client_auth"} {
		if doc.Find(byTestID(id)).Length() != 0 {
			t.Errorf("%s is shown for a listener that has no such setting", id)
		}
	}
	if _, checked := doc.Find(byTestID("auth-allow_anonymous")).Attr("checked"); checked {
		t.Error("allow anonymous is checked; the default is off")
	}
	// Every control has its label.
	doc.Find("main input, main select").Each(func(_ int, c *goquery.Selection) {
		id, _ := c.Attr("id")
		if doc.Find(`label[for="`+id+`"]`).Length() != 1 {
			t.Errorf("control %q has no label", id)
		}
	})
}

func TestSettingsLockedFieldsAreDisabledAndNotSent(t *testing.T) {
	e := newSettingsTestUI(t, `{"listeners": {"tcp": {"bind": "127.0.0.1:0"}, "ws": {}}, "sys": {"interval": "1s"}, "auth": {"chain": ["username"]}}`)
	doc := e.page()

	for _, id := range []string{"listeners-tcp-bind", "sys-interval", "auth-chain-0", "auth-chain-3", "listeners-ws-max_clients"} {
		c := doc.Find(byTestID(id))
		if _, disabled := c.Attr("disabled"); !disabled {
			t.Errorf("locked %s is not disabled", id)
		}
		if note := textOf(doc.Find(byTestID(id + "-locked"))); !strings.Contains(note, "set by the image (/etc/edgegate/edgegate.json)") {
			t.Errorf("locked %s note = %q", id, note)
		}
	}
	for _, id := range []string{"listeners-tcp-max_clients", "mqtt-receive_maximum", "auth-allow_anonymous"} {
		if _, disabled := doc.Find(byTestID(id)).Attr("disabled"); disabled {
			t.Errorf("%s is disabled but not locked", id)
		}
		if doc.Find(byTestID(id+"-locked")).Length() != 0 {
			t.Errorf("%s has a locked note", id)
		}
	}
	if _, disabled := doc.Find(byTestID("listener-form-ws-save")).Attr("disabled"); !disabled {
		t.Error("the ws form, all of it locked, can be saved")
	}
	if _, disabled := doc.Find(byTestID("listener-form-tcp-save")).Attr("disabled"); disabled {
		t.Error("the tcp form cannot be saved")
	}

	// A crafted post that changes locked settings changes only the rest.
	general := e.form("general-form")
	general.Set("sys.interval", "5s")
	general.Set("log.level", "debug")
	if flash := e.saved("/settings/general", general); flash != "Saved." {
		t.Fatalf("flash = %q", flash)
	}
	auth := e.form("auth-form")
	auth.Set("auth.chain[0]", "http")
	auth.Set("auth.allow_anonymous", "true")
	if flash := e.saved("/settings/auth", auth); flash != "Saved." {
		t.Fatalf("flash = %q", flash)
	}
	wantPatches := []string{`{"log":{"level":"debug"}}`, `{"auth":{"allow_anonymous":true}}`}
	if got := e.settings.applied(); !reflect.DeepEqual(got, wantPatches) {
		t.Errorf("patches = %q, want %q", got, wantPatches)
	}
}

func TestSettingsSaveSendsOnlyWhatChanged(t *testing.T) {
	tests := []struct {
		name   string
		action string
		form   string // testid of the form whose values are sent
		set    map[string]string
		unset  []string // checkboxes to clear
		patch  string
		flash  string
	}{
		{
			name: "max clients", action: "/settings/listeners/tcp", form: "listener-form-tcp",
			set:   map[string]string{"listeners.tcp.max_clients": "50"},
			patch: `{"listeners":{"tcp":{"max_clients":50}}}`, flash: "Saved.",
		},
		{
			name: "disable a listener", action: "/settings/listeners/ws", form: "listener-form-ws",
			set:   map[string]string{"listeners.ws.disabled": "true"},
			patch: `{"listeners":{"ws":{"disabled":true}}}`, flash: "Saved.",
		},
		{
			name: "certificate identity", action: "/settings/listeners/tls", form: "listener-form-tls",
			set: map[string]string{
				"listeners.tls.tls.client_auth": "required", "listeners.tls.tls.identity.username": "cn",
				"listeners.tls.tls.identity.clientid": "uri",
			},
			patch: `{"listeners":{"tls":{"tls":{"client_auth":"required","identity":{"clientid":"uri","username":"cn"}}}}}`,
			flash: "Saved.",
		},
		{
			name: "websocket path", action: "/settings/listeners/wss", form: "listener-form-wss",
			set:   map[string]string{"listeners.wss.path": "/ws"},
			patch: `{"listeners":{"wss":{"path":"/ws"}}}`, flash: "Saved.",
		},
		{
			name: "chain order", action: "/settings/auth", form: "auth-form",
			set:   map[string]string{"auth.chain[1]": "http", "auth.chain[3]": "", "auth.allow_anonymous": "true"},
			patch: `{"auth":{"allow_anonymous":true,"chain":["certificate","http","clientid","anonymous"]}}`,
			flash: "Saved.",
		},
		{
			name: "sys interval", action: "/settings/general", form: "general-form",
			set:   map[string]string{"sys.interval": "5s"},
			patch: `{"sys":{"interval":"5s"}}`, flash: "Saved. Takes effect at the next start: sys.",
		},
		{
			name: "limits", action: "/settings/general", form: "general-form",
			set:   map[string]string{"mqtt.max_packet_size": "65536", "mqtt.client_write_queue": "32", "memory.budget_bytes": "67108864"},
			unset: []string{"mqtt.retain_available"},
			patch: `{"memory":{"budget_bytes":67108864},"mqtt":{"client_write_queue":32,"max_packet_size":65536,"retain_available":false}}`,
			flash: "Saved. Takes effect at the next start: mqtt, session queue bound (mqtt.max_queued_bytes, memory.budget_bytes).",
		},
		{
			name: "log level applies at once", action: "/settings/general", form: "general-form",
			set:   map[string]string{"log.level": "debug"},
			patch: `{"log":{"level":"debug"}}`, flash: "Saved.",
		},
		{
			name: "vault sync", action: "/settings/general", form: "general-form",
			set: map[string]string{
				"trust.vault.address": "https://vault.example:8200", "trust.vault.cert_role": "gateways", "trust.auto_apply": "true",
			},
			patch: `{"trust":{"auto_apply":true,"vault":{"address":"https://vault.example:8200","cert_role":"gateways"}}}`, flash: "Saved.",
		},
		{
			name: "same duration written otherwise", action: "/settings/general", form: "general-form",
			set:   map[string]string{"sys.interval": "60s"},
			flash: "Nothing to save: no setting was changed.",
		},
		{
			name: "nothing changed", action: "/settings/listeners/tls", form: "listener-form-tls",
			flash: "Nothing to save: no setting was changed.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newSettingsTestUI(t, "")
			form := e.form(tt.form)
			for k, v := range tt.set {
				form.Set(k, v)
			}
			for _, k := range tt.unset {
				form.Del(k)
			}
			if flash := e.saved(tt.action, form); flash != tt.flash {
				t.Errorf("flash = %q, want %q", flash, tt.flash)
			}
			var want []string
			if tt.patch != "" {
				want = []string{tt.patch}
			}
			if got := e.settings.applied(); !reflect.DeepEqual(got, want) {
				t.Errorf("patches = %q, want %q", got, want)
			}
		})
	}
}

func TestSettingsInvalidInputShowsTheErrorNextToTheField(t *testing.T) {
	tests := []struct {
		name   string
		action string
		form   string
		set    map[string]string
		field  string // testid of the field that shows the problem
		want   string // in the problem
	}{
		{"max clients", "/settings/listeners/tcp", "listener-form-tcp",
			map[string]string{"listeners.tcp.max_clients": "-1"}, "listeners-tcp-max_clients", "Must be at least 1."},
		{"max clients not a number", "/settings/listeners/tcp", "listener-form-tcp",
			map[string]string{"listeners.tcp.max_clients": "many"}, "listeners-tcp-max_clients", "Enter a whole number."},
		{"bind", "/settings/listeners/tls", "listener-form-tls",
			map[string]string{"listeners.tls.bind": "nonsense"}, "listeners-tls-bind", "Must be host:port"},
		{"bind used by another listener", "/settings/listeners/tcp", "listener-form-tcp",
			map[string]string{"listeners.tcp.bind": ":8883"}, "listeners-tls-bind", `:8883 is already used by listener "tcp"`},
		{"client auth", "/settings/listeners/tls", "listener-form-tls",
			map[string]string{"listeners.tls.tls.client_auth": "always"}, "listeners-tls-tls-client_auth", "Must be none, optional or required."},
		{"identity without client certificates", "/settings/listeners/wss", "listener-form-wss",
			map[string]string{"listeners.wss.tls.identity.username": "cn"}, "listeners-wss-tls-identity-username", "Needs client_auth optional or required."},
		{"ws path", "/settings/listeners/ws", "listener-form-ws",
			map[string]string{"listeners.ws.path": "mqtt"}, "listeners-ws-path", "Must start with '/'."},
		{"sys interval", "/settings/general", "general-form",
			map[string]string{"sys.interval": "0s"}, "sys-interval", "Must be at least 1s."},
		{"vault over plain http", "/settings/general", "general-form",
			map[string]string{"trust.vault.address": "http://vault.example:8200"}, "trust-vault-address", "Must be an https URL"},
		{"sys interval not a duration", "/settings/general", "general-form",
			map[string]string{"sys.interval": "soon"}, "sys-interval", "Enter a duration"},
		{"receive maximum beyond its type", "/settings/general", "general-form",
			map[string]string{"mqtt.receive_maximum": "70000"}, "mqtt-receive_maximum", "Enter a whole number from 0 to 65535."},
		{"packet size", "/settings/general", "general-form",
			map[string]string{"mqtt.max_packet_size": "10"}, "mqtt-max_packet_size", "Must be between 64 bytes and 256 MiB."},
		{"memory budget", "/settings/general", "general-form",
			map[string]string{"memory.budget_bytes": "1000"}, "memory-budget_bytes", "or at least 16 MiB"},
		{"log level", "/settings/general", "general-form",
			map[string]string{"log.level": "loud"}, "log-level", "Must be debug, info, warn or error."},
		{"chain link twice", "/settings/auth", "auth-form",
			map[string]string{"auth.chain[1]": "", "auth.chain[2]": "certificate"}, "auth-chain-2", `"certificate" appears twice.`},
		{"empty chain", "/settings/auth", "auth-form",
			map[string]string{"auth.chain[0]": "", "auth.chain[1]": "", "auth.chain[2]": "", "auth.chain[3]": "", "auth.chain[4]": ""},
			"auth-chain-0", "Must list at least one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newSettingsTestUI(t, "")
			form := e.form(tt.form)
			for k, v := range tt.set {
				form.Set(k, v)
			}
			doc := parseHTML(t, e.post(tt.action, form, http.StatusUnprocessableEntity))
			if got := textOf(doc.Find(byTestID(tt.field + "-error"))); !strings.Contains(got, tt.want) {
				t.Errorf("%s error = %q, want it to say %q", tt.field, got, tt.want)
			}
			if v, _ := doc.Find(byTestID(tt.field)).Attr("aria-invalid"); v != "true" {
				t.Errorf("%s is not marked invalid", tt.field)
			}
			problems := doc.Find(byTestID("settings-problems"))
			if !strings.Contains(textOf(problems), tt.want) {
				t.Errorf("summary = %q", textOf(problems))
			}
			if href, _ := problems.Find("a").Attr("href"); href != "#"+tt.field {
				t.Errorf("summary links to %q, want #%s", href, tt.field)
			}
			if doc.Find(".field-error").Length() != 1 {
				t.Errorf("%d fields show errors, want 1", doc.Find(".field-error").Length())
			}
			if got := e.settings.applied(); len(got) != 0 {
				t.Errorf("saved %q", got)
			}
		})
	}
}

func TestSettingsInvalidKeepsWhatWasTyped(t *testing.T) {
	e := newSettingsTestUI(t, "")
	form := e.form("listener-form-tcp")
	form.Set("listeners.tcp.max_clients", "-1")
	form.Set("listeners.tcp.bind", "127.0.0.1:1999")
	doc := parseHTML(t, e.post("/settings/listeners/tcp", form, http.StatusUnprocessableEntity))
	if got := settingsValue(t, doc, "listeners-tcp-max_clients"); got != "-1" {
		t.Errorf("max clients shows %q, want what was typed", got)
	}
	if got := settingsValue(t, doc, "listeners-tcp-bind"); got != "127.0.0.1:1999" {
		t.Errorf("bind shows %q, want what was typed", got)
	}
	if got := e.settings.Effective().Config.Listeners["tcp"]; got.Bind != ":1883" || got.MaxClients != 10000 {
		t.Errorf("listener changed to %+v", got)
	}
}

func TestSettingsSavedButNotApplied(t *testing.T) {
	e := newSettingsTestUI(t, "")
	e.settings.applyErr = errors.New("listen tcp 127.0.0.1:1999: bind: address already in use")
	form := e.form("listener-form-tcp")
	form.Set("listeners.tcp.bind", "127.0.0.1:1999")
	flash := e.saved("/settings/listeners/tcp", form)
	if !strings.HasPrefix(flash, "Saved as version 1, but not all of it could be applied.") || strings.Contains(flash, "address already in use") {
		t.Errorf("flash = %q", flash)
	}
}

func TestSettingsUnknownListener(t *testing.T) {
	e := newSettingsTestUI(t, "")
	w := e.post("/settings/listeners/nope", url.Values{"listeners.nope.max_clients": {"5"}}, http.StatusNotFound)
	if !strings.Contains(w.Body.String(), "There is no listener named") {
		t.Errorf("body: %s", w.Body)
	}
	if got := e.settings.applied(); len(got) != 0 {
		t.Errorf("saved %q", got)
	}
}

func TestSettingsNeedsLogin(t *testing.T) {
	e := newSettingsTestUI(t, "")
	e.ui.sessions.delete(e.ss.id)
	w := e.do("POST", "/settings/general", url.Values{"log.level": {"debug"}})
	if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/login") {
		t.Errorf("status %d, location %q", w.Code, w.Header().Get("Location"))
	}
	if got := e.settings.applied(); len(got) != 0 {
		t.Errorf("saved %q", got)
	}
}

func TestSettingsFieldParse(t *testing.T) {
	tests := []struct {
		f    settingField
		in   string
		want any
		bad  bool
	}{
		{settingField{Kind: settingNumber, Bits: 64}, "-5", int64(-5), false},
		{settingField{Kind: settingNumber, Bits: 64}, "5.5", nil, true},
		{settingField{Kind: settingNumber, Bits: 32, Unsigned: true}, "4294967295", uint64(4294967295), false},
		{settingField{Kind: settingNumber, Bits: 32, Unsigned: true}, "-1", nil, true},
		{settingField{Kind: settingDuration}, "1m30s", config.Duration(90 * time.Second), false},
		{settingField{Kind: settingDuration}, "90", nil, true},
		{settingField{Kind: settingBool}, "true", true, false},
		{settingField{Kind: settingBool}, "", false, false},
		{settingField{Kind: settingText}, ":1883", ":1883", false},
	}
	for _, tt := range tests {
		got, problem := tt.f.parse(tt.in)
		if (problem != "") != tt.bad || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parse(%q) = %v, %q", tt.in, got, problem)
		}
	}
	for d, want := range map[time.Duration]string{time.Minute: "1m", 24 * time.Hour: "24h", 90 * time.Minute: "1h30m", 100 * time.Millisecond: "100ms", 0: "0s"} {
		if got := settingsDuration(d); got != want {
			t.Errorf("settingsDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestSettingsPatchIsJSONMergePatch(t *testing.T) {
	patch := map[string]any{}
	setSettingPath(patch, "listeners.tcp.max_clients", int64(5))
	setSettingPath(patch, "listeners.tcp.bind", ":1")
	b, err := json.Marshal(patch)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"listeners":{"tcp":{"bind":":1","max_clients":5}}}` {
		t.Errorf("patch = %s", b)
	}
}

// settingsValue is what a control shows: an input's value, a select's
// selected option.
func settingsValue(t *testing.T, doc *goquery.Document, id string) string {
	t.Helper()
	c := doc.Find(byTestID(id))
	if c.Length() != 1 {
		t.Fatalf("%d controls %q", c.Length(), id)
	}
	if goquery.NodeName(c) == "select" {
		v, _ := c.Find("option[selected]").Attr("value")
		return v
	}
	v, _ := c.Attr("value")
	return v
}
