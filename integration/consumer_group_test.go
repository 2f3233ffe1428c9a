package integration

// Consumer groups on Apache Kafka, with the ClickHouse server and with
// chDB: several consumers sharing a topic, consumers SIGKILLed and
// restarted, and poison records; every run must store exactly the counts of
// the engine run offline over the same records.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/manhattan-go/manhattan/consumer"
	"github.com/manhattan-go/manhattan/consumer/consumertest"
	"github.com/manhattan-go/manhattan/internal/storetest"
	"github.com/manhattan-go/manhattan/internal/testenv"
	"github.com/manhattan-go/manhattan/store"
)

const consumerPartitions = 6

// consumerWorkload is a generated stream with poison records spread through
// it, produced to a new topic.
type consumerWorkload struct {
	brokers []string
	topic   string
	msgs    []kafka.Message
	poison  int
}

func newConsumerWorkload(t *testing.T, visitors int) *consumerWorkload {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	topic := consumertest.Name("consumer_it")
	consumertest.CreateTopic(t, brokers, topic, consumerPartitions)
	evs := consumertest.Events(uint64(visitors)*7919, visitors)
	msgs := consumertest.Messages(evs)
	bad := consumertest.Poison(evs[len(evs)/2].VID)
	for i, m := range bad {
		at := (i + 1) * len(msgs) / (len(bad) + 1)
		msgs = append(msgs[:at], append([]kafka.Message{m}, msgs[at:]...)...)
	}
	return &consumerWorkload{brokers: brokers, topic: topic, msgs: msgs, poison: len(bad)}
}

// produceOver writes the workload in chunks spread over d, so consumers
// join, die and rebalance while records keep arriving. The returned wait
// blocks until everything is written.
func (w *consumerWorkload) produceOver(t *testing.T, d time.Duration) (wait func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		wr := consumertest.Writer(w.brokers, w.topic)
		defer wr.Close()
		const chunks = 40
		for i := 0; i < chunks; i++ {
			part := w.msgs[i*len(w.msgs)/chunks : (i+1)*len(w.msgs)/chunks]
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			err := wr.WriteMessages(ctx, part...)
			cancel()
			if err != nil {
				t.Errorf("produce: %v", err)
				return
			}
			time.Sleep(d / chunks)
		}
	}()
	return func() {
		t.Helper()
		select {
		case <-done:
		case <-time.After(d + 2*time.Minute):
			t.Fatal("producer did not finish")
		}
	}
}

// finish returns what the store must hold: the offline engine's counts over
// the records as stored in Kafka, and the partitions' end offsets.
func (w *consumerWorkload) finish(t *testing.T) (ends map[int32]int64, recs []kafka.Message) {
	t.Helper()
	recs = consumertest.ReadAll(t, w.brokers, w.topic)
	if len(recs) != len(w.msgs) {
		t.Fatalf("topic holds %d records, produced %d", len(recs), len(w.msgs))
	}
	return consumertest.Ends(t, w.brokers, w.topic), recs
}

// assertDeadLetters checks that exactly the poison records reached the
// dead-letter topic (a crash may repeat one: dead letters are at least once).
func (w *consumerWorkload) assertDeadLetters(t *testing.T, recs []kafka.Message) {
	t.Helper()
	want := map[string]kafka.Message{}
	for _, m := range recs {
		if _, ok := consumertest.Valid(m); !ok {
			want[fmt.Sprintf("%d/%d", m.Partition, m.Offset)] = m
		}
	}
	if len(want) != w.poison {
		t.Fatalf("%d invalid records in the topic, want the %d poison records", len(want), w.poison)
	}
	got := map[string]bool{}
	for _, d := range consumertest.ReadAll(t, w.brokers, w.topic+consumer.DeadLetterSuffix) {
		h := map[string]string{}
		for _, x := range d.Headers {
			h[x.Key] = string(x.Value)
		}
		src := h[consumer.HeaderSourcePartition] + "/" + h[consumer.HeaderSourceOffset]
		m, ok := want[src]
		switch {
		case !ok:
			t.Errorf("dead letter from %s (%s) is not a poison record", src, h[consumer.HeaderReason])
		case !bytes.Equal(m.Value, d.Value) || !bytes.Equal(m.Key, d.Key):
			t.Errorf("dead letter from %s does not carry the original record", src)
		case h[consumer.HeaderReason] == "" || h[consumer.HeaderSourceTopic] != w.topic:
			t.Errorf("dead letter from %s: headers %v", src, h)
		}
		got[src] = true
	}
	for src := range want {
		if !got[src] {
			t.Errorf("poison record %s is missing from the dead-letter topic", src)
		}
	}
}

