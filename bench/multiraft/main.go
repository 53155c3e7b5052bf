package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

const defaultSystems = "keel,dragonboat,dragonboat-synccount,dragonboat-1shard,dragonboat-1shard-synccount"

type options struct {
	params
	systems   []string
	groups    []int
	rounds    int
	limitsFor time.Duration
	inProcess bool
}

func parseFlags(args []string) (options, bool, error) {
	var o options
	fs := flag.NewFlagSet("multiraft", flag.ContinueOnError)
	systems := fs.String("systems", defaultSystems, "systems to measure, comma-separated: keel, and dragonboat with its default LogDB (16 pebble shards per NodeHost) or -1shard, each with fsyncs counted (-synccount, through an error-injection FS) or not")
	groups := fs.String("groups", "1,16,64,256", "group counts, comma-separated")
	fs.IntVar(&o.rounds, "rounds", 1, "rounds; every round measures every point, interleaving the systems, and the table shows each point's median round")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "measured window per point")
	fs.DurationVar(&o.Warmup, "warmup", 2*time.Second, "warm-up per point, not measured")
	fs.IntVar(&o.ClientsPerGroup, "clients-per-group", 8, "synchronous clients per group")
	fs.IntVar(&o.MaxClients, "max-clients", 1024, "cap on the clients of a point (at least one per group)")
	fs.IntVar(&o.Size, "size", 128, "command size in bytes")
	fs.DurationVar(&o.Heartbeat, "heartbeat", 100*time.Millisecond, "heartbeat interval of both systems")
	fs.DurationVar(&o.Election, "election", time.Second, "election timeout of both systems")
	fs.DurationVar(&o.Timeout, "timeout", 5*time.Second, "each proposal's timeout")
	fs.StringVar(&o.Dir, "dir", os.TempDir(), "directory for the stores (the disk measured)")
	fs.StringVar(&o.DragonboatLogDB, "dragonboat-logdb", "default", "dragonboat LogDB memory config: default, small or tiny")
	fs.IntVar(&o.PersistWorkers, "keel-persist-workers", 0, "keel's HostConfig.PersistWorkers (0: its default)")
	fs.DurationVar(&o.limitsFor, "fsync-probe", 3*time.Second, "how long to measure the disk's fsync (before and after the points)")
	fs.BoolVar(&o.inProcess, "inprocess", false, "run every point in this process instead of one subprocess per point")
	child := fs.Bool("child", false, "internal: run one point (-systems X -groups N) and print its result as JSON")
	if err := fs.Parse(args); err != nil {
		return o, false, err
	}
	for _, s := range strings.Split(*systems, ",") {
		s = strings.TrimSpace(s)
		if _, ok := dragonboatVariants[s]; !ok && s != "keel" {
			return o, false, fmt.Errorf("-systems: unknown system %q", s)
		}
		o.systems = append(o.systems, s)
	}
	for _, g := range strings.Split(*groups, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(g))
		if err != nil || n < 1 {
			return o, false, fmt.Errorf("-groups: %q is not a positive count", g)
		}
		o.groups = append(o.groups, n)
	}
	if o.Duration <= 0 || o.Warmup < 0 || o.Size < 1 || o.ClientsPerGroup < 1 || o.MaxClients < 1 || o.Timeout <= 0 || o.rounds < 1 {
		return o, false, fmt.Errorf("-duration, -timeout, -size, -clients-per-group, -max-clients and -rounds must be positive, -warmup not negative")
	}
	return o, *child, nil
}

