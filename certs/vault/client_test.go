package vault_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgegate/edgegate/certs/vault"
	"github.com/edgegate/edgegate/certs/vault/vaulttest"
)

func TestListReadWrite(t *testing.T) {
	t.Parallel()
	srv := vaulttest.New(t, vaulttest.Options{Mount: "kv"})
	srv.Put("edgegate/trust/root-a", map[string]string{"certificate": pemA})
	srv.Put("edgegate/trust/root-b", map[string]string{"certificate": pemA})
	srv.Put("edgegate/trust/root-b", map[string]string{"certificate": pemB})
	srv.Put("edgegate/trust/nested/deeper", map[string]string{"certificate": pemA}) // a folder: not a secret of the list
	srv.Put("edgegate/issuer/int-1", map[string]string{"certificate": pemB})
	srv.Put("other/trust/elsewhere", map[string]string{"certificate": pemA})
	c, _ := newClient(t, srv, tokenAuth(srv))
	ctx := t.Context()

	refs, err := c.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	want := []vault.Ref{
		{List: vault.TrustList, Name: "root-a", Version: 1},
		{List: vault.TrustList, Name: "root-b", Version: 2},
		{List: vault.IssuerList, Name: "int-1", Version: 1},
	}
	if !slices.Equal(refs, want) {
		t.Fatalf("List = %v, want %v", refs, want)
	}

	for _, tc := range []struct {
		ref  vault.Ref
		want string
	}{
		{vault.Ref{List: vault.TrustList, Name: "root-b", Version: 1}, pemA},
		{vault.Ref{List: vault.TrustList, Name: "root-b", Version: 2}, pemB},
		{vault.Ref{List: vault.TrustList, Name: "root-b"}, pemB}, // latest
	} {
		s, err := c.Read(ctx, tc.ref)
		if err != nil {
			t.Fatalf("Read(%v): %v", tc.ref, err)
		}
		if string(s.Data) != tc.want || s.Version == 0 || s.Name != "root-b" {
			t.Errorf("Read(%v) = %+v, want data %q", tc.ref, s, tc.want)
		}
	}
	if _, err := c.Read(ctx, vault.Ref{List: vault.TrustList, Name: "root-b", Version: 3}); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("Read of a missing version: %v, want ErrNotFound", err)
	}
	if _, err := c.Read(ctx, vault.Ref{List: vault.TrustList, Name: "nope", Version: 1}); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("Read of a missing secret: %v, want ErrNotFound", err)
	}
	if _, err := c.Read(ctx, vault.Ref{List: vault.TrustList, Name: "../x"}); err == nil {
		t.Error("Read of a name climbing out of the list: no error")
	}

	v, err := c.Write(ctx, vault.TrustList, "root-b", []byte(pemA))
	if err != nil || v != 3 {
		t.Fatalf("Write over version 2 = %d, %v; want 3", v, err)
	}
	v, err = c.Write(ctx, vault.IssuerList, "int-2", []byte(pemB))
	if err != nil || v != 1 {
		t.Fatalf("Write of a new secret = %d, %v; want 1", v, err)
	}
	if fields, version := srv.Get("edgegate/issuer/int-2"); fields["certificate"] != pemB || version != 1 {
		t.Errorf("vault holds %v version %d after Write", fields, version)
	}
	if _, err := c.Write(ctx, "status", "x", []byte(pemA)); err == nil {
		t.Error("Write to a list that is not trust or issuer: no error")
	}
}

func TestListEmptyVault(t *testing.T) {
	t.Parallel()
	srv := vaulttest.New(t, vaulttest.Options{})
	c, _ := newClient(t, srv, tokenAuth(srv))
	refs, err := c.List(t.Context())
	if err != nil || len(refs) != 0 {
		t.Fatalf("List of an empty vault = %v, %v; want nothing and no error", refs, err)
	}
}

