package webui

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/edgegate/edgegate/gateway/acl"
	"github.com/edgegate/edgegate/gateway/admin"
	"github.com/edgegate/edgegate/gateway/auth"
	"github.com/edgegate/edgegate/gateway/config"
)

func (u *UI) accessRoutes() {
	u.authed("GET /access", u.access)
	u.authed("POST /access/users", u.accessAddUser)
	u.authed("POST /access/users/{username}/password", u.accessResetPassword)
	u.authed("POST /access/users/{username}/delete", u.accessDeleteUser)
	u.authed("POST /access/apikeys", u.accessCreateAPIKey)
	u.authed("POST /access/apikeys/{id}/delete", u.accessDeleteAPIKey)
	u.authed("POST /access/acl", u.accessAddRule)
	u.authed("POST /access/acl/nomatch", u.accessSetNoMatch)
	u.authed("POST /access/acl/default", u.accessUseDefaultRules)
	u.authed("GET /access/acl/{n}/edit", u.accessEditRule)
	u.authed("POST /access/acl/{n}", u.accessSaveRule)
	u.authed("POST /access/acl/{n}/up", u.accessMoveRule(-1))
	u.authed("POST /access/acl/{n}/down", u.accessMoveRule(+1))
	u.authed("POST /access/acl/{n}/delete", u.accessDeleteRule)
}

// accessView is the Access page: MQTT users, the ACL and API keys.
type accessView struct {
	Loc      *time.Location
	UsersOff bool // the gateway runs without a user store
	Users    []auth.User
	UserForm accessUserForm
	Reset    accessResetForm
	Keys     []admin.APIKey
	NewKey   *accessNewKey
	KeyForm  accessKeyForm
	ACL      accessACL
	RuleForm accessRuleForm
	Test     accessTest
}

type accessUserForm struct {
	Username  string
	Superuser bool
	Errors    map[string]string
}

// accessResetForm is a refused password reset, shown open in its row.
type accessResetForm struct {
	Username, Error string
}

type accessKeyForm struct {
	Name   string
	Scopes []string
	Errors map[string]string
}

// accessNewKey is a key just created, with the secret shown this once.
type accessNewKey struct {
	ID, Name, Secret string
}

// accessACL is the rule list in force and what may be changed.
type accessACL struct {
	Rules []acl.Rule
	// Default is true when no rules are stored and acl.DefaultRules apply.
	Default bool
	// Locked and NoMatchLocked are set when the image's settings file
	// fixes acl.rules or acl.nomatch.
	Locked, NoMatchLocked bool
	NoMatch               string
	NoMatchError          string
	// Rev fingerprints Rules: a row action posted from a page showing other
	// rules (changed meanwhile from another browser or the API) would move
	// or delete the wrong rule, so it is refused.
	Rev string
}

// accessRuleForm is the add or edit form of one rule, as typed.
type accessRuleForm struct {
	N          int // the rule edited, from 1; 0 for a new rule
	Permission string
	WhoKind    string // all, user, clientid, ipaddr
	Who        string
	Access     string
	Topics     string // one filter per line; "eq <topic>" for an exact topic
	AllTopics  bool
	Position   string // where a new rule goes, from 1
	MaxPos     int
	Rev        string
	Errors     map[string]string
}

// accessTest is the "test this rule set" box and its answer.
type accessTest struct {
	Run                                       bool
	Username, ClientID, IPAddr, Topic, Action string
	Errors                                    map[string]string
	Matched                                   bool
	Rule                                      int // the matching rule, from 1
	RuleText                                  string
	Decision                                  string
}

// accessSecretType marks the session's one-time store entry that carries a
// new API key's secret from the create post to the page after it, so the
// secret is shown exactly once and not on a reload.
const accessSecretType = "application/x-edgegate-apikey-secret"

// errAccessNoUsers answers user actions on a gateway without a user store.
var errAccessNoUsers = userError(http.StatusServiceUnavailable, "The MQTT user store is not available on this gateway.")

