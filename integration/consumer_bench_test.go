package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/manhattan-go/manhattan/consumer"
	"github.com/manhattan-go/manhattan/consumer/consumertest"
	"github.com/manhattan-go/manhattan/event"
	"github.com/manhattan-go/manhattan/internal/testenv"
	"github.com/manhattan-go/manhattan/reconcile"
	"github.com/manhattan-go/manhattan/store"
)

const (
	benchPartitions = 4
	benchVisitors   = 60000 // about 330k records
)

// BenchmarkConsumerEndToEnd measures one consumer (default flush settings)
// taking a topic from Apache Kafka into the ClickHouse server, next to a
// bare kafka-go reader per partition draining the same topic in the same
// run, and the freshness of an event: from the producer's write until a
// query sees its count. Each run is one full drain, whatever b.N says.
//
// A smaller topic is drained first, into another database, and not
// measured: a consumer runs for days, so the figures are those of a warm
// process (heap grown, connections open), not of its first seconds.
//
// Reported: records/s (consumer), bare-records/s, x-bare (their ratio),
// fresh-p50-s and fresh-max-s, and CPU per record of the consumer, the
// ClickHouse server and the Kafka broker. Targets: ≥ 100k records/s,
// ≥ 0.5× bare, freshness ≤ 2 s.
func BenchmarkConsumerEndToEnd(b *testing.B) {
	brokers := testenv.KafkaBrokers(b)
	// As `manhattan consumer` does (cmd/manhattan consumerGC).
	defer debug.SetGCPercent(debug.SetGCPercent(400))

	warmTopic := consumertest.Name("consumer_bench_warmup")
	consumertest.CreateTopic(b, brokers, warmTopic, benchPartitions)
	consumertest.Produce(b, brokers, warmTopic, consumertest.Messages(consumertest.Events(7, benchVisitors/4)))
	topic := consumertest.Name("consumer_bench")
	consumertest.CreateTopic(b, brokers, topic, benchPartitions)
	consumertest.Produce(b, brokers, topic, consumertest.Messages(consumertest.Events(42, benchVisitors)))
	ends := consumertest.Ends(b, brokers, topic)
	var total int64
	for _, e := range ends {
		total += e
	}

	warmEnds := consumertest.Ends(b, brokers, warmTopic)
	bareDrain(b, brokers, warmTopic, warmEnds) // warm-up, as for the consumer
	bareCPU0 := processCPU()
	_, bareK0 := serviceCPU()
	bare := bareDrain(b, brokers, topic, ends)
	bareRate := float64(total) / bare.Seconds()
	bareCPU := processCPU() - bareCPU0
	_, bareK1 := serviceCPU()
	bareKCPU := bareK1 - bareK0

	warmStore, _ := serverStore(b)
	runtime.GC() // not the consumer's garbage: see below
	stopWarm := startBenchConsumer(b, brokers, warmTopic, warmStore, prometheus.NewRegistry())
	waitStored(b, brokers, warmTopic, warmStore, warmEnds, 5*time.Minute, nil)
	stopWarm()

	st, _ := serverStore(b)
	reg := prometheus.NewRegistry()
	load := loadAverage()
	// The produced records are garbage: collect them outside the measured
	// time, or the heap goal would start at 5× their size (a consumer
	// process never holds them).
	runtime.GC()
	cpu0 := processCPU()
	ch0, k0 := serviceCPU()
	t0 := time.Now()
	stop := startBenchConsumer(b, brokers, topic, st, reg)
	defer stop()
	var processed time.Duration // until every record was applied, before the last flushes
	waitStored(b, brokers, topic, st, ends, 5*time.Minute, func() {
		if processed == 0 && counterValue(reg, "manhattan_consumer_records_total") >= float64(total) {
			processed = time.Since(t0)
		}
	})
	took := time.Since(t0)
	if processed == 0 {
		processed = took
	}
	cpu := processCPU() - cpu0
	ch1, k1 := serviceCPU()
	chCPU, kCPU := ch1-ch0, k1-k0
	rate := float64(total) / took.Seconds()

	if mfs, err := reg.Gather(); err == nil {
		for _, mf := range mfs {
			if mf.GetName() == "manhattan_consumer_store_seconds" {
				for _, m := range mf.GetMetric() {
					h := m.GetHistogram()
					b.Logf("store %s: %d calls, %.2fs in all", m.GetLabel()[0].GetValue(), h.GetSampleCount(), h.GetSampleSum())
				}
			}
			if mf.GetName() == "manhattan_consumer_flush_seconds" {
				h := mf.GetMetric()[0].GetHistogram()
				b.Logf("flushes: %d, %.2fs in all (%.0f ms each), over 4 partition workers", h.GetSampleCount(), h.GetSampleSum(), 1000*h.GetSampleSum()/float64(h.GetSampleCount()))
			}
		}
	}
	fresh := freshness(b, brokers, topic, st, 12)
	b.ReportMetric(rate, "records/s")
	// The last records of each partition wait up to one flush interval for
	// their flush; without that tail the rate is this.
	b.ReportMetric(float64(total)/processed.Seconds(), "processed-records/s")
	b.ReportMetric(bareRate, "bare-records/s")
	b.ReportMetric(rate/bareRate, "x-bare")
	b.ReportMetric(fresh[len(fresh)/2].Seconds(), "fresh-p50-s")
	b.ReportMetric(fresh[len(fresh)-1].Seconds(), "fresh-max-s")
	// The machine is shared, and the consumer shares it with the broker and
	// the ClickHouse server: CPU per record of each is steadier than
	// records/s, and tells where the time goes. The services' CPU comes from
	// /proc (0 when they run elsewhere).
	perRecord := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(total) }
	b.ReportMetric(perRecord(cpu), "cpu-us/record")
	b.ReportMetric(perRecord(chCPU), "clickhouse-cpu-us/record")
	b.ReportMetric(perRecord(kCPU), "kafka-cpu-us/record")
	// The best ratio this machine allows: the consumer's rate if it cost
	// no more CPU than the bare reader (it reads the same records), with
	// the server and broker as measured, all sharing every core.
	if chCPU+kCPU > 0 {
		best := float64(total) / ((chCPU + kCPU + bareCPU).Seconds() / float64(runtime.NumCPU()))
		b.ReportMetric(best/bareRate, "x-bare-ceiling")
	}
	b.Logf("%d records in %d partitions: consumer %v (%.0f records/s, group join included; all applied after %v), bare reader %v (%.0f records/s), ratio %.2f; freshness p50 %v max %v; load average %s",
		total, len(ends), took.Round(time.Millisecond), rate, processed.Round(time.Millisecond), bare.Round(time.Millisecond), bareRate, rate/bareRate,
		fresh[len(fresh)/2].Round(time.Millisecond), fresh[len(fresh)-1].Round(time.Millisecond), load)
	b.Logf("CPU µs/record: consumer %.1f, its ClickHouse server %.1f, its Kafka broker %.1f; bare reader %.1f, its Kafka broker %.1f",
		perRecord(cpu), perRecord(chCPU), perRecord(kCPU), perRecord(bareCPU), perRecord(bareKCPU))
}

