package webui

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"github.com/edgegate/edgegate/gateway/acl"
	"github.com/edgegate/edgegate/gateway/admin"
	"github.com/edgegate/edgegate/gateway/auth"
)

// accessRuleForm returns the add-rule form's values.
func accessRuleValues(perm, kind, who, access, topics, position string) url.Values {
	return url.Values{
		"permission": {perm}, "who_kind": {kind}, "who": {who}, "access": {access},
		"topics": {topics}, "position": {position},
	}
}

func TestAccessPageShowsUsersRulesAndKeys(t *testing.T) {
	e := newAccessTestUI(t, accessEnvOptions{})
	if err := e.users.Add(auth.User{Username: "sensor-1", PasswordHash: ""}); err != nil {
		t.Fatal(err)
	}
	if err := e.users.Add(auth.User{Username: "root", Superuser: true}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.admin.CreateAPIKey("fleet sync", admin.ScopeCertificates); err != nil {
		t.Fatal(err)
	}
	doc := e.get("/access", http.StatusOK)

	if got := doc.Find(`[data-testid="nav-access"][aria-current="page"]`).Length(); got != 1 {
		t.Errorf("the Access navigation entry is not marked current")
	}
	rows := doc.Find(byTestID("user-row"))
	if rows.Length() != 2 {
		t.Fatalf("user rows: %d, want 2", rows.Length())
	}
	root := doc.Find(`[data-testid="user-row"][data-username="root"]`)
	if !strings.Contains(textOf(root), "superuser") {
		t.Errorf("root row %q does not say superuser", textOf(root))
	}
	if !strings.Contains(textOf(doc.Find(`[data-testid="user-row"][data-username="sensor-1"]`)), "no password") {
		t.Errorf("a user without a password is not marked")
	}
	if doc.Find(byTestID("user-add-form")).Length() != 1 {
		t.Error("no add-user form")
	}

	if doc.Find(byTestID("acl-default")).Length() != 1 {
		t.Error("no note that the built-in default rules apply")
	}
	got := accessRuleRows(doc)
	if len(got) != len(acl.DefaultRules()) {
		t.Fatalf("ACL rows: %d, want %d", len(got), len(acl.DefaultRules()))
	}
	if want := []string{"4", "deny", "all clients", "subscribe", "$SYS/# # (exactly)"}; !slices.Equal(got[3][:5], want) {
		t.Errorf("rule 4 cells %q, want %q", got[3][:5], want)
	}
	if want := []string{"2", "allow", "address 127.0.0.1", "publish, subscribe", "$SYS/# #"}; !slices.Equal(got[1][:5], want) {
		t.Errorf("rule 2 cells %q, want %q", got[1][:5], want)
	}
	if want := []string{"5", "allow", "all clients", "everything", "every topic, including $ topics"}; !slices.Equal(got[4][:5], want) {
		t.Errorf("rule 5 cells %q, want %q", got[4][:5], want)
	}
	first := doc.Find(`[data-testid="acl-rule"][data-rule="1"]`)
	if _, disabled := first.Find(byTestID("acl-up")).Attr("disabled"); !disabled {
		t.Error("the first rule's Up button is not disabled")
	}
	last := doc.Find(`[data-testid="acl-rule"][data-rule="5"]`)
	if _, disabled := last.Find(byTestID("acl-down")).Attr("disabled"); !disabled {
		t.Error("the last rule's Down button is not disabled")
	}
	if href, _ := last.Find(byTestID("acl-edit")).Attr("href"); href != "/access/acl/5/edit" {
		t.Errorf("edit link %q", href)
	}
	if v, _ := doc.Find(`[data-testid="acl-nomatch"] option[selected]`).Attr("value"); v != "allow" {
		t.Errorf("acl.nomatch shown as %q, want allow", v)
	}
	if doc.Find(byTestID("acl-add-form")).Length() != 1 || doc.Find(byTestID("acl-test-form")).Length() != 1 {
		t.Error("no add-rule or test form")
	}
	if doc.Find(byTestID("acl-use-default")).Length() != 0 {
		t.Error("a button to restore the default rules while they apply")
	}

	key := doc.Find(byTestID("apikey-row"))
	if key.Length() != 1 || !strings.Contains(textOf(key), "fleet sync") || !strings.Contains(textOf(key), "certificates") {
		t.Errorf("API key row %q", textOf(key))
	}
	if doc.Find(byTestID("apikey-secret")).Length() != 0 {
		t.Error("a secret is shown without a new key")
	}
	for _, s := range admin.Scopes {
		if doc.Find(byTestID("apikey-scope-"+s)).Length() != 1 {
			t.Errorf("no checkbox for scope %s", s)
		}
	}
	// Every control has a label.
	doc.Find("main input:not([type=hidden]), main select, main textarea").Each(func(_ int, s *goquery.Selection) {
		id, _ := s.Attr("id")
		if s.ParentsFiltered("label").Length() == 0 && (id == "" || doc.Find(`label[for="`+id+`"]`).Length() == 0) {
			name, _ := s.Attr("name")
			t.Errorf("control %q (id %q) has no label", name, id)
		}
	})
}

func TestAccessAddUser(t *testing.T) {
	e := newAccessTestUI(t, accessEnvOptions{})
	flash := e.postOK("/access/users", url.Values{"username": {" sensor-ui "}, "password": {"Sensor-Pass-1"}}, "/access#users")
	if flash != `MQTT user "sensor-ui" added.` {
		t.Errorf("flash %q", flash)
	}
	usr, err := e.users.Get("sensor-ui")
	if err != nil {
		t.Fatal(err)
	}
	if usr.Superuser || !auth.VerifyPassword(usr.PasswordHash, "Sensor-Pass-1") {
		t.Errorf("stored user %+v: superuser or password wrong", usr)
	}
	if !strings.HasPrefix(usr.PasswordHash, "pbkdf2-sha256$10000$") {
		t.Errorf("hash %q not made with the settings' hash and iterations", usr.PasswordHash)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "mqtt user added") || strings.Contains(logs, "Sensor-Pass-1") {
		t.Errorf("log does not record the new user, or shows its password:\n%s", logs)
	}

	e.postOK("/access/users", url.Values{"username": {"root"}, "password": {"Root-Pass-1"}, "superuser": {"1"}}, "/access#users")
	if usr, err := e.users.Get("root"); err != nil || !usr.Superuser {
		t.Errorf("root: %+v, %v; want a superuser", usr, err)
	}

	for _, tc := range []struct {
		name      string
		form      url.Values
		field     string
		wantError string
	}{
		{"empty username", url.Values{"username": {" "}, "password": {"x"}}, "user-username", "Enter a username."},
		{"empty password", url.Values{"username": {"new"}, "password": {""}}, "user-password", "Enter a password."},
		{"existing user", url.Values{"username": {"sensor-ui"}, "password": {"x"}}, "user-username", "There is a user with this name already."},
		{"control character", url.Values{"username": {"bad\x01name"}, "password": {"x"}}, "user-username", "Username contains a control character."},
		{"overlong", url.Values{"username": {strings.Repeat("u", 300)}, "password": {"x"}}, "user-username", "Username is longer than 256 bytes."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := e.post("/access/users", tc.form, http.StatusUnprocessableEntity)
			doc := parseHTML(t, w)
			if got := textOf(doc.Find(byTestID(tc.field + "-error"))); got != tc.wantError {
				t.Errorf("%s error %q, want %q", tc.field, got, tc.wantError)
			}
			if inv, _ := doc.Find("#" + tc.field).Attr("aria-invalid"); inv != "true" {
				t.Errorf("%s not marked invalid", tc.field)
			}
			if v, _ := doc.Find(byTestID("user-password")).Attr("value"); v != "" {
				t.Error("the password is echoed back")
			}
		})
	}
	if v, _ := parseHTML(t, e.post("/access/users", url.Values{"username": {"kept"}, "superuser": {"1"}}, 422)).
		Find(byTestID("user-username")).Attr("value"); v != "kept" {
		t.Errorf("the username typed is not kept: %q", v)
	}
	if list, _ := e.users.List(); len(list) != 2 {
		t.Errorf("%d users stored after refused adds, want 2", len(list))
	}
}