// accessRules returns the rules in force: the stored ones or the defaults.
func accessRules(c config.ACL) (acl.Rules, bool) {
	if len(c.Rules) == 0 {
		return acl.DefaultRules(), true
	}
	return slices.Clone(c.Rules), false
}

// accessRev fingerprints a rule list (see accessACL.Rev).
func accessRev(rules acl.Rules) string {
	b, err := json.Marshal(rules)
	if err != nil {
		return "" // the rules in force are always valid
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// accessData gathers everything the Access page shows.
func (u *UI) accessData() (accessView, error) {
	v := accessView{
		Loc: u.location(), UsersOff: u.o.Users == nil,
		UserForm: accessUserForm{Errors: map[string]string{}},
		KeyForm:  accessKeyForm{Errors: map[string]string{}},
		Test:     accessTest{Action: "publish", Errors: map[string]string{}},
	}
	if u.o.Users != nil {
		users, err := u.o.Users.List()
		if err != nil {
			return v, fmt.Errorf("list mqtt users: %w", err)
		}
		v.Users = users
	}
	keys, err := u.o.Admin.ListAPIKeys()
	if err != nil {
		return v, fmt.Errorf("list api keys: %w", err)
	}
	v.Keys = keys
	eff := u.o.Settings.Effective()
	rules, def := accessRules(eff.Config.ACL)
	v.ACL = accessACL{
		Rules: rules, Default: def, NoMatch: eff.Config.ACL.NoMatch, Rev: accessRev(rules),
		Locked: eff.IsLocked("acl.rules"), NoMatchLocked: eff.IsLocked("acl.nomatch"),
	}
	v.RuleForm = accessRuleForm{
		Permission: "allow", WhoKind: "user", Access: "pubsub", MaxPos: len(rules) + 1,
		Position: strconv.Itoa(len(rules) + 1), Errors: map[string]string{},
	}
	return v, nil
}

func (u *UI) renderAccess(w http.ResponseWriter, r *http.Request, ss *session, status int, v accessView) error {
	u.renderStatus(w, r, ss, status, u.page(ss, "Access", "access"), accessPage(v))
	return nil
}

func (u *UI) access(w http.ResponseWriter, r *http.Request, ss *session) error {
	v, err := u.accessData()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if token := q.Get("apikey"); token != "" {
		if d, ok := u.sessions.takeDownload(ss, token); ok && d.contentType == accessSecretType {
			v.NewKey = &accessNewKey{ID: d.name, Secret: string(d.data)}
			for _, k := range v.Keys {
				if k.ID == d.name {
					v.NewKey.Name = k.Name
				}
			}
		}
	}
	status := http.StatusOK
	if q.Get("test") != "" {
		v.Test = accessRunTest(q, v.ACL.Rules, v.ACL.NoMatch)
		if len(v.Test.Errors) > 0 {
			status = http.StatusUnprocessableEntity
		}
	}
	return u.renderAccess(w, r, ss, status, v)
}

// accessRunTest answers which rule decides the request in q. Like the
// API's /acl/check it tests the rules only: superusers and the HTTP
// backend are not consulted.
func accessRunTest(q url.Values, rules acl.Rules, noMatch string) accessTest {
	t := accessTest{
		Run: true, Username: q.Get("username"), ClientID: q.Get("clientid"), IPAddr: strings.TrimSpace(q.Get("ipaddr")),
		Topic: q.Get("topic"), Action: q.Get("action"), Errors: map[string]string{},
	}
	var access acl.Access
	switch t.Action {
	case "publish":
		access = acl.Publish
		if err := acl.ValidTopicName(t.Topic); err != nil {
			t.Errors["test-topic"] = accessSentence(err.Error())
		}
	case "subscribe":
		access = acl.Subscribe
		if err := acl.ValidFilter(t.Topic); err != nil {
			t.Errors["test-topic"] = accessSentence(err.Error())
		}
	default:
		t.Errors["test-action"] = "Choose publish or subscribe."
	}
	var addr netip.Addr
	if t.IPAddr != "" {
		var err error
		if addr, err = netip.ParseAddr(t.IPAddr); err != nil {
			t.Errors["test-ipaddr"] = "Enter an IP address such as 192.0.2.7, or leave it empty."
		}
	}
	if len(t.Errors) > 0 {
		return t
	}
	i, perm, ok := rules.Match(acl.Request{Username: t.Username, ClientID: t.ClientID, Addr: addr, Access: access, Topic: t.Topic})
	t.Matched, t.Decision = ok, noMatch
	if ok {
		t.Rule, t.RuleText, t.Decision = i+1, rules[i].String(), perm.String()
	}
	return t
}

// accessHash hashes a new MQTT password as the settings say.
func (u *UI) accessHash(password string) (string, error) {
	c := u.o.Settings.Effective().Config.Auth
	return auth.NewHash(c.PasswordHash, password, c.PBKDF2Iterations)
}

func (u *UI) accessAddUser(w http.ResponseWriter, r *http.Request, ss *session) error {
	if u.o.Users == nil {
		return errAccessNoUsers
	}
	// Surrounding spaces in a typed username are a slip, never meant.
	f := accessUserForm{
		Username: strings.TrimSpace(r.PostFormValue("username")), Superuser: r.PostFormValue("superuser") != "",
		Errors: map[string]string{},
	}
	password := r.PostFormValue("password")
	if f.Username == "" {
		f.Errors["user-username"] = "Enter a username."
	}
	if password == "" {
		f.Errors["user-password"] = "Enter a password."
	}
	if len(f.Errors) == 0 {
		h, err := u.accessHash(password)
		if errors.Is(err, auth.ErrInvalidPassword) {
			f.Errors["user-password"] = accessReason(err, auth.ErrInvalidPassword)
		} else if err != nil {
			return fmt.Errorf("hash mqtt password: %w", err)
		} else {
			err = u.o.Users.Add(auth.User{Username: f.Username, PasswordHash: h, Superuser: f.Superuser})
			switch {
			case errors.Is(err, auth.ErrUserExists):
				f.Errors["user-username"] = "There is a user with this name already."
			case errors.Is(err, auth.ErrInvalidName):
				f.Errors["user-username"] = accessReason(err, auth.ErrInvalidName)
			case err != nil:
				return fmt.Errorf("add mqtt user: %w", err)
			}
		}
	}
	if len(f.Errors) > 0 {
		v, err := u.accessData()
		if err != nil {
			return err
		}
		v.UserForm = f
		return u.renderAccess(w, r, ss, http.StatusUnprocessableEntity, v)
	}
	u.log.Info("mqtt user added", "username", f.Username, "superuser", f.Superuser, "by", author)
	return u.redirect(w, r, ss, "/access#users", fmt.Sprintf("MQTT user %q added.", f.Username))
}

func (u *UI) accessResetPassword(w http.ResponseWriter, r *http.Request, ss *session) error {
	if u.o.Users == nil {
		return errAccessNoUsers
	}
	name := r.PathValue("username")
	if _, err := u.o.Users.Get(name); errors.Is(err, auth.ErrUserNotFound) {
		return userError(http.StatusNotFound, "There is no MQTT user %q.", name)
	} else if err != nil {
		return fmt.Errorf("get mqtt user: %w", err)
	}
	password := r.PostFormValue("password")
	problem := ""
	if password == "" {
		problem = "Enter the new password."
	} else {
		h, err := u.accessHash(password)
		switch {
		case errors.Is(err, auth.ErrInvalidPassword):
			problem = accessReason(err, auth.ErrInvalidPassword)
		case err != nil:
			return fmt.Errorf("hash mqtt password: %w", err)
		default:
			err := u.o.Users.SetPassword(name, h)
			if errors.Is(err, auth.ErrUserNotFound) {
				return userError(http.StatusNotFound, "There is no MQTT user %q.", name)
			} else if err != nil {
				return fmt.Errorf("set mqtt password: %w", err)
			}
		}
	}
	if problem != "" {
		v, err := u.accessData()
		if err != nil {
			return err
		}
		v.Reset = accessResetForm{Username: name, Error: problem}
		return u.renderAccess(w, r, ss, http.StatusUnprocessableEntity, v)
	}
	u.log.Info("mqtt user password changed", "username", name, "by", author)
	return u.redirect(w, r, ss, "/access#users", fmt.Sprintf("Password of MQTT user %q changed.", name))
}

func (u *UI) accessDeleteUser(w http.ResponseWriter, r *http.Request, ss *session) error {
	if u.o.Users == nil {
		return errAccessNoUsers
	}
	name := r.PathValue("username")
	err := u.o.Users.Delete(name)
	if errors.Is(err, auth.ErrUserNotFound) {
		return userError(http.StatusNotFound, "There is no MQTT user %q.", name)
	} else if err != nil {
		return fmt.Errorf("delete mqtt user: %w", err)
	}
	u.log.Info("mqtt user deleted", "username", name, "by", author)
	return u.redirect(w, r, ss, "/access#users", fmt.Sprintf("MQTT user %q deleted.", name))
}

func (u *UI) accessCreateAPIKey(w http.ResponseWriter, r *http.Request, ss *session) error {
	if err := r.ParseForm(); err != nil {
		return userError(http.StatusBadRequest, "The form could not be read.")
	}
	f := accessKeyForm{Name: strings.TrimSpace(r.PostForm.Get("name")), Scopes: r.PostForm["scope"], Errors: map[string]string{}}
	key, secret, err := u.o.Admin.CreateAPIKey(f.Name, f.Scopes...)
	switch {
	case errors.Is(err, admin.ErrInvalidAPIKeyName):
		f.Errors["apikey-name"] = accessReason(err, admin.ErrInvalidAPIKeyName)
	case errors.Is(err, admin.ErrInvalidScope):
		f.Errors["apikey-scopes"] = "Choose among the scopes listed."
	case err != nil:
		return fmt.Errorf("create api key: %w", err)
	}
	if len(f.Errors) > 0 {
		v, err := u.accessData()
		if err != nil {
			return err
		}
		v.KeyForm = f
		return u.renderAccess(w, r, ss, http.StatusUnprocessableEntity, v)
	}
	u.log.Info("api key created", "id", key.ID, "name", key.Name, "scopes", key.Scopes, "by", author)
	token := u.sessions.addDownload(ss, download{name: key.ID, contentType: accessSecretType, data: []byte(secret)})
	return u.redirect(w, r, ss, "/access?apikey="+url.QueryEscape(token)+"#apikeys",
		fmt.Sprintf("API key %q created.", key.Name))
}

func (u *UI) accessDeleteAPIKey(w http.ResponseWriter, r *http.Request, ss *session) error {
	id := r.PathValue("id")
	err := u.o.Admin.DeleteAPIKey(id)
	if errors.Is(err, admin.ErrAPIKeyNotFound) {
		return userError(http.StatusNotFound, "There is no API key %q.", id)
	} else if err != nil {
		return fmt.Errorf("delete api key: %w", err)
	}
	u.log.Info("api key deleted", "id", id, "by", author)
	return u.redirect(w, r, ss, "/access#apikeys", fmt.Sprintf("API key %s revoked.", id))
}

// errAccessRulesLocked answers a change to rules the image's file sets.
var errAccessRulesLocked = userError(http.StatusConflict,
	"The ACL rules are set by the image's settings file and cannot be changed here.")

// accessEditable returns the rules in force for a change, refusing when
// the image's file locks them.
func (u *UI) accessEditable() (acl.Rules, error) {
	eff := u.o.Settings.Effective()
	if eff.IsLocked("acl.rules") {
		return nil, errAccessRulesLocked
	}
	rules, _ := accessRules(eff.Config.ACL)
	return rules, nil
}

// accessRuleAt returns the rule number in the path (from 1), checked
// against rules. For a post, stale is true when the form's rule
// fingerprint is not that of rules: the page showed other rules.
func accessRuleAt(r *http.Request, rules acl.Rules) (n int, stale bool, err error) {
	n, err = strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 1 || n > len(rules) {
		return 0, false, userError(http.StatusNotFound, "There is no ACL rule %s.", r.PathValue("n"))
	}
	stale = r.Method == http.MethodPost && r.PostFormValue("rev") != accessRev(rules)
	return n, stale, nil
}

// accessStale answers a row action posted from an outdated page.
func (u *UI) accessStale(w http.ResponseWriter, r *http.Request, ss *session) error {
	return u.redirect(w, r, ss, "/access#acl",
		"The ACL rules were changed elsewhere since this page was shown, so nothing was changed. Check the rules and try again.")
}

// accessSaveACL applies one change to the acl section of the settings.
// Problems the settings validation finds come back as field errors.
func (u *UI) accessSaveACL(r *http.Request, section map[string]any) ([]*config.FieldError, error) {
	patch, err := json.Marshal(map[string]any{"acl": section})
	if err != nil {
		return nil, fmt.Errorf("encode acl patch: %w", err)
	}
	saved, err := u.o.Settings.Apply(r.Context(), patch, author)
	if err == nil {
		u.log.Info("acl changed", "version", saved.Version, "paths", config.PatchPaths(patch), "by", author)
		return nil, nil
	}
	if fe := config.FieldErrors(err); len(fe) > 0 {
		return fe, nil
	}
	if saved.Version != 0 {
		u.log.Error("acl saved but not fully applied", "version", saved.Version, "error", err)
		return nil, userError(http.StatusInternalServerError,
			"The change was saved as settings version %d, but not all settings could be applied. The gateway log has the details.", saved.Version)
	}
	return nil, fmt.Errorf("apply acl settings: %w", err)
}

// accessSaveRules stores rules as acl.rules; an empty list removes them,
// which brings back the built-in default rules.
func (u *UI) accessSaveRules(r *http.Request, rules acl.Rules) ([]*config.FieldError, error) {
	section := map[string]any{"rules": nil}
	if len(rules) > 0 {
		section["rules"] = rules
	}
	return u.accessSaveACL(r, section)
}

// accessProblems joins field errors into one message for a form.
func accessProblems(fe []*config.FieldError) string {
	msgs := make([]string, len(fe))
	for i, e := range fe {
		msgs[i] = accessSentence(e.Problem)
	}
	return strings.Join(msgs, " ")
}

func (u *UI) accessAddRule(w http.ResponseWriter, r *http.Request, ss *session) error {
	rules, err := u.accessEditable()
	if err != nil {
		return err
	}
	f := accessRuleFormFrom(r)
	f.MaxPos = len(rules) + 1
	rule := f.rule()
	pos, err := strconv.Atoi(f.Position)
	if err != nil || pos < 1 || pos > f.MaxPos {
		f.Errors["rule-position"] = fmt.Sprintf("Enter a position from 1 to %d.", f.MaxPos)
	}
	if len(f.Errors) == 0 {
		fe, err := u.accessSaveRules(r, slices.Insert(rules, pos-1, rule))
		if err != nil {
			return err
		}
		if len(fe) > 0 {
			f.Errors["rule"] = accessProblems(fe)
		}
	}
	if len(f.Errors) > 0 {
		v, err := u.accessData()
		if err != nil {
			return err
		}
		v.RuleForm = f
		return u.renderAccess(w, r, ss, http.StatusUnprocessableEntity, v)
	}
	return u.redirect(w, r, ss, "/access#acl", fmt.Sprintf("ACL rule %d added: %s.", pos, rule))
}

func (u *UI) accessEditRule(w http.ResponseWriter, r *http.Request, ss *session) error {
	rules, err := u.accessEditable()
	if err != nil {
		return err
	}
	n, _, err := accessRuleAt(r, rules)
	if err != nil {
		return err
	}
	f := accessRuleFormOf(rules[n-1])
	f.N, f.Rev = n, accessRev(rules)
	return u.render(w, r, ss, u.page(ss, fmt.Sprintf("Edit ACL rule %d", n), "access"), accessRulePage(f, rules[n-1].String()))
}

func (u *UI) accessSaveRule(w http.ResponseWriter, r *http.Request, ss *session) error {
	rules, err := u.accessEditable()
	if err != nil {
		return err
	}
	n, stale, err := accessRuleAt(r, rules)
	if err != nil {
		return err
	}
	if stale {
		return u.accessStale(w, r, ss)
	}
	f := accessRuleFormFrom(r)
	f.N = n
	rule := f.rule()
	if len(f.Errors) == 0 {
		old := rules[n-1]
		rules[n-1] = rule
		fe, err := u.accessSaveRules(r, rules)
		if err != nil {
			return err
		}
		if len(fe) > 0 {
			f.Errors["rule"] = accessProblems(fe)
		}
		rules[n-1] = old
	}
	if len(f.Errors) > 0 {
		u.renderStatus(w, r, ss, http.StatusUnprocessableEntity, u.page(ss, fmt.Sprintf("Edit ACL rule %d", n), "access"),
			accessRulePage(f, rules[n-1].String()))
		return nil
	}
	return u.redirect(w, r, ss, "/access#acl", fmt.Sprintf("ACL rule %d saved: %s.", n, rule))
}

// accessMoveRule swaps a rule with its neighbour above (by -1) or below.
func (u *UI) accessMoveRule(by int) handler {
	return func(w http.ResponseWriter, r *http.Request, ss *session) error {
		rules, err := u.accessEditable()
		if err != nil {
			return err
		}
		n, stale, err := accessRuleAt(r, rules)
		if err != nil {
			return err
		}
		if stale {
			return u.accessStale(w, r, ss)
		}
		to := n + by
		if to < 1 || to > len(rules) {
			return userError(http.StatusBadRequest, "ACL rule %d cannot move further.", n)
		}
		rules[n-1], rules[to-1] = rules[to-1], rules[n-1]
		if err := u.accessSaveRulesStrict(r, rules); err != nil {
			return err
		}
		return u.redirect(w, r, ss, "/access#acl", fmt.Sprintf("ACL rule %d is now rule %d.", n, to))
	}
}

// accessSaveRulesStrict saves rules that are known to be valid (the rules
// in force, reordered or shortened): a field error there is a bug.
func (u *UI) accessSaveRulesStrict(r *http.Request, rules acl.Rules) error {
	fe, err := u.accessSaveRules(r, rules)
	if err == nil && len(fe) > 0 {
		err = fmt.Errorf("save acl rules: %s: %s", fe[0].Path, fe[0].Problem)
	}
	return err
}

func (u *UI) accessDeleteRule(w http.ResponseWriter, r *http.Request, ss *session) error {
	rules, err := u.accessEditable()
	if err != nil {
		return err
	}
	n, stale, err := accessRuleAt(r, rules)
	if err != nil {
		return err
	}
	if stale {
		return u.accessStale(w, r, ss)
	}
	rules = slices.Delete(rules, n-1, n)
	if err := u.accessSaveRulesStrict(r, rules); err != nil {
		return err
	}
	msg := fmt.Sprintf("ACL rule %d deleted.", n)
	if len(rules) == 0 {
		msg += " No rules are left, so the built-in default rules apply."
	}
	return u.redirect(w, r, ss, "/access#acl", msg)
}

func (u *UI) accessUseDefaultRules(w http.ResponseWriter, r *http.Request, ss *session) error {
	if _, err := u.accessEditable(); err != nil {
		return err
	}
	if err := u.accessSaveRulesStrict(r, nil); err != nil {
		return err
	}
	return u.redirect(w, r, ss, "/access#acl", "The built-in default ACL rules apply again.")
}

func (u *UI) accessSetNoMatch(w http.ResponseWriter, r *http.Request, ss *session) error {
	if u.o.Settings.Effective().IsLocked("acl.nomatch") {
		return userError(http.StatusConflict, "acl.nomatch is set by the image's settings file and cannot be changed here.")
	}
	value := r.PostFormValue("nomatch")
	problem := ""
	if value != "allow" && value != "deny" {
		problem = "Choose allow or deny."
	} else {
		fe, err := u.accessSaveACL(r, map[string]any{"nomatch": value})
		if err != nil {
			return err
		}
		problem = accessProblems(fe)
	}
	if problem != "" {
		v, err := u.accessData()
		if err != nil {
			return err
		}
		v.ACL.NoMatchError = problem
		return u.renderAccess(w, r, ss, http.StatusUnprocessableEntity, v)
	}
	return u.redirect(w, r, ss, "/access#acl", fmt.Sprintf("When no rule matches, the gateway now answers %s.", value))
}

func accessRuleFormFrom(r *http.Request) accessRuleForm {
	return accessRuleForm{
		Permission: r.PostFormValue("permission"), WhoKind: r.PostFormValue("who_kind"),
		Who: strings.TrimSpace(r.PostFormValue("who")), Access: r.PostFormValue("access"),
		Topics: r.PostFormValue("topics"), AllTopics: r.PostFormValue("all_topics") != "",
		Position: strings.TrimSpace(r.PostFormValue("position")), Rev: r.PostFormValue("rev"),
		Errors: map[string]string{},
	}
}

// accessRuleFormOf fills the edit form from a rule.
func accessRuleFormOf(rule acl.Rule) accessRuleForm {
	f := accessRuleForm{
		Permission: rule.Permission.String(), Access: rule.Access.String(), AllTopics: rule.AllTopics,
		Errors: map[string]string{},
	}
	f.WhoKind, f.Who = accessWho(rule.Who)
	lines := make([]string, len(rule.Topics))
	for i, t := range rule.Topics {
		lines[i] = accessTopic(t)
	}
	f.Topics = strings.Join(lines, "\n")
	return f
}

// accessWho returns the form's kind and value of w.
func accessWho(w acl.Who) (kind, value string) {
	switch w.Kind {
	case acl.WhoUser:
		return "user", w.Name
	case acl.WhoClientID:
		return "clientid", w.Name
	case acl.WhoIPAddr:
		if p := w.Prefix; p.Bits() == p.Addr().BitLen() {
			return "ipaddr", p.Addr().String()
		}
		return "ipaddr", w.Prefix.String()
	}
	return "all", ""
}

// accessExactPrefix marks an exact topic in the form's topic list, after
// acl.conf's {eq, "topic"}.
const accessExactPrefix = "eq "

// accessTopic returns t as a line of the form's topic list.
func accessTopic(t acl.Topic) string {
	if t.Exact {
		return accessExactPrefix + t.Filter
	}
	return t.Filter
}

// rule builds the rule the form describes, recording each problem under
// its field's id.
func (f *accessRuleForm) rule() acl.Rule {
	var rule acl.Rule
	if err := rule.Permission.UnmarshalText([]byte(f.Permission)); err != nil {
		f.Errors["rule-permission"] = "Choose allow or deny."
	}
	switch f.WhoKind {
	case "all":
		rule.Who = acl.All()
		if f.Who != "" {
			// A name left over from another choice would make a rule for
			// everyone out of a rule meant for one client.
			f.Errors["rule-who"] = "A rule for all clients names nobody: clear this field, or choose whom the rule is for."
		}
	case "user", "clientid", "ipaddr":
		if f.Who == "" {
			f.Errors["rule-who"] = map[string]string{
				"user": "Enter the username.", "clientid": "Enter the client id.",
				"ipaddr": "Enter an IP address or a network such as 10.0.0.0/8.",
			}[f.WhoKind]
			break
		}
		raw, _ := json.Marshal(map[string]string{f.WhoKind: f.Who})
		if err := rule.Who.UnmarshalJSON(raw); err != nil {
			msg := err.Error()
			if rest, ok := strings.CutPrefix(msg, "ipaddr "); ok {
				msg = "the address " + rest
			}
			f.Errors["rule-who"] = accessSentence(msg)
		}
	default:
		f.Errors["rule-who-kind"] = "Choose whom the rule is for."
	}
	if err := rule.Access.UnmarshalText([]byte(f.Access)); err != nil {
		f.Errors["rule-access"] = "Choose publish, subscribe or both."
	}
	var topics []acl.Topic
	for line := range strings.Lines(f.Topics) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		t := acl.Topic{Filter: line}
		if rest, ok := strings.CutPrefix(line, accessExactPrefix); ok {
			t = acl.Topic{Filter: strings.TrimSpace(rest), Exact: true}
		}
		// The topic alone in a rule that is otherwise valid: any error
		// is the topic's.
		probe := acl.Rules{{Permission: acl.Allow, Who: acl.All(), Access: acl.PubSub, Topics: []acl.Topic{t}}}
		var re *acl.RuleError
		if err := probe.Validate(); errors.As(err, &re) {
			f.Errors["rule-topics"] = accessSentence(re.Err.Error())
			break
		}
		topics = append(topics, t)
	}
	switch {
	case f.AllTopics && len(topics) > 0:
		f.Errors["rule-topics"] = "Leave the topics empty: the rule is for every topic."
	case f.AllTopics && rule.Access != acl.PubSub && f.Errors["rule-access"] == "":
		f.Errors["rule-access"] = "A rule for every topic covers publish and subscribe: choose both."
	case f.AllTopics:
		rule.AllTopics = true
	case len(topics) == 0 && f.Errors["rule-topics"] == "":
		f.Errors["rule-topics"] = "Enter at least one topic filter, or tick “every topic”."
	}
	rule.Topics = topics
	if len(f.Errors) == 0 {
		var re *acl.RuleError
		if err := (acl.Rules{rule}).Validate(); errors.As(err, &re) {
			f.Errors["rule"] = accessSentence(re.Err.Error())
		}
	}
	return rule
}

// accessReason returns what err says after sentinel's text, as a sentence: the
// domain packages' validation errors read "invalid name: username is
// empty", and the part after the sentinel is the user's problem.
func accessReason(err, sentinel error) string {
	msg := err.Error()
	if _, after, ok := strings.Cut(msg, sentinel.Error()+": "); ok {
		return accessSentence(after)
	}
	return "This value is not accepted."
}

// accessSentence capitalises s and ends it with a full stop.
func accessSentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	r, size := utf8.DecodeRuneInString(s)
	s = string(unicode.ToUpper(r)) + s[size:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

// accessUserURL is the address of an action on one MQTT user.
func accessUserURL(name, action string) string {
	return "/access/users/" + url.PathEscape(name) + "/" + action
}

// accessWhoText shows whom a rule is for.
func accessWhoText(w acl.Who) string {
	kind, value := accessWho(w)
	switch kind {
	case "user":
		return "user " + value
	case "clientid":
		return "client id " + value
	case "ipaddr":
		return "address " + value
	}
	return "all clients"
}

// accessActionText shows what access a rule covers.
func accessActionText(r acl.Rule) string {
	switch {
	case r.AllTopics:
		return "everything"
	case r.Access == acl.PubSub:
		return "publish, subscribe"
	}
	return r.Access.String()
}

// accessScopeHelp says what each API key scope allows.
var accessScopeHelp = map[string]string{
	admin.ScopeBroker:       "clients, subscriptions, retained messages, listeners, publishing, statistics and traces",
	admin.ScopeCertificates: "the certificate store and the deployment TLS API",
}

// accessScopesText shows an API key's scopes.
func accessScopesText(scopes []string) string {
	if len(scopes) == 0 {
		return "everything"
	}
	return strings.Join(scopes, ", ")
}
