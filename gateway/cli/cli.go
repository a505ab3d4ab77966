// Package cli implements the edgegate subcommands that manage a gateway
// from its own shell: "edgegate user" (MQTT username/password accounts),
// "edgegate trace" (client and topic traces), "edgegate cert" and
// "edgegate ca" (the certificate store and the local CA), "edgegate trust"
// (the trust and issuer lists and their vault sync), and "edgegate
// provision" (signed provisioning bundles).
//
// The commands talk to the running daemon through the admin API on the unix
// socket <data>/edgegate.sock, whose file permissions authenticate them.
// When the daemon is not running (no socket, or nobody answers on it) the
// user commands open the database directly instead: bbolt lets one process
// hold the file, so the two paths are never used at once. Traces live in
// the daemon, so the trace commands need it running.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// SocketName is the admin socket in the data directory.
const SocketName = "edgegate.sock"

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// requestTimeout bounds one API call that has no deadline of its own;
// hashing a password with a high PBKDF2 work factor on a small board takes
// a fraction of it.
const requestTimeout = 30 * time.Second

// errHelp asks for the usage text (exit code 0).
var errHelp = flag.ErrHelp

// errDaemonDown is returned when no daemon answers on the socket.
var errDaemonDown = errors.New("edgegate is not running")

// apiError is an error answer of the admin API.
type apiError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
	// Confirmation is set on a "confirmation_required" answer.
	Confirmation *struct {
		Sessions         int      `json:"sessions"`
		CAs              []string `json:"cas"`
		EmptiesTrustList bool     `json:"emptiesTrustList"`
	} `json:"confirmation"`
}

func (e *apiError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("the daemon answered %d %s", e.Status, http.StatusText(e.Status))
	}
	return e.Message
}

// Usage lists edgegate's commands.
const Usage = `usage: edgegate [serve] [--data DIR] [--config FILE]
       edgegate version
       edgegate user add|passwd|delete|list ...
       edgegate trace client|topic|list|stop ...
       edgegate cert list|show|issue|import|export|renew|revoke ...
       edgegate ca show|rotate ...
       edgegate trust list|show|upload|delete|add|staged|apply|discard ...
       edgegate trust versions|rollback|sync|vault|fleet ...
       edgegate provision keygen|sign|verify|apply|hash-password ...
`

// Run runs the subcommand verb ("user", "trace", "cert", "ca", "trust" or
// "provision") with its arguments and returns its exit code: 0 on success,
// 1 on failure, 2 for a wrong command line (an unknown verb prints Usage).
func Run(ctx context.Context, verb, dataDir string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	switch verb {
	case "user":
		return User(ctx, dataDir, args, stdin, stdout, stderr)
	case "trace":
		return Trace(ctx, dataDir, args, stdout, stderr)
	case "cert", "ca":
		return Cert(ctx, verb, dataDir, args, stdin, stdout, stderr)
	case "trust":
		return Trust(ctx, dataDir, args, stdout, stderr)
	case "provision":
		return Provision(ctx, dataDir, args, stdin, stdout, stderr)
	}
	fmt.Fprintf(stderr, "edgegate: unknown command %q\n%s", verb, Usage)
	return exitUsage
}

// daemon is an admin API client on the unix socket.
type daemon struct {
	socket string
	hc     *http.Client
}

func newDaemon(dataDir string) *daemon {
	socket := filepath.Join(dataDir, SocketName)
	var d net.Dialer
	return &daemon{
		socket: socket,
		hc: &http.Client{
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return d.DialContext(ctx, "unix", socket)
				},
				DisableKeepAlives: true,
			},
		},
	}
}

// rawBody is a request body sent as it is, not as JSON.
type rawBody struct {
	contentType string
	data        []byte
}

// call sends a request with an optional body (a rawBody, or a value sent as
// JSON) and decodes a JSON answer into out (when not nil). It returns
// errDaemonDown when the socket is missing or refuses: nothing was sent, so
// the caller may fall back.
func (d *daemon) call(ctx context.Context, method, path string, body, out any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, requestTimeout)
		defer cancel()
	}
	var rd io.Reader
	contentType := "application/json"
	switch b := body.(type) {
	case nil:
	case rawBody:
		rd, contentType = bytes.NewReader(b.data), b.contentType
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	// The host is never resolved: the transport dials the socket.
	req, err := http.NewRequestWithContext(ctx, method, "http://edgegate"+path, rd)
	if err != nil {
		return err
	}
	if rd != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return errDaemonDown
		}
		return fmt.Errorf("talk to edgegate on %s: %w", d.socket, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read the daemon's answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		e := &apiError{Status: resp.StatusCode}
		_ = json.Unmarshal(data, e)
		return e
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode the daemon's answer: %w", err)
		}
	}
	return nil
}

// parseArgs parses flags placed anywhere among the positional arguments
// ("user add alice --superuser" as well as "user add --superuser alice"); a
// "--" ends the flags.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := args[:len(args)-len(rest)]; len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// usageError is a wrong command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exit prints err and returns the exit code for it.
func exit(stderr io.Writer, cmd, usage string, err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stderr, usage)
		return exitOK
	case errors.As(err, &ue):
		if ue.msg != "" {
			fmt.Fprintf(stderr, "%s: %s\n", cmd, ue.msg)
		}
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
	return exitError
}

// newFlagSet returns a flag set that reports errors through exit, not by
// printing (the flag package would print them itself).
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// flagError turns a flag parsing error into a usage error.
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usagef("%s", strings.TrimSpace(err.Error()))
}
