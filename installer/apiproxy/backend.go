package apiproxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// State is what the proxy knows of a backend.
type State int

// States of a backend. Every backend starts Unknown; HealthyThreshold
// successful checks in a row make it Healthy, UnhealthyThreshold failures
// in a row (failed checks and failed dials alike) make it Unhealthy.
const (
	StateUnknown State = iota
	StateHealthy
	StateUnhealthy
)

func (s State) String() string {
	switch s {
	case StateHealthy:
		return "healthy"
	case StateUnhealthy:
		return "unhealthy"
	}
	return "unknown"
}

// BackendStatus is one backend's state, for Status.
type BackendStatus struct {
	Address string
	State   State
	// ActiveConnections are the client connections proxied to it now.
	ActiveConnections int64
	// LastError is the last failed check or dial ("" after a success).
	LastError string
}

type backend struct {
	addr   string
	client *http.Client // health checks
	active atomic.Int64

	clients connSet // client connections proxied to it now

	mu        sync.Mutex
	state     State
	successes int // in a row
	failures  int // in a row
	lastErr   string
}

// newBackend makes a backend with its health-check client: TLS 1.2+, the
// API servers' CA, serverName (default: the backend's host), no proxy from
// the environment, no redirects, a new connection for every check (a
// check must exercise what a client does: connect and handshake).
func newBackend(addr string, s *settings, roots *x509.CertPool) *backend {
	name := s.serverName
	if name == "" {
		name, _, _ = net.SplitHostPort(addr)
	}
	dialer := &net.Dialer{Timeout: s.dialTimeout}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: roots, ServerName: name, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    s.timeout,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: maxHealthBodySize,
		ResponseHeaderTimeout:  s.timeout,
	}
	return &backend{
		addr: addr,
		client: &http.Client{
			Transport:     tr,
			Timeout:       s.timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// check GETs the health path once: healthy is HTTP 200.
func (b *backend) check(ctx context.Context, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+b.addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxHealthBodySize))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return nil
}

// healthLoop checks b at once, then Interval after each check ends, until
// ctx is done.
func (p *Proxy) healthLoop(ctx context.Context, b *backend) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, p.s.timeout)
		err := b.check(cctx, p.s.path)
		cancel()
		if ctx.Err() != nil {
			return // stopping: not the backend's fault
		}
		p.m.checkDuration.WithLabelValues(b.addr).Observe(time.Since(start).Seconds())
		if err != nil {
			p.m.checks.WithLabelValues(b.addr, "failure").Inc()
		} else {
			p.m.checks.WithLabelValues(b.addr, "success").Inc()
		}
		p.observe(b, err, "health check")
		t.Reset(p.s.interval)
	}
}

// observe counts a check's or a dial's outcome (err nil: success; only
// health checks report successes) and moves b to a new state when a
// threshold is reached.
func (p *Proxy) observe(b *backend, err error, via string) {
	// One transition at a time, so that logs and gauges follow the order
	// of the changes.
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	b.mu.Lock()
	from := b.state
	if err == nil {
		b.successes++
		b.failures = 0
		b.lastErr = ""
		if b.state != StateHealthy && b.successes >= p.s.healthyThreshold {
			b.state = StateHealthy
		}
	} else {
		b.failures++
		b.successes = 0
		b.lastErr = err.Error()
		if b.state != StateUnhealthy && b.failures >= p.s.unhealthyThreshold {
			b.state = StateUnhealthy
		}
	}
	to, lastErr := b.state, b.lastErr
	b.mu.Unlock()
	if from == to {
		return
	}
	p.stateChanged(b, from, to, lastErr, via)
}

// stateChanged logs a transition, updates the gauges and tells systemd;
// p.stateMu is held.
func (p *Proxy) stateChanged(b *backend, from, to State, lastErr, via string) {
	up := 0.0
	if to == StateHealthy {
		up = 1
	}
	p.m.up.WithLabelValues(b.addr).Set(up)
	healthy := 0
	for _, o := range p.backends {
		if o.currentState() == StateHealthy {
			healthy++
		}
	}
	p.m.healthy.Set(float64(healthy))
	attrs := []any{slog.String("backend", b.addr), slog.String("from", from.String()), slog.Int("healthy", healthy), slog.Int("backends", len(p.backends))}
	if to == StateHealthy {
		p.log.Info("API server healthy", attrs...)
	} else {
		p.log.Warn("API server "+to.String(), append(attrs, slog.String("via", via), slog.String("error", lastErr))...)
	}
	if healthy == 0 && from == StateHealthy {
		p.log.Warn("no API server is known healthy: connections try every one")
	}
	if to == StateUnhealthy && healthy > 0 {
		// Its clients move: a client keeps its connection (HTTP/2, a
		// watch) for as long as it stays open, and one open to an API
		// server that cannot serve (its etcd member restarting, shutting
		// down) would wait for its own timeouts; a kubelet's lease would
		// lapse meanwhile. Closed, they reconnect to a healthy one. With
		// no healthy API server there is nowhere better: they stay.
		if n := b.clients.closeAll(); n > 0 {
			p.m.moved.WithLabelValues(b.addr).Add(float64(n))
			p.log.Info("client connections moved off an unhealthy API server", slog.String("backend", b.addr), slog.Int("connections", n))
		}
	}
	p.notify(fmt.Sprintf("STATUS=%d of %d API servers healthy", healthy, len(p.backends)))
	if healthy > 0 {
		p.readyOnce.Do(func() {
			close(p.ready)
			p.notify("READY=1")
		})
	}
}

func (b *backend) currentState() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// order is the order in which a new connection tries the backends: the
// healthy ones first, then those with no verdict yet, then the unhealthy
// ones (so that with none healthy every backend is tried: the API servers
// may be starting); within a group, fewest active connections first, ties
// broken round-robin from start.
func (p *Proxy) order(start uint64) []*backend {
	n := len(p.backends)
	type cand struct {
		b      *backend
		group  int
		active int64
		rot    int
	}
	cs := make([]cand, n)
	for i, b := range p.backends {
		g := 0
		switch b.currentState() {
		case StateUnknown:
			g = 1
		case StateUnhealthy:
			g = 2
		}
		cs[i] = cand{b: b, group: g, active: b.active.Load(), rot: (i - int(start%uint64(n)) + n) % n}
	}
	slices.SortFunc(cs, func(x, y cand) int {
		if x.group != y.group {
			return x.group - y.group
		}
		if x.active != y.active {
			if x.active < y.active {
				return -1
			}
			return 1
		}
		return x.rot - y.rot
	})
	out := make([]*backend, n)
	for i, c := range cs {
		out[i] = c.b
	}
	return out
}