func TestSoftDeletedSecretIsLeftOut(t *testing.T) {
	t.Parallel()
	srv := vaulttest.New(t, vaulttest.Options{})
	srv.Put("edgegate/trust/kept", map[string]string{"certificate": pemA})
	srv.Put("edgegate/trust/gone", map[string]string{"certificate": pemA})
	srv.SoftDelete("edgegate/trust/gone")
	c, _ := newClient(t, srv, tokenAuth(srv))
	refs, err := c.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := []vault.Ref{{List: vault.TrustList, Name: "kept", Version: 1}}; !slices.Equal(refs, want) {
		t.Errorf("List = %v, want %v", refs, want)
	}
	if _, err := c.Read(t.Context(), vault.Ref{List: vault.TrustList, Name: "gone", Version: 1}); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("Read of a deleted version: %v, want ErrNotFound", err)
	}
}

func TestReadWrongField(t *testing.T) {
	t.Parallel()
	srv := vaulttest.New(t, vaulttest.Options{})
	srv.Put("edgegate/trust/a", map[string]string{"pem": pemA})
	c, _ := newClient(t, srv, tokenAuth(srv))
	if _, err := c.Read(t.Context(), vault.Ref{List: vault.TrustList, Name: "a", Version: 1}); !errors.Is(err, vault.ErrBadResponse) {
		t.Errorf("Read without the field: %v, want ErrBadResponse", err)
	}
	c, _ = newClient(t, srv, tokenAuth(srv), func(c *vault.Config) { c.Field = "pem" })
	if s, err := c.Read(t.Context(), vault.Ref{List: vault.TrustList, Name: "a", Version: 1}); err != nil || string(s.Data) != pemA {
		t.Errorf("Read with Field pem = %q, %v", s.Data, err)
	}
}

func TestAuthMethods(t *testing.T) {
	t.Parallel()
	devices := newPKI(t, "devices")
	device := devices.device(t, "gw-1")
	for _, tc := range []struct {
		name   string
		auth   func(*vaulttest.Server) vault.Auth
		logins func(vaulttest.Counts) int
		want   int
	}{
		{"token", tokenAuth, func(c vaulttest.Counts) int { return c.AppRoleLogins + c.CertLogins }, 0},
		{"approle", appRoleAuth, func(c vaulttest.Counts) int { return c.AppRoleLogins }, 1},
		{"cert", func(*vaulttest.Server) vault.Auth { return vault.Auth{Method: vault.AuthCert, Role: "edgegate"} },
			func(c vaulttest.Counts) int { return c.CertLogins }, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := vaulttest.New(t, vaulttest.Options{ClientCAs: devices.pool, TokenTTL: time.Hour})
			srv.Put("edgegate/trust/a", map[string]string{"certificate": pemA})
			c, _ := newClient(t, srv, tc.auth(srv), func(c *vault.Config) {
				c.ClientCertificate = func() (*tls.Certificate, error) { return device, nil }
			})
			for range 3 {
				if refs, err := c.List(t.Context()); err != nil || len(refs) != 1 {
					t.Fatalf("List = %v, %v", refs, err)
				}
			}
			if err := c.Check(t.Context()); err != nil {
				t.Errorf("Check: %v", err)
			}
			if got := tc.logins(srv.Counts()); got != tc.want {
				t.Errorf("%d logins for 4 calls with a live token, want %d", got, tc.want)
			}
		})
	}
}

func TestCertAuthRefused(t *testing.T) {
	t.Parallel()
	trusted, stranger := newPKI(t, "devices"), newPKI(t, "strangers")
	srv := vaulttest.New(t, vaulttest.Options{ClientCAs: trusted.pool})
	cert := stranger.device(t, "gw-x")
	c, _ := newClient(t, srv, vault.Auth{Method: vault.AuthCert}, func(c *vault.Config) {
		c.ClientCertificate = func() (*tls.Certificate, error) { return cert, nil }
	})
	if _, err := c.List(t.Context()); !errors.Is(err, vault.ErrForbidden) {
		t.Errorf("List with an untrusted device certificate: %v, want ErrForbidden", err)
	}
	c, _ = newClient(t, srv, vault.Auth{Method: vault.AuthCert}, func(c *vault.Config) {
		c.ClientCertificate = func() (*tls.Certificate, error) { return nil, nil } // none yet
	})
	if _, err := c.List(t.Context()); !errors.Is(err, vault.ErrForbidden) {
		t.Errorf("List with no device certificate: %v, want ErrForbidden", err)
	}
}

