package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Ref names a secret of a list and a version of it.
type Ref struct {
	List, Name string
	Version    int
}

// Secret is one version of a secret: the content of the configured field
// (a PEM bundle, not checked here).
type Secret struct {
	Ref
	Data []byte
}

// DeviceStatus is what a device reports about its last sync, stored as the
// fields of the secret <prefix>/status/<device-id>.
type DeviceStatus struct {
	DeviceID       string              `json:"device_id"`
	Hostname       string              `json:"hostname,omitempty"`
	AppliedVersion uint64              `json:"applied_version"`
	Fingerprints   map[string][]string `json:"fingerprints"` // list → sorted SHA-256 fingerprints
	SyncedAt       time.Time           `json:"synced_at"`
	LastError      string              `json:"last_error,omitempty"`
}

// The documented KV v2 response shapes (Vault API docs, "KV secrets engine -
// version 2": List Secrets, Read Secret Metadata, Read Secret Version,
// Create/Update Secret); only the fields used here.
type (
	listResponse struct {
		Data *struct {
			Keys []string `json:"keys"`
		} `json:"data"`
	}
	versionMetadata struct {
		Version      int    `json:"version"` // in data reads only
		DeletionTime string `json:"deletion_time"`
		Destroyed    bool   `json:"destroyed"`
	}
	metadataResponse struct {
		Data *struct {
			CurrentVersion int                        `json:"current_version"`
			Versions       map[string]versionMetadata `json:"versions"`
		} `json:"data"`
	}
	readResponse struct {
		Data *struct {
			Data     map[string]json.RawMessage `json:"data"`
			Metadata versionMetadata            `json:"metadata"`
		} `json:"data"`
	}
	writeResponse struct {
		Data *struct {
			Version int `json:"version"`
		} `json:"data"`
	}
)

// kvPath is the escaped API path of a secret (or folder, with no name) below
// the mount's data/ or metadata/ endpoint.
func (c *Client) kvPath(endpoint, folder, name string) string {
	p := escapePath(c.cfg.Mount) + "/" + endpoint + "/" + escapePath(c.cfg.Prefix) + "/" + url.PathEscape(folder)
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

// List returns the secrets of both lists, each with its current version.
// Secrets whose current version is deleted or destroyed are left out, as
// are folders and names that cannot be a secret name here.
func (c *Client) List(ctx context.Context) ([]Ref, error) {
	var refs []Ref
	for _, list := range []string{TrustList, IssuerList} {
		names, err := c.listNames(ctx, list)
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			version, err := c.currentVersion(ctx, list, name)
			if errors.Is(err, ErrNotFound) {
				continue // deleted since the list
			}
			if err != nil {
				return nil, err
			}
			if version > 0 {
				refs = append(refs, Ref{List: list, Name: name, Version: version})
			}
		}
	}
	return refs, nil
}

// listNames lists the secret names in a folder; an empty or absent folder
// is a 404 in Vault, and no names here.
func (c *Client) listNames(ctx context.Context, folder string) ([]string, error) {
	req := request{method: http.MethodGet, path: c.kvPath("metadata", folder, ""), query: url.Values{"list": {"true"}}}
	var resp listResponse
	err := c.call(ctx, req, &resp)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", folder, err)
	}
	names, err := parseList(resp)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", folder, err)
	}
	out := names[:0]
	for _, name := range names {
		if strings.HasSuffix(name, "/") {
			c.log.Debug("vault list: skipping a folder", "list", folder, "key", name)
			continue
		}
		if err := validateName(name); err != nil {
			c.log.Warn("vault list: skipping a key that cannot be a name", "list", folder, "err", err)
			continue
		}
		out = append(out, name)
	}
	return out, nil
}

func parseList(resp listResponse) ([]string, error) {
	if resp.Data == nil {
		return nil, fmt.Errorf("%w: no data in the list response", ErrBadResponse)
	}
	if len(resp.Data.Keys) > maxListKeys {
		return nil, fmt.Errorf("%w: %d keys, over the limit of %d", ErrBadResponse, len(resp.Data.Keys), maxListKeys)
	}
	return resp.Data.Keys, nil
}

