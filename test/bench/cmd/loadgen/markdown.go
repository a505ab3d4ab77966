package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// writeMarkdown writes the report as docs/performance.md reads: the machine,
// the table of medians with the ratio and the target, what the medians
// hide, the settings, and how to reproduce. Every figure comes from rep.
func writeMarkdown(w io.Writer, rep report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Performance: edgegate side by side with mosquitto\n\n")
	fmt.Fprintf(&b, "Written by `make bench` on %s (%.0f s wall", rep.Generated.Format("2006-01-02 15:04 UTC"), rep.WallSeconds)
	if !rep.Complete {
		b.WriteString(", INCOMPLETE: the run hit its deadline")
	}
	if rep.Settings["quick"] == true {
		b.WriteString(", quick mode: harness check, not a measurement")
	}
	b.WriteString("). Medians of the interleaved runs with [min..max]; ratio = edgegate / mosquitto.\n\n")

	b.WriteString("## Machine\n\n")
	keys := make([]string, 0, len(rep.Environment))
	for k := range rep.Environment {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "- %s: `%s`\n", k, strings.ReplaceAll(rep.Environment[k], "`", "'"))
	}

	runs := settingInt(rep.Settings["runs"])
	b.WriteString("\n## Results\n\n| metric | unit | mosquitto | edgegate | ratio | target | met |\n|---|---|---|---|---|---|---|\n")
	for _, r := range rep.Metrics {
		ratio := "n/a"
		if r.Ratio != nil {
			ratio = fmt.Sprintf("%.2f", *r.Ratio)
		}
		met := "?"
		if r.Met != nil {
			met = map[bool]string{true: "yes", false: "**no**"}[*r.Met]
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.Title, r.Unit,
			formatSummary(r.Mosquitto, runs), formatSummary(r.Edgegate, runs), ratio, r.Target, met)
	}
	for _, r := range rep.Metrics {
		if (r.ID == "rss_tcp" || r.ID == "rss_tls") && r.Edgegate.ok() {
			fmt.Fprintf(&b, "\nMemory per 1,000 idle sensors over %s: edgegate %.1f MiB, mosquitto %.1f MiB.\n",
				strings.ToUpper(strings.TrimPrefix(r.ID, "rss_")), r.Edgegate.Median*1000/1024, r.Mosquitto.Median*1000/1024)
		}
	}
	if len(rep.Footnotes) > 0 {
		b.WriteString("\nWhat the medians hide:\n\n")
		for _, f := range rep.Footnotes {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	}
	b.WriteString("\n## How it was measured\n\n")
	for _, n := range rep.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	b.WriteString("\n## Reproduce\n\n```sh\nmake bench          # < 20 min on 2 cores; writes bench-results/ and this file\nBENCH_QUICK=1 make bench   # harness check only\nmake bench-go       # in-process Go benchmarks for benchstat\n```\n\n" +
		"Per-run numbers, including CPU of broker and generator and latency percentiles, are in\n`bench-results/results.json` of the run; test/bench/README.md explains each scenario.\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// settingInt reads a number of the report's settings, an int when the
// report was just made and a float64 when it was read back from JSON.
func settingInt(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case float64:
		return int(n)
	}
	return 0
}

// renderMarkdown writes the report of an earlier run's results.json.
func renderMarkdown(path string, w io.Writer) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var rep report
	if err := json.Unmarshal(data, &rep); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return writeMarkdown(w, rep)
}
