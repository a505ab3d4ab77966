package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/edgegate/edgegate/gateway/acl"
	"github.com/edgegate/edgegate/gateway/config"
)

// settingsView is the answer of GET and PATCH /api/v1/settings.
type settingsView struct {
	// Version of the stored document; 0 when none was ever saved.
	Version uint64    `json:"version"`
	Saved   time.Time `json:"saved,omitzero"`
	Author  string    `json:"author,omitempty"`
	// Settings is the effective configuration.
	Settings config.Config `json:"settings"`
	// Locked lists the settings paths the image's file sets; they cannot
	// be changed here.
	Locked []string `json:"locked"`
	// Document is the stored merge patch over the defaults.
	Document json.RawMessage `json:"document,omitempty"`
}

func (a *API) settingsView() (settingsView, error) {
	cur, err := a.o.Settings.Current()
	if err != nil {
		return settingsView{}, fmt.Errorf("read settings: %w", err)
	}
	eff := a.o.Settings.Effective()
	return settingsView{
		Version: cur.Version, Saved: cur.Saved, Author: cur.Author,
		Settings: eff.Config, Locked: nonNil(eff.Locked), Document: cur.Document,
	}, nil
}

func (a *API) getSettings(w http.ResponseWriter, r *http.Request) error {
	if a.o.Settings == nil {
		return unavailable("settings")
	}
	v, err := a.settingsView()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// patchSettings applies a JSON merge patch (RFC 7396) to the settings.
func (a *API) patchSettings(w http.ResponseWriter, r *http.Request) error {
	if a.o.Settings == nil {
		return unavailable("settings")
	}
	if err := requireJSON(r); err != nil {
		return err
	}
	patch, err := a.readBody(w, r)
	if err != nil {
		return err
	}
	var obj map[string]json.RawMessage
	if err := decodeStrict(patch, &obj); err != nil {
		return err
	}
	if obj == nil {
		return errorf(http.StatusBadRequest, "bad_json", "the patch must be a JSON object")
	}
	if len(obj) == 0 {
		return errorf(http.StatusBadRequest, "empty_patch", "the patch changes nothing")
	}
	if err := a.applySettings(r, patch); err != nil {
		return err
	}
	v, err := a.settingsView()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// applySettings checks a merge patch against the locked paths and the
// setting names, then applies it.
func (a *API) applySettings(r *http.Request, patch []byte) error {
	eff := a.o.Settings.Effective()
	var locked []string
	for _, p := range config.PatchPaths(patch) {
		if eff.IsLocked(p) {
			locked = append(locked, p)
		}
	}
	if len(locked) > 0 {
		e := errorf(http.StatusConflict, "locked_setting",
			"%s set by the image's settings file and cannot be changed here", describePaths(locked))
		e.body.Paths = locked
		return e
	}
	// Unknown names and wrong types are the caller's mistake, reported
	// with line:col; Apply repeats the check under its lock.
	if err := config.CheckPatch(patch, "settings patch"); err != nil {
		return errorf(http.StatusUnprocessableEntity, "invalid_settings", "%s", err)
	}
	saved, err := a.o.Settings.Apply(r.Context(), patch, authorOf(r))
	if err == nil {
		a.log.Info("settings changed", "version", saved.Version, "paths", config.PatchPaths(patch), "by", authorOf(r))
		return nil
	}
	if fields := fieldErrors(err); len(fields) > 0 {
		e := errorf(http.StatusUnprocessableEntity, "invalid_settings", "the settings are not valid; nothing was changed")
		e.body.Fields = fields
		return e
	}
	if saved.Version != 0 {
		a.log.Error("settings saved but not fully applied", "version", saved.Version, "err", err)
		return errorf(http.StatusInternalServerError, "apply_failed",
			"the settings were saved as version %d but not all of them could be applied; the gateway log has the details", saved.Version)
	}
	return fmt.Errorf("apply settings: %w", err)
}

func describePaths(paths []string) string {
	q := make([]string, len(paths))
	for i, p := range paths {
		q[i] = fmt.Sprintf("%q", p)
	}
	if len(q) == 1 {
		return "setting " + q[0] + " is"
	}
	return "settings " + strings.Join(q, ", ") + " are"
}

// fieldErrors lists the settings problems in err.
func fieldErrors(err error) []FieldProblem {
	var out []FieldProblem
	for _, fe := range config.FieldErrors(err) {
		out = append(out, FieldProblem{Path: fe.Path, Problem: fe.Problem})
	}
	return out
}

func (a *API) settingsHistory(w http.ResponseWriter, r *http.Request) error {
	if a.o.Settings == nil {
		return unavailable("settings")
	}
	h, err := a.o.Settings.History()
	if err != nil {
		return fmt.Errorf("read settings history: %w", err)
	}
	writeJSON(w, http.StatusOK, nonNil(h))
	return nil
}

// aclView is the answer of GET and PUT /api/v1/acl.
type aclView struct {
	NoMatch string    `json:"nomatch"`
	Rules   acl.Rules `json:"rules"`
	// Default is true when no rules are configured and the built-in
	// default rules (acl.DefaultRules) are in force.
	Default bool `json:"default"`
}

// effectiveRules returns the rules in force.
func effectiveRules(c config.ACL) (acl.Rules, bool) {
	if len(c.Rules) == 0 {
		return acl.DefaultRules(), true
	}
	return c.Rules, false
}

func (a *API) aclView() aclView {
	c := a.o.Settings.Effective().Config.ACL
	rules, def := effectiveRules(c)
	return aclView{NoMatch: c.NoMatch, Rules: rules, Default: def}
}

func (a *API) getACL(w http.ResponseWriter, r *http.Request) error {
	if a.o.Settings == nil {
		return unavailable("settings")
	}
	writeJSON(w, http.StatusOK, a.aclView())
	return nil
}

// aclPut is the body of PUT /api/v1/acl. Rules absent, null or [] means
// the built-in default rules.
type aclPut struct {
	NoMatch string            `json:"nomatch"`
	Rules   []json.RawMessage `json:"rules"`
}

func (a *API) putACL(w http.ResponseWriter, r *http.Request) error {
	if a.o.Settings == nil {
		return unavailable("settings")
	}
	var req aclPut
	if err := a.decodeJSON(w, r, &req); err != nil {
		return err
	}
	var fields []FieldProblem
	if req.NoMatch != "allow" && req.NoMatch != "deny" {
		fields = append(fields, FieldProblem{Path: "acl.nomatch", Problem: "must be allow or deny"})
	}
	rules := make(acl.Rules, len(req.Rules))
	for i, raw := range req.Rules {
		// Each rule alone, so a problem names its index.
		if err := json.Unmarshal(raw, &rules[i]); err != nil {
			fields = append(fields, FieldProblem{Path: fmt.Sprintf("acl.rules[%d]", i), Problem: err.Error()})
		}
	}
	if len(fields) == 0 {
		var re *acl.RuleError
		if err := rules.Validate(); errors.As(err, &re) {
			fields = append(fields, FieldProblem{Path: fmt.Sprintf("acl.rules[%d]", re.Index), Problem: re.Err.Error()})
		}
	}
	if len(fields) > 0 {
		e := errorf(http.StatusUnprocessableEntity, "invalid_settings", "the ACL is not valid; nothing was changed")
		e.body.Fields = fields
		return e
	}
	// A value the image's file locks may be sent back unchanged (a UI
	// PUTs the whole ACL); only a change to it is refused.
	eff := a.o.Settings.Effective()
	section := map[string]any{}
	if !eff.IsLocked("acl.nomatch") || req.NoMatch != eff.Config.ACL.NoMatch {
		section["nomatch"] = req.NoMatch
	}
	if !eff.IsLocked("acl.rules") || !sameRules(rules, eff.Config.ACL.Rules) {
		section["rules"] = nil // absent: the default rules
		if len(rules) > 0 {
			section["rules"] = rules
		}
	}
	if len(section) == 0 {
		writeJSON(w, http.StatusOK, a.aclView())
		return nil
	}
	patch, err := json.Marshal(map[string]any{"acl": section})
	if err != nil {
		return fmt.Errorf("encode ACL patch: %w", err)
	}
	if err := a.applySettings(r, patch); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.aclView())
	return nil
}

// sameRules reports whether two rule lists are equal in their JSON form.
func sameRules(a, b acl.Rules) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

// aclCheck is the body of POST /api/v1/acl/check.
type aclCheck struct {
	Username string `json:"username"`
	ClientID string `json:"clientid"`
	IPAddr   string `json:"ipaddr"`
	// Access is "publish" or "subscribe".
	Access string `json:"access"`
	Topic  string `json:"topic"`
}

// aclDecision is the answer of POST /api/v1/acl/check.
type aclDecision struct {
	Matched bool `json:"matched"`
	// Rule is the index of the matching rule, -1 when none matched.
	Rule int `json:"rule"`
	// RuleText is the matching rule in acl.conf syntax.
	RuleText string `json:"rule_text,omitempty"`
	// Permission is the matching rule's; empty when none matched.
	Permission string `json:"permission,omitempty"`
	// Decision is what the rules decide: the matching rule's permission,
	// or acl.nomatch.
	Decision string `json:"decision"`
}

// checkACL answers what the configured rules decide for one request. It
// tests the rules only: superusers and the HTTP backend are not consulted.
func (a *API) checkACL(w http.ResponseWriter, r *http.Request) error {
	if a.o.Settings == nil {
		return unavailable("settings")
	}
	var req aclCheck
	if err := a.decodeJSON(w, r, &req); err != nil {
		return err
	}
	var access acl.Access
	switch req.Access {
	case "publish":
		access = acl.Publish
		if err := acl.ValidTopicName(req.Topic); err != nil {
			return errorf(http.StatusBadRequest, "invalid_topic", "%s", err)
		}
	case "subscribe":
		access = acl.Subscribe
		if err := acl.ValidFilter(req.Topic); err != nil {
			return errorf(http.StatusBadRequest, "invalid_topic", "%s", err)
		}
	default:
		return errorf(http.StatusBadRequest, "invalid_access", "access must be \"publish\" or \"subscribe\"")
	}
	var addr netip.Addr
	if req.IPAddr != "" {
		var err error
		if addr, err = netip.ParseAddr(req.IPAddr); err != nil {
			return errorf(http.StatusBadRequest, "invalid_ipaddr", "ipaddr %q is not an IP address", req.IPAddr)
		}
	}
	c := a.o.Settings.Effective().Config.ACL
	rules, _ := effectiveRules(c)
	i, perm, ok := rules.Match(acl.Request{Username: req.Username, ClientID: req.ClientID, Addr: addr, Access: access, Topic: req.Topic})
	d := aclDecision{Matched: ok, Rule: i, Decision: c.NoMatch}
	if ok {
		d.RuleText = rules[i].String()
		d.Permission = perm.String()
		d.Decision = perm.String()
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}
