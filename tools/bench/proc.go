package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat;
// it is 100 on every Linux architecture Go supports.
const clockTicks = 100

// procSnap is what /proc tells about one process at one moment.
type procSnap struct {
	UserTicks, SysTicks int64
	MinorFaults         int64
	Threads             int64
	VolCtxt, InvolCtxt  int64 // all threads
	HWMBytes, RSSBytes  int64
}

func (p procSnap) cpuSeconds() float64 {
	return float64(p.UserTicks+p.SysTicks) / clockTicks
}

// readProc reads /proc/<pid>/stat and /proc/<pid>/status.
func readProc(pid int) (procSnap, error) {
	var s procSnap
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name may hold spaces and parentheses: fields start after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("/proc/%d/stat: no ')' in %q", pid, stat)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 18 {
		return s, fmt.Errorf("/proc/%d/stat: %d fields after the name, want at least 18", pid, len(f))
	}
	// f[0] is field 3 (state): field k of proc(5) is f[k-3].
	s.MinorFaults = atoi(f[10-3])
	s.UserTicks = atoi(f[14-3])
	s.SysTicks = atoi(f[15-3])
	s.Threads = atoi(f[20-3])
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
		switch k {
		case "VmHWM":
			s.HWMBytes = atoi(v) << 10
		case "VmRSS":
			s.RSSBytes = atoi(v) << 10
		}
	}
	s.VolCtxt, s.InvolCtxt = ctxSwitches(pid)
	return s, nil
}

// ctxSwitches sums the context switches of every thread of pid:
// /proc/<pid>/status only counts the main thread's.
func ctxSwitches(pid int) (vol, invol int64) {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			switch k {
			case "voluntary_ctxt_switches":
				vol += atoi(v)
			case "nonvoluntary_ctxt_switches":
				invol += atoi(v)
			}
		}
	}
	return vol, invol
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	return n
}

// machineSnap is the aggregate "cpu" line of /proc/stat, in ticks.
type machineSnap struct{ Busy, Total int64 }

func readMachine() machineSnap {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineSnap{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var m machineSnap
	for i, v := range f[1:] {
		n := atoi(v)
		if i >= 8 { // guest and guest_nice are already counted in user and nice
			break
		}
		m.Total += n
		if i != 3 && i != 4 { // idle, iowait
			m.Busy += n
		}
	}
	return m
}

// busyFraction is the share of all CPUs that was busy between a and b.
func busyFraction(a, b machineSnap) float64 {
	if b.Total == a.Total {
		return 0
	}
	return float64(b.Busy-a.Busy) / float64(b.Total-a.Total)
}

// timeWait returns the number of TCP sockets in TIME_WAIT (/proc/net/sockstat).
func timeWait() int64 {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.HasPrefix(line, "TCP:") {
			continue
		}
		f := strings.Fields(line)
		for i := 1; i+1 < len(f); i += 2 {
			if f[i] == "tw" {
				return atoi(f[i+1])
			}
		}
	}
	return -1
}

func readSysctl(name string) string {
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(name, ".", "/"))
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b)), " ")
}

func writeSysctl(name, value string) error {
	return os.WriteFile("/proc/sys/"+strings.ReplaceAll(name, ".", "/"), []byte(value), 0o644)
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func numCPU() int { return runtime.NumCPU() }