// currentVersion reads a secret's metadata: its current version, or 0 when
// that version is deleted or destroyed.
func (c *Client) currentVersion(ctx context.Context, folder, name string) (int, error) {
	var resp metadataResponse
	if err := c.call(ctx, request{method: http.MethodGet, path: c.kvPath("metadata", folder, name)}, &resp); err != nil {
		return 0, fmt.Errorf("read metadata of %s/%s: %w", folder, name, err)
	}
	v, err := parseMetadata(resp, c.cfg.Now())
	if err != nil {
		return 0, fmt.Errorf("read metadata of %s/%s: %w", folder, name, err)
	}
	return v, nil
}

func parseMetadata(resp metadataResponse, now time.Time) (int, error) {
	if resp.Data == nil || resp.Data.CurrentVersion < 0 {
		return 0, fmt.Errorf("%w: no data.current_version in the metadata response", ErrBadResponse)
	}
	cur := resp.Data.CurrentVersion
	if md, ok := resp.Data.Versions[strconv.Itoa(cur)]; ok && md.deleted(now) {
		return 0, nil
	}
	return cur, nil
}

// deleted reports whether a version is destroyed or its deletion time has
// come (a future deletion_time comes from delete_version_after).
func (m versionMetadata) deleted(now time.Time) bool {
	if m.Destroyed {
		return true
	}
	if m.DeletionTime == "" {
		return false
	}
	t, err := time.Parse(time.RFC3339Nano, m.DeletionTime)
	return err != nil || !t.After(now)
}

// Read returns version r.Version of a secret (the latest if 0).
func (c *Client) Read(ctx context.Context, r Ref) (Secret, error) {
	if err := validateList(r.List); err != nil {
		return Secret{}, fmt.Errorf("read %s/%s: %w", r.List, r.Name, err)
	}
	if err := validateName(r.Name); err != nil {
		return Secret{}, fmt.Errorf("read %s/%s: %w", r.List, r.Name, err)
	}
	req := request{method: http.MethodGet, path: c.kvPath("data", r.List, r.Name)}
	if r.Version > 0 {
		req.query = url.Values{"version": {strconv.Itoa(r.Version)}}
	}
	var resp readResponse
	if err := c.call(ctx, req, &resp); err != nil {
		return Secret{}, fmt.Errorf("read %s/%s version %d: %w", r.List, r.Name, r.Version, err)
	}
	s, err := parseRead(resp, r, c.cfg.Field)
	if err != nil {
		return Secret{}, fmt.Errorf("read %s/%s version %d: %w", r.List, r.Name, r.Version, err)
	}
	return s, nil
}

func parseRead(resp readResponse, r Ref, field string) (Secret, error) {
	if resp.Data == nil {
		return Secret{}, fmt.Errorf("%w: no data in the read response", ErrBadResponse)
	}
	if resp.Data.Data == nil { // a deleted version, had the vault not said 404
		return Secret{}, ErrNotFound
	}
	md := resp.Data.Metadata
	if r.Version > 0 && md.Version != r.Version {
		return Secret{}, fmt.Errorf("%w: asked for version %d, got %d", ErrBadResponse, r.Version, md.Version)
	}
	raw, ok := resp.Data.Data[field]
	if !ok {
		return Secret{}, fmt.Errorf("%w: no field %q in the secret", ErrBadResponse, field)
	}
	var value string
	if err := json.Unmarshal(raw, &value); err != nil {
		return Secret{}, fmt.Errorf("%w: field %q is not a string", ErrBadResponse, field)
	}
	r.Version = md.Version
	return Secret{Ref: r, Data: append([]byte{}, value...)}, nil
}

