package producer

import (
	"context"
	"fmt"
	"github.com/manhattan-go/manhattan/internal/kafkatest"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/manhattan-go/manhattan/event"
)

// checkDelivery asserts every goal "g<vid>-<n>" arrived exactly once, in
// order per visitor, in one partition per visitor, keyed by vid.
func checkDelivery(t testing.TB, got []kafkatest.Record, sent map[string]int, partitions int) {
	t.Helper()
	next := map[string]int{}
	part := map[string]int32{}
	total := 0
	for _, c := range got {
		if c.Key != c.Event.VID {
			t.Fatalf("key %q != vid %q", c.Key, c.Event.VID)
		}
		if p, ok := part[c.Key]; ok && p != c.Partition {
			t.Fatalf("visitor %s in partitions %d and %d", c.Key, p, c.Partition)
		}
		part[c.Key] = c.Partition
		if want := int32(javaPartition(c.Key, partitions)); c.Partition != want {
			t.Fatalf("visitor %s in partition %d, Java client would pick %d", c.Key, c.Partition, want)
		}
		if c.Event.Type != event.TypeGoal {
			continue
		}
		var n int
		fmt.Sscanf(c.Event.Name[strings.LastIndexByte(c.Event.Name, '-')+1:], "%d", &n)
		if n != next[c.Key] {
			t.Fatalf("visitor %s: got goal %d, want %d (lost, duplicated or out of order)", c.Key, n, next[c.Key])
		}
		next[c.Key]++
		total++
	}
	want := 0
	for vid, n := range sent {
		want += n
		if next[vid] != n {
			t.Errorf("visitor %s: %d of %d goals arrived", vid, next[vid], n)
		}
	}
	if total != want {
		t.Errorf("%d goals arrived, %d sent", total, want)
	}
}

func javaPartition(key string, n int) int {
	return int((murmur2Java([]byte(key)) & 0x7fffffff) % uint32(n))
}

// sendGoals runs requests through the middleware: visitor i of vids sends
// goals from[i]…from[i]+per-1.
func sendGoals(t testing.TB, m *Middleware, vids []string, sent map[string]int, per int) {
	t.Helper()
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := FromRequest(r)
		if err := v.Goal(r.URL.Query().Get("g")); err != nil {
			t.Error(err)
		}
	}))
	for range per {
		for _, vid := range vids {
			req := httptest.NewRequest("GET", fmt.Sprintf("/?g=g%s-%d", vid, sent[vid]), nil)
			req.Header.Set("Cookie", "manhattan="+m.signer.sign(vid))
			h.ServeHTTP(httptest.NewRecorder(), req)
			sent[vid]++
		}
	}
}

func testVIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%040x", i*7919+1)
	}
	return out
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestWriterKfakeExactlyOnceInOrder(t *testing.T) {
	const topic, partitions = "events-order", 4
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reg := prometheus.NewRegistry()
	w, err := NewWriter(WriterOptions{Brokers: c.ListenAddrs(), Topic: topic, Registerer: reg, BatchSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Options{Secret: "s3krit", Sink: w})
	if err != nil {
		t.Fatal(err)
	}
	vids := testVIDs(25)
	sent := map[string]int{}
	sendGoals(t, m, vids, sent, 40)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// each request: a page and a goal
	if st := w.Stats(); st.Sent != 2*25*40 || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
	if v := gathered(t, reg, "manhattan_producer_events_sent_total", ""); v != 2*25*40 {
		t.Fatalf("sent metric %v", v)
	}
	got := kafkatest.ReadTopic(t, c.ListenAddrs(), topic, 2*25*40, 500*time.Millisecond, 30*time.Second)
	checkDelivery(t, got, sent, partitions)
	if w.Send([]event.Event{{Type: event.TypePixel, VID: "x"}}); w.Stats().Dropped != 1 {
		t.Fatal("send after close not counted")
	}
}

// Kafka goes away and comes back (kfake closed and re-created on the same
// port with the same data dir): events sent meanwhile wait in the disk spool
// and arrive exactly once, in order.
func TestWriterKafkaDownAndBack(t *testing.T) {
	const topic, partitions = "events-outage", 3
	port := freePort(t)
	dataDir := t.TempDir()
	start := func() *kfake.Cluster {
		var c *kfake.Cluster
		var err error
		for range 50 { // the port may take a moment to be free again
			c, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dataDir), kfake.SeedTopics(partitions, topic))
			if err == nil {
				return c
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatal(err)
		return nil
	}
	c := start()
	brokers := c.ListenAddrs()
	spoolDir := t.TempDir()
	w, err := NewWriter(WriterOptions{Brokers: brokers, Topic: topic, SpoolDir: spoolDir,
		WriteTimeout: 2 * time.Second, RetryMin: 100 * time.Millisecond, RetryMax: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := New(Options{Secret: "s3krit", Sink: w})
	vids := testVIDs(10)
	sent := map[string]int{}
	sendGoals(t, m, vids, sent, 5)
	waitFor(t, func() bool { return w.Stats().Sent == 100 }, "first events sent")

	c.Close() // Kafka down
	sendGoals(t, m, vids, sent, 20)
	waitFor(t, func() bool { return w.Stats().Spooled > 0 && w.Stats().QueueLength == 0 }, "events spooled")
	time.Sleep(time.Second) // a few failed drain attempts
	if st := w.Stats(); st.Dropped != 0 || st.SpoolBytes == 0 {
		t.Fatalf("while down: %+v", st)
	}

	c = start() // Kafka back
	defer c.Close()
	sendGoals(t, m, vids, sent, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st := w.Stats()
	if st.Sent != 2*10*30 || st.Dropped != 0 || st.SpoolBytes != 0 {
		t.Fatalf("after recovery: %+v", st)
	}
	got := kafkatest.ReadTopic(t, brokers, topic, 2*10*30, 500*time.Millisecond, 30*time.Second)
	checkDelivery(t, got, sent, partitions)
}

// Close with Kafka absent leaves the events in the disk spool; the next
// Writer on that directory delivers them.
func TestWriterSpoolSurvivesRestart(t *testing.T) {
	const topic = "events-restart"
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	spoolDir := t.TempDir()
	w, err := NewWriter(WriterOptions{Brokers: []string{dead}, Topic: topic, SpoolDir: spoolDir, WriteTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := New(Options{Secret: "s3krit", Sink: w})
	vids := testVIDs(4)
	sent := map[string]int{}
	sendGoals(t, m, vids, sent, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err = w.Close(ctx)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "left in the spool") {
		t.Fatalf("Close with Kafka down: %v", err)
	}

	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w2, err := NewWriter(WriterOptions{Brokers: c.ListenAddrs(), Topic: topic, SpoolDir: spoolDir})
	if err != nil {
		t.Fatal(err)
	}
	m2, _ := New(Options{Secret: "s3krit", Sink: w2})
	sendGoals(t, m2, vids, sent, 3)
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	checkDelivery(t, kafkatest.ReadTopic(t, c.ListenAddrs(), topic, 2*4*13, 500*time.Millisecond, 30*time.Second), sent, 2)
}

// Past the bounds, events are dropped and counted, never blocking.
func TestWriterDropsCounted(t *testing.T) {
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	reg := prometheus.NewRegistry()
	w, err := NewWriter(WriterOptions{Brokers: []string{dead}, QueueSize: 10, SpoolMaxBytes: 2000, Registerer: reg,
		WriteTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ev := event.Event{Type: event.TypeGoal, VID: strings.Repeat("a", 40), Name: "g"}
	startT := time.Now()
	for range 2000 {
		w.Send([]event.Event{ev})
	}
	if d := time.Since(startT); d > time.Second {
		t.Fatalf("Send blocked: %v", d)
	}
	waitFor(t, func() bool { return w.Stats().QueueLength == 0 }, "queue drained to spool")
	w.Send([]event.Event{{Type: event.TypeGoal, VID: "x", Value: "nope", Name: "g"}})
	waitFor(t, func() bool { return w.Stats().QueueLength == 0 }, "queue drained")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	w.Close(ctx)
	st := w.Stats()
	if st.Dropped == 0 || st.Spooled == 0 || st.Sent != 0 {
		t.Fatalf("stats %+v", st)
	}
	var metricDrops float64
	for _, r := range []string{DropQueueFull, DropSpoolFull, DropSpoolError, DropInvalid, DropClosed} {
		metricDrops += gathered(t, reg, "manhattan_producer_events_dropped_total", r)
	}
	if metricDrops != float64(st.Dropped) || gathered(t, reg, "manhattan_producer_events_dropped_total", DropInvalid) != 1 {
		t.Fatalf("metric drops %v, stats %d", metricDrops, st.Dropped)
	}
	// Everything is accounted for: sent + dropped = offered.
	if st.Sent+st.Dropped != 2001 {
		t.Fatalf("lost silently: %+v", st)
	}
}

func TestProduceBlocksAndValidates(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "imp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w, err := NewWriter(WriterOptions{Brokers: c.ListenAddrs(), Topic: "imp", QueueSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var evs []event.Event
	sent := map[string]int{}
	for i := range 300 {
		vid := testVIDs(3)[i%3]
		evs = append(evs, event.Event{Type: event.TypeGoal, TS: 1_500_000_000_000_000 + int64(i), VID: vid, Name: fmt.Sprintf("g-%d", sent[vid])})
		sent[vid]++
	}
	bad := event.Event{Type: event.TypeGoal, VID: "v"} // no name
	if err := w.Produce(ctx, append(evs[:150:150], bad)...); err == nil || !strings.Contains(err.Error(), "name") {
		t.Fatalf("invalid event: %v", err)
	}
	if err := w.Produce(ctx, evs[150:]...); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := kafkatest.ReadTopic(t, c.ListenAddrs(), "imp", 300, 500*time.Millisecond, 20*time.Second)
	checkDelivery(t, got, sent, 2)
	if got[0].Event.TS < 1_500_000_000_000_000 || got[0].Event.TS > 1_500_000_000_000_300 {
		t.Fatalf("timestamp not kept: %d", got[0].Event.TS)
	}
	if err := w.Produce(ctx, evs[0]); err != ErrClosed {
		t.Fatalf("after close: %v", err)
	}
}

func waitFor(t testing.TB, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kafka-go's Murmur2Balancer must agree with the Java client's default
// partitioner: Utils.toPositive(Utils.murmur2(key)) % numPartitions. The
// hashes below are from Kafka's own UtilsTest.
func TestMurmur2MatchesJava(t *testing.T) {
	javaHashes := map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	}
	for key, h := range javaHashes {
		if got := int32(murmur2Java([]byte(key))); got != h {
			t.Errorf("murmur2(%q) = %d, Java %d", key, got, h)
		}
		for _, n := range []int{1, 3, 12, 100, 1000} {
			parts := make([]int, n)
			for i := range parts {
				parts[i] = i
			}
			want := int(uint32(h)&0x7fffffff) % n
			if got := (kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: []byte(key)}, parts...); got != want {
				t.Errorf("key %q, %d partitions: kafka-go picks %d, Java %d", key, n, got, want)
			}
		}
	}
}

// murmur2Java is a transcription of org.apache.kafka.common.utils.Utils.murmur2.
func murmur2Java(data []byte) uint32 {
	const seed, m, r = uint32(0x9747b28c), uint32(0x5bd1e995), 24
	length := len(data)
	h := seed ^ uint32(length)
	for i := 0; i+4 <= length; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[length&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// gathered returns the value of a counter from the registry (reason label
// if given).
func gathered(t testing.TB, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if reason == "" || labelIs(m, "reason", reason) {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("metric %s{reason=%q} not registered", name, reason)
	return 0
}

func labelIs(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}