func TestAppRoleRefused(t *testing.T) {
	t.Parallel()
	srv := vaulttest.New(t, vaulttest.Options{})
	roleID, _ := srv.AppRole()
	c, _ := newClient(t, srv, vault.Auth{Method: vault.AuthAppRole, RoleID: roleID, SecretID: "wrong"})
	if _, err := c.List(t.Context()); !errors.Is(err, vault.ErrForbidden) {
		t.Errorf("List with a wrong secret_id: %v, want ErrForbidden", err)
	}
}

// A token that expires mid-sync (between the list and the reads) is
// replaced by a new login, once, and the sync goes on.
func TestReloginWhenTokenExpiresMidSync(t *testing.T) {
	t.Parallel()
	srv := vaulttest.New(t, vaulttest.Options{TokenTTL: time.Hour})
	srv.Put("edgegate/trust/a", map[string]string{"certificate": pemA})
	c, _ := newClient(t, srv, appRoleAuth(srv))
	refs, err := c.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	srv.ExpireTokens()
	s, err := c.Read(t.Context(), refs[0])
	if err != nil || string(s.Data) != pemA {
		t.Fatalf("Read after the token expired = %q, %v", s.Data, err)
	}
	if got := srv.Counts(); got.AppRoleLogins != 2 || got.Forbidden != 1 {
		t.Errorf("logins %d, 403s %d; want 2 logins and the one 403", got.AppRoleLogins, got.Forbidden)
	}
	// A vault that keeps refusing fresh tokens gets one relogin per call, not a loop.
	srv.Fail(func(r *http.Request) (int, string, bool) {
		return http.StatusForbidden, `{"errors":["permission denied"]}`, !strings.Contains(r.URL.Path, "/login")
	})
	srv.ResetCounts()
	if _, err := c.List(t.Context()); !errors.Is(err, vault.ErrForbidden) {
		t.Errorf("List while every token is refused: %v, want ErrForbidden", err)
	}
	if got := srv.Counts(); got.AppRoleLogins != 1 || got.Lists != 2 {
		t.Errorf("logins %d, lists %d while refused; want 1 and 2", got.AppRoleLogins, got.Lists)
	}
}

// The client logs in again when three quarters of the lease have passed,
// before the vault refuses the token.
func TestReloginBeforeLeaseEnds(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	srv := vaulttest.New(t, vaulttest.Options{TokenTTL: time.Hour, Now: clock.Now})
	srv.Put("edgegate/trust/a", map[string]string{"certificate": pemA})
	c, _ := newClient(t, srv, appRoleAuth(srv), func(c *vault.Config) { c.Now = clock.Now })
	for _, step := range []struct {
		advance time.Duration
		logins  int
	}{{0, 1}, {30 * time.Minute, 1}, {20 * time.Minute, 2}, {50 * time.Minute, 3}} {
		clock.Advance(step.advance)
		if _, err := c.List(t.Context()); err != nil {
			t.Fatalf("List after %v: %v", step.advance, err)
		}
		if got := srv.Counts(); got.AppRoleLogins != step.logins || got.Forbidden != 0 {
			t.Fatalf("after %v: %d logins, %d 403s; want %d and none", step.advance, got.AppRoleLogins, got.Forbidden, step.logins)
		}
	}
}

