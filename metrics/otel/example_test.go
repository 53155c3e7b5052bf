package otel_test

import (
	"context"
	"fmt"
	"log"

	"github.com/keelraft/raft/metrics"
	keelotel "github.com/keelraft/raft/metrics/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Wiring: a Sink on a Meter of your MeterProvider (here the SDK's, read by
// hand; in production with a periodic reader and an exporter), passed to
// keel as raft.Config.Metrics, wal.Options.Metrics and tcp.Options.Metrics.
// Here keel's side is played by hand.
func Example() {
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(context.Background())

	sink := keelotel.New(provider.Meter("github.com/keelraft/raft"), keelotel.Options{
		Attributes: []attribute.KeyValue{attribute.String("server", "n1")},
	})
	// cfg.Metrics = sink; walOpts.Metrics = sink; tcpOpts.Metrics = sink
	var keel metrics.Sink = sink

	// What keel does: ask once, then measure on the hot path.
	latency := keel.Histogram(metrics.Desc{
		Subsystem: "raft", Name: "commit_latency", Help: "Proposal to commit.",
		Unit: metrics.Seconds, Buckets: metrics.LatencyBuckets,
	})
	latency.Observe(0.002)

	if err := sink.Err(); err != nil {
		log.Print(err) // an instrument that could not be made
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		log.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			dp := m.Data.(metricdata.Histogram[float64]).DataPoints[0]
			server, _ := dp.Attributes.Value("server")
			fmt.Printf("%s (%s) server=%s count=%d sum=%g\n", m.Name, m.Unit, server.AsString(), dp.Count, dp.Sum)
		}
	}
	// Output:
	// keel.raft.commit_latency (s) server=n1 count=1 sum=0.002
}
