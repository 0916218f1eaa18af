package apiproxy

import (
	"net"
	"sync"
)

// connSet is a set of open connections that can all be closed at once.
// The zero value is ready to use.
type connSet struct {
	mu sync.Mutex
	m  map[net.Conn]struct{}
}

func (s *connSet) add(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[net.Conn]struct{}{}
	}
	s.m[c] = struct{}{}
}

func (s *connSet) remove(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, c)
}

// closeAll closes every connection of the set (each one's owner removes
// it when its use ends) and says how many.
func (s *connSet) closeAll() int {
	s.mu.Lock()
	cs := make([]net.Conn, 0, len(s.m))
	for c := range s.m {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
	return len(cs)
}
