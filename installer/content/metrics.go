package content

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the service's Prometheus collectors. Their names are part of
// the interface (dashboards and alerts use them):
//
//	ferry_content_requests_total{route,code}          HTTP requests served
//	ferry_content_response_bytes_total{route}         body bytes written
//	ferry_content_requests_in_flight                  requests being served
//	ferry_content_digest_failures_total               reads refused: the ISO changed after verification
//	ferry_content_bundles_served{name,version}        1 per served bundle
//	ferry_content_bundle_expiry_timestamp_seconds{name,version}  end of validity (extensions included)
//	ferry_content_bundles_open                        ISO files open (served, or draining downloads)
//	ferry_content_bundles_refused_total               ISOs refused by Add/Sync
//	ferry_content_bundles_expired                     served bundles past their validity (served still)
//	ferry_content_verification_duration_seconds       time to verify and index one ISO
//	ferry_content_connection_timeouts_total           connections closed because a read deadline passed
type metrics struct {
	requests       *prometheus.CounterVec
	bytes          *prometheus.CounterVec
	inFlight       prometheus.Gauge
	digestFailures prometheus.Counter
	bundles        *prometheus.GaugeVec
	expiry         *prometheus.GaugeVec
	open           prometheus.Gauge
	refused        prometheus.Counter
	expired        prometheus.Gauge
	verifySeconds  prometheus.Histogram
	connTimeouts   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_content_requests_total", Help: "HTTP requests served, by route and status code.",
		}, []string{"route", "code"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_content_response_bytes_total", Help: "Response body bytes written, by route.",
		}, []string{"route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ferry_content_requests_in_flight", Help: "Requests being served.",
		}),
		digestFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_content_digest_failures_total",
			Help: "Reads refused because ISO content no longer matched what was verified (the response was aborted).",
		}),
		bundles: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ferry_content_bundles_served", Help: "1 for each bundle being served.",
		}, []string{"name", "version"}),
		expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ferry_content_bundle_expiry_timestamp_seconds", Help: "When each served bundle's validity ends (Unix time), validity extensions included. Alert well before it.",
		}, []string{"name", "version"}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ferry_content_bundles_open", Help: "Bundle ISO files held open: served ones and withdrawn ones with downloads still running.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_content_bundles_refused_total", Help: "Bundle ISOs refused (verification or indexing failed, or a version conflict).",
		}),
		expired: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ferry_content_bundles_expired",
			Help: "Served bundles whose validity has ended: served still (installed content is never withdrawn), but no node can newly join or upgrade to them until they are extended.",
		}),
		verifySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ferry_content_verification_duration_seconds",
			Help:    "Time to verify (signature, every file's sha256) and index one bundle ISO.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14), // 50 ms … 7 min
		}),
		connTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_content_connection_timeouts_total",
			Help: "Connections closed because a read deadline passed: a TLS handshake or request header slower than 10 s (slowloris), a request slower than 1 min, or a keep-alive connection idle for 2 min.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.bytes, m.inFlight, m.digestFailures, m.bundles, m.expiry, m.open, m.refused, m.expired, m.verifySeconds, m.connTimeouts} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("registering metrics: %w (one Service per registry)", err)
			}
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	return m, nil
}

// setBundles makes the per-bundle gauges show exactly bs.
func (m *metrics) setBundles(bs []*served) {
	m.bundles.Reset()
	m.expiry.Reset()
	for _, b := range bs {
		m.bundles.WithLabelValues(b.info.Name, b.info.Version).Set(1)
		m.expiry.WithLabelValues(b.info.Name, b.info.Version).Set(float64(b.info.ValidUntil.Unix()))
	}
}