func TestAccessResetPassword(t *testing.T) {
	e := newAccessTestUI(t, accessEnvOptions{})
	if err := e.users.Add(auth.User{Username: "a/b c"}); err != nil {
		t.Fatal(err)
	}
	doc := e.get("/access", http.StatusOK)
	action, _ := doc.Find(`[data-testid="user-row"][data-username="a/b c"] [data-testid="user-reset-form"]`).Attr("action")
	if action != "/access/users/a%2Fb%20c/password" {
		t.Fatalf("reset form action %q", action)
	}
	flash := e.postOK(action, url.Values{"password": {"New-Pass-2"}}, "/access#users")
	if flash != `Password of MQTT user "a/b c" changed.` {
		t.Errorf("flash %q", flash)
	}
	if usr, _ := e.users.Get("a/b c"); !auth.VerifyPassword(usr.PasswordHash, "New-Pass-2") {
		t.Error("the new password does not verify")
	}

	w := e.post(action, url.Values{"password": {""}}, http.StatusUnprocessableEntity)
	doc = parseHTML(t, w)
	row := doc.Find(`[data-testid="user-row"][data-username="a/b c"]`)
	if _, open := row.Find("details").Attr("open"); !open {
		t.Error("the refused reset form is not open")
	}
	if got := textOf(row.Find(byTestID("reset-password-0-error"))); got != "Enter the new password." {
		t.Errorf("reset error %q", got)
	}
	if usr, _ := e.users.Get("a/b c"); !auth.VerifyPassword(usr.PasswordHash, "New-Pass-2") {
		t.Error("a refused reset changed the password")
	}

	e.post("/access/users/nobody/password", url.Values{"password": {"x"}}, http.StatusNotFound)
}

