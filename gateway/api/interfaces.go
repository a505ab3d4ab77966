package api

import (
	"context"

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
	CreateAPIKey(name string) (admin.APIKey, string, error)
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
