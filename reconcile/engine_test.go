package reconcile

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/shopspring/decimal"

	"github.com/manhattan-go/manhattan/event"
)

const chromeUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"

func mustEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

func us(t time.Time) int64 { return t.UnixMicro() }

func page(ts int64) *event.Event {
	return &event.Event{Type: event.TypePage, TS: ts, VID: "v", SiteID: 1, UserAgent: chromeUA, URL: "/", Method: "GET"}
}
func pixel(ts int64) *event.Event {
	return &event.Event{Type: event.TypePixel, TS: ts, VID: "v", SiteID: 1}
}
func goal(ts int64, name, value string) *event.Event {
	e := &event.Event{Type: event.TypeGoal, TS: ts, VID: "v", SiteID: 1, Name: name, Value: value}
	if value != "" {
		e.ValueType, e.ValueFormat = "S", "N"
	}
	return e
}
func split(ts int64, test, pop string) *event.Event {
	return &event.Event{Type: event.TypeSplit, TS: ts, VID: "v", SiteID: 1, Test: test, Selected: pop}
}

func TestNewValidates(t *testing.T) {
	bad := []struct {
		cfg  Config
		want string
	}{
		{Config{Rollups: []Rollup{{Name: "x", Kind: "year"}}}, "unknown kind"},
		{Config{Rollups: []Rollup{{Name: "x", Kind: RollupDay, Timezone: "Mars/Olympus"}}}, "Mars/Olympus"},
		{Config{Rollups: []Rollup{{Name: "", Kind: RollupAll}}}, "empty name"},
		{Config{Rollups: []Rollup{{Name: "a", Kind: RollupAll}, {Name: "a", Kind: RollupDay}}}, "duplicate"},
		{Config{Rollups: []Rollup{{Name: "a", Kind: RollupBrowser, Timezone: "UTC"}}}, "timezone given"},
		{Config{ComplexGoals: []ComplexGoal{{Name: "c"}}}, "empty include"},
		{Config{ComplexGoals: []ComplexGoal{{Name: "c", Include: []string{"a"}}, {Name: "c", Include: []string{"b"}}}}, "duplicate"},
	}
	for _, b := range bad {
		_, err := New(b.cfg)
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("New(%+v) = %v, want error containing %q", b.cfg, err, b.want)
		}
	}
}

func TestBotsQueueAndConfirm(t *testing.T) {
	e := mustEngine(t, Config{})
	st, out := NewState(), NewOutput()
	t0 := us(time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC))
	for i := 0; i < MaxQueue+20; i++ {
		e.Apply(st, goal(t0+int64(i), "g"+string(rune('a'+i%26))+strings.Repeat("x", i/26), ""), true, out)
	}
	if len(out.Counters) != 0 || len(out.Goals) != 0 {
		t.Fatalf("unconfirmed visitor produced output: %v", out.Counters)
	}
	if st.qn != MaxQueue {
		t.Fatalf("queue length %d, want %d", st.qn, MaxQueue)
	}
	// Round trip keeps the ring order (oldest first).
	b, _ := st.MarshalBinary()
	st2 := NewState()
	if err := st2.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !e.Apply(st2, pixel(t0+10_000), true, out) {
		t.Fatal("first pixel reported no change")
	}
	if e.Apply(st2, pixel(t0+20_000), true, out) {
		t.Fatal("second pixel reported a change")
	}
	// The 20 oldest were dropped: goals 0..19 absent, 20..519 present.
	if _, ok := out.Goals["ga"]; ok {
		t.Error("oldest queued goal not dropped")
	}
	if m, ok := out.Goals["gu"]; !ok || m.TS != t0+20 {
		t.Errorf("goal gu meta = %+v, want TS %d", m, t0+20)
	}
	n := 0
	for k, d := range out.Counters {
		if k.Kind == KindConversion && d.Count == 1 {
			n++
		}
	}
	if n != MaxQueue {
		t.Errorf("%d conversions counted, want %d", n, MaxQueue)
	}
}

