package trace

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/gateway/broker/internal/mqtttest"
)

// at is the fixed clock of these tests, so trace lines are exact.
var at = time.Date(2025, 1, 2, 15, 4, 5, 123_000_000, time.UTC)

const ts = "2025-01-02T15:04:05.123Z"

func newTracer(t *testing.T, maxBytes int64) *Tracer {
	t.Helper()
	return New(Options{Dir: filepath.Join(t.TempDir(), "traces"), MaxBytes: maxBytes, Now: func() time.Time { return at }})
}

func addHooks(t *testing.T, srv *mqtt.Server, hooks ...mqtt.Hook) {
	t.Helper()
	for _, h := range hooks {
		if err := srv.AddHook(h, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func start(t *testing.T, tr *Tracer, kind Kind, target, name string) Info {
	t.Helper()
	info, err := tr.Start(kind, target, name)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkLines compares a trace file with the lines wanted, each prefixed
// with the test clock's time.
func checkLines(t *testing.T, path string, want ...string) {
	t.Helper()
	got := strings.Split(strings.TrimSuffix(readFile(t, path), "\n"), "\n")
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = ts + " " + want[i]
		}
		if g != w {
			t.Errorf("%s line %d:\n got %q\nwant %q", filepath.Base(path), i+1, g, w)
		}
	}
}

func publish(qos byte, id uint16, retain bool, topic, payload string) packets.Packet {
	return packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retain},
		PacketID:    id,
		TopicName:   topic,
		Payload:     []byte(payload),
	}
}

