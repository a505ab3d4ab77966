package auth

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"testing"

	"github.com/edgegate/edgegate/gateway/config"
)

func TestCertField(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	leaf := sensorCert(t, ca).Leaf
	bare := ca.issue(t, func(c *x509.Certificate) { c.Subject = pkix.Name{Organization: []string{"no names"}} }).Leaf
	bad := ca.issue(t, func(c *x509.Certificate) { c.Subject = pkix.Name{CommonName: "tab\there"} }).Leaf
	for _, c := range []struct {
		name  string
		id    config.Identity
		cert  *x509.Certificate
		wantU string
		wantC string
	}{
		{"cn as clientid", config.Identity{ClientID: config.CertFieldCN}, leaf, "", "sensor-1"},
		{"dns as username", config.Identity{Username: config.CertFieldDNS}, leaf, "sensor-1.plant7.example", ""},
		{"spiffe uri", config.Identity{Username: config.CertFieldURI, ClientID: config.CertFieldCN}, leaf, "spiffe://plant7.example/sensor/1", "sensor-1"},
		{"dn rfc 2253", config.Identity{Username: config.CertFieldDN}, leaf, `CN=sensor-1,OU=plant 7,O=Acme\, Inc.`, ""},
		{"nothing configured", config.Identity{}, leaf, "", ""},
		{"missing fields", config.Identity{Username: config.CertFieldDNS, ClientID: config.CertFieldCN}, bare, "", ""},
		{"control characters", config.Identity{ClientID: config.CertFieldCN}, bad, "", ""},
		{"no certificate", config.Identity{ClientID: config.CertFieldCN}, nil, "", ""},
	} {
		got := mapIdentity(c.id, c.cert)
		if got.Username != c.wantU || got.ClientID != c.wantC {
			t.Errorf("%s: mapIdentity = %+v, want username %q clientid %q", c.name, got, c.wantU, c.wantC)
		}
	}
}

func TestVerifiedLeafOnly(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	client := sensorCert(t, ca)
	lst := config.Listener{Type: "tls", TLS: &config.ListenerTLS{
		ClientAuth: config.ClientAuthOptional,
		Identity:   config.Identity{ClientID: config.CertFieldCN, Username: config.CertFieldURI},
	}}

	verified := handshake(t, ca, serverTLS(t, ca, tls.VerifyClientCertIfGiven), &client)
	got := listenerIdentity(lst, verified)
	if got.ClientID != "sensor-1" || got.Username != "spiffe://plant7.example/sensor/1" {
		t.Errorf("verified certificate: identity %+v", got)
	}

	// A certificate the server asked for but did not verify (another CA
	// could have signed it) is no identity.
	other := newTestCA(t)
	forged := sensorCert(t, other)
	unverified := handshake(t, ca, serverTLS(t, ca, tls.RequestClientCert), &forged)
	if len(unverified.ConnectionState().PeerCertificates) == 0 {
		t.Fatal("test setup: no peer certificate")
	}
	if got := listenerIdentity(lst, unverified); got.mapped() {
		t.Errorf("unverified certificate mapped to %+v", got)
	}

	noCert := handshake(t, ca, serverTLS(t, ca, tls.VerifyClientCertIfGiven), nil)
	if got := listenerIdentity(lst, noCert); got.mapped() {
		t.Errorf("no certificate mapped to %+v", got)
	}

	plain, _ := net.Pipe()
	defer plain.Close()
	if got := listenerIdentity(lst, plain); got.mapped() {
		t.Errorf("plain connection mapped to %+v", got)
	}
	// A listener without a mapping ignores a verified certificate.
	if got := listenerIdentity(config.Listener{Type: "tls", TLS: &config.ListenerTLS{}}, verified); got.mapped() {
		t.Errorf("unmapped listener mapped to %+v", got)
	}
}