func TestAccessDeleteUser(t *testing.T) {
	e := newAccessTestUI(t, accessEnvOptions{})
	if err := e.users.Add(auth.User{Username: "old"}); err != nil {
		t.Fatal(err)
	}
	doc := e.get("/access", http.StatusOK)
	form := doc.Find(`[data-testid="user-row"][data-username="old"] [data-testid="user-delete"]`).Closest("form")
	action, _ := form.Attr("action")
	if confirm, _ := form.Attr("data-confirm"); !strings.Contains(confirm, "old") {
		t.Errorf("delete asks %q", confirm)
	}
	if flash := e.postOK(action, url.Values{}, "/access#users"); flash != `MQTT user "old" deleted.` {
		t.Errorf("flash %q", flash)
	}
	if _, err := e.users.Get("old"); err == nil {
		t.Error("user still stored")
	}
	e.post(action, url.Values{}, http.StatusNotFound)
	if doc := e.get("/access", http.StatusOK); doc.Find(byTestID("users-empty")).Length() != 1 {
		t.Error("no empty-list note")
	}
}

func TestAccessWithoutUserStore(t *testing.T) {
	e := newAccessTestUI(t, accessEnvOptions{noUsers: true})
	doc := e.get("/access", http.StatusOK)
	if doc.Find(byTestID("users-off")).Length() != 1 || doc.Find(byTestID("user-add-form")).Length() != 0 {
		t.Error("the page does not say the user store is off")
	}
	e.post("/access/users", url.Values{"username": {"x"}, "password": {"y"}}, http.StatusServiceUnavailable)
	e.post("/access/users/x/password", url.Values{"password": {"y"}}, http.StatusServiceUnavailable)
	e.post("/access/users/x/delete", url.Values{}, http.StatusServiceUnavailable)
}

func TestAccessAPIKeyShowsSecretOnce(t *testing.T) {
	e := newAccessTestUI(t, accessEnvOptions{})
	w := e.post("/access/apikeys", url.Values{"name": {"backup script"}, "scope": {admin.ScopeBroker}}, http.StatusSeeOther)
	loc := w.Header().Get("Location")
	if !strings.HasPrefix(loc, "/access?apikey=") || !strings.HasSuffix(loc, "#apikeys") {
		t.Fatalf("redirect to %q", loc)
	}
	keys, _ := e.admin.ListAPIKeys()
	if len(keys) != 1 || keys[0].Name != "backup script" || !slices.Equal(keys[0].Scopes, []string{admin.ScopeBroker}) {
		t.Fatalf("keys %+v", keys)
	}
	if strings.Contains(loc, keys[0].ID) {
		t.Error("the redirect names the key")
	}

	page := strings.TrimSuffix(loc, "#apikeys")
	doc := e.get(page, http.StatusOK)
	secret := doc.Find(byTestID("apikey-secret"))
	if secret.Length() != 1 || !secret.HasClass("secret") {
		t.Fatalf("no .secret element: %d", secret.Length())
	}
	if _, ok := e.admin.CheckAPIKey(keys[0].ID, textOf(secret)); !ok {
		t.Error("the secret shown does not authenticate the key")
	}
	if logs := e.logs.String(); !strings.Contains(logs, keys[0].ID) || strings.Contains(logs, textOf(secret)) {
		t.Errorf("log does not record the new key, or shows its secret:\n%s", logs)
	}
	if got := textOf(doc.Find(byTestID("flash"))); got != `API key "backup script" created.` {
		t.Errorf("flash %q", got)
	}
	if !strings.Contains(textOf(doc.Find(byTestID("apikey-new"))), keys[0].ID) {
		t.Error("the new key's id is not shown with its secret")
	}
	if doc := e.get(page, http.StatusOK); doc.Find(byTestID("apikey-secret")).Length() != 0 {
		t.Error("the secret is shown a second time")
	}

	for _, tc := range []struct {
		name  string
		form  url.Values
		field string
		want  string
	}{
		{"empty name", url.Values{"name": {"  "}}, "apikey-name", "Name is empty."},
		{"unknown scope", url.Values{"name": {"x"}, "scope": {"everything"}}, "apikey-scopes", "Choose among the scopes listed."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := parseHTML(t, e.post("/access/apikeys", tc.form, http.StatusUnprocessableEntity))
			if got := textOf(doc.Find(byTestID(tc.field + "-error"))); got != tc.want {
				t.Errorf("%s error %q, want %q", tc.field, got, tc.want)
			}
		})
	}
	if keys, _ := e.admin.ListAPIKeys(); len(keys) != 1 {
		t.Errorf("%d keys after refused creates, want 1", len(keys))
	}
}

