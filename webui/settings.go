package webui

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/edgegate/edgegate/gateway/broker"
	"github.com/edgegate/edgegate/gateway/config"
)

// settingsRoutes serves the "Listeners & settings" page: the listeners'
// live state and one form per part of the settings. Each form posts only its own fields, and of
// those only the ones that changed, as a JSON merge patch; Settings.Apply
// validates the whole document, and each problem it names is shown next
// to the field it concerns.
func (u *UI) settingsRoutes() {
	u.authed("GET /settings", u.settingsPage)
	u.authed("POST /settings/listeners/{name}", u.saveListenerSettings)
	u.authed("POST /settings/auth", u.saveAuthSettings)
	u.authed("POST /settings/general", u.saveGeneralSettings)
}

const settingsTitle = "Listeners & settings"

// settingsView is the page: the listeners as they run, a form per listener,
// the authentication and the general forms, and after a refused change
// the list of what was wrong.
type settingsView struct {
	Status     []listenerStatusRow
	Listeners  []settingsForm
	Auth       settingsForm
	General    settingsForm
	Problems   []settingsProblem
	LockedNote string // shown under a setting the image's file sets
}

// listenerStatusRow is a configured listener and what the broker says of it.
type listenerStatusRow struct {
	Name, Type, Address, ClientAuth string
	Running, Disabled               bool
	Clients, MaxClients             int
}

// settingsForm is one form of the page.
type settingsForm struct {
	Title  string
	Type   string // a listener's type, shown next to its title
	Nested bool   // a listener's form, under the Listeners heading
	Action string
	TestID string
	Groups []settingGroup
}

// settingGroup is a fieldset of a form; without a legend, plain fields.
type settingGroup struct {
	Legend, Hint string
	Fields       []settingField
}

// settingsProblem is one line of the "Nothing was saved" summary.
type settingsProblem struct {
	ID    string // the element id of the field that shows it; "" if none
	Where string
	Text  string
}

type settingKind int

const (
	settingText     settingKind = iota
	settingNumber               // a whole number of Bits bits
	settingDuration             // a Go duration such as 60s
	settingBool                 // a checkbox
	settingSelect               // one of Choices
)

type settingChoice struct{ Value, Label string }

// settingField is a form control bound to a settings path, which is also
// its form name, with what the page shows in it.
type settingField struct {
	Path  string // dotted settings path, e.g. "listeners.tcp.bind"
	Label string
	Hint  string
	Kind  settingKind
	// Bits and Unsigned give the setting's Go integer type (settingNumber), so
	// that a number the settings cannot even hold is refused here; the
	// settings validation checks the range that makes sense.
	Bits     int
	Unsigned bool
	Choices  []settingChoice

	Value  string // as shown, or as the user sent it
	Locked bool
	Error  string
}

// ID is the control's element id and data-testid: the path with dashes.
func (f settingField) ID() string { return settingIDs.Replace(f.Path) }

// settingIDs turns "auth.chain[0]" into "auth-chain-0".
var settingIDs = strings.NewReplacer(".", "-", "[", "-", "]", "")

// describedBy lists the ids of the texts that describe the control.
func (f settingField) describedBy() string {
	var ids []string
	if f.Hint != "" {
		ids = append(ids, f.ID()+"-hint")
	}
	if f.Locked {
		ids = append(ids, f.ID()+"-locked")
	}
	if f.Error != "" {
		ids = append(ids, f.ID()+"-error")
	}
	return strings.Join(ids, " ")
}

// parse turns what a control holds into the settings value, or says what
// to enter instead.
func (f settingField) parse(s string) (any, string) {
	switch f.Kind {
	case settingNumber:
		if f.Unsigned {
			n, err := strconv.ParseUint(s, 10, f.Bits)
			if err != nil {
				return nil, fmt.Sprintf("Enter a whole number from 0 to %d.", uint64(1)<<f.Bits-1)
			}
			return n, ""
		}
		n, err := strconv.ParseInt(s, 10, f.Bits)
		if errors.Is(err, strconv.ErrRange) {
			least := int64(-1) << (f.Bits - 1)
			return nil, fmt.Sprintf("Enter a whole number from %d to %d.", least, -(least + 1))
		}
		if err != nil {
			return nil, "Enter a whole number."
		}
		return n, ""
	case settingDuration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, "Enter a duration such as 30s, 5m or 1h."
		}
		return config.Duration(d), ""
	case settingBool:
		return s != "", ""
	}
	return s, ""
}

