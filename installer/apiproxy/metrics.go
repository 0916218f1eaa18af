package apiproxy

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the proxy's Prometheus collectors, on a registry of its own.
// Their names are part of the interface (dashboards and alerts use them):
//
//	ferry_apiproxy_backend_up{backend}                       1 healthy, 0 not (unknown or unhealthy)
//	ferry_apiproxy_healthy_backends                          backends known healthy
//	ferry_apiproxy_connections_total{backend}                client connections proxied to a backend
//	ferry_apiproxy_connections_active{backend}               of those, still open
//	ferry_apiproxy_dial_failures_total{backend}              connection attempts to a backend that failed
//	ferry_apiproxy_connections_rejected_total{reason}        client connections closed unproxied:
//	                                                         reason="limit" (maxConnections), "no_backend" (every dial failed)
//	ferry_apiproxy_health_checks_total{backend,result}       result="success" or "failure"
//	ferry_apiproxy_connections_moved_total{backend}          client connections closed because their API server turned unhealthy
//	ferry_apiproxy_health_check_duration_seconds{backend}    one check, TLS handshake included
type metrics struct {
	registry      *prometheus.Registry
	up            *prometheus.GaugeVec
	healthy       prometheus.Gauge
	connsTotal    *prometheus.CounterVec
	connsActive   *prometheus.GaugeVec
	dialFailures  *prometheus.CounterVec
	rejected      *prometheus.CounterVec
	checks        *prometheus.CounterVec
	checkDuration *prometheus.HistogramVec
	moved         *prometheus.CounterVec
}

func newMetrics(backends []string) (*metrics, error) {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ferry_apiproxy_backend_up", Help: "1 when the API server is known healthy, else 0.",
		}, []string{"backend"}),
		healthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ferry_apiproxy_healthy_backends", Help: "API servers known healthy.",
		}),
		connsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_apiproxy_connections_total", Help: "Client connections proxied, by API server.",
		}, []string{"backend"}),
		connsActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ferry_apiproxy_connections_active", Help: "Client connections open, by API server.",
		}, []string{"backend"}),
		dialFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_apiproxy_dial_failures_total", Help: "Connection attempts to an API server that failed (the client was tried on the next one).",
		}, []string{"backend"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_apiproxy_connections_rejected_total", Help: "Client connections closed without being proxied: limit (maxConnections reached) or no_backend (no API server accepted).",
		}, []string{"reason"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_apiproxy_health_checks_total", Help: "Health checks, by API server and result (success or failure).",
		}, []string{"backend", "result"}),
		checkDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ferry_apiproxy_health_check_duration_seconds",
			Help:    "Time of one health check (connect, TLS handshake, request).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14), // 1 ms … 8 s
		}, []string{"backend"}),
		moved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_apiproxy_connections_moved_total", Help: "Client connections closed because their API server turned unhealthy while another was healthy (the clients reconnect to a healthy one).",
		}, []string{"backend"}),
	}
	for _, c := range []prometheus.Collector{
		m.up, m.healthy, m.connsTotal, m.connsActive, m.dialFailures, m.rejected, m.checks, m.checkDuration, m.moved,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := m.registry.Register(c); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	// Every series exists from the start, so a dashboard sees 0, not nothing.
	for _, b := range backends {
		m.up.WithLabelValues(b).Set(0)
		m.connsTotal.WithLabelValues(b)
		m.connsActive.WithLabelValues(b)
		m.dialFailures.WithLabelValues(b)
		m.moved.WithLabelValues(b)
		m.checks.WithLabelValues(b, "success")
		m.checks.WithLabelValues(b, "failure")
	}
	m.rejected.WithLabelValues("limit")
	m.rejected.WithLabelValues("no_backend")
	return m, nil
}