func TestAccessDeleteAPIKey(t *testing.T) {
	e := newAccessTestUI(t, accessEnvOptions{})
	k, _, err := e.admin.CreateAPIKey("old")
	if err != nil {
		t.Fatal(err)
	}
	doc := e.get("/access", http.StatusOK)
	action, _ := doc.Find(`[data-testid="apikey-row"][data-id="` + k.ID + `"] form`).Attr("action")
	if flash := e.postOK(action, url.Values{}, "/access#apikeys"); flash != "API key "+k.ID+" revoked." {
		t.Errorf("flash %q", flash)
	}
	if keys, _ := e.admin.ListAPIKeys(); len(keys) != 0 {
		t.Errorf("keys left: %+v", keys)
	}
	e.post(action, url.Values{}, http.StatusNotFound)
}

func TestAccessAddRule(t *testing.T) {
	e := newAccessTestUI(t, accessEnvOptions{})
	flash := e.postOK("/access/acl", accessRuleValues("deny", "user", "sensor-ui", "publish", "ui/blocked\n", "1"), "/access#acl")
	if flash != `ACL rule 1 added: {deny, {user, "sensor-ui"}, publish, ["ui/blocked"]}.` {
		t.Errorf("flash %q", flash)
	}
	want := append([]string{`{deny, {user, "sensor-ui"}, publish, ["ui/blocked"]}`}, accessRuleStrings(acl.DefaultRules())...)
	if got := accessRuleStrings(storedRules(e.settings)); !slices.Equal(got, want) {
		t.Fatalf("stored rules\n%q\nwant\n%q", got, want)
	}
	if e.settings.authors[0] != author {
		t.Errorf("author %q", e.settings.authors[0])
	}

	// The default position is the end; exact topics, networks and the
	// rule for everything are written in the form's own way.
	doc := e.get("/access", http.StatusOK)
	if v, _ := doc.Find(byTestID("rule-position")).Attr("value"); v != "7" {
		t.Errorf("default position %q, want 7", v)
	}
	e.postOK("/access/acl", accessRuleValues("allow", "ipaddr", "10.0.0.0/8", "subscribe", "eq #\r\n sensors/%c/# \r\n", "7"), "/access#acl")
	all := accessRuleValues("deny", "clientid", "bad-device", "pubsub", "", "8")
	all.Set("all_topics", "1")
	e.postOK("/access/acl", all, "/access#acl")
	rules := storedRules(e.settings)
	if got := accessRuleStrings(rules[6:]); !slices.Equal(got, []string{
		`{allow, {ipaddr, "10.0.0.0/8"}, subscribe, [{eq, "#"}, "sensors/%c/#"]}`,
		`{deny, {clientid, "bad-device"}}`,
	}) {
		t.Errorf("rules 7 and 8: %q", got)
	}

	for _, tc := range []struct {
		name  string
		form  url.Values
		field string
		want  string
	}{
		{"no username", accessRuleValues("deny", "user", "", "publish", "a", "1"), "rule-who", "Enter the username."},
		{"no address", accessRuleValues("deny", "ipaddr", " ", "publish", "a", "1"), "rule-who", "Enter an IP address or a network such as 10.0.0.0/8."},
		{"name with all", accessRuleValues("deny", "all", "bob", "publish", "a", "1"), "rule-who", "A rule for all clients names nobody: clear this field, or choose whom the rule is for."},
		{"host bits", accessRuleValues("deny", "ipaddr", "10.0.0.1/8", "publish", "a", "1"), "rule-who", "The address 10.0.0.1/8 has host bits set; the network is 10.0.0.0/8."},
		{"not an address", accessRuleValues("deny", "ipaddr", "sensor", "publish", "a", "1"), "rule-who", `The address "sensor" is not an IP address or CIDR network.`},
		{"bad kind", accessRuleValues("deny", "group", "x", "publish", "a", "1"), "rule-who-kind", "Choose whom the rule is for."},
		{"bad permission", accessRuleValues("maybe", "user", "x", "publish", "a", "1"), "rule-permission", "Choose allow or deny."},
		{"bad access", accessRuleValues("deny", "user", "x", "read", "a", "1"), "rule-access", "Choose publish, subscribe or both."},
		{"bad filter", accessRuleValues("deny", "user", "x", "publish", "a\na/#/b", "1"), "rule-topics", `Topic filter "a/#/b": '#' must be the whole last level.`},
		{"partial placeholder", accessRuleValues("deny", "user", "x", "publish", "dev-%c/#", "1"), "rule-topics", `Topic filter "dev-%c/#": placeholder %u or %c must be a whole level.`},
		{"no topics", accessRuleValues("deny", "user", "x", "publish", "\n \n", "1"), "rule-topics", "Enter at least one topic filter, or tick “every topic”."},
		{"position 0", accessRuleValues("deny", "user", "x", "publish", "a", "0"), "rule-position", "Enter a position from 1 to 9."},
		{"position past the end", accessRuleValues("deny", "user", "x", "publish", "a", "10"), "rule-position", "Enter a position from 1 to 9."},
		{"all topics with topics", func() url.Values {
			v := accessRuleValues("deny", "user", "x", "pubsub", "a", "1")
			v.Set("all_topics", "1")
			return v
		}(), "rule-topics", "Leave the topics empty: the rule is for every topic."},
		{"all topics publish only", func() url.Values {
			v := accessRuleValues("deny", "user", "x", "publish", "", "1")
			v.Set("all_topics", "1")
			return v
		}(), "rule-access", "A rule for every topic covers publish and subscribe: choose both."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.settings.applied())
			doc := parseHTML(t, e.post("/access/acl", tc.form, http.StatusUnprocessableEntity))
			if got := textOf(doc.Find(byTestID(tc.field + "-error"))); got != tc.want {
				t.Errorf("%s error %q, want %q", tc.field, got, tc.want)
			}
			if len(e.settings.applied()) != before {
				t.Error("a refused rule changed the settings")
			}
			form := doc.Find(byTestID("acl-add-form"))
			if v, _ := form.Find(byTestID("rule-who")).Attr("value"); v != strings.TrimSpace(tc.form.Get("who")) {
				t.Errorf("who not kept: %q", v)
			}
			if got := form.Find(byTestID("rule-topics")).Text(); got != tc.form.Get("topics") {
				t.Errorf("topics not kept: %q", got)
			}
		})
	}
}

