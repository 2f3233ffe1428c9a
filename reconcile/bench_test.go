package reconcile

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/manhattan-go/manhattan/event"
)

// benchConfig is the realistic setup: 3 rollups, 2 complex goals.
var benchConfig = Config{
	Rollups: []Rollup{
		{Name: "all", Kind: RollupAll},
		{Name: "day", Kind: RollupDay, Timezone: "America/Los_Angeles"},
		{Name: "hour", Kind: RollupHour, Timezone: "UTC"},
	},
	ComplexGoals: []ComplexGoal{
		{Name: "abandoned cart", Include: []string{"add to cart"}, Exclude: []string{"purchase"}},
		{Name: "engaged signup", Include: []string{"signup", "newsletter"}, Exclude: []string{"unsubscribe"}},
	},
}

const (
	benchVisitors = 100_000
	benchPool     = 3_000_000 // records generated (~30 a visitor); replayed in cycles
	benchSpan     = 2 * 3600 * 1_000_000
)

// benchRec is a compact record of the pool; the benchmark materializes it
// into one reused event.Event (strings from fixed tables, no allocation), so
// the materialization is charged to the engine.
type benchRec struct {
	vix  int32
	kind uint8 // 0 page, 1 pixel, 2 goal, 3 split
	arg  uint8
}

type benchData struct {
	recs []benchRec
	vids []string
}

var (
	benchUAs = []string{
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36 Edg/125.0.2535.92",
	}
	benchGoals  = []string{"add to cart", "purchase", "signup", "newsletter", "unsubscribe", "search", "contact"}
	benchValues = []string{"", "", "", "19.99", "5", "120.50"}
	benchTests  = []string{"cta color", "pricing page", "checkout flow"}
	benchPops   = []string{"True", "False"}
)

// genBench: 70% pages, 15% goals, 10% splits, 5% pixels, visitors
// interleaved at random; a visitor's first record is a page and a human's
// second its pixel. 10% of visitors are bots: never a pixel (pages instead).
func genBench() *benchData {
	r := rand.New(rand.NewPCG(2026, 12))
	d := &benchData{recs: make([]benchRec, benchPool), vids: make([]string, benchVisitors)}
	for i := range d.vids {
		d.vids[i] = fmt.Sprintf("%040x", r.Uint64())
	}
	for i := range d.recs {
		d.recs[i].vix = int32(r.IntN(benchVisitors))
	}
	seen := make([]uint8, benchVisitors)
	for i := range d.recs {
		rec := &d.recs[i]
		v := rec.vix
		bot := v%10 == 0
		n := seen[v]
		if n < 2 {
			seen[v]++
		}
		switch k := r.IntN(100); {
		case n == 0 || k < 70:
			rec.kind, rec.arg = 0, uint8(int(v)%len(benchUAs))
		case n == 1 && !bot, k >= 95 && !bot:
			rec.kind = 1
		case k < 85:
			rec.kind, rec.arg = 2, uint8(r.IntN(len(benchGoals))<<4|r.IntN(len(benchValues)))
		case k < 95:
			rec.kind, rec.arg = 3, uint8(r.IntN(len(benchTests)))
		default:
			rec.kind, rec.arg = 0, 0
		}
	}
	return d
}

func (d *benchData) fill(ev *event.Event, i int, ts int64) {
	rec := d.recs[i]
	*ev = event.Event{TS: ts, VID: d.vids[rec.vix], SiteID: int64(rec.vix % 3)}
	switch rec.kind {
	case 0:
		ev.Type, ev.URL, ev.Method, ev.IP = event.TypePage, "/products/42", "GET", "203.0.113.9"
		ev.UserAgent = benchUAs[rec.arg]
	case 1:
		ev.Type = event.TypePixel
	case 2:
		ev.Type, ev.Name = event.TypeGoal, benchGoals[rec.arg>>4]
		if ev.Value = benchValues[rec.arg&15]; ev.Value != "" {
			ev.ValueType, ev.ValueFormat = "S", "C"
		}
	case 3:
		ev.Type, ev.Test = event.TypeSplit, benchTests[rec.arg]
		ev.Selected = benchPops[(int(rec.vix)+int(rec.arg))%2]
	}
}

var benchDataOnce *benchData

// BenchmarkApply measures the engine alone on one core. Metrics: records/s,
// x_target (records/s ÷ the 1M/s target), x_decode (engine rate ÷ the rate
// of event.Decode on the same records, measured in this run: >1 means the
// engine is not the consumer's bottleneck), and bytes per cached visitor,
// serialized and in memory (estimate, and heap growth measured by the GC).
func BenchmarkApply(b *testing.B) {
	if benchDataOnce == nil {
		benchDataOnce = genBench()
	}
	d := benchDataOnce
	e, err := New(benchConfig)
	if err != nil {
		b.Fatal(err)
	}
	states := make([]*State, benchVisitors)
	out := NewOutput()
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC).UnixMicro()
	var ev event.Event
	for n := 0; n < b.N; n++ {
		i := n % benchPool
		// Later cycles continue in time: the same visitors come back.
		d.fill(&ev, i, start+int64(n)*(benchSpan/benchPool))
		vix := d.recs[i].vix
		st := states[vix]
		if st == nil {
			st = NewState()
			states[vix] = st
		}
		e.Apply(st, &ev, true, out)
		if n%10_000 == 9_999 { // a flush
			out.Reset()
		}
	}
	cpu := cpuTime() - cpu0
	b.StopTimer()
	// Baseline in the same run: the harness alone (materializing records,
	// finding the state), whose CPU time is taken off the engine's.
	nb := min(b.N, 1_000_000)
	var sink int
	h0 := cpuTime()
	for n := 0; n < nb; n++ {
		i := n % benchPool
		d.fill(&ev, i, start+int64(n)*(benchSpan/benchPool))
		if states[d.recs[i].vix] != nil {
			sink++
		}
	}
	harness := float64(cpuTime()-h0) / float64(nb)
	runtime.KeepAlive(sink)
	// On a shared machine wall time includes waiting for a core; the
	// process's CPU time (GC included) gives records per second of one core.
	rate := float64(b.N) / (cpu.Seconds() - harness*float64(b.N)/1e9)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "wall_records/s")
	b.ReportMetric(harness, "harness_ns/record")
	b.ReportMetric(rate, "records/s/core")
	b.ReportMetric(rate/1e6, "x_target")

	out.Reset()
	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	var nv, ser, mem int
	for _, st := range states {
		if st == nil {
			continue
		}
		nv++
		buf, _ := st.MarshalBinary()
		ser += len(buf)
		mem += st.memSize() + 8 // + the slot holding the pointer
	}
	if nv > 0 {
		b.ReportMetric(float64(ser)/float64(nv), "ser_B/visitor")
		b.ReportMetric(float64(mem)/float64(nv), "mem_B/visitor")
		b.ReportMetric(float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc))/float64(nv), "heap_B/visitor")
	}

	// Baseline in the same run: decoding the same records from JSON.
	nDec := min(b.N, 50_000)
	raw := make([][]byte, nDec)
	for j := range raw {
		d.fill(&ev, j, start+int64(j))
		raw[j] = ev.AppendJSON(nil)
	}
	c0 := cpuTime()
	for _, r := range raw {
		if _, err := event.Decode(r); err != nil {
			b.Fatal(err)
		}
	}
	decRate := float64(nDec) / (cpuTime() - c0).Seconds()
	b.ReportMetric(rate/decRate, "x_decode")
	runtime.KeepAlive(states)
}

// cpuTime is the CPU time used by this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
