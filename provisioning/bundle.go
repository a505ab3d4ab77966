// Package provisioning reads, verifies and applies provisioning bundles:
// a signed edgegate-provision.json that sets up a gateway without anyone
// logging in to it — settings, the admin password, API keys, MQTT users
// and client CAs — handed over from a USB stick by the edgegate-usbd
// companion, or by the admin, through the API's POST /api/v1/provision.
//
// A bundle is trusted only when its detached Ed25519 signature
// (edgegate-provision.json.sig, the raw 64 bytes over the file's exact
// bytes) verifies with one of the keys baked into the image
// (DefaultKeysPath). Everything in it is checked — signature, schema,
// expiry, target device, every hash and certificate, locked settings —
// before the first change, so a bundle that is refused changes nothing.
// The settings go through the same validated path as the API and web UI.
package provisioning

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/edgegate/edgegate/gateway/config"
)

// File names on a provisioning stick.
const (
	BundleName    = "edgegate-provision.json"
	SignatureName = BundleName + ".sig"
	// ResultName is the report the USB companion writes back when the
	// stick is writable.
	ResultName = "edgegate-provision.result.json"
)

// Version is the bundle format this gateway reads.
const Version = 1

// MaxBundleBytes bounds a bundle: settings, a few hashes and CA
// certificates fit many times over.
const MaxBundleBytes = 256 << 10

// AnyDevice in Bundle.Device makes a bundle apply to every gateway.
const AnyDevice = "*"

// Bundle is edgegate-provision.json as written. Every part but the header
// is optional.
type Bundle struct {
	Version int `json:"version"`
	// Device is the device id the bundle is for; "" or "*" is any.
	Device string `json:"device,omitempty"`
	// IssuedAt and ExpiresAt are RFC 3339 times; a bundle past ExpiresAt
	// is refused.
	IssuedAt  string `json:"issued_at"`
	ExpiresAt string `json:"expires_at"`
	// Settings is a JSON merge patch (RFC 7396) of the settings document,
	// as PATCH /api/v1/settings takes.
	Settings json.RawMessage `json:"settings,omitempty"`
	// AdminPasswordHash replaces the admin password (and completes the
	// setup); see admin.CheckAdminPasswordHash for its form.
	AdminPasswordHash string      `json:"admin_password_hash,omitempty"`
	APIKeys           []APIKey    `json:"api_keys,omitempty"`
	MQTTUsers         []MQTTUser  `json:"mqtt_users,omitempty"`
	Trust             []TrustedCA `json:"trust,omitempty"`
}

// APIKey is an admin API key whose secret was made by the bundle's author:
// only its hash travels. The key authenticates as HTTP Basic
// "<id>:<secret>".
type APIKey struct {
	// ID is "egk_" and 1-60 of a-z, 0-9, '_', '-'.
	ID     string   `json:"id"`
	Name   string   `json:"name"`
	Scopes []string `json:"scopes,omitempty"`
	// SecretHash is the hex SHA-256 of the secret.
	SecretHash string `json:"secret_hash"`
}

// MQTTUser is an MQTT username/password account. An existing user of the
// same name gets the password and superuser flag.
type MQTTUser struct {
	Username  string `json:"username"`
	Superuser bool   `json:"superuser,omitempty"`
	// PasswordHash is absent for a user without password login (a
	// certificate identity made superuser).
	PasswordHash *PasswordHash `json:"password_hash,omitempty"`
}

// PasswordHash is an imported hash in the form POST /api/v1/users takes
// (see auth.ImportHash), except "plain": a bundle carries no password.
type PasswordHash struct {
	Kind         string `json:"kind"`
	Hash         string `json:"hash"`
	Salt         string `json:"salt,omitempty"`
	SaltPosition string `json:"salt_position,omitempty"`
}

// TrustedCA is a CA certificate to trust for client certificates, beside
// the local CA.
type TrustedCA struct {
	// Name is shown in the certificate store; "" means the subject's CN.
	Name string `json:"name,omitempty"`
	// Certificate is one PEM CERTIFICATE block.
	Certificate string `json:"certificate"`
}