// serverStore opens a new database on the ClickHouse server.
func serverStore(t testing.TB) (store.Store, string) {
	t.Helper()
	base := strings.TrimSuffix(testenv.ClickHouseURL(t), "/")
	url := base + "/" + consumertest.Name("consumer_it")
	t.Cleanup(func() { // after the store's own cleanup closed it
		if os.Getenv("MANHATTAN_CONSUMER_LOG_DIR") != "" { // debugging: keep it
			return
		}
		if err := storetest.DropDatabase(url); err != nil {
			t.Logf("%v", err)
		}
	})
	return storetest.Open(t, url), url
}

// chdbStore opens a chDB store in a new directory; chDB serves one
// directory per process, so it is closed at the end of the test.
func chdbStore(t *testing.T) (store.Store, string) {
	t.Helper()
	t.Setenv("CHDB_LIB_PATH", testenv.CHDBLibPath(t))
	url := "chdb://" + filepath.Join(t.TempDir(), "chdb")
	return storetest.Open(t, url), url
}

// goroutineConsumer runs consumer.Run in this process (for chDB, whose
// directory one process holds).
type goroutineConsumer struct {
	cancel context.CancelFunc
	done   chan error
	logs   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startGoroutineConsumer(t *testing.T, cfg childConfig, st store.Store) *goroutineConsumer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g := &goroutineConsumer{cancel: cancel, done: make(chan error, 1), logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(g.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	go func() { g.done <- consumer.Run(ctx, childOptions(cfg, st, log)) }()
	t.Cleanup(func() {
		if err := g.stop(); err != nil {
			t.Errorf("consumer: %v", err)
		}
		if t.Failed() {
			lines := strings.Split(strings.TrimSpace(g.logs.String()), "\n")
			t.Logf("last consumer log lines:\n%s", strings.Join(lines[max(0, len(lines)-20):], "\n"))
		}
	})
	return g
}

func (g *goroutineConsumer) stop() error {
	g.cancel()
	select {
	case err := <-g.done:
		g.done <- err // stop is idempotent
		return err
	case <-time.After(time.Minute):
		return fmt.Errorf("consumer did not stop within a minute")
	}
}

func groupConfig(w *consumerWorkload, url string) childConfig {
	return childConfig{
		Brokers:       w.brokers,
		Topic:         w.topic,
		Group:         w.topic + "_group",
		StoreURL:      url,
		FlushEvents:   1000,
		FlushInterval: 300 * time.Millisecond,
	}
}

// (1) Two and three consumer processes sharing the topic store the offline
// engine's counts; each gets partitions; poison records are dead-lettered.
func TestConsumerGroupProcessesMatchOfflineEngineClickHouse(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d_processes", n), func(t *testing.T) {
			st, url := serverStore(t)
			w := newConsumerWorkload(t, 2500)
			cfg := groupConfig(w, url)
			children := make([]*child, n)
			for i := range children {
				children[i] = newChild(t, fmt.Sprintf("consumer%d", i), cfg)
				children[i].start()
			}
			w.produceOver(t, 6*time.Second)()
			ends, recs := w.finish(t)
			consumertest.WaitStored(t, st, ends, 2*time.Minute)
			for _, c := range children {
				if err := c.stop(syscall.SIGTERM); err != nil {
					t.Errorf("%s: graceful stop: %v", c.name, err)
				}
				if b, _ := os.ReadFile(c.log); !bytes.Contains(b, []byte(`msg="partition assigned"`)) {
					t.Errorf("%s never got a partition: the topic was not shared", c.name)
				}
			}
			// A graceful stop commits the stored offsets and leaves the group.
			waitCommitted(t, w, cfg.Group, ends, 5*time.Second)
			assertGroupEmpty(t, w, cfg.Group)
			consumertest.AssertCounts(t, st, consumertest.Offline(t, consumertest.EngineConfig(), recs))
			w.assertDeadLetters(t, recs)
		})
	}
}

