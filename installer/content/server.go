package content

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferry-k8s/ferry/signing"
)

// HTTP server limits. Requests are small (pull only: no bodies to speak
// of); responses may be long downloads, so there is no write timeout.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = time.Minute
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 16 << 10
)

// ServerOptions configure a Server.
type ServerOptions struct {
	// ConfigPath is the configuration file, read at start and on every
	// Reload; empty: Flags alone.
	ConfigPath string
	// Flags override the file's fields (see Config.Override).
	Flags Config
	Log   *slog.Logger
	// Registerer for the metrics; nil: a private registry at /metrics.
	Registerer prometheus.Registerer
	// Now is the clock for expiry; nil: time.Now.
	Now func() time.Time
	// Notify sends a systemd notification ("READY=1"); nil: sd_notify
	// (a no-op when not started by systemd).
	Notify func(state string)
}

// Server is the content service's HTTPS server: a Service behind a TLS
// listener, reconfigured by Reload (SIGHUP) and stopped by cancelling
// Run's context (SIGTERM).
//
//	NewServer: config ─▶ keyring, certificate ─▶ listen
//	Run:       serve ─▶ Sync(isos) ─▶ pid file, READY=1 ─▶ { SIGHUP: Reload | watchdog }
//	           ─▶ ctx done: STOPPING=1 ─▶ Shutdown (downloads finish) ─▶ Close bundles
type Server struct {
	opts   ServerOptions
	log    *slog.Logger
	notify func(string)
	svc    *Service
	ln     net.Listener
	srv    *http.Server

	mu       sync.Mutex // guards cfg and serializes Reload
	cfg      *Config
	cert     atomic.Pointer[tls.Certificate]
	clientCA atomic.Pointer[x509.CertPool]
}

// NewServer reads the configuration, the keyring and the certificate and
// starts listening; Run serves.
func NewServer(opts ServerOptions) (*Server, error) {
	s := &Server{opts: opts, log: opts.Log, notify: opts.Notify}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.notify == nil {
		s.notify = func(state string) { _, _ = daemon.SdNotify(false, state) }
	}
	cfg, err := s.loadConfig()
	if err != nil {
		return nil, err
	}
	s.cfg = cfg
	ring, err := signing.LoadKeyringFile(cfg.Path(cfg.Keyring))
	if err != nil {
		return nil, err
	}
	if err := s.loadTLS(cfg); err != nil {
		return nil, err
	}
	s.svc = New(Options{
		Keyring: ring, Now: opts.Now, Log: s.log, Registerer: opts.Registerer, ExternalURL: cfg.ExternalURL,
		OnChange: func(bs []BundleInfo) { s.notify("STATUS=" + statusLine(bs)) },
	})
	ln, err := net.Listen("tcp", cfg.ListenAddr())
	if err != nil {
		s.svc.Close()
		return nil, fmt.Errorf("listening: %w", err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s.svc.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		TLSConfig:         s.tlsConfig(),
	}
	return s, nil
}

// loadConfig reads the file (if any) and applies the flags.
func (s *Server) loadConfig() (*Config, error) {
	cfg := &Config{}
	if s.opts.ConfigPath != "" {
		c, err := LoadConfig(s.opts.ConfigPath)
		if err != nil {
			return nil, err
		}
		cfg = c
	} else {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		cfg.Dir = wd
	}
	cfg.Override(s.opts.Flags)
	if err := cfg.Validate(); err != nil {
		where := "flags"
		if s.opts.ConfigPath != "" {
			where = s.opts.ConfigPath + " and flags"
		}
		return nil, fmt.Errorf("configuration (%s): %w", where, err)
	}
	return cfg, nil
}

// loadTLS reads the certificate, its key and the client CA bundle; the
// running handshakes pick them up at once.
func (s *Server) loadTLS(cfg *Config) error {
	cert, err := tls.LoadX509KeyPair(cfg.Path(cfg.TLSCert), cfg.Path(cfg.TLSKey))
	if err != nil {
		return fmt.Errorf("loading TLS certificate %s and key %s: %w", cfg.Path(cfg.TLSCert), cfg.Path(cfg.TLSKey), err)
	}
	var pool *x509.CertPool
	if cfg.ClientCA != "" {
		pem, err := os.ReadFile(cfg.Path(cfg.ClientCA))
		if err != nil {
			return fmt.Errorf("loading client CA: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("loading client CA %s: no PEM certificate found", cfg.Path(cfg.ClientCA))
		}
	}
	s.cert.Store(&cert)
	s.clientCA.Store(pool)
	return nil
}

// tlsConfig is TLS 1.2 or later, with the certificate and client CA as
// last loaded (a reload needs no restart).
func (s *Server) tlsConfig() *tls.Config {
	getCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cert.Load(), nil }
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: getCert,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			c := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}, GetCertificate: getCert}
			if pool := s.clientCA.Load(); pool != nil {
				c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
			}
			return c, nil
		},
	}
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Service is the server's content service.
func (s *Server) Service() *Service { return s.svc }

// Config returns a copy of the configuration in effect.
func (s *Server) Config() Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := *s.cfg
	c.ISOs = slices.Clone(c.ISOs)
	return c
}

