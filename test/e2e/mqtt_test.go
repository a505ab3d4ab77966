package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"
)

// dialer opens a transport connection to the broker.
type dialer func(ctx context.Context) (net.Conn, error)

// tcpDialer dials addr over TCP, from localIP when it is not empty (e.g.
// 127.0.0.2, to look like a client that is not 127.0.0.1).
func tcpDialer(addr, localIP string) dialer {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		if localIP != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
		}
		return d.DialContext(ctx, "tcp", addr)
	}
}

// tlsDialer dials addr over TLS with cfg.
func tlsDialer(addr string, cfg *tls.Config) dialer {
	return func(ctx context.Context) (net.Conn, error) {
		d := tls.Dialer{Config: cfg}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

// wsDialer dials a ws:// or wss:// URL asking for one subprotocol, and
// checks that the server chose it.
func wsDialer(rawURL, subprotocol string, cfg *tls.Config) dialer {
	return func(ctx context.Context) (net.Conn, error) {
		d := websocket.Dialer{
			Subprotocols:     []string{subprotocol},
			TLSClientConfig:  cfg,
			HandshakeTimeout: 10 * time.Second,
			Proxy:            nil,
		}
		ws, resp, err := d.DialContext(ctx, rawURL, http.Header{})
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close() // the connection, if any, lives on in ws
		}
		if err != nil {
			status := ""
			if resp != nil {
				status = " (HTTP " + resp.Status + ")"
			}
			return nil, fmt.Errorf("websocket dial %s%s: %w", rawURL, status, err)
		}
		if got := ws.Subprotocol(); got != subprotocol {
			_ = ws.Close()
			return nil, fmt.Errorf("websocket subprotocol: server chose %q, asked for %q", got, subprotocol)
		}
		return &wsNetConn{Conn: ws.NetConn(), ws: ws}, nil
	}
}

// wsNetConn carries a byte stream in WebSocket binary messages.
type wsNetConn struct {
	net.Conn
	ws  *websocket.Conn
	rmu sync.Mutex
	r   io.Reader
	wmu sync.Mutex
}

func (c *wsNetConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if c.r == nil {
			kind, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if kind != websocket.BinaryMessage {
				return 0, fmt.Errorf("websocket: got message type %d, MQTT uses binary", kind)
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			return n, nil
		}
		return n, err
	}
}

func (c *wsNetConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsNetConn) Close() error { return c.ws.Close() }

// --- MQTT 5 client (paho.golang) ---

// connOpts are the CONNECT fields of a Go client.
type connOpts struct {
	clientID string
	username string
	password string
	// keepSession sends CleanStart=false.
	keepSession bool
	// sessionExpiry is the session expiry interval in seconds (0: none).
	sessionExpiry uint32
}

// goClient is a connected paho client that collects what it receives.
type goClient struct {
	t       testing.TB
	c       *paho.Client
	msgs    chan *paho.Publish
	connack *paho.Connack

	mu         sync.Mutex
	disconnect *paho.Disconnect // a DISCONNECT the server sent
}

// connectGo dials and CONNECTs an MQTT 5 client. On a refused CONNECT it
// returns the CONNACK (when one came) and an error.
func connectGo(ctx context.Context, t testing.TB, dial dialer, o connOpts) (*goClient, error) {
	t.Helper()
	conn, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	g := &goClient{t: t, msgs: make(chan *paho.Publish, 1000)}
	g.c = paho.NewClient(paho.ClientConfig{
		Conn: packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) {
				select {
				case g.msgs <- pr.Packet:
				default:
					t.Errorf("client %s: receive buffer full", o.clientID)
				}
				return true, nil
			},
		},
		OnServerDisconnect: func(d *paho.Disconnect) {
			g.mu.Lock()
			g.disconnect = d
			g.mu.Unlock()
		},
		OnClientError: func(error) {},
		PacketTimeout: 10 * time.Second,
	})
	cp := &paho.Connect{
		ClientID:   o.clientID,
		KeepAlive:  30,
		CleanStart: !o.keepSession,
	}
	if o.username != "" {
		cp.Username, cp.UsernameFlag = o.username, true
	}
	if o.password != "" {
		cp.Password, cp.PasswordFlag = []byte(o.password), true
	}
	if o.sessionExpiry > 0 {
		se := o.sessionExpiry
		cp.Properties = &paho.ConnectProperties{SessionExpiryInterval: &se}
	}
	ca, err := g.c.Connect(ctx, cp)
	g.connack = ca
	if err != nil {
		_ = conn.Close()
		if ca != nil {
			return g, fmt.Errorf("CONNACK reason 0x%02x: %w", ca.ReasonCode, err)
		}
		return nil, err
	}
	t.Cleanup(func() { g.close() })
	return g, nil
}

