package main

import (
	"fmt"
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrapeMetrics fetches a server's /metrics and parses it with the
// Prometheus text parser, as a Prometheus server would.
func scrapeMetrics(client *http.Client, addr string) (map[string]*dto.MetricFamily, error) {
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// metricSum adds up every series of a counter or gauge family.
func metricSum(mfs map[string]*dto.MetricFamily, name string) (float64, bool) {
	mf, ok := mfs[name]
	if !ok {
		return 0, false
	}
	var sum float64
	for _, m := range mf.GetMetric() {
		sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return sum, true
}

// checkScrapes checks, after a run under writes, that every server's
// /metrics shows its Raft, WAL and TCP figures moving, and that exactly
// one server reports itself leader.
func checkScrapes(t *testing.T, client *http.Client, procs []*e2eProc) {
	t.Helper()
	leaders := 0
	for _, p := range procs {
		mfs, err := scrapeMetrics(client, p.httpAddr)
		if err != nil {
			t.Fatalf("%s: %v", p.id, err)
		}
		for _, name := range []string{"keel_raft_commits_total", "keel_raft_applies_total", "keel_raft_messages_sent_total",
			"keel_wal_syncs_total", "keel_tcp_messages_sent_total", "keel_tcp_messages_received_total"} {
			if v, ok := metricSum(mfs, name); !ok || v <= 0 {
				t.Errorf("%s: %s = %v (present: %v), want > 0", p.id, name, v, ok)
			}
		}
		if _, ok := mfs["go_goroutines"]; !ok {
			t.Errorf("%s: no Go runtime metrics", p.id)
		}
		for _, m := range mfs["keel_raft_state"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "state" && l.GetValue() == "Leader" && m.GetGauge().GetValue() == 1 {
					leaders++
				}
			}
		}
	}
	if leaders != 1 {
		t.Errorf("%d servers report keel_raft_state{state=\"Leader\"} 1, want 1", leaders)
	}
}
