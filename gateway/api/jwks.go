package api

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"math/big"
	"net/http"

	"github.com/edgegate/edgegate/certs"
)

// jwksPath publishes the public keys of the certificates marked exposed
// (seed 004), for JWT verifiers. Like /pki it answers everyone.
const jwksPath = "/.well-known/jwks.json"

// jwk is one key of a JWK Set (RFC 7517), with its certificate chain.
type jwk struct {
	Kty string   `json:"kty"`
	Kid string   `json:"kid"`
	Use string   `json:"use,omitempty"`
	Crv string   `json:"crv,omitempty"`
	X   string   `json:"x,omitempty"`
	Y   string   `json:"y,omitempty"`
	N   string   `json:"n,omitempty"`
	E   string   `json:"e,omitempty"`
	X5c []string `json:"x5c,omitempty"`
}

type jwkSet struct {
	Keys []jwk `json:"keys"`
}

func (a *API) jwks(w http.ResponseWriter, r *http.Request) {
	if a.o.Certificates == nil {
		a.writeError(w, r, unavailable("the certificate store"))
		return
	}
	list, err := a.o.Certificates.List()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	set := jwkSet{Keys: []jwk{}}
	for _, c := range list {
		if !c.Exposed || !c.Valid {
			continue
		}
		chain, err := certs.ParseChainPEM(c.Chain)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		k, ok := publicJWK(chain[0].PublicKey)
		if !ok {
			continue
		}
		k.Kid = c.ID
		for _, cert := range chain {
			k.X5c = append(k.X5c, base64.StdEncoding.EncodeToString(cert.Raw))
		}
		set.Keys = append(set.Keys, k)
	}
	w.Header().Set("Cache-Control", "max-age=300")
	writeJSON(w, http.StatusOK, set)
}

// publicJWK encodes a public key as a JWK; false for a key type JWK has no
// form for here.
func publicJWK(pub any) (jwk, bool) {
	b64 := base64.RawURLEncoding.EncodeToString
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		raw, err := k.Bytes() // 0x04 ‖ X ‖ Y
		if err != nil {
			return jwk{}, false
		}
		return jwk{Kty: "EC", Crv: k.Curve.Params().Name, X: b64(raw[1 : 1+size]), Y: b64(raw[1+size:])}, true
	case *rsa.PublicKey:
		return jwk{Kty: "RSA", N: b64(k.N.Bytes()), E: b64(big.NewInt(int64(k.E)).Bytes())}, true
	case ed25519.PublicKey:
		return jwk{Kty: "OKP", Crv: "Ed25519", X: b64(k)}, true
	}
	return jwk{}, false
}