func TestAccessEditRule(t *testing.T) {
	e := newAccessTestUI(t, accessEnvOptions{})
	doc := e.get("/access/acl/4/edit", http.StatusOK)
	form := doc.Find(byTestID("acl-edit-form"))
	if action, _ := form.Attr("action"); action != "/access/acl/4" {
		t.Fatalf("edit form action %q", action)
	}
	if got := form.Find(byTestID("rule-topics")).Text(); got != "$SYS/#\neq #" {
		t.Errorf("topics %q", got)
	}
	for id, want := range map[string]string{"rule-permission": "deny", "rule-who-kind": "all", "rule-access": "subscribe"} {
		if v, _ := form.Find(byTestID(id) + " option[selected]").Attr("value"); v != want {
			t.Errorf("%s = %q, want %q", id, v, want)
		}
	}
	if form.Find(byTestID("rule-position")).Length() != 0 {
		t.Error("the edit form asks for a position")
	}
	rev, _ := form.Find(`input[name="rev"]`).Attr("value")
	if rev == "" {
		t.Fatal("no rev in the edit form")
	}
	// Rule 2 (the 127.0.0.1 address) is shown as a bare address.
	if v, _ := e.get("/access/acl/2/edit", http.StatusOK).Find(byTestID("rule-who")).Attr("value"); v != "127.0.0.1" {
		t.Errorf("rule 2 who %q", v)
	}

	edit := accessRuleValues("deny", "all", "", "subscribe", "$SYS/#\neq #\nprivate/#", "")
	edit.Set("rev", rev)
	if flash := e.postOK("/access/acl/4", edit, "/access#acl"); !strings.HasPrefix(flash, "ACL rule 4 saved: ") {
		t.Errorf("flash %q", flash)
	}
	if got := storedRules(e.settings)[3].String(); got != `{deny, all, subscribe, ["$SYS/#", {eq, "#"}, "private/#"]}` {
		t.Errorf("rule 4 now %s", got)
	}
	if len(storedRules(e.settings)) != 5 {
		t.Errorf("%d rules, want 5", len(storedRules(e.settings)))
	}

	// The old rev no longer matches: the post is refused, nothing changes.
	before := len(e.settings.applied())
	flash := e.postOK("/access/acl/4", edit, "/access#acl")
	if !strings.Contains(flash, "changed elsewhere") || len(e.settings.applied()) != before {
		t.Errorf("stale edit: flash %q, applied %d → %d", flash, before, len(e.settings.applied()))
	}

	bad := accessRuleValues("deny", "user", "", "subscribe", "x", "")
	bad.Set("rev", e.rev())
	doc = parseHTML(t, e.post("/access/acl/4", bad, http.StatusUnprocessableEntity))
	if got := textOf(doc.Find(byTestID("rule-who-error"))); got != "Enter the username." {
		t.Errorf("who error %q", got)
	}
	if doc.Find(byTestID("acl-edit-form")).Length() != 1 {
		t.Error("the refused edit is not shown on the edit page")
	}
	if got := textOf(doc.Find(byTestID("acl-edit-current"))); got != `{deny, all, subscribe, ["$SYS/#", {eq, "#"}, "private/#"]}` {
		t.Errorf("current rule shown as %q", got)
	}

	e.get("/access/acl/6/edit", http.StatusNotFound)
	e.get("/access/acl/x/edit", http.StatusNotFound)
	e.post("/access/acl/0", bad, http.StatusNotFound)
}

