package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/edgegate/edgegate/certs/tlsconf"
	"github.com/edgegate/edgegate/gateway/config"
)

// handshakeTimeout bounds the TLS handshake and the wait for CONNECT, so a
// silent peer cannot hold a connection slot; mochi replaces the deadline
// with the keepalive once the client is connected.
const handshakeTimeout = 10 * time.Second

// wsSubprotocols are the WebSocket subprotocols MQTT clients ask for
// (seed 002: mqttv3.1 and mqttv3.1.1; the standard name is mqtt).
var wsSubprotocols = []string{"mqtt", "mqttv3.1", "mqttv3.1.1"}

// listener is one MQTT endpoint. It implements mochi's listeners.Listener
// over a net.Listener that is either bound by Init or handed over by
// systemd socket activation, and it counts its connections for max_clients.
type listener struct {
	name      string
	cfg       config.Listener
	tlsConfig *tls.Config // nil for tcp and ws
	ln        net.Listener
	http      *http.Server // ws and wss only
	log       *slog.Logger
	establish listeners.EstablishFn

	active atomic.Int64 // open connections, counted from accept to close
	closed atomic.Bool  // set under mu
	mu     sync.Mutex
	conns  map[net.Conn]struct{} // connections Close must end: tcp/tls from accept, ws/wss from upgrade
	wg     sync.WaitGroup        // the goroutines serving conns
}

var _ listeners.Listener = (*listener)(nil)

func newListener(name string, cfg config.Listener, tlsConfig *tls.Config, activated net.Listener) *listener {
	return &listener{name: name, cfg: cfg, tlsConfig: tlsConfig, ln: activated}
}

func (l *listener) ID() string { return l.name }

func (l *listener) Protocol() string { return l.cfg.Type }

// Address returns the bound address once Init has run.
func (l *listener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.cfg.Bind
}

// Init binds the listener unless socket activation already did.
func (l *listener) Init(log *slog.Logger) error {
	l.log = log
	if l.ln == nil {
		var lc net.ListenConfig
		ln, err := lc.Listen(context.Background(), "tcp", l.cfg.Bind)
		if err != nil {
			return err
		}
		l.ln = ln
	}
	if l.cfg.IsWebSocket() {
		mux := http.NewServeMux()
		mux.HandleFunc(l.cfg.Path, l.serveWebSocket)
		l.http = &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: handshakeTimeout,
			IdleTimeout:       handshakeTimeout,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
			ConnState:         l.countHTTPConn,
		}
	}
	return nil
}

// Serve accepts connections until Close.
func (l *listener) Serve(establish listeners.EstablishFn) {
	l.establish = establish
	if l.http != nil {
		ln := l.ln
		if l.tlsConfig != nil {
			ln = tls.NewListener(ln, l.tlsConfig)
		}
		if err := l.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !l.closed.Load() {
			l.log.Error("websocket listener stopped", "error", err)
		}
		return
	}
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if !l.closed.Load() {
				l.log.Error("accept failed; listener stopped", "error", err)
			}
			return
		}
		if !l.track(conn) {
			_ = conn.Close() // closing: the next Accept fails
			continue
		}
		l.active.Add(1)
		go func() {
			defer l.untrack(conn)
			defer l.active.Add(-1)
			l.serveConn(conn)
		}()
	}
}

// track registers a connection for Close to end, and its goroutine for
// Close to wait for. It reports false once Close has begun.
func (l *listener) track(conn net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return false
	}
	if l.conns == nil {
		l.conns = map[net.Conn]struct{}{}
	}
	l.conns[conn] = struct{}{}
	l.wg.Add(1)
	return true
}

func (l *listener) untrack(conn net.Conn) {
	l.mu.Lock()
	delete(l.conns, conn)
	l.mu.Unlock()
	l.wg.Done()
}

func (l *listener) serveConn(conn net.Conn) {
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	if l.tlsConfig != nil {
		tc := tls.Server(conn, l.tlsConfig)
		ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			l.log.Debug("tls handshake failed", "remote", conn.RemoteAddr().String(), "error", err)
			_ = tc.Close()
			return
		}
		if tc.ConnectionState().NegotiatedProtocol == tlsconf.ACMEProto {
			// An ACME CA validating tls-alpn-01: the handshake was the answer.
			_ = tc.Close()
			return
		}
		conn = tc
	}
	if err := l.establish(l.name, conn); err != nil && !isDisconnect(err) {
		l.log.Debug("connection ended", "remote", conn.RemoteAddr().String(), "error", err)
	}
}

// countHTTPConn counts WebSocket connections at the TCP level, like Serve
// does for plain listeners, so max_clients covers both.
func (l *listener) countHTTPConn(_ net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		l.active.Add(1)
	case http.StateClosed, http.StateHijacked:
		l.active.Add(-1)
	}
}

var upgrader = websocket.Upgrader{
	Subprotocols:    wsSubprotocols,
	ReadBufferSize:  1024,
	WriteBufferSize: 1024,
	// MQTT clients in browsers connect from pages of any origin; they
	// authenticate at the MQTT level.
	CheckOrigin: func(*http.Request) bool { return true },
}

func (l *listener) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered with an HTTP error
	}
	if !l.track(c.UnderlyingConn()) {
		_ = c.Close()
		return
	}
	defer l.untrack(c.UnderlyingConn())
	// The hijacked connection no longer passes through ConnState; count it
	// here for its lifetime.
	l.active.Add(1)
	defer l.active.Add(-1)
	conn := &wsConn{Conn: c.UnderlyingConn(), ws: c, tls: r.TLS}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := l.establish(l.name, conn); err != nil && !isDisconnect(err) {
		l.log.Debug("connection ended", "remote", r.RemoteAddr, "error", err)
	}
}

// Close stops accepting, disconnects this listener's clients, closes the
// connections that have not connected yet (in a TLS or WebSocket handshake,
// or before CONNECT) and waits for every connection goroutine. It never
// waits for a silent peer's handshake timeout.
func (l *listener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.closed.Load() {
		l.mu.Unlock()
		return
	}
	l.closed.Store(true)
	l.mu.Unlock()
	if l.http != nil {
		// Close, not Shutdown: MQTT listeners have no HTTP requests worth
		// finishing, and Shutdown would wait for connections that have not
		// sent a request yet. Hijacked connections are in conns.
		_ = l.http.Close()
	}
	if l.ln != nil {
		_ = l.ln.Close() // also when Serve has not started the http.Server yet
	}
	closeClients(l.name) // connected clients get a DISCONNECT first
	l.mu.Lock()
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()
	for conn := range conns {
		_ = conn.Close()
	}
	l.wg.Wait()
}

func isDisconnect(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)
}

// wsConn carries MQTT over WebSocket binary messages as a net.Conn. It
// exposes the TLS state of a wss connection for certificate identity.
type wsConn struct {
	net.Conn
	ws  *websocket.Conn
	tls *tls.ConnectionState
	r   io.Reader // the current message being read, if any
}

// errNotBinary is returned when a peer sends a text frame: MQTT over
// WebSocket uses binary frames only.
var errNotBinary = errors.New("websocket: MQTT requires binary messages")

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			kind, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if kind != websocket.BinaryMessage {
				return 0, errNotBinary
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue // an empty or finished message: read the next one
			}
			return n, nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error { return c.ws.Close() }

// ConnectionState returns the TLS state of a wss connection, or a zero
// state for ws.
func (c *wsConn) ConnectionState() tls.ConnectionState {
	if c.tls == nil {
		return tls.ConnectionState{}
	}
	return *c.tls
}
