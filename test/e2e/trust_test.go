package e2e

import (
	"context"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// trustOverview is the part of GET /api/v1/trust the tests read.
type trustOverview struct {
	Applied struct {
		Number  uint64       `json:"number"`
		Entries []trustEntry `json:"entries"`
	} `json:"applied"`
	Staged *struct {
		Number uint64 `json:"number"`
	} `json:"staged"`
	Sync struct {
		Enabled     bool      `json:"enabled"`
		DeviceID    string    `json:"deviceId"`
		LastError   string    `json:"LastError"`
		LastSuccess time.Time `json:"LastSuccess"`
	} `json:"sync"`
}

type trustEntry struct {
	ID          string `json:"id"`
	List        string `json:"list"`
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
	Source      struct {
		Kind    string `json:"kind"`
		Name    string `json:"name"`
		Version int    `json:"version"`
	} `json:"source"`
}

func (o trustOverview) has(name string) (trustEntry, bool) {
	i := slices.IndexFunc(o.Applied.Entries, func(e trustEntry) bool { return e.Name == name })
	if i < 0 {
		return trustEntry{}, false
	}
	return o.Applied.Entries[i], true
}

func trustState(t testing.TB, d *daemon) trustOverview {
	t.Helper()
	var o trustOverview
	d.api(t, "GET", "/api/v1/trust", nil, http.StatusOK, &o)
	return o
}

// syncNow runs a vault sync on d and requires it to succeed.
func syncNow(t testing.TB, d *daemon) {
	t.Helper()
	d.api(t, "POST", "/api/v1/trust/sync", nil, http.StatusOK, nil)
}

// connectMTLS connects client over the mTLS listener of d; an error means
// the handshake or the CONNECT was refused.
func connectMTLS(ctx context.Context, t testing.TB, d *daemon, roots *x509.CertPool, client clientCert, id string) (*goClient, error) {
	t.Helper()
	return connectGo(ctx, t, tlsDialer(d.addr("tls"), (&pki{pool: roots}).tlsConfig(&client)), connOpts{clientID: id})
}

// canConnect reports whether client completes an MQTT connection over the
// mTLS listener of d, and leaves again.
func canConnect(ctx context.Context, t testing.TB, d *daemon, roots *x509.CertPool, client clientCert, id string) bool {
	t.Helper()
	c, err := connectMTLS(ctx, t, d, roots, client, id)
	if err != nil {
		return false
	}
	c.close()
	return true
}

// TestTrustListVaultSync runs two gateways against one real vault server
// (vault_test.go: Vault in dev mode with TLS). Both log in with their device
// certificates (cert auth, role "gateways" trusting their local CAs, no
// token configured), receive a CA added in the vault and accept its clients
// over mTLS without a restart; a local delete stays local; rollback restores
// the pool; with the vault down (suspended: requests time out) both keep
// their last-known-good set (also across a restart) and report the error;
// with the vault back they converge, including on a CA one of them uploaded.
func TestTrustListVaultSync(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 180*time.Second)
	settings := obj{
		"auth":      obj{"allow_anonymous": true},
		"listeners": obj{"tls": obj{"tls": obj{"client_auth": "required", "client_ca": "local"}}},
	}
	gws := []*daemon{startDaemon(t, settings), startDaemon(t, settings)}
	a, b := gws[0], gws[1]

	// Enrolment: the vault's cert auth trusts each gateway's local CA.
	var deviceCAs []byte
	roots := map[*daemon]*x509.CertPool{}
	for _, d := range gws {
		deviceCAs = append(deviceCAs, localCA(t, d)...)
		roots[d] = localCAPool(t, d)
	}
	v := startVault(ctx, t, deviceCAs)
	vaultCA := filepath.Join(t.TempDir(), "vault-ca.pem")
	if err := os.WriteFile(vaultCA, v.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range gws {
		d.api(t, "PATCH", "/api/v1/settings", obj{"trust": obj{
			"auto_apply": true,
			"vault":      obj{"address": v.URL(), "ca_file": vaultCA, "auth_method": "cert", "cert_role": vaultCertRole, "poll_interval": "1h"},
		}}, http.StatusOK, nil)
	}

	sensors := newTestCA(t, "sensors CA")
	sensor := sensors.issueClient(t, "sensor-1")
	for _, d := range gws {
		if canConnect(ctx, t, d, roots[d], sensor, "sensor-1") {
			t.Fatal("a client of a CA nobody trusts yet connected")
		}
	}

	v.Put("edgegate/trust/sensors-ca", map[string]string{"certificate": string(sensors.certPEM)})
	for _, d := range gws {
		syncNow(t, d)
		st := trustState(t, d)
		e, ok := st.has("sensors-ca")
		if !ok || e.Source.Kind != "vault" || e.Source.Version != 1 {
			t.Fatalf("gateway %s after sync: applied %+v, want sensors-ca from the vault at version 1", st.Sync.DeviceID, st.Applied)
		}
		if !canConnect(ctx, t, d, roots[d], sensor, "sensor-1") {
			t.Fatalf("gateway %s refuses a client of the synced CA", st.Sync.DeviceID)
		}
	}
	if trustState(t, a).Sync.DeviceID == trustState(t, b).Sync.DeviceID {
		t.Fatal("both gateways have the same device id")
	}
	// No token is configured: the syncs above ran on tokens of cert logins.
	if n := v.certLogins(ctx); n < len(gws) {
		t.Fatalf("the vault holds %d tokens from cert logins to role %q, want one per gateway", n, vaultCertRole)
	}

	t.Run("delete is local", func(t *testing.T) {
		e, _ := trustState(t, a).has("sensors-ca")
		var staged struct {
			Number uint64 `json:"number"`
		}
		a.api(t, "DELETE", "/api/v1/trust/trust/"+e.ID, nil, http.StatusOK, &staged)
		// The version removes the CA of a connected client: apply asks first.
		connected, err := connectMTLS(ctx, t, a, roots[a], sensor, "sensor-connected")
		if err != nil {
			t.Fatal(err)
		}
		apply := "/api/v1/trust/versions/" + strconv.FormatUint(staged.Number, 10) + "/apply"
		var refused struct {
			Code         string `json:"code"`
			Confirmation struct {
				Sessions int `json:"sessions"`
			} `json:"confirmation"`
		}
		a.api(t, "POST", apply, nil, http.StatusConflict, &refused)
		if refused.Code != "confirmation_required" || refused.Confirmation.Sessions != 1 {
			t.Fatalf("apply without confirmation: %+v, want confirmation_required for 1 session", refused)
		}
		if _, ok := trustState(t, a).has("sensors-ca"); !ok {
			t.Fatal("a refused apply changed the applied list")
		}
		a.api(t, "POST", apply, obj{"confirm": true}, http.StatusOK, nil)
		connected.close()
		if _, ok := trustState(t, a).has("sensors-ca"); ok {
			t.Fatal("the deleted CA is still applied")
		}
		if canConnect(ctx, t, a, roots[a], sensor, "sensor-1") {
			t.Fatal("a client of the deleted CA still connects")
		}
		if fields, _ := v.Get("edgegate/trust/sensors-ca"); fields["certificate"] == "" {
			t.Fatal("deleting the local copy deleted the vault secret")
		}
		syncNow(t, a)
		if _, ok := trustState(t, a).has("sensors-ca"); ok {
			t.Fatal("the next sync brought the locally deleted CA back")
		}
	})

	t.Run("rollback", func(t *testing.T) {
		a.api(t, "POST", "/api/v1/trust/versions/rollback", nil, http.StatusOK, nil)
		if _, ok := trustState(t, a).has("sensors-ca"); !ok {
			t.Fatal("rollback did not restore the CA")
		}
		if !canConnect(ctx, t, a, roots[a], sensor, "sensor-1") {
			t.Fatal("after rollback the client is refused")
		}
	})

	t.Run("vault down keeps last-known-good", func(t *testing.T) {
		v.Stop()
		// Each sync waits out the vault client's request timeout (10 s).
		for _, d := range gws {
			status, body := d.apiRaw(t, "POST", "/api/v1/trust/sync", "", nil, true)
			if status != http.StatusBadGateway {
				t.Fatalf("sync with the vault down: status %d: %s", status, body)
			}
			if st := trustState(t, d); st.Sync.LastError == "" {
				t.Fatalf("sync status after a failed sync: %+v", st.Sync)
			}
		}
		// A gateway that starts while the vault is away keeps its trust.
		b.stop()
		b.start()
		for _, d := range gws {
			if !canConnect(ctx, t, d, roots[d], sensor, "sensor-1") {
				t.Fatal("with the vault down the last-known-good CA is no longer trusted")
			}
		}
	})

	t.Run("vault back, both converge", func(t *testing.T) {
		v.Start()
		// A uploads a CA of its own; on apply it is written to the vault.
		field := newTestCA(t, "field CA")
		var staged struct {
			Number uint64 `json:"number"`
		}
		a.api(t, "POST", "/api/v1/trust/trust", obj{"name": "field-ca", "pem": string(field.certPEM)}, http.StatusCreated, &staged)
		a.api(t, "POST", "/api/v1/trust/versions/"+strconv.FormatUint(staged.Number, 10)+"/apply", nil, http.StatusOK, nil)
		if fields, _ := v.Get("edgegate/trust/field-ca"); fields["certificate"] != string(field.certPEM) {
			t.Fatalf("the upload was not written to the vault: %v", fields)
		}
		fieldClient := field.issueClient(t, "field-1")
		for _, d := range gws {
			syncNow(t, d)
		}
		fps := map[string][]string{}
		for _, d := range gws {
			st := trustState(t, d)
			if st.Sync.LastError != "" {
				t.Fatalf("sync error after the vault came back: %s", st.Sync.LastError)
			}
			for _, e := range st.Applied.Entries {
				fps[st.Sync.DeviceID] = append(fps[st.Sync.DeviceID], e.Fingerprint)
			}
			slices.Sort(fps[st.Sync.DeviceID])
			if !canConnect(ctx, t, d, roots[d], fieldClient, "field-1") || !canConnect(ctx, t, d, roots[d], sensor, "sensor-2") {
				t.Fatalf("gateway %s does not accept both CAs' clients", st.Sync.DeviceID)
			}
		}
		var sets [][]string
		for _, s := range fps {
			sets = append(sets, s)
		}
		if len(sets) != 2 || !slices.Equal(sets[0], sets[1]) || len(sets[0]) != 2 {
			t.Fatalf("the gateways did not converge: %v", fps)
		}
		// Each gateway reported its applied set to the vault (fleet view).
		var fleet []struct {
			DeviceID     string              `json:"device_id"`
			Fingerprints map[string][]string `json:"fingerprints"`
		}
		b.api(t, "GET", "/api/v1/trust/fleet", nil, http.StatusOK, &fleet)
		if len(fleet) != 2 {
			t.Fatalf("fleet view: %+v, want both gateways", fleet)
		}
		for _, dev := range fleet {
			if !slices.Equal(dev.Fingerprints["trust"], fps[dev.DeviceID]) {
				t.Fatalf("device %s reported %v, has %v", dev.DeviceID, dev.Fingerprints, fps[dev.DeviceID])
			}
		}
	})
}

// TestIssuerListChainsAndRevokes shows the issuer list on a live listener:
// a sensor that sends only its leaf, issued by an intermediate whose root is
// on the trust list, connects once the intermediate is on the issuer list;
// the intermediate's CRL, applied with it, refuses a revoked sensor.
func TestIssuerListChainsAndRevokes(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 60*time.Second)
	d := startDaemon(t, obj{
		"auth":      obj{"allow_anonymous": true},
		"listeners": obj{"tls": obj{"tls": obj{"client_auth": "required", "client_ca": "local"}}},
	})
	roots := localCAPool(t, d)
	root := newTestCA(t, "plant root")
	inter := newTestCAUnder(t, "line 4 issuer", root)
	good, revoked := inter.issueClient(t, "sensor-good"), inter.issueClient(t, "sensor-revoked")

	apply := func(list, name string, pemData []byte) {
		t.Helper()
		var staged struct {
			Number   uint64 `json:"number"`
			Rejected []struct {
				Reason string `json:"reason"`
			} `json:"rejected"`
		}
		d.api(t, "POST", "/api/v1/trust/"+list, obj{"name": name, "pem": string(pemData)}, http.StatusCreated, &staged)
		if len(staged.Rejected) > 0 {
			t.Fatalf("%s rejected: %+v", name, staged.Rejected)
		}
		d.api(t, "POST", "/api/v1/trust/versions/"+strconv.FormatUint(staged.Number, 10)+"/apply", nil, http.StatusOK, nil)
	}
	apply("trust", "plant-root", root.certPEM)
	if canConnect(ctx, t, d, roots, good, "sensor-good") {
		t.Fatal("a leaf-only client connected without its issuer on the issuer list")
	}
	apply("issuer", "line-4", append(slices.Clone(inter.certPEM), inter.crlPEM(t, revoked)...))
	if !canConnect(ctx, t, d, roots, good, "sensor-good") {
		t.Fatal("a leaf-only client of the listed issuer is refused")
	}
	if canConnect(ctx, t, d, roots, revoked, "sensor-revoked") {
		t.Fatal("a client revoked by the issuer's CRL connected")
	}
}