// display shows a value of the settings tree in a control.
func (f settingField) display(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case bool:
		if v {
			return "true"
		}
		return ""
	case string:
		if f.Kind != settingDuration {
			return v
		}
		if d, err := time.ParseDuration(v); err == nil {
			return settingsDuration(d)
		}
		return v
	}
	return fmt.Sprint(v)
}

// settingsDuration drops the zero tails of a duration: "1m", not "1m0s".
func settingsDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

var (
	listenerClientAuths = []settingChoice{
		{config.ClientAuthNone, "none"}, {config.ClientAuthOptional, "optional"}, {config.ClientAuthRequired, "required"},
	}
	certIdentityFields = []settingChoice{
		{config.CertFieldNone, "what the client sent"},
		{config.CertFieldCN, "common name (CN)"},
		{config.CertFieldDNS, "first DNS name"},
		{config.CertFieldURI, "first URI, e.g. a SPIFFE ID"},
		{config.CertFieldDN, "subject DN"},
	}
	authChainLinks = []settingChoice{
		{config.AuthCertificate, "certificate"}, {config.AuthUsername, "username"}, {config.AuthClientID, "clientid"},
		{config.AuthHTTP, "http"}, {config.AuthAnonymous, "anonymous"},
	}
	settingsLogLevels = []settingChoice{{"debug", "debug"}, {"info", "info"}, {"warn", "warn"}, {"error", "error"}}
)

func listenerSettingsForm(name string, l config.Listener) settingsForm {
	p := "listeners." + name + "."
	conn := settingGroup{Fields: []settingField{
		{Path: p + "bind", Label: "Bind address", Hint: "host:port; an empty host listens on every address, e.g. :1883."},
		{Path: p + "max_clients", Label: "Max clients", Hint: "Connections it holds at once; more are refused.",
			Kind: settingNumber, Bits: strconv.IntSize},
	}}
	if l.IsWebSocket() {
		conn.Fields = append(conn.Fields, settingField{Path: p + "path", Label: "WebSocket path"})
	}
	conn.Fields = append(conn.Fields, settingField{Path: p + "disabled", Label: "Disabled", Kind: settingBool})
	f := settingsForm{
		Title: name, Type: l.Type, Nested: true, Action: "/settings/listeners/" + name,
		TestID: "listener-form-" + name, Groups: []settingGroup{conn},
	}
	if l.IsTLS() {
		f.Groups = append(f.Groups, settingGroup{
			Legend: "Client certificates",
			Hint:   "A verified certificate's field can replace the username and client ID a client sent.",
			Fields: []settingField{
				{Path: p + "tls.client_auth", Label: "Client certificate", Kind: settingSelect, Choices: listenerClientAuths,
					Hint: "optional verifies a certificate when a client sends one; required refuses clients without one."},
				{Path: p + "tls.client_ca", Label: "Client CA", Hint: `"local" for the gateway's own CA, or the path of a PEM file of CA certificates.`},
				{Path: p + "tls.identity.username", Label: "Username from", Kind: settingSelect, Choices: certIdentityFields},
				{Path: p + "tls.identity.clientid", Label: "Client ID from", Kind: settingSelect, Choices: certIdentityFields},
			},
		})
	}
	return f
}

func authSettingsForm() settingsForm {
	chain := settingGroup{
		Legend: "Order of the authentication chain",
		Hint: "Each step allows the client, denies it or passes it on to the next: certificate checks a verified client certificate, " +
			"username and clientid the password entries, http the HTTP backend, anonymous answers for the rest. A step not used drops its link.",
	}
	steps := append([]settingChoice{{"", "not used"}}, authChainLinks...)
	for i := range authChainLinks {
		chain.Fields = append(chain.Fields, settingField{
			Path: fmt.Sprintf("auth.chain[%d]", i), Label: fmt.Sprintf("Step %d", i+1), Kind: settingSelect, Choices: steps,
		})
	}
	anonymous := settingGroup{Fields: []settingField{{
		Path: "auth.allow_anonymous", Label: "Allow anonymous clients", Kind: settingBool,
		Hint: "The anonymous step's answer for a client no earlier step decided.",
	}}}
	return settingsForm{Title: "Authentication", Action: "/settings/auth", TestID: "auth-form", Groups: []settingGroup{chain, anonymous}}
}