func TestTokenMethodDoesNotRelogin(t *testing.T) {
	t.Parallel()
	srv := vaulttest.New(t, vaulttest.Options{})
	srv.Put("edgegate/trust/a", map[string]string{"certificate": pemA})
	c, _ := newClient(t, srv, vault.Auth{Method: vault.AuthToken, Token: srv.NewToken(false, time.Hour)})
	if _, err := c.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv.ExpireTokens()
	srv.ResetCounts()
	if _, err := c.List(t.Context()); !errors.Is(err, vault.ErrForbidden) {
		t.Errorf("List with an expired token: %v, want ErrForbidden", err)
	}
	if got := srv.Counts(); got.Lists != 1 || got.AppRoleLogins+got.CertLogins != 0 {
		t.Errorf("counts %+v: want one list and no login", got)
	}
}

func TestWriteRefusedByPolicy(t *testing.T) {
	t.Parallel()
	srv := vaulttest.New(t, vaulttest.Options{ReadOnly: true})
	srv.Put("edgegate/trust/a", map[string]string{"certificate": pemA})
	for name, auth := range map[string]vault.Auth{
		"approle": appRoleAuth(srv),
		"token":   {Method: vault.AuthToken, Token: srv.NewToken(true, 0)},
	} {
		c, _ := newClient(t, srv, auth)
		if _, err := c.List(t.Context()); err != nil {
			t.Fatalf("%s: List with a read-only token: %v", name, err)
		}
		_, err := c.Write(t.Context(), vault.TrustList, "a", []byte(pemB))
		if !errors.Is(err, vault.ErrReadOnly) || !errors.Is(err, vault.ErrForbidden) {
			t.Errorf("%s: Write with a read-only token: %v, want ErrReadOnly (and ErrForbidden)", name, err)
		}
		err = c.ReportStatus(t.Context(), vault.DeviceStatus{DeviceID: "gw-1"})
		if !errors.Is(err, vault.ErrReadOnly) {
			t.Errorf("%s: ReportStatus with a read-only token: %v, want ErrReadOnly", name, err)
		}
	}
	if _, v := srv.Get("edgegate/trust/a"); v != 1 {
		t.Errorf("secret at version %d after refused writes, want 1", v)
	}
	// A read-write AppRole in the same vault writes fine.
	roleID, secretID := srv.NewAppRole(false)
	c, _ := newClient(t, srv, vault.Auth{Method: vault.AuthAppRole, RoleID: roleID, SecretID: secretID})
	if v, err := c.Write(t.Context(), vault.TrustList, "a", []byte(pemB)); err != nil || v != 2 {
		t.Errorf("Write with a read-write AppRole = %d, %v", v, err)
	}
}

