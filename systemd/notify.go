// Package systemd connects the daemon to the service manager: readiness and
// status notifications (sd_notify), the watchdog keep-alive, and listeners
// passed in by socket activation.
//
// Everything here is a no-op outside systemd: without NOTIFY_SOCKET the
// notifications are dropped, without WATCHDOG_USEC RunWatchdog returns at once,
// and without LISTEN_FDS ActivatedListeners returns an empty map. The daemon
// therefore calls these unconditionally and runs the same way under systemd,
// in a container or from a developer's shell.
package systemd

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier reports service state to systemd. The zero value is not usable; use NewNotifier.
type Notifier struct {
	logger *slog.Logger
}

// NewNotifier returns a Notifier that logs to logger (nil discards).
func NewNotifier(logger *slog.Logger) *Notifier {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Notifier{logger: logger}
}

// Ready tells systemd that start-up is finished (READY=1). With Type=notify,
// systemd holds back units ordered after edgegate until this is sent.
func (n *Notifier) Ready() error {
	return n.notify(daemon.SdNotifyReady)
}

// Status sets the free-form status line shown by systemctl status (STATUS=...).
// Line breaks in s are replaced by spaces: sd_notify messages are
// newline-separated assignments, and a status built from an error message
// must not be able to smuggle in another assignment such as READY=1.
func (n *Notifier) Status(s string) error {
	s = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
	return n.notify("STATUS=" + s)
}

// Stopping tells systemd that shutdown has begun (STOPPING=1), so that the
// stop is not mistaken for a crash and the watchdog is not expected to fire.
func (n *Notifier) Stopping() error {
	return n.notify(daemon.SdNotifyStopping)
}

// RunWatchdog sends WATCHDOG=1 at half the interval systemd asked for
// (WatchdogSec=, passed as WATCHDOG_USEC for this process) until ctx ends. It
// returns at once when no watchdog is configured for this process. The caller
// owns the goroutine it runs in and must wait for it.
func (n *Notifier) RunWatchdog(ctx context.Context) {
	// unsetEnvironment stays false: systemd passes WATCHDOG_USEC once, and
	// unsetting it would hide it from any later call.
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		n.logger.Warn("systemd watchdog disabled: bad watchdog environment", "err", err)
		return
	}
	if interval <= 0 {
		return
	}
	period := interval / 2
	n.logger.Debug("systemd watchdog enabled", "interval", interval, "period", period)

	ticker := time.NewTicker(period)
	defer ticker.Stop()
	for {
		// A keep-alive that fails is logged and retried on the next tick: if
		// they keep failing, systemd restarts the service, which is the point.
		if err := n.notify(daemon.SdNotifyWatchdog); err != nil {
			n.logger.Warn("systemd watchdog keep-alive failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// notify sends one state message. It keeps NOTIFY_SOCKET in the environment
// (unsetEnvironment false) because every later notification, the watchdog's
// included, needs it too.
func (n *Notifier) notify(state string) error {
	sent, err := daemon.SdNotify(false, state)
	if err != nil {
		return fmt.Errorf("systemd notify %q: %w", state, err)
	}
	if sent && state != daemon.SdNotifyWatchdog { // keep-alives would flood a debug log
		n.logger.Debug("systemd notified", "state", state)
	}
	return nil
}
