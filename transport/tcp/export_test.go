package tcp

import "github.com/keelraft/raft"

// frameVersion is the version byte of the frames tests write by hand:
// protocol 1's, which every transport of this build accepts.
const frameVersion = raft.ProtocolVersion

// WithVersions returns o set to speak protocol versions min to max, as
// another release would: an older one (1-1) or the next (1-2, 2-2).
// Version 2 frames have version 1's body, so only the negotiation and the
// version byte differ; a reader that did not negotiate 2 refuses them.
func WithVersions(o Options, min, max uint8) Options {
	o.versions = versions{min, max}
	return o
}
