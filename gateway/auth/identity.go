package auth

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"unicode"
	"unicode/utf8"

	"github.com/edgegate/edgegate/gateway/config"
)

// connectionStater is a connection that carries TLS state: *tls.Conn, and
// the broker's WebSocket-over-TLS connection.
type connectionStater interface {
	ConnectionState() tls.ConnectionState
}

// verifiedLeaf returns the client certificate of conn when the TLS handshake
// verified it against the listener's client CAs, or nil. A certificate the
// client merely presented (client_auth none, or an unverified chain) is
// never an identity.
func verifiedLeaf(conn net.Conn) *x509.Certificate {
	cs, ok := conn.(connectionStater)
	if !ok {
		return nil
	}
	st := cs.ConnectionState()
	if !st.HandshakeComplete || len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
		return nil
	}
	return st.VerifiedChains[0][0]
}

// certField returns the value of one identity field of cert, or "" when the
// certificate has none.
func certField(cert *x509.Certificate, field string) string {
	switch field {
	case config.CertFieldCN:
		return cert.Subject.CommonName
	case config.CertFieldDNS:
		if len(cert.DNSNames) > 0 {
			return cert.DNSNames[0]
		}
	case config.CertFieldURI:
		if len(cert.URIs) > 0 && cert.URIs[0] != nil {
			return cert.URIs[0].String()
		}
	case config.CertFieldDN:
		return cert.Subject.String()
	}
	return ""
}

// certIdentity is what a listener's identity mapping takes from a verified
// client certificate.
type certIdentity struct {
	Username string // "" when not mapped
	ClientID string // "" when not mapped
}

// mapped reports whether the mapping produced any identity.
func (c certIdentity) mapped() bool { return c.Username != "" || c.ClientID != "" }

// mapIdentity applies id to cert. A configured field the certificate lacks
// maps nothing, so the client keeps what it sent for that part.
func mapIdentity(id config.Identity, cert *x509.Certificate) certIdentity {
	if cert == nil {
		return certIdentity{}
	}
	var c certIdentity
	if id.Username != config.CertFieldNone {
		c.Username = usable(certField(cert, id.Username))
	}
	if id.ClientID != config.CertFieldNone {
		c.ClientID = usable(certField(cert, id.ClientID))
	}
	return c
}

// usable returns v when it can be an MQTT username or client id: valid
// UTF-8 without control characters (MQTT forbids NUL, and such values would
// be unreadable in logs and ACL rules), at most 65535 bytes. Otherwise "".
func usable(v string) string {
	if len(v) > 65535 || !utf8.ValidString(v) {
		return ""
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return ""
		}
	}
	return v
}

// listenerIdentity returns the identity the listener maps from the verified
// client certificate on conn.
func listenerIdentity(l config.Listener, conn net.Conn) certIdentity {
	if l.TLS == nil || (l.TLS.Identity.Username == "" && l.TLS.Identity.ClientID == "") {
		return certIdentity{}
	}
	return mapIdentity(l.TLS.Identity, verifiedLeaf(conn))
}
