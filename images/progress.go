package images

import (
	"sync"

	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/types"
)

// startProgress wires opts.Progress to copy.Options.Progress and returns the
// function to call once copy.Image has returned (it must not be sent to
// afterwards); on success a final done == total report is made.
func startProgress(name string, total int64, blobs []types.BlobInfo, report func(string, int64, int64), options *copy.Options) func(ok bool) {
	if report == nil {
		return func(bool) {}
	}
	sizes := make(map[string]int64, len(blobs))
	for _, b := range blobs {
		sizes[b.Digest.String()] = b.Size
	}
	ch := make(chan types.ProgressProperties, 64)
	finished := make(chan struct{})
	options.Progress = ch
	options.ProgressInterval = progressInterval
	report(name, 0, total)
	var last int64 // owned by the goroutine until finished is closed
	go func() {
		defer close(finished)
		var done int64
		for p := range ch {
			switch p.Event {
			case types.ProgressEventRead, types.ProgressEventDone:
				done += int64(p.OffsetUpdate)
			case types.ProgressEventSkipped:
				size := p.Artifact.Size
				if size < 0 {
					size = max(sizes[p.Artifact.Digest.String()], 0)
				}
				done += size
			default:
				continue
			}
			if d := min(done, total); d > last {
				last = d
				report(name, d, total)
			}
		}
	}()
	return func(ok bool) {
		close(ch)
		<-finished
		if ok && last < total {
			report(name, total, total)
		}
	}
}

// defaultParallel is containers/image's default of blobs copied at once.
const defaultParallel = 6

// countProgress returns a function that adds bytes done for the image and
// reports the sum to report (never concurrently, never more than total),
// after a first report of 0. It may be called from several goroutines.
func countProgress(name string, total int64, report func(string, int64, int64)) func(int64) {
	if report == nil {
		return func(int64) {}
	}
	var mu sync.Mutex
	var done, last int64
	report(name, 0, total)
	return func(n int64) {
		mu.Lock()
		defer mu.Unlock()
		done += n
		if d := min(done, total); d > last {
			last = d
			report(name, d, total)
		}
	}
}
