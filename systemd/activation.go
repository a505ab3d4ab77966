package systemd

import (
	"fmt"
	"net"
	"os"

	"github.com/coreos/go-systemd/v22/activation"
)

// ActivatedListeners returns the listening sockets systemd passed to this
// process (LISTEN_FDS), keyed by their FileDescriptorName= (the daemon uses
// tcp, tls, ws and wss). An fd without a name is keyed LISTEN_FD_<n>. The map
// is empty, never nil, when the process was not socket-activated.
//
// It fails, closing every passed fd, when a name carries more than one fd or
// an fd is not a stream listener: both mean a socket unit that does not match
// what the daemon expects, and silently dropping a socket would leave a port
// that accepts connections nobody serves.
//
// LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are removed from the environment,
// so that child processes do not take the fds for their own.
func ActivatedListeners() (map[string]net.Listener, error) {
	// activation.Files rather than activation.ListenersWithNames: the latter
	// drops (and leaks) fds that are not listeners and allows several fds per
	// name, and the mapping below is testable without real inherited fds.
	return listenersFromFiles(activation.Files(true))
}

// listenersFromFiles turns inherited fds into listeners keyed by file name
// (activation.Files names each file after its FileDescriptorName=). It takes
// ownership of files: all are closed when it returns, since net.FileListener
// works on a duplicate. On error every listener it made is closed too.
func listenersFromFiles(files []*os.File) (listeners map[string]net.Listener, err error) {
	listeners = make(map[string]net.Listener, len(files))
	defer func() {
		for _, f := range files {
			_ = f.Close() // the listener holds its own duplicate
		}
		if err != nil {
			for _, l := range listeners {
				_ = l.Close()
			}
			listeners = nil
		}
	}()

	for _, f := range files {
		name := f.Name()
		if _, dup := listeners[name]; dup {
			return listeners, fmt.Errorf("socket activation: more than one fd named %q: each listener needs its own FileDescriptorName=", name)
		}
		l, err := net.FileListener(f)
		if err != nil {
			return listeners, fmt.Errorf("socket activation: fd %q is not a stream listener: %w", name, err)
		}
		listeners[name] = l
	}
	return listeners, nil
}
