// Command loadgen benchmarks edgegate side by side with mosquitto on this
// machine (make bench). It starts each broker itself, fresh for every
// scenario run, on 127.0.0.1 only, alternates them run by run (mosquitto,
// edgegate, mosquitto, edgegate, ...), and writes a ratio table to stdout,
// results.json and chart.png to -out. Every scenario has a deadline and the
// whole run has one; brokers are stopped by PID, and die with the generator
// if it is killed.
//
// Environment: BENCH_QUICK=1 (small and short, for checking the harness),
// BENCH_RUNS (runs per broker), BENCH_ONLY (comma-separated scenario ids),
// BENCH_CONNS and BENCH_TLS_CONNS (idle connections), BENCH_DURATION
// (measurement window, e.g. 5s), BENCH_PIN=0 (do not pin CPUs).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run())
}

// runRecord is one scenario run against one broker.
type runRecord struct {
	Scenario string     `json:"scenario"`
	Broker   brokerKind `json:"broker"`
	Run      int        `json:"run"`
	Seconds  float64    `json:"seconds"`
	Error    string     `json:"error,omitempty"`
	runResult
}

// report is results.json.
type report struct {
	Generated   time.Time         `json:"generated"`
	WallSeconds float64           `json:"wall_seconds"`
	Complete    bool              `json:"complete"`
	Environment map[string]string `json:"environment"`
	Settings    map[string]any    `json:"settings"`
	Notes       []string          `json:"notes"`
	Footnotes   []string          `json:"footnotes"`
	Metrics     []row             `json:"metrics"`
	Runs        []runRecord       `json:"runs"`
}

