package apiproxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ferry-k8s/ferry/internal/fileutil"
)

// DefaultDrainTimeout is how long Run waits on stop for connections in
// flight before it closes them. Watches never end by themselves, so this
// is usually the time a stop takes; clients reconnect.
const DefaultDrainTimeout = 10 * time.Second

// Options tune a Proxy beyond its configuration file.
type Options struct {
	// Log receives backend state changes (info and warn) and per
	// connection failures (debug). Nil: discard.
	Log *slog.Logger
	// Notify sends systemd notifications (READY=1 once a backend is
	// healthy, STATUS=, WATCHDOG=1, STOPPING=1). Nil: sd_notify.
	Notify func(state string)
	// DrainTimeout: see DefaultDrainTimeout (used when 0).
	DrainTimeout time.Duration
	// Listener, when set, is used instead of listening on Config.Listen
	// (socket activation, tests). Run closes it.
	Listener net.Listener
	// MetricsListener, when set, is used instead of listening on
	// Config.Metrics.Listen; it needs a metrics section. Run closes it.
	MetricsListener net.Listener
}

// Proxy is the node-local layer-4 proxy to the API servers. Make it with
// New; Run serves.
type Proxy struct {
	s        *settings
	opts     Options
	log      *slog.Logger
	backends []*backend
	m        *metrics
	dialer   *net.Dialer
	metrics  *tls.Config // nil: no metrics endpoint
	sem      chan struct{}
	next     atomic.Uint64 // round-robin start
	started  atomic.Bool

	stateMu   sync.Mutex // serializes state transitions
	ready     chan struct{}
	readyOnce sync.Once

	conns connSet        // open client and backend connections
	wg    sync.WaitGroup // connection handlers
}

