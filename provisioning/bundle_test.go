package provisioning_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgegate/edgegate/provisioning"
)

// parseCases are bundles as written, good and bad; they seed FuzzParse.
var parseCases = []struct {
	name string
	data string
	// code is the refusal code; "" means the bundle parses.
	code string
	// msg is part of the refusal message.
	msg string
}{
	{name: "minimal", data: `{"version":1,"issued_at":"2026-11-20T09:00:00Z","expires_at":"2026-12-20T09:00:00Z","settings":{"node":"a"}}`},
	{name: "null settings", data: `{"version":1,"issued_at":"x","expires_at":"y","settings":null}`},
	{name: "empty", data: " \n", code: provisioning.CodeInvalid, msg: "empty"},
	{name: "not JSON", data: "version: 1", code: provisioning.CodeInvalid, msg: "line 1, column 1"},
	{name: "array", data: `[1]`, code: provisioning.CodeInvalid, msg: "line 1"},
	{name: "no version", data: `{"device":"*"}`, code: provisioning.CodeInvalid, msg: `no "version"`},
	{name: "newer version", data: `{"version":2,"new_part":{}}`, code: provisioning.CodeUnsupportedVersion, msg: "version 2"},
	{name: "unknown key", data: "{\"version\": 1,\n  \"issued_at\": \"\",\n  \"colour\": \"red\"}",
		code: provisioning.CodeInvalid, msg: `line 3, column 3: unknown key "colour"`},
	{name: "unknown setting", data: "{\"version\": 1,\n  \"settings\": {\n    \"sys\": {\"intervall\": \"10s\"}}}",
		code: provisioning.CodeInvalid, msg: `line 3, column 13: unknown key "intervall"`},
	{name: "setting of the wrong type", data: "{\"version\": 1,\n  \"settings\": {\"node\": 7}}",
		code: provisioning.CodeInvalid, msg: "line 2, column 25: settings.node: expected string"},
	{name: "bad duration", data: "{\"version\": 1,\n \"settings\": {\"sys\": {\"interval\": \"soon\"}}}",
		code: provisioning.CodeInvalid, msg: "line 2, column 23"},
	{name: "bad ACL rule", data: `{"version":1,"settings":{"acl":{"rules":[{"permission":"maybe"}]}}}`,
		code: provisioning.CodeInvalid, msg: "rule"},
	{name: "settings not an object", data: `{"version":1,"settings":[1]}`, code: provisioning.CodeInvalid, msg: "settings"},
	{name: "wrong type", data: `{"version":1,"api_keys":{"id":"x"}}`, code: provisioning.CodeInvalid, msg: "api_keys"},
	{name: "unknown key in a user", data: `{"version":1,"mqtt_users":[{"username":"a","password":"pw"}]}`,
		code: provisioning.CodeInvalid, msg: `unknown key "password"`},
	{name: "trailing data", data: `{"version":1} {}`, code: provisioning.CodeInvalid, msg: "line 1, column 15: invalid character '{' after top-level value"},
	{name: "truncated", data: `{"version":1,"device":"*"`, code: provisioning.CodeInvalid, msg: "line 1, column 25: unexpected end"},
	{name: "too large", data: `{"version":1,"device":"` + strings.Repeat("x", provisioning.MaxBundleBytes) + `"}`,
		code: provisioning.CodeTooLarge},
}

func refusal(t *testing.T, err error) *provisioning.Refusal {
	t.Helper()
	var r *provisioning.Refusal
	if !errors.As(err, &r) {
		t.Fatalf("error %v (%T) is not a *Refusal", err, err)
	}
	return r
}

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := provisioning.Parse([]byte(tc.data))
			if tc.code == "" {
				if err != nil || b == nil {
					t.Fatalf("Parse = %v", err)
				}
				return
			}
			r := refusal(t, err)
			if r.Code != tc.code || !strings.Contains(r.Message, tc.msg) {
				t.Fatalf("refused %s %q; want %s containing %q", r.Code, r.Message, tc.code, tc.msg)
			}
		})
	}
}