func run() int {
	began := time.Now()
	edgegateBin := flag.String("edgegate", "dist/edgegate", "edgegate binary")
	mosquittoBin := flag.String("mosquitto", "mosquitto", "mosquitto binary")
	outDir := flag.String("out", "bench-results", "directory for results.json, chart.png and broker logs")
	render := flag.String("render", "", "only write the Markdown report of this results.json to stdout")
	flag.Parse()
	if *render != "" {
		if err := renderMarkdown(*render, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			return 1
		}
		return 0
	}

	s, err := settingsFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 2
	}
	l := newLauncher()
	defer l.killAll()

	if l.edgegateBin, err = filepath.Abs(*edgegateBin); err == nil {
		_, err = os.Stat(l.edgegateBin)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: edgegate binary: %v (make build)\n", err)
		return 2
	}
	if l.mosquittoBin, err = exec.LookPath(*mosquittoBin); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v (scripts/install-test-deps.sh installs mosquitto)\n", err)
		return 2
	}
	l.logDir = filepath.Join(*outDir, "logs")
	if err := os.MkdirAll(l.logDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 2
	}
	l.maxClients = max(s.IdleConns, s.IdleTLSConns) + 1000

	// The generator and the broker each hold one descriptor per
	// connection; the brokers inherit this process's limit.
	want := uint64(max(s.IdleConns, s.IdleTLSConns) + 1024)
	nofile, err := raiseNoFile(want)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: RLIMIT_NOFILE:", err)
		return 2
	}
	if nofile < want {
		fmt.Fprintf(os.Stderr, "loadgen: RLIMIT_NOFILE is %d, want %d: idle connection scenarios may fail (raising the hard limit needs CAP_SYS_RESOURCE)\n", nofile, want)
	}

	pinning := "none: generator and broker share all CPUs"
	l.pinCPU = -1
	if _, err := exec.LookPath("taskset"); err == nil && runtime.NumCPU() >= 2 && os.Getenv("BENCH_PIN") != "0" {
		if err := pinSelf(0); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			return 2
		}
		runtime.GOMAXPROCS(1)
		l.pinCPU = runtime.NumCPU() - 1
		pinning = fmt.Sprintf("generator on CPU 0 (GOMAXPROCS 1), broker on CPU %d (taskset): one core each; "+
			"edgegate therefore runs with GOMAXPROCS 1, mosquitto is single-threaded anyway", l.pinCPU)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, s.Total)
	defer cancel()

	pkiDir, err := os.MkdirTemp("", "bench-pki-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 2
	}
	defer os.RemoveAll(pkiDir)
	if l.pki, err = newMosquittoPKI(pkiDir); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: certificates:", err)
		return 2
	}

	rep := report{
		Generated: began.UTC(),
		Environment: map[string]string{
			"cpus":              strconv.Itoa(runtime.NumCPU()),
			"cpu_pinning":       pinning,
			"kernel":            readTrim("/proc/sys/kernel/osrelease"),
			"loadavg_start":     readTrim("/proc/loadavg"),
			"go":                runtime.Version(),
			"mosquitto_version": version(ctx, l.mosquittoBin, "-h"),
			"edgegate_version":  version(ctx, l.edgegateBin, "version"),
			"rlimit_nofile":     strconv.FormatUint(nofile, 10),
		},
		Settings: map[string]any{
			"quick": s.Quick, "runs": s.Runs, "order": "interleaved per run: mosquitto, edgegate",
			"idle_tcp_connections": s.IdleConns, "idle_tls_connections": s.IdleTLSConns,
			"settle_s": s.Settle.Seconds(), "warmup_s": s.Warmup.Seconds(), "window_s": s.Duration.Seconds(),
			"fanin_publishers": s.FanInPublishers, "fanout_subscribers": s.FanOutSubscribers,
			"fixed_rate_msgs_per_s": s.FixedRate, "qos1_window_per_publisher": s.QoS1Window,
			"conn_workers": s.ConnWorkers, "payload_bytes": payloadSize, "deadline_s": s.Total.Seconds(),
		},
	}
	fmt.Fprintf(os.Stderr, "loadgen: %d runs per broker, idle conns %d TCP / %d TLS, window %s, %s\n",
		s.Runs, s.IdleConns, s.IdleTLSConns, s.Duration, pinning)

	ms := metrics()
	values := map[string]map[brokerKind][]float64{}
	errs := map[string]map[brokerKind][]string{}
	for _, m := range ms {
		values[m.ID] = map[brokerKind][]float64{}
		errs[m.ID] = map[brokerKind][]string{}
	}
	tlsInfo := map[brokerKind]string{}
	epoch := time.Now()
	complete := true
	for _, sc := range selectedScenarios(s) {
		for r := 1; r <= s.Runs; r++ {
			for _, kind := range brokerOrder {
				rec := runRecord{Scenario: sc.id, Broker: kind, Run: r}
				if ctx.Err() != nil {
					rec.Error = "not run: " + context.Cause(ctx).Error()
					complete = false
				} else {
					t0 := time.Now()
					res, info, err := runOnce(ctx, l, sc, kind, r, s, epoch)
					rec.Seconds = time.Since(t0).Seconds()
					rec.runResult = res
					if info != "" {
						tlsInfo[kind] = info
					}
					if err != nil {
						rec.Error = err.Error()
						complete = false
					}
				}
				rep.Runs = append(rep.Runs, rec)
				for _, m := range ms {
					if m.Scenario != sc.id {
						continue
					}
					if rec.Error != "" {
						errs[m.ID][kind] = append(errs[m.ID][kind], fmt.Sprintf("run %d: %s", r, rec.Error))
					} else if v, ok := rec.Metrics[m.ID]; ok {
						values[m.ID][kind] = append(values[m.ID][kind], v)
					}
				}
				progress(rec)
			}
		}
	}

	var rows []row
	for _, row := range buildRows(ms, values, errs) {
		if scenarioSelected(s, row.Scenario) {
			rows = append(rows, row)
		}
	}
	rep.Metrics = rows
	rep.Complete = complete
	rep.Environment["loadavg_end"] = readTrim("/proc/loadavg")
	rep.Notes = notes(s, tlsInfo, pinning)
	rep.Footnotes = footnotes(rep.Runs)
	rep.WallSeconds = time.Since(began).Seconds()

	fmt.Println()
	fmt.Printf("edgegate vs mosquitto — %d interleaved runs each, median [min..max]; ratio = edgegate/mosquitto medians (↑ higher is better, ↓ lower)\n", s.Runs)
	if s.Quick {
		fmt.Println("BENCH_QUICK=1: small N and short windows; these numbers only show the harness works")
	}
	if err := printTable(os.Stdout, rows, s.Runs); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
	}
	printErrors(os.Stdout, rows)
	for _, f := range rep.Footnotes {
		fmt.Println("* " + f)
	}
	fmt.Printf("idle connections: %d TCP, %d TLS; CPU: %s\n", s.IdleConns, s.IdleTLSConns, pinning)
	for _, kind := range brokerOrder {
		if tlsInfo[kind] != "" {
			fmt.Printf("TLS %s: %s\n", kind, tlsInfo[kind])
		}
	}
	fmt.Println("targets: the benchmark issue's table (RSS also in DESIGN.md), in test/bench/cmd/loadgen/report.go; QoS 1 loss must be 0")

	code := 0
	if !complete {
		code = 1
	}
	if err := writeOutputs(*outDir, rep); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		code = 1
	}
	fmt.Printf("wrote %s and %s (wall time %s)\n", filepath.Join(*outDir, "results.json"),
		filepath.Join(*outDir, "chart.png"), time.Since(began).Round(time.Second))
	return code
}

