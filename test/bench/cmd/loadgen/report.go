package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// metric is one row of the report.
type metric struct {
	ID       string `json:"id"`
	Scenario string `json:"scenario"`
	Title    string `json:"title"`
	Short    string `json:"-"` // chart label
	Unit     string `json:"unit"`
	Higher   bool   `json:"higher_is_better"`
	Target   target `json:"target"`
}

// target is what edgegate should reach on a metric.
type target struct {
	Kind   string  `json:"kind"` // max, min: edgegate's median; ratio_max, ratio_min: edgegate/mosquitto
	Value  float64 `json:"value"`
	Source string  `json:"source"`
}

// The targets are the benchmark issue's target table (memory also in
// DESIGN.md §2). Loss has an absolute target: a QoS 1 message the broker
// acknowledged is its responsibility.
const issue = "benchmark issue target table"

func metrics() []metric {
	return []metric{
		{"rss_tcp", "idle_tcp", "RSS per idle TCP connection", "RSS/CONN TCP", "KiB/conn", false,
			target{"max", 16, issue}},
		{"rss_tls", "idle_tls", "RSS per idle TLS connection", "RSS/CONN TLS", "KiB/conn", false,
			target{"max", 32, issue}},
		{"fanin_q0", "fanin_q0", "fan-in 50→1 QoS 0, received", "FANIN Q0", "msg/s", true,
			target{"ratio_min", 2, issue}},
		{"fanin_q1", "fanin_q1", "fan-in 50→1 QoS 1, received", "FANIN Q1", "msg/s", true,
			target{"ratio_min", 2, issue}},
		{"fanin_q1_loss", "fanin_q1", "fan-in QoS 1 loss (acked, not received)", "Q1 LOSS", "%", false,
			target{"max", 0, "MQTT QoS 1: an acknowledged message is delivered"}},
		{"fanout_q0", "fanout_q0", "fan-out 1→100 QoS 0, deliveries", "FANOUT Q0", "msg/s", true,
			target{"ratio_min", 3, issue}},
		{"lat_p99_q0", "steady_q0", "p99 latency, 5k msg/s fan-in QoS 0", "P99 Q0", "ms", false,
			target{"ratio_max", 1, issue}},
		{"lat_p99_q1", "steady_q1", "p99 latency, 5k msg/s fan-in QoS 1", "P99 Q1", "ms", false,
			target{"ratio_max", 1, issue}},
		{"cpu_q0", "steady_q0", "broker CPU, 5k msg/s fan-in QoS 0", "CPU Q0", "% core", false,
			target{"ratio_max", 1.5, issue}},
		{"connrate_tcp", "connrate_tcp", "new TCP connections/s, 8 workers", "CONN/S TCP", "conn/s", true,
			target{"ratio_min", 1, issue}},
		{"connrate_tls", "connrate_tls", "full TLS handshakes/s, 8 workers", "TLS HS/S", "conn/s", true,
			target{"ratio_min", 1, issue}},
	}
}

func (t target) String() string {
	switch t.Kind {
	case "max":
		return "≤ " + formatNum(t.Value)
	case "min":
		return "≥ " + formatNum(t.Value)
	case "ratio_max":
		return fmt.Sprintf("ratio ≤ %.2f", t.Value)
	case "ratio_min":
		return fmt.Sprintf("ratio ≥ %.2f", t.Value)
	}
	return "-"
}

// met reports whether edgegate meets the target; ok is false when it
// cannot be told (a broker has no value, or the ratio is undefined).
func (t target) met(edgegate, mosquitto summary) (met, ok bool) {
	if !edgegate.ok() {
		return false, false
	}
	switch t.Kind {
	case "max":
		return edgegate.Median <= t.Value, true
	case "min":
		return edgegate.Median >= t.Value, true
	}
	r, ok := ratio(edgegate, mosquitto)
	if !ok {
		return false, false
	}
	if t.Kind == "ratio_max" {
		return r <= t.Value, true
	}
	return r >= t.Value, true
}

// row is a metric's outcome.
type row struct {
	metric
	Mosquitto summary  `json:"mosquitto"`
	Edgegate  summary  `json:"edgegate"`
	Ratio     *float64 `json:"ratio"` // edgegate/mosquitto medians; null when undefined
	Met       *bool    `json:"met"`   // null when it cannot be told
}

