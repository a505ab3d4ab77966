package sys

import (
	"encoding/json"
	"fmt"
	"math"
	"runtime/metrics"
	"slices"
	"strings"
	"time"
)

// Alarm IDs. A clients_near_max alarm has the listener name appended:
// "clients_near_max/tcp".
const (
	AlarmHighMemory     = "high_memory"
	AlarmClientsNearMax = "clients_near_max"
)

// Certificate alarms: one per threshold and certificate in use, so that a
// certificate going unrenewed raises a new alert at 30, 14 and 7 days:
// "certificate_expires_30d/local-server".
const alarmCertificateExpires = "certificate_expires_"

var certificateAlarmDays = []int{30, 14, 7}

// alarmRenewalFailing is raised while a certificate's automatic renewal
// keeps failing: "certificate_renewal_failing/acme-gw.example.com".
const alarmRenewalFailing = "certificate_renewal_failing"

// Alarm is a condition that holds until it is cleared. It is also the JSON
// payload of alarms/<id>/alert (TS: when it was raised) and
// alarms/<id>/clear (TS: when it was cleared).
type Alarm struct {
	ID        string `json:"id"`
	Message   string `json:"message"`
	TS        int64  `json:"ts"`        // unix seconds
	Value     int64  `json:"value"`     // heap bytes, a listener's clients, a certificate's seconds left
	Threshold int64  `json:"threshold"` // the value at which the alarm is raised
}

// alarmChange is an alarm raised ("alert") or cleared ("clear").
type alarmChange struct {
	event string
	alarm Alarm
}

// ActiveAlarms returns the alarms raised and not yet cleared, sorted by ID,
// with the value of the latest evaluation.
func (h *Hook) ActiveAlarms() []Alarm {
	h.alarmMu.Lock()
	defer h.alarmMu.Unlock()
	out := make([]Alarm, 0, len(h.alarms))
	for _, a := range h.alarms {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Alarm) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// evaluateAlarms checks every alarm condition and returns the alarms raised
// and cleared since the previous evaluation, in ID order.
func (h *Hook) evaluateAlarms(now time.Time, heap uint64, loads map[string]ListenerLoad, certs []CertificateExpiry) []alarmChange {
	// readings holds every condition checked, firing or not, so that a clear
	// message says what the value is now.
	readings := map[string]Alarm{}
	firing := map[string]bool{}
	if limit := h.settings.HeapAlarmBytes; limit > 0 {
		a := Alarm{
			ID:        AlarmHighMemory,
			Message:   fmt.Sprintf("Go heap is %d bytes, alarm threshold %d bytes", heap, limit),
			Value:     clampInt64(heap),
			Threshold: clampInt64(limit),
		}
		readings[a.ID], firing[a.ID] = a, heap > limit
	}
	if pct := h.settings.ClientsAlarmPercent; pct > 0 {
		for name, l := range loads {
			if l.MaxClients <= 0 {
				continue
			}
			threshold := (l.MaxClients*pct + 99) / 100 // clients >= pct % of max, rounded up
			a := Alarm{
				ID: AlarmClientsNearMax + "/" + topicLevel(name),
				Message: fmt.Sprintf("listener %s has %d of %d clients, alarm at %d%% (%d)",
					name, l.Clients, l.MaxClients, pct, threshold),
				Value:     int64(l.Clients),
				Threshold: int64(threshold),
			}
			readings[a.ID], firing[a.ID] = a, l.Clients >= threshold
		}
	}
	for _, c := range certs {
		failing := Alarm{
			ID:        alarmRenewalFailing + "/" + topicLevel(c.ID),
			Message:   fmt.Sprintf("renewal of certificate %s keeps failing: %s", c.ID, c.RenewalError),
			Value:     int64(c.NotAfter.Sub(now) / time.Second),
			Threshold: 0,
		}
		if c.RenewalError == "" {
			failing.Message = fmt.Sprintf("certificate %s renews again", c.ID)
		}
		// A certificate listed twice (two usages) must not clear its own alarm.
		readings[failing.ID], firing[failing.ID] = failing, firing[failing.ID] || c.RenewalError != ""
		if c.Usage == "" {
			continue // reported for its renewal only
		}
		left := c.NotAfter.Sub(now)
		for _, days := range certificateAlarmDays {
			threshold := time.Duration(days) * 24 * time.Hour
			a := Alarm{
				ID: fmt.Sprintf("%s%dd/%s", alarmCertificateExpires, days, topicLevel(c.ID)),
				Message: fmt.Sprintf("certificate %s (%s) expires on %s, in %s; alarm at %d days",
					c.ID, c.Usage, c.NotAfter.UTC().Format(time.RFC3339), left.Round(time.Minute), days),
				Value:     int64(left / time.Second),
				Threshold: int64(threshold / time.Second),
			}
			readings[a.ID], firing[a.ID] = a, left <= threshold
		}
	}

	h.alarmMu.Lock()
	defer h.alarmMu.Unlock()
	var changes []alarmChange
	for id, a := range readings {
		if !firing[id] {
			continue
		}
		if prev, ok := h.alarms[id]; ok {
			a.TS = prev.TS
			h.alarms[id] = a
			continue
		}
		a.TS = now.Unix()
		h.alarms[id] = a
		changes = append(changes, alarmChange{"alert", a})
		h.log.Warn("alarm raised", "alarm", id, "message", a.Message)
	}
	for id, a := range h.alarms {
		if firing[id] {
			continue
		}
		delete(h.alarms, id)
		if r, ok := readings[id]; ok { // else the listener is gone: keep the last message
			a = r
		}
		a.TS = now.Unix()
		changes = append(changes, alarmChange{"clear", a})
		h.log.Info("alarm cleared", "alarm", id, "message", a.Message)
	}
	slices.SortFunc(changes, func(a, b alarmChange) int { return strings.Compare(a.alarm.ID, b.alarm.ID) })
	return changes
}

// warning is one sysmon message.
type warning struct{ topic, payload string }

type longGC struct {
	PauseMS     float64 `json:"pause_ms"`
	ThresholdMS float64 `json:"threshold_ms"`
	TS          int64   `json:"ts"`
}

type largeHeap struct {
	HeapBytes  uint64 `json:"heap_bytes"`
	LimitBytes uint64 `json:"limit_bytes"` // 80 % of heap_alarm_bytes
	TS         int64  `json:"ts"`
}

// sysmon returns the warnings of this tick: long_gc when a GC pause since
// the previous tick exceeded Settings.LongGC, large_heap while the heap is
// above 80 % of Settings.HeapAlarmBytes (every tick it holds).
func (h *Hook) sysmon(now time.Time, heap uint64, gcPause time.Duration) []warning {
	var out []warning
	if limit := h.settings.LongGC.Std(); limit > 0 && gcPause > limit {
		out = append(out, warning{"long_gc", mustJSON(longGC{
			PauseMS:     durationMS(gcPause),
			ThresholdMS: durationMS(limit),
			TS:          now.Unix(),
		})})
	}
	if limit := h.settings.HeapAlarmBytes / 10 * 8; limit > 0 && heap > limit {
		out = append(out, warning{"large_heap", mustJSON(largeHeap{HeapBytes: heap, LimitBytes: limit, TS: now.Unix()})})
	}
	return out
}

func durationMS(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}

func clampInt64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("sys: marshal %T: %v", v, err)) // only plain structs are marshalled
	}
	return string(b)
}

