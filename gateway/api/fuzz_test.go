package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edgegate/edgegate/certs"
	"github.com/edgegate/edgegate/gateway/acl"
	"github.com/edgegate/edgegate/gateway/broker"
)

// checkAnswer fails on a 500 or an error answer that is not our JSON.
func checkAnswer(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	if w.Code >= 500 {
		t.Fatalf("status %d: %s", w.Code, w.Body.String())
	}
	if w.Code >= 400 {
		var e Error
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Code == "" {
			t.Fatalf("status %d with a body that is not an error object: %q", w.Code, w.Body.String())
		}
	}
}

// checkPublished verifies that whatever reached the broker is publishable.
func checkPublished(t *testing.T, m broker.Message) {
	t.Helper()
	if err := acl.ValidTopicName(m.Topic); err != nil {
		t.Fatalf("published to an invalid topic: %v", err)
	}
	if m.QoS > 2 || m.From == "" {
		t.Fatalf("published %+v", m)
	}
}

// jsonRoutes are the routes FuzzAPIJSON feeds; the fuzzer picks one.
var jsonRoutes = []struct{ method, path string }{
	{"POST", "/api/v1/publish"},
	{"POST", "/api/v1/acl/check"},
	{"PUT", "/api/v1/acl"},
	{"POST", "/api/v1/traces"},
	{"PATCH", "/api/v1/settings"},
	{"PUT", "/api/v1/clientids/dev-1"},
}

// FuzzAPIJSON sends arbitrary JSON bodies to the routes that decode them:
// none may answer 500 or panic, and a publish that goes through must be
// valid.
func FuzzAPIJSON(f *testing.F) {
	for _, seed := range []struct {
		route int
		body  string
	}{
		{0, `{"topic":"x/y","payload":"hi","qos":2,"retain":true,"clientid":"ui"}`},
		{0, `{"topic":"x","payload":"AP8=","encoding":"base64"}`},
		{0, `{"topic":"x/#"}`},
		{0, `{"topic":"x","qos":"1"}`},
		{1, `{"username":"alice","clientid":"c1","ipaddr":"192.168.1.2","access":"publish","topic":"sensors/alice/t"}`},
		{1, `{"access":"subscribe","topic":"$share/g/#","ipaddr":"::ffff:10.0.0.1"}`},
		{2, `{"nomatch":"deny","rules":[{"permission":"allow","who":{"user":"alice"},"access":"publish","topics":["sensors/%u/#"]}]}`},
		{2, `{"nomatch":"allow","rules":[{"permission":"deny","who":"all","access":"subscribe","topics":[{"eq":"#"}]}]}`},
		{3, `{"kind":"topic","target":"a/#","name":"t"}`},
		{4, `{"log":{"level":"debug"}}`},
		{4, `{"listeners":{"tcp":null}}`},
		{5, `{"password":"x"}`},
		{0, "{\n  \"topic\": nope\n}"},
		{0, `{"topic":"a"} {}`},
	} {
		f.Add(seed.route, seed.body)
	}
	// The image file locks the password hash to its cheapest allowed cost,
	// so that neither a password route nor a settings patch switching to
	// bcrypt makes an input take milliseconds: fuzzing wants speed, and a
	// slow worker at the end of -fuzztime fails the run.
	e := newEnv(f, `{"auth":{"password_hash":"pbkdf2-sha256","pbkdf2_iterations":10000}}`)
	f.Fuzz(func(t *testing.T, route int, body string) {
		rt := jsonRoutes[uint(route)%uint(len(jsonRoutes))]
		w := e.do(e.local, req{method: rt.method, path: rt.path, body: body, remote: "@"})
		checkAnswer(t, w)
		if rt.path == "/api/v1/publish" && w.Code == http.StatusOK {
			m, _ := e.broker.lastPublished()
			checkPublished(t, m)
		}
	})
}

// FuzzPublishForm sends arbitrary form bodies to the EMQ publish endpoint.
func FuzzPublishForm(f *testing.F) {
	for _, seed := range []string{
		"qos=1&retain=0&topic=/a/b/c&message=hello from http...",
		"topic=t&message=x&retain=true&client=erp",
		"topic=a/%23&message=x",
		"topic=%FF",
		"topic=t&topic=u",
		"qos=3&topic=t",
		"topic=a%00b",
		"message=only",
		"%zz",
	} {
		f.Add(seed)
	}
	e := newEnv(f, "")
	f.Fuzz(func(t *testing.T, body string) {
		w := e.do(e.local, req{method: "POST", path: "/mqtt/publish", contentType: "application/x-www-form-urlencoded", body: body, remote: "@"})
		checkAnswer(t, w)
		switch w.Code {
		case http.StatusOK:
			m, _ := e.broker.lastPublished()
			checkPublished(t, m)
			if strings.TrimSpace(w.Body.String()) != `{"result":"ok"}` {
				t.Fatalf("body %q", w.Body.String())
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for form %q", w.Code, body)
		}
	})
}

// certificateRoutes are the routes FuzzCertificateAPI feeds.
var certificateRoutes = []struct{ method, path, contentType string }{
	{"POST", "/api/certificates", ""},
	{"PATCH", "/api/certificates/" + certs.ServerCertificateID, ""},
	{"PATCH", "/api/certificates/" + certs.ServerCertificateID, "application/json-patch+json"},
	{"POST", "/api/certificates/_import", ""},
	{"POST", "/api/certificates/" + certs.ServerCertificateID + "/_export", ""},
	{"POST", "/api/certificates/_renew", ""},
	{"POST", "/api/deployments/" + testDeploymentID + "/tls", ""},
}

// FuzzCertificateAPI sends arbitrary bodies to the certificate routes: none
// may answer 500 or panic, and the listeners keep a certificate to serve.
func FuzzCertificateAPI(f *testing.F) {
	p := newTestPair(f, "gw.example.com")
	for _, seed := range []struct {
		route int
		body  string
	}{
		{0, jsonBody(f, map[string]any{"chain": p.chain, "privateKey": p.key, "tags": []string{"a"}})},
		{0, `{"chain":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n","password":"x"}`},
		{1, `{"name":"n","metadata":{"k":"v"},"clientCA":true}`},
		{1, `{"chain":null,"id":"other"}`},
		{2, `[{"op":"replace","path":"/description","value":"d"}]`},
		{2, `[{"op":"move","from":"/tags","path":"/metadata/x"}]`},
		{3, `{"p12":"MIIB","password":"x"}`},
		{4, `{"format":"p12","legacy":true}`},
		{4, `{"format":"pem"}`},
		{5, `{"id":"nope"}`},
		{6, jsonBody(f, map[string]string{"tlsType": "one-way", "cert": p.chain, "key": p.key})},
	} {
		f.Add(seed.route, seed.body)
	}
	e := newEnv(f, "")
	f.Fuzz(func(t *testing.T, route int, body string) {
		rt := certificateRoutes[uint(route)%uint(len(certificateRoutes))]
		w := e.do(e.local, req{method: rt.method, path: rt.path, body: body, contentType: rt.contentType, remote: "@"})
		checkAnswer(t, w)
		if c, err := e.certs.Serving(); err != nil || !c.HasKey {
			t.Fatalf("the listeners lost their certificate: %+v %v", c, err)
		}
	})
}