// runOnce starts a fresh broker, runs one scenario against it under the
// scenario's deadline and stops the broker.
func runOnce(ctx context.Context, l *launcher, sc scenario, kind brokerKind, r int, s settings, epoch time.Time) (runResult, string, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, sc.timeout(s), fmt.Errorf("scenario deadline %s", sc.timeout(s)))
	defer cancel()
	b, err := l.startBroker(ctx, kind, fmt.Sprintf("%s-run%d-%s", sc.id, r, kind))
	if err != nil {
		return runResult{}, "", err
	}
	defer b.stop()
	res, err := sc.run(&runEnv{ctx: ctx, b: b, s: s, epoch: epoch})
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
	}
	if err != nil && !b.alive() {
		err = fmt.Errorf("%w; the broker exited%s", err, b.logTail())
	}
	return res, b.tlsInfo, err
}

func progress(rec runRecord) {
	if rec.Error != "" {
		first, _, _ := strings.Cut(rec.Error, "\n")
		fmt.Fprintf(os.Stderr, "  %-13s run %d %-9s  FAILED: %s\n", rec.Scenario, rec.Run, rec.Broker, first)
		return
	}
	var parts []string
	for _, m := range metrics() {
		if v, ok := rec.Metrics[m.ID]; ok {
			parts = append(parts, fmt.Sprintf("%s %s %s", m.ID, formatNum(v), m.Unit))
		}
	}
	extra := ""
	if v, ok := rec.Extras["loadgen_cpu_pct"]; ok {
		extra = fmt.Sprintf("  (broker CPU %.0f%%, generator CPU %.0f%%)", rec.Extras["broker_cpu_pct"], v)
	}
	fmt.Fprintf(os.Stderr, "  %-13s run %d %-9s  %s%s  [%.1fs]\n", rec.Scenario, rec.Run, rec.Broker,
		strings.Join(parts, ", "), extra, rec.Seconds)
}

func settingsFromEnv() (settings, error) {
	s := defaultSettings()
	if b, _ := strconv.ParseBool(os.Getenv("BENCH_QUICK")); b {
		s = quickSettings()
	}
	ints := []struct {
		env string
		dst *int
	}{{"BENCH_RUNS", &s.Runs}, {"BENCH_CONNS", &s.IdleConns}, {"BENCH_TLS_CONNS", &s.IdleTLSConns}}
	for _, v := range ints {
		if txt := os.Getenv(v.env); txt != "" {
			n, err := strconv.Atoi(txt)
			if err != nil || n < 1 {
				return s, fmt.Errorf("%s=%q: want a positive integer", v.env, txt)
			}
			*v.dst = n
		}
	}
	if txt := os.Getenv("BENCH_DURATION"); txt != "" {
		d, err := time.ParseDuration(txt)
		if err != nil || d <= 0 {
			return s, fmt.Errorf("BENCH_DURATION=%q: want a duration like 5s", txt)
		}
		s.Duration = d
	}
	if s.QoS1Window < 1 || s.QoS1Window >= len(idRing{}) {
		return s, errors.New("QoS 1 window out of range")
	}
	known := map[string]bool{}
	for _, sc := range scenarios() {
		known[sc.id] = true
	}
	for _, id := range onlyList() {
		if !known[id] {
			return s, fmt.Errorf("BENCH_ONLY: unknown scenario %q", id)
		}
	}
	return s, nil
}

