package provisioning

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/edgegate/edgegate/certs"
	"github.com/edgegate/edgegate/gateway/admin"
	"github.com/edgegate/edgegate/gateway/auth"
	"github.com/edgegate/edgegate/gateway/config"
	"github.com/edgegate/edgegate/gateway/store"
)

// Settings is the live settings service (*gateway.Settings).
type Settings interface {
	Effective() config.Effective
	// Apply validates the patched document as a whole and saves and
	// applies it, or changes nothing.
	Apply(ctx context.Context, patch []byte, author string) (store.SettingsVersion, error)
}

// Admin is the administrator's credentials (*admin.Credentials).
type Admin interface {
	SetAdminPasswordHash(hash string) error
	ImportAPIKey(k admin.APIKey, secretHash string) error
}

// Users is the MQTT account store (*auth.Users).
type Users interface {
	Get(username string) (auth.User, error)
	Add(u auth.User) error
	SetPassword(username, hash string) error
	SetSuperuser(username string, superuser bool) error
}

// Certificates is the certificate store (*certs.Manager).
type Certificates interface {
	List() ([]certs.Certificate, error)
	Add(meta certs.Meta, chain []*x509.Certificate, key crypto.Signer, source certs.Source) (certs.Certificate, error)
	Update(id string, meta certs.Meta, chain []*x509.Certificate, key crypto.Signer) (certs.Certificate, error)
}

// Gateway is what a bundle changes. A nil part refuses the bundles that
// need it.
type Gateway struct {
	Settings     Settings
	Admin        Admin
	Users        Users
	Certificates Certificates
}

// Report statuses.
const (
	// StatusApplied: every part of the bundle is in force.
	StatusApplied = "applied"
	// StatusRefused: the bundle was refused; nothing was changed.
	StatusRefused = "refused"
	// StatusFailed: the gateway failed while applying; Applied lists
	// what was changed before. Applying the bundle again is safe: every
	// part replaces what it set the first time.
	StatusFailed = "failed"
)

// Report is the outcome of applying a bundle, for whoever handed it in
// (the API's answer; the USB companion writes it to the stick) and the log.
// It holds no secret.
type Report struct {
	Status string `json:"status"`
	// Code is the refusal or failure code; "" when applied.
	Code string `json:"code,omitempty"`
	// Message says in a sentence what happened.
	Message  string    `json:"message"`
	Problems []Problem `json:"problems,omitempty"`
	// Warnings are things applied only in part, e.g. settings saved but
	// not yet in force.
	Warnings []string `json:"warnings,omitempty"`

	BundleSHA256 string    `json:"bundle_sha256"`
	Key          string    `json:"key,omitempty"`
	Device       string    `json:"device,omitempty"`
	IssuedAt     time.Time `json:"issued_at,omitzero"`
	ExpiresAt    time.Time `json:"expires_at,omitzero"`

	Applied Applied   `json:"applied"`
	Time    time.Time `json:"time"`
}

// Applied lists the changes made.
type Applied struct {
	SettingsVersion uint64   `json:"settings_version,omitempty"`
	AdminPassword   bool     `json:"admin_password,omitempty"`
	APIKeys         []string `json:"api_keys,omitempty"`
	MQTTUsers       []string `json:"mqtt_users,omitempty"`
	// ClientCAs are the certificate store ids of the trusted CAs.
	ClientCAs []string `json:"client_cas,omitempty"`
}