func TestWriteConflict(t *testing.T) {
	t.Parallel()
	srv := vaulttest.New(t, vaulttest.Options{})
	srv.Put("edgegate/trust/a", map[string]string{"certificate": pemA})
	c, _ := newClient(t, srv, tokenAuth(srv))
	// Another writer gets in between the metadata read and the write.
	var once bool
	srv.Fail(func(r *http.Request) (int, string, bool) {
		if r.Method == http.MethodPost && !once {
			once = true
			return http.StatusBadRequest, `{"errors":["check-and-set parameter did not match the current version"]}`, true
		}
		return 0, "", false
	})
	if _, err := c.Write(t.Context(), vault.TrustList, "a", []byte(pemB)); !errors.Is(err, vault.ErrConflict) {
		t.Errorf("Write losing a check-and-set race: %v, want ErrConflict", err)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(*vaulttest.Server)
		want  error
	}{
		{"500", func(s *vaulttest.Server) { s.FailWith(500, `{"errors":["internal error"]}`) }, vault.ErrUnavailable},
		{"sealed", func(s *vaulttest.Server) { s.FailWith(503, `{"errors":["Vault is sealed"]}`) }, vault.ErrUnavailable},
		{"502 html", func(s *vaulttest.Server) { s.FailWith(502, `<html>bad gateway</html>`) }, vault.ErrUnavailable},
		{"429", func(s *vaulttest.Server) { s.FailWith(429, `{"errors":["rate limited"]}`) }, vault.ErrUnavailable},
		{"403", func(s *vaulttest.Server) { s.FailWith(403, `{"errors":["permission denied"]}`) }, vault.ErrForbidden},
		{"garbage", func(s *vaulttest.Server) { s.FailWith(200, `<html>captive portal</html>`) }, vault.ErrBadResponse},
		{"wrong json", func(s *vaulttest.Server) { s.FailWith(200, `{"data":{"keys":"not a list"}}`) }, vault.ErrBadResponse},
		{"no data", func(s *vaulttest.Server) { s.FailWith(200, `{}`) }, vault.ErrBadResponse},
		{"huge", func(s *vaulttest.Server) {
			s.FailWith(200, `{"data":{"keys":["`+strings.Repeat("x", 2<<20)+`"]}}`)
		}, vault.ErrBadResponse},
		{"too many keys", func(s *vaulttest.Server) {
			s.FailWith(200, `{"data":{"keys":["k`+strings.Repeat(`","k`, 10001)+`"]}}`)
		}, vault.ErrBadResponse},
		{"unexpected status", func(s *vaulttest.Server) { s.FailWith(412, `{"errors":[]}`) }, vault.ErrBadResponse},
		{"down", func(s *vaulttest.Server) { s.Stop() }, vault.ErrUnavailable},
		{"slow", func(s *vaulttest.Server) { s.SetDelay(time.Minute) }, vault.ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := vaulttest.New(t, vaulttest.Options{})
			srv.Put("edgegate/trust/a", map[string]string{"certificate": pemA})
			c, _ := newClient(t, srv, tokenAuth(srv), func(c *vault.Config) { c.Timeout = 200 * time.Millisecond })
			tc.setup(srv)
			_, err := c.List(t.Context())
			if !errors.Is(err, tc.want) {
				t.Fatalf("List: %v, want %v", err, tc.want)
			}
			for _, other := range []error{vault.ErrUnavailable, vault.ErrForbidden, vault.ErrBadResponse, vault.ErrNotFound} {
				if !errors.Is(tc.want, other) && errors.Is(err, other) {
					t.Errorf("List: %v also matches %v", err, other)
				}
			}
			if tc.name == "slow" && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("List against a slow vault: %v, want it to wrap context.DeadlineExceeded", err)
			}
		})
	}
}

// A caller giving up is not the vault being unavailable.
func TestCallerCancel(t *testing.T) {
	t.Parallel()
	srv := vaulttest.New(t, vaulttest.Options{})
	c, _ := newClient(t, srv, tokenAuth(srv))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := c.List(ctx)
	if !errors.Is(err, context.Canceled) || errors.Is(err, vault.ErrUnavailable) {
		t.Errorf("List with a canceled context: %v, want context.Canceled and not ErrUnavailable", err)
	}
}

func TestServerRootsAskedPerConnection(t *testing.T) {
	t.Parallel()
	srv := vaulttest.New(t, vaulttest.Options{})
	other := newPKI(t, "not the vault's CA")
	var pool atomicPool
	pool.set(other.pool)
	c, _ := newClient(t, srv, tokenAuth(srv), func(c *vault.Config) { c.RootCAs = pool.get })
	var unknown x509.UnknownAuthorityError
	if _, err := c.List(t.Context()); !errors.As(err, &unknown) {
		t.Fatalf("List trusting another CA: %v, want an unknown authority error", err)
	}
	pool.set(srv.CAPool())
	if _, err := c.List(t.Context()); err != nil {
		t.Fatalf("List once the vault's CA is trusted: %v", err)
	}
}

func TestNamespace(t *testing.T) {
	t.Parallel()
	srv := vaulttest.New(t, vaulttest.Options{Namespace: "fleet/eu"})
	srv.Put("edgegate/trust/a", map[string]string{"certificate": pemA})
	c, _ := newClient(t, srv, appRoleAuth(srv))
	if _, err := c.List(t.Context()); !errors.Is(err, vault.ErrForbidden) {
		t.Errorf("List outside the namespace: %v, want ErrForbidden", err)
	}
	c, _ = newClient(t, srv, appRoleAuth(srv), func(c *vault.Config) { c.Namespace = "fleet/eu" })
	if refs, err := c.List(t.Context()); err != nil || len(refs) != 1 {
		t.Errorf("List in the namespace = %v, %v", refs, err)
	}
}