func TestDedupValuesAndVariants(t *testing.T) {
	e := mustEngine(t, Config{Rollups: []Rollup{{Name: "all", Kind: RollupAll}, {Name: "day", Kind: RollupDay, Timezone: "UTC"}}})
	st, out := NewState(), NewOutput()
	t0 := us(time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC))
	e.Apply(st, pixel(t0), true, out)
	e.Apply(st, goal(t0+1, "buy", "1.10"), true, out)
	e.Apply(st, split(t0+2, "t", "A"), true, out)
	e.Apply(st, split(t0+3, "t", "A"), true, out) // idempotent
	out.Reset()
	e.Apply(st, goal(t0+4, "buy", "2.20"), true, out)
	all := CounterKey{Kind: KindConversion, Site: 1, Goal: "buy", Rollup: "all"}
	if d := out.Counters[all]; d == nil || d.Count != 0 || !d.Value.Equal(decimal.RequireFromString("2.2")) {
		t.Errorf("repeat conversion delta = %+v, want {0 2.2}", d)
	}
	vk := CounterKey{Kind: KindVariantConversion, Site: 1, Goal: "buy", Test: "t", Population: "A", Rollup: "day", Bucket: "2026-01-05"}
	if d := out.Counters[vk]; d == nil || d.Count != 1 || !d.Value.Equal(decimal.RequireFromString("2.2")) {
		t.Errorf("first variant conversion delta = %+v, want {1 2.2}", d)
	}
	if len(st.variants) != 1 {
		t.Errorf("variants = %v, want one", st.variants)
	}
	// Next day: a new bucket for day, none for all.
	out.Reset()
	e.Apply(st, goal(t0+us(time.Unix(86400, 0)), "buy", ""), true, out)
	if d := out.Counters[all]; d != nil {
		t.Errorf("all-rollup counted twice: %+v", d)
	}
	if d := out.Counters[CounterKey{Kind: KindConversion, Site: 1, Goal: "buy", Rollup: "day", Bucket: "2026-01-06"}]; d == nil || d.Count != 1 {
		t.Errorf("new day bucket delta = %+v", d)
	}
	// counted=false: state changes, no deltas.
	out.Reset()
	if !e.Apply(st, goal(t0+5, "other", "3"), false, out) {
		t.Error("Apply reported no change")
	}
	if len(out.Counters) != 0 {
		t.Errorf("uncounted apply emitted %v", out.Counters)
	}
	e.Apply(st, goal(t0+6, "other", ""), true, out)
	if d := out.Counters[CounterKey{Kind: KindConversion, Site: 1, Goal: "other", Rollup: "all"}]; d != nil {
		t.Errorf("conversion counted after uncounted replay: %+v", d)
	}
}

func TestComplexGoals(t *testing.T) {
	cfg := Config{
		Rollups:      []Rollup{{Name: "all", Kind: RollupAll}, {Name: "hour", Kind: RollupHour, Timezone: "UTC"}},
		ComplexGoals: []ComplexGoal{{Name: "abandon", Include: []string{"cart", "look"}, Exclude: []string{"buy"}}},
	}
	e := mustEngine(t, cfg)
	t0 := us(time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC))
	hour := int64(3600_000_000)
	key := func(rollup, bucket, test, pop string) CounterKey {
		k := CounterKey{Kind: KindConversion, Site: 1, Goal: "abandon", Rollup: rollup, Bucket: bucket}
		if test != "" {
			k.Kind, k.Test, k.Population = KindVariantConversion, test, pop
		}
		return k
	}
	tot := newTotals()
	st, out := NewState(), NewOutput()
	e.Apply(st, pixel(t0), true, out)
	e.Apply(st, split(t0, "t", "A"), true, out)
	e.Apply(st, goal(t0+1, "cart", ""), true, out)
	if len(out.Counters) == 0 || out.Counters[key("all", "", "", "")] != nil {
		t.Fatal("complex goal converted before include set complete")
	}
	e.Apply(st, goal(t0+2, "look", ""), true, out)
	e.Apply(st, split(t0+3, "u", "B"), true, out) // after conversion: not attributed
	if d := out.Counters[key("hour", "2026-01-05T10", "t", "A")]; d == nil || d.Count != 1 {
		t.Fatalf("complex conversion for variant = %+v", d)
	}
	tot.merge(out)
	out.Reset()
	// Taken back an hour later, in the buckets where it was added.
	e.Apply(st, goal(t0+hour, "buy", ""), true, out)
	if d := out.Counters[key("hour", "2026-01-05T10", "t", "A")]; d == nil || d.Count != -1 {
		t.Fatalf("take-back = %+v", d)
	}
	tot.merge(out)
	for k := range tot.counters {
		if k.Goal == "abandon" {
			t.Errorf("complex goal left after take-back: %+v", k)
		}
	}
	// Exclude before include: never converts.
	st, out = NewState(), NewOutput()
	e.Apply(st, pixel(t0), true, out)
	e.Apply(st, goal(t0, "buy", ""), true, out)
	e.Apply(st, goal(t0, "cart", ""), true, out)
	e.Apply(st, goal(t0, "look", ""), true, out)
	for k := range out.Counters {
		if k.Goal == "abandon" {
			t.Errorf("excluded visitor converted: %+v", k)
		}
	}
}

