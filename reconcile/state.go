package reconcile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"unsafe"

	"github.com/manhattan-go/manhattan/event"
)

// State is one visitor's reconciliation state. Counted keys and reached goals
// are kept as 64-bit fingerprints (xxhash of the key fields): a visitor holds
// at most a few thousand keys, so a false "already counted" has a probability
// around n²/2⁶⁵ — about 10⁻¹³ for a thousand keys — and keeps the state small.
type State struct {
	// Hot fields first: State is 128 bytes (its own size class, so
	// line-aligned) and a record of a confirmed visitor touches the first
	// 64 only (browser only with a browser rollup).

	// slots/nkeys: fingerprints of counted keys and of goals reached
	// (domain-separated); see keyset.go.
	slots []uint64
	nkeys int32
	qn    uint16 // events in queue
	human bool
	hasUA bool
	// last is the signature of the last record whose keys were all
	// counted: a memo, not serialized (losing it only costs lookups).
	last     uint64
	variants []variant

	browser string        // family of the first user agent
	complex []complexConv // converted complex goals not taken back, sorted by hName
	// queue holds the events awaiting the first pixel (at most MaxQueue,
	// oldest first), in their serialized form: ~12 bytes for a page.
	queue []byte
}

type variant struct {
	test, pop string
	h         uint64
}

// complexConv remembers where a complex goal's +1s went, to take them back.
type complexConv struct {
	hName   uint64
	ts      int64
	site    int64
	nvar    int // variants held at conversion (a prefix: variants only grow)
	browser string
}

// queued is the part of an event reconciliation needs later.
type queued struct {
	ts    int64
	site  int64
	typ   event.Type
	hasUA bool   // page: a (the browser family) is set
	a, b  string // goal: name, value; split: test, selected; page: family
	vt    string
	vf    string
}

// NewState returns the state of a visitor never seen.
func NewState() *State { return &State{} }

// Human reports whether the visitor has been confirmed by a pixel.
func (st *State) Human() bool { return st.human }

func (st *State) markCounted(k uint64) bool { return st.addKey(k) }

const domReached = 0x3c6ef372fe94f82b

func (st *State) reachedGoal(h uint64) bool { return st.hasKey(mix(domReached, h)) }

func (st *State) markReached(h uint64) bool { return st.addKey(mix(domReached, h)) }

// enqueue appends an event to the queue, dropping the oldest past MaxQueue.
func (st *State) enqueue(q *queued) {
	if st.queue == nil {
		st.queue = make([]byte, 0, 64)
	}
	st.queue = appendQueued(st.queue, q)
	st.qn++
	if st.qn > MaxQueue {
		d := &decoder{b: st.queue}
		d.queued()
		st.queue = st.queue[len(st.queue)-len(d.b):]
		st.qn--
	}
}

func appendQueued(b []byte, q *queued) []byte {
	t := byte(q.typ)
	if q.hasUA {
		t |= 0x80
	}
	b = append(b, t)
	b = binary.AppendVarint(b, q.ts)
	b = binary.AppendVarint(b, q.site)
	switch q.typ {
	case event.TypePage:
		if q.hasUA {
			b = appendString(b, q.a)
		}
	case event.TypeGoal:
		b = appendString(b, q.a)
		b = appendString(b, q.b)
		b = appendString(b, q.vt)
		b = appendString(b, q.vf)
	case event.TypeSplit:
		b = appendString(b, q.a)
		b = appendString(b, q.b)
	}
	return b
}

func (d *decoder) queued() queued {
	var q queued
	t := d.byte("queued type")
	q.hasUA = t&0x80 != 0
	q.typ = event.Type(t &^ 0x80)
	q.ts = d.varint("queued ts")
	q.site = d.varint("queued site")
	switch q.typ {
	case event.TypePage:
		if q.hasUA {
			q.a = d.string("queued family")
		}
	case event.TypeGoal:
		if q.hasUA {
			d.fail("queued goal with user agent flag")
		}
		q.a, q.b = d.string("queued goal"), d.string("queued value")
		q.vt, q.vf = d.string("queued value type"), d.string("queued value format")
	case event.TypeSplit:
		if q.hasUA {
			d.fail("queued split with user agent flag")
		}
		q.a, q.b = d.string("queued test"), d.string("queued population")
	default:
		d.fail(fmt.Sprintf("queued type %d", t))
	}
	return q
}

func (st *State) findComplex(h uint64) int {
	for i := range st.complex {
		if st.complex[i].hName == h {
			return i
		}
	}
	return -1
}

func (st *State) addComplex(c complexConv) {
	i, _ := slices.BinarySearchFunc(st.complex, c.hName, func(x complexConv, h uint64) int {
		switch {
		case x.hName < h:
			return -1
		case x.hName > h:
			return 1
		}
		return 0
	})
	st.complex = slices.Insert(st.complex, i, c)
}

// stateVersion is the first byte of every serialized state.
const stateVersion = 1

const (
	flagHuman = 1 << iota
	flagHasUA
)

// MarshalBinary encodes the state: version byte, flags, then each part
// length-prefixed. Fingerprint lists are already sorted, so the encoding of
// a state is canonical.
func (st *State) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, st.encodedSizeHint())
	b = append(b, stateVersion)
	var flags byte
	if st.human {
		flags |= flagHuman
	}
	if st.hasUA {
		flags |= flagHasUA
	}
	b = append(b, flags)
	b = appendString(b, st.browser)
	b = appendU64s(b, st.sortedKeys())
	b = binary.AppendUvarint(b, uint64(len(st.variants)))
	for _, v := range st.variants {
		b = appendString(b, v.test)
		b = appendString(b, v.pop)
	}
	b = binary.AppendUvarint(b, uint64(len(st.complex)))
	for _, c := range st.complex {
		b = binary.LittleEndian.AppendUint64(b, c.hName)
		b = binary.AppendVarint(b, c.ts)
		b = binary.AppendVarint(b, c.site)
		b = binary.AppendUvarint(b, uint64(c.nvar))
		b = appendString(b, c.browser)
	}
	b = binary.AppendUvarint(b, uint64(st.qn))
	b = append(b, st.queue...)
	return b, nil
}