func generalSettingsForm() settingsForm {
	return settingsForm{Title: "General", Action: "/settings/general", TestID: "general-form", Groups: []settingGroup{
		{Legend: "$SYS topics", Hint: "Applies at the next start.", Fields: []settingField{
			{Path: "sys.interval", Label: "Interval", Hint: "How often the $SYS/brokers/… figures are published, e.g. 60s.", Kind: settingDuration},
		}},
		{Legend: "MQTT limits", Hint: "Apply at the next start.", Fields: []settingField{
			{Path: "mqtt.max_packet_size", Label: "Max packet size (bytes)", Kind: settingNumber, Bits: 32, Unsigned: true},
			{Path: "mqtt.receive_maximum", Label: "Receive maximum", Kind: settingNumber, Bits: 16, Unsigned: true,
				Hint: "Unacknowledged QoS 1 and 2 messages a client may send at once."},
			{Path: "mqtt.max_queued_messages", Label: "Max queued messages per client", Kind: settingNumber, Bits: strconv.IntSize},
			{Path: "mqtt.max_queued_bytes", Label: "Max queued bytes per client", Kind: settingNumber, Bits: 64},
			{Path: "mqtt.client_write_queue", Label: "Write queue per client (packets)", Kind: settingNumber, Bits: strconv.IntSize,
				Hint: "Every connection holds memory for this many packets."},
			{Path: "mqtt.max_session_expiry", Label: "Max session expiry", Kind: settingDuration,
				Hint: "How long a disconnected persistent session is kept at most, e.g. 24h."},
			{Path: "mqtt.retain_available", Label: "Keep retained messages", Kind: settingBool},
		}},
		{Legend: "Memory", Fields: []settingField{
			{Path: "memory.budget_bytes", Label: "Memory budget (bytes)", Kind: settingNumber, Bits: 64,
				Hint: "What the whole gateway may use: 0 for no budget, else at least 16 MiB (16777216). It bounds each client's queue from the next start."},
		}},
		{Legend: "Log", Fields: []settingField{
			{Path: "log.level", Label: "Log level", Kind: settingSelect, Choices: settingsLogLevels},
		}},
		{Legend: "Trust lists: vault sync", Hint: "The trust and issuer lists are kept in step with a HashiCorp Vault or OpenBao KV v2 engine. Applies at once.", Fields: []settingField{
			{Path: "trust.vault.address", Label: "Vault address", Hint: "https://host:8200; empty turns sync off.", Kind: settingText},
			{Path: "trust.vault.mount", Label: "KV v2 mount", Kind: settingText},
			{Path: "trust.vault.prefix", Label: "Path prefix", Hint: "Secrets under <prefix>/trust/ and <prefix>/issuer/.", Kind: settingText},
			{Path: "trust.vault.auth_method", Label: "Log in with", Kind: settingSelect, Choices: vaultAuthMethods},
			{Path: "trust.vault.cert_role", Label: "Cert auth role", Hint: "Optional: the role to log in as.", Kind: settingText},
			{Path: "trust.vault.credentials_file", Label: "Credentials file", Hint: "For token or AppRole: VAULT_TOKEN=… or VAULT_ROLE_ID=… and VAULT_SECRET_ID=… lines.", Kind: settingText},
			{Path: "trust.vault.ca_file", Label: "Vault CA file", Hint: "PEM roots of the vault's HTTPS, besides the system roots and the trust list.", Kind: settingText},
			{Path: "trust.vault.poll_interval", Label: "Poll interval", Kind: settingDuration},
			{Path: "trust.auto_apply", Label: "Apply synced versions at once", Kind: settingBool,
				Hint: "Unless a version would lock connected clients out; otherwise it waits on the Trust page."},
			{Path: "trust.vault.publish", Label: "Write uploads to the vault", Kind: settingBool},
			{Path: "trust.vault.report_status", Label: "Report this gateway's status to the vault", Kind: settingBool},
		}},
	}}
}