func TestBuckets(t *testing.T) {
	e := mustEngine(t, Config{Rollups: []Rollup{
		{Name: "h", Kind: RollupHour, Timezone: "America/New_York"},
		{Name: "d", Kind: RollupDay, Timezone: "Australia/Lord_Howe"}, // 30-minute DST shift
		{Name: "w", Kind: RollupWeek, Timezone: "Europe/Paris"},
		{Name: "m", Kind: RollupMonth, Timezone: "Pacific/Kiritimati"},
		{Name: "b", Kind: RollupBrowser},
	}})
	cases := []struct {
		at   time.Time
		want []string
	}{
		// 2026-11-01 01:30 EDT and 01:30 EST are both hour "01".
		{time.Date(2026, 11, 1, 5, 30, 0, 0, time.UTC), []string{"2026-11-01T01", "2026-11-01", "2026-11-01", "2026-11"}},
		{time.Date(2026, 11, 1, 6, 30, 0, 0, time.UTC), []string{"2026-11-01T01", "2026-11-01", "2026-11-01", "2026-11"}},
		{time.Date(2026, 11, 1, 7, 0, 0, 0, time.UTC), []string{"2026-11-01T02", "2026-11-01", "2026-11-01", "2026-11"}},
		// Spring forward: 01:59:59 EST then 03:00 EDT.
		{time.Date(2026, 3, 8, 6, 59, 59, 0, time.UTC), []string{"2026-03-08T01", "2026-03-08", "2026-03-08", "2026-03"}},
		{time.Date(2026, 3, 8, 7, 0, 0, 0, time.UTC), []string{"2026-03-08T03", "2026-03-08", "2026-03-08", "2026-03"}},
		// Saturday 2026-01-10 23:30 Paris is in the week of Sunday 01-04;
		// Sunday 00:30 Paris starts the next. Kiritimati is UTC+14.
		{time.Date(2026, 1, 10, 22, 30, 0, 0, time.UTC), []string{"2026-01-10T17", "2026-01-11", "2026-01-04", "2026-01"}},
		{time.Date(2026, 1, 10, 23, 30, 0, 0, time.UTC), []string{"2026-01-10T18", "2026-01-11", "2026-01-11", "2026-01"}},
		{time.Date(2026, 1, 31, 10, 0, 0, 0, time.UTC), []string{"2026-01-31T05", "2026-01-31", "2026-01-25", "2026-02"}},
	}
	for _, c := range cases {
		for pass := 0; pass < 2; pass++ { // second pass hits the slot cache
			var tbl [maxRollups]rb
			got := e.buckets(&tbl, c.at.UnixMicro(), "Chrome")
			for i, w := range c.want {
				if got[i].bucket != w {
					t.Errorf("%v rollup %s: bucket %q, want %q", c.at, e.rollups[i].name, got[i].bucket, w)
				}
			}
			if got[4].bucket != "Chrome" {
				t.Errorf("browser bucket %q", got[4].bucket)
			}
		}
	}
	// Every 7½ minutes across a year agrees with direct formatting.
	for ts := us(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); ts < us(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)); ts += 450_000_000 + 7 {
		var tbl [maxRollups]rb
		got := e.buckets(&tbl, ts, "")
		for i, r := range e.rollups[:4] {
			if w := r.format(ts); got[i].bucket != w {
				t.Fatalf("%v rollup %s: cached %q, direct %q", time.UnixMicro(ts).UTC(), r.name, got[i].bucket, w)
			}
		}
	}
}

