package provisioning

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/edgegate/edgegate/gateway/admin"
	"github.com/edgegate/edgegate/gateway/auth"
	"github.com/edgegate/edgegate/gateway/config"
)

// Refusal codes: why a bundle was refused (Refusal.Code, Report.Code).
const (
	CodeTooLarge           = "too_large"
	CodeUnsigned           = "unsigned"
	CodeBadSignature       = "bad_signature"
	CodeNoKeys             = "no_trusted_keys"
	CodeUnsupportedVersion = "unsupported_version"
	CodeInvalid            = "invalid_bundle"
	CodeExpired            = "expired"
	CodeWrongDevice        = "wrong_device"
	// CodeLocked: the settings touch keys the image's settings file locks.
	CodeLocked = "locked_setting"
	// CodeInvalidSettings: the settings service found the resulting
	// settings invalid as a whole.
	CodeInvalidSettings = "invalid_settings"
	// CodeUnavailable: the bundle has a part this gateway cannot apply.
	CodeUnavailable = "unavailable"
	// CodeApplyFailed: a change failed after others were made (Report
	// status "incomplete").
	CodeApplyFailed = "apply_failed"
)

// Problem is one invalid part of a bundle; Path is its place, e.g.
// "mqtt_users[1].password_hash" or "settings.listeners.tcp.bind".
type Problem struct {
	Path    string `json:"path"`
	Problem string `json:"problem"`
}

// Refusal is the error that refuses a bundle: a Code from the list above
// and a message fit to show to whoever handed the bundle in (it names no
// internal detail), with the problems of an invalid bundle.
type Refusal struct {
	Code     string
	Message  string
	Problems []Problem
}

func (r *Refusal) Error() string { return r.Message }

func refuse(code, format string, args ...any) *Refusal {
	return &Refusal{Code: code, Message: fmt.Sprintf(format, args...)}
}

func refuseProblems(code, what string, problems []Problem) *Refusal {
	parts := make([]string, len(problems))
	for i, p := range problems {
		parts[i] = p.Problem
		if p.Path != "" {
			parts[i] = p.Path + ": " + p.Problem
		}
	}
	return &Refusal{Code: code, Message: what + ": " + strings.Join(parts, "; "), Problems: problems}
}

// Plan is a checked bundle: every part parsed into the form it is stored
// in, ready to apply.
type Plan struct {
	// SHA256 is the hex SHA-256 of the bundle's bytes.
	SHA256 string
	// Key is the fingerprint of the key that signed it; "" when the
	// signature was not checked (Check).
	Key                 string
	Device              string
	IssuedAt, ExpiresAt time.Time

	// Settings is the merge patch; nil for none.
	Settings []byte
	// SettingsPaths are the settings it sets or deletes.
	SettingsPaths []string
	// AdminPasswordHash is "" to leave the admin password alone.
	AdminPasswordHash string
	APIKeys           []ImportedKey
	// MQTTUsers carry stored-form password hashes.
	MQTTUsers []auth.User
	Trust     []ClientCA
}

// ImportedKey is an API key and the hash of its secret.
type ImportedKey struct {
	Key        admin.APIKey
	SecretHash string
}

// ClientCA is a CA certificate to trust for client certificates.
type ClientCA struct {
	Name string
	Cert *x509.Certificate
	// SHA256 is the hex SHA-256 of the certificate.
	SHA256 string
}

// ID is the certificate store id a client CA is stored under: derived
// from the certificate, so applying a bundle twice finds the first one.
func (c ClientCA) ID() string { return "provisioned-" + c.SHA256[:16] }