func TestAccessMoveAndDeleteRules(t *testing.T) {
	e := newAccessTestUI(t, accessEnvOptions{})
	def := accessRuleStrings(acl.DefaultRules())

	if flash := e.postOK("/access/acl/3/up", url.Values{"rev": {e.rev()}}, "/access#acl"); flash != "ACL rule 3 is now rule 2." {
		t.Errorf("flash %q", flash)
	}
	want := []string{def[0], def[2], def[1], def[3], def[4]}
	if got := accessRuleStrings(storedRules(e.settings)); !slices.Equal(got, want) {
		t.Fatalf("after up: %q", got)
	}
	e.postOK("/access/acl/1/down", url.Values{"rev": {e.rev()}}, "/access#acl")
	want = []string{def[2], def[0], def[1], def[3], def[4]}
	if got := accessRuleStrings(storedRules(e.settings)); !slices.Equal(got, want) {
		t.Fatalf("after down: %q", got)
	}
	e.post("/access/acl/1/up", url.Values{"rev": {e.rev()}}, http.StatusBadRequest)
	e.post("/access/acl/5/down", url.Values{"rev": {e.rev()}}, http.StatusBadRequest)
	e.post("/access/acl/6/up", url.Values{"rev": {e.rev()}}, http.StatusNotFound)

	// A row action from a page showing other rules changes nothing.
	before := len(e.settings.applied())
	if flash := e.postOK("/access/acl/2/delete", url.Values{"rev": {"stale"}}, "/access#acl"); !strings.Contains(flash, "changed elsewhere") {
		t.Errorf("stale delete flash %q", flash)
	}
	if len(e.settings.applied()) != before {
		t.Error("a stale delete changed the rules")
	}

	if flash := e.postOK("/access/acl/2/delete", url.Values{"rev": {e.rev()}}, "/access#acl"); flash != "ACL rule 2 deleted." {
		t.Errorf("flash %q", flash)
	}
	want = []string{def[2], def[1], def[3], def[4]}
	if got := accessRuleStrings(storedRules(e.settings)); !slices.Equal(got, want) {
		t.Fatalf("after delete: %q", got)
	}
	doc := e.get("/access", http.StatusOK)
	if doc.Find(byTestID("acl-default")).Length() != 0 || doc.Find(byTestID("acl-use-default")).Length() != 1 {
		t.Error("stored rules are shown as the defaults, or cannot be reset")
	}

	for range 3 {
		e.postOK("/access/acl/1/delete", url.Values{"rev": {e.rev()}}, "/access#acl")
	}
	flash := e.postOK("/access/acl/1/delete", url.Values{"rev": {e.rev()}}, "/access#acl")
	if !strings.Contains(flash, "built-in default rules apply") {
		t.Errorf("last delete flash %q", flash)
	}
	if rules := storedRules(e.settings); rules != nil {
		t.Errorf("rules stored after deleting all: %q", accessRuleStrings(rules))
	}
	if e.get("/access", http.StatusOK).Find(byTestID("acl-default")).Length() != 1 {
		t.Error("the defaults are not shown after deleting every rule")
	}

	e.postOK("/access/acl/5/delete", url.Values{"rev": {e.rev()}}, "/access#acl")
	if flash := e.postOK("/access/acl/default", url.Values{}, "/access#acl"); flash != "The built-in default ACL rules apply again." {
		t.Errorf("flash %q", flash)
	}
	if rules := storedRules(e.settings); rules != nil {
		t.Errorf("rules stored after restoring the defaults: %q", accessRuleStrings(rules))
	}
}