func (st *State) encodedSizeHint() int {
	n := 16 + len(st.browser) + 8*int(st.nkeys) + 32*len(st.complex) + len(st.queue)
	for _, v := range st.variants {
		n += 4 + len(v.test) + len(v.pop)
	}
	return n
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendU64s(b []byte, xs []uint64) []byte {
	b = binary.AppendUvarint(b, uint64(len(xs)))
	for _, x := range xs {
		b = binary.LittleEndian.AppendUint64(b, x)
	}
	return b
}

// ErrCorruptState is wrapped by every decoding error.
var ErrCorruptState = errors.New("reconcile: corrupt visitor state")

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorruptState, what)
	}
}

func (d *decoder) byte(what string) byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail("truncated " + what)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad " + what)
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad " + what)
		return 0
	}
	d.b = d.b[n:]
	return x
}

// count reads a length and checks it against the bytes left, each element
// taking at least minSize bytes, so a corrupt length cannot force a huge
// allocation.
func (d *decoder) count(what string, minSize int) int {
	n := d.uvarint(what + " count")
	if d.err != nil {
		return 0
	}
	if n > uint64(len(d.b)/minSize) {
		d.fail(what + " count exceeds input")
		return 0
	}
	return int(n)
}

func (d *decoder) string(what string) string {
	n := d.count(what, 1)
	if d.err != nil {
		return ""
	}
	s := internBytes(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) u64s(what string) []uint64 {
	n := d.count(what, 8)
	if d.err != nil || n == 0 {
		return nil
	}
	xs := make([]uint64, n)
	for i := range xs {
		xs[i] = binary.LittleEndian.Uint64(d.b[8*i:])
		if i > 0 && xs[i] <= xs[i-1] {
			d.fail(what + " not strictly sorted")
			return nil
		}
	}
	d.b = d.b[8*n:]
	return xs
}

// UnmarshalBinary decodes data produced by MarshalBinary, replacing st. It
// returns an error wrapping ErrCorruptState on truncated, corrupt or
// unknown-version input and leaves st unchanged then.
func (st *State) UnmarshalBinary(data []byte) error {
	d := &decoder{b: data}
	if v := d.byte("version"); d.err == nil && v != stateVersion {
		return fmt.Errorf("%w: unknown version %d", ErrCorruptState, v)
	}
	var ns State
	flags := d.byte("flags")
	if flags&^(flagHuman|flagHasUA) != 0 {
		d.fail("unknown flags")
	}
	ns.human = flags&flagHuman != 0
	ns.hasUA = flags&flagHasUA != 0
	ns.browser = d.string("browser")
	keys := d.u64s("keys")
	if len(keys) > 0 && keys[0] == 0 {
		d.fail("zero key")
	}
	ns.fillKeys(keys)
	if nv := d.count("variants", 2); nv > 0 {
		ns.variants = make([]variant, nv)
		for i := range ns.variants {
			t, p := d.string("variant test"), d.string("variant population")
			ns.variants[i] = variant{test: t, pop: p, h: variantHash(t, p)}
		}
	}
	if nc := d.count("complex goals", 12); nc > 0 {
		ns.complex = make([]complexConv, nc)
		for i := range ns.complex {
			c := &ns.complex[i]
			if len(d.b) < 8 {
				d.fail("truncated complex goal")
				break
			}
			c.hName = binary.LittleEndian.Uint64(d.b)
			d.b = d.b[8:]
			c.ts = d.varint("complex ts")
			c.site = d.varint("complex site")
			nvar := d.uvarint("complex variants")
			if nvar > uint64(len(ns.variants)) {
				d.fail("complex variants exceed variants")
			}
			c.nvar = int(nvar)
			c.browser = d.string("complex browser")
			if i > 0 && c.hName <= ns.complex[i-1].hName {
				d.fail("complex goals not strictly sorted")
			}
			if d.err != nil {
				break
			}
		}
	}
	if nq := d.count("queue", 3); nq > 0 {
		if nq > MaxQueue {
			d.fail("queue longer than MaxQueue")
		}
		start := d.b
		for i := 0; i < nq && d.err == nil; i++ {
			d.queued()
		}
		if d.err == nil {
			ns.queue = slices.Clone(start[:len(start)-len(d.b)])
			ns.qn = uint16(nq)
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail(fmt.Sprintf("%d trailing bytes", len(d.b)))
	}
	if d.err != nil {
		return d.err
	}
	if ns.human && ns.qn > 0 {
		return fmt.Errorf("%w: confirmed visitor with a queue", ErrCorruptState)
	}
	*st = ns
	return nil
}

// memSize estimates the bytes a cached state occupies (struct, slice
// backing arrays, and strings it alone references; interned strings shared
// between visitors are not counted).
func (st *State) memSize() int {
	n := int(unsafe.Sizeof(*st))
	n += 8 * len(st.slots)
	n += int(unsafe.Sizeof(variant{})) * cap(st.variants)
	n += int(unsafe.Sizeof(complexConv{})) * cap(st.complex)
	n += cap(st.queue)
	return n
}
