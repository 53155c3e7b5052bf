// Command memory measures the memory keel and hashicorp/raft use beside
// their throughput: peak resident set size, heap in use and goroutines,
// with ops/s and Apply latency, for a 3-server cluster in one process over
// TCP on 127.0.0.1 with durable stores (package clusters), driven by
// closed-loop clients of 128-byte commands.
//
// Every measurement runs in a child process of its own (this program,
// re-executed with -child), so that one library's heap never counts in the
// other's resident set. The parent runs the children one after the other
// and prints markdown tables.
//
// Usage:
//
//	memory -compare [-clients 1,16,128] [-duration 20s] [-rounds 1]
//	memory -sustained [-clients 128] [-duration 120s] [-sample 10s]
//	memory -child keel|hashicorp -clients N -duration D [-sample S] [-memprofile path]
//
// -compare runs, for each client count, keel and hashicorp/raft
// alternately, -rounds times, and prints one row per run and, with more
// than one round, the median of each column per library and client count.
// -sustained runs each library once, one after the other, with a sample of
// the resident set every -sample, and prints the two series side by side.
// -child runs one measurement in this process and prints its Result as
// JSON on stdout. -memprofile writes a heap profile at the end of the
// measured window (in the parent modes, one per child, the library, client
// count and round inserted before the extension); read it with
//
//	go tool pprof -sample_index=inuse_space -top path
//
// Linux only: the resident set comes from /proc/self/status.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

func main() {
	var (
		compare    = flag.Bool("compare", false, "compare the libraries at each -clients count")
		sustained  = flag.Bool("sustained", false, "one long run per library at the -clients count, sampling the resident set every -sample")
		child      = flag.String("child", "", "internal: measure this `library` (keel or hashicorp) in this process and print the result as JSON")
		libs       = flag.String("libs", "keel,hashicorp", "comma-separated `libraries` to measure, in this order")
		clientsArg = flag.String("clients", "", "comma-separated client `counts` (default 1,16,128 with -compare, 128 with -sustained; one count with -child)")
		duration   = flag.Duration("duration", 0, "length of each measurement (default 20s with -compare, 120s with -sustained)")
		rounds     = flag.Int("rounds", 1, "with -compare, how many times to measure each library at each client count")
		sample     = flag.Duration("sample", 0, "interval of the time series of resident set, heap and ops (default 10s with -sustained, none otherwise)")
		memprofile = flag.String("memprofile", "", "write a heap profile to `path` at the end of each measured window")
		maxRSSMiB  = flag.Uint64("maxrss-mib", defaultMaxRSSMiB(), "end a measurement early when the child's resident set exceeds this many `MiB` (0: no limit; default half the machine's memory), so that a library whose memory grows without bound does not exhaust a shared machine")
		jsonOut    = flag.String("json", "", "with -compare or -sustained, also write every child's result to `path` as a JSON array")
	)
	flag.Parse()
	if flag.NArg() > 0 {
		fail(fmt.Errorf("unexpected arguments %q", flag.Args()))
	}
	modes := 0
	for _, on := range []bool{*compare, *sustained, *child != ""} {
		if on {
			modes++
		}
	}
	if modes != 1 {
		fail(fmt.Errorf("give exactly one of -compare, -sustained and -child"))
	}

	switch {
	case *child != "":
		counts, err := parseCounts(*clientsArg)
		if err != nil || len(counts) != 1 {
			fail(fmt.Errorf("-child needs -clients with one count, not %q", *clientsArg))
		}
		if *duration <= 0 {
			fail(fmt.Errorf("-child needs a positive -duration"))
		}
		res, err := runChild(childOptions{library: *child, clients: counts[0], duration: *duration, sample: *sample, memprofile: *memprofile, maxRSS: *maxRSSMiB << 20})
		if err != nil {
			fail(fmt.Errorf("%s, %d clients: %w", *child, counts[0], err))
		}
		if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
			fail(fmt.Errorf("writing the result: %w", err))
		}
	default:
		p := parent{libs: splitList(*libs), rounds: *rounds, sample: *sample, memprofile: *memprofile, maxRSSMiB: *maxRSSMiB}
		for _, l := range p.libs {
			if _, ok := starters[l]; !ok {
				fail(fmt.Errorf("-libs: unknown library %q (known: keel, hashicorp)", l))
			}
		}
		defClients, defDuration := "1,16,128", 20*time.Second
		if *sustained {
			defClients, defDuration = "128", 120*time.Second
			if p.sample == 0 {
				p.sample = 10 * time.Second
			}
		}
		if *clientsArg == "" {
			*clientsArg = defClients
		}
		var err error
		if p.clients, err = parseCounts(*clientsArg); err != nil {
			fail(fmt.Errorf("-clients: %w", err))
		}
		p.duration = *duration
		if p.duration <= 0 {
			p.duration = defDuration
		}
		if p.rounds < 1 {
			fail(fmt.Errorf("-rounds %d: need at least 1", p.rounds))
		}
		if p.exe, err = os.Executable(); err != nil {
			fail(fmt.Errorf("finding this program to re-execute it: %w", err))
		}
		printMachine(p.maxRSSMiB)
		if *compare {
			err = p.compare()
		} else {
			err = p.sustained()
		}
		fmt.Printf("\nLoad average at the end: %s\n", loadAverage())
		if err == nil && *jsonOut != "" {
			err = writeJSON(*jsonOut, p.results)
		}
		if err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "memory:", err)
	os.Exit(1)
}

