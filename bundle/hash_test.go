package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
)

func TestHashFiles(t *testing.T) {
	data := map[string][]byte{"a": []byte("alpha"), "b": bytes.Repeat([]byte("b"), 3<<20), "c": nil}
	var jobs []HashJob
	for _, p := range []string{"a", "b", "c", "missing"} {
		jobs = append(jobs, HashJob{Path: p, Size: int64(len(data[p])), Open: func() (io.ReadCloser, error) {
			d, ok := data[p]
			if !ok {
				return nil, errors.New("no such file")
			}
			return io.NopCloser(bytes.NewReader(d)), nil
		}})
	}
	var seen atomic.Int64
	res := HashFiles(context.Background(), jobs, 3, func(n int64) { seen.Add(n) })
	for i, p := range []string{"a", "b", "c"} {
		sum := sha256.Sum256(data[p])
		if res[i].Path != p || res[i].Err != nil || res[i].SHA256 != hex.EncodeToString(sum[:]) || res[i].Size != int64(len(data[p])) {
			t.Errorf("%s: %+v", p, res[i])
		}
	}
	if res[3].Err == nil || !strings.Contains(res[3].Err.Error(), "missing") {
		t.Errorf("missing: %+v", res[3])
	}
	if seen.Load() != int64(5+3<<20) {
		t.Errorf("progress saw %d bytes", seen.Load())
	}
}

func TestHashFilesCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := HashFiles(ctx, []HashJob{{Path: "x", Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("x")), nil }}}, 1, nil)
	if !errors.Is(res[0].Err, context.Canceled) {
		t.Errorf("got %v", res[0].Err)
	}
}