const (
	heapMetric    = "/memory/classes/heap/objects:bytes"
	gcPauseMetric = "/sched/pauses/total/gc:seconds"
)

// readHeapBytes reads the bytes held by live and not yet swept heap objects.
func readHeapBytes() uint64 {
	s := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// gcPauseReader finds GC pauses since its previous read from the runtime's
// cumulative pause histogram, without stopping the world. A pause is known
// by its histogram bucket, so it reports the bucket's lower bound: a long_gc
// warning means a pause at least that long (the buckets are a few percent
// wide).
type gcPauseReader struct {
	sample []metrics.Sample
	prev   []uint64
}

func newGCPauseReader() *gcPauseReader {
	r := &gcPauseReader{sample: []metrics.Sample{{Name: gcPauseMetric}}}
	r.maxSince() // pauses before the hook existed are not news
	return r
}

// maxSince returns the longest pause since the previous call. Callers
// serialise calls (PublishNow holds tickMu).
func (r *gcPauseReader) maxSince() time.Duration {
	metrics.Read(r.sample)
	if r.sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return 0
	}
	hist := r.sample[0].Value.Float64Histogram()
	var longest float64
	for i, c := range hist.Counts {
		var before uint64
		if i < len(r.prev) {
			before = r.prev[i]
		}
		if c > before && hist.Buckets[i] > longest && !math.IsInf(hist.Buckets[i], 0) {
			longest = hist.Buckets[i]
		}
	}
	r.prev = append(r.prev[:0], hist.Counts...)
	return time.Duration(longest * float64(time.Second))
}
