package nodeagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/ferry-k8s/ferry/installer/bootstrap"
)

// DefaultSocket is where the node daemon listens: a Unix socket only root
// can reach (the directory is 0700), so no TLS or token is needed on it.
const DefaultSocket = "/run/ferry/node/node.sock"

// Options configure `installer daemon`.
type Options struct {
	// Socket is the Unix socket to serve on (DefaultSocket).
	Socket string
	// Apply is what a POST /apply runs (bootstrap.Run with the node's
	// options).
	Apply bootstrap.Options
	Log   *slog.Logger
	// Notify sends systemd notifications; nil: sd_notify.
	Notify func(state string)
	// Watch follows roll-outs: the daemon reads its Node's desired
	// bundle version every WatchInterval and converges to it.
	Watch         bool
	WatchInterval time.Duration
	// MaintenanceInterval is how often a watching daemon applies the node
	// on its own (certificate renewals, drift); DefaultMaintenanceInterval
	// when zero.
	MaintenanceInterval time.Duration
}

// Daemon is the node daemon: it runs `apply` on demand, one at a time, and
// serves the node's status, over a Unix socket:
//
//	GET  /status  the node's status (ReadStatus) and the last result
//	POST /apply   converge now; 200 with the result, 409 while one runs,
//	              500 with the failed step
//
// Type=notify: READY=1 once listening, WATCHDOG=1 while serving,
// STOPPING=1 on the way out.
type Daemon struct {
	opts Options
	log  *slog.Logger
	mu   sync.Mutex // one apply at a time
	// lastMaintenance is when maintain last applied the node (the
	// daemon's start counts: the node was applied to become one).
	lastMaintenance time.Time
	last            struct {
		sync.Mutex
		res *bootstrap.Result
		err string
		at  time.Time
	}
}

// now is the daemon's clock for validity checks: its apply options' Now,
// else the system's.
func (d *Daemon) now() time.Time {
	if d.opts.Apply.Now != nil {
		return d.opts.Apply.Now()
	}
	return time.Now()
}

// New makes a daemon; Serve runs it.
func New(o Options) *Daemon {
	if o.Socket == "" {
		o.Socket = DefaultSocket
	}
	if o.Notify == nil {
		o.Notify = func(state string) { _, _ = daemon.SdNotify(false, state) }
	}
	d := &Daemon{opts: o, log: o.Log, lastMaintenance: time.Now()}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	return d
}

// Handler is the daemon's HTTP API.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		st, err := ReadStatus(r.Context(), d.opts.Apply.Root)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		d.last.Lock()
		body := struct {
			*Status
			LastResult *bootstrap.Result `json:"lastResult,omitempty"`
			LastError  string            `json:"lastError,omitempty"`
			LastAt     time.Time         `json:"lastAt,omitzero"`
		}{st, d.last.res, d.last.err, d.last.at}
		d.last.Unlock()
		writeJSON(w, http.StatusOK, body)
	})
	mux.HandleFunc("POST /apply", func(w http.ResponseWriter, r *http.Request) {
		if !d.mu.TryLock() {
			http.Error(w, "an apply is already running", http.StatusConflict)
			return
		}
		defer d.mu.Unlock()
		o := d.opts.Apply
		o.DryRun = r.URL.Query().Get("dryRun") == "true"
		res, err := bootstrap.Run(r.Context(), o)
		d.recordResult(res, err)
		if err != nil {
			d.log.Error("apply failed", slog.Any("error", err))
			writeJSON(w, http.StatusInternalServerError, map[string]any{"error": err.Error(), "result": res})
			return
		}
		d.log.Info("applied", slog.Int("changes", res.Changes))
		writeJSON(w, http.StatusOK, res)
	})
	return mux
}

func (d *Daemon) recordResult(res *bootstrap.Result, err error) {
	d.last.Lock()
	defer d.last.Unlock()
	d.last.res, d.last.at, d.last.err = res, time.Now().UTC(), ""
	if err != nil {
		d.last.err = err.Error()
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// tryApply applies the node unless an apply runs already (ran false), and
// records the result for GET /status.
func (d *Daemon) tryApply(ctx context.Context) (res *bootstrap.Result, ran bool, err error) {
	if !d.mu.TryLock() {
		return nil, false, nil
	}
	res, err = bootstrap.Run(ctx, d.opts.Apply)
	d.mu.Unlock()
	d.recordResult(res, err)
	return res, true, err
}

// Serve listens on the socket and serves until ctx is done.
func (d *Daemon) Serve(ctx context.Context) error {
	dir := filepath.Dir(d.opts.Socket)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	if err := os.Remove(d.opts.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing a stale socket: %w", err)
	}
	ln, err := net.Listen("unix", d.opts.Socket)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	d.opts.Notify("READY=1")
	if d.opts.Watch {
		go d.watch(ctx)
	}
	d.log.Info("node daemon listening", slog.String("socket", d.opts.Socket))
	var tick <-chan time.Time
	if interval, err := daemon.SdWatchdogEnabled(false); err == nil && interval > 0 {
		t := time.NewTicker(interval / 2)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-tick:
			d.opts.Notify("WATCHDOG=1")
		case err := <-errc:
			return err
		case <-ctx.Done():
			d.opts.Notify("STOPPING=1")
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
			return nil
		}
	}
}