// startBenchConsumer runs a consumer of topic into st until the returned
// stop is called; stop reports a consumer error.
func startBenchConsumer(b *testing.B, brokers []string, topic string, st store.Store, reg prometheus.Registerer) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- consumer.Run(ctx, consumer.Options{
			Brokers: brokers, Topic: topic, Group: topic + "_group", Store: st,
			Engine:           consumertest.EngineConfig(),
			Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
			ProgressInterval: -1,
			Registerer:       reg,
		})
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				b.Errorf("consumer of %s: %v", topic, err)
			}
		})
	}
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAverage is the 1-minute load average, or "?" where /proc has none.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// bareDrain reads every partition to its end with plain kafka-go readers,
// one per partition, concurrently; it returns the time taken.
func bareDrain(b *testing.B, brokers []string, topic string, ends map[int32]int64) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var failed atomic.Value
	t0 := time.Now()
	for p, end := range ends {
		wg.Go(func() {
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: int(p),
				MinBytes: 1, MaxBytes: consumer.DefaultFetchMaxBytes, MaxWait: 100 * time.Millisecond})
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					failed.Store(err)
					return
				}
				if m.Offset >= end-1 {
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(t0)
	if err, _ := failed.Load().(error); err != nil {
		b.Fatalf("bare reader: %v", err)
	}
	return took
}