func TestBrowserFirstUserAgent(t *testing.T) {
	e := mustEngine(t, Config{Rollups: []Rollup{{Name: "b", Kind: RollupBrowser}}})
	st, out := NewState(), NewOutput()
	e.Apply(st, goal(1, "early", ""), true, out) // queued; no UA yet when applied
	p := page(2)
	e.Apply(st, p, true, out)
	ff := page(3)
	ff.UserAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
	e.Apply(st, ff, true, out)
	e.Apply(st, pixel(4), true, out)
	e.Apply(st, goal(5, "late", ""), true, out)
	for k, want := range map[string]string{"early": "", ViewedPage: "Chrome", "late": "Chrome"} {
		found := false
		for key := range out.Counters {
			if key.Goal == k {
				found = true
				if key.Bucket != want {
					t.Errorf("goal %q browser bucket %q, want %q", k, key.Bucket, want)
				}
			}
		}
		if !found {
			t.Errorf("goal %q not counted", k)
		}
	}
}

func TestGoalValue(t *testing.T) {
	d := decimal.RequireFromString
	cases := []struct {
		vt       string
		sum      string
		conv, pv int64
		want     string
	}{
		{"", "99", 3, 10, "3"},
		{"S", "12.5", 3, 10, "12.5"},
		{"A", "10", 4, 10, "2.5"},
		{"A", "10", 0, 10, "0"},
		{"I", "3", 4, 6, "0.5"},
		{"R", "3", 4, 0, "0"},
	}
	for _, c := range cases {
		if got := GoalValue(c.vt, d(c.sum), c.conv, c.pv); !got.Equal(d(c.want)) {
			t.Errorf("GoalValue(%q, %s, %d, %d) = %s, want %s", c.vt, c.sum, c.conv, c.pv, got, c.want)
		}
	}
}

func TestUnmarshalRejects(t *testing.T) {
	e := mustEngine(t, propConfig)
	st, out := NewState(), NewOutput()
	e.Apply(st, page(1), true, out)
	e.Apply(st, split(2, "t", "A"), true, out)
	e.Apply(st, goal(3, "cart", "1"), true, out)
	b, _ := st.MarshalBinary()
	for i := 0; i < len(b); i++ {
		if err := NewState().UnmarshalBinary(b[:i]); !errors.Is(err, ErrCorruptState) {
			t.Fatalf("truncated at %d/%d: err = %v", i, len(b), err)
		}
	}
	if err := NewState().UnmarshalBinary(append(b[:len(b):len(b)], 0)); err == nil {
		t.Error("trailing byte accepted")
	}
	bad := append([]byte{}, b...)
	bad[0] = 9
	if err := NewState().UnmarshalBinary(bad); err == nil || !strings.Contains(err.Error(), "version") {
		t.Errorf("unknown version: %v", err)
	}
}

// State's layout keeps a record's hot fields in one cache line; see State.
func TestStateLayout(t *testing.T) {
	if n := unsafe.Sizeof(State{}); n != 128 {
		t.Errorf("State is %d bytes, want 128 (own size class, line-aligned)", n)
	}
	if off := unsafe.Offsetof(State{}.variants) + unsafe.Sizeof(State{}.variants); off > 64 {
		t.Errorf("hot fields end at byte %d, want ≤ 64", off)
	}
}