// mustConnectGo is connectGo that fails the test on error.
func mustConnectGo(ctx context.Context, t testing.TB, dial dialer, o connOpts) *goClient {
	t.Helper()
	g, err := connectGo(ctx, t, dial, o)
	if err != nil {
		t.Fatalf("connect %q: %v", o.clientID, err)
	}
	return g
}

func (g *goClient) close() {
	select {
	case <-g.c.Done():
	default:
		_ = g.c.Disconnect(&paho.Disconnect{ReasonCode: 0})
	}
}

// subscribe subscribes to filters at qos and returns the SUBACK reason
// codes (an error only when no SUBACK came).
func (g *goClient) subscribe(ctx context.Context, qos byte, filters ...string) ([]byte, error) {
	s := &paho.Subscribe{}
	for _, f := range filters {
		s.Subscriptions = append(s.Subscriptions, paho.SubscribeOptions{Topic: f, QoS: qos})
	}
	sa, err := g.c.Subscribe(ctx, s)
	if sa != nil {
		return sa.Reasons, nil
	}
	return nil, err
}

// mustSubscribe subscribes and requires every filter to be granted qos.
func (g *goClient) mustSubscribe(ctx context.Context, qos byte, filters ...string) {
	g.t.Helper()
	codes, err := g.subscribe(ctx, qos, filters...)
	if err != nil {
		g.t.Fatalf("subscribe %v: %v", filters, err)
	}
	for i, c := range codes {
		if c != qos {
			g.t.Fatalf("subscribe %q: SUBACK reason 0x%02x, want granted QoS %d", filters[i], c, qos)
		}
	}
}

// publish publishes and, for QoS 1 and 2, waits for the acknowledgement.
func (g *goClient) publish(ctx context.Context, topic string, qos byte, retain bool, payload string) error {
	resp, err := g.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: []byte(payload)})
	if err != nil {
		return err
	}
	if resp != nil && resp.ReasonCode >= 0x80 {
		return fmt.Errorf("publish %q: reason 0x%02x", topic, resp.ReasonCode)
	}
	return nil
}

func (g *goClient) mustPublish(ctx context.Context, topic string, qos byte, retain bool, payload string) {
	g.t.Helper()
	if err := g.publish(ctx, topic, qos, retain, payload); err != nil {
		g.t.Fatalf("publish %q QoS %d: %v", topic, qos, err)
	}
}

// next returns the next message received.
func (g *goClient) next(ctx context.Context) (*paho.Publish, error) {
	select {
	case m := <-g.msgs:
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// expect waits for the next message and checks its topic and payload.
func (g *goClient) expect(ctx context.Context, topic, payload string) *paho.Publish {
	g.t.Helper()
	m, err := g.next(ctx)
	if err != nil {
		g.t.Fatalf("waiting for %q on %q: %v", payload, topic, err)
	}
	if m.Topic != topic || string(m.Payload) != payload {
		g.t.Fatalf("received %q on %q, want %q on %q", m.Payload, m.Topic, payload, topic)
	}
	return m
}

// expectTopic waits for a message on topic, skipping others, and returns it.
func (g *goClient) expectTopic(ctx context.Context, topic string) *paho.Publish {
	g.t.Helper()
	for {
		m, err := g.next(ctx)
		if err != nil {
			g.t.Fatalf("waiting for a message on %q: %v", topic, err)
		}
		if m.Topic == topic {
			return m
		}
	}
}

// waitClosed waits until the broker has closed the connection.
func (g *goClient) waitClosed(ctx context.Context) error {
	select {
	case <-g.c.Done():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *goClient) serverDisconnect() *paho.Disconnect {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.disconnect
}