// (1) on chDB: one process holds a chDB directory, so the consumers are
// goroutines sharing one store.
func TestConsumerGroupMembersMatchOfflineEngineCHDB(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d_members", n), func(t *testing.T) {
			st, url := chdbStore(t)
			w := newConsumerWorkload(t, 2000)
			cfg := groupConfig(w, url)
			members := make([]*goroutineConsumer, n)
			for i := range members {
				members[i] = startGoroutineConsumer(t, cfg, st)
			}
			w.produceOver(t, 6*time.Second)()
			ends, recs := w.finish(t)
			consumertest.WaitStored(t, st, ends, 2*time.Minute)
			for i, g := range members {
				if err := g.stop(); err != nil {
					t.Errorf("member %d: %v", i, err)
				}
				if !strings.Contains(g.logs.String(), `msg="partition assigned"`) {
					t.Errorf("member %d never got a partition: the topic was not shared", i)
				}
			}
			consumertest.AssertCounts(t, st, consumertest.Offline(t, consumertest.EngineConfig(), recs))
			w.assertDeadLetters(t, recs)
		})
	}
}

// killLoop SIGKILLs a random consumer at random moments, at least kills
// times, restarting it after a short pause, until the producer is done and
// the kills are spent.
func killLoop(t *testing.T, r *rand.Rand, children []*child, kills int, produced <-chan struct{}) {
	t.Helper()
	for k := 0; k < kills; k++ {
		time.Sleep(time.Duration(1500+r.IntN(3000)) * time.Millisecond)
		c := children[r.IntN(len(children))]
		if ok, err := c.exited(); ok {
			t.Fatalf("%s exited by itself: %v", c.name, err)
		}
		_ = c.stop(syscall.SIGKILL)
		t.Logf("kill %d: SIGKILL %s", k+1, c.name)
		time.Sleep(time.Duration(200+r.IntN(1500)) * time.Millisecond)
		c.start()
	}
	<-produced
}

// (2) Consumer processes killed with SIGKILL at random moments and
// restarted, with partitions moving between them, still store exactly the
// offline counts.
func TestConsumerSIGKILLedProcessesMatchOfflineEngineClickHouse(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	st, url := serverStore(t)
	w := newConsumerWorkload(t, 4000)
	cfg := groupConfig(w, url)
	cfg.FlushEvents = 300
	children := make([]*child, 3)
	for i := range children {
		children[i] = newChild(t, fmt.Sprintf("consumer%d", i), cfg)
		children[i].start()
	}
	produced := make(chan struct{})
	wait := w.produceOver(t, 20*time.Second)
	go func() { wait(); close(produced) }()
	killLoop(t, r, children, 6, produced)

	ends, recs := w.finish(t)
	consumertest.WaitStored(t, st, ends, 2*time.Minute)
	for _, c := range children {
		if err := c.stop(syscall.SIGTERM); err != nil {
			t.Errorf("%s: graceful stop: %v", c.name, err)
		}
	}
	consumertest.AssertCounts(t, st, consumertest.Offline(t, consumertest.EngineConfig(), recs))
	w.assertDeadLetters(t, recs)

	// The run must have moved partitions between processes.
	owners := map[string]map[string]bool{} // partition → processes
	replays := 0
	for _, c := range children {
		b, _ := os.ReadFile(c.log)
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.Contains(line, `msg="partition assigned"`) {
				continue
			}
			f := logFields(line)
			if owners[f["partition"]] == nil {
				owners[f["partition"]] = map[string]bool{}
			}
			owners[f["partition"]][c.name] = true
			if f["hw_s"] != f["hw_c"] {
				replays++
			}
		}
	}
	moved := 0
	for _, o := range owners {
		if len(o) > 1 {
			moved++
		}
	}
	t.Logf("%d of %d partitions changed process; %d assignments replayed a range with counts suppressed (hw_s < hw_c)", moved, len(owners), replays)
	if moved == 0 {
		t.Error("no partition moved between consumer processes")
	}
}

