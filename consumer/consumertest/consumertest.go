// Package consumertest holds what the consumer's tests share: a generated
// workload, Kafka topic helpers, the offline engine run that defines the
// expected counts, and the comparison of a store against it.
package consumertest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/shopspring/decimal"

	"github.com/manhattan-go/manhattan/event"
	"github.com/manhattan-go/manhattan/reconcile"
	"github.com/manhattan-go/manhattan/store"
)

var seq atomic.Int64

// Name returns a name unique to this test run, usable as a Kafka topic,
// consumer group or ClickHouse database.
func Name(prefix string) string {
	return fmt.Sprintf("%s_%d_%d", prefix, time.Now().UnixNano()%1_000_000_000, seq.Add(1))
}

// EngineConfig exercises every rollup kind, time zones and a complex goal.
func EngineConfig() reconcile.Config {
	return reconcile.Config{
		Rollups: []reconcile.Rollup{
			{Name: "all", Kind: reconcile.RollupAll},
			{Name: "day", Kind: reconcile.RollupDay, Timezone: "UTC"},
			{Name: "hour_ny", Kind: reconcile.RollupHour, Timezone: "America/New_York"},
			{Name: "week", Kind: reconcile.RollupWeek, Timezone: "Europe/Paris"},
			{Name: "browser", Kind: reconcile.RollupBrowser},
		},
		ComplexGoals: []reconcile.ComplexGoal{
			{Name: "pie then signup", Include: []string{"pie accomplished", "signup"}, Exclude: []string{"refund"}},
		},
	}
}

var userAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
	"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
	"",
}

// Base is the event time of the first generated event.
var Base = time.Date(2026, 3, 7, 20, 0, 0, 0, time.UTC)

// Events generates a deterministic workload of the given number of
// visitors: humans (a pixel after their first page, some events queued
// before it), bots that never send a pixel, split impressions, goals with
// and without values, refunds taking back the complex goal. Each visitor's
// events are in time order; visitors' sessions overlap (about visitors/100
// at a time, at least 50). Event times span about three days.
func Events(seed uint64, visitors int) []event.Event {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	per := make([][]event.Event, visitors)
	total := 0
	for v := range per {
		vid := fmt.Sprintf("%040x", r.Uint64()) + strconv.Itoa(v)
		site := int64(r.IntN(2))
		ua := userAgents[r.IntN(len(userAgents))]
		human := r.IntN(5) != 0
		n := 2 + r.IntN(8)
		var evs []event.Event
		page := func() event.Event {
			return event.Event{Type: event.TypePage, VID: vid, SiteID: site, IP: "10.0.0." + strconv.Itoa(v%250),
				Method: "GET", URL: "/p/" + strconv.Itoa(r.IntN(20)), UserAgent: ua, Referer: ""}
		}
		evs = append(evs, page())
		for i := 0; i < n; i++ {
			if human && i == 1 {
				evs = append(evs, event.Event{Type: event.TypePixel, VID: vid, SiteID: site})
			}
			switch k := r.IntN(10); {
			case k < 3:
				evs = append(evs, page())
			case k < 5:
				tests := []struct {
					name string
					pops []string
				}{
					{"superior dessert preference", []string{"True", "False"}},
					{"button colour", []string{"red", "green", "blue"}},
				}
				tt := tests[r.IntN(len(tests))]
				evs = append(evs, event.Event{Type: event.TypeSplit, VID: vid, SiteID: site,
					Test: tt.name, Selected: tt.pops[r.IntN(len(tt.pops))]})
			case k < 7:
				evs = append(evs, event.Event{Type: event.TypeGoal, VID: vid, SiteID: site, Name: "pie accomplished"})
			case k < 8:
				evs = append(evs, event.Event{Type: event.TypeGoal, VID: vid, SiteID: site, Name: "purchase",
					Value: fmt.Sprintf("%d.%02d", r.IntN(100), r.IntN(100)), ValueType: "S", ValueFormat: "C"})
			case k < 9:
				evs = append(evs, event.Event{Type: event.TypeGoal, VID: vid, SiteID: site, Name: "signup"})
			default:
				evs = append(evs, event.Event{Type: event.TypeGoal, VID: vid, SiteID: site, Name: "refund"})
			}
		}
		per[v] = evs
		total += len(evs)
	}
	// Interleave visitors, keeping each one's order, as concurrent
	// sessions: a window of active visitors, a new one arriving when one
	// leaves. Time moves forward.
	out := make([]event.Event, 0, total)
	next := make([]int, visitors)
	window := max(50, visitors/100)
	live := make([]int, 0, window)
	arrived := 0
	step := int64(3*24*time.Hour/time.Microsecond) / int64(max(total, 1))
	ts := Base.UnixMicro()
	for len(live) > 0 || arrived < visitors {
		for len(live) < window && arrived < visitors {
			live = append(live, arrived)
			arrived++
		}
		i := r.IntN(len(live))
		v := live[i]
		ev := per[v][next[v]]
		ts += 1 + r.Int64N(2*step+1)
		ev.TS = ts
		out = append(out, ev)
		next[v]++
		if next[v] == len(per[v]) {
			live[i] = live[len(live)-1]
			live = live[:len(live)-1]
		}
	}
	return out
}

