package content

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ferry-k8s/ferry/bundle/validity"
	"github.com/ferry-k8s/ferry/bundle/verify"
	"github.com/ferry-k8s/ferry/signing"
)

// ErrNotServed is returned by Remove for a path or version not served.
var ErrNotServed = errors.New("no such bundle is served")

// DefaultExpiryCheck is how often served bundles' validity is checked
// (for logs and metrics; nothing is withdrawn) when Options.ExpiryCheck is
// zero.
const DefaultExpiryCheck = time.Minute

// Options configure a Service.
type Options struct {
	// Keyring holds the keys bundles must be signed with (required).
	Keyring *signing.Keyring
	// Now is the clock for validity checks; nil: time.Now.
	Now func() time.Time
	// Log receives the service's events; nil: discarded.
	Log *slog.Logger
	// Registerer receives the metrics. Nil: a private registry (with the Go
	// runtime and process collectors), served at /metrics. When it is also a prometheus.Gatherer (a
	// *prometheus.Registry is), /metrics serves it; otherwise /metrics is
	// left to the caller.
	Registerer prometheus.Registerer
	// ExternalURL is the base URL clients reach the service at
	// ("https://repo.example.internal:5443"), written into .repo files.
	// Empty: https://<Host header of the request>.
	ExternalURL string
	// ExpiryCheck is how often bundles' validity is checked (besides on
	// every Sync); zero: DefaultExpiryCheck.
	ExpiryCheck time.Duration
	// OnChange, if set, is called with the served bundles (newest first)
	// after every change. It runs with the service's write lock held: it
	// must not call Add, Remove, Sync or Close.
	OnChange func([]BundleInfo)
}

// Service serves the registry and yum repositories of every verified
// bundle it holds. Its methods are safe for concurrent use.
//
//	Add/Sync ─▶ verify.OpenVerified ─▶ loadBundle (indexes) ─▶ publish
//	publish: new immutable snapshot ─▶ atomic.Pointer ◀─ every request
//	Remove/Sync ─▶ publish without it ─▶ close when the last reader closes
//	expiry timer ─▶ CheckValidity: warns and sets metrics, withdraws nothing
type Service struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	m       *metrics
	gather  prometheus.Gatherer
	armored []byte // the keyring, served at /keys/ferry.pub.asc
	baseURL string // from ExternalURL, no trailing slash

	cur     atomic.Pointer[snapshot]
	mu      sync.Mutex // serializes changes to the served set
	syncMu  sync.Mutex // serializes Syncs
	closed  bool
	openISO atomic.Int64

	handler http.Handler
	stop    chan struct{}
	done    chan struct{}
}

// New makes a Service serving nothing yet. It panics when opts.Keyring is
// nil, opts.ExternalURL is not an https URL, or the metrics cannot be
// registered (as prometheus.MustRegister does): those are programming
// errors, configuration is checked before (see Config.Validate).
// Close stops its expiry timer and releases the bundles.
func New(opts Options) *Service {
	if opts.Keyring == nil {
		panic("content.New: no keyring")
	}
	s := &Service{opts: opts, log: opts.Log, now: opts.Now, stop: make(chan struct{}), done: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if opts.ExternalURL != "" {
		base, err := checkExternalURL(opts.ExternalURL)
		if err != nil {
			panic("content.New: " + err.Error())
		}
		s.baseURL = base
	}
	reg := opts.Registerer
	if reg == nil {
		r := prometheus.NewRegistry()
		r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		reg, s.gather = r, r
	} else if g, ok := reg.(prometheus.Gatherer); ok {
		s.gather = g
	}
	m, err := newMetrics(reg)
	if err != nil {
		panic("content.New: " + err.Error())
	}
	s.m = m
	armored, err := opts.Keyring.Armored()
	if err != nil {
		panic("content.New: " + err.Error())
	}
	s.armored = armored
	s.cur.Store(newSnapshot(nil))
	s.handler = s.newHandler()
	interval := opts.ExpiryCheck
	if interval <= 0 {
		interval = DefaultExpiryCheck
	}
	go s.expiryLoop(interval)
	return s
}

// checkExternalURL accepts "https://host[:port][/prefix]" and returns it
// without a trailing slash.
func checkExternalURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("external URL %q: %w", s, err)
	}
	if u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(s, " \t\r\n") {
		return "", fmt.Errorf("external URL %q: want https://host[:port][/path], nothing else", s)
	}
	return strings.TrimRight(s, "/"), nil
}

func (s *Service) expiryLoop(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.CheckValidity()
		}
	}
}

// Add verifies the ISO at isoPath (signature, every file) and indexes it,
// then publishes it atomically. It refuses, with an error naming the ISO
// and the problem, a bundle that fails verification or indexing, or whose
// version another ISO already serves. What the service is given is
// installed content: an expired bundle is served (and warned about, see
// CheckValidity); refusing new imports of expired bundles is the job of
// the commands that import (CheckISO). A validity statement beside the
// ISO (validity.Beside) extends the bundle. Adding a path that is served
// and unchanged on disk (same file, size and mtime, and the same
// statement) does nothing; a changed one is verified again and replaces
// the old.
func (s *Service) Add(ctx context.Context, isoPath string) (BundleInfo, error) {
	return s.add(ctx, isoPath, nil)
}