func TestClientAndTopicTraces(t *testing.T) {
	t.Parallel()
	srv := mqtttest.NewServer(t)
	tr := newTracer(t, 1<<20)
	pr := newProbe()
	addHooks(t, srv, tr, pr)
	addr := mqtttest.ServeTCP(t, srv)

	clientInfo := start(t, tr, Client, "c1", "client-c1")
	topicInfo := start(t, tr, Topic, "t/+", "topic_t.log")
	if filepath.Base(clientInfo.File) != "client-c1.log" || filepath.Base(topicInfo.File) != "topic_t.log" {
		t.Fatalf("files %s, %s", clientInfo.File, topicInfo.File)
	}

	c1 := dial(t, addr, pr)
	c1.Send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: "c1",
			UsernameFlag: true, Username: []byte("u"), PasswordFlag: true, Password: []byte("secret"),
		},
	})
	c1.Expect(packets.Connack)
	c1.Send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		PacketID:    1,
		Filters:     packets.Subscriptions{{Filter: "t/#", Qos: 1}},
	})
	c1.Expect(packets.Suback)
	c1.Send(publish(1, 2, false, "t/a", "hello"))
	c1.Expect(packets.Puback)
	m := c1.Expect(packets.Publish)
	c1.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: m.PacketID})
	c1.Send(publish(0, 0, false, "x/y", "nope"))
	c1.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	c1.Expect(packets.Pingresp)
	c1.Send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe, Qos: 1},
		PacketID:    3,
		Filters:     packets.Subscriptions{{Filter: "t/#"}},
	})
	c1.Expect(packets.Unsuback)
	c1.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})

	// Another client: only its messages to t/+ reach the topic trace.
	c2 := dial(t, addr, pr)
	c2.Connect("c2", 60)
	c2.Send(publish(0, 0, true, "t/b", strings.Repeat("a", 100)))
	c2.Send(publish(0, 0, false, "t/b/deeper", "no match"))
	c2.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	c2.Expect(packets.Pingresp)
	pr.settle(t)

	// The broker itself publishes (HTTP API): binary payload escaped.
	if err := srv.Publish("t/inline", []byte{0, '\n', 0xff}, false, 0); err != nil {
		t.Fatal(err)
	}
	// A will.
	c3 := dial(t, addr, pr)
	c3.Send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: "c3",
			WillFlag: true, WillTopic: "t/status", WillPayload: []byte("offline"), WillRetain: true,
		},
	})
	c3.Expect(packets.Connack)
	_ = c3.Close()
	pr.wait(t, func() bool { return pr.wills == 1 })

	for _, target := range []struct {
		kind   Kind
		target string
	}{{Client, "c1"}, {Topic, "t/+"}} {
		if err := tr.StopTrace(target.kind, target.target); err != nil {
			t.Fatal(err)
		}
	}

	checkLines(t, clientInfo.File,
		`trace started: client "c1"`,
		`RECV CONNECT proto=4 clean=true keepalive=60 username="u" will=false`,
		`SENT CONNACK code=0 session=false`,
		`RECV SUBSCRIBE id=1 filter="t/#" qos=1`,
		`SENT SUBACK id=1 codes=1`,
		`RECV PUBLISH id=2 topic="t/a" qos=1 retain=false dup=false size=5 payload="hello"`,
		`SENT PUBACK id=2`,
		`SENT PUBLISH id=1 topic="t/a" qos=1 retain=false dup=false size=5 payload="hello"`,
		`RECV PUBACK id=1`,
		`RECV PUBLISH id=0 topic="x/y" qos=0 retain=false dup=false size=4 payload="nope"`,
		`RECV PINGREQ`,
		`SENT PINGRESP`,
		`RECV UNSUBSCRIBE id=3 filter="t/#"`,
		`SENT UNSUBACK id=3`,
		`RECV DISCONNECT`,
		`trace stopped`,
	)
	if content := readFile(t, clientInfo.File); strings.Contains(content, "secret") {
		t.Error("the client trace contains the password")
	}
	checkLines(t, topicInfo.File,
		`trace started: topic "t/+"`,
		`PUBLISH from="c1" topic="t/a" qos=1 retain=false size=5 payload="hello"`,
		`PUBLISH from="c2" topic="t/b" qos=0 retain=true size=100 payload="`+strings.Repeat("a", 64)+`"...`,
		`PUBLISH from="inline" topic="t/inline" qos=0 retain=false size=3 payload="\x00\n\xff"`,
		`WILL from="c3" topic="t/status" qos=0 retain=true size=7 payload="offline"`,
		`trace stopped`,
	)

	list := tr.List()
	if len(list) != 2 {
		t.Fatalf("List = %+v", list)
	}
	for _, info := range list {
		size := int64(len(readFile(t, info.File)))
		if info.StopReason != ReasonStopped || info.Stopped.IsZero() || info.Bytes != size || !info.Started.Equal(at) {
			t.Errorf("List entry %+v (file %d bytes)", info, size)
		}
	}
	if list[0].Kind != Client || list[1].Kind != Topic {
		t.Errorf("List order %s, %s", list[0].Kind, list[1].Kind)
	}
}

func TestSizeLimit(t *testing.T) {
	t.Parallel()
	srv := mqtttest.NewServer(t)
	const limit = 400
	tr := newTracer(t, limit)
	addHooks(t, srv, tr)
	info := start(t, tr, Topic, "s/#", "size")

	published := 0
	for ; published < 100 && tr.topicCount.Load() > 0; published++ {
		if err := srv.Publish("s/x", []byte("0123456789"), false, 0); err != nil {
			t.Fatal(err)
		}
	}
	if tr.topicCount.Load() != 0 {
		t.Fatal("the trace did not stop at its size limit")
	}
	content := readFile(t, info.File)
	lines := strings.Split(strings.TrimSuffix(content, "\n"), "\n")
	if len(content) > limit {
		t.Errorf("file is %d bytes, limit %d", len(content), limit)
	}
	if last := lines[len(lines)-1]; last != ts+" trace stopped: size limit reached" {
		t.Errorf("last line %q", last)
	}
	events := len(lines) - 2
	if events < 1 || events != published-1 { // the publish that did not fit stopped the trace
		t.Errorf("%d event lines for %d publishes", events, published)
	}
	// One more event line would not have left room for the final line.
	eventLine := len(lines[1]) + 1
	if len(content)+eventLine <= limit {
		t.Errorf("stopped at %d bytes although another %d-byte line fitted", len(content), eventLine)
	}

	list := tr.List()
	if len(list) != 1 || list[0].StopReason != ReasonSizeLimit || list[0].Bytes != int64(len(content)) {
		t.Errorf("List = %+v, file %d bytes", list, len(content))
	}
	if err := tr.StopTrace(Topic, "s/#"); !errors.Is(err, ErrNotFound) {
		t.Errorf("StopTrace of a stopped trace: %v", err)
	}
	// The target can be traced again; the file starts over.
	again := start(t, tr, Topic, "s/#", "size")
	if got := readFile(t, again.File); got != ts+" trace started: topic \"s/#\"\n" {
		t.Errorf("restarted file %q", got)
	}
}

