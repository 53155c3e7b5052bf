package sim

import (
	"math/rand/v2"
	"slices"
)

// Network decides the fate of each message between named nodes: lost,
// delivered once or twice, and after what delay. Links can be cut in one
// or both directions. It holds no messages itself: the caller schedules a
// delivery for each delay Send returns.
type Network struct {
	rand   *rand.Rand
	faults Faults
	calm   bool               // faults off (the liveness phase)
	cut    map[[2]string]bool // from, to
}

// NewNetwork returns a network with the given fault plan and no cut links.
func NewNetwork(r *rand.Rand, f Faults) *Network {
	return &Network{rand: r, faults: f, cut: map[[2]string]bool{}}
}

// Send returns the delays after which a message from one node to another
// arrives: none if it is lost, two if it is duplicated.
func (n *Network) Send(from, to string) []Time {
	if n.cut[[2]string{from, to}] {
		return nil
	}
	f := n.faults
	if n.calm {
		return []Time{n.delay(false)}
	}
	if n.rand.Float64() < f.Loss {
		return nil
	}
	d := []Time{n.delay(true)}
	if n.rand.Float64() < f.Duplicate {
		d = append(d, n.delay(true))
	}
	return d
}

func (n *Network) delay(long bool) Time {
	f := n.faults
	d := f.MinDelay + Time(n.rand.Int64N(int64(f.MaxDelay-f.MinDelay)+1))
	if long && f.LongDelay > 0 && n.rand.Float64() < f.LongDelay {
		d += Time(n.rand.Int64N(int64(f.MaxLong) + 1))
	}
	return d
}

// Cut stops messages from one node to another.
func (n *Network) Cut(from, to string) { n.cut[[2]string{from, to}] = true }

// Split cuts every link between side and the other nodes, both ways.
func (n *Network) Split(side, all []string) {
	for _, a := range side {
		for _, b := range all {
			if !slices.Contains(side, b) {
				n.Cut(a, b)
				n.Cut(b, a)
			}
		}
	}
}

// Heal restores every link.
func (n *Network) Heal() { clear(n.cut) }

// Calm switches message faults off for good: no loss, duplication or long
// delays, and every link restored.
func (n *Network) Calm() {
	n.calm = true
	n.Heal()
}

// Connected reports whether messages from one node to another get through
// (ignoring random loss).
func (n *Network) Connected(from, to string) bool { return !n.cut[[2]string{from, to}] }
