package wal

// segIndex locates the live entries of one segment: entry first+i starts
// at offset at(i) of the segment file. Offsets are kept as uint32, 4
// bytes an entry, while every one is below 4 GiB; a segment that grows
// past that (a batch larger than 4 GiB gets a segment of its own) switches
// to int64. A record's length is not kept: the next entry's offset, or
// tail for the last one, bounds it, and the record's header says it
// exactly.
//
// Only the flusher changes a segIndex, holding Log.mu; GetLog reads it
// holding mu for reading.
type segIndex struct {
	first uint64   // index of the first entry
	offs  []uint32 // entry offsets while wide is nil
	wide  []int64  // entry offsets once one is 4 GiB or more
	// tail bounds the end of the last entry's record: its exact end when
	// it was written or recovered last, else the start of an entry after
	// it that was deleted.
	tail int64
}

func (x *segIndex) len() int {
	if x.wide != nil {
		return len(x.wide)
	}
	return len(x.offs)
}

func (x *segIndex) at(i int) int64 {
	if x.wide != nil {
		return x.wide[i]
	}
	return int64(x.offs[i])
}

// last is the index of the last entry; x must not be empty.
func (x *segIndex) last() uint64 { return x.first + uint64(x.len()) - 1 }

// push adds the next entry, whose record starts at off.
func (x *segIndex) push(off int64) {
	if x.wide == nil && off > 1<<32-1 {
		x.wide = make([]int64, len(x.offs), max(2*len(x.offs), 1024))
		for i, o := range x.offs {
			x.wide[i] = int64(o)
		}
		x.offs = nil
	}
	if x.wide != nil {
		x.wide = append(x.wide, off)
	} else {
		x.offs = append(x.offs, uint32(off))
	}
}

// extent returns where entry i's record starts and a bound on its length.
func (x *segIndex) extent(i int) (off, lim int64) {
	off = x.at(i)
	end := x.tail
	if i+1 < x.len() {
		end = x.at(i + 1)
	}
	return off, end - off
}

// truncate keeps the first n entries. It keeps the memory; fit releases
// it.
func (x *segIndex) truncate(n int) {
	if n >= x.len() {
		return
	}
	x.tail = x.at(n)
	if x.wide != nil {
		x.wide = x.wide[:n]
	} else {
		x.offs = x.offs[:n]
	}
}

// dropFront deletes the first n entries. It keeps the memory; fit
// releases it.
func (x *segIndex) dropFront(n int) {
	n = min(n, x.len())
	x.first += uint64(n)
	if x.wide != nil {
		x.wide = x.wide[n:]
	} else {
		x.offs = x.offs[n:]
	}
}

// fit moves the entries to memory of their size, releasing what truncate,
// dropFront and append's growth left unused.
func (x *segIndex) fit() {
	if x.wide != nil {
		x.wide = clone(x.wide)
	} else {
		x.offs = clone(x.offs)
	}
}

// slack reports whether x holds much more memory than its entries need.
func (x *segIndex) slack() bool {
	n, c := len(x.offs), cap(x.offs)
	if x.wide != nil {
		n, c = len(x.wide), cap(x.wide)
	}
	return c-n > 64 && c-n > n/32
}

// reset empties x and releases its memory.
func (x *segIndex) reset() { *x = segIndex{} }

// bytes is the memory x holds.
func (x *segIndex) bytes() int { return 4*cap(x.offs) + 8*cap(x.wide) }

// clone returns s in new memory of its size, or nil when s is empty.
func clone[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	c := make([]T, len(s))
	copy(c, s)
	return c
}
