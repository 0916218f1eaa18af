package bundle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"runtime"
	"sort"
	"sync"
)

// HashJob is one file to hash. Size is a hint used to start the largest
// files first, so that parallel workers finish together.
type HashJob struct {
	Path string
	Size int64
	Open func() (io.ReadCloser, error)
	// Chunks asks for the sha256 of every ChunkSize piece as well, so that
	// a reader can later check any part of the file on its own.
	Chunks bool
}

// ChunkSize is the unit of piecewise verification (see HashJob.Chunks).
const ChunkSize = 1 << 20

// HashResult is the outcome of one HashJob.
type HashResult struct {
	Path   string
	Size   int64 // bytes actually read
	SHA256 string
	Chunks [][sha256.Size]byte // with HashJob.Chunks: one sum per ChunkSize piece
	Err    error
}

// hashBufSize is large enough that syscalls do not dominate on fast disks;
// it is one chunk, so chunk sums fall out of the same reads.
const hashBufSize = ChunkSize

// HashFiles hashes jobs with sha256 on workers goroutines (0: one per CPU)
// and returns the results in the order of jobs. progress, if set, is called
// with the number of bytes read since its last call; it must be safe for
// concurrent use.
func HashFiles(ctx context.Context, jobs []HashJob, workers int, progress func(n int64)) []HashResult {
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	order := make([]int, len(jobs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return jobs[order[a]].Size > jobs[order[b]].Size })

	results := make([]HashResult, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, max(len(jobs), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, hashBufSize)
			for i := range next {
				results[i] = hashOne(ctx, jobs[i], buf, progress)
			}
		}()
	}
	for _, i := range order {
		next <- i
	}
	close(next)
	wg.Wait()
	return results
}

func hashOne(ctx context.Context, j HashJob, buf []byte, progress func(int64)) HashResult {
	res := HashResult{Path: j.Path}
	if err := ctx.Err(); err != nil {
		res.Err = err
		return res
	}
	r, err := j.Open()
	if err != nil {
		res.Err = fmt.Errorf("opening %s: %w", j.Path, err)
		return res
	}
	defer r.Close()
	h := sha256.New()
	for {
		// Full chunks (short only at the end), so chunk sums line up.
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			h.Write(buf[:n])
			if j.Chunks {
				res.Chunks = append(res.Chunks, sha256.Sum256(buf[:n]))
			}
			res.Size += int64(n)
			if progress != nil {
				progress(int64(n))
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			res.Err = fmt.Errorf("reading %s: %w", j.Path, err)
			return res
		}
		if err := ctx.Err(); err != nil {
			res.Err = err
			return res
		}
	}
	res.SHA256 = hex.EncodeToString(h.Sum(nil))
	return res
}
