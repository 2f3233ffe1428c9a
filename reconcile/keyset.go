package reconcile

import (
	"math/bits"
	"slices"
)

// keySet is a set of 64-bit fingerprints: open addressing with linear
// probing in a table of any size (fastrange indexing), grown by half when
// 80% full. Fingerprints are already uniform hashes, so they index directly.
// Zero marks an empty slot; the fingerprint 0 is stored as 1.
type keySet struct {
	slots []uint64
	n     int
}

func (s *keySet) index(k uint64) int {
	hi, _ := bits.Mul64(k, uint64(len(s.slots)))
	return int(hi)
}

func (s *keySet) has(k uint64) bool {
	if k == 0 {
		k = 1
	}
	if len(s.slots) == 0 {
		return false
	}
	for i := s.index(k); ; {
		switch s.slots[i] {
		case k:
			return true
		case 0:
			return false
		}
		if i++; i == len(s.slots) {
			i = 0
		}
	}
}

// add inserts k and reports whether it was absent.
func (s *keySet) add(k uint64) bool {
	if k == 0 {
		k = 1
	}
	if (s.n+1)*5 > len(s.slots)*4 {
		s.grow(max(8, len(s.slots)+len(s.slots)/2))
	}
	for i := s.index(k); ; {
		switch s.slots[i] {
		case k:
			return false
		case 0:
			s.slots[i] = k
			s.n++
			return true
		}
		if i++; i == len(s.slots) {
			i = 0
		}
	}
}

func (s *keySet) grow(size int) {
	old := s.slots
	s.slots = make([]uint64, size)
	s.n = 0
	for _, k := range old {
		if k != 0 {
			s.add(k)
		}
	}
}

// sorted returns the keys in increasing order (the canonical encoding).
func (s *keySet) sorted() []uint64 {
	out := make([]uint64, 0, s.n)
	for _, k := range s.slots {
		if k != 0 {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// fill builds the set from distinct keys, sized for a little growth.
func (s *keySet) fill(keys []uint64) {
	s.slots, s.n = nil, 0
	if len(keys) == 0 {
		return
	}
	s.grow(len(keys)*4/3 + 2)
	for _, k := range keys {
		s.add(k)
	}
}
