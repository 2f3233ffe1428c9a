package producer

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Split assignment reproduces the original Python system exactly:
// random.Random(vid + test).random() seeds MT19937 with the big-endian integer
// of the UTF-8 bytes of vid+test (init_by_array over its 32-bit words, least
// significant first) and draws genrand_res53. Sites migrating from it keep
// every visitor in the population it already saw.
//
// SeedPython2 is the other way to seed: what CPython 2.7 really did with a
// str seed (see SplitSeeding).

const (
	mtN = 624
	mtM = 397
)

// SplitSeeding chooses how a split turns (vid, test) into its random seed.
// The zero value "" is SeedDesign.
type SplitSeeding string

const (
	// SeedDesign seeds with the integer of the UTF-8 bytes of vid+test, as
	// DESIGN.md specifies (what Python 3's random.Random(str) does). Default.
	SeedDesign SplitSeeding = "design"
	// SeedPython2 seeds as the original system did on CPython 2.7, 64-bit,
	// hash randomization off (2.7's default): random.Random(s) with a str s
	// seeds with hash(s) taken as an unsigned 64-bit integer. s is the UTF-8
	// bytes of vid+test, i.e. a str test name; a non-ASCII unicode test name
	// hashed differently in Python 2 and is not reproduced. Only 50/50 and
	// list splits: weighted ones iterated a Python 2 dict, whose order
	// depends on insertion order a Go map does not keep, so they are refused
	// with ErrPython2Weighted.
	SeedPython2 SplitSeeding = "python2"
)

// ErrPython2Weighted is returned by weighted splits under SeedPython2.
var ErrPython2Weighted = errors.New("split: weighted populations cannot reproduce Python 2 (their order was Python 2 dict order, which depends on insertion order); use a list of populations or design seeding")

// ParseSplitSeeding parses a config value: "design" (or "") or "python2".
func ParseSplitSeeding(s string) (SplitSeeding, error) {
	switch SplitSeeding(s) {
	case "", SeedDesign:
		return SeedDesign, nil
	case SeedPython2:
		return SeedPython2, nil
	}
	return "", fmt.Errorf("split seeding %q: want %q or %q", s, SeedDesign, SeedPython2)
}

// Assign is the package-level Assign with this seeding.
func (s SplitSeeding) Assign(vid, test string, populations ...string) string {
	var r float64
	if s == SeedPython2 {
		r = python2Random(vid, test)
	} else {
		r = splitRandom(vid, test)
	}
	return pick(r, populations)
}

// AssignWeighted is the package-level AssignWeighted with this seeding;
// under SeedPython2 it always fails with ErrPython2Weighted.
func (s SplitSeeding) AssignWeighted(vid, test string, weights map[string]float64) (string, error) {
	if s == SeedPython2 {
		return "", fmt.Errorf("split %q: %w", test, ErrPython2Weighted)
	}
	return AssignWeighted(vid, test, weights)
}

// python2Hash is CPython 2.7's hash of the str vid+test on a 64-bit build
// with hash randomization off (prefix and suffix 0), as an unsigned integer.
func python2Hash(vid, test string) uint64 {
	n := len(vid) + len(test)
	if n == 0 {
		return 0
	}
	var first byte
	if len(vid) > 0 {
		first = vid[0]
	} else {
		first = test[0]
	}
	x := uint64(first) << 7
	for i := 0; i < len(vid); i++ {
		x = 1000003*x ^ uint64(vid[i])
	}
	for i := 0; i < len(test); i++ {
		x = 1000003*x ^ uint64(test[i])
	}
	x ^= uint64(n)
	if x == math.MaxUint64 { // -1 is reserved for errors in CPython
		x = math.MaxUint64 - 1
	}
	return x
}

// python2Random is the first random() of Python 2's random.Random(vid+test):
// the hash as unsigned long, split into 32-bit words for init_by_array.
func python2Random(vid, test string) float64 {
	h := python2Hash(vid, test)
	key := [2]uint32{uint32(h), uint32(h >> 32)}
	if key[1] == 0 {
		return mtRandom(key[:1])
	}
	return mtRandom(key[:])
}

