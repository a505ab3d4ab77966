package gateway

import (
	"fmt"
	"net"
	"strings"
	"text/tabwriter"
)

// printBanner writes what an operator needs after start: where to connect,
// the CA to trust and, until the admin password is set, the setup code.
func (g *Gateway) printBanner(apiAddr, webAddr string) error {
	code, _, err := g.admin.EnsureSetupCode()
	if err != nil {
		return fmt.Errorf("setup code: %w", err)
	}
	w := tabwriter.NewWriter(g.opts.Console, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "edgegate %s\tdata %s\n", g.opts.Version, g.opts.DataDir)
	for _, l := range g.broker.Listeners() {
		fmt.Fprintf(w, "listener %s\t%s\n", l.Name, listenerURL(l.Type, l.Address, l.Path))
	}
	if webAddr != "" {
		fmt.Fprintf(w, "web ui\thttps://%s/\n", displayAddr(webAddr))
	}
	fmt.Fprintf(w, "admin api\thttp://%s/api/v1\n", displayAddr(apiAddr))
	fmt.Fprintf(w, "local ca\tSHA256 %s\n", g.ca.RootFingerprint())
	if code != "" {
		fmt.Fprintf(w, "setup code\t%s\t(one use: open the web UI, or POST /api/v1/setup)\n", code)
	}
	fmt.Fprintln(w, "ready")
	return w.Flush()
}

func listenerURL(kind, addr, path string) string {
	scheme := map[string]string{"tcp": "mqtt", "tls": "mqtts", "ws": "ws", "wss": "wss"}[kind]
	return scheme + "://" + displayAddr(addr) + path
}

// displayAddr turns a wildcard bind address into one a user can connect to.
func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + port
}
