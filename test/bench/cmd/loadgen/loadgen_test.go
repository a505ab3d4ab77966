package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgegate/edgegate/gateway/config"
)

// These tests cover the generator's parsing, encoding and statistics. They
// are deterministic and time nothing: timing belongs to make bench.

func TestParseVMRSS(t *testing.T) {
	status := "Name:\tmosquitto\nVmPeak:\t  20000 kB\nVmRSS:\t   17036 kB\nRssAnon:\t 1 kB\n"
	got, err := parseVMRSS(status)
	if err != nil || got != 17036 {
		t.Fatalf("parseVMRSS = %d, %v; want 17036", got, err)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t12 MB\n", "VmRSS:\tx kB\n"} {
		if _, err := parseVMRSS(bad); err == nil {
			t.Errorf("parseVMRSS(%q): no error", bad)
		}
	}
}

func TestParseStatTicks(t *testing.T) {
	// Fields 14 and 15 are utime and stime; the command name may hold
	// spaces and parentheses.
	stat := "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 12345 1000 200"
	got, err := parseStatTicks(stat)
	if err != nil || got != 325 {
		t.Fatalf("parseStatTicks = %d, %v; want 325", got, err)
	}
	for _, bad := range []string{"4242 no-paren S 1", "4242 (x) S 1 2 3", "4242 (x) S 1 2 3 4 5 6 7 8 9 10 u 3 4"} {
		if _, err := parseStatTicks(bad); err == nil {
			t.Errorf("parseStatTicks(%q): no error", bad)
		}
	}
	if got := cpuPercent(250, 5); got != 50 {
		t.Errorf("cpuPercent(250 ticks, 5 s) = %v, want 50", got)
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		runs             []float64
		median, min, max float64
	}{
		{[]float64{3, 1, 2}, 2, 1, 3},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4},
		{[]float64{7}, 7, 7, 7},
	}
	for _, tt := range tests {
		s := summarize(tt.runs)
		if s.Median != tt.median || s.Min != tt.min || s.Max != tt.max {
			t.Errorf("summarize(%v) = %+v, want median %v [%v..%v]", tt.runs, s, tt.median, tt.min, tt.max)
		}
	}
	if s := summarize(nil); s.ok() {
		t.Errorf("summarize(nil).ok() = true")
	}
	runs := []float64{3, 1, 2}
	summarize(runs)
	if !slices.Equal(runs, []float64{3, 1, 2}) {
		t.Errorf("summarize reordered its input: %v", runs)
	}
}

func TestPercentile(t *testing.T) {
	var v []int64
	for i := int64(1); i <= 1000; i++ {
		v = append(v, i)
	}
	tests := []struct {
		p    float64
		want int64
	}{{50, 500}, {99, 990}, {99.9, 999}, {100, 1000}, {0.01, 1}}
	for _, tt := range tests {
		if got := percentile(v, tt.p); got != tt.want {
			t.Errorf("percentile(1..1000, %v) = %d, want %d", tt.p, got, tt.want)
		}
	}
	if got := percentile([]int64{5}, 99); got != 5 {
		t.Errorf("percentile([5], 99) = %d", got)
	}
	if got := percentile(nil, 99); got != 0 {
		t.Errorf("percentile(nil, 99) = %d", got)
	}
}

func TestTargets(t *testing.T) {
	s := func(median float64) summary { return summarize([]float64{median}) }
	tests := []struct {
		t         target
		e, m      summary
		met, know bool
	}{
		{target{Kind: "max", Value: 16}, s(12), s(1), true, true},
		{target{Kind: "max", Value: 16}, s(35), s(1), false, true},
		{target{Kind: "max", Value: 0}, s(0), s(0), true, true},
		{target{Kind: "ratio_min", Value: 0.5}, s(60), s(100), true, true},
		{target{Kind: "ratio_min", Value: 0.5}, s(40), s(100), false, true},
		{target{Kind: "ratio_max", Value: 2}, s(3), s(1), false, true},
		{target{Kind: "ratio_max", Value: 2}, s(3), s(0), false, false}, // ratio undefined
		{target{Kind: "ratio_min", Value: 0.5}, summary{}, s(1), false, false},
	}
	for _, tt := range tests {
		met, know := tt.t.met(tt.e, tt.m)
		if met != tt.met || know != tt.know {
			t.Errorf("%s with edgegate %v, mosquitto %v: met %v, %v; want %v, %v", tt.t, tt.e.Median, tt.m.Median, met, know, tt.met, tt.know)
		}
	}
}

