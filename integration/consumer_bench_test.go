package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
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
// Reported: records/s (consumer), bare-records/s, x-bare (their ratio),
// fresh-p50-s and fresh-max-s. Targets: ≥ 100k records/s, ≥ 0.5× bare,
// freshness ≤ 2 s.
func BenchmarkConsumerEndToEnd(b *testing.B) {
	brokers := testenv.KafkaBrokers(b)
	topic := consumertest.Name("consumer_bench")
	consumertest.CreateTopic(b, brokers, topic, benchPartitions)
	msgs := consumertest.Messages(consumertest.Events(42, benchVisitors))
	consumertest.Produce(b, brokers, topic, msgs)
	ends := consumertest.Ends(b, brokers, topic)
	var total int64
	for _, e := range ends {
		total += e
	}

	bare := bareDrain(b, brokers, topic, ends)
	bareRate := float64(total) / bare.Seconds()

	st, _ := serverStore(b)
	reg := prometheus.NewRegistry()
	// As `manhattan consumer` does (cmd/manhattan consumerGC).
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	load := loadAverage()
	cpu0 := processCPU()
	t0 := time.Now()
	go func() {
		done <- consumer.Run(ctx, consumer.Options{
			Brokers: brokers, Topic: topic, Group: topic + "_group", Store: st,
			Engine:           consumertest.EngineConfig(),
			Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
			ProgressInterval: -1,
			Registerer:       reg,
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("consumer: %v", err)
		}
	}()
	waitMarksAt(b, st, ends, 5*time.Minute)
	took := time.Since(t0)
	cpu := processCPU() - cpu0
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
	b.ReportMetric(bareRate, "bare-records/s")
	b.ReportMetric(rate/bareRate, "x-bare")
	b.ReportMetric(fresh[len(fresh)/2].Seconds(), "fresh-p50-s")
	b.ReportMetric(fresh[len(fresh)-1].Seconds(), "fresh-max-s")
	// The machine is often shared: CPU per record (this process: consumer,
	// Kafka and ClickHouse clients) is steadier than records/s, and the load
	// average tells how much of the machine the run had.
	b.ReportMetric(float64(cpu.Microseconds())/float64(total), "cpu-us/record")
	b.Logf("%d records in %d partitions: consumer %v (%.0f records/s, group join included), bare reader %v (%.0f records/s), ratio %.2f; freshness p50 %v max %v; consumer CPU %.1f µs/record; load average %s",
		total, len(ends), took.Round(time.Millisecond), rate, bare.Round(time.Millisecond), bareRate, rate/bareRate,
		fresh[len(fresh)/2].Round(time.Millisecond), fresh[len(fresh)-1].Round(time.Millisecond),
		float64(cpu.Microseconds())/float64(total), load)
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
				MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 100 * time.Millisecond})
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

func waitMarksAt(b *testing.B, st store.Store, ends map[int32]int64, timeout time.Duration) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for p, end := range ends {
		for {
			m, err := st.Marks(context.Background(), p)
			if err == nil && m.HWC >= end {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("partition %d not stored within %v: marks %+v, end %d, err %v", p, timeout, m, end, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
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