// splitList splits a comma-separated list, dropping empty elements.
func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parseCounts parses a comma-separated list of positive integers.
func parseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no client count")
	}
	return out, nil
}

// printMachine prints what the figures depend on besides the code.
func printMachine(maxRSSMiB uint64) {
	fmt.Printf("Go %s %s/%s, GOMAXPROCS %d, %d CPUs (%s)\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), runtime.NumCPU(), cpuModel())
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev != "" {
			fmt.Printf("Repository revision %s (modified: %s)\n", rev, modified)
		}
	}
	fmt.Printf("Temporary directories in %s\n", os.TempDir())
	fmt.Printf("Memory limit per child (-maxrss-mib): %d MiB\n", maxRSSMiB)
	fmt.Printf("Load average at the start: %s\n", loadAverage())
}

// parent runs children and reports their results.
type parent struct {
	exe        string
	libs       []string
	clients    []int
	duration   time.Duration
	rounds     int
	sample     time.Duration
	memprofile string
	maxRSSMiB  uint64
	results    []*Result
}

// run measures lib with clients in a child process. round numbers the
// heap profile's file.
func (p *parent) run(lib string, clients, round int) (*Result, error) {
	args := []string{"-child", lib, "-clients", strconv.Itoa(clients), "-duration", p.duration.String(), "-sample", p.sample.String(), "-maxrss-mib", strconv.FormatUint(p.maxRSSMiB, 10)}
	if p.memprofile != "" {
		ext := filepath.Ext(p.memprofile)
		args = append(args, "-memprofile", fmt.Sprintf("%s.%s.%dc.r%d%s", strings.TrimSuffix(p.memprofile, ext), lib, clients, round, ext))
	}
	// Setup, a leader election and shutdown take seconds; a child that
	// has not finished a minute after its window is stuck.
	ctx, cancel := context.WithTimeout(context.Background(), p.duration+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.exe, args...)
	cmd.Stderr = os.Stderr
	fmt.Fprintf(os.Stderr, "memory: %s, %d clients, %v ... ", lib, clients, p.duration)
	out, err := cmd.Output()
	if err != nil {
		fmt.Fprintln(os.Stderr)
		return nil, fmt.Errorf("%s, %d clients: child %s %s: %w", lib, clients, p.exe, strings.Join(args, " "), err)
	}
	var res Result
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("%s, %d clients: child's output %q: %w", lib, clients, out, err)
	}
	fmt.Fprintf(os.Stderr, "%.0f ops/s, peak RSS %.0f MiB %s\n", res.OpsPerSec, mib(res.PeakRSS), res.Stopped)
	p.results = append(p.results, &res)
	return &res, nil
}

func writeJSON(path string, results []*Result) error {
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return fmt.Errorf("results as JSON: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the results: %w", err)
	}
	return nil
}
