package acme

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"

	legoacme "github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/registration"
)

// account is an ACME account: lego's registration.User.
type account struct {
	email string
	key   crypto.Signer
	reg   *registration.Resource // nil until registered
}

func (a *account) GetEmail() string                        { return a.email }
func (a *account) GetRegistration() *registration.Resource { return a.reg }
func (a *account) GetPrivateKey() crypto.PrivateKey        { return a.key }

// accountFormat is the version of storedAccount; a later format gets a new
// number so that an older binary refuses it instead of misreading it.
const accountFormat = 1

// storedAccount is the JSON document kept in the AccountStore.
type storedAccount struct {
	Version      int                    `json:"version"`
	Directory    string                 `json:"directory"`
	Email        string                 `json:"email,omitempty"`
	Registration *registration.Resource `json:"registration"`
	// KeyPEM is the account key, PKCS#8 ("PRIVATE KEY").
	KeyPEM string `json:"key_pem"`
}

// accountKey is the AccountStore key of the account for directory and email:
// the two joined by a space (a URL has none).
func accountKey(directory, email string) string {
	return directory + " " + email
}

func encodeAccount(a *account, directory string) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(a.key)
	if err != nil {
		return nil, fmt.Errorf("encode account key: %w", err)
	}
	return json.Marshal(storedAccount{
		Version:      accountFormat,
		Directory:    directory,
		Email:        a.email,
		Registration: a.reg,
		KeyPEM:       string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	})
}

// decodeAccount parses what encodeAccount wrote for directory and email.
func decodeAccount(data []byte, directory, email string) (*account, error) {
	var s storedAccount
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("decode stored account: %w", err)
	}
	if s.Version != accountFormat {
		return nil, fmt.Errorf("stored account has format %d, want %d", s.Version, accountFormat)
	}
	// The store key already says this; a mismatch means the store mixed
	// records up, and using another CA's account would only fail later.
	if s.Directory != directory || s.Email != email {
		return nil, errors.New("stored account belongs to another directory or email")
	}
	if s.Registration == nil || s.Registration.URI == "" {
		return nil, errors.New("stored account has no account URL")
	}
	if u, err := url.Parse(s.Registration.URI); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errors.New("stored account URL is not an http(s) URL")
	}
	block, rest := pem.Decode([]byte(s.KeyPEM))
	if block == nil || block.Type != "PRIVATE KEY" || strings.TrimSpace(string(rest)) != "" {
		return nil, errors.New("stored account key is not one PKCS#8 PEM block")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse stored account key: %w", err)
	}
	// lego signs with ECDSA and RSA keys only.
	var key crypto.Signer
	switch k := parsed.(type) {
	case *ecdsa.PrivateKey:
		key = k
	case *rsa.PrivateKey:
		key = k
	default:
		return nil, fmt.Errorf("stored account key has unsupported type %T", parsed)
	}
	return &account{email: email, key: key, reg: s.Registration}, nil
}

// account returns the client's account: the one already in use, else the
// stored one, else a newly registered one. The caller holds c.sem.
func (c *Client) account(ctx context.Context) (*account, error) {
	if c.acct != nil {
		return c.acct, nil
	}
	key := accountKey(c.cfg.DirectoryURL, c.cfg.Email)
	data, err := c.store.LoadAccount(ctx, key)
	if err != nil && !errors.Is(err, ErrAccountNotFound) {
		return nil, fmt.Errorf("load account for %s: %w", c.cfg.DirectoryURL, err)
	}
	if err == nil && len(data) > 0 {
		a, err := decodeAccount(data, c.cfg.DirectoryURL, c.cfg.Email)
		if err != nil {
			return nil, fmt.Errorf("load account for %s: %w", c.cfg.DirectoryURL, err)
		}
		c.acct = a
		c.log.Debug("acme account loaded", "directory", c.cfg.DirectoryURL, "account", a.reg.URI)
		return a, nil
	}
	a, err := c.register(ctx)
	if err != nil {
		return nil, fmt.Errorf("register account at %s: %w", c.cfg.DirectoryURL, err)
	}
	c.acct = a
	return a, nil
}

// register creates a new account at the CA with a new key and stores it.
func (c *Client) register(ctx context.Context) (*account, error) {
	if !c.cfg.AgreeToTerms {
		return nil, ErrTermsNotAgreed
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate account key: %w", err)
	}
	a := &account{email: c.cfg.Email, key: key}
	lc, err := c.legoClient(ctx, a)
	if err != nil {
		return nil, err
	}
	var reg *registration.Resource
	if eab := c.cfg.EAB; eab != nil {
		reg, err = lc.Registration.RegisterWithExternalAccountBinding(registration.RegisterEABOptions{
			TermsOfServiceAgreed: true,
			Kid:                  eab.KeyID,
			HmacEncoded:          eab.HMACKey,
		})
	} else {
		reg, err = lc.Registration.Register(registration.RegisterOptions{TermsOfServiceAgreed: true})
	}
	if err != nil {
		return nil, err
	}
	if reg == nil || reg.URI == "" {
		return nil, errors.New("the CA returned no account URL")
	}
	a.reg = reg
	data, err := encodeAccount(a, c.cfg.DirectoryURL)
	if err != nil {
		return nil, err
	}
	if err := c.store.SaveAccount(ctx, accountKey(c.cfg.DirectoryURL, c.cfg.Email), data); err != nil {
		return nil, fmt.Errorf("save account %s: %w", reg.URI, err)
	}
	c.log.Info("acme account registered", "directory", c.cfg.DirectoryURL, "account", reg.URI)
	return a, nil
}

// accountGone reports whether err says the CA no longer knows the account
// (a CA whose database was reset, a test CA restarted, an account
// deactivated elsewhere).
func accountGone(err error) bool {
	var pd *legoacme.ProblemDetails
	return errors.As(err, &pd) && pd.Type == "urn:ietf:params:acme:error:accountDoesNotExist"
}
