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
	closed atomic.Bool
	wg     sync.WaitGroup // connection goroutines of tcp/tls listeners
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
		l.http.ConnState = l.countHTTPConn
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
		l.active.Add(1)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer l.active.Add(-1)
			l.serveConn(conn)
		}()
	}
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

// Close stops accepting, disconnects this listener's clients and waits for
// their connection goroutines.
func (l *listener) Close(closeClients listeners.CloseFn) {
	if !l.closed.CompareAndSwap(false, true) {
		return
	}
	if l.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = l.http.Shutdown(ctx)
		cancel()
	} else if l.ln != nil {
		_ = l.ln.Close()
	}
	closeClients(l.name)
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