func TestMaxBytesTooSmallForAnything(t *testing.T) {
	t.Parallel()
	tr := newTracer(t, 10)
	info, err := tr.Start(Client, "c", "tiny")
	if err != nil {
		t.Fatal(err)
	}
	if info.StopReason != ReasonSizeLimit || tr.clientCount.Load() != 0 {
		t.Errorf("info %+v, running %d", info, tr.clientCount.Load())
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	tr := newTracer(t, 1<<20)
	for _, name := range []string{"", ".", "..", "../x", "a/b", `a\b`, ".hidden", "a b", "ü", "x\x00", strings.Repeat("a", 129)} {
		if _, err := tr.Start(Client, "c1", name); !errors.Is(err, ErrBadName) {
			t.Errorf("name %q: %v, want ErrBadName", name, err)
		}
	}
	for _, tc := range []struct {
		kind   Kind
		target string
	}{
		{Client, ""}, {Topic, ""}, {Topic, "a/#/b"}, {Topic, "a+"}, {Topic, "$share/g/a/#"}, {"session", "x"},
	} {
		if _, err := tr.Start(tc.kind, tc.target, "ok"); !errors.Is(err, ErrBadTarget) {
			t.Errorf("%s %q: %v, want ErrBadTarget", tc.kind, tc.target, err)
		}
	}
	if len(tr.List()) != 0 {
		t.Fatalf("refused starts left traces: %+v", tr.List())
	}

	a := start(t, tr, Client, "c1", "a")
	if _, err := tr.Start(Client, "c1", "b"); !errors.Is(err, ErrExists) {
		t.Errorf("second trace of c1: %v, want ErrExists", err)
	}
	if _, err := tr.Start(Topic, "x/#", "a.log"); !errors.Is(err, ErrFileInUse) {
		t.Errorf("same file: %v, want ErrFileInUse", err)
	}
	start(t, tr, Topic, "c1", "c1-topic") // a topic named like the client is another trace
	if err := tr.StopTrace(Client, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("StopTrace unknown: %v, want ErrNotFound", err)
	}
	if err := tr.StopTrace(Client, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := tr.StopTrace(Client, "c1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("StopTrace twice: %v, want ErrNotFound", err)
	}
	if dir := filepath.Dir(a.File); filepath.Base(dir) != "traces" {
		t.Errorf("file %s outside the trace dir", a.File)
	}
	list := tr.List()
	if len(list) != 2 || list[0].Kind != Topic || list[0].StopReason != "" ||
		list[1].Kind != Client || list[1].StopReason != ReasonStopped {
		t.Errorf("List = %+v", list)
	}

	// The hook's Stop, at server close, ends every trace.
	if err := tr.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, info := range tr.List() {
		if info.StopReason != ReasonStopped {
			t.Errorf("after Stop: %+v", info)
		}
	}
	if tr.clientCount.Load() != 0 || tr.topicCount.Load() != 0 {
		t.Error("running counts not zero after Stop")
	}
}

// TestSymlinkEscape: a symlink planted in the trace dir cannot send a
// trace's writes elsewhere.
func TestSymlinkEscape(t *testing.T) {
	t.Parallel()
	tr := newTracer(t, 1<<20)
	outside := filepath.Join(t.TempDir(), "outside.log")
	if err := os.MkdirAll(tr.dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(tr.dir, "evil.log")); err != nil {
		t.Skip("no symlinks:", err)
	}
	if _, err := tr.Start(Client, "c1", "evil"); err == nil {
		t.Error("Start followed a symlink out of the trace dir")
	}
	if _, err := os.Stat(outside); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file outside the trace dir: %v", err)
	}
}

func TestListKeepsFewStopped(t *testing.T) {
	t.Parallel()
	tr := newTracer(t, 1<<20)
	for i := range keptStopped + 5 {
		name := "t" + strings.Repeat("x", i)
		start(t, tr, Client, name, name)
		if err := tr.StopTrace(Client, name); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(tr.List()); n != keptStopped {
		t.Errorf("List has %d stopped traces, want %d", n, keptStopped)
	}
}

// TestIdleHotPath: with no trace running, the hook allocates nothing.
func TestIdleHotPath(t *testing.T) {
	srv := mqtttest.NewServer(t)
	tr := newTracer(t, 1<<20)
	cl := srv.NewClient(nil, "tcp", "c1", false)
	pk := publish(1, 1, false, "a/b", "payload")
	allocs := testing.AllocsPerRun(1000, func() {
		_, _ = tr.OnPacketRead(cl, pk)
		tr.OnPacketSent(cl, pk, nil)
		tr.OnPublished(cl, pk)
	})
	if allocs != 0 {
		t.Errorf("idle hook allocates %.1f times per packet", allocs)
	}
}

func TestPreview(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{"hi\tthere", `"hi\tthere"`},
		{strings.Repeat("é", 40), `"` + strings.Repeat("é", 32) + `"...`},        // 80 bytes, cut at 64
		{"a" + strings.Repeat("é", 40), `"a` + strings.Repeat("é", 31) + `"...`}, // cut back to a rune start
		{strings.Repeat("z", 64), `"` + strings.Repeat("z", 64) + `"`},           // exactly 64: whole
		{strings.Repeat("z", 65), `"` + strings.Repeat("z", 64) + `"...`},        //
		{string([]byte{0xff, 0xfe}), `"\xff\xfe"`},                               // invalid UTF-8 escaped
	} {
		if got := string(appendPreview(nil, []byte(tc.in))); got != tc.want {
			t.Errorf("preview(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func FuzzFileName(f *testing.F) {
	for _, s := range []string{"ok", "trace.log", "a-b_c.d", "", ".", "..", "../x", "a/b", ".hidden", "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		file, err := fileName(name)
		if err != nil {
			return
		}
		if filepath.Base(file) != file || strings.HasPrefix(file, ".") || !strings.HasSuffix(file, ".log") ||
			filepath.Join("/dir", file) != "/dir/"+file {
			t.Errorf("name %q maps to unsafe file %q", name, file)
		}
	})
}

// TestConcurrentUse races publishers against Start, StopTrace, List and the
// size limit; run with -race.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	srv := mqtttest.NewServer(t)
	tr := newTracer(t, 4096)
	addHooks(t, srv, tr)
	done := make(chan struct{})
	errs := make(chan error, 4)
	for w := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 500 {
				if err := srv.Publish("c/"+strings.Repeat("x", w), []byte("payload"), false, 0); err != nil {
					errs <- err
					return
				}
				if i%50 == 0 {
					_ = tr.List()
				}
			}
		}()
	}
	for i := range 20 {
		if _, err := tr.Start(Topic, "c/#", "conc"); err != nil && !errors.Is(err, ErrExists) {
			t.Error(err)
		}
		if i%2 == 1 {
			if err := tr.StopTrace(Topic, "c/#"); err != nil && !errors.Is(err, ErrNotFound) {
				t.Error(err)
			}
		}
	}
	for range 4 {
		<-done
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	_ = tr.Stop()
	for _, info := range tr.List() {
		if info.StopReason == "" || info.Bytes > 4096 {
			t.Errorf("after Stop: %+v", info)
		}
	}
}
