package webui

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/edgegate/edgegate/gateway/broker"
	"github.com/edgegate/edgegate/gateway/broker/sys"
)

// settingsFakeBroker runs the listeners it is given. Other methods are not
// faked (the embedded nil interface panics).
type settingsFakeBroker struct {
	Broker
	listeners []broker.ListenerStatus
}

func (b *settingsFakeBroker) Listeners() []broker.ListenerStatus                { return b.listeners }
func (*settingsFakeBroker) Stats() sys.Stats                                    { return sys.Stats{} }
func (*settingsFakeBroker) WatchClients(func(broker.ClientEvent)) (stop func()) { return func() {} }

// settingsFakeAdmin has completed setup. Other methods are not faked.
type settingsFakeAdmin struct{ Admin }

func (settingsFakeAdmin) SetupDone() (bool, error) { return true, nil }

// settingsEnv is a UI on fakes with a logged-in session.
type settingsEnv struct {
	t        *testing.T
	ui       *UI
	ss       *session
	settings *fakeStoredSettings
}

// settingsImageFile is the settings file name the tests' UI shows.
const settingsImageFile = "/etc/edgegate/edgegate.json"

// newSettingsTestUI builds the UI over settings with the image file file
// (a JSON merge patch, "" for none) and a broker running listeners.
func newSettingsTestUI(t *testing.T, file string, listeners ...broker.ListenerStatus) *settingsEnv {
	t.Helper()
	s := newFakeStoredSettings(t, "", file)
	u := New(Options{
		Admin: settingsFakeAdmin{}, Broker: &settingsFakeBroker{listeners: listeners}, Settings: s,
		SettingsFile: settingsImageFile, Version: "test",
	})
	t.Cleanup(u.Close)
	return &settingsEnv{t: t, ui: u, ss: u.sessions.create(), settings: s}
}

func (e *settingsEnv) do(method, target string, form url.Values) *httptest.ResponseRecorder {
	return serveSession(e.ui, e.ss, method, target, form)
}

// page gets the settings page.
func (e *settingsEnv) page() *goquery.Document {
	e.t.Helper()
	w := e.do("GET", "/settings", nil)
	if w.Code != http.StatusOK {
		e.t.Fatalf("GET /settings: status %d: %s", w.Code, w.Body)
	}
	return parseHTML(e.t, w)
}

// post sends a form and wants status want.
func (e *settingsEnv) post(target string, form url.Values, want int) *httptest.ResponseRecorder {
	e.t.Helper()
	w := e.do("POST", target, form)
	if w.Code != want {
		e.t.Fatalf("POST %s: status %d, want %d: %s", target, w.Code, want, w.Body)
	}
	return w
}

// saved posts a form that must succeed and returns the flash the settings
// page then shows.
func (e *settingsEnv) saved(target string, form url.Values) string {
	e.t.Helper()
	w := e.post(target, form, http.StatusSeeOther)
	if loc := w.Header().Get("Location"); loc != "/settings" {
		e.t.Fatalf("POST %s: redirect to %q, want /settings", target, loc)
	}
	return textOf(e.page().Find(byTestID("flash")))
}

// form is the settings page's form testid with its values as the browser
// would send them: the enabled controls, checkboxes only when checked.
func (e *settingsEnv) form(testid string) url.Values {
	e.t.Helper()
	sel := e.page().Find(byTestID(testid))
	if sel.Length() != 1 {
		e.t.Fatalf("no form %q on the settings page", testid)
	}
	v := url.Values{}
	sel.Find("input, select").Each(func(_ int, c *goquery.Selection) {
		name, _ := c.Attr("name")
		if _, disabled := c.Attr("disabled"); disabled || name == "" {
			return
		}
		if goquery.NodeName(c) == "select" {
			val, _ := c.Find("option[selected]").Attr("value")
			v.Set(name, val)
			return
		}
		if t, _ := c.Attr("type"); t == "checkbox" {
			if _, checked := c.Attr("checked"); !checked {
				return
			}
		}
		val, _ := c.Attr("value")
		v.Set(name, val)
	})
	return v
}
