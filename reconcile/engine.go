package reconcile

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unique"

	"github.com/cespare/xxhash/v2"
	"github.com/medama-io/go-useragent"
	"github.com/shopspring/decimal"

	"github.com/manhattan-go/manhattan/event"
)

// MaxQueue is how many events of an unconfirmed visitor are kept (the most
// recent ones) until its first pixel.
const MaxQueue = 500

// maxRollups bounds the configured rollups so that the per-record bucket
// table lives on the stack.
const maxRollups = 32

type rollupKind uint8

const (
	kindAll rollupKind = iota
	kindHour
	kindDay
	kindWeek
	kindMonth
	kindBrowser
)

// slotMicros is the width of a bucket-cache slot: every tz offset and DST
// transition in use is a multiple of 15 minutes, so a 15-minute UTC slot
// almost always lies inside one local bucket (and is verified to).
const slotMicros = 15 * 60 * 1_000_000

const slotCacheSize = 64

type slotEntry struct {
	slot   int64
	bucket string
	h      uint64 // fingerprint of (rollup name, bucket)
}

type rollup struct {
	name  string
	kind  rollupKind
	loc   *time.Location
	hName uint64
	hAll  uint64 // fingerprint of (name, "") for kind all
	// slots is a direct-mapped cache of bucket strings by 15-minute slot;
	// atomic so one Engine can serve several partition workers.
	slots [slotCacheSize]atomic.Pointer[slotEntry]
}

type complexGoal struct {
	name    string
	hName   uint64
	include []uint64 // goal-name fingerprints
	exclude []uint64
}

// Engine applies records to visitor states. It is safe for concurrent use by
// several goroutines as long as each works on its own States and Output.
type Engine struct {
	rollups []*rollup
	complex []*complexGoal
	// byGoal maps a goal fingerprint to the complex goals that mention it.
	byGoal map[uint64][]int

	decimals   sync.Map // value string → decimal.Decimal
	nDecimals  atomic.Int64
	families   sync.Map // user agent → browser family
	nFamilies  atomic.Int64
	hViewed    uint64
	viewedName string
	hasBrowser bool // a browser rollup is configured
}

// memo caches are bounded so that hostile input cannot grow them forever;
// past the bound lookups just compute.
const memoMax = 1 << 14

var uaParser = sync.OnceValue(useragent.NewParser)

// New validates cfg and builds an Engine.
func New(cfg Config) (*Engine, error) {
	e := &Engine{byGoal: map[uint64][]int{}, viewedName: ViewedPage, hViewed: hashString(ViewedPage)}
	rollups := cfg.Rollups
	if len(rollups) == 0 {
		rollups = []Rollup{{Name: RollupAll, Kind: RollupAll}}
	}
	if len(rollups) > maxRollups {
		return nil, fmt.Errorf("reconcile: %d rollups configured, at most %d supported", len(rollups), maxRollups)
	}
	seen := map[string]bool{}
	for i, r := range rollups {
		if r.Name == "" {
			return nil, fmt.Errorf("reconcile: rollups[%d]: empty name", i)
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("reconcile: rollups[%d]: duplicate name %q", i, r.Name)
		}
		seen[r.Name] = true
		ro := &rollup{name: r.Name, hName: hashString(r.Name)}
		ro.hAll = mix(ro.hName, hashString(""))
		switch r.Kind {
		case RollupAll:
			ro.kind = kindAll
		case RollupHour:
			ro.kind = kindHour
		case RollupDay:
			ro.kind = kindDay
		case RollupWeek:
			ro.kind = kindWeek
		case RollupMonth:
			ro.kind = kindMonth
		case RollupBrowser:
			ro.kind = kindBrowser
		default:
			return nil, fmt.Errorf("reconcile: rollups[%d] %q: unknown kind %q (want all, hour, day, week, month or browser)", i, r.Name, r.Kind)
		}
		switch ro.kind {
		case kindHour, kindDay, kindWeek, kindMonth:
			loc, err := time.LoadLocation(r.Timezone)
			if err != nil {
				return nil, fmt.Errorf("reconcile: rollups[%d] %q: timezone %q: %w", i, r.Name, r.Timezone, err)
			}
			ro.loc = loc
		default:
			if r.Timezone != "" {
				return nil, fmt.Errorf("reconcile: rollups[%d] %q: timezone given for kind %q, which has none", i, r.Name, r.Kind)
			}
		}
		e.rollups = append(e.rollups, ro)
	}
	cgSeen := map[string]bool{}
	for i, cg := range cfg.ComplexGoals {
		if cg.Name == "" {
			return nil, fmt.Errorf("reconcile: complex_goals[%d]: empty name", i)
		}
		if cgSeen[cg.Name] {
			return nil, fmt.Errorf("reconcile: complex_goals[%d]: duplicate name %q", i, cg.Name)
		}
		cgSeen[cg.Name] = true
		if len(cg.Include) == 0 {
			return nil, fmt.Errorf("reconcile: complex_goals[%d] %q: empty include list", i, cg.Name)
		}
		c := &complexGoal{name: cg.Name, hName: hashString(cg.Name)}
		mention := map[uint64]bool{}
		for _, g := range cg.Include {
			if g == "" {
				return nil, fmt.Errorf("reconcile: complex_goals[%d] %q: empty goal name in include", i, cg.Name)
			}
			c.include = append(c.include, hashString(g))
			mention[hashString(g)] = true
		}
		for _, g := range cg.Exclude {
			if g == "" {
				return nil, fmt.Errorf("reconcile: complex_goals[%d] %q: empty goal name in exclude", i, cg.Name)
			}
			c.exclude = append(c.exclude, hashString(g))
			mention[hashString(g)] = true
		}
		for h := range mention {
			e.byGoal[h] = append(e.byGoal[h], len(e.complex))
		}
		e.complex = append(e.complex, c)
	}
	for _, c := range e.complex {
		for _, other := range e.complex {
			if other != c && contains(c.include, other.hName) {
				return nil, errors.New("reconcile: complex goal " + c.name + " includes complex goal " + other.name + ", which is not supported")
			}
		}
	}
	if len(e.rollups) > 0 { // build the UA trie now, not on the first record
		uaParser()
		for _, r := range e.rollups {
			if r.kind == kindBrowser {
				e.hasBrowser = true
			}
		}
	}
	return e, nil
}