// waitStored waits until every partition of topic is stored to its end.
// It polls the group's committed offsets (a consumer commits after each
// flush) rather than the ClickHouse server being measured, and the store's
// marks only now and then, in case a commit failed. each, if set, runs at
// every poll.
func waitStored(b *testing.B, brokers []string, topic string, st store.Store, ends map[int32]int64, timeout time.Duration, each func()) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(brokers...)}
	req := &kafka.OffsetFetchRequest{GroupID: topic + "_group", Topics: map[string][]int{topic: nil}}
	for p := range ends {
		req.Topics[topic] = append(req.Topics[topic], int(p))
	}
	stored := func() bool {
		for p, end := range ends {
			if m, err := st.Marks(ctx, p); err != nil || m.HWC < end {
				return false
			}
		}
		return true
	}
	for i := 1; ; i++ {
		if each != nil {
			each()
		}
		resp, err := client.OffsetFetch(ctx, req)
		done := err == nil && resp.Error == nil && len(resp.Topics[topic]) == len(ends)
		if done {
			for _, po := range resp.Topics[topic] {
				if po.Error != nil || po.CommittedOffset < ends[int32(po.Partition)] {
					done = false
				}
			}
		}
		if (done || i%100 == 0) && stored() {
			return
		}
		if ctx.Err() != nil {
			b.Fatalf("%s not stored to its ends %v within %v (last commit fetch: %v)", topic, ends, timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// counterValue is the value of the counter name in reg (summed over its
// labels), 0 when absent.
func counterValue(reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return v
}

// freshness produces goal events of a confirmed visitor one at a time and
// returns, sorted, how long each took from the write until the store
// answers its count.
func freshness(b *testing.B, brokers []string, topic string, st store.Store, n int) []time.Duration {
	b.Helper()
	w := consumertest.Writer(brokers, topic)
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	vid := fmt.Sprintf("%040x", time.Now().UnixNano())
	ts := time.Now().UnixMicro()
	write := func(ev event.Event) {
		ev.VID, ev.TS = vid, ts
		ts++
		if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(vid), Value: ev.AppendJSON(nil)}); err != nil {
			b.Fatalf("produce: %v", err)
		}
	}
	write(event.Event{Type: event.TypePage, Method: "GET", URL: "/"})
	write(event.Event{Type: event.TypePixel})
	var out []time.Duration
	for i := range n {
		goal := fmt.Sprintf("fresh %d", i)
		t0 := time.Now()
		write(event.Event{Type: event.TypeGoal, Name: goal})
		for {
			tot, err := st.Counter(ctx, store.CounterQuery{Kind: reconcile.KindConversion, Goal: goal})
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				b.Fatalf("counter: %v", err)
			}
			if tot.Count == 1 {
				break
			}
			if ctx.Err() != nil {
				b.Fatalf("goal %q never became visible", goal)
			}
			time.Sleep(20 * time.Millisecond)
		}
		out = append(out, time.Since(t0))
	}
	slices.Sort(out)
	return out
}

// serviceCPU is the CPU time used so far by the ClickHouse server and the
// Kafka broker that scripts/services.sh runs from this checkout (their
// command lines name its .cache directory); 0 for services run elsewhere.
func serviceCPU() (ch, kafka time.Duration) {
	cache, err := filepath.Abs("../.cache")
	if err != nil {
		return 0, 0
	}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid := d.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + pid + "/cmdline")
		if err != nil || !strings.Contains(string(cmd), cache) {
			continue
		}
		var dst *time.Duration
		switch c := string(cmd); {
		case strings.Contains(c, "clickhouse-server"):
			dst = &ch
		case strings.Contains(c, "kafka.Kafka"):
			dst = &kafka
		default:
			continue
		}
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			continue
		}
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) < 13 {
			continue
		}
		// utime and stime, in clock ticks: USER_HZ, 100 on Linux.
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		*dst += time.Duration(ut+st) * 10 * time.Millisecond
	}
	return ch, kafka
}
