package api

import (
	"context"
	"crypto"
	"crypto/x509"

	"github.com/edgegate/edgegate/certs"
	"github.com/edgegate/edgegate/certs/ca"
	"github.com/edgegate/edgegate/certs/trust"
	"github.com/edgegate/edgegate/certs/trustsync"
	"github.com/edgegate/edgegate/certs/vault"
	"github.com/edgegate/edgegate/gateway/admin"
	"github.com/edgegate/edgegate/gateway/auth"
	"github.com/edgegate/edgegate/gateway/broker"
	"github.com/edgegate/edgegate/gateway/config"
	"github.com/edgegate/edgegate/gateway/store"
)

// Admin is the administrator's credentials (*admin.Credentials).
type Admin interface {
	CompleteSetup(code, password string) error
	CheckAdmin(password string) bool
	SetAdminPassword(old, newPassword string) error
	CheckAPIKey(id, secret string) (admin.APIKey, bool)
	CreateAPIKey(name string, scopes ...string) (admin.APIKey, string, error)
	ListAPIKeys() ([]admin.APIKey, error)
	DeleteAPIKey(id string) error
}

// Users is the MQTT account store (*auth.Users). The API hashes passwords
// (auth.NewHash, auth.ImportHash) before handing them over.
type Users interface {
	Add(u auth.User) error
	Get(username string) (auth.User, error)
	SetPassword(username, hash string) error
	SetSuperuser(username string, superuser bool) error
	Delete(username string) error
	List() ([]auth.User, error)

	AddClientID(e auth.ClientIDEntry) error
	GetClientID(id string) (auth.ClientIDEntry, error)
	SetClientIDPassword(id, hash string) error
	DeleteClientID(id string) error
	ListClientIDs() ([]auth.ClientIDEntry, error)
}

// Broker is the running MQTT broker (*broker.Broker).
type Broker interface {
	Clients() []broker.ClientInfo
	Client(id string) (broker.ClientInfo, bool)
	// Kick disconnects a client; broker.ErrClientNotFound if unknown.
	Kick(id string) error
	// Subscriptions lists one client's subscriptions, or everyone's for "".
	Subscriptions(clientID string) []broker.Subscription
	Retained() []broker.RetainedMessage
	// DeleteRetained returns broker.ErrRetainedNotFound if topic has none.
	DeleteRetained(topic string) error
	Publish(m broker.Message) error
	Listeners() []broker.ListenerStatus
}

// Settings is the live settings service (*gateway.Settings).
type Settings interface {
	Effective() config.Effective
	Current() (store.SettingsVersion, error)
	// Apply merges a JSON merge patch into the stored document, validates
	// the result as a whole (errors.Join of *config.FieldError), saves and
	// applies it. A non-zero returned version with an error means saved
	// but not fully applied.
	Apply(ctx context.Context, patch []byte, author string) (store.SettingsVersion, error)
	History() ([]store.SettingsVersion, error)
}

// Certificates is the certificate store (*certs.Manager).
type Certificates interface {
	List() ([]certs.Certificate, error)
	Get(id string) (certs.Certificate, error)
	// Key returns a certificate's private key, nil for a trust-only one.
	Key(id string) (crypto.Signer, error)
	Add(meta certs.Meta, chain []*x509.Certificate, key crypto.Signer, source certs.Source) (certs.Certificate, error)
	// Update changes the settable fields, and the chain and key when
	// chain is non-nil.
	Update(id string, meta certs.Meta, chain []*x509.Certificate, key crypto.Signer) (certs.Certificate, error)
	Delete(id string) error
	// Serve makes a certificate with a key the TLS listeners' one;
	// ServeLocal goes back to the local CA's.
	Serve(id string) error
	ServeLocal() error
	// Create issues a certificate from the local CA or meta.CARef.
	Create(meta certs.Meta, p certs.IssueParams) (certs.Certificate, error)
	// ObtainACME orders a certificate for names from the ACME CA of the
	// settings (certs.ErrNoACME without one), optionally serving it.
	ObtainACME(ctx context.Context, meta certs.Meta, names []string, serve bool) (certs.Certificate, error)
	// Revoke revokes a certificate for an RFC 5280 reason name.
	Revoke(ctx context.Context, id, reason string) (certs.Certificate, error)
	// SignCSR signs a certificate request (PEM or DER) and stores the
	// certificate without a key.
	SignCSR(meta certs.Meta, csr []byte, p certs.IssueParams) (certs.Certificate, error)
	// RotateRoot, FinishRootRotation, ImportIssuer and UseLocalIssuer run
	// on the local CA and re-issue and republish what depends on it.
	RotateRoot(kt ca.KeyType) error
	FinishRootRotation() error
	ImportIssuer(chain []*x509.Certificate, key crypto.Signer) error
	UseLocalIssuer() error
	Renew(ctx context.Context, id string) (certs.Certificate, error)
	RenewDue(ctx context.Context) ([]string, error)
}

// Trust is the trust and issuer lists with their vault sync
// (*trustsync.Service).
type Trust interface {
	Applied() (trust.Version, error)
	Staged() (trust.Version, bool, error)
	Versions() ([]trust.Version, error)
	Version(n uint64) (trust.Version, error)
	Diff(from, to uint64) (trust.Diff, error)
	Entry(list trust.ListName, id string) (trust.Entry, error)
	StageUpload(list trust.ListName, name string, data []byte, by string) (trust.Version, error)
	StageDelete(list trust.ListName, id, by string) (trust.Version, error)
	Apply(ctx context.Context, number uint64, o trust.ApplyOptions) (trust.Version, error)
	Rollback(ctx context.Context, o trust.ApplyOptions) (trust.Version, error)
	Discard() error

	Status() trustsync.Status
	SyncNow(ctx context.Context) (vault.SyncResult, error)
	VaultSecrets(ctx context.Context) ([]vault.Ref, error)
	AddFromVault(ctx context.Context, list trust.ListName, name, by string) (trust.Version, error)
	Fleet(ctx context.Context) ([]vault.DeviceStatus, error)
}