// schema is Bundle with the settings decoded as settings, so one strict
// decoding reports an unknown setting with its line and column in the
// bundle, as an unknown bundle key is.
type schema struct {
	Version           int            `json:"version"`
	Device            string         `json:"device"`
	IssuedAt          string         `json:"issued_at"`
	ExpiresAt         string         `json:"expires_at"`
	Settings          *config.Config `json:"settings"`
	AdminPasswordHash string         `json:"admin_password_hash"`
	APIKeys           []APIKey       `json:"api_keys"`
	MQTTUsers         []MQTTUser     `json:"mqtt_users"`
	Trust             []TrustedCA    `json:"trust"`
}

// Parse decodes a bundle strictly: unknown keys (in the bundle and in its
// settings), wrong types and trailing data are refused with their line and
// column. A version other than Version is refused before anything else, so
// a newer bundle is not reported as full of unknown keys.
func Parse(data []byte) (*Bundle, error) {
	if len(data) > MaxBundleBytes {
		return nil, refuse(CodeTooLarge, "the bundle is larger than %d bytes", MaxBundleBytes)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, refuse(CodeInvalid, "the bundle is empty")
	}
	var head struct {
		Version json.RawMessage `json:"version"`
	}
	// Unmarshal checks the syntax of the whole input first, trailing data
	// included, so the strict decodings below see one valid JSON value.
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, invalidJSON(data, err)
	}
	switch v := string(head.Version); v {
	case "":
		return nil, refuse(CodeInvalid, "the bundle has no \"version\"")
	case "1":
	default:
		return nil, refuse(CodeUnsupportedVersion, "bundle version %s is not supported; this gateway reads version %d", v, Version)
	}
	if err := decodeStrict(data, &schema{}); err != nil {
		return nil, err
	}
	var b Bundle
	if err := decodeStrict(data, &b); err != nil {
		return nil, err
	}
	if s := bytes.TrimSpace(b.Settings); bytes.Equal(s, []byte("null")) {
		b.Settings = nil
	}
	return &b, nil
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalidJSON(data, err)
	}
	return nil
}

// invalidJSON describes a decoding error with its place in data.
func invalidJSON(data []byte, err error) error {
	var (
		syn    *json.SyntaxError
		typ    *json.UnmarshalTypeError
		offset int64
	)
	msg := strings.TrimPrefix(err.Error(), "json: ")
	switch {
	case errors.As(err, &syn):
		offset = syn.Offset - 1
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "value"
		}
		offset = typ.Offset
		if offset == 0 {
			// A type's own UnmarshalJSON (a settings duration) gives no
			// offset: point at the key.
			offset = keyOffset(data, field[strings.LastIndex(field, ".")+1:])
		}
		want := typ.Type.String()
		if typ.Type == reflect.TypeFor[config.Duration]() {
			want = `a duration string such as "60s"`
		}
		msg = fmt.Sprintf("%s: expected %s, got %s", field, want, typ.Value)
	case strings.HasPrefix(msg, "unknown field "):
		name := strings.Trim(strings.TrimPrefix(msg, "unknown field "), `"`)
		offset = keyOffset(data, name)
		msg = fmt.Sprintf("unknown key %q", name)
	default:
		// Only the settings' own types (an ACL rule) fail otherwise; their
		// errors name their place themselves.
		return refuse(CodeInvalid, "the bundle's settings are not valid: %s", msg)
	}
	return refuse(CodeInvalid, "%s: %s", position(data, offset), msg)
}

// keyOffset finds where an object key is written in data, for errors that
// name a key but carry no offset; the first occurrence is a good guess.
func keyOffset(data []byte, key string) int64 {
	q, _ := json.Marshal(key)
	if i := bytes.Index(data, q); i >= 0 {
		return int64(i)
	}
	return 0
}

func position(data []byte, offset int64) string {
	line, col := config.LineCol(data, offset)
	return fmt.Sprintf("line %d, column %d", line, col)
}
