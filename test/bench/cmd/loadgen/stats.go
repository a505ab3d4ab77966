package main

import (
	"math"
	"math/bits"
	"slices"
)

// summary is a metric over a broker's runs.
type summary struct {
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Runs   []float64 `json:"runs"`
	Errors []string  `json:"errors,omitempty"`
}

// ok reports whether at least one run produced a value.
func (s summary) ok() bool { return len(s.Runs) > 0 }

func summarize(runs []float64) summary {
	s := summary{Runs: runs}
	if len(runs) == 0 {
		return s
	}
	sorted := slices.Clone(runs)
	slices.Sort(sorted)
	s.Min, s.Max = sorted[0], sorted[len(sorted)-1]
	n := len(sorted)
	if n%2 == 1 {
		s.Median = sorted[n/2]
	} else {
		s.Median = (sorted[n/2-1] + sorted[n/2]) / 2
	}
	return s
}

// percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of
// sorted values: the smallest value with at least p % of the values at or
// below it.
func percentile(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	// The epsilon keeps 99.9 % of 1000 at rank 999 despite binary floats.
	rank := int(math.Ceil(p/100*float64(len(sorted)) - 1e-9))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// ratio is edgegate's median over mosquitto's; false when it is undefined.
func ratio(edgegate, mosquitto summary) (float64, bool) {
	if !edgegate.ok() || !mosquitto.ok() || mosquitto.Median == 0 {
		return 0, false
	}
	return edgegate.Median / mosquitto.Median, true
}

// bitset records sequence numbers seen, growing as needed.
type bitset struct{ words []uint64 }

// set marks n and reports whether it was already set.
func (b *bitset) set(n uint64) bool {
	w := n / 64
	if w >= uint64(len(b.words)) {
		b.words = append(b.words, make([]uint64, int(w)-len(b.words)+1+len(b.words)/2)...)
	}
	m := uint64(1) << (n % 64)
	was := b.words[w]&m != 0
	b.words[w] |= m
	return was
}

func (b *bitset) has(n uint64) bool {
	w := n / 64
	return w < uint64(len(b.words)) && b.words[w]&(1<<(n%64)) != 0
}

// countMissing counts the members of acked that are not in got.
func countMissing(acked, got *bitset) int64 {
	var missing int64
	for i, w := range acked.words {
		var g uint64
		if i < len(got.words) {
			g = got.words[i]
		}
		missing += int64(bits.OnesCount64(w &^ g))
	}
	return missing
}

func (b *bitset) count() int64 {
	var n int64
	for _, w := range b.words {
		n += int64(bits.OnesCount64(w))
	}
	return n
}