func onlyList() []string {
	var ids []string
	for _, id := range strings.Split(os.Getenv("BENCH_ONLY"), ",") {
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}

func scenarioSelected(_ settings, id string) bool {
	only := onlyList()
	if len(only) == 0 {
		return true
	}
	for _, o := range only {
		if o == id {
			return true
		}
	}
	return false
}

func selectedScenarios(s settings) []scenario {
	var out []scenario
	for _, sc := range scenarios() {
		if scenarioSelected(s, sc.id) {
			out = append(out, sc)
		}
	}
	return out
}

func notes(s settings, tlsInfo map[brokerKind]string, pinning string) []string {
	n := []string{
		"Order: for every scenario, runs alternate mosquitto, edgegate, mosquitto, edgegate, ...; each run starts a fresh broker (new data directory) that runs alone; the table shows medians with min..max over the runs.",
		"CPUs: " + pinning + ".",
		"Clients: the generator's own MQTT 3.1.1 client (clean session, keepalive 600 s, TCP_NODELAY), 64-byte payloads; all traffic on 127.0.0.1.",
		"Equivalent settings: anonymous access on both (edgegate: auth.allow_anonymous with its default auth chain, ACL with one allow-all rule; mosquitto: allow_anonymous true, no ACL).",
		"Persistence: on for both, but not alike. edgegate commits QoS 1 messages to its bbolt write-ahead log (fsync, group commit) before the PUBACK; mosquitto `persistence true` snapshots its in-memory state every autosave_interval (1800 s) and at exit, so it writes nothing to disk during a run.",
		"Queues: mosquitto max_inflight_messages 20 + max_queued_messages 1000 per client (QoS 0 to an online client also counts against them); edgegate mqtt.max_queued_messages 1000 (in flight + queued, also mochi's MaximumInflight), max_queued_bytes 1 MiB, and a 64-packet client write queue (mqtt.client_write_queue) beyond which a QoS 0 message for that client is dropped while a QoS 1 one waits in its session (edgegate's patched mochi, third_party/mochi-mqtt-server); the fan-in QoS 1 row's loss counts acknowledged messages never delivered.",
		"mosquitto: set_tcp_nodelay true, max_connections -1 on both listeners, sys_interval 60 (edgegate's $SYS interval is 60 s), log errors and warnings only, user root (edgegate also runs as root here); edgegate: log level warn, max_clients " + strconv.Itoa(max(s.IdleConns, s.IdleTLSConns)+1000) + " per listener, TLS listener client_auth none (mosquitto asks for no client certificate either).",
		"TLS: equivalent keys, not the same certificate. edgegate serves its local CA's ECDSA P-256 certificate (root → intermediate → server); mosquitto serves an ECDSA P-256 chain of the same shape generated by the harness. The client offers TLS 1.3 with X25519 only (Go's default hybrid X25519MLKEM768 is not in mosquitto's OpenSSL 3.0) and keeps no session cache, so every handshake is a full one.",
		fmt.Sprintf("RSS: VmRSS after %s of settling with N idle connections minus VmRSS before, divided by N (KiB); N = %d TCP, %d TLS.", s.Settle, s.IdleConns, s.IdleTLSConns),
		fmt.Sprintf("Throughput: counted over a %s window after a %s warm-up. Fan-in: %d publishers to one subscriber of bench/fanin/+, QoS 0 publishers write as fast as the socket takes, QoS 1 publishers keep %d publishes unacknowledged each; loss = acknowledged by the broker but never delivered, after up to %s of draining.", s.Duration, s.Warmup, s.FanInPublishers, s.QoS1Window, s.Drain),
		fmt.Sprintf("Latency: %d publishers at %d msg/s in total, evenly spread; the payload carries the send time on the generator's monotonic clock and the subscriber subtracts it on read (one clock); p99 over messages sent in the window. Broker CPU = utime+stime from /proc/PID/stat over the same window of the QoS 0 run, in %% of one core (USER_HZ 100).", s.FanInPublishers, s.FixedRate),
		fmt.Sprintf("Connection rates: %d workers loop connect (+ full TLS handshake), CONNECT/CONNACK, DISCONNECT, and wait for the broker to close; completed cycles per second.", s.ConnWorkers),
		"The generator shares the machine: results.json records its CPU use (loadgen_cpu_pct) next to the broker's; a generator near 100 % means the number is a floor for the broker, not its limit.",
		"QoS 0 floods: msgs/s counts what arrived. delivered_of_read_pct is the share, per publisher (fan-in) or per subscriber (fan-out), of the sequence numbers between the first and last received that did arrive; TCP is ordered, so the gaps are messages the broker read and dropped. edgegate's own counters (/metrics messages_received/sent/dropped) are recorded as broker_messages_*_per_s; mosquitto publishes its counters only every sys_interval.",
	}
	for _, kind := range brokerOrder {
		if tlsInfo[kind] != "" {
			n = append(n, fmt.Sprintf("TLS negotiated with %s: %s.", kind, tlsInfo[kind]))
		}
	}
	return n
}

func writeOutputs(dir string, rep report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	var png bytes.Buffer
	title := "edgegate / mosquitto"
	if rep.Settings["quick"] == true {
		title += " (quick run)"
	}
	if err := writeChart(&png, rep.Metrics, title); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "chart.png"), png.Bytes(), 0o644); err != nil {
		return err
	}
	var md bytes.Buffer
	if err := writeMarkdown(&md, rep); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "performance.md"), md.Bytes(), 0o644)
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
