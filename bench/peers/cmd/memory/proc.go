package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// memStatus is the process's resident set size from /proc/self/status.
type memStatus struct {
	// HWM is VmHWM, the peak resident set size of the process so far.
	HWM uint64
	// RSS is VmRSS, the resident set size now.
	RSS uint64
}

// readMemStatus reads VmHWM and VmRSS of this process (Linux only).
func readMemStatus() (memStatus, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return memStatus{}, fmt.Errorf("resident set size: %w", err)
	}
	return parseMemStatus(b)
}

// parseMemStatus extracts VmHWM and VmRSS, given in kB, from the text of
// /proc/<pid>/status, in bytes.
func parseMemStatus(b []byte) (memStatus, error) {
	var s memStatus
	var found int
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmHWM" && name != "VmRSS") {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(value), "kB")), 10, 64)
		if err != nil {
			return memStatus{}, fmt.Errorf("/proc/self/status: %s: %w", name, err)
		}
		if name == "VmHWM" {
			s.HWM = kb << 10
		} else {
			s.RSS = kb << 10
		}
		found++
	}
	if found != 2 {
		return memStatus{}, fmt.Errorf("/proc/self/status: VmHWM or VmRSS missing")
	}
	return s, nil
}

// loadAverage returns the 1, 5 and 15 minute load averages from
// /proc/loadavg, or a note of why they are not known.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return fmt.Sprintf("unknown (%v)", err)
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return fmt.Sprintf("unknown (/proc/loadavg: %q)", b)
	}
	return strings.Join(f[:3], " ")
}

// cpuModel returns the first "model name" of /proc/cpuinfo, or "unknown".
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for line := range strings.Lines(string(b)) {
		name, value, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return "unknown"
}

// defaultMaxRSSMiB returns half of MemTotal from /proc/meminfo in MiB, or
// 0 (no limit) when it is not known.
func defaultMaxRSSMiB() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		name, value, ok := strings.Cut(line, ":")
		if !ok || name != "MemTotal" {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(value), "kB")), 10, 64)
		if err != nil {
			return 0
		}
		return kb / 1024 / 2
	}
	return 0
}