// Messages encodes events as records keyed by visitor id.
func Messages(evs []event.Event) []kafka.Message {
	out := make([]kafka.Message, len(evs))
	for i := range evs {
		out[i] = kafka.Message{Key: []byte(evs[i].VID), Value: evs[i].AppendJSON(nil)}
	}
	return out
}

// Poison returns records the consumer must dead-letter: not JSON, an
// unknown type, a bad decimal, and a key that is not the visitor id.
func Poison(vid string) []kafka.Message {
	good := event.Event{Type: event.TypePage, TS: Base.UnixMicro(), VID: vid, Method: "GET", URL: "/"}
	return []kafka.Message{
		{Key: []byte(vid), Value: []byte("this is not json {")},
		{Key: []byte(vid), Value: []byte(`{"v":1,"type":"teleport","ts":1700000000.000000,"vid":"` + vid + `","site_id":0}`)},
		{Key: []byte(vid), Value: []byte(`{"v":1,"type":"goal","ts":1700000000.000000,"vid":"` + vid + `","site_id":0,"name":"x","value":"1e5x"}`)},
		{Key: []byte("someone-else"), Value: good.AppendJSON(nil)},
	}
}

// CreateTopic creates a topic with the given partition count.
func CreateTopic(t testing.TB, brokers []string, topic string, partitions int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(brokers...)}
	res, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: partitions, ReplicationFactor: 1,
	}}})
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	if err := res.Errors[topic]; err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	// Wait until every partition has a leader.
	deadline := time.Now().Add(30 * time.Second)
	for {
		md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err == nil && len(md.Topics) == 1 && md.Topics[0].Error == nil && len(md.Topics[0].Partitions) == partitions {
			ok := true
			for _, p := range md.Topics[0].Partitions {
				ok = ok && p.Error == nil && p.Leader.Host != ""
			}
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s: partitions have no leader after 30s (last error %v)", topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Writer returns a producer partitioning like the project's producer
// (murmur2 on the key).
func Writer(brokers []string, topic string) *kafka.Writer {
	return &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    5000,
		BatchTimeout: 5 * time.Millisecond,
	}
}

// Produce writes msgs to topic.
func Produce(t testing.TB, brokers []string, topic string, msgs []kafka.Message) {
	t.Helper()
	w := Writer(brokers, topic)
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for len(msgs) > 0 {
		n := min(len(msgs), 20000)
		if err := w.WriteMessages(ctx, msgs[:n]...); err != nil {
			t.Fatalf("produce to %s: %v", topic, err)
		}
		msgs = msgs[n:]
	}
}

// Ends returns the end offset (next offset to be written) of every
// partition of topic.
func Ends(t testing.TB, brokers []string, topic string) map[int32]int64 {
	t.Helper()
	conn, err := kafka.Dial("tcp", brokers[0])
	if err != nil {
		t.Fatalf("dial %s: %v", brokers[0], err)
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	ends := map[int32]int64{}
	for _, p := range parts {
		c, err := kafka.DialLeader(context.Background(), "tcp", brokers[0], topic, p.ID)
		if err != nil {
			t.Fatalf("dial leader of %s/%d: %v", topic, p.ID, err)
		}
		last, err := c.ReadLastOffset()
		c.Close()
		if err != nil {
			t.Fatalf("end of %s/%d: %v", topic, p.ID, err)
		}
		ends[int32(p.ID)] = last
	}
	return ends
}

// ReadAll returns every record of topic, by partition then offset.
func ReadAll(t testing.TB, brokers []string, topic string) []kafka.Message {
	t.Helper()
	var out []kafka.Message
	ends := Ends(t, brokers, topic)
	ids := make([]int32, 0, len(ends))
	for p := range ends {
		ids = append(ids, p)
	}
	slices.Sort(ids)
	for _, p := range ids {
		end := ends[p]
		if end == 0 {
			continue
		}
		// A short MaxWait: Close waits for the long poll past the end.
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: int(p), MaxBytes: 8 << 20, MaxWait: 100 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				cancel()
				r.Close()
				t.Fatalf("read %s/%d: %v", topic, p, err)
			}
			out = append(out, m)
			if m.Offset >= end-1 {
				break
			}
		}
		cancel()
		r.Close()
	}
	return out
}