func main() {
	log.SetFlags(0)
	o, child, err := parseFlags(os.Args[1:])
	if err != nil {
		log.Fatal(err)
	}
	if child {
		if len(o.systems) != 1 || len(o.groups) != 1 {
			log.Fatal("-child takes one system and one group count")
		}
		p := o.params
		p.System, p.Groups = o.systems[0], o.groups[0]
		res, err := run(p)
		if err != nil {
			log.Fatal(err)
		}
		if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
			log.Fatal(err)
		}
		return
	}
	base, err := os.MkdirTemp(o.Dir, "multiraft-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(base)
	before, err := measureLimits(base, o.limitsFor)
	if err != nil {
		log.Fatal(err)
	}
	var results []result
	for round := range o.rounds {
		for _, g := range o.groups {
			for _, s := range o.systems {
				p := o.params
				p.System, p.Groups, p.Dir = s, g, filepath.Join(base, fmt.Sprintf("%s-%d-%d", s, g, round))
				log.Printf("round %d: %s, %d groups, %d clients ...", round+1, s, g, p.clients())
				var res result
				if o.inProcess {
					res, err = run(p)
				} else {
					res, err = runChild(p)
				}
				if err != nil {
					log.Printf("%s, %d groups: %v", s, g, err)
					continue
				}
				log.Printf("  %.0f ops/s, p50 %v, p99 %v, %d errors", res.OpsPerSec, res.P50, res.P99, res.Errors)
				results = append(results, res)
			}
		}
	}
	after, err := measureLimits(base, o.limitsFor)
	if err != nil {
		log.Fatal(err)
	}
	host, _ := os.Hostname()
	fmt.Printf("\n%s, %s, %d CPUs (GOMAXPROCS %d), %s/%s, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), host, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version())
	printTable(os.Stdout, o, []limits{before, after}, results)
}

// runChild runs one point in a subprocess of this program.
func runChild(p params) (result, error) {
	exe, err := os.Executable()
	if err != nil {
		return result{}, fmt.Errorf("find this program: %w", err)
	}
	args := []string{"-child", "-systems", p.System, "-groups", strconv.Itoa(p.Groups),
		"-duration", p.Duration.String(), "-warmup", p.Warmup.String(),
		"-clients-per-group", strconv.Itoa(p.ClientsPerGroup), "-max-clients", strconv.Itoa(p.MaxClients),
		"-size", strconv.Itoa(p.Size), "-heartbeat", p.Heartbeat.String(), "-election", p.Election.String(),
		"-timeout", p.Timeout.String(), "-dir", p.Dir, "-dragonboat-logdb", p.DragonboatLogDB,
		"-keel-persist-workers", strconv.Itoa(p.PersistWorkers)}
	cmd := exec.Command(exe, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("subprocess: %w", err)
	}
	var res result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return result{}, fmt.Errorf("subprocess output %q: %w", out.String(), err)
	}
	return res, nil
}

// point is one system at one group count over the rounds.
type point struct {
	median     result
	minOps     float64
	maxOps     float64
	rounds     int
	errors     uint64 // over every round
	leaderMove uint64
	leftover   int // the most, over the rounds
}

// medians groups the results by system and group count, in the order
// measured, and picks each point's round of median ops/s.
func medians(results []result) []point {
	type key struct {
		system string
		groups int
	}
	var order []key
	by := map[key][]result{}
	for _, r := range results {
		k := key{r.System, r.Groups}
		if _, ok := by[k]; !ok {
			order = append(order, k)
		}
		by[k] = append(by[k], r)
	}
	slices.SortStableFunc(order, func(a, b key) int { return cmp.Compare(a.groups, b.groups) })
	var pts []point
	for _, k := range order {
		rs := slices.Clone(by[k])
		slices.SortFunc(rs, func(a, b result) int { return cmp.Compare(a.OpsPerSec, b.OpsPerSec) })
		pt := point{median: rs[(len(rs)-1)/2], minOps: rs[0].OpsPerSec, maxOps: rs[len(rs)-1].OpsPerSec, rounds: len(rs)}
		for _, r := range rs {
			pt.errors += r.Errors
			pt.leaderMove += r.Redirects
			pt.leftover = max(pt.leftover, r.Leftover)
		}
		pts = append(pts, pt)
	}
	return pts
}

func printTable(w io.Writer, o options, lim []limits, results []result) {
	for i, l := range lim {
		when := []string{"before", "after"}[min(i, 1)]
		fmt.Fprintf(w, "Machine limits %s the points: fsync (write+fsync of 128 bytes, one at a time) %.0f/s, p50 %v; loopback TCP round trip (128 bytes) p50 %v.\n",
			when, l.FsyncOps, l.FsyncP50.Round(time.Microsecond), l.LoopRTT50.Round(time.Microsecond))
	}
	fmt.Fprintf(w, "\n%d-byte commands, %v measured after %v warm-up, %d round(s), heartbeat %v, election %v, %d clients per group (at most %d); dragonboat LogDB config %q; keel PersistWorkers %d (0: default).\n\n",
		o.Size, o.Duration, o.Warmup, o.rounds, o.Heartbeat, o.Election, o.ClientsPerGroup, o.MaxClients, o.DragonboatLogDB, o.PersistWorkers)
	fmt.Fprintln(w, "| system | groups | clients | ops/s (median) | ops/s (min–max) | p50 | p99 | fsyncs/entry | goroutines | RSS MiB | errors | leader moves | setup | left after close |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, pt := range medians(results) {
		r := pt.median
		fmt.Fprintf(w, "| %s | %d | %d | %.0f | %.0f–%.0f | %v | %v | %s | %d | %.0f | %d | %d | %v | %d |\n",
			r.System, r.Groups, r.Clients, r.OpsPerSec, pt.minOps, pt.maxOps, r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond),
			r.fsyncsPerEntry(), r.Goroutines, float64(r.RSS)/(1<<20), pt.errors, pt.leaderMove, r.Setup.Round(10*time.Millisecond), pt.leftover)
	}
	for _, r := range results {
		if r.FirstError != "" {
			fmt.Fprintf(w, "\n%s, %d groups: first error: %s", r.System, r.Groups, r.FirstError)
		}
	}
	fmt.Fprintln(w)
}