var vaultAuthMethods = []settingChoice{
	{config.VaultAuthCert, "device certificate (cert auth)"},
	{config.VaultAuthToken, "token"},
	{config.VaultAuthAppRole, "AppRole"},
}

// settingsView builds the page from the settings in force.
func (u *UI) settingsView(eff config.Effective) (settingsView, error) {
	tree, err := settingsTree(eff.Config)
	if err != nil {
		return settingsView{}, err
	}
	v := settingsView{LockedNote: u.lockedNote(), Auth: authSettingsForm(), General: generalSettingsForm()}
	running := map[string]broker.ListenerStatus{}
	for _, st := range u.o.Broker.Listeners() {
		running[st.Name] = st
	}
	for _, name := range slices.Sorted(maps.Keys(eff.Config.Listeners)) {
		l := eff.Config.Listeners[name]
		row := listenerStatusRow{Name: name, Type: l.Type, Disabled: l.Disabled}
		if st, ok := running[name]; ok {
			row.Running, row.Address, row.Clients, row.MaxClients, row.ClientAuth = true, st.Address, st.Clients, st.MaxClients, st.ClientAuth
		}
		v.Status = append(v.Status, row)
		v.Listeners = append(v.Listeners, listenerSettingsForm(name, l))
	}
	for _, form := range v.forms(nil) {
		form.fill(eff, tree)
	}
	return v, nil
}

func (u *UI) lockedNote() string {
	if u.o.SettingsFile == "" {
		return "Locked: set by the image."
	}
	return "Locked: set by the image (" + u.o.SettingsFile + ")."
}

// forms returns the page's forms, first the one given (if any).
func (v *settingsView) forms(first *settingsForm) []*settingsForm {
	all := make([]*settingsForm, 0, len(v.Listeners)+2)
	for i := range v.Listeners {
		all = append(all, &v.Listeners[i])
	}
	all = append(all, &v.Auth, &v.General)
	if first == nil {
		return all
	}
	rest := slices.DeleteFunc(all, func(f *settingsForm) bool { return f == first })
	return append([]*settingsForm{first}, rest...)
}

// fields returns pointers to every field of the form.
func (form *settingsForm) fields() []*settingField {
	var out []*settingField
	for gi := range form.Groups {
		for fi := range form.Groups[gi].Fields {
			out = append(out, &form.Groups[gi].Fields[fi])
		}
	}
	return out
}

// allLocked reports whether the form has nothing it could change.
func (form settingsForm) allLocked() bool {
	return !slices.ContainsFunc(form.fields(), func(f *settingField) bool { return !f.Locked })
}

// fill shows the settings in force in the form's fields.
func (form *settingsForm) fill(eff config.Effective, tree any) {
	for _, f := range form.fields() {
		f.Value = f.display(settingsLookup(tree, f.Path))
		f.Locked = eff.IsLocked(settingListPath(f.Path))
		if f.Kind == settingSelect && !slices.ContainsFunc(f.Choices, func(c settingChoice) bool { return c.Value == f.Value }) {
			label := f.Value
			if label == "" {
				label = "not set"
			}
			f.Choices = append([]settingChoice{{f.Value, label}}, f.Choices...)
		}
	}
}

// settingsTree is the configuration as generic JSON, for settingsLookup by path.
func settingsTree(c config.Config) (any, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode settings: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // byte counts stay exact
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, fmt.Errorf("decode settings: %w", err)
	}
	return tree, nil
}

// settingsLookup returns the value at a dotted path such as "auth.chain[0]" of a
// settings tree; nil when there is none.
func settingsLookup(tree any, path string) any {
	for seg := range strings.SplitSeq(path, ".") {
		key, index, indexed := strings.Cut(seg, "[")
		m, ok := tree.(map[string]any)
		if !ok {
			return nil
		}
		tree = m[key]
		if indexed {
			list, _ := tree.([]any)
			i, err := strconv.Atoi(strings.TrimSuffix(index, "]"))
			if err != nil || i < 0 || i >= len(list) {
				return nil
			}
			tree = list[i]
		}
	}
	return tree
}

