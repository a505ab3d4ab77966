package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDefaultsAreValid(t *testing.T) {
	if err := Defaults().Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

func TestLoadLayers(t *testing.T) {
	eff, err := Load(Layers{File: readTestdata(t, "valid.json"), FileName: "edgegate.json"})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	c := eff.Config
	if c.Node != "gw-01" {
		t.Errorf("node = %q", c.Node)
	}
	tcp := c.Listeners["tcp"]
	if tcp.Type != TypeTCP || tcp.Bind != "127.0.0.1:1883" || tcp.MaxClients != 50 {
		t.Errorf("tcp listener not merged over its default: %+v", tcp)
	}
	if _, ok := c.Listeners["ws"]; ok {
		t.Error("null did not delete the ws listener")
	}
	if c.Listeners["internal"].Bind != "127.0.0.1:11883" {
		t.Error("new listener missing")
	}
	tls := c.Listeners["tls"]
	if tls.Bind != ":8883" || tls.TLS.ClientAuth != ClientAuthRequired || tls.TLS.ClientCA != ClientCALocal || tls.TLS.Identity.Username != CertFieldCN {
		t.Errorf("tls listener merge: %+v %+v", tls, tls.TLS)
	}
	if c.Sys.Interval.Std() != 10*time.Second {
		t.Errorf("sys.interval = %v", c.Sys.Interval.Std())
	}
	for _, p := range []string{"node", "listeners.tcp.bind", "listeners.ws", "sys.interval"} {
		if !eff.IsLocked(p) {
			t.Errorf("%s should be locked; locked = %v", p, eff.Locked)
		}
	}
	if eff.IsLocked("api.bind") || eff.IsLocked("listeners.wss.bind") {
		t.Errorf("unrelated keys locked: %v", eff.Locked)
	}
}

func TestFileWinsOverStore(t *testing.T) {
	eff, err := Load(Layers{
		Store: []byte(`{"node":"from-store","sys":{"interval":"30s"}}`),
		File:  []byte(`{"node":"from-file"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if eff.Config.Node != "from-file" || eff.Config.Sys.Interval.Std() != 30*time.Second {
		t.Errorf("layering wrong: node %q interval %v", eff.Config.Node, eff.Config.Sys.Interval.Std())
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"unknown_key.json", []string{"edgegate.json", "4:", `unknown setting "max_clientz"`}},
		{"bad_type.json", []string{"edgegate.json", "3:", `sys.interval: expected a duration string such as "60s", got non-string`}},
		{"syntax.json", []string{"edgegate.json", "5:"}},
		{"invalid_values.json", []string{
			"listeners.tcp.bind: must be host:port",
			"listeners.tcp.max_clients: must be at least 1",
			"listeners.tls.tls.client_auth: must be none, optional or required",
			`auth.chain[1]: unknown link "ldap"`,
			`auth.chain[2]: "username" appears twice`,
			"auth.password_hash: must be",
			"acl.nomatch: must be allow or deny",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := Load(Layers{File: readTestdata(t, tt.file), FileName: "edgegate.json"})
			if err == nil {
				t.Fatal("Load accepted a bad file")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestValidateFieldErrors(t *testing.T) {
	c := Defaults()
	c.Node = ""
	c.Sys.Interval = Duration(time.Millisecond)
	err := c.Validate()
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("want *FieldError, got %v", err)
	}
	for _, p := range []string{"node:", "sys.interval:"} {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("missing %s in %v", p, err)
		}
	}
}

func TestDuplicateBind(t *testing.T) {
	c := Defaults()
	l := c.Listeners["ws"]
	l.Bind = ":1883"
	c.Listeners["ws"] = l
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("duplicate bind not refused: %v", err)
	}
}

func TestMergePatchAndPaths(t *testing.T) {
	out, err := MergePatch([]byte(`{"a":{"b":1,"c":2},"d":3}`), []byte(`{"a":{"b":null,"e":4},"d":5}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"a":{"c":2,"e":4},"d":5}` {
		t.Errorf("merge = %s", out)
	}
	got := strings.Join(PatchPaths([]byte(`{"listeners":{"tcp":{"bind":":1"}},"node":null}`)), ",")
	if got != "listeners.tcp.bind,node" {
		t.Errorf("paths = %s", got)
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"valid.json", "unknown_key.json", "bad_type.json", "syntax.json", "invalid_values.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"listeners":{"x":{"type":"ws","bind":":0","path":"/mqtt","max_clients":1}}}`))
	f.Fuzz(func(t *testing.T, src []byte) {
		eff, err := Load(Layers{File: src})
		if err != nil {
			return
		}
		// Whatever loads must validate and survive a second round trip.
		if err := eff.Config.Validate(); err != nil {
			t.Fatalf("loaded config does not validate: %v", err)
		}
	})
}

func TestMemoryBudget(t *testing.T) {
	c := Defaults()
	if c.MemoryLimit() != 0 || c.SessionQueueBytes() != c.MQTT.MaxQueuedBytes {
		t.Fatalf("no budget: limit %d, queue %d", c.MemoryLimit(), c.SessionQueueBytes())
	}
	clients := int64(0)
	for _, l := range c.Listeners {
		clients += int64(l.MaxClients)
	}
	c.Memory.BudgetBytes = 512 << 20
	if got, want := c.SessionQueueBytes(), int64(512<<20)/2/clients; got != want {
		t.Errorf("queue bytes = %d, want half the budget over %d clients = %d", got, clients, want)
	}
	if got := c.MemoryLimit(); got != (512<<20)/10*9 {
		t.Errorf("limit = %d", got)
	}
	c.Memory.BudgetBytes = 16 << 20
	if got := c.SessionQueueBytes(); got != minSessionQueueBytes {
		t.Errorf("tiny budget: queue bytes = %d, want the floor %d", got, minSessionQueueBytes)
	}
	c.Memory.BudgetBytes = 1 << 20
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "memory.budget_bytes") {
		t.Errorf("1 MiB budget accepted: %v", err)
	}
}