// Reload re-reads the configuration file and the certificate and
// reconciles the served bundles with the configured ISOs (what SIGHUP
// does). A configuration that does not load changes nothing. ISOs that
// fail are refused (and their errors returned, joined); the others serve.
// listen and keyring take effect on restart only.
func (s *Server) Reload(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notify("RELOADING=1")
	defer s.notify("READY=1")
	cfg, err := s.loadConfig()
	if err != nil {
		s.log.Error("reload: configuration refused; keeping the current one", slog.Any("error", err))
		return err
	}
	if cfg.ListenAddr() != s.cfg.ListenAddr() || cfg.Path(cfg.Keyring) != s.cfg.Path(s.cfg.Keyring) {
		s.log.Warn("reload: listen and keyring changes take effect on restart", slog.String("listen", cfg.ListenAddr()), slog.String("keyring", cfg.Path(cfg.Keyring)))
	}
	var errs []error
	if err := s.loadTLS(cfg); err != nil {
		s.log.Error("reload: keeping the current certificate", slog.Any("error", err))
		errs = append(errs, err)
	}
	s.cfg = cfg
	errs = append(errs, s.svc.Sync(ctx, cfg.ISOPaths())...)
	s.log.Info("reloaded", slog.String("status", statusLine(s.svc.Bundles())), slog.Int("refused", len(errs)))
	return errors.Join(errs...)
}

// Run serves until ctx is done, then shuts down gracefully: it stops
// accepting, lets requests in flight (downloads) finish for up to the
// configured shutdownTimeout, and closes the bundles. It starts serving at
// once (/readyz says 503 until bundles are loaded), writes the pid file,
// verifies and loads the configured ISOs (refusing, with a log line, those
// that fail), then tells systemd READY=1. SIGHUP reloads (Reload).
func (s *Server) Run(ctx context.Context) error {
	serveErr := make(chan error, 1)
	ln := &timeoutListener{Listener: s.ln, log: s.log, timeouts: s.svc.m.connTimeouts}
	go func() { serveErr <- s.srv.ServeTLS(ln, "", "") }()
	s.log.Info("listening", slog.String("addr", s.ln.Addr().String()), slog.Bool("client_certificates", s.clientCA.Load() != nil))

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	stopWatchdog := make(chan struct{})
	defer close(stopWatchdog)
	go s.watchdog(stopWatchdog)

	// The pid file first: a SIGHUP sent while the ISOs are verified waits
	// in hup and is handled once they are.
	cfg := s.Config()
	if err := writePIDFile(cfg.PIDPath()); err != nil {
		s.log.Warn("no pid file: `installer bundle add|remove` cannot signal this server", slog.Any("error", err))
	} else {
		defer removePIDFile(cfg.PIDPath())
	}
	s.notify("STATUS=verifying " + strconv.Itoa(len(cfg.ISOs)) + " bundle(s)")
	for _, err := range s.svc.Sync(ctx, cfg.ISOPaths()) {
		s.log.Error("not serving a configured bundle", slog.Any("error", err))
	}
	s.notify("READY=1\nSTATUS=" + statusLine(s.svc.Bundles()))
	s.log.Info("ready", slog.String("status", statusLine(s.svc.Bundles())))

	for {
		select {
		case err := <-serveErr:
			s.svc.Close()
			return fmt.Errorf("serving: %w", err)
		case <-hup:
			s.log.Info("SIGHUP: reloading")
			_ = s.Reload(ctx)
		case <-ctx.Done():
			return s.shutdown(serveErr)
		}
	}
}

// watchdog pings systemd's watchdog at half its interval until stop is
// closed. It runs on its own: a reload verifying a large ISO takes longer
// than the watchdog interval, and the server keeps serving meanwhile.
func (s *Server) watchdog(stop <-chan struct{}) {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil || d <= 0 {
		return
	}
	s.notify("WATCHDOG=1")
	t := time.NewTicker(d / 2)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.notify("WATCHDOG=1")
		}
	}
}

func (s *Server) shutdown(serveErr chan error) error {
	cfg := s.Config()
	timeout := cfg.Shutdown()
	s.notify("STOPPING=1\nSTATUS=stopping: waiting for downloads in flight")
	s.log.Info("stopping: waiting for requests in flight", slog.Duration("timeout", timeout))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.log.Warn("requests still running at the shutdown timeout: closing them", slog.Any("error", err))
		s.srv.Close()
	}
	if e := <-serveErr; e != nil && !errors.Is(e, http.ErrServerClosed) {
		s.log.Warn("server", slog.Any("error", e))
	}
	s.svc.Close()
	s.log.Info("stopped")
	return nil
}

// statusLine is the systemd STATUS= text: "serving 2 bundles: example 1.1.0, example 1.0.0".
func statusLine(bs []BundleInfo) string {
	if len(bs) == 0 {
		return "serving no bundle"
	}
	names := make([]string, len(bs))
	for i, b := range bs {
		names[i] = b.Name + " " + b.Version
	}
	noun := "bundles"
	if len(bs) == 1 {
		noun = "bundle"
	}
	return fmt.Sprintf("serving %d %s: %s", len(bs), noun, strings.Join(names, ", "))
}

// writePIDFile writes "PID STARTTIME": the process and its start time
// (/proc/PID/stat), so that SignalReload signals this process and never
// another that got its pid later.
func writePIDFile(p string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	start, err := processStart(os.Getpid())
	if err != nil {
		return err
	}
	return writeFileAtomic(p, fmt.Appendf(nil, "%d %d\n", os.Getpid(), start))
}

// removePIDFile removes p if it still names this process.
func removePIDFile(p string) {
	data, err := os.ReadFile(p)
	if err != nil {
		return
	}
	if fields := strings.Fields(string(data)); len(fields) > 0 && fields[0] == strconv.Itoa(os.Getpid()) {
		os.Remove(p)
	}
}
