// Package bench holds edgegate's benchmarks. cmd/loadgen runs edgegate and
// mosquitto side by side on this machine and writes a ratio table (make
// bench); hotpath_test.go measures the broker's packet codec in process
// (make bench-go). Nothing here is part of the gateway binary, and no test
// in this tree asserts on timing.
package bench