func contains(s []uint64, h uint64) bool {
	for _, x := range s {
		if x == h {
			return true
		}
	}
	return false
}

// rb is one rollup's bucket for the record being applied.
type rb struct {
	bucket string
	h      uint64
}

// buckets fills dst with the bucket of every rollup at ts for a visitor whose
// browser family is family.
func (e *Engine) buckets(dst *[maxRollups]rb, ts int64, family string) []rb {
	out := dst[:len(e.rollups)]
	var hFam uint64
	famDone := false
	for i, r := range e.rollups {
		switch r.kind {
		case kindAll:
			out[i] = rb{"", r.hAll}
		case kindBrowser:
			if !famDone {
				hFam, famDone = hashString(family), true
			}
			out[i] = rb{family, mix(r.hName, hFam)}
		default:
			out[i] = r.bucketAt(ts)
		}
	}
	return out
}

// familyOf is the browser bucket of st, read only when a browser rollup
// needs it (browser lies outside State's hot cache line).
func (e *Engine) familyOf(st *State) string {
	if e.hasBrowser {
		return st.browser
	}
	return ""
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func (r *rollup) bucketAt(ts int64) rb {
	slot := floorDiv(ts, slotMicros)
	p := r.slots[slot&(slotCacheSize-1)].Load()
	if p != nil && p.slot == slot {
		return rb{p.bucket, p.h}
	}
	lo := r.format(slot * slotMicros)
	hi := r.format(slot*slotMicros + slotMicros - 1)
	if lo == hi {
		ent := &slotEntry{slot: slot, bucket: unique.Make(lo).Value(), h: mix(r.hName, hashString(lo))}
		r.slots[slot&(slotCacheSize-1)].Store(ent)
		return rb{ent.bucket, ent.h}
	}
	// A transition inside the slot: compute exactly, uncached.
	b := r.format(ts)
	return rb{unique.Make(b).Value(), mix(r.hName, hashString(b))}
}

func (r *rollup) format(ts int64) string {
	t := time.UnixMicro(ts).In(r.loc)
	switch r.kind {
	case kindHour:
		return t.Format("2006-01-02T15")
	case kindDay:
		return t.Format("2006-01-02")
	case kindWeek:
		y, m, d := t.Date()
		return time.Date(y, m, d-int(t.Weekday()), 0, 0, 0, 0, time.UTC).Format("2006-01-02")
	case kindMonth:
		return t.Format("2006-01")
	}
	return ""
}

func (e *Engine) parseValue(s string) (decimal.Decimal, bool) {
	if v, ok := e.decimals.Load(s); ok {
		return v.(decimal.Decimal), true
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		// Validated upstream (event.Validate); a value that still does not
		// parse is treated as absent rather than failing the partition.
		return decimal.Decimal{}, false
	}
	if e.nDecimals.Load() < memoMax {
		if _, loaded := e.decimals.LoadOrStore(s, d); !loaded {
			e.nDecimals.Add(1)
		}
	}
	return d, true
}

func (e *Engine) family(ua string) string {
	if v, ok := e.families.Load(ua); ok {
		return v.(string)
	}
	f := string(uaParser().Parse(ua).Browser())
	if e.nFamilies.Load() < memoMax {
		if _, loaded := e.families.LoadOrStore(ua, f); !loaded {
			e.nFamilies.Add(1)
		}
	}
	return f
}

// Apply applies one record, in offset order, to the visitor's state. When
// counted is false (replay below the partition's hw_c mark) the state is
// updated exactly as usual but no counter deltas are added to out (goal and
// test metadata still are: their merge is idempotent). It reports whether st
// changed.
func (e *Engine) Apply(st *State, ev *event.Event, counted bool, out *Output) (changed bool) {
	switch ev.Type {
	case event.TypePixel:
		if st.human {
			return false
		}
		st.human = true
		d := decoder{b: st.queue}
		for i := 0; i < int(st.qn) && d.err == nil; i++ {
			q := d.queued()
			e.apply(st, &q, counted, out)
		}
		st.queue, st.qn = nil, 0
		return true
	case event.TypePage, event.TypeGoal, event.TypeSplit:
	default:
		return false
	}
	q := queued{typ: ev.Type, ts: ev.TS, site: ev.SiteID}
	switch ev.Type {
	case event.TypePage:
		if !st.hasUA && ev.UserAgent != "" {
			q.hasUA = true
			q.a = e.family(ev.UserAgent)
		}
	case event.TypeGoal:
		q.a, q.b, q.vt, q.vf = ev.Name, ev.Value, ev.ValueType, ev.ValueFormat
	case event.TypeSplit:
		q.a, q.b = ev.Test, ev.Selected
	}
	if st.human {
		return e.apply(st, &q, counted, out)
	}
	st.enqueue(&q)
	return true
}

func intern(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}

// internTab maps bytes to interned strings without allocating on a hit
// (m[string(b)] does not copy), for decoding queues and states.
var internTab = struct {
	sync.RWMutex
	m map[string]string
}{m: map[string]string{}}

func internBytes(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	internTab.RLock()
	s, ok := internTab.m[string(b)]
	internTab.RUnlock()
	if ok {
		return s
	}
	s = intern(string(b))
	internTab.Lock()
	if len(internTab.m) < memoMax {
		internTab.m[s] = s
	}
	internTab.Unlock()
	return s
}

// apply applies one confirmed (human) event and reports whether the
// serialized state changed.
func (e *Engine) apply(st *State, q *queued, counted bool, out *Output) bool {
	switch q.typ {
	case event.TypePage:
		changed := false
		if q.hasUA && !st.hasUA {
			st.hasUA, st.browser = true, intern(q.a)
			changed = true
		}
		out.goalMeta(ViewedPage, "", "", q.ts)
		return e.convert(st, q.ts, q.site, ViewedPage, e.hViewed, "", counted, out) || changed
	case event.TypeGoal:
		out.goalMeta(q.a, q.vt, q.vf, q.ts)
		return e.convert(st, q.ts, q.site, q.a, hashString(q.a), q.b, counted, out)
	case event.TypeSplit:
		return e.split(st, q, counted, out)
	}
	return false
}

// Fingerprint domains, so that keys of different kinds never coincide.
const (
	domConv    = 0x1f83d9abfb41bd6b
	domVarConv = 0x5be0cd19137e2179
	domImpr    = 0x6a09e667f3bcc908
)

func (e *Engine) convert(st *State, ts, site int64, goal string, hGoal uint64, value string, counted bool, out *Output) (changed bool) {
	var val decimal.Decimal
	hasValue := false
	if value != "" {
		val, hasValue = e.parseValue(value)
	}
	var tbl [maxRollups]rb
	rbs := e.buckets(&tbl, ts, e.familyOf(st))
	base := mix(mix(domConv, hGoal), uint64(site))
	// sig names every key this conversion touches; when it equals the last
	// one fully counted (a visitor's pages within one hour, mostly), all
	// keys are known counted and the set lookups are skipped.
	sig := mix(base, uint64(len(st.variants)))
	for _, b := range rbs {
		sig = mix(sig, b.h)
	}
	if sig == st.last {
		if counted && hasValue {
			for i, b := range rbs {
				out.add(CounterKey{Kind: KindConversion, Site: site, Goal: goal, Rollup: e.rollups[i].name, Bucket: b.bucket}, false, val, true)
				for vi := range st.variants {
					v := &st.variants[vi]
					out.add(CounterKey{Kind: KindVariantConversion, Site: site, Goal: goal, Test: v.test, Population: v.pop, Rollup: e.rollups[i].name, Bucket: b.bucket}, false, val, true)
				}
			}
		}
		return false // the goal was reached before, too
	}
	st.last = sig
	for i, b := range rbs {
		k := mix(base, b.h)
		isNew := st.markCounted(k)
		changed = changed || isNew
		if counted && (isNew || hasValue) {
			out.add(CounterKey{Kind: KindConversion, Site: site, Goal: goal, Rollup: e.rollups[i].name, Bucket: b.bucket}, isNew, val, hasValue)
		}
		for vi := range st.variants {
			v := &st.variants[vi]
			kv := mix(mix(k, domVarConv), v.h)
			isNew := st.markCounted(kv)
			changed = changed || isNew
			if counted && (isNew || hasValue) {
				out.add(CounterKey{Kind: KindVariantConversion, Site: site, Goal: goal, Test: v.test, Population: v.pop, Rollup: e.rollups[i].name, Bucket: b.bucket}, isNew, val, hasValue)
			}
		}
	}
	if !st.markReached(hGoal) {
		return changed
	}
	// A goal new to the visitor: complex goals may convert or be taken back.
	for _, ci := range e.byGoal[hGoal] {
		c := e.complex[ci]
		if contains(c.exclude, hGoal) {
			if j := st.findComplex(c.hName); j >= 0 {
				cc := st.complex[j]
				st.complex = append(st.complex[:j], st.complex[j+1:]...)
				if counted {
					e.complexDeltas(st, c, cc, -1, out)
				}
			}
			continue
		}
		if !contains(c.include, hGoal) {
			continue
		}
		complete := true
		for _, h := range c.include {
			if !st.reachedGoal(h) {
				complete = false
				break
			}
		}
		if !complete {
			continue
		}
		for _, h := range c.exclude {
			if st.reachedGoal(h) {
				complete = false
				break
			}
		}
		if !complete {
			continue
		}
		cc := complexConv{hName: c.hName, ts: ts, site: site, nvar: len(st.variants), browser: st.browser}
		st.addComplex(cc)
		out.goalMeta(c.name, "", "", ts)
		if counted {
			e.complexDeltas(st, c, cc, +1, out)
		}
	}
	return true
}

// complexDeltas adds sign to every counter a complex conversion touches: the
// buckets of its moment, for the variants held then.
func (e *Engine) complexDeltas(st *State, c *complexGoal, cc complexConv, sign int64, out *Output) {
	var tbl [maxRollups]rb
	rbs := e.buckets(&tbl, cc.ts, cc.browser)
	nvar := min(cc.nvar, len(st.variants))
	for i, b := range rbs {
		out.addCount(CounterKey{Kind: KindConversion, Site: cc.site, Goal: c.name, Rollup: e.rollups[i].name, Bucket: b.bucket}, sign)
		for _, v := range st.variants[:nvar] {
			out.addCount(CounterKey{Kind: KindVariantConversion, Site: cc.site, Goal: c.name, Test: v.test, Population: v.pop, Rollup: e.rollups[i].name, Bucket: b.bucket}, sign)
		}
	}
}

func (e *Engine) split(st *State, q *queued, counted bool, out *Output) (changed bool) {
	hv := variantHash(q.a, q.b)
	vi := -1
	for i := range st.variants {
		if st.variants[i].h == hv && st.variants[i].test == q.a && st.variants[i].pop == q.b {
			vi = i
			break
		}
	}
	if vi < 0 {
		// A (test, population) pair is held once, in order of first
		// assignment; a repeated split is idempotent.
		st.variants = append(st.variants, variant{test: intern(q.a), pop: intern(q.b), h: hv})
		vi = len(st.variants) - 1
		changed = true
	}
	v := &st.variants[vi]
	out.testMeta(v.test, v.pop, q.ts)
	var tbl [maxRollups]rb
	rbs := e.buckets(&tbl, q.ts, e.familyOf(st))
	base := mix(mix(domImpr, hv), uint64(q.site))
	sig := base
	for _, b := range rbs {
		sig = mix(sig, b.h)
	}
	if sig == st.last {
		return changed
	}
	st.last = sig
	for i, b := range rbs {
		k := mix(base, b.h)
		if st.markCounted(k) {
			changed = true
			if counted {
				out.addCount(CounterKey{Kind: KindImpression, Site: q.site, Test: v.test, Population: v.pop, Rollup: e.rollups[i].name, Bucket: b.bucket}, 1)
			}
		}
	}
	return changed
}

func variantHash(test, pop string) uint64 {
	return mix(hashString(test)^0x9e3779b97f4a7c15, hashString(pop))
}

func hashString(s string) uint64 { return xxhash.Sum64String(s) }

// mix folds v into h (murmur3's 64-bit finaliser over h^v·φ); sequential
// folding keeps the fingerprint order-sensitive.
func mix(h, v uint64) uint64 {
	h ^= v * 0x9e3779b97f4a7c15
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