func TestBitset(t *testing.T) {
	var acked, got bitset
	for _, n := range []uint64{0, 1, 63, 64, 1000, 100000} {
		if acked.set(n) {
			t.Fatalf("set(%d) reported a duplicate", n)
		}
	}
	if !acked.set(64) {
		t.Fatal("second set(64) not reported as a duplicate")
	}
	for _, n := range []uint64{0, 63, 100000, 5} {
		got.set(n)
	}
	if acked.count() != 6 || !acked.has(1000) || acked.has(999) || acked.has(1<<40) {
		t.Fatalf("count %d / has wrong", acked.count())
	}
	if m := countMissing(&acked, &got); m != 3 { // 1, 64, 1000
		t.Fatalf("countMissing = %d, want 3", m)
	}
	var empty bitset
	if m := countMissing(&empty, &got); m != 0 {
		t.Fatalf("countMissing(empty) = %d", m)
	}
}

func TestVarint(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 16383, 16384, 2097151, 2097152, 268435455} {
		b := appendVarint(nil, n)
		got, err := readVarint(bytes.NewReader(b))
		if err != nil || got != n {
			t.Errorf("varint %d: encoded % x, decoded %d, %v", n, b, got, err)
		}
	}
	if _, err := readVarint(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff, 0x01})); err == nil {
		t.Error("five-byte remaining length accepted")
	}
}

func TestPacketRoundTrip(t *testing.T) {
	var p [payloadSize]byte
	msg := message{pub: 49, seq: 1<<40 + 7, sent: 123456789}
	msg.encode(&p)
	var wire []byte
	wire = appendConnect(wire, "client-1", keepalive)
	wire = appendPublish(wire, "bench/fanin/49", 0, 0, p[:])
	wire = appendPublish(wire, "bench/fanin/49", 1, 65535, p[:])
	wire = appendPuback(wire, 258)
	wire = appendSubscribe(wire, 1, "bench/fanin/+", 1)
	big := bytes.Repeat([]byte{7}, 300) // larger than the reader's buffer
	wire = appendPublish(wire, "t", 0, 0, big)
	wire = append(wire, disconnectPacket...)

	pr := packetReader{r: bufio.NewReaderSize(bytes.NewReader(wire), 64)}
	next := func(wantType byte) (byte, []byte) {
		t.Helper()
		h, body, err := pr.next()
		if err != nil || h>>4 != wantType {
			t.Fatalf("next: type %d, %v; want type %d", h>>4, err, wantType)
		}
		return h, slices.Clone(body)
	}
	if _, body := next(pktConnect); !bytes.Equal(body[:6], []byte{0, 4, 'M', 'Q', 'T', 'T'}) || body[6] != 4 || body[7] != 0x02 {
		t.Fatalf("CONNECT variable header % x", body[:10])
	}
	for _, wantQoS := range []byte{0, 1} {
		h, body := next(pktPublish)
		id, payload, err := parsePublish(h, body)
		if err != nil || h>>1&3 != wantQoS {
			t.Fatalf("PUBLISH QoS %d: %v", h>>1&3, err)
		}
		if wantQoS == 1 && id != 65535 {
			t.Fatalf("packet id %d", id)
		}
		got, err := decodeMessage(payload)
		if err != nil || got != msg || len(payload) != payloadSize {
			t.Fatalf("payload %+v (%d bytes), %v; want %+v", got, len(payload), err, msg)
		}
	}
	if _, body := next(pktPuback); !bytes.Equal(body, []byte{1, 2}) {
		t.Fatalf("PUBACK body % x", body)
	}
	if h, body := next(pktSubscribe); h&0x0f != 0x02 || string(body[4:17]) != "bench/fanin/+" || body[17] != 1 {
		t.Fatalf("SUBSCRIBE % x", body)
	}
	if h, body := next(pktPublish); len(body) != 2+1+300 || h>>1&3 != 0 {
		t.Fatalf("large PUBLISH: %d bytes", len(body))
	}
	next(pktDisconnect)
	if _, _, err := parsePublish(0x32, []byte{0, 5, 'a'}); err == nil {
		t.Fatal("truncated PUBLISH accepted")
	}
}