func TestDevices(t *testing.T) {
	t.Parallel()
	srv := vaulttest.New(t, vaulttest.Options{})
	c, _ := newClient(t, srv, tokenAuth(srv))
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	statuses := []vault.DeviceStatus{
		{DeviceID: "gw-2", AppliedVersion: 7, SyncedAt: at, LastError: "vault unavailable",
			Fingerprints: map[string][]string{vault.TrustList: {"aa", "bb"}}},
		{DeviceID: "gw-1", Hostname: "gw-1.local", AppliedVersion: 8, SyncedAt: at,
			Fingerprints: map[string][]string{vault.TrustList: {"aa"}, vault.IssuerList: {"cc"}}},
	}
	for _, st := range statuses {
		if err := c.ReportStatus(t.Context(), st); err != nil {
			t.Fatalf("ReportStatus: %v", err)
		}
	}
	if err := c.ReportStatus(t.Context(), statuses[0]); err != nil { // a second report is a new version
		t.Fatal(err)
	}
	if _, v := srv.Get("edgegate/status/gw-2"); v != 2 {
		t.Errorf("status of gw-2 at version %d, want 2", v)
	}
	srv.Put("edgegate/status/broken", map[string]string{"applied_version": "not a number"})
	if err := c.ReportStatus(t.Context(), vault.DeviceStatus{DeviceID: "../trust/x"}); err == nil {
		t.Error("ReportStatus with a device id climbing out of status/: no error")
	}

	got, err := c.Devices(t.Context())
	if err != nil {
		t.Fatalf("Devices: %v", err)
	}
	if len(got) != 2 || got[0].DeviceID != "gw-1" || got[1].DeviceID != "gw-2" {
		t.Fatalf("Devices = %+v, want gw-1 and gw-2", got)
	}
	if g := got[0]; g.Hostname != "gw-1.local" || g.AppliedVersion != 8 || !g.SyncedAt.Equal(at) ||
		!slices.Equal(g.Fingerprints[vault.IssuerList], []string{"cc"}) {
		t.Errorf("gw-1 = %+v", g)
	}
	if g := got[1]; g.LastError != "vault unavailable" || !slices.Equal(g.Fingerprints[vault.TrustList], []string{"aa", "bb"}) {
		t.Errorf("gw-2 = %+v", g)
	}
}

