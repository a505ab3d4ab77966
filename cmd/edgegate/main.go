// Command edgegate is the edge gateway: MQTT broker, certificate manager and
// local admin API in one binary. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	// The image ships no zoneinfo; the timezone setting needs the database.
	_ "time/tzdata"

	"github.com/edgegate/edgegate/gateway"
	"github.com/edgegate/edgegate/gateway/cli"
	"github.com/edgegate/edgegate/systemd"
)

// Stamped by the build (-ldflags -X).
var (
	version = "dev"
	commit  = "none"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	verb := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		verb, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", envOr("EDGEGATE_DATA", "/var/lib/edgegate"), "data directory (env EDGEGATE_DATA)")
	configFile := fs.String("config", "/etc/edgegate/edgegate.json", "optional settings file whose keys win and are locked")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if verb == "version" {
		fmt.Fprintf(stdout, "edgegate %s (commit %s, %s)\n", version, commit, runtime.Version())
		return 0
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if verb == "serve" {
		return serve(ctx, *dataDir, *configFile, stdout, stderr)
	}
	return cli.Run(ctx, verb, *dataDir, fs.Args(), stdin, stdout, stderr) // the management commands
}

func serve(ctx context.Context, dataDir, configFile string, stdout, stderr io.Writer) int {
	st, err := gateway.OpenStore(dataDir, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "edgegate: %v\n", err)
		return 1
	}
	defer st.Close()
	logLevel := new(slog.LevelVar)
	settings, err := gateway.LoadSettings(st, configFile, logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "edgegate: refusing to start: %v\n", err)
		return 2
	}
	logger := gateway.NewLogger(stderr, settings.Effective().Config.Log, logLevel)
	gw, err := gateway.New(st, settings, gateway.Options{
		DataDir: dataDir, Version: version, Commit: commit, Logger: logger, Console: stdout, Notifier: systemd.NewNotifier(logger),
	})
	if err != nil {
		logger.Error("start", "error", err)
		return 1
	}
	err = gw.Run(ctx)
	if errors.Is(err, gateway.ErrRestart) {
		err = gw.Reexec(st) // returns only if the process cannot be replaced
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		logger.Error("run", "error", err)
		return 1
	}
	return 0
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}