// New checks cfg (see Config.Validate), reads the CA file and the metrics
// certificate, and makes a Proxy. Nothing listens before Run.
func New(cfg Config, opts Options) (*Proxy, error) {
	s, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	roots, err := loadCertPool(s.caFile)
	if err != nil {
		return nil, fieldErr("healthCheck.caFile", "%w", err)
	}
	p := &Proxy{
		s:      s,
		opts:   opts,
		log:    opts.Log,
		dialer: &net.Dialer{Timeout: s.dialTimeout},
		sem:    make(chan struct{}, s.maxConnections),
		ready:  make(chan struct{}),
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.opts.Notify == nil {
		p.opts.Notify = func(state string) { _, _ = daemon.SdNotify(false, state) }
	}
	if p.opts.DrainTimeout <= 0 {
		p.opts.DrainTimeout = DefaultDrainTimeout
	}
	if s.metrics != nil {
		if p.metrics, err = metricsTLS(s.metrics); err != nil {
			return nil, err
		}
	} else if opts.MetricsListener != nil {
		return nil, errors.New("a metrics listener was given but the configuration has no metrics section")
	}
	for _, addr := range s.backends {
		p.backends = append(p.backends, newBackend(addr, s, roots))
	}
	if p.m, err = newMetrics(s.backends); err != nil {
		return nil, err
	}
	return p, nil
}

func loadCertPool(file string) (*x509.CertPool, error) {
	data, err := fileutil.ReadFile(file, maxPEMFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", file)
	}
	return pool, nil
}

func metricsTLS(m *MetricsConf) (*tls.Config, error) {
	certPEM, err := fileutil.ReadFile(m.TLSCert, maxPEMFile)
	if err != nil {
		return nil, fieldErr("metrics.tlsCert", "%w", err)
	}
	keyPEM, err := fileutil.ReadFile(m.TLSKey, maxPEMFile)
	if err != nil {
		return nil, fieldErr("metrics.tlsKey", "%w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fieldErr("metrics.tlsCert", "%s with %s: %w", m.TLSCert, m.TLSKey, err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if m.ClientCA != "" {
		pool, err := loadCertPool(m.ClientCA)
		if err != nil {
			return nil, fieldErr("metrics.clientCA", "%w", err)
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// Ready is closed once a backend has been healthy (and READY=1 sent).
func (p *Proxy) Ready() <-chan struct{} { return p.ready }

// Status is every backend's state, in configuration order.
func (p *Proxy) Status() []BackendStatus {
	out := make([]BackendStatus, len(p.backends))
	for i, b := range p.backends {
		b.mu.Lock()
		out[i] = BackendStatus{Address: b.addr, State: b.state, LastError: b.lastErr}
		b.mu.Unlock()
		out[i].ActiveConnections = b.active.Load()
	}
	return out
}

func (p *Proxy) notify(state string) { p.opts.Notify(state) }

// Run listens, checks the backends and proxies client connections until
// ctx is done; then it stops accepting, waits up to the drain timeout for
// connections in flight, closes those left, and returns nil. It returns an
// error when it cannot listen or accepting fails for good. Run runs once.
func (p *Proxy) Run(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return errors.New("apiproxy: Run called twice")
	}
	var lc net.ListenConfig
	ln, mln := p.opts.Listener, p.opts.MetricsListener
	closeAll := func() {
		for _, l := range []net.Listener{ln, mln} {
			if l != nil {
				l.Close()
			}
		}
	}
	if ln == nil {
		var err error
		if ln, err = lc.Listen(ctx, "tcp", p.s.listen); err != nil {
			closeAll()
			return fmt.Errorf("listening on %s: %w", p.s.listen, err)
		}
	}
	if p.metrics != nil && mln == nil {
		var err error
		if mln, err = lc.Listen(ctx, "tcp", p.s.metrics.Listen); err != nil {
			closeAll()
			return fmt.Errorf("listening on %s for metrics: %w", p.s.metrics.Listen, err)
		}
	}
	defer ln.Close()
	var msrv *http.Server
	errc := make(chan error, 1) // the metrics server's
	if p.metrics != nil {
		msrv = &http.Server{
			Handler:           p.metricsHandler(),
			TLSConfig:         p.metrics,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
		}
		go func() {
			if err := msrv.ServeTLS(mln, "", ""); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serving metrics: %w", err)
			}
		}()
	}
	p.notify(fmt.Sprintf("STATUS=0 of %d API servers healthy", len(p.backends)))

	// Health checks stop first on the way out; dials may finish during the
	// drain and are cancelled with the connections left after it.
	healthCtx, stopHealth := context.WithCancel(context.Background())
	dialCtx, stopDials := context.WithCancel(context.Background())
	defer stopDials()
	var checkers sync.WaitGroup
	for _, b := range p.backends {
		checkers.Go(func() { p.healthLoop(healthCtx, b) })
	}
	p.log.Info("API server proxy listening", slog.String("listen", ln.Addr().String()), slog.Any("backends", p.s.backends))

	var stopping atomic.Bool
	acceptDone := make(chan error, 1)
	go func() { acceptDone <- p.accept(dialCtx, ln, &stopping) }()

	var tick <-chan time.Time
	if interval, err := daemon.SdWatchdogEnabled(false); err == nil && interval > 0 {
		t := time.NewTicker(interval / 2)
		defer t.Stop()
		tick = t.C
	}
	var runErr error
	accepting := true
loop:
	for {
		select {
		case <-tick:
			p.notify("WATCHDOG=1")
		case runErr = <-acceptDone:
			accepting = false
			break loop
		case runErr = <-errc:
			break loop
		case <-ctx.Done():
			break loop
		}
	}

	stopping.Store(true)
	ln.Close()
	if accepting {
		<-acceptDone // no new connection handler after this (p.wg.Wait below)
	}
	stopHealth()
	checkers.Wait() // a check cancelled mid-way reports nothing
	p.notify("STOPPING=1")
	if msrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = msrv.Shutdown(sctx)
		cancel()
	}
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	timer := time.NewTimer(p.opts.DrainTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		n := p.conns.closeAll()
		stopDials()
		p.log.Info("drain timeout: closed connections in flight", slog.Duration("drainTimeout", p.opts.DrainTimeout), slog.Int("sockets", n))
		<-done
	}
	p.log.Info("API server proxy stopped")
	return runErr
}

func (p *Proxy) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(p.m.registry, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelWarn)}))
	// 200 once a backend is healthy, like READY=1; 503 while none is.
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		for _, b := range p.backends {
			if b.currentState() == StateHealthy {
				_, _ = io.WriteString(w, "ok\n")
				return
			}
		}
		http.Error(w, "no API server is known healthy", http.StatusServiceUnavailable)
	})
	return mux
}