// No token, secret_id or role_id ever reaches the logs or error messages.
func TestSecretsNeverLogged(t *testing.T) {
	t.Parallel()
	devices := newPKI(t, "devices")
	srv := vaulttest.New(t, vaulttest.Options{TokenTTL: time.Hour, ClientCAs: devices.pool, ReadOnly: true})
	srv.Put("edgegate/trust/a", map[string]string{"certificate": pemA})
	roleID, secretID := srv.AppRole()
	auth := vault.Auth{Method: vault.AuthAppRole, RoleID: roleID, SecretID: secretID}
	c, logs := newClient(t, srv, auth)

	var errs []error
	record := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	_, err := c.List(t.Context())
	record(err)
	srv.ExpireTokens() // relogin path
	_, err = c.Read(t.Context(), vault.Ref{List: vault.TrustList, Name: "a", Version: 1})
	record(err)
	_, err = c.Write(t.Context(), vault.TrustList, "a", []byte(pemB)) // refused: read-only
	record(err)
	srv.FailWith(500, `{"errors":["boom"]}`)
	_, err = c.List(t.Context())
	record(err)
	srv.Fail(nil)
	bad, _ := newClient(t, srv, vault.Auth{Method: vault.AuthAppRole, RoleID: roleID, SecretID: "wrong-" + secretID})
	_, err = bad.List(t.Context())
	record(err)
	if len(errs) != 3 {
		t.Fatalf("errors %v, want the refused write, the 500 and the refused login", errs)
	}
	root := srv.RootToken()
	tc, tokLogs := newClient(t, srv, vault.Auth{Method: vault.AuthToken, Token: root})
	_, err = tc.Write(t.Context(), vault.TrustList, "b", []byte(pemB))
	record(err)

	text := logs.String() + tokLogs.String() + fmt.Sprintf("%v %+v", auth, vault.Config{Auth: auth})
	for _, e := range errs {
		text += e.Error()
	}
	if !strings.Contains(logs.String(), "logged in to vault") {
		t.Fatalf("logs do not show the logins; the check below would prove nothing:\n%s", logs)
	}
	for name, secret := range map[string]string{"secret_id": secretID, "role_id": roleID, "root token": root} {
		if strings.Contains(text, secret) {
			t.Errorf("the %s appears in logs or errors:\n%s", name, text)
		}
	}
	if strings.Contains(text, "hvs.") { // every token the fake issues starts so
		t.Errorf("a token appears in logs or errors:\n%s", text)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	cert := func() (*tls.Certificate, error) { return nil, nil }
	for _, tc := range []struct {
		name string
		cfg  vault.Config
		ok   bool
	}{
		{"token", vault.Config{Address: "https://vault.example:8200", Auth: vault.Auth{Method: vault.AuthToken, Token: "t"}}, true},
		{"approle", vault.Config{Address: "https://vault.example", Auth: vault.Auth{Method: vault.AuthAppRole, RoleID: "r", SecretID: "s"}}, true},
		{"cert", vault.Config{Address: "https://vault.example", Auth: vault.Auth{Method: vault.AuthCert}, ClientCertificate: cert}, true},
		{"http loopback", vault.Config{Address: "http://127.0.0.1:8200", Auth: vault.Auth{Method: vault.AuthToken, Token: "t"}}, true},
		{"http localhost", vault.Config{Address: "http://localhost:8200", Auth: vault.Auth{Method: vault.AuthToken, Token: "t"}}, true},
		{"nested mount and prefix", vault.Config{Address: "https://v", Mount: "kv/prod", Prefix: "/fleet/edgegate/", Auth: vault.Auth{Method: vault.AuthToken, Token: "t"}}, true},
		{"http remote", vault.Config{Address: "http://vault.example:8200", Auth: vault.Auth{Method: vault.AuthToken, Token: "t"}}, false},
		{"no address", vault.Config{Auth: vault.Auth{Method: vault.AuthToken, Token: "t"}}, false},
		{"address with path", vault.Config{Address: "https://v/v1", Auth: vault.Auth{Method: vault.AuthToken, Token: "t"}}, false},
		{"ftp", vault.Config{Address: "ftp://v", Auth: vault.Auth{Method: vault.AuthToken, Token: "t"}}, false},
		{"empty token", vault.Config{Address: "https://v", Auth: vault.Auth{Method: vault.AuthToken}}, false},
		{"approle without secret_id", vault.Config{Address: "https://v", Auth: vault.Auth{Method: vault.AuthAppRole, RoleID: "r"}}, false},
		{"cert without certificate", vault.Config{Address: "https://v", Auth: vault.Auth{Method: vault.AuthCert}}, false},
		{"no method", vault.Config{Address: "https://v"}, false},
		{"prefix climbing", vault.Config{Address: "https://v", Prefix: "a/../b", Auth: vault.Auth{Method: vault.AuthToken, Token: "t"}}, false},
		{"mount with query", vault.Config{Address: "https://v", Mount: "kv?x", Auth: vault.Auth{Method: vault.AuthToken, Token: "t"}}, false},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tc.name, err, tc.ok)
		}
		if err != nil && tc.cfg.Auth.Token != "" && strings.Contains(err.Error(), tc.cfg.Auth.Token+"\"") {
			t.Errorf("%s: the token appears in %v", tc.name, err)
		}
	}
}
