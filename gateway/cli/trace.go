package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
)

const traceUsage = `usage: edgegate trace client CLIENTID FILE
       edgegate trace topic FILTER FILE
       edgegate trace list
       edgegate trace stop client|topic TARGET
       edgegate trace client|topic TARGET off

Traces every packet of one client, or every message published to topics
matching FILTER, into FILE in the gateway's trace directory (a plain name
such as trace_c1.log; ".log" is added when missing). Needs the daemon.
`

// traceInfo is a trace as the API lists it.
type traceInfo struct {
	Kind       string    `json:"kind"`
	Target     string    `json:"target"`
	Name       string    `json:"name"`
	File       string    `json:"file"`
	Bytes      int64     `json:"bytes"`
	Started    time.Time `json:"started"`
	Stopped    time.Time `json:"stopped"`
	StopReason string    `json:"stop_reason"`
}

// Trace runs "edgegate trace VERB ..." against the running daemon and
// returns the exit code: 0 on success, 1 on failure, 2 for a wrong command
// line.
func Trace(ctx context.Context, dataDir string, args []string, stdout, stderr io.Writer) int {
	return exit(stderr, "edgegate trace", traceUsage, runTrace(ctx, dataDir, args, stdout))
}

func runTrace(ctx context.Context, dataDir string, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usagef("")
	}
	verb := args[0]
	if verb == "-h" || verb == "-help" || verb == "--help" || verb == "help" {
		return errHelp
	}
	pos, err := parseArgs(newFlagSet("trace "+verb), args[1:])
	if err != nil {
		return flagError(err)
	}
	d := newDaemon(dataDir)
	var run func() error
	switch verb {
	case "client", "topic":
		if len(pos) != 2 {
			return usagef("trace %s takes a target and a FILE (or off)", verb)
		}
		target, file := pos[0], pos[1]
		if file == "off" {
			run = func() error { return stopTrace(ctx, d, stdout, verb, target) }
			break
		}
		if strings.ContainsAny(file, `/\`) {
			return usagef("FILE %q must be a plain name: traces are written to the gateway's trace directory", file)
		}
		run = func() error { return startTrace(ctx, d, stdout, verb, target, file) }
	case "stop":
		if len(pos) != 2 || (pos[0] != "client" && pos[0] != "topic") {
			return usagef("trace stop takes client or topic, then the target")
		}
		run = func() error { return stopTrace(ctx, d, stdout, pos[0], pos[1]) }
	case "list":
		if len(pos) != 0 {
			return usagef("trace list takes no arguments")
		}
		run = func() error { return listTraces(ctx, d, stdout) }
	default:
		return usagef("unknown verb %q", verb)
	}
	err = run()
	if errors.Is(err, errDaemonDown) {
		return fmt.Errorf("edgegate is not running (nothing answers on %s); traces run inside the daemon", d.socket)
	}
	return err
}

func startTrace(ctx context.Context, d *daemon, stdout io.Writer, kind, target, file string) error {
	var info traceInfo
	body := map[string]string{"kind": kind, "target": target, "name": file}
	if err := d.call(ctx, "POST", "/api/v1/traces", body, &info); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "tracing %s %q to %s\n", kind, target, info.File)
	return nil
}

func stopTrace(ctx context.Context, d *daemon, stdout io.Writer, kind, target string) error {
	// PathEscape escapes "/" and "#" too, so a filter like "/a/#" arrives
	// intact.
	if err := d.call(ctx, "DELETE", "/api/v1/traces/"+kind+"/"+url.PathEscape(target), nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "stopped tracing %s %q\n", kind, target)
	return nil
}

func listTraces(ctx context.Context, d *daemon, stdout io.Writer) error {
	var traces []traceInfo
	if err := d.call(ctx, "GET", "/api/v1/traces", nil, &traces); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tTARGET\tFILE\tBYTES\tSTARTED\tSTATE")
	for _, t := range traces {
		state := "running"
		if t.StopReason != "" {
			state = t.StopReason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", t.Kind, t.Target, t.File, t.Bytes, t.Started.UTC().Format(time.RFC3339), state)
	}
	return tw.Flush()
}