// add is Add; a served bundle of the same version for which replaceable
// returns true is replaced instead of being a conflict.
func (s *Service) add(ctx context.Context, isoPath string, replaceable func(*served) bool) (BundleInfo, error) {
	abs, err := filepath.Abs(isoPath)
	if err != nil {
		return BundleInfo{}, fmt.Errorf("refusing bundle %s: %w", isoPath, err)
	}
	id, err := statID(abs)
	if err != nil {
		s.m.refused.Inc()
		return BundleInfo{}, fmt.Errorf("refusing bundle %s: %w", abs, err)
	}
	vid, _ := statID(validity.Beside(abs)) // none: the zero fileID
	for _, b := range s.cur.Load().bundles {
		if b.info.Path == abs && b.id.same(id) && b.validityID.same(vid) {
			return b.infoCopy(), nil
		}
	}
	now := s.now()
	start := time.Now()
	vb, _, err := verify.OpenVerified(ctx, abs, s.opts.Keyring, verify.Options{Now: now, Installed: true})
	if err != nil {
		s.m.refused.Inc()
		return BundleInfo{}, fmt.Errorf("refusing bundle %s: %w", abs, err)
	}
	b, err := loadBundle(vb, s.opts.Keyring, now, true)
	took := time.Since(start)
	s.m.verifySeconds.Observe(took.Seconds())
	if err != nil {
		vb.Close()
		s.m.refused.Inc()
		return BundleInfo{}, fmt.Errorf("refusing bundle %s: %w", abs, err)
	}
	b.id, b.validityID = id, vid
	b.info.Verified = now
	b.onClose = s.bundleClosed
	b.refs.Store(1)
	s.openISO.Add(1)
	s.m.open.Set(float64(s.openISO.Load()))

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		b.unpublish()
		return BundleInfo{}, errors.New("content service is closed")
	}
	var keep, drop []*served
	for _, o := range s.cur.Load().bundles {
		switch {
		case o.info.Path == abs:
			drop = append(drop, o)
		case o.info.Version == b.info.Version && replaceable != nil && replaceable(o):
			drop = append(drop, o)
		case o.info.Version == b.info.Version:
			b.unpublish()
			s.m.refused.Inc()
			return BundleInfo{}, fmt.Errorf("refusing bundle %s: version %s is already served from %s (remove it first)", abs, b.info.Version, o.info.Path)
		default:
			keep = append(keep, o)
		}
	}
	s.publishLocked(append(keep, b))
	for _, o := range drop {
		s.log.Info("bundle replaced", slog.String("iso", o.info.Path), slog.String("version", o.info.Version), slog.String("by", abs))
		o.unpublish()
	}
	s.log.Info("bundle published", slog.String("iso", abs), slog.String("name", b.info.Name), slog.String("version", b.info.Version),
		slog.Int("images", len(b.info.Images)), slog.Int("repositories", len(b.info.Repositories)),
		slog.Time("expires", b.info.Expires), slog.Time("valid_until", b.info.ValidUntil), slog.String("signer", b.info.Signer), slog.Duration("verified_in", took))
	for _, w := range vb.Warnings {
		s.log.Warn("bundle validity", slog.String("iso", abs), slog.String("version", b.info.Version), slog.String("warning", w))
	}
	// Those warnings said it already: CheckValidity does not again.
	if b.info.Expired {
		b.warnedExpired.Store(true)
	} else if b.info.ValidUntil.Sub(now) < verify.WarnBefore {
		b.warnedSoon.Store(true)
	}
	return b.infoCopy(), nil
}

func (s *Service) bundleClosed(b *served, err error) {
	n := s.openISO.Add(-1)
	s.m.open.Set(float64(n))
	if err != nil {
		s.log.Warn("closing bundle ISO", slog.String("iso", b.info.Path), slog.Any("error", err))
		return
	}
	s.log.Debug("bundle ISO closed", slog.String("iso", b.info.Path), slog.String("version", b.info.Version))
}

// publishLocked swaps in a snapshot of bs; s.mu is held.
func (s *Service) publishLocked(bs []*served) {
	snap := newSnapshot(bs)
	s.cur.Store(snap)
	s.m.setBundles(snap.bundles)
	if s.opts.OnChange != nil {
		s.opts.OnChange(infos(snap.bundles))
	}
}

func infos(bs []*served) []BundleInfo {
	out := make([]BundleInfo, len(bs))
	for i, b := range bs {
		out[i] = b.infoCopy()
	}
	return out
}

