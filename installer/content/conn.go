package content

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// timeoutListener wraps the server's listener so that a connection whose
// read deadline passes is counted and logged (debug) once: net/http sets
// the deadlines (the TLS handshake and the request header within
// readHeaderTimeout, the request within readTimeout, an idle keep-alive
// connection within idleTimeout) and closes such a connection without a
// word. A deadline set in the past is net/http aborting its own
// background read, not a timeout, and is not counted.
type timeoutListener struct {
	net.Listener
	log      *slog.Logger
	timeouts prometheus.Counter
}

func (l *timeoutListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &timeoutConn{Conn: c, l: l}, nil
}

type timeoutConn struct {
	net.Conn
	l     *timeoutListener
	abort atomic.Bool // the read deadline was set in the past
	once  sync.Once
}

func (c *timeoutConn) SetReadDeadline(t time.Time) error {
	c.abort.Store(!t.IsZero() && t.Before(time.Now()))
	return c.Conn.SetReadDeadline(t)
}

func (c *timeoutConn) SetDeadline(t time.Time) error {
	c.abort.Store(!t.IsZero() && t.Before(time.Now()))
	return c.Conn.SetDeadline(t)
}

func (c *timeoutConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && !c.abort.Load() {
		c.once.Do(func() {
			c.l.timeouts.Inc()
			c.l.log.Debug("read timed out: the connection is closed", slog.String("remote", c.RemoteAddr().String()))
		})
	}
	return n, err
}