// settingListPath is the setting an element path ("auth.chain[2]") belongs to,
// which is what the image's file can lock.
func settingListPath(path string) string {
	p, _, _ := strings.Cut(path, "[")
	return p
}

// setSettingPath sets a dotted path of a merge patch.
func setSettingPath(patch map[string]any, path string, v any) {
	keys := strings.Split(path, ".")
	m := patch
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[keys[len(keys)-1]] = v
}

func (u *UI) settingsPage(w http.ResponseWriter, r *http.Request, ss *session) error {
	v, err := u.settingsView(u.o.Settings.Effective())
	if err != nil {
		return err
	}
	return u.render(w, r, ss, u.page(ss, settingsTitle, "settings"), settingsPage(v))
}

func (u *UI) saveListenerSettings(w http.ResponseWriter, r *http.Request, ss *session) error {
	eff := u.o.Settings.Effective()
	v, err := u.settingsView(eff)
	if err != nil {
		return err
	}
	action := "/settings/listeners/" + r.PathValue("name")
	i := slices.IndexFunc(v.Listeners, func(f settingsForm) bool { return f.Action == action })
	if i < 0 {
		return userError(http.StatusNotFound, "There is no listener named %q.", r.PathValue("name"))
	}
	return u.saveSettings(w, r, ss, eff, &v, &v.Listeners[i], map[string]any{}, nil)
}

func (u *UI) saveAuthSettings(w http.ResponseWriter, r *http.Request, ss *session) error {
	eff := u.o.Settings.Effective()
	v, err := u.settingsView(eff)
	if err != nil {
		return err
	}
	patch := map[string]any{}
	remap := readAuthChain(r, &v.Auth.Groups[0], eff.Config.Auth.Chain, patch)
	return u.saveSettings(w, r, ss, eff, &v, &v.Auth, patch, remap)
}

func (u *UI) saveGeneralSettings(w http.ResponseWriter, r *http.Request, ss *session) error {
	eff := u.o.Settings.Effective()
	v, err := u.settingsView(eff)
	if err != nil {
		return err
	}
	return u.saveSettings(w, r, ss, eff, &v, &v.General, map[string]any{}, nil)
}

// readAuthChain takes the chain's steps from the request into patch when they
// changed. Unused steps drop out of the chain, so the returned remap turns
// a problem's chain index back into the step that shows it.
func readAuthChain(r *http.Request, g *settingGroup, current []string, patch map[string]any) (remap func(string) string) {
	chain := []string{} // never nil: null would delete the setting
	var step []int
	for i := range g.Fields {
		f := &g.Fields[i]
		if f.Locked {
			return nil // one setting: all steps are locked
		}
		f.Value = strings.TrimSpace(r.PostFormValue(f.Path))
		if f.Value != "" {
			chain = append(chain, f.Value)
			step = append(step, i)
		}
	}
	if !slices.Equal(chain, current) {
		setSettingPath(patch, "auth.chain", chain)
	}
	return func(path string) string {
		rest, ok := strings.CutPrefix(path, "auth.chain[")
		index, tail, _ := strings.Cut(rest, "]")
		i, err := strconv.Atoi(index)
		if !ok || err != nil || i < 0 || i >= len(step) {
			return path
		}
		return fmt.Sprintf("auth.chain[%d]%s", step[i], tail)
	}
}

// readSettingFields takes form's unlocked fields from the request, adds the ones
// that changed to patch and marks the ones that are not even of the
// setting's type. It reports whether all of them were.
func readSettingFields(r *http.Request, form *settingsForm, patch map[string]any) bool {
	ok := true
	for _, f := range form.fields() {
		// Elements of a list ("auth.chain[0]") are read by their form's
		// handler, which sends the list whole.
		if f.Locked || strings.Contains(f.Path, "[") {
			continue
		}
		was, _ := f.parse(f.Value)
		f.Value = strings.TrimSpace(r.PostFormValue(f.Path))
		if f.Kind == settingBool && f.Value != "" {
			f.Value = "true"
		}
		now, problem := f.parse(f.Value)
		switch {
		case problem != "":
			f.Error, ok = problem, false
		case !reflect.DeepEqual(was, now):
			setSettingPath(patch, f.Path, now)
		}
	}
	return ok
}

