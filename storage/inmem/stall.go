package inmem

import "sync"

// stallGate makes a Store's writes hang until released (Store.Stall).
type stallGate struct {
	mu      sync.Mutex
	ch      chan struct{} // closed on release; nil while writes go through
	waiting int
}

// wait blocks while the gate is shut. It is called before a write takes
// the Store's lock, so that reads go on while writes hang.
func (g *stallGate) wait() {
	g.mu.Lock()
	ch := g.ch
	if ch != nil {
		g.waiting++
	}
	g.mu.Unlock()
	if ch == nil {
		return
	}
	<-ch
	g.mu.Lock()
	g.waiting--
	g.mu.Unlock()
}

// Stall makes the Store's writes hang, like a disk whose fsync never
// returns: every StoreLogs, DeleteRange, Set and SetUint64, from now until
// release is called, blocks before it takes effect; then each goes ahead
// as usual. Reads keep working. Calling Stall again before release returns
// a release of the same stall; release may be called more than once. The
// Store that Crash returns is not stalled. A test that stalls a store
// must release it before the server using it shuts down: Shutdown waits
// for the write under way.
func (s *Store) Stall() (release func()) {
	g := &s.stall
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch == nil {
		g.ch = make(chan struct{})
	}
	ch := g.ch
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.ch == ch {
				g.ch = nil
			}
			close(ch)
		})
	}
}

// StalledWrites returns how many writes are blocked by Stall now.
func (s *Store) StalledWrites() int {
	s.stall.mu.Lock()
	defer s.stall.mu.Unlock()
	return s.stall.waiting
}
