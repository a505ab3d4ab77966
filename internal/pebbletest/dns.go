package pebbletest

import (
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// DNS is the resolver Pebble's VA asks: A queries for every name get
// 127.0.0.1, AAAA queries nothing (challenge servers under test listen on
// IPv4), TXT queries the records set with SetTXT (for dns-01).
type DNS struct {
	addr string

	mu  sync.Mutex
	txt map[string][]string // lower-case FQDN → values
}

// StartDNS serves DNS over UDP and TCP on one free port of 127.0.0.1 until
// the test ends.
func StartDNS(t testing.TB) *DNS {
	t.Helper()
	// Pebble asks over TCP, Go's resolver over UDP: serve both on one port.
	var (
		lc  net.ListenConfig
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	for range 5 {
		if pc, err = lc.ListenPacket(t.Context(), "udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = lc.Listen(t.Context(), "tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close() // the TCP port is taken; try another
	}
	if err != nil {
		t.Fatalf("dns server: %v", err)
	}
	d := &DNS{addr: pc.LocalAddr().String(), txt: make(map[string][]string)}
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: d}, {Listener: ln, Handler: d}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan error, 1)
		go func() { done <- srv.ActivateAndServe() }()
		select {
		case <-started:
		case err := <-done:
			t.Fatalf("dns server: %v", err)
		}
		t.Cleanup(func() {
			_ = srv.Shutdown()
			if err := <-done; err != nil {
				t.Logf("dns server: %v", err)
			}
		})
	}
	return d
}

// Addr is the server's host:port (UDP and TCP).
func (d *DNS) Addr() string { return d.addr }

// ServeDNS implements dns.Handler.
func (d *DNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	for _, q := range req.Question {
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 0}
		switch q.Qtype {
		case dns.TypeA:
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IPv4(127, 0, 0, 1)})
		case dns.TypeTXT:
			hdr.Rrtype = dns.TypeTXT
			d.mu.Lock()
			for _, v := range d.txt[strings.ToLower(q.Name)] {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: []string{v}})
			}
			d.mu.Unlock()
		}
	}
	_ = w.WriteMsg(m)
}

// SetTXT adds a TXT record for fqdn.
func (d *DNS) SetTXT(fqdn, value string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fqdn = strings.ToLower(dns.Fqdn(fqdn))
	d.txt[fqdn] = append(d.txt[fqdn], value)
}

// ClearTXT removes a TXT record SetTXT added.
func (d *DNS) ClearTXT(fqdn, value string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fqdn = strings.ToLower(dns.Fqdn(fqdn))
	d.txt[fqdn] = slices.DeleteFunc(d.txt[fqdn], func(v string) bool { return v == value })
	if len(d.txt[fqdn]) == 0 {
		delete(d.txt, fqdn)
	}
}

// TXTNames is how many names have TXT records.
func (d *DNS) TXTNames() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.txt)
}
