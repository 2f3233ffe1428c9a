package reconcile

import (
	"math/bits"
	"slices"
)

// The key set of a State (fields slots and nkeys) holds 64-bit
// fingerprints: open addressing with linear probing in a table of any size
// (fastrange indexing), doubled when 80% full. Fingerprints are
// already uniform hashes, so they index directly. Zero marks an empty slot;
// the fingerprint 0 is stored as 1. The fields live in State itself so that
// a record's hot fields share one cache line.

func (st *State) slotOf(k uint64) int {
	hi, _ := bits.Mul64(k, uint64(len(st.slots)))
	return int(hi)
}

func (st *State) hasKey(k uint64) bool {
	if k == 0 {
		k = 1
	}
	if len(st.slots) == 0 {
		return false
	}
	for i := st.slotOf(k); ; {
		switch st.slots[i] {
		case k:
			return true
		case 0:
			return false
		}
		if i++; i == len(st.slots) {
			i = 0
		}
	}
}

// addKey inserts k and reports whether it was absent.
func (st *State) addKey(k uint64) bool {
	if k == 0 {
		k = 1
	}
	if (int(st.nkeys)+1)*5 > len(st.slots)*4 {
		st.growKeys(max(8, 2*len(st.slots)))
	}
	for i := st.slotOf(k); ; {
		switch st.slots[i] {
		case k:
			return false
		case 0:
			st.slots[i] = k
			st.nkeys++
			return true
		}
		if i++; i == len(st.slots) {
			i = 0
		}
	}
}

func (st *State) growKeys(size int) {
	old := st.slots
	st.slots = make([]uint64, size)
	st.nkeys = 0
	for _, k := range old {
		if k != 0 {
			st.addKey(k)
		}
	}
}

// sortedKeys returns the keys in increasing order (the canonical encoding).
func (st *State) sortedKeys() []uint64 {
	out := make([]uint64, 0, st.nkeys)
	for _, k := range st.slots {
		if k != 0 {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// fillKeys builds the set from distinct keys, sized for a little growth.
func (st *State) fillKeys(keys []uint64) {
	st.slots, st.nkeys = nil, 0
	if len(keys) == 0 {
		return
	}
	st.growKeys(len(keys)*4/3 + 2)
	for _, k := range keys {
		st.addKey(k)
	}
}