// Valid reports whether the consumer counts a record: it decodes and is
// keyed by its visitor id. Everything else is dead-lettered.
func Valid(m kafka.Message) (event.Event, bool) {
	ev, err := event.Decode(m.Value)
	return ev, err == nil && string(m.Key) == ev.VID
}

// Offline runs the engine over msgs as one clean run: each partition in
// offset order, every record counted, invalid records skipped. Its output is
// what the store must hold after any number of crashes and rebalances.
func Offline(t testing.TB, cfg reconcile.Config, msgs []kafka.Message) *reconcile.Output {
	t.Helper()
	e, err := reconcile.New(cfg)
	if err != nil {
		t.Fatalf("engine: %v", err)
	}
	sorted := slices.Clone(msgs)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].Partition != sorted[j].Partition {
			return sorted[i].Partition < sorted[j].Partition
		}
		return sorted[i].Offset < sorted[j].Offset
	})
	out := reconcile.NewOutput()
	states := map[string]*reconcile.State{}
	for _, m := range sorted {
		ev, ok := Valid(m)
		if !ok {
			continue
		}
		st := states[ev.VID]
		if st == nil {
			st = reconcile.NewState()
			states[ev.VID] = st
		}
		e.Apply(st, &ev, true, out)
	}
	return out
}