// Remove withdraws the bundle served from a path, or of a version. New
// requests no longer see it at once; downloads in flight finish, and the
// ISO file is closed when the last of them does.
func (s *Service) Remove(isoPathOrVersion string) error {
	abs, _ := filepath.Abs(isoPathOrVersion)
	s.mu.Lock()
	defer s.mu.Unlock()
	var keep, drop []*served
	for _, b := range s.cur.Load().bundles {
		if b.info.Version == isoPathOrVersion || b.info.Path == isoPathOrVersion || b.info.Path == abs {
			drop = append(drop, b)
		} else {
			keep = append(keep, b)
		}
	}
	if len(drop) == 0 {
		return fmt.Errorf("removing %s: %w", isoPathOrVersion, ErrNotServed)
	}
	s.publishLocked(keep)
	for _, b := range drop {
		s.log.Info("bundle withdrawn", slog.String("iso", b.info.Path), slog.String("version", b.info.Version))
		b.unpublish()
	}
	return nil
}

// Sync makes the served set exactly the ISOs of isoPaths (used at start and
// on reload): new ones are verified and added, changed ones (or ones whose
// validity statement changed) verified again, unlisted ones withdrawn;
// expired ones are served still (CheckValidity warns). An ISO that fails is
// refused and logged and its error returned (one per failing ISO, each
// naming it); the others keep serving. A listed ISO whose version is
// served from an unlisted path replaces it without a gap.
func (s *Service) Sync(ctx context.Context, isoPaths []string) []error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	want := map[string]bool{}
	var order []string
	for _, p := range isoPaths {
		abs, err := filepath.Abs(p)
		if err != nil {
			abs = p
		}
		if !want[abs] {
			want[abs] = true
			order = append(order, abs)
		}
	}
	var errs []error
	ok := map[string]bool{}
	unlisted := func(b *served) bool { return !want[b.info.Path] }
	for _, p := range order {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("refusing bundle %s: %w", p, err))
			continue
		}
		if _, err := s.add(ctx, p, unlisted); err != nil {
			s.log.Error("bundle refused", slog.String("iso", p), slog.Any("error", err))
			errs = append(errs, err)
			continue
		}
		ok[p] = true
	}
	s.mu.Lock()
	var keep, drop []*served
	for _, b := range s.cur.Load().bundles {
		if ok[b.info.Path] {
			keep = append(keep, b)
		} else {
			drop = append(drop, b)
		}
	}
	if len(drop) > 0 {
		s.publishLocked(keep)
	}
	s.mu.Unlock()
	for _, b := range drop {
		s.log.Info("bundle withdrawn", slog.String("iso", b.info.Path), slog.String("version", b.info.Version))
		b.unpublish()
	}
	s.CheckValidity()
	return errs
}

// CheckValidity looks at every served bundle's validity at Options.Now; it
// runs on every Sync and on a timer. A bundle whose validity ended keeps
// being served: it is installed, and freeze protection is about refusing
// stale *new* content, never about switching off what runs (a cluster must
// not take itself down because of a date). It is logged once (and once
// when fewer than verify.WarnBefore are left), counted in
// ferry_content_bundles_expired and named by /readyz, so alerting fires
// well before the date (ferry_content_bundle_expiry_timestamp_seconds).
func (s *Service) CheckValidity() {
	now := s.now()
	expired := 0
	for _, b := range s.cur.Load().bundles {
		until := b.info.ValidUntil
		switch {
		case !now.Before(until):
			expired++
			if b.warnedExpired.CompareAndSwap(false, true) {
				s.log.Warn("bundle validity ended: still served, as installed; no node can newly join or upgrade to it until it is extended (builder extend, installer bundle extend)",
					slog.String("iso", b.info.Path), slog.String("version", b.info.Version), slog.Time("valid_until", until))
			}
		case until.Sub(now) < verify.WarnBefore:
			if b.warnedSoon.CompareAndSwap(false, true) {
				s.log.Warn("bundle validity ends soon: extend it (builder extend, installer bundle extend) or roll out a newer bundle",
					slog.String("iso", b.info.Path), slog.String("version", b.info.Version), slog.Time("valid_until", until),
					slog.Int("days_left", int(until.Sub(now).Hours()/24)))
			}
		}
	}
	s.m.expired.Set(float64(expired))
}

// Bundles lists the served bundles, newest version first.
func (s *Service) Bundles() []BundleInfo {
	return infos(s.cur.Load().bundles)
}

// Close stops serving every bundle (their files close as their last
// downloads finish) and stops the expiry timer. The handler then answers
// 404 for content and 503 for /readyz.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	bs := s.cur.Load().bundles
	s.publishLocked(nil)
	s.mu.Unlock()
	for _, b := range bs {
		b.unpublish()
	}
	close(s.stop)
	<-s.done
	return nil
}

// acquire finds a bundle in the current snapshot with find and takes a
// reference on it. A bundle withdrawn between the lookup and the reference
// is looked up again in the newer snapshot.
func acquire[T any](s *Service, find func(*snapshot) (*served, T, bool)) (*served, T, bool) {
	for range 3 {
		b, v, ok := find(s.cur.Load())
		if !ok {
			return nil, v, false
		}
		if b.acquire() {
			return b, v, true
		}
	}
	var zero T
	return nil, zero, false
}

// servedVersions lists "name version" of bs for messages.
func servedVersions(bs []*served) string {
	var out []string
	for _, b := range bs {
		out = append(out, b.info.Name+" "+b.info.Version)
	}
	return strings.Join(out, ", ")
}