// TestParseKeepsSettingsBytes: the settings reach the settings service as
// written, and a null is no settings.
func TestParseKeepsSettingsBytes(t *testing.T) {
	t.Parallel()
	b, err := provisioning.Parse([]byte(`{"version":1,"settings": {"node" : "x"} }`))
	if err != nil {
		t.Fatal(err)
	}
	if string(b.Settings) != `{"node" : "x"}` {
		t.Fatalf("settings %s", b.Settings)
	}
	b, err = provisioning.Parse([]byte(`{"version":1,"settings":null}`))
	if err != nil || b.Settings != nil {
		t.Fatalf("null settings = %q, %v", b.Settings, err)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		doc    map[string]any
		device string
		code   string
		// problems are the paths of the expected problems.
		problems []string
		msg      string
	}{
		{name: "good", doc: goodDoc(), device: testDevice},
		{name: "for any device", doc: with(func(d map[string]any) { d["device"] = "*" }), device: ""},
		{name: "no device is any", doc: with(func(d map[string]any) { delete(d, "device") }), device: "other"},
		{name: "wrong device", doc: goodDoc(), device: "gw-0043", code: provisioning.CodeWrongDevice, msg: `for device "gw-0042"`},
		{name: "gateway without id", doc: goodDoc(), device: "", code: provisioning.CodeWrongDevice, msg: "no device id"},
		{name: "expired", doc: with(func(d map[string]any) { d["expires_at"] = "2026-11-23T11:59:59Z" }),
			device: testDevice, code: provisioning.CodeExpired, msg: "expired at 2026-11-23T11:59:59Z"},
		{name: "issued in the future is accepted", doc: with(func(d map[string]any) { d["issued_at"] = "2026-12-01T00:00:00+01:00" }), device: testDevice},
		{name: "times missing", doc: with(func(d map[string]any) { delete(d, "issued_at"); d["expires_at"] = "tomorrow" }),
			device: testDevice, code: provisioning.CodeInvalid, problems: []string{"issued_at", "expires_at"}},
		{name: "expires before issued", doc: with(func(d map[string]any) { d["expires_at"] = "2026-11-19T00:00:00Z" }),
			device: testDevice, code: provisioning.CodeInvalid, problems: []string{"expires_at"}},
		{name: "nothing to apply", doc: map[string]any{"version": 1, "issued_at": "2026-11-20T09:00:00Z", "expires_at": "2026-12-20T09:00:00Z", "settings": map[string]any{}},
			code: provisioning.CodeInvalid, msg: "nothing to apply"},
		{name: "every part invalid at once", device: testDevice, code: provisioning.CodeInvalid, doc: with(func(d map[string]any) {
			d["admin_password_hash"] = "pbkdf2-sha256$1000$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
			d["api_keys"] = []any{
				map[string]any{"id": "fleet", "name": "a", "secret_hash": apiSecretHash},
				map[string]any{"id": "egk_b", "name": "b", "secret_hash": "abc"},
				map[string]any{"id": "egk_c", "name": "c", "scopes": []string{"root"}, "secret_hash": apiSecretHash},
				map[string]any{"id": "egk_d", "name": "d", "secret_hash": apiSecretHash},
				map[string]any{"id": "egk_d", "name": "d again", "secret_hash": apiSecretHash},
			}
			d["mqtt_users"] = []any{
				map[string]any{"username": "", "password_hash": sensorHash()},
				map[string]any{"username": "p", "password_hash": map[string]any{"kind": "plain", "hash": "secret"}},
				map[string]any{"username": "q", "password_hash": map[string]any{"kind": "sha256", "hash": "zz"}},
				map[string]any{"username": "p2", "password_hash": map[string]any{"kind": "Salt Plain", "hash": "secret", "salt": "x"}},
				map[string]any{"username": "r\n"},
				map[string]any{"username": "s"},
				map[string]any{"username": "s"},
			}
			d["trust"] = []any{
				map[string]any{"certificate": newCert("leaf", false, now.Add(-time.Hour), now.Add(time.Hour))},
				map[string]any{"certificate": newCert("old CA", true, now.Add(-48*time.Hour), now.Add(-time.Hour))},
				map[string]any{"certificate": fleetCA + fleetCA},
				map[string]any{"certificate": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"},
				map[string]any{"certificate": "not PEM"},
				map[string]any{"certificate": fleetCA},
				map[string]any{"certificate": fleetCA},
			}
		}), problems: []string{
			"admin_password_hash",
			"api_keys[0]", "api_keys[1]", "api_keys[2]", "api_keys[4].id",
			"mqtt_users[0].username", "mqtt_users[1].password_hash", "mqtt_users[2].password_hash", "mqtt_users[3].password_hash",
			"mqtt_users[4].username", "mqtt_users[6].username",
			"trust[0].certificate", "trust[1].certificate", "trust[2].certificate", "trust[3].certificate",
			"trust[4].certificate", "trust[6].certificate",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := provisioning.Check(encode(t, tc.doc), now, tc.device)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("Check = %v", err)
				}
				if len(p.Parts()) == 0 || p.Key != "" {
					t.Fatalf("plan %+v", p)
				}
				return
			}
			r := refusal(t, err)
			if r.Code != tc.code || !strings.Contains(r.Message, tc.msg) {
				t.Fatalf("refused %s %q; want %s containing %q", r.Code, r.Message, tc.code, tc.msg)
			}
			if tc.problems != nil {
				var got []string
				for _, p := range r.Problems {
					got = append(got, p.Path)
				}
				if !reflect.DeepEqual(got, tc.problems) {
					t.Fatalf("problems %v\nwant %v\n(%s)", got, tc.problems, r.Message)
				}
			}
		})
	}
}