// Write stores data as a new version of a secret of list (creating it), and
// returns that version. It checks-and-sets against the version it has just
// read, so a concurrent writer makes it fail with ErrConflict rather than be
// overwritten unseen.
func (c *Client) Write(ctx context.Context, list, name string, data []byte) (int, error) {
	if err := validateList(list); err != nil {
		return 0, fmt.Errorf("write %s/%s: %w", list, name, err)
	}
	if err := validateName(name); err != nil {
		return 0, fmt.Errorf("write %s/%s: %w", list, name, err)
	}
	if !utf8.Valid(data) {
		return 0, fmt.Errorf("write %s/%s: data is not UTF-8 text", list, name)
	}
	var meta metadataResponse
	cas := 0
	err := c.call(ctx, request{method: http.MethodGet, path: c.kvPath("metadata", list, name)}, &meta)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return 0, fmt.Errorf("write %s/%s: read metadata: %w", list, name, err)
	case meta.Data == nil:
		return 0, fmt.Errorf("write %s/%s: %w: no data in the metadata response", list, name, ErrBadResponse)
	default:
		cas = meta.Data.CurrentVersion
	}
	body := map[string]any{
		"data":    map[string]string{c.cfg.Field: string(data)},
		"options": map[string]int{"cas": cas},
	}
	var resp writeResponse
	if err := c.call(ctx, request{method: http.MethodPost, path: c.kvPath("data", list, name), body: body, write: true}, &resp); err != nil {
		return 0, fmt.Errorf("write %s/%s: %w", list, name, err)
	}
	version, err := parseWrite(resp)
	if err != nil {
		return 0, fmt.Errorf("write %s/%s: %w", list, name, err)
	}
	c.log.Info("wrote vault secret", "list", list, "name", name, "version", version)
	return version, nil
}

func parseWrite(resp writeResponse) (int, error) {
	if resp.Data == nil || resp.Data.Version <= 0 {
		return 0, fmt.Errorf("%w: no data.version in the write response", ErrBadResponse)
	}
	return resp.Data.Version, nil
}

// ReportStatus writes st as the secret <prefix>/status/<st.DeviceID>, its
// fields those of DeviceStatus, so `vault kv get` shows them as they are.
func (c *Client) ReportStatus(ctx context.Context, st DeviceStatus) error {
	if err := validateName(st.DeviceID); err != nil {
		return fmt.Errorf("report status: device id: %w", err)
	}
	req := request{method: http.MethodPost, path: c.kvPath("data", statusList, st.DeviceID), body: map[string]any{"data": st}, write: true}
	if err := c.call(ctx, req, nil); err != nil {
		return fmt.Errorf("report status of %s: %w", st.DeviceID, err)
	}
	return nil
}

// Devices returns the status every device has reported, sorted by device
// id. A status that does not decode is left out (and logged): one device's
// bad entry must not hide the fleet.
func (c *Client) Devices(ctx context.Context) ([]DeviceStatus, error) {
	ids, err := c.listNames(ctx, statusList)
	if err != nil {
		return nil, fmt.Errorf("devices: %w", err)
	}
	var out []DeviceStatus
	for _, id := range ids {
		var resp readResponse
		err := c.call(ctx, request{method: http.MethodGet, path: c.kvPath("data", statusList, id)}, &resp)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("devices: read status of %s: %w", id, err)
		}
		st, err := parseStatus(resp, id)
		if err != nil {
			c.log.Warn("vault: skipping a device status that does not decode", "device", id, "err", err)
			continue
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b DeviceStatus) int { return strings.Compare(a.DeviceID, b.DeviceID) })
	return out, nil
}

func parseStatus(resp readResponse, id string) (DeviceStatus, error) {
	if resp.Data == nil || resp.Data.Data == nil {
		return DeviceStatus{}, fmt.Errorf("%w: no data.data in the read response", ErrBadResponse)
	}
	raw, err := json.Marshal(resp.Data.Data)
	if err != nil {
		return DeviceStatus{}, err
	}
	var st DeviceStatus
	if err := json.Unmarshal(raw, &st); err != nil {
		return DeviceStatus{}, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	// The key names the device; the field only repeats it.
	st.DeviceID = id
	return st, nil
}

// Check verifies the address, TLS and credentials by looking up the token
// (logging in first when the method needs it), e.g. for a "test connection"
// button.
func (c *Client) Check(ctx context.Context) error {
	var resp struct {
		Data json.RawMessage `json:"data"`
	}
	if err := c.call(ctx, request{method: http.MethodGet, path: "auth/token/lookup-self"}, &resp); err != nil {
		return fmt.Errorf("check vault: %w", err)
	}
	if len(resp.Data) == 0 {
		return fmt.Errorf("check vault: %w: no data in the lookup-self response", ErrBadResponse)
	}
	return nil
}

func validateList(list string) error {
	if list != TrustList && list != IssuerList {
		return fmt.Errorf("list %q: want %q or %q", list, TrustList, IssuerList)
	}
	return nil
}