// saveSettings applies what changed in form: it answers with a redirect
// and a flash, or with the page again (422) and each problem next to its
// field. remap, if not nil, maps a problem's path to a field's.
func (u *UI) saveSettings(w http.ResponseWriter, r *http.Request, ss *session, eff config.Effective,
	v *settingsView, form *settingsForm, patch map[string]any, remap func(string) string) error {
	if !readSettingFields(r, form, patch) {
		return u.settingsInvalid(w, r, ss, v, form, nil, remap)
	}
	if len(patch) == 0 {
		return u.redirect(w, r, ss, "/settings", "Nothing to save: no setting was changed.")
	}
	body, err := json.Marshal(patch)
	if err != nil {
		return fmt.Errorf("encode settings patch: %w", err)
	}
	saved, err := u.o.Settings.Apply(r.Context(), body, author)
	switch problems := config.FieldErrors(err); {
	case err == nil:
	case saved.Version != 0:
		u.log.Error("settings saved but not fully applied", "version", saved.Version, "error", err)
		return u.redirect(w, r, ss, "/settings", fmt.Sprintf(
			"Saved as version %d, but not all of it could be applied. The gateway's log has the details.", saved.Version))
	case len(problems) > 0:
		return u.settingsInvalid(w, r, ss, v, form, problems, remap)
	default:
		return fmt.Errorf("apply settings: %w", err)
	}
	u.log.Info("settings changed", "version", saved.Version, "paths", config.PatchPaths(body), "by", author)
	msg := "Saved."
	if later := config.RestartOnly(eff.Config, u.o.Settings.Effective().Config); len(later) > 0 {
		msg += " Takes effect at the next start: " + strings.Join(later, ", ") + "."
	}
	return u.redirect(w, r, ss, "/settings", msg)
}

// settingsInvalid shows the page again with every problem next to its
// field (the submitted form's first, as a problem may concern a setting
// of another form, such as a bind address another listener uses) and
// listed at the top; nothing was saved.
func (u *UI) settingsInvalid(w http.ResponseWriter, r *http.Request, ss *session, v *settingsView,
	form *settingsForm, problems []*config.FieldError, remap func(string) string) error {
	forms := v.forms(form)
	var loose []settingsProblem
	for _, fe := range problems {
		path := fe.Path
		if remap != nil {
			path = remap(path)
		}
		f := findSettingField(forms, path)
		if f == nil {
			loose = append(loose, settingsProblem{Where: fe.Path, Text: problemSentence(fe.Problem)})
			continue
		}
		f.Error = strings.TrimSpace(f.Error + " " + problemSentence(fe.Problem))
	}
	for _, form := range v.forms(nil) {
		for _, f := range form.fields() {
			if f.Error != "" {
				where := form.Title
				if form.Nested {
					where = "Listener " + where
				}
				v.Problems = append(v.Problems, settingsProblem{ID: f.ID(), Where: where + ": " + f.Label, Text: f.Error})
			}
		}
	}
	v.Problems = append(v.Problems, loose...)
	u.renderStatus(w, r, ss, http.StatusUnprocessableEntity, u.page(ss, settingsTitle, "settings"), settingsPage(*v))
	return nil
}

// findSettingField returns the field of path, or else the first field under it
// ("listeners.tls.tls.identity" is shown at the identity's first field).
func findSettingField(forms []*settingsForm, path string) *settingField {
	for _, under := range []bool{false, true} {
		for _, form := range forms {
			for _, f := range form.fields() {
				if !under && f.Path == path ||
					under && (strings.HasPrefix(f.Path, path+".") || strings.HasPrefix(f.Path, path+"[")) {
					return f
				}
			}
		}
	}
	return nil
}

// problemSentence turns a validation problem ("must be at least 1") into a
// problemSentence shown under its field.
func problemSentence(s string) string {
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	s = string(unicode.ToUpper(r)) + s[n:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}