// Applier verifies bundles and applies them to a gateway.
type Applier struct {
	// KeysPath is the trusted keys' file or directory (LoadPublicKeys);
	// "" means DefaultKeysPath. It is read at every bundle.
	KeysPath string
	// DeviceID is this gateway's device id; "" accepts only bundles for
	// any device.
	DeviceID string
	Gateway  Gateway
	// Now returns the current time; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Apply verifies, checks and applies a bundle, and logs and returns the
// report. by names who handed it in, for the log ("local", "admin").
// Nothing is changed unless every check passed, including those against
// the gateway's state (locked settings, certificates in the store), and
// the settings, which are validated as a whole when saved, are applied
// first: an invalid settings patch changes nothing either.
func (a *Applier) Apply(ctx context.Context, bundle, sig []byte, by string) Report {
	now := time.Now()
	if a.Now != nil {
		now = a.Now()
	}
	sum := sha256.Sum256(bundle)
	rep := Report{Time: now.UTC(), BundleSHA256: hex.EncodeToString(sum[:])}
	plan, err := a.open(bundle, sig, now)
	if err == nil {
		rep.Key, rep.Device, rep.IssuedAt, rep.ExpiresAt = plan.Key, plan.Device, plan.IssuedAt, plan.ExpiresAt
		var steps []func(context.Context, *Report) error
		if steps, err = a.prepare(plan); err == nil {
			err = run(ctx, steps, &rep)
		}
	}
	a.finish(&rep, plan, err, by)
	return rep
}

func (a *Applier) logger() *slog.Logger {
	if a.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Logger
}

func (a *Applier) open(bundle, sig []byte, now time.Time) (*Plan, error) {
	path := a.KeysPath
	if path == "" {
		path = DefaultKeysPath
	}
	keys, err := LoadPublicKeys(path)
	if err != nil {
		// Open still tells an unsigned bundle from a missing key.
		a.logger().Warn("no trusted provisioning keys", "err", err)
	}
	return Open(bundle, sig, keys, now, a.DeviceID)
}

// prepare checks the plan against the gateway and returns the changes to
// make, in order.
func (a *Applier) prepare(p *Plan) ([]func(context.Context, *Report) error, error) {
	g := a.Gateway
	var steps []func(context.Context, *Report) error
	var missing []string
	if p.Settings != nil {
		if g.Settings == nil {
			missing = append(missing, "settings")
		} else {
			eff := g.Settings.Effective()
			var locked []Problem
			for _, path := range p.SettingsPaths {
				if eff.IsLocked(path) {
					locked = append(locked, Problem{Path: "settings." + path, Problem: "set by the image's settings file; it cannot be changed"})
				}
			}
			if len(locked) > 0 {
				return nil, refuseProblems(CodeLocked, "the bundle changes locked settings", locked)
			}
			steps = append(steps, a.applySettings(p))
		}
	}
	if len(p.Trust) > 0 {
		if g.Certificates == nil {
			missing = append(missing, "client CAs")
		} else {
			step, err := a.trustStep(p)
			if err != nil {
				return nil, err
			}
			steps = append(steps, step)
		}
	}
	if len(p.MQTTUsers) > 0 {
		if g.Users == nil {
			missing = append(missing, "MQTT users")
		} else {
			steps = append(steps, a.usersStep(p))
		}
	}
	if len(p.APIKeys) > 0 || p.AdminPasswordHash != "" {
		if g.Admin == nil {
			missing = append(missing, "admin credentials")
		} else {
			steps = append(steps, a.adminStep(p))
		}
	}
	if len(missing) > 0 {
		return nil, refuse(CodeUnavailable, "this gateway cannot apply the bundle's %s", strings.Join(missing, ", "))
	}
	return steps, nil
}

// run makes the changes in order and stops at the first error.
func run(ctx context.Context, steps []func(context.Context, *Report) error, rep *Report) error {
	for _, step := range steps {
		if err := step(ctx, rep); err != nil {
			return err
		}
	}
	return nil
}

func (a *Applier) applySettings(p *Plan) func(context.Context, *Report) error {
	return func(ctx context.Context, rep *Report) error {
		saved, err := a.Gateway.Settings.Apply(ctx, p.Settings, "provision:"+p.SHA256[:12])
		if saved.Version != 0 {
			rep.Applied.SettingsVersion = saved.Version
		}
		switch {
		case err == nil:
			return nil
		case saved.Version != 0:
			// Saved, so in force after a restart; what could not be
			// applied now (a listener's port) is in the log.
			a.logger().Error("provisioned settings saved but not fully applied", "version", saved.Version, "err", err)
			rep.Warnings = append(rep.Warnings, fmt.Sprintf(
				"the settings were saved as version %d but not all of them could be applied now; the gateway log has the details", saved.Version))
			return nil
		}
		if probs := fieldProblems(err); len(probs) > 0 {
			return refuseProblems(CodeInvalidSettings, "the settings are not valid", probs)
		}
		return fmt.Errorf("apply settings: %w", err)
	}
}

// fieldProblems lists the settings problems in err, named by their path
// in the bundle.
func fieldProblems(err error) []Problem {
	var out []Problem
	for _, fe := range config.FieldErrors(err) {
		out = append(out, Problem{Path: "settings." + fe.Path, Problem: fe.Problem})
	}
	return out
}

// trustStep checks the client CAs against the store: one already there is
// made a client CA if it is not; an id taken by another certificate or a
// revoked copy refuses the bundle.
func (a *Applier) trustStep(p *Plan) (func(context.Context, *Report) error, error) {
	list, err := a.Gateway.Certificates.List()
	if err != nil {
		return nil, fmt.Errorf("list certificates: %w", err)
	}
	byID := make(map[string]certs.Certificate, len(list))
	bySum := make(map[string]certs.Certificate, len(list))
	for _, c := range list {
		byID[c.ID] = c
		bySum[c.SHA256] = c
	}
	var probs []Problem
	type change struct {
		ca       ClientCA
		existing *certs.Certificate
	}
	var changes []change
	for i, ca := range p.Trust {
		path := fmt.Sprintf("trust[%d].certificate", i)
		if c, ok := bySum[ca.SHA256]; ok {
			if c.Revoked {
				probs = append(probs, Problem{Path: path, Problem: fmt.Sprintf("the certificate is revoked in the store (id %q)", c.ID)})
			}
			changes = append(changes, change{ca: ca, existing: &c})
			continue
		}
		if _, ok := byID[ca.ID()]; ok {
			probs = append(probs, Problem{Path: path, Problem: fmt.Sprintf("id %q is taken by another certificate", ca.ID())})
			continue
		}
		changes = append(changes, change{ca: ca})
	}
	if len(probs) > 0 {
		return nil, refuseProblems(CodeInvalid, "the bundle's client CAs conflict with the certificate store", probs)
	}
	return func(_ context.Context, rep *Report) error {
		for _, ch := range changes {
			switch c := ch.existing; {
			case c == nil:
				added, err := a.Gateway.Certificates.Add(certs.Meta{ID: ch.ca.ID(), Name: ch.ca.Name, ClientCA: true},
					[]*x509.Certificate{ch.ca.Cert}, nil, certs.SourceImported)
				if err != nil {
					return fmt.Errorf("add client CA %q: %w", ch.ca.Name, err)
				}
				rep.Applied.ClientCAs = append(rep.Applied.ClientCAs, added.ID)
			case !c.ClientCA:
				meta := certs.Meta{ID: c.ID, Name: c.Name, Description: c.Description, CARef: c.CARef, Exposed: c.Exposed,
					AutoRenew: c.AutoRenew, Client: c.Client, ClientCA: true, Tags: c.Tags, Metadata: c.Metadata}
				if _, err := a.Gateway.Certificates.Update(c.ID, meta, nil, nil); err != nil {
					return fmt.Errorf("trust certificate %q for clients: %w", c.ID, err)
				}
				rep.Applied.ClientCAs = append(rep.Applied.ClientCAs, c.ID)
			default:
				rep.Applied.ClientCAs = append(rep.Applied.ClientCAs, c.ID)
			}
		}
		return nil
	}, nil
}

// usersStep adds the MQTT users, or sets the password and superuser flag
// of those that exist.
func (a *Applier) usersStep(p *Plan) func(context.Context, *Report) error {
	users := a.Gateway.Users
	return func(_ context.Context, rep *Report) error {
		for _, u := range p.MQTTUsers {
			_, err := users.Get(u.Username)
			switch {
			case errors.Is(err, auth.ErrUserNotFound):
				err = users.Add(u)
			case err == nil:
				if err = users.SetPassword(u.Username, u.PasswordHash); err == nil {
					err = users.SetSuperuser(u.Username, u.Superuser)
				}
			}
			if err != nil {
				return fmt.Errorf("MQTT user %q: %w", u.Username, err)
			}
			rep.Applied.MQTTUsers = append(rep.Applied.MQTTUsers, u.Username)
		}
		return nil
	}
}

// adminStep imports the API keys, then sets the admin password.
func (a *Applier) adminStep(p *Plan) func(context.Context, *Report) error {
	adm := a.Gateway.Admin
	return func(_ context.Context, rep *Report) error {
		for _, k := range p.APIKeys {
			if err := adm.ImportAPIKey(k.Key, k.SecretHash); err != nil {
				return fmt.Errorf("API key %q: %w", k.Key.ID, err)
			}
			rep.Applied.APIKeys = append(rep.Applied.APIKeys, k.Key.ID)
		}
		if p.AdminPasswordHash != "" {
			if err := adm.SetAdminPasswordHash(p.AdminPasswordHash); err != nil {
				return fmt.Errorf("admin password: %w", err)
			}
			rep.Applied.AdminPassword = true
		}
		return nil
	}
}

// finish sets the report's status and message from the outcome and logs
// it.
func (a *Applier) finish(rep *Report, p *Plan, err error, by string) {
	log := a.logger()
	attrs := []any{"bundle_sha256", rep.BundleSHA256, "key", rep.Key, "device", rep.Device, "by", by}
	var ref *Refusal
	switch {
	case err == nil:
		rep.Status = StatusApplied
		rep.Message = "applied " + strings.Join(p.Parts(), "; ")
		log.Info("provisioning bundle applied", append(attrs, "parts", p.Parts(), "warnings", rep.Warnings)...)
	case errors.As(err, &ref) && rep.Applied.empty():
		rep.Status, rep.Code, rep.Message, rep.Problems = StatusRefused, ref.Code, "refused: "+ref.Message, ref.Problems
		log.Warn("provisioning bundle refused", append(attrs, "code", ref.Code, "reason", ref.Message)...)
	default:
		rep.Status, rep.Code = StatusFailed, CodeApplyFailed
		rep.Message = "failed while applying the bundle; the gateway log has the details"
		if !rep.Applied.empty() {
			rep.Message += "; applying it again is safe"
		}
		log.Error("provisioning bundle failed", append(attrs, "applied", rep.Applied, "err", err)...)
	}
}

func (a Applied) empty() bool {
	return a.SettingsVersion == 0 && !a.AdminPassword && len(a.APIKeys) == 0 && len(a.MQTTUsers) == 0 && len(a.ClientCAs) == 0
}
