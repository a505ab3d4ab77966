package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps what DESIGN.md "One store" and "Static binary"
// forbid out of the binary: mochi's storage back-ends (badger, pebble,
// redis, its bolt hook) and its config package, and lego's DNS providers
// beyond the few certs/acme chose (its all-providers package alone is tens
// of megabytes). It lists the static build's packages (CGO_ENABLED=0),
// which is what ships.
func TestDependencies(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/dgraph-io/badger",
		"github.com/cockroachdb/pebble",
		"github.com/redis/",
		"github.com/go-redis/",
		"github.com/mochi-mqtt/server/v2/hooks/storage/",
		"github.com/mochi-mqtt/server/v2/config",
		"github.com/edgegate/edgegate/gateway/broker/internal/mqtttest", // test support only
		"github.com/go-acme/lego/v4/providers/dns/route53",
		"github.com/go-acme/lego/v4/providers/dns/rfc2136",
	}
	// Matched whole: the providers certs/acme uses live below it.
	const allDNSProviders = "github.com/go-acme/lego/v4/providers/dns"
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps listed only %d packages; is the test running in the right directory?", len(deps))
	}
	for _, dep := range deps {
		if dep == allDNSProviders {
			t.Errorf("edgegate depends on %s", dep)
		}
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("edgegate depends on %s", dep)
			}
		}
	}
}