func buildRows(ms []metric, values map[string]map[brokerKind][]float64, errs map[string]map[brokerKind][]string) []row {
	var rows []row
	for _, m := range ms {
		r := row{
			metric:    m,
			Mosquitto: summarize(values[m.ID][kindMosquitto]),
			Edgegate:  summarize(values[m.ID][kindEdgegate]),
		}
		r.Mosquitto.Errors = errs[m.ID][kindMosquitto]
		r.Edgegate.Errors = errs[m.ID][kindEdgegate]
		if v, ok := ratio(r.Edgegate, r.Mosquitto); ok {
			r.Ratio = &v
		}
		if met, ok := m.Target.met(r.Edgegate, r.Mosquitto); ok {
			r.Met = &met
		}
		rows = append(rows, r)
	}
	return rows
}

// formatNum prints a value with about three significant digits.
func formatNum(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 10:
		return fmt.Sprintf("%.2f", v)
	case a >= 0.1:
		return fmt.Sprintf("%.3f", v)
	default:
		return fmt.Sprintf("%.4f", v)
	}
}

func formatSummary(s summary, runs int) string {
	if !s.ok() {
		return "error"
	}
	txt := fmt.Sprintf("%s [%s..%s]", formatNum(s.Median), formatNum(s.Min), formatNum(s.Max))
	if len(s.Runs) < runs {
		txt += fmt.Sprintf(" (%d/%d runs)", len(s.Runs), runs)
	}
	return txt
}

// printTable writes the report table.
func printTable(w io.Writer, rows []row, runs int) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "metric\tunit\tmosquitto median [min..max]\tedgegate median [min..max]\tratio e/m\ttarget\tmet?")
	for _, r := range rows {
		ratio := "n/a"
		if r.Ratio != nil {
			ratio = fmt.Sprintf("%.2f", *r.Ratio)
		}
		met := "?"
		if r.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*r.Met]
		}
		better := "↑"
		if !r.Higher {
			better = "↓"
		}
		fmt.Fprintf(tw, "%s %s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Title, better, r.Unit,
			formatSummary(r.Mosquitto, runs), formatSummary(r.Edgegate, runs), ratio, r.Target, met)
	}
	return tw.Flush()
}

// printErrors lists the failed runs under the table.
func printErrors(w io.Writer, rows []row) {
	for _, r := range rows {
		for kind, errs := range map[brokerKind][]string{kindMosquitto: r.Mosquitto.Errors, kindEdgegate: r.Edgegate.Errors} {
			for _, e := range errs {
				fmt.Fprintf(w, "  error: %s, %s: %s\n", r.ID, kind, strings.ReplaceAll(e, "\n", " | "))
			}
		}
	}
}

// footnotes are facts from the runs' extra numbers that the table's
// medians hide: how much of what a broker read it delivered, messages lost
// at the fixed rate, and runs where the generator, not the broker, may have
// been the limit.
func footnotes(runs []runRecord) []string {
	var out []string
	extras := func(scenario string, kind brokerKind, key string) []float64 {
		var v []float64
		for _, r := range runs {
			if r.Scenario == scenario && r.Broker == kind && r.Error == "" {
				if x, ok := r.Extras[key]; ok {
					v = append(v, x)
				}
			}
		}
		return v
	}
	for _, sc := range []string{"fanin_q0", "fanout_q0"} {
		m, e := extras(sc, kindMosquitto, "delivered_of_read_pct"), extras(sc, kindEdgegate, "delivered_of_read_pct")
		if len(m) > 0 && len(e) > 0 {
			out = append(out, fmt.Sprintf("%s: of the messages the broker read, delivered (median): mosquitto %.1f %%, edgegate %.1f %%",
				sc, summarize(m).Median, summarize(e).Median))
		}
	}
	for _, sc := range []string{"steady_q0", "steady_q1"} {
		for _, kind := range brokerOrder {
			var lost, sent float64
			for _, v := range extras(sc, kind, "lost_in_window") {
				lost += v
			}
			for _, v := range extras(sc, kind, "sent_in_window") {
				sent += v
			}
			if lost > 0 {
				out = append(out, fmt.Sprintf("%s: %s lost %.0f of %.0f messages sent in the windows at the fixed rate",
					sc, kind, lost, sent))
			}
		}
	}
	busy := map[string]map[brokerKind]int{}
	var order []string
	for _, r := range runs {
		if r.Extras["loadgen_cpu_pct"] >= 90 {
			if busy[r.Scenario] == nil {
				busy[r.Scenario] = map[brokerKind]int{}
				order = append(order, r.Scenario)
			}
			busy[r.Scenario][r.Broker]++
		}
	}
	if len(order) > 0 {
		var parts []string
		for _, sc := range order {
			parts = append(parts, fmt.Sprintf("%s (mosquitto %d, edgegate %d runs)", sc, busy[sc][kindMosquitto], busy[sc][kindEdgegate]))
		}
		out = append(out, "generator at ≥ 90 % of its core, so the broker's figure is a floor: "+strings.Join(parts, ", "))
	}
	return out
}