func TestValidateACME(t *testing.T) {
	le := "https://acme-v02.api.letsencrypt.org/directory"
	for _, tc := range []struct {
		name string
		acme ACME
		want string // "" = valid; else the field path in the error
	}{
		{"off", ACME{}, ""},
		{"http-01", ACME{DirectoryURL: le, Email: "ops@example.com", Challenges: []string{ChallengeHTTP01}}, ""},
		{"dns-01", ACME{DirectoryURL: le, Challenges: []string{ChallengeDNS01}, DNSProvider: "cloudflare", DNSCredentialsFile: "/etc/edgegate/dns.env"}, ""},
		{"plain http directory", ACME{DirectoryURL: "http://ca.example/dir", Challenges: []string{ChallengeHTTP01}}, "acme.directory_url"},
		{"bad email", ACME{DirectoryURL: le, Email: "nope", Challenges: []string{ChallengeHTTP01}}, "acme.email"},
		{"no challenge", ACME{DirectoryURL: le}, "acme.challenges"},
		{"unknown challenge", ACME{DirectoryURL: le, Challenges: []string{"dns-02"}}, "acme.challenges[0]"},
		{"unknown key type", ACME{DirectoryURL: le, Challenges: []string{ChallengeHTTP01}, KeyType: "dsa"}, "acme.key_type"},
		{"dns-01 without provider", ACME{DirectoryURL: le, Challenges: []string{ChallengeDNS01}}, "acme.dns_provider"},
		{"dns-01 without credentials", ACME{DirectoryURL: le, Challenges: []string{ChallengeDNS01}, DNSProvider: "exec"}, "acme.dns_credentials_file"},
		{"provider without dns-01", ACME{DirectoryURL: le, Challenges: []string{ChallengeHTTP01}, DNSProvider: "exec"}, "acme.dns_provider"},
	} {
		c := Defaults()
		c.ACME = tc.acme
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want+":")):
			t.Errorf("%s: error %v, want one about %s", tc.name, err, tc.want)
		}
	}
}

func TestValidateTrust(t *testing.T) {
	vault := func(edit func(v *Vault)) Trust {
		tr := Defaults().Trust
		tr.Vault.Address = "https://vault.example:8200"
		edit(&tr.Vault)
		return tr
	}
	for _, tc := range []struct {
		name  string
		trust Trust
		want  string // "" = valid; else the field path in the error
	}{
		{"off", Defaults().Trust, ""},
		{"cert auth", vault(func(*Vault) {}), ""},
		{"nested prefix", vault(func(v *Vault) { v.Prefix = "fleet/site-1/edgegate" }), ""},
		{"approle with credentials", vault(func(v *Vault) { v.AuthMethod = VaultAuthAppRole; v.CredentialsFile = "/etc/edgegate/vault.env" }), ""},
		{"no history", func() Trust { tr := Defaults().Trust; tr.History = 0; return tr }(), "trust.history"},
		{"plain http", vault(func(v *Vault) { v.Address = "http://vault.example:8200" }), "trust.vault.address"},
		{"address with path", vault(func(v *Vault) { v.Address = "https://vault.example/v1" }), "trust.vault.address"},
		{"dot-dot prefix", vault(func(v *Vault) { v.Prefix = "edgegate/../sys" }), "trust.vault.prefix"},
		{"empty mount", vault(func(v *Vault) { v.Mount = "" }), "trust.vault.mount"},
		{"bad auth mount", vault(func(v *Vault) { v.AuthMount = "/cert" }), "trust.vault.auth_mount"},
		{"no field", vault(func(v *Vault) { v.Field = "" }), "trust.vault.field"},
		{"unknown auth", vault(func(v *Vault) { v.AuthMethod = "ldap" }), "trust.vault.auth_method"},
		{"token without credentials", vault(func(v *Vault) { v.AuthMethod = VaultAuthToken }), "trust.vault.credentials_file"},
		{"poll too often", vault(func(v *Vault) { v.PollInterval = Duration(time.Second) }), "trust.vault.poll_interval"},
	} {
		c := Defaults()
		c.Trust = tc.trust
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want+":")):
			t.Errorf("%s: error %v, want one about %s", tc.name, err, tc.want)
		}
	}
}

func TestRestartOnly(t *testing.T) {
	old := Defaults()
	next := Defaults()
	next.Sys.Interval = Duration(time.Second)
	next.ACL.NoMatch = "deny"
	next.Trust.AutoApply = true
	next.Trust.History = 5
	if got := strings.Join(RestartOnly(old, next), ","); got != "sys,trust.history" {
		t.Errorf("RestartOnly = %q, want sys,trust.history (acl and trust.auto_apply apply live)", got)
	}
}

func TestFieldErrorsWalksJoinedAndWrapped(t *testing.T) {
	a := &FieldError{Path: "node", Problem: "bad"}
	b := &FieldError{Path: "sys.interval", Problem: "too short"}
	err := fmt.Errorf("save: %w", errors.Join(a, fmt.Errorf("apply: %w", b), errors.New("other")))
	got := FieldErrors(err)
	if len(got) != 2 || got[0] != a || got[1] != b {
		t.Fatalf("FieldErrors = %v; want both field errors in order", got)
	}
	if FieldErrors(nil) != nil {
		t.Fatal("FieldErrors(nil) is not empty")
	}
}