// TestCheckPlan: the plan holds every part in its stored form.
func TestCheckPlan(t *testing.T) {
	t.Parallel()
	data := encode(t, goodDoc())
	p, err := provisioning.Check(data, now, testDevice)
	if err != nil {
		t.Fatal(err)
	}
	if p.SHA256 != sha256Hex(string(data)) || !p.ExpiresAt.Equal(time.Date(2026, 12, 20, 9, 0, 0, 0, time.UTC)) {
		t.Fatalf("header %+v", p)
	}
	if !reflect.DeepEqual(p.SettingsPaths, []string{"node", "sys.interval"}) || p.AdminPasswordHash != adminHash {
		t.Fatalf("settings %v, admin hash %q", p.SettingsPaths, p.AdminPasswordHash)
	}
	if len(p.APIKeys) != 1 || p.APIKeys[0].Key.ID != "egk_fleet-monitor" || p.APIKeys[0].SecretHash != apiSecretHash {
		t.Fatalf("API keys %+v", p.APIKeys)
	}
	if len(p.MQTTUsers) != 2 || !strings.HasPrefix(p.MQTTUsers[0].PasswordHash, "sha256$prefix$") ||
		p.MQTTUsers[1].PasswordHash != "" || !p.MQTTUsers[1].Superuser {
		t.Fatalf("users %+v", p.MQTTUsers)
	}
	if len(p.Trust) != 1 || p.Trust[0].Name != "fleet devices" || !p.Trust[0].Cert.IsCA {
		t.Fatalf("trust %+v", p.Trust)
	}
	want := []string{`settings node, sys.interval`, "admin password", "API key egk_fleet-monitor",
		"MQTT users sensor, dashboard", `client CA "fleet devices"`}
	if got := p.Parts(); !reflect.DeepEqual(got, want) {
		t.Fatalf("parts %q\nwant %q", got, want)
	}
}

func TestOpenSignature(t *testing.T) {
	t.Parallel()
	fleet, other := newSigner(t), newSigner(t)
	data := encode(t, goodDoc())
	sig := provisioning.Sign(fleet.priv, data)
	tampered := bytes.Replace(data, []byte("plant-7"), []byte("plant-8"), 1)
	cases := []struct {
		name string
		data []byte
		sig  []byte
		keys []provisioning.PublicKey
		code string
		msg  string
	}{
		{name: "good", data: data, sig: sig, keys: []provisioning.PublicKey{fleet.pub}},
		{name: "second of two keys", data: data, sig: sig, keys: []provisioning.PublicKey{other.pub, fleet.pub}},
		{name: "tampered byte", data: tampered, sig: sig, keys: []provisioning.PublicKey{fleet.pub},
			code: provisioning.CodeBadSignature, msg: "does not verify"},
		{name: "one more space", data: append(bytes.Clone(data), ' '), sig: sig, keys: []provisioning.PublicKey{fleet.pub},
			code: provisioning.CodeBadSignature},
		{name: "wrong key", data: data, sig: sig, keys: []provisioning.PublicKey{other.pub}, code: provisioning.CodeBadSignature},
		{name: "unsigned", data: data, keys: []provisioning.PublicKey{fleet.pub}, code: provisioning.CodeUnsigned},
		{name: "base64 signature", data: data, sig: []byte(base64.StdEncoding.EncodeToString(sig) + "\n"),
			keys: []provisioning.PublicKey{fleet.pub}, code: provisioning.CodeBadSignature, msg: "not base64"},
		{name: "no trusted keys", data: data, sig: sig, code: provisioning.CodeNoKeys},
		{name: "signed but expired", data: encode(t, with(func(d map[string]any) { d["expires_at"] = "2026-11-21T00:00:00Z" })),
			keys: []provisioning.PublicKey{fleet.pub}, code: provisioning.CodeExpired},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sig := tc.sig
			if tc.name == "signed but expired" {
				sig = provisioning.Sign(fleet.priv, tc.data)
			}
			p, err := provisioning.Open(tc.data, sig, tc.keys, now, testDevice)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("Open = %v", err)
				}
				if p.Key != fleet.pub.Fingerprint() {
					t.Fatalf("key %q; want %q", p.Key, fleet.pub.Fingerprint())
				}
				return
			}
			r := refusal(t, err)
			if r.Code != tc.code || !strings.Contains(r.Message, tc.msg) {
				t.Fatalf("refused %s %q; want %s containing %q", r.Code, r.Message, tc.code, tc.msg)
			}
		})
	}
}

// FuzzParse: no input makes Parse or Check panic, and what Parse accepts
// Check either plans or refuses with a Refusal.
func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		if len(tc.data) <= provisioning.MaxBundleBytes {
			f.Add([]byte(tc.data))
		}
	}
	f.Add(encode(f, goodDoc()))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := provisioning.Parse(data); err != nil {
			var r *provisioning.Refusal
			if !errors.As(err, &r) || r.Code == "" || r.Message == "" {
				t.Fatalf("Parse error %v is not a Refusal with code and message", err)
			}
			return
		}
		p, err := provisioning.Check(data, now, testDevice)
		var r *provisioning.Refusal
		if err != nil && !errors.As(err, &r) {
			t.Fatalf("Check error %v is not a Refusal", err)
		}
		if err == nil && len(p.Parts()) == 0 {
			t.Fatal("Check accepted a bundle with nothing to apply")
		}
	})
}
