package fetch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// permanentError is not retried.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// retryAfter is a retryable error that asks for a given wait.
type retryAfter struct {
	err  error
	wait time.Duration
}

func (e retryAfter) Error() string { return e.err.Error() }
func (e retryAfter) Unwrap() error { return e.err }

var errStalled = errors.New("no data received within the stall timeout")

// retry runs attempt until it succeeds, fails permanently, the context
// ends, or the retries are spent; it waits between attempts.
func (c *Client) retry(ctx context.Context, what string, attempt func(ctx context.Context, n int) error) error {
	var err error
	for n := 0; ; n++ {
		if err = attempt(ctx, n); err == nil {
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if !retryable(err) || n >= c.opts.Retries {
			if n > 0 {
				return fmt.Errorf("%w (after %d attempts)", err, n+1)
			}
			return err
		}
		wait := c.backoff(n)
		var ra retryAfter
		if errors.As(err, &ra) && ra.wait > 0 && ra.wait <= c.opts.MaxBackoff {
			wait = ra.wait
		}
		c.opts.Log.Warn("retrying", slog.String("url", what), slog.Int("attempt", n+2), slog.Duration("after", wait), slog.Any("error", err))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// backoff is the wait before retry n+1: Backoff·2ⁿ capped at MaxBackoff,
// drawn between half of it and all of it.
func (c *Client) backoff(n int) time.Duration {
	d := c.opts.MaxBackoff
	if n < 30 {
		if e := c.opts.Backoff << n; e > 0 && e < d {
			d = e
		}
	}
	return d/2 + rand.N(d/2+1)
}

// retryable: network errors, stalls, 429 and 5xx; not TLS verification
// failures, not other statuses, not mismatches.
func retryable(err error) bool {
	var p permanentError
	if errors.As(err, &p) {
		return false
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code == http.StatusTooManyRequests || se.Code >= 500
	}
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verifyErr *tls.CertificateVerificationError
		badRecord tls.RecordHeaderError
	)
	if errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verifyErr) || errors.As(err, &badRecord) {
		return false
	}
	return !errors.Is(err, ErrMismatch) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrNotFound)
}

// statusErr turns a non-success response into an error; 404 and 410 wrap
// ErrNotFound.
func statusErr(resp *http.Response) error {
	se := &StatusError{Code: resp.StatusCode, Status: resp.Status}
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return fmt.Errorf("%w: %w", ErrNotFound, se)
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			return retryAfter{err: se, wait: time.Duration(s) * time.Second}
		}
	}
	return se
}

// do sends a GET (with a Range from offset when > 0) holding one of the
// client's parallel slots until release is called; the response body
// fails with errStalled when no data comes for StallTimeout.
func (c *Client) do(ctx context.Context, u *url.URL, offset int64) (*http.Response, func(), error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(c.opts.StallTimeout, func() { cancel(errStalled) })
	release := func() {
		timer.Stop()
		cancel(nil)
		<-c.sem
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		release()
		return nil, nil, permanent(err)
	}
	req.Header.Set("User-Agent", "ferry-builder")
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	c.stats.requests.Add(1)
	resp, err := c.http.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errStalled) {
			err = errStalled
		}
		release()
		return nil, nil, err
	}
	resp.Body = &stallBody{ReadCloser: resp.Body, ctx: ctx, timer: timer, stall: c.opts.StallTimeout}
	return resp, func() {
		resp.Body.Close()
		release()
	}, nil
}

// stallBody restarts the stall timer on every read that brings data and
// reports a stall as errStalled.
type stallBody struct {
	io.ReadCloser
	ctx   context.Context
	timer *time.Timer
	stall time.Duration
}

func (b *stallBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.timer.Reset(b.stall)
	}
	if err != nil && err != io.EOF && errors.Is(context.Cause(b.ctx), errStalled) {
		err = errStalled
	}
	return n, err
}
