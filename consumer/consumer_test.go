package consumer_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/manhattan-go/manhattan/consumer"
	"github.com/manhattan-go/manhattan/consumer/consumertest"
	"github.com/manhattan-go/manhattan/internal/testenv"
	"github.com/manhattan-go/manhattan/reconcile"
	"github.com/manhattan-go/manhattan/store"
)

// chDB serves one data directory per process: every test uses its own
// database in this one.
var (
	chdbOnce sync.Once
	chdbDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if chdbDir != "" {
		_ = os.RemoveAll(chdbDir)
	}
	os.Exit(code)
}

func openCHDB(t *testing.T) store.Store {
	t.Helper()
	t.Setenv("CHDB_LIB_PATH", testenv.CHDBLibPath(t))
	chdbOnce.Do(func() {
		dir, err := os.MkdirTemp("", "manhattan-consumer-test-")
		if err != nil {
			panic(err)
		}
		chdbDir = filepath.Join(dir, "chdb")
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := store.Open(ctx, "chdb://"+chdbDir+"?database="+consumertest.Name("consumer"))
	if err != nil {
		t.Fatalf("open chdb store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return st
}

func newKafka(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

func options(t *testing.T, brokers []string, topic string, st store.Store) consumer.Options {
	return consumer.Options{
		Brokers:           brokers,
		Topic:             topic,
		Group:             topic + "-group",
		Store:             st,
		Engine:            consumertest.EngineConfig(),
		FlushEvents:       500,
		FlushInterval:     200 * time.Millisecond,
		CacheSize:         1000,
		Logger:            slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
		ProgressInterval:  2 * time.Second,
		ShutdownTimeout:   5 * time.Second,
		SessionTimeout:    6 * time.Second,
		HeartbeatInterval: 500 * time.Millisecond,
	}
}

// start runs a consumer until the returned stop is called; stop returns
// Run's error.
func start(t *testing.T, o consumer.Options) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- consumer.Run(ctx, o) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(o.ShutdownTimeout + 30*time.Second):
				err = fmt.Errorf("consumer did not stop within %v", o.ShutdownTimeout+30*time.Second)
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// workload creates a topic and fills it; it returns the records as stored.
func workload(t *testing.T, brokers []string, partitions, visitors int, poison bool) (string, []kafka.Message) {
	t.Helper()
	topic := consumertest.Name("events")
	consumertest.CreateTopic(t, brokers, topic, partitions)
	evs := consumertest.Events(uint64(visitors), visitors)
	msgs := consumertest.Messages(evs)
	if poison {
		// Spread poison records through the stream.
		bad := consumertest.Poison(evs[0].VID)
		for i, m := range bad {
			at := (i + 1) * len(msgs) / (len(bad) + 1)
			msgs = append(msgs[:at], append([]kafka.Message{m}, msgs[at:]...)...)
		}
	}
	consumertest.Produce(t, brokers, topic, msgs)
	return topic, consumertest.ReadAll(t, brokers, topic)
}

func TestCountsMatchOfflineEngineAndPoisonGoesToDeadLetters(t *testing.T) {
	brokers := newKafka(t)
	st := openCHDB(t)
	topic, recs := workload(t, brokers, 4, 400, true)
	want := consumertest.Offline(t, consumertest.EngineConfig(), recs)

	reg := prometheus.NewRegistry()
	o := options(t, brokers, topic, st)
	o.Registerer = reg
	stop := start(t, o)
	consumertest.WaitStored(t, st, consumertest.Ends(t, brokers, topic), 90*time.Second)
	if err := stop(); err != nil {
		t.Fatalf("consumer: %v", err)
	}
	consumertest.AssertCounts(t, st, want)

	dead := consumertest.ReadAll(t, brokers, topic+consumer.DeadLetterSuffix)
	if len(dead) != 4 {
		t.Fatalf("dead letters: got %d records, want 4", len(dead))
	}
	byOffset := map[string]kafka.Message{}
	for _, m := range recs {
		byOffset[fmt.Sprintf("%d/%d", m.Partition, m.Offset)] = m
	}
	for _, d := range dead {
		h := headers(d)
		src, ok := byOffset[h[consumer.HeaderSourcePartition]+"/"+h[consumer.HeaderSourceOffset]]
		if !ok || h[consumer.HeaderSourceTopic] != topic || h[consumer.HeaderReason] == "" {
			t.Errorf("dead letter headers %v do not name a source record", h)
			continue
		}
		if string(src.Value) != string(d.Value) || string(src.Key) != string(d.Key) {
			t.Errorf("dead letter %q is not the original record %q", d.Value, src.Value)
		}
		if _, valid := consumertest.Valid(src); valid {
			t.Errorf("valid record %q was dead-lettered (%s)", src.Value, h[consumer.HeaderReason])
		}
	}
	if got := metricSum(t, reg, "manhattan_consumer_dead_letters_total"); got != 4 {
		t.Errorf("dead letter metric = %v, want 4", got)
	}
	if got := metricSum(t, reg, "manhattan_consumer_records_total"); got != float64(len(recs)) {
		t.Errorf("records metric = %v, want %d", got, len(recs))
	}
}

func TestRestartMidStreamGivesSameCounts(t *testing.T) {
	brokers := newKafka(t)
	st := openCHDB(t)
	topic, recs := workload(t, brokers, 3, 600, false)
	want := consumertest.Offline(t, consumertest.EngineConfig(), recs)
	ends := consumertest.Ends(t, brokers, topic)

	o := options(t, brokers, topic, st)
	o.FlushEvents = 100
	o.FetchMaxBytes = 4 << 10 // small fetches, so the stop lands mid-stream
	stop := start(t, o)
	waitMarks(t, st, ends, func(stored, total int64) bool { return stored > 0 })
	if err := stop(); err != nil {
		t.Fatalf("first consumer: %v", err)
	}
	stored := storedTotal(t, st, ends)
	if stored >= int64(len(recs)) {
		t.Fatalf("first consumer stored everything (%d records): the restart is not mid-stream", stored)
	}
	t.Logf("first consumer stopped after %d of %d records", stored, len(recs))

	start(t, options(t, brokers, topic, st))
	consumertest.WaitStored(t, st, ends, 90*time.Second)
	consumertest.AssertCounts(t, st, want)
}

// A crash between the counters insert and the states insert leaves hw_s
// below hw_c; the next consumer replays that range with counts suppressed.
func TestCrashBetweenCountersAndStatesGivesSameCounts(t *testing.T) {
	brokers := newKafka(t)
	st := openCHDB(t)
	topic, recs := workload(t, brokers, 2, 600, false)
	want := consumertest.Offline(t, consumertest.EngineConfig(), recs)
	ends := consumertest.Ends(t, brokers, topic)

	flaky := &consumertest.FlakyStore{Store: st}
	o := options(t, brokers, topic, flaky)
	o.FlushEvents = 100
	o.FetchMaxBytes = 4 << 10
	o.ShutdownTimeout = time.Second
	stop := start(t, o)
	waitMarks(t, st, ends, func(stored, total int64) bool { return stored > 0 })
	flaky.StatesDown.Store(true)
	// Wait until some partition's counters moved past its states.
	deadline := time.Now().Add(30 * time.Second)
	for !anySplit(t, st, ends) {
		if time.Now().After(deadline) {
			t.Fatal("hw_c never moved past hw_s while state inserts failed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Shutdown with the store refusing states: bounded by ShutdownTimeout.
	t0 := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("first consumer: %v", err)
	}
	if took := time.Since(t0); took > o.ShutdownTimeout+5*time.Second {
		t.Errorf("shutdown took %v with ShutdownTimeout %v", took, o.ShutdownTimeout)
	}
	if !anySplit(t, st, ends) {
		t.Fatal("hw_s caught up with hw_c although state inserts failed")
	}

	start(t, options(t, brokers, topic, st))
	consumertest.WaitStored(t, st, ends, 90*time.Second)
	consumertest.AssertCounts(t, st, want)
}

func TestStoreOutageIsWaitedOut(t *testing.T) {
	brokers := newKafka(t)
	st := openCHDB(t)
	topic, recs := workload(t, brokers, 2, 500, false)
	want := consumertest.Offline(t, consumertest.EngineConfig(), recs)
	ends := consumertest.Ends(t, brokers, topic)

	flaky := &consumertest.FlakyStore{Store: st}
	reg := prometheus.NewRegistry()
	o := options(t, brokers, topic, flaky)
	o.FlushEvents = 100
	o.FetchMaxBytes = 4 << 10
	o.Registerer = reg
	stop := start(t, o)
	waitMarks(t, st, ends, func(stored, total int64) bool { return stored > 0 })
	flaky.Down.Store(true)
	before := storedTotal(t, st, ends)
	time.Sleep(2 * time.Second)
	if during := storedTotal(t, st, ends); during != before {
		t.Errorf("marks moved during the outage: %d → %d", before, during)
	}
	flaky.Down.Store(false)
	consumertest.WaitStored(t, st, ends, 90*time.Second)
	if err := stop(); err != nil {
		t.Fatalf("consumer: %v", err)
	}
	if flaky.Failures.Load() == 0 {
		t.Fatal("the outage failed no store call")
	}
	if retries := metricSum(t, reg, "manhattan_consumer_retries_total"); retries == 0 {
		t.Error("retries metric is 0 after an outage")
	}
	consumertest.AssertCounts(t, st, want)
}

func TestOptionsAreValidated(t *testing.T) {
	st := &consumertest.FlakyStore{}
	good := consumer.Options{Brokers: []string{"127.0.0.1:1"}, Topic: "t", Group: "g", Store: st}
	for name, tc := range map[string]struct {
		mod  func(*consumer.Options)
		want string
	}{
		"no brokers":   {func(o *consumer.Options) { o.Brokers = nil }, "kafka.brokers"},
		"no topic":     {func(o *consumer.Options) { o.Topic = "" }, "kafka.topic"},
		"no group":     {func(o *consumer.Options) { o.Group = "" }, "kafka.group"},
		"no store":     {func(o *consumer.Options) { o.Store = nil }, "clickhouse.url"},
		"dead = topic": {func(o *consumer.Options) { o.DeadLetterTopic = "t" }, "dead-letter"},
		"negative":     {func(o *consumer.Options) { o.FlushEvents = -1 }, "flush_events"},
		"bad rollup tz": {func(o *consumer.Options) {
			o.Engine.Rollups = []reconcile.Rollup{{Name: "d", Kind: "day", Timezone: "Mars/Olympus"}}
		}, "engine"},
	} {
		t.Run(name, func(t *testing.T) {
			o := good
			tc.mod(&o)
			err := consumer.Run(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func headers(m kafka.Message) map[string]string {
	h := map[string]string{}
	for _, x := range m.Headers {
		h[x.Key] = string(x.Value)
	}
	return h
}

// metricSum sums every series of a counter metric.
func metricSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func storedTotal(t *testing.T, st store.Store, ends map[int32]int64) int64 {
	t.Helper()
	var n int64
	for p := range ends {
		m, err := st.Marks(context.Background(), p)
		if err != nil {
			t.Fatalf("marks: %v", err)
		}
		n += m.HWC
	}
	return n
}

func anySplit(t *testing.T, st store.Store, ends map[int32]int64) bool {
	t.Helper()
	for p := range ends {
		m, err := st.Marks(context.Background(), p)
		if err != nil {
			t.Fatalf("marks: %v", err)
		}
		if m.Found && m.HWS < m.HWC {
			return true
		}
	}
	return false
}

func waitMarks(t *testing.T, st store.Store, ends map[int32]int64, ok func(stored, total int64) bool) {
	t.Helper()
	var total int64
	for _, e := range ends {
		total += e
	}
	deadline := time.Now().Add(60 * time.Second)
	for !ok(storedTotal(t, st, ends), total) {
		if time.Now().After(deadline) {
			t.Fatal("store marks did not move within 60s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A consumer started before its topic exists creates it and consumes what
// is produced afterwards (the usual order when a deployment starts).
func TestConsumerStartedBeforeTopicExists(t *testing.T) {
	brokers := newKafka(t)
	st := openCHDB(t)
	topic := consumertest.Name("late")
	stop := start(t, options(t, brokers, topic, st))
	time.Sleep(time.Second)
	consumertest.Produce(t, brokers, topic, consumertest.Messages(consumertest.Events(9, 200)))
	recs := consumertest.ReadAll(t, brokers, topic)
	consumertest.WaitStored(t, st, consumertest.Ends(t, brokers, topic), time.Minute)
	if err := stop(); err != nil {
		t.Fatalf("consumer: %v", err)
	}
	consumertest.AssertCounts(t, st, consumertest.Offline(t, consumertest.EngineConfig(), recs))
}