func TestAccessNoMatch(t *testing.T) {
	e := newAccessTestUI(t, accessEnvOptions{})
	if flash := e.postOK("/access/acl/nomatch", url.Values{"nomatch": {"deny"}}, "/access#acl"); flash != "When no rule matches, the gateway now answers deny." {
		t.Errorf("flash %q", flash)
	}
	if got := e.settings.Effective().Config.ACL.NoMatch; got != "deny" {
		t.Errorf("acl.nomatch %q", got)
	}
	if storedRules(e.settings) != nil {
		t.Error("changing acl.nomatch stored the rules")
	}
	doc := parseHTML(t, e.post("/access/acl/nomatch", url.Values{"nomatch": {"maybe"}}, http.StatusUnprocessableEntity))
	if got := textOf(doc.Find(byTestID("acl-nomatch-error"))); got != "Choose allow or deny." {
		t.Errorf("error %q", got)
	}
}

func TestAccessLockedRules(t *testing.T) {
	e := newAccessTestUI(t, accessEnvOptions{
		file: `{"acl": {"nomatch": "deny", "rules": [{"permission": "allow", "who": {"user": "plant"}, "access": "pubsub", "topics": ["plant/#"]}]}}`,
	})
	doc := e.get("/access", http.StatusOK)
	if doc.Find(byTestID("acl-locked")).Length() != 1 || doc.Find(byTestID("acl-nomatch-locked")).Length() != 1 {
		t.Error("no locked notes")
	}
	for _, id := range []string{"acl-add-form", "acl-up", "acl-down", "acl-edit", "acl-delete", "acl-nomatch-form", "acl-use-default", "acl-default"} {
		if doc.Find(byTestID(id)).Length() != 0 {
			t.Errorf("%s shown for locked rules", id)
		}
	}
	if got := accessRuleRows(doc); len(got) != 1 || !slices.Equal(got[0], []string{"1", "allow", "user plant", "publish, subscribe", "plant/#"}) {
		t.Errorf("rows %q", got)
	}
	if got := textOf(doc.Find(byTestID("acl-nomatch-value"))); !strings.Contains(got, "deny") {
		t.Errorf("nomatch shown as %q", got)
	}
	e.post("/access/acl", accessRuleValues("deny", "user", "x", "publish", "a", "1"), http.StatusConflict)
	e.post("/access/acl/1", accessRuleValues("deny", "user", "x", "publish", "a", ""), http.StatusConflict)
	e.post("/access/acl/1/delete", url.Values{}, http.StatusConflict)
	e.post("/access/acl/1/up", url.Values{}, http.StatusConflict)
	e.post("/access/acl/default", url.Values{}, http.StatusConflict)
	e.post("/access/acl/nomatch", url.Values{"nomatch": {"allow"}}, http.StatusConflict)
	e.get("/access/acl/1/edit", http.StatusConflict)
	if len(e.settings.applied()) != 0 {
		t.Error("locked settings were changed")
	}

	// The tester still works on locked rules.
	doc = e.get("/access?test=1&username=visitor&topic=plant/1&action=publish", http.StatusOK)
	if got := textOf(doc.Find(byTestID("acl-test-result"))); got != "No rule matches → acl.nomatch: deny." {
		t.Errorf("test result %q", got)
	}
}

