package prometheus_test

import (
	"fmt"
	"log"
	"os"

	"github.com/keelraft/raft/metrics"
	keelprom "github.com/keelraft/raft/metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// Wiring: one Sink per server, registered in the registry your /metrics
// handler serves (promhttp.HandlerFor(reg, promhttp.HandlerOpts{})), and
// passed to keel as raft.Config.Metrics, wal.Options.Metrics and
// tcp.Options.Metrics. Here keel's side is played by hand.
func Example() {
	reg := prometheus.NewRegistry()
	sink := keelprom.New(keelprom.Options{ConstLabels: prometheus.Labels{"server": "n1"}})
	reg.MustRegister(sink)

	// cfg.Metrics = sink; walOpts.Metrics = sink; tcpOpts.Metrics = sink
	var keel metrics.Sink = sink

	// What keel does: ask once, then count on the hot path.
	commits := keel.Counter(metrics.Desc{Subsystem: "raft", Name: "commits", Help: "Entries committed."})
	commits.Add(3)

	if err := sink.Err(); err != nil {
		log.Print(err) // a metric keel asked for inconsistently
	}

	mfs, err := reg.Gather()
	if err != nil {
		log.Fatal(err)
	}
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(os.Stdout, mf); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(sink.Err())
	// Output:
	// # HELP keel_raft_commits_total Entries committed.
	// # TYPE keel_raft_commits_total counter
	// keel_raft_commits_total{server="n1"} 3
	// <nil>
}

// Two servers in one process, one registry: their Sinks' constant labels
// tell their series apart.
func Example_twoServers() {
	reg := prometheus.NewRegistry()
	for _, id := range []string{"n1", "n2"} {
		sink := keelprom.New(keelprom.Options{ConstLabels: prometheus.Labels{"server": id}})
		reg.MustRegister(sink)
		// raft.Config{LocalID: raft.ServerID(id), Metrics: sink, ...}
		sink.Gauge(metrics.Desc{Subsystem: "raft", Name: "term", Help: "The current term."}).Set(2)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		expfmt.MetricFamilyToText(os.Stdout, mf)
	}
	// Output:
	// # HELP keel_raft_term The current term.
	// # TYPE keel_raft_term gauge
	// keel_raft_term{server="n1"} 2
	// keel_raft_term{server="n2"} 2
}
