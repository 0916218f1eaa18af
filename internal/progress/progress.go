package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	return term.IsTerminal(int(f.Fd()))
}

// Bar is one progress bar. A nil *Bar is valid and draws nothing, so callers
// need no branches.
type Bar struct {
	mu      sync.Mutex
	w       io.Writer
	label   string
	total   int64
	done    int64
	start   time.Time
	last    time.Time
	now     func() time.Time
	minStep time.Duration
}

// New returns a bar writing to w, or nil when enabled is false.
func New(w io.Writer, enabled bool, label string, total int64) *Bar {
	if !enabled {
		return nil
	}
	b := &Bar{w: w, label: label, total: total, now: time.Now, minStep: 100 * time.Millisecond}
	b.start = b.now()
	return b
}

// Set records absolute progress.
func (b *Bar) Set(done, total int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done, b.total = done, total
	b.drawLocked(false)
}

// Add records n more units done; safe for concurrent use.
func (b *Bar) Add(n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	b.drawLocked(false)
}

// Finish draws the final state and ends the line.
func (b *Bar) Finish() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.drawLocked(true)
	fmt.Fprintln(b.w)
}

func (b *Bar) drawLocked(force bool) {
	now := b.now()
	if !force && now.Sub(b.last) < b.minStep {
		return
	}
	b.last = now
	fmt.Fprint(b.w, "\r"+Render(b.label, b.done, b.total, now.Sub(b.start), 30)+"\x1b[K")
}

// Render formats one bar line: label, bar, percentage, bytes and rate.
func Render(label string, done, total int64, elapsed time.Duration, width int) string {
	frac := 0.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	frac = min(max(frac, 0), 1)
	filled := int(frac * float64(width))
	bar := strings.Repeat("=", filled)
	if filled < width {
		bar += ">" + strings.Repeat(" ", width-filled-1)
	}
	rate := ""
	if s := elapsed.Seconds(); s > 0.2 {
		rate = " " + Bytes(int64(float64(done)/s)) + "/s"
	}
	return fmt.Sprintf("%-22s [%s] %3.0f%% %s/%s%s", label, bar, frac*100, Bytes(done), Bytes(total), rate)
}

// Bytes formats a byte count with binary units.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
