package webui

import (
	"context"
	"crypto"
	"crypto/x509"
	"io"

	"github.com/edgegate/edgegate/certs"
	"github.com/edgegate/edgegate/certs/ca"
	"github.com/edgegate/edgegate/certs/trust"
	"github.com/edgegate/edgegate/certs/trustsync"
	"github.com/edgegate/edgegate/certs/vault"
	"github.com/edgegate/edgegate/gateway/admin"
	"github.com/edgegate/edgegate/gateway/auth"
	"github.com/edgegate/edgegate/gateway/broker"
	"github.com/edgegate/edgegate/gateway/broker/sys"
	"github.com/edgegate/edgegate/gateway/broker/trace"
	"github.com/edgegate/edgegate/gateway/config"
	"github.com/edgegate/edgegate/gateway/logtail"
	"github.com/edgegate/edgegate/gateway/store"
)

// Admin is the administrator's credentials (*admin.Credentials).
type Admin interface {
	SetupDone() (bool, error)
	CompleteSetup(code, password string) error
	CheckAdmin(password string) bool
	CreateAPIKey(name string, scopes ...string) (admin.APIKey, string, error)
	ListAPIKeys() ([]admin.APIKey, error)
	DeleteAPIKey(id string) error
}

// Broker is the running MQTT broker (*broker.Broker).
type Broker interface {
	Clients() []broker.ClientInfo
	Client(id string) (broker.ClientInfo, bool)
	Kick(id string) error
	Subscriptions(clientID string) []broker.Subscription
	Retained() []broker.RetainedMessage
	DeleteRetained(topic string) error
	Publish(m broker.Message) error
	Listeners() []broker.ListenerStatus
	Stats() sys.Stats
	WatchClients(fn func(broker.ClientEvent)) (stop func())
	WatchMessages(filter string, fn func(broker.WatchedMessage)) (stop func(), err error)
}

// Users is the MQTT account store (*auth.Users).
type Users interface {
	Add(u auth.User) error
	Get(username string) (auth.User, error)
	SetPassword(username, hash string) error
	Delete(username string) error
	List() ([]auth.User, error)
}

// Settings is the live settings service (*gateway.Settings).
type Settings interface {
	Effective() config.Effective
	// Apply merges a JSON merge patch, validates the result as a whole
	// (errors.Join of *config.FieldError), saves and applies it.
	Apply(ctx context.Context, patch []byte, author string) (store.SettingsVersion, error)
}

// Certificates is the certificate manager (*certs.Manager).
type Certificates interface {
	List() ([]certs.Certificate, error)
	Get(id string) (certs.Certificate, error)
	Key(id string) (crypto.Signer, error)
	Add(meta certs.Meta, chain []*x509.Certificate, key crypto.Signer, source certs.Source) (certs.Certificate, error)
	Create(meta certs.Meta, p certs.IssueParams) (certs.Certificate, error)
	ObtainACME(ctx context.Context, meta certs.Meta, names []string, serve bool) (certs.Certificate, error)
	Renew(ctx context.Context, id string) (certs.Certificate, error)
	Revoke(ctx context.Context, id, reason string) (certs.Certificate, error)
	Delete(id string) error
}

// Authority is the local CA (*ca.Authority).
type Authority interface {
	Issuers() []ca.IssuerInfo
	RootFingerprint() string
}

// Logs is the tail of the process log (*logtail.Tail).
type Logs interface {
	Lines() []logtail.Line
	// Subscribe offers each new line on the channel until cancel.
	Subscribe(buffer int) (lines <-chan logtail.Line, cancel func())
}

// Traces runs client and topic traces (*trace.Tracer).
type Traces interface {
	// Start returns trace.ErrExists, ErrFileInUse, ErrBadName or
	// ErrBadTarget for a request it refuses.
	Start(kind trace.Kind, target, name string) (trace.Info, error)
	// StopTrace returns trace.ErrNotFound when no such trace runs.
	StopTrace(kind trace.Kind, target string) error
	List() []trace.Info
}

// Backups makes encrypted backups of the store and stages a restore or a
// factory reset for the next start (*backup.Manager).
type Backups interface {
	Create(w io.Writer, passphrase string) error
	// Stage returns backup.ErrPassphrase, ErrDamaged or ErrUnsupported
	// (wrapped) for a backup it refuses.
	Stage(r io.Reader, passphrase string) error
	StageReset(keepDeviceKey bool) error
}

// Trust is the trust and issuer lists with their vault sync
// (*trustsync.Service).
type Trust interface {
	Applied() (trust.Version, error)
	Staged() (trust.Version, bool, error)
	Versions() ([]trust.Version, error)
	Version(n uint64) (trust.Version, error)
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
