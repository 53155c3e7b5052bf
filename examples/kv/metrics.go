package main

import (
	"net/http"

	kprom "github.com/keelraft/raft/metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// newMetrics returns the Prometheus sink one server's Raft, WAL and TCP
// transport report to, and the handler that serves it at /metrics with
// the Go runtime's and the process's metrics. Each server has a registry
// of its own: with -local, several servers share one process, and each
// serves only its own figures.
func newMetrics() (*kprom.Sink, http.Handler) {
	sink := kprom.New(kprom.Options{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(sink, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return sink, promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