func TestParseBanner(t *testing.T) {
	banner := strings.Split(`edgegate 29a4a95  data /tmp/x/data
listener tcp      mqtt://127.0.0.1:38857
listener tls      mqtts://127.0.0.1:38091
listener ws       ws://127.0.0.1:8083/mqtt
admin api         http://127.0.0.1:39527/api/v1
local ca          SHA256 26:1D:5F
setup code        3H94-UGMC-LKAW  (one use: POST /api/v1/setup)
ready`, "\n")
	got := parseBanner(banner)
	want := map[string]string{"mqtt": "127.0.0.1:38857", "mqtts": "127.0.0.1:38091", "ws": "127.0.0.1:8083", "http": "127.0.0.1:39527"}
	if len(got) != len(want) {
		t.Fatalf("parseBanner = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("parseBanner[%q] = %q, want %q", k, got[k], v)
		}
	}
}

func TestParseCounters(t *testing.T) {
	text := "# HELP x\nedgegate_messages_dropped_total 77404\nedgegate_messages_sent_total{x=\"y\"} 5\nedgegate_messages_received_total 1e+06\n"
	got := parseCounters(text, counterNames)
	if got["messages_dropped"] != 77404 || got["messages_received"] != 1e6 || len(got) != 2 {
		t.Fatalf("parseCounters = %v", got)
	}
}

// TestEdgegateSettings runs the benchmark's settings file through
// edgegate's own loader, and checks the values the notes compare with
// mosquitto's configuration.
func TestEdgegateSettings(t *testing.T) {
	file, err := edgegateSettings(11000)
	if err != nil {
		t.Fatal(err)
	}
	eff, err := config.Load(config.Layers{File: file, FileName: "bench settings"})
	if err != nil {
		t.Fatalf("edgegate refuses the bench settings: %v", err)
	}
	c := eff.Config
	if !c.Auth.AllowAnonymous {
		t.Error("anonymous access is off")
	}
	if len(c.Listeners) != 2 || c.Listeners["tcp"].MaxClients != 11000 || c.Listeners["tls"].MaxClients != 11000 {
		t.Errorf("listeners %+v", c.Listeners)
	}
	if l := c.Listeners["tls"]; l.TLS == nil || l.TLS.ClientAuth != config.ClientAuthNone {
		t.Errorf("tls listener asks for client certificates: %+v", l.TLS)
	}
	// mosquittoConf sets max_queued_messages to edgegate's default.
	if c.MQTT.MaxQueuedMessages != 1000 || !strings.Contains(mosquittoConf("/d", 1, 2, mosquittoPKI{}), "max_queued_messages 1000\n") {
		t.Errorf("edgegate max_queued_messages %d; mosquittoConf must match it", c.MQTT.MaxQueuedMessages)
	}
}

func TestMosquittoConf(t *testing.T) {
	conf := mosquittoConf("/tmp/m", 1883, 8883, mosquittoPKI{CAFile: "/p/ca.pem", CertFile: "/p/s.pem", KeyFile: "/p/s.key"})
	for _, want := range []string{
		"allow_anonymous true\n", "persistence true\n", "persistence_location /tmp/m/\n",
		"set_tcp_nodelay true\n", "listener 1883 127.0.0.1\nmax_connections -1\n",
		"listener 8883 127.0.0.1\nmax_connections -1\ncafile /p/ca.pem\ncertfile /p/s.pem\nkeyfile /p/s.key\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("mosquitto.conf lacks %q:\n%s", want, conf)
		}
	}
}

func TestChart(t *testing.T) {
	r := func(v float64) *float64 { return &v }
	b := func(v bool) *bool { return &v }
	rows := []row{
		{metric: metric{Short: "RSS/CONN TCP"}, Ratio: r(48.6), Met: b(false)},
		{metric: metric{Short: "FANIN Q0", Higher: true}, Ratio: r(0.7), Met: b(true)},
		{metric: metric{Short: "Q1 LOSS"}}, // ratio undefined
	}
	var out bytes.Buffer
	if err := writeChart(&out, rows, "test"); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&out)
	if err != nil {
		t.Fatal(err)
	}
	if w := img.Bounds().Dx(); w < 3*100 {
		t.Fatalf("chart %d px wide for 3 metrics", w)
	}
	for _, m := range metrics() {
		for _, r := range strings.ToUpper(m.Short) {
			if _, ok := glyphs[r]; !ok {
				t.Errorf("label %q: no glyph for %q", m.Short, r)
			}
		}
	}
}

