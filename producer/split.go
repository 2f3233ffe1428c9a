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

const (
	mtN = 624
	mtM = 397
)

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
	r := splitRandom(vid, test)
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