// logFields parses the key=value pairs of a slog text line.
func logFields(line string) map[string]string {
	f := map[string]string{}
	for _, kv := range strings.Fields(line) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			f[k] = v
		}
	}
	return f
}

// (2) on chDB: one consumer process at a time holds the directory; it is
// SIGKILLed at random moments and restarted. The parent cannot read the
// directory meanwhile, so it follows the group's committed offsets (the
// consumer commits after each flush) to know when all is stored.
func TestConsumerSIGKILLedProcessMatchesOfflineEngineCHDB(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 2))
	st, url := chdbStore(t)
	if err := st.Close(); err != nil { // the child holds the directory now
		t.Fatal(err)
	}
	w := newConsumerWorkload(t, 3000)
	cfg := groupConfig(w, url)
	cfg.FlushEvents = 300
	c := newChild(t, "consumer", cfg)
	c.start()
	produced := make(chan struct{})
	wait := w.produceOver(t, 20*time.Second)
	go func() { wait(); close(produced) }()
	killLoop(t, r, []*child{c}, 5, produced)

	ends, recs := w.finish(t)
	waitCommitted(t, w, cfg.Group, ends, 2*time.Minute)
	if err := c.stop(syscall.SIGTERM); err != nil {
		t.Errorf("graceful stop: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := store.Open(ctx, url)
	if err != nil {
		t.Fatalf("reopen %s: %v", url, err)
	}
	defer st.Close()
	consumertest.WaitStored(t, st, ends, 10*time.Second)
	consumertest.AssertCounts(t, st, consumertest.Offline(t, consumertest.EngineConfig(), recs))
	w.assertDeadLetters(t, recs)
}

// waitCommitted waits until the group's committed offsets reach ends.
func waitCommitted(t *testing.T, w *consumerWorkload, group string, ends map[int32]int64, timeout time.Duration) {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(w.brokers...)}
	parts := make([]int, 0, len(ends))
	for p := range ends {
		parts = append(parts, int(p))
	}
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{w.topic: parts}})
		cancel()
		behind := ""
		if err != nil {
			behind = err.Error()
		} else {
			for _, p := range res.Topics[w.topic] {
				if p.CommittedOffset < ends[int32(p.Partition)] {
					behind = fmt.Sprintf("partition %d committed %d of %d", p.Partition, p.CommittedOffset, ends[int32(p.Partition)])
					break
				}
			}
		}
		if behind == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group offsets did not reach the end within %v: %s", timeout, behind)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func assertGroupEmpty(t *testing.T, w *consumerWorkload, group string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := (&kafka.Client{Addr: kafka.TCP(w.brokers...)}).DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil || len(res.Groups) != 1 {
		t.Fatalf("describe group %s: %v", group, err)
	}
	if g := res.Groups[0]; len(g.Members) != 0 {
		t.Errorf("group %s still has %d members (state %s) after every consumer stopped", group, len(g.Members), g.GroupState)
	}
}

// (3) A poison record lands in the dead-letter topic with its reason and
// source, and everything else is counted.
func TestConsumerPoisonRecordsGoToDeadLetterTopic(t *testing.T) {
	for _, kind := range []string{"clickhouse", "chdb"} {
		t.Run(kind, func(t *testing.T) {
			var st store.Store
			var url string
			if kind == "chdb" {
				st, url = chdbStore(t)
			} else {
				st, url = serverStore(t)
			}
			w := newConsumerWorkload(t, 300)
			consumertest.Produce(t, w.brokers, w.topic, w.msgs)
			ends, recs := w.finish(t)
			startGoroutineConsumer(t, groupConfig(w, url), st)
			consumertest.WaitStored(t, st, ends, time.Minute)
			consumertest.AssertCounts(t, st, consumertest.Offline(t, consumertest.EngineConfig(), recs))
			w.assertDeadLetters(t, recs)
		})
	}
}