func TestAccessTestBox(t *testing.T) {
	e := newAccessTestUI(t, accessEnvOptions{})
	doc := e.get("/access?test=1&username=alice&clientid=c1&ipaddr=192.0.2.7&topic=%23&action=subscribe", http.StatusOK)
	res := doc.Find(byTestID("acl-test-result"))
	if rule, _ := res.Attr("data-rule"); rule != "4" {
		t.Errorf("matching rule %q, want 4", rule)
	}
	if d, _ := res.Attr("data-decision"); d != "deny" {
		t.Errorf("decision %q", d)
	}
	if got := textOf(res); got != `Rule 4 matches: deny. {deny, all, subscribe, ["$SYS/#", {eq, "#"}]}` {
		t.Errorf("result %q", got)
	}
	row := doc.Find(`[data-testid="acl-rule"][data-rule="4"]`)
	if !row.HasClass("match") || row.Find(byTestID("acl-rule-match")).Length() != 1 {
		t.Error("the matching row is not highlighted")
	}
	if doc.Find("tr.match").Length() != 1 {
		t.Error("more than one row highlighted")
	}
	// The form keeps what was asked.
	if v, _ := doc.Find(byTestID("test-ipaddr")).Attr("value"); v != "192.0.2.7" {
		t.Errorf("ipaddr kept as %q", v)
	}
	if v, _ := doc.Find(byTestID("test-action") + " option[selected]").Attr("value"); v != "subscribe" {
		t.Errorf("action kept as %q", v)
	}

	// From 127.0.0.1 rule 2 decides; %u placeholders resolve.
	doc = e.get("/access?test=1&ipaddr=127.0.0.1&topic=%23&action=subscribe", http.StatusOK)
	if rule, _ := doc.Find(byTestID("acl-test-result")).Attr("data-rule"); rule != "2" {
		t.Errorf("from 127.0.0.1: rule %q, want 2", rule)
	}
	e.postOK("/access/acl", accessRuleValues("deny", "user", "sensor-ui", "publish", "ui/%u/x", "1"), "/access#acl")
	doc = e.get("/access?test=1&username=sensor-ui&topic=ui/sensor-ui/x&action=publish&ipaddr=127.0.0.1", http.StatusOK)
	if rule, _ := doc.Find(byTestID("acl-test-result")).Attr("data-rule"); rule != "1" {
		t.Errorf("placeholder rule: matched %q, want 1", rule)
	}

	// No match: acl.nomatch decides.
	e.post("/access/acl/6/delete", url.Values{"rev": {e.rev()}}, http.StatusSeeOther)
	doc = e.get("/access?test=1&username=bob&topic=a/b&action=publish", http.StatusOK)
	res = doc.Find(byTestID("acl-test-result"))
	if got := textOf(res); got != "No rule matches → acl.nomatch: allow." {
		t.Errorf("result %q", got)
	}
	if _, has := res.Attr("data-rule"); has || doc.Find("tr.match").Length() != 0 {
		t.Error("a rule is marked although none matches")
	}

	for _, tc := range []struct {
		query, field, want string
	}{
		{"topic=a/%2B&action=publish", "test-topic", `Topic name "a/+": wildcard '+' is not allowed in a topic name.`},
		{"topic=a/%23/b&action=subscribe", "test-topic", `Topic filter "a/#/b": '#' must be the whole last level.`},
		{"topic=&action=publish", "test-topic", "Topic name is empty."},
		{"topic=a&action=read", "test-action", "Choose publish or subscribe."},
		{"topic=a&action=publish&ipaddr=10.0.0.0/8", "test-ipaddr", "Enter an IP address such as 192.0.2.7, or leave it empty."},
	} {
		doc := e.get("/access?test=1&"+tc.query, http.StatusUnprocessableEntity)
		if got := textOf(doc.Find(byTestID(tc.field + "-error"))); got != tc.want {
			t.Errorf("%s: %s error %q, want %q", tc.query, tc.field, got, tc.want)
		}
		if doc.Find(byTestID("acl-test-result")).Length() != 0 {
			t.Errorf("%s: a result with an error", tc.query)
		}
	}
}
