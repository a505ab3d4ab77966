package webui

import (
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/edgegate/edgegate/certs/ca"
	"github.com/edgegate/edgegate/gateway/config"
)

func (u *UI) trustRoutes() {
	u.authed("GET /trust", u.trust)
}

// trustEntry is one CA certificate the gateway trusts or chains to.
type trustEntry struct {
	Name        string
	Source      string // where it comes from: "local CA", "certificate store", a file
	Subject     string
	Issuer      string
	NotAfter    time.Time
	Fingerprint string // SHA-256, colon-separated hex
	Download    string // a /pki URL, or ""
	CRL         string // a /pki URL, or ""
	Active      bool
}

// listenerTrust is the client-CA pool a TLS listener checks.
type listenerTrust struct {
	Name, ClientAuth, ClientCA string
}

// trustView is the trust page: what the live pools hold now.
type trustView struct {
	Anchors   []trustEntry
	Issuers   []trustEntry
	Listeners []listenerTrust
	Loc       *time.Location
}

func (u *UI) trust(w http.ResponseWriter, r *http.Request, ss *session) error {
	v := trustView{Loc: u.location()}
	if u.o.Authority != nil {
		roots := map[string]bool{}
		for _, iss := range u.o.Authority.Issuers() {
			e := caEntry(iss.Cert, issuerSource(iss.Kind))
			e.Download = "/pki/issuer/" + iss.ID + ".crt"
			e.CRL = "/pki/crl/" + iss.ID + ".crl"
			e.Active = iss.Active
			v.Issuers = append(v.Issuers, e)
			if iss.Root != nil && !roots[string(iss.Root.Raw)] {
				roots[string(iss.Root.Raw)] = true
				root := caEntry(iss.Root, "local CA")
				root.Download = "/pki/ca"
				v.Anchors = append(v.Anchors, root)
			}
		}
	}
	if u.o.Certificates != nil {
		list, err := u.o.Certificates.List()
		if err != nil {
			return err
		}
		for _, c := range list {
			if !c.ClientCA {
				continue
			}
			v.Anchors = append(v.Anchors, trustEntry{
				Name: c.Name, Source: "certificate store (trusted for client certificates)", Subject: c.Subject,
				Issuer: c.Issuer, NotAfter: time.UnixMilli(c.To), Fingerprint: colonHex(c.SHA256),
			})
		}
	}
	for name, l := range u.o.Settings.Effective().Config.Listeners {
		if l.TLS == nil || l.Disabled {
			continue
		}
		source := l.TLS.ClientCA
		if source == config.ClientCALocal {
			source = "the local CA and the store's client CAs"
		}
		v.Listeners = append(v.Listeners, listenerTrust{Name: name, ClientAuth: l.TLS.ClientAuth, ClientCA: source})
	}
	slices.SortFunc(v.Listeners, func(a, b listenerTrust) int { return strings.Compare(a.Name, b.Name) })
	return u.render(w, r, ss, u.page(ss, "Trust & issuers", "trust"), trustPage(v))
}

func caEntry(c *x509.Certificate, source string) trustEntry {
	sum := sha256.Sum256(c.Raw)
	return trustEntry{
		Name: c.Subject.CommonName, Source: source, Subject: c.Subject.String(), Issuer: c.Issuer.String(),
		NotAfter: c.NotAfter, Fingerprint: colonHex(fmt.Sprintf("%X", sum[:])),
	}
}

func issuerSource(k ca.IssuerKind) string {
	switch k {
	case ca.IssuerLocal:
		return "local CA intermediate"
	case ca.IssuerLocalPrevious:
		return "previous local intermediate (kept while its certificates are valid)"
	case ca.IssuerImported:
		return "imported issuer"
	}
	return string(k)
}

// colonHex writes a hex fingerprint as AA:BB:…, the way openssl shows it.
func colonHex(h string) string {
	h = strings.ToUpper(strings.ReplaceAll(h, ":", ""))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i:min(i+2, len(h))])
	}
	return b.String()
}