func TestFormatNum(t *testing.T) {
	tests := map[float64]string{0: "0", 12345.6: "12346", 123.45: "123.5", 12.345: "12.35", 1.2345: "1.234", 0.01234: "0.0123"}
	for v, want := range tests {
		if got := formatNum(v); got != want {
			t.Errorf("formatNum(%v) = %q, want %q", v, got, want)
		}
	}
	if formatNum(math.Inf(1)) == "" {
		t.Error("formatNum(+Inf) empty")
	}
}

func TestDeliveredPct(t *testing.T) {
	spans := make([]seqSpan, 3)
	for _, seq := range []uint64{10, 11, 13, 14} { // 12 missing
		spans[0].add(seq)
	}
	for _, seq := range []uint64{5, 0, 9} { // out of order; 1..4, 6..8 missing
		spans[1].add(seq)
	}
	// spans[2]: nothing received, not counted
	if got, want := deliveredPct(spans), float64(4+3)/float64(5+10)*100; math.Abs(got-want) > 1e-9 {
		t.Fatalf("deliveredPct = %v, want %v", got, want)
	}
	if got := deliveredPct(nil); got != 0 {
		t.Fatalf("deliveredPct(nil) = %v", got)
	}
}

func TestFootnotes(t *testing.T) {
	rec := func(sc string, kind brokerKind, extras map[string]float64) runRecord {
		return runRecord{Scenario: sc, Broker: kind, runResult: runResult{Extras: extras}}
	}
	runs := []runRecord{
		rec("fanin_q0", kindMosquitto, map[string]float64{"delivered_of_read_pct": 100, "loadgen_cpu_pct": 95}),
		rec("fanin_q0", kindEdgegate, map[string]float64{"delivered_of_read_pct": 4}),
		rec("steady_q1", kindEdgegate, map[string]float64{"lost_in_window": 628, "sent_in_window": 25000}),
		rec("steady_q1", kindMosquitto, map[string]float64{"lost_in_window": 0, "sent_in_window": 25000}),
		{Scenario: "fanout_q0", Broker: kindEdgegate, Error: "boom"},
	}
	got := strings.Join(footnotes(runs), "\n")
	for _, want := range []string{
		"fanin_q0: of the messages the broker read, delivered (median): mosquitto 100.0 %, edgegate 4.0 %",
		"steady_q1: edgegate lost 628 of 25000",
		"fanin_q0 (mosquitto 1, edgegate 0 runs)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("footnotes lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "fanout_q0") || strings.Contains(got, "mosquitto lost") {
		t.Errorf("footnotes mention a failed run or a loss of 0:\n%s", got)
	}
}

func TestWriteMarkdown(t *testing.T) {
	ratio, met := 0.5, false
	rep := report{
		Generated:   time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC),
		WallSeconds: 420,
		Complete:    true,
		Environment: map[string]string{"cpus": "2"},
		Settings:    map[string]any{"quick": false, "runs": 3},
		Notes:       []string{"brokers alone on 127.0.0.1"},
		Footnotes:   []string{"fanin_q0: delivered 98 %"},
		Metrics: []row{{
			metric:    metrics()[0],
			Mosquitto: summarize([]float64{0.7, 0.71, 0.72}),
			Edgegate:  summarize([]float64{34, 35, 36}),
			Ratio:     &ratio, Met: &met,
		}},
	}
	var b strings.Builder
	if err := writeMarkdown(&b, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"on 2026-11-23 14:00 UTC (420 s wall)",
		"- cpus: `2`",
		"| RSS per idle TCP connection | KiB/conn | 0.710 [0.700..0.720] | 35.00 [34.00..36.00] | 0.50 | ≤ 16.00 | **no** |",
		"Memory per 1,000 idle sensors over TCP: edgegate 34.2 MiB, mosquitto 0.7 MiB.",
		"- fanin_q0: delivered 98 %",
		"- brokers alone on 127.0.0.1",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}

	// -render gives the same report from the run's results.json.
	path := filepath.Join(t.TempDir(), "results.json")
	data, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var again strings.Builder
	if err := renderMarkdown(path, &again); err != nil {
		t.Fatal(err)
	}
	if again.String() != b.String() {
		t.Errorf("rendered from JSON:\n%s\nwant:\n%s", again.String(), b.String())
	}
}