// splitRandom returns the first random() of random.Random(vid+test).
func splitRandom(vid, test string) float64 {
	// Big-endian integer of the bytes; leading zero bytes do not count.
	b := make([]byte, 0, 128)
	b = append(b, vid...)
	b = append(b, test...)
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	var keyBuf [40]uint32
	key := keyBuf[:0]
	for end := len(b); end > 0; end -= 4 {
		start := max(end-4, 0)
		var w uint32
		for _, c := range b[start:end] {
			w = w<<8 | uint32(c)
		}
		key = append(key, w)
	}
	if len(key) == 0 {
		key = append(key, 0)
	}
	return mtRandom(key)
}

// mtRandom is genrand_res53 of MT19937 right after init_by_array(key).
func mtRandom(key []uint32) float64 {
	var mt [mtN]uint32
	mt[0] = 19650218
	for i := 1; i < mtN; i++ {
		mt[i] = 1812433253*(mt[i-1]^(mt[i-1]>>30)) + uint32(i)
	}
	i, j := 1, 0
	for k := max(mtN, len(key)); k > 0; k-- {
		mt[i] = (mt[i] ^ ((mt[i-1] ^ (mt[i-1] >> 30)) * 1664525)) + key[j] + uint32(j)
		i++
		j++
		if i >= mtN {
			mt[0] = mt[mtN-1]
			i = 1
		}
		if j >= len(key) {
			j = 0
		}
	}
	for k := mtN - 1; k > 0; k-- {
		mt[i] = (mt[i] ^ ((mt[i-1] ^ (mt[i-1] >> 30)) * 1566083941)) - uint32(i)
		i++
		if i >= mtN {
			mt[0] = mt[mtN-1]
			i = 1
		}
	}
	mt[0] = 0x80000000

	// genrand_res53 needs only the first two outputs of the first twist.
	out := func(kk int) uint32 {
		y := (mt[kk] & 0x80000000) | (mt[kk+1] & 0x7fffffff)
		v := mt[kk+mtM] ^ (y >> 1)
		if y&1 != 0 {
			v ^= 0x9908b0df
		}
		// tempering
		v ^= v >> 11
		v ^= (v << 7) & 0x9d2c5680
		v ^= (v << 15) & 0xefc60000
		v ^= v >> 18
		return v
	}
	a, c := out(0)>>5, out(1)>>6
	return (float64(a)*67108864.0 + float64(c)) * (1.0 / 9007199254740992.0)
}

// Assign returns the population of visitor vid in test. With no populations
// it is the original 50/50 test, giving "True" or "False"; otherwise one of
// populations, uniformly. Deterministic: the same vid and test always give
// the same answer.
func Assign(vid, test string, populations ...string) string {
	return pick(splitRandom(vid, test), populations)
}

// pick is Python's choice: (True, False) or populations at int(r*len).
func pick(r float64, populations []string) string {
	if len(populations) == 0 {
		return [2]string{"True", "False"}[int(r*2)]
	}
	return populations[int(r*float64(len(populations)))]
}

// ErrNoPopulations is returned for a weighted split with nothing to choose.
var ErrNoPopulations = errors.New("split: no population with a positive weight")

// AssignWeighted picks a population of test for vid with probability
// proportional to its weight. Names are taken in sorted order and weights
// ≤ 0 are ignored, as the original system did, so the result is independent
// of map order. NaN or infinite weights and an empty (or all non-positive)
// map are errors.
func AssignWeighted(vid, test string, weights map[string]float64) (string, error) {
	names := make([]string, 0, len(weights))
	for name, w := range weights {
		if math.IsNaN(w) || math.IsInf(w, 0) {
			return "", fmt.Errorf("split %q: population %q has weight %v", test, name, w)
		}
		if w > 0 {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return "", fmt.Errorf("split %q: %w", test, ErrNoPopulations)
	}
	sort.Strings(names)
	// Running masses, then bisect_right(masses, r*total), like Python.
	masses := make([]float64, len(names))
	total := 0.0
	for i, name := range names {
		total += weights[name]
		masses[i] = total
	}
	x := splitRandom(vid, test) * total
	i := sort.Search(len(masses), func(i int) bool { return masses[i] > x })
	if i == len(names) { // only if rounding put x at total
		i--
	}
	return names[i], nil
}
