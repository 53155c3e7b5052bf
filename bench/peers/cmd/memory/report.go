package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// compare measures each library at each client count, the libraries
// alternating, p.rounds times per count, and prints a row per run and
// the medians.
func (p *parent) compare() error {
	fmt.Printf("\n## Compare: %v per run, clients %s, %d round(s), libraries alternating\n\n", p.duration, joinInts(p.clients), p.rounds)
	type key struct {
		lib     string
		clients int
	}
	byKey := map[key][]*Result{}
	var rows [][]string
	for _, clients := range p.clients {
		for round := 1; round <= p.rounds; round++ {
			for _, lib := range p.libs {
				res, err := p.run(lib, clients, round)
				if err != nil {
					printTable(rows)
					return err
				}
				byKey[key{lib, clients}] = append(byKey[key{lib, clients}], res)
				rows = append(rows, append([]string{fmt.Sprint(round)}, resultCells(res)...))
			}
		}
	}
	printTable(rows)
	printStopped(p.results)
	if p.rounds > 1 {
		fmt.Printf("\n### Median of %d rounds\n\n", p.rounds)
		var med [][]string
		for _, clients := range p.clients {
			for _, lib := range p.libs {
				med = append(med, append([]string{"median"}, resultCells(median(byKey[key{lib, clients}]))...))
			}
		}
		printTable(med)
	}
	return nil
}

// sustained measures each library once at each client count, with a
// time series, and prints the summaries and the series side by side.
func (p *parent) sustained() error {
	for _, clients := range p.clients {
		fmt.Printf("\n## Sustained: %d clients for %v, resident set sampled every %v\n\n", clients, p.duration, p.sample)
		var results []*Result
		var rows [][]string
		for _, lib := range p.libs {
			res, err := p.run(lib, clients, 1)
			if err != nil {
				printTable(rows)
				return err
			}
			results = append(results, res)
			rows = append(rows, append([]string{"1"}, resultCells(res)...))
		}
		printTable(rows)
		printStopped(results)
		fmt.Println()
		printSeries(results, p.sample.Seconds())
	}
	return nil
}

// resultHeader names the columns of resultCells, after the round.
var resultHeader = []string{"round", "library", "clients", "ops/s", "p50 µs", "p99 µs", "peak RSS MiB", "end RSS MiB", "peak heap MiB", "peak live heap MiB", "goroutines", "fsyncs/op"}

func resultCells(r *Result) []string {
	fsyncs := "-"
	if r.FsyncsPerOp != nil {
		fsyncs = fmt.Sprintf("%.2f", *r.FsyncsPerOp)
	}
	lib := r.Library
	if r.Stopped != "" {
		lib += " †"
	}
	return []string{
		lib, fmt.Sprint(r.Clients), fmt.Sprintf("%.0f", r.OpsPerSec),
		fmt.Sprintf("%.0f", r.P50Micros), fmt.Sprintf("%.0f", r.P99Micros),
		fmt.Sprintf("%.1f", mib(r.PeakRSS)), fmt.Sprintf("%.1f", mib(r.EndRSS)),
		fmt.Sprintf("%.1f", mib(r.PeakHeap)), fmt.Sprintf("%.1f", mib(r.PeakLiveHeap)),
		fmt.Sprint(r.PeakGoroutines), fsyncs,
	}
}

// printTable prints rows of resultCells under resultHeader, as markdown.
func printTable(rows [][]string) {
	if len(rows) == 0 {
		return
	}
	fmt.Println("| " + strings.Join(resultHeader, " | ") + " |")
	align := make([]string, len(resultHeader))
	for i := range align {
		align[i] = "---:"
	}
	align[1] = "---"
	fmt.Println("|" + strings.Join(align, "|") + "|")
	for _, r := range rows {
		fmt.Println("| " + strings.Join(r, " | ") + " |")
	}
}

// printStopped notes the results (marked † in the tables) whose window
// ended early.
func printStopped(results []*Result) {
	for _, r := range results {
		if r.Stopped != "" {
			fmt.Printf("\n† %s, %d clients: %s\n", r.Library, r.Clients, r.Stopped)
		}
	}
}

// printSeries prints the time series of results side by side, the k-th
// row holding each result's k-th sample: the first tick of the 100 ms
// poller at or after k*every seconds. A sample more than two ticks off
// that time (the last one of a run stopped early, or a tick delayed on a
// busy machine) shows its own time.
func printSeries(results []*Result, every float64) {
	header := []string{"s"}
	align := []string{"---:"}
	n := 0
	for _, r := range results {
		header = append(header, r.Library+" RSS MiB", r.Library+" heap MiB", r.Library+" ops")
		align = append(align, "---:", "---:", "---:")
		n = max(n, len(r.Series))
	}
	fmt.Println("| " + strings.Join(header, " | ") + " |")
	fmt.Println("|" + strings.Join(align, "|") + "|")
	for k := range n {
		row := []string{fmt.Sprintf("%.0f", float64(k)*every)}
		for _, r := range results {
			if k >= len(r.Series) {
				row = append(row, "", "", "")
				continue
			}
			s := r.Series[k]
			rss := fmt.Sprintf("%.1f", mib(s.RSS))
			if math.Abs(s.Seconds-float64(k)*every) > 2*pollInterval.Seconds() {
				rss += fmt.Sprintf(" (at %.1f s)", s.Seconds) // a run stopped early, or a late tick
			}
			row = append(row, rss, fmt.Sprintf("%.1f", mib(s.Heap)), fmt.Sprint(s.Ops))
		}
		fmt.Println("| " + strings.Join(row, " | ") + " |")
	}
}

// median returns a Result whose every figure is the median of that figure
// over rs (the mean of the middle two for an even count); rs are of one
// library and client count.
func median(rs []*Result) *Result {
	m := &Result{Library: rs[0].Library, Clients: rs[0].Clients}
	mf := func(f func(*Result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		if len(v)%2 == 0 {
			return (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
		return v[len(v)/2]
	}
	mu := func(f func(*Result) uint64) uint64 {
		return uint64(mf(func(r *Result) float64 { return float64(f(r)) }))
	}
	m.OpsPerSec = mf(func(r *Result) float64 { return r.OpsPerSec })
	m.P50Micros = mf(func(r *Result) float64 { return r.P50Micros })
	m.P99Micros = mf(func(r *Result) float64 { return r.P99Micros })
	m.PeakRSS = mu(func(r *Result) uint64 { return r.PeakRSS })
	m.EndRSS = mu(func(r *Result) uint64 { return r.EndRSS })
	m.PeakHeap = mu(func(r *Result) uint64 { return r.PeakHeap })
	m.PeakLiveHeap = mu(func(r *Result) uint64 { return r.PeakLiveHeap })
	m.PeakGoroutines = mu(func(r *Result) uint64 { return r.PeakGoroutines })
	if rs[0].FsyncsPerOp != nil {
		f := mf(func(r *Result) float64 {
			if r.FsyncsPerOp == nil {
				return 0
			}
			return *r.FsyncsPerOp
		})
		m.FsyncsPerOp = &f
	}
	return m
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
}