// WaitStored waits until the store's marks of every partition reach its
// end offset (both hw_c and hw_s: everything processed and flushed).
func WaitStored(t testing.TB, st store.Store, ends map[int32]int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, behind := true, ""
		for p, end := range ends {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			m, err := st.Marks(ctx, p)
			cancel()
			if err != nil || m.HWC < end || m.HWS < end {
				done = false
				behind = fmt.Sprintf("partition %d: marks %+v, end %d, err %v", p, m, end, err)
				break
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not catch up within %v: %s", timeout, behind)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// AssertCounts compares the store's counters and metadata with want (an
// Offline output): per (kind, rollup, site) totals of every rollup, every
// counter of rollup "all", and a sample of the others.
func AssertCounts(t testing.TB, st store.Store, want *reconcile.Output) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type key = reconcile.CounterKey
	var keys []key
	for k, d := range want.Counters {
		if d.Count != 0 || !d.Value.IsZero() {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		t.Fatal("offline run produced no counters: the workload is broken")
	}
	slices.SortFunc(keys, func(a, b key) int { return compareKeys(a, b) })

	// expected sums want over the keys a query matches (empty = any).
	expected := func(q store.CounterQuery) (int64, decimal.Decimal) {
		var n int64
		v := decimal.Zero
		for k, d := range want.Counters {
			if k.Kind == q.Kind && k.Rollup == q.Rollup && (q.Site == nil || *q.Site == k.Site) &&
				(q.Goal == "" || q.Goal == k.Goal) && (q.Test == "" || q.Test == k.Test) &&
				(q.Population == "" || q.Population == k.Population) && (q.Bucket == "" || q.Bucket == k.Bucket) {
				n += d.Count
				v = v.Add(d.Value)
			}
		}
		return n, v
	}
	check := func(q store.CounterQuery) {
		got, err := st.Counter(ctx, q)
		if err != nil {
			t.Fatalf("counter %+v: %v", q, err)
		}
		n, v := expected(q)
		if got.Count != n || !got.Value.Equal(v) {
			t.Errorf("counter kind=%s goal=%q test=%q population=%q rollup=%q bucket=%q site=%d: got %d/%s, want %d/%s",
				q.Kind, q.Goal, q.Test, q.Population, q.Rollup, q.Bucket, *q.Site, got.Count, got.Value, n, v)
		}
	}
	type krs struct {
		kind   reconcile.Kind
		rollup string
		site   int64
	}
	seen := map[krs]bool{}
	sample := 0
	for i, k := range keys {
		site := k.Site
		if g := (krs{k.Kind, k.Rollup, k.Site}); !seen[g] {
			seen[g] = true
			check(store.CounterQuery{Kind: k.Kind, Rollup: k.Rollup, Site: &site})
		}
		if k.Rollup == "all" || (i%7 == 0 && sample < 60) {
			if k.Rollup != "all" {
				sample++
			}
			check(store.CounterQuery{Kind: k.Kind, Goal: k.Goal, Test: k.Test, Population: k.Population,
				Rollup: k.Rollup, Bucket: k.Bucket, Site: &site})
		}
	}

	goals, err := st.Goals(ctx)
	if err != nil {
		t.Fatalf("goals: %v", err)
	}
	if len(goals) != len(want.Goals) {
		t.Errorf("goals: got %d, want %d", len(goals), len(want.Goals))
	}
	for _, g := range goals {
		w, ok := want.Goals[g.Name]
		if !ok || w.ValueType != g.ValueType || w.ValueFormat != g.ValueFormat {
			t.Errorf("goal %q: got %+v, want %+v (known %v)", g.Name, g, w, ok)
		}
	}
	tests, err := st.Tests(ctx)
	if err != nil {
		t.Fatalf("tests: %v", err)
	}
	if len(tests) != len(want.Tests) {
		t.Errorf("tests: got %d, want %d", len(tests), len(want.Tests))
	}
	for _, g := range tests {
		w, ok := want.Tests[g.Name]
		if !ok || w.First/1_000_000 != g.First/1_000_000 || w.Last/1_000_000 != g.Last/1_000_000 ||
			!slices.Equal(w.Populations, g.Populations) {
			t.Errorf("test %q: got %+v, want %+v", g.Name, g, w)
		}
	}
}

func compareKeys(a, b reconcile.CounterKey) int {
	switch {
	case a.Kind != b.Kind:
		return int(a.Kind) - int(b.Kind)
	case a.Rollup != b.Rollup:
		return cmpStr(a.Rollup, b.Rollup)
	case a.Site != b.Site:
		return int(a.Site - b.Site)
	case a.Goal != b.Goal:
		return cmpStr(a.Goal, b.Goal)
	case a.Test != b.Test:
		return cmpStr(a.Test, b.Test)
	case a.Population != b.Population:
		return cmpStr(a.Population, b.Population)
	}
	return cmpStr(a.Bucket, b.Bucket)
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ErrOutage is what FlakyStore returns while it is down.
var ErrOutage = errors.New("consumertest: store outage (injected)")

// FlakyStore wraps a store and fails chosen write steps on demand, to test
// retries and crashes between flush steps.
type FlakyStore struct {
	store.Store
	// Down makes every call fail while it is true.
	Down atomic.Bool
	// StatesDown makes only InsertStates fail (counters land, states do
	// not: the replay-with-suppressed-deltas path).
	StatesDown atomic.Bool
	Failures   atomic.Int64
}

func (f *FlakyStore) fail() error {
	if f.Down.Load() {
		f.Failures.Add(1)
		return ErrOutage
	}
	return nil
}

func (f *FlakyStore) Flush(ctx context.Context, b *store.Batch) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.Flush(ctx, b)
}

func (f *FlakyStore) InsertEvents(ctx context.Context, b *store.Batch) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.InsertEvents(ctx, b)
}

func (f *FlakyStore) InsertCounters(ctx context.Context, b *store.Batch) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.InsertCounters(ctx, b)
}

func (f *FlakyStore) UpsertMeta(ctx context.Context, b *store.Batch) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.UpsertMeta(ctx, b)
}

func (f *FlakyStore) InsertStates(ctx context.Context, b *store.Batch) error {
	if err := f.fail(); err != nil {
		return err
	}
	if f.StatesDown.Load() {
		f.Failures.Add(1)
		return ErrOutage
	}
	return f.Store.InsertStates(ctx, b)
}

func (f *FlakyStore) Marks(ctx context.Context, p int32) (store.Marks, error) {
	if err := f.fail(); err != nil {
		return store.Marks{}, err
	}
	return f.Store.Marks(ctx, p)
}

func (f *FlakyStore) LoadStates(ctx context.Context, vids []string) (map[string][]byte, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.LoadStates(ctx, vids)
}