// accept serves ln until it is closed. Past maxConnections a client is
// closed at once (counted as rejected "limit") rather than left waiting
// in the listen queue.
func (p *Proxy) accept(ctx context.Context, ln net.Listener, stopping *atomic.Bool) error {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if stopping.Load() {
				return nil
			}
			if retryableAccept(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				p.log.Warn("accepting a connection", slog.Any("error", err), slog.Duration("retryIn", backoff))
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("accepting connections: %w", err)
		}
		backoff = 0
		select {
		case p.sem <- struct{}{}:
		default:
			p.m.rejected.WithLabelValues("limit").Inc()
			p.log.Debug("connection refused: limit reached", slog.String("client", c.RemoteAddr().String()), slog.Int("maxConnections", p.s.maxConnections))
			c.Close()
			continue
		}
		p.conns.add(c) // closed by a drain timeout
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer func() { <-p.sem }()
			p.serveConn(ctx, c)
		}()
	}
}

// retryableAccept: out of file descriptors, or a connection that was
// reset before it was accepted.
func retryableAccept(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// serveConn connects a client to the first backend (in p.order) that
// accepts, and splices the two until both sides are done.
func (p *Proxy) serveConn(ctx context.Context, client net.Conn) {
	defer p.conns.remove(client)
	defer client.Close()
	var failed []string
	for _, b := range p.order(p.next.Add(1)) {
		up, err := p.dialer.DialContext(ctx, "tcp", b.addr)
		if err != nil {
			if ctx.Err() != nil {
				return // stopping
			}
			p.log.Debug("dial failed, trying the next API server", slog.String("backend", b.addr), slog.Any("error", err))
			p.m.dialFailures.WithLabelValues(b.addr).Inc()
			p.observe(b, err, "dial")
			failed = append(failed, b.addr)
			continue
		}
		// A drain timeout closes it too; one made just after that sweep is
		// closed at once by splice: its client connection was swept.
		p.conns.add(up)
		b.clients.add(client)
		b.active.Add(1)
		p.m.connsTotal.WithLabelValues(b.addr).Inc()
		p.m.connsActive.WithLabelValues(b.addr).Inc()
		splice(client, up)
		p.m.connsActive.WithLabelValues(b.addr).Dec()
		b.active.Add(-1)
		b.clients.remove(client)
		p.conns.remove(up)
		return
	}
	p.m.rejected.WithLabelValues("no_backend").Inc()
	p.log.Debug("connection closed: no API server accepted it", slog.String("client", client.RemoteAddr().String()), slog.Any("tried", failed))
}

type closeWriter interface{ CloseWrite() error }

// splice copies both ways until both directions are done. A clean EOF
// from one side is passed on as a half-close (the other direction keeps
// flowing: a client may finish sending and still read); an error either
// way tears the pair down. There is no idle timeout: watches are quiet
// for long stretches; TCP keepalives (Go's default on both sockets) find
// dead peers. io.Copy between two TCP connections uses splice(2).
func splice(a, b net.Conn) {
	var wg sync.WaitGroup
	half := func(dst, src net.Conn) {
		defer wg.Done()
		_, err := io.Copy(dst, src)
		if err == nil {
			if cw, ok := dst.(closeWriter); ok && cw.CloseWrite() == nil {
				return
			}
		}
		a.Close()
		b.Close()
	}
	wg.Add(2)
	go half(b, a)
	go half(a, b)
	wg.Wait()
	a.Close()
	b.Close()
}