// Parts describes what the plan changes, one phrase per part, for
// reports, logs and the CLI.
func (p *Plan) Parts() []string {
	var out []string
	if p.Settings != nil {
		out = append(out, "settings "+strings.Join(p.SettingsPaths, ", "))
	}
	if p.AdminPasswordHash != "" {
		out = append(out, "admin password")
	}
	if len(p.APIKeys) > 0 {
		ids := make([]string, len(p.APIKeys))
		for i, k := range p.APIKeys {
			ids[i] = k.Key.ID
		}
		out = append(out, plural(len(ids), "API key", "API keys")+" "+strings.Join(ids, ", "))
	}
	if len(p.MQTTUsers) > 0 {
		names := make([]string, len(p.MQTTUsers))
		for i, u := range p.MQTTUsers {
			names[i] = u.Username
		}
		out = append(out, plural(len(names), "MQTT user", "MQTT users")+" "+strings.Join(names, ", "))
	}
	if len(p.Trust) > 0 {
		names := make([]string, len(p.Trust))
		for i, c := range p.Trust {
			names[i] = fmt.Sprintf("%q", c.Name)
		}
		out = append(out, plural(len(names), "client CA", "client CAs")+" "+strings.Join(names, ", "))
	}
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Open verifies a bundle's signature with the trusted keys, then parses
// and checks it (see Check). The signature is checked first: nothing of an
// untrusted bundle is parsed. Any refusal is a *Refusal.
func Open(data, sig []byte, keys []PublicKey, now time.Time, device string) (*Plan, error) {
	if len(data) > MaxBundleBytes {
		return nil, refuse(CodeTooLarge, "the bundle is larger than %d bytes", MaxBundleBytes)
	}
	key, err := Verify(data, sig, keys)
	if err != nil {
		return nil, err
	}
	p, err := Check(data, now, device)
	if err != nil {
		return nil, err
	}
	p.Key = key.Fingerprint()
	return p, nil
}

// Check parses a bundle and checks everything it says without looking at
// a gateway: version, times (expired at now?), target device (device is
// this gateway's id; "" matches only bundles for any device) and every
// part: hashes parsed, certificates parsed and checked to be CAs. It does
// not check the signature (Open does). Any refusal is a *Refusal.
func Check(data []byte, now time.Time, device string) (*Plan, error) {
	b, err := Parse(data)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	p := &Plan{SHA256: hex.EncodeToString(sum[:]), Device: b.Device}
	if err := checkHeader(b, p, now, device); err != nil {
		return nil, err
	}
	var probs []Problem
	add := func(path, format string, args ...any) {
		probs = append(probs, Problem{Path: path, Problem: fmt.Sprintf(format, args...)})
	}
	checkSettings(b, p)
	if b.AdminPasswordHash != "" {
		if err := admin.CheckAdminPasswordHash(b.AdminPasswordHash); err != nil {
			add("admin_password_hash", "%s", strings.TrimPrefix(err.Error(), "admin: "))
		}
		p.AdminPasswordHash = b.AdminPasswordHash
	}
	checkAPIKeys(b, p, add)
	checkMQTTUsers(b, p, add)
	checkTrust(b, p, now, add)
	if len(probs) == 0 && len(p.Parts()) == 0 {
		add("", "the bundle has nothing to apply")
	}
	if len(probs) > 0 {
		return nil, refuseProblems(CodeInvalid, "the bundle is not valid", probs)
	}
	return p, nil
}

func checkHeader(b *Bundle, p *Plan, now time.Time, device string) error {
	var probs []Problem
	parseTime := func(path, s string) time.Time {
		if s == "" {
			probs = append(probs, Problem{Path: path, Problem: "missing; an RFC 3339 time such as 2026-11-23T12:00:00Z"})
			return time.Time{}
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			probs = append(probs, Problem{Path: path, Problem: fmt.Sprintf("%q is not an RFC 3339 time such as 2026-11-23T12:00:00Z", s)})
		}
		return t
	}
	p.IssuedAt = parseTime("issued_at", b.IssuedAt)
	p.ExpiresAt = parseTime("expires_at", b.ExpiresAt)
	if len(probs) == 0 && !p.ExpiresAt.After(p.IssuedAt) {
		probs = append(probs, Problem{Path: "expires_at", Problem: "must be after issued_at"})
	}
	if len(probs) > 0 {
		return refuseProblems(CodeInvalid, "the bundle is not valid", probs)
	}
	// issued_at in the future is not refused: a gateway without a
	// real-time clock may boot with a clock behind the signer's.
	if !now.Before(p.ExpiresAt) {
		return refuse(CodeExpired, "the bundle expired at %s (the gateway's clock says %s)",
			p.ExpiresAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	switch {
	case b.Device == "" || b.Device == AnyDevice:
	case device == "":
		return refuse(CodeWrongDevice, "the bundle is for device %q and this gateway has no device id", b.Device)
	case b.Device != device:
		return refuse(CodeWrongDevice, "the bundle is for device %q, not this gateway (%q)", b.Device, device)
	}
	return nil
}

func checkSettings(b *Bundle, p *Plan) {
	if len(b.Settings) == 0 {
		return
	}
	// Parse decoded them strictly as settings: they are an object of
	// known settings with values of the right types.
	paths := config.PatchPaths(b.Settings)
	if len(paths) == 0 {
		return // {}: nothing to change
	}
	p.Settings = b.Settings
	p.SettingsPaths = paths
}

func checkAPIKeys(b *Bundle, p *Plan, add func(path, format string, args ...any)) {
	seen := map[string]bool{}
	for i, k := range b.APIKeys {
		path := fmt.Sprintf("api_keys[%d]", i)
		key, err := admin.CheckAPIKeyImport(admin.APIKey{ID: k.ID, Name: k.Name, Scopes: k.Scopes}, k.SecretHash)
		if err != nil {
			add(path, "%s", strings.TrimPrefix(err.Error(), "admin: "))
			continue
		}
		if seen[k.ID] {
			add(path+".id", "%q appears twice", k.ID)
			continue
		}
		seen[k.ID] = true
		p.APIKeys = append(p.APIKeys, ImportedKey{Key: key, SecretHash: strings.ToLower(k.SecretHash)})
	}
}

func checkMQTTUsers(b *Bundle, p *Plan, add func(path, format string, args ...any)) {
	seen := map[string]bool{}
	for i, u := range b.MQTTUsers {
		path := fmt.Sprintf("mqtt_users[%d]", i)
		if err := checkUsername(u.Username); err != nil {
			add(path+".username", "%s", err)
			continue
		}
		if seen[u.Username] {
			add(path+".username", "%q appears twice", u.Username)
			continue
		}
		seen[u.Username] = true
		var stored string
		if h := u.PasswordHash; h != nil {
			// Also EMQ's "salt plain" spelling, which ImportHash takes.
			if slices.Contains(strings.Fields(strings.ToLower(h.Kind)), "plain") {
				// A lost stick must not give away passwords.
				add(path+".password_hash", "kind \"plain\" is not accepted in a bundle: give a hash")
				continue
			}
			var err error
			if stored, err = auth.ImportHash(h.Kind, h.Hash, h.Salt, h.SaltPosition); err != nil {
				add(path+".password_hash", "%s", err)
				continue
			}
		}
		p.MQTTUsers = append(p.MQTTUsers, auth.User{Username: u.Username, PasswordHash: stored, Superuser: u.Superuser})
	}
}

// maxUsername is auth's bound on usernames.
const maxUsername = 256

// checkUsername applies auth's rules for usernames (auth.Users.Add checks
// them only when it writes, and a bundle is checked before anything is).
func checkUsername(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > maxUsername:
		return fmt.Errorf("longer than %d bytes", maxUsername)
	case !utf8.ValidString(s):
		return errors.New("not valid UTF-8")
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return errors.New("contains a control character")
	}
	return nil
}

func checkTrust(b *Bundle, p *Plan, now time.Time, add func(path, format string, args ...any)) {
	seen := map[string]bool{}
	for i, t := range b.Trust {
		path := fmt.Sprintf("trust[%d].certificate", i)
		cert, err := parseOneCertificate(t.Certificate)
		if err != nil {
			add(path, "%s", err)
			continue
		}
		switch {
		case !cert.BasicConstraintsValid || !cert.IsCA:
			add(path, "%q is not a CA certificate", cert.Subject)
			continue
		case !now.Before(cert.NotAfter):
			add(path, "%q expired at %s", cert.Subject, cert.NotAfter.UTC().Format(time.RFC3339))
			continue
		}
		sum := sha256.Sum256(cert.Raw)
		ca := ClientCA{Name: strings.TrimSpace(t.Name), Cert: cert, SHA256: hex.EncodeToString(sum[:])}
		if seen[ca.SHA256] {
			add(path, "the same certificate appears twice")
			continue
		}
		seen[ca.SHA256] = true
		if ca.Name == "" {
			ca.Name = cert.Subject.CommonName
		}
		if ca.Name == "" {
			ca.Name = cert.Subject.String()
		}
		p.Trust = append(p.Trust, ca)
	}
}

// parseOneCertificate reads exactly one PEM CERTIFICATE block.
func parseOneCertificate(s string) (*x509.Certificate, error) {
	block, rest := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("not a PEM CERTIFICATE block")
	}
	if block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("a PEM %q block, not CERTIFICATE", block.Type)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("more than one PEM block: give each certificate its own entry")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return cert, nil
}
