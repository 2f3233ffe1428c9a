package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/manhattan-go/manhattan/event"
	"github.com/manhattan-go/manhattan/reconcile"
)

// Figures are rows per second of one flush insert; baseline_ms is a trivial
// query's round trip on the same connection in the same run, so the figures
// can be read relative to the machine's load.

const benchRows = 10000

func baselineMS(b *testing.B, s Store) float64 {
	ctx := context.Background()
	start := time.Now()
	const n = 20
	for i := 0; i < n; i++ {
		must(b, s.Ping(ctx), "ping")
	}
	return float64(time.Since(start).Microseconds()) / 1000 / n
}

func BenchmarkFlushCounters(b *testing.B) {
	for _, be := range backends {
		s, _ := openStore(b, be.url)
		b.Run(be.name, func(b *testing.B) {
			ctx := context.Background()
			base := baselineMS(b, s)
			counters := make(map[reconcile.CounterKey]*reconcile.Delta, benchRows)
			for i := 0; i < benchRows; i++ {
				k := ckey(reconcile.KindVariantConversion, int64(i%3), fmt.Sprintf("goal %d", i%50), "test", fmt.Sprint(i%2 == 0), "day", fmt.Sprintf("2026-%02d-%02d", i%12+1, i%28+1))
				counters[k] = &reconcile.Delta{Count: 1, Value: decimal.New(int64(i), -2)}
			}
			benchRowsN := len(counters) + 1
			b.ResetTimer()
			var to int64
			for i := 0; i < b.N; i++ {
				batch := &Batch{Partition: 9, From: to, To: to + 100, Counters: counters}
				to += 100
				must(b, s.InsertCounters(ctx, batch), "insert counters")
			}
			b.ReportMetric(float64(b.N*benchRowsN)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(base, "baseline_ms")
		})
	}
}

func BenchmarkFlushEvents(b *testing.B) {
	for _, be := range backends {
		s, _ := openStore(b, be.url)
		b.Run(be.name, func(b *testing.B) {
			ctx := context.Background()
			base := baselineMS(b, s)
			recs := make([]Record, benchRows)
			for i := range recs {
				recs[i] = Record{Partition: 1, Offset: int64(i), Event: &event.Event{
					Type: event.TypePage, TS: 1_764_000_000_000_000 + int64(i)*1000, VID: fmt.Sprintf("%040x", i), SiteID: 1,
					IP: "203.0.113.7", Method: "GET", URL: fmt.Sprintf("https://example.com/page/%d?q=1", i),
					UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", Referer: "https://example.com/",
				}}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				must(b, s.InsertEvents(ctx, &Batch{Partition: 1, Records: recs}), "insert events")
			}
			b.ReportMetric(float64(b.N*benchRows)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(base, "baseline_ms")
		})
	}
}

// BenchmarkLoadStates10k loads 10k states (of 20k stored) in one query.
func BenchmarkLoadStates10k(b *testing.B) {
	for _, be := range backends {
		s, _ := openStore(b, be.url)
		ctx := context.Background()
		states := make([]State, 2*benchRows)
		for i := range states {
			states[i] = State{VID: fmt.Sprintf("%040x", i*7919), Version: 100, Data: make([]byte, 200)}
		}
		must(b, s.InsertStates(ctx, &Batch{Partition: 0, To: 100, States: states}), "insert states")
		ids := make([]string, benchRows)
		for i := range ids {
			ids[i] = states[2*i].VID
		}
		b.Run(be.name, func(b *testing.B) {
			base := baselineMS(b, s)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				got, err := s.LoadStates(ctx, ids)
				must(b, err, "load")
				if len(got) != len(ids) {
					b.Fatalf("loaded %d states, want %d", len(got), len(ids))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/load")
			b.ReportMetric(base, "baseline_ms")
		})
	}
}

// BenchmarkLoadStatesAsTableGrows loads the same kind of batch (50 stored
// visitors, 50 new ones) from a small visitor_state table and from one 40×
// larger, where ids × granule size is far below the table's size, as it is
// in a deployment with millions of visitors. x_growth is the ratio of their
// times: near 1 when a load costs what it asks for, toward 40 when it reads
// the whole table.
func BenchmarkLoadStatesAsTableGrows(b *testing.B) {
	const small, large, ids = 10000, 400000, 100
	vid := func(i int) string { return fmt.Sprintf("%040x", uint64(i)*0x9e3779b97f4a7c15) }
	rng := rand.New(rand.NewPCG(1, 2))
	fill := func(s Store, n int) {
		ctx := context.Background()
		for from := 0; from < n; from += 100000 {
			states := make([]State, 0, 100000)
			for i := from; i < min(n, from+100000); i++ {
				// States are binary and compress about 2:1, not like zeros.
				data := make([]byte, 400)
				for j := 0; j < len(data); j += 2 {
					data[j] = byte(rng.Uint32())
				}
				states = append(states, State{VID: vid(i), Version: 100, Data: data})
			}
			must(b, s.InsertStates(ctx, &Batch{Partition: 0, To: 100, States: states}), "insert states")
		}
		// One part, as merges leave a table at rest.
		tb := s.(*tables)
		must(b, tb.b.exec(ctx, tb.sql("OPTIMIZE TABLE {db}.visitor_state FINAL"), nil), "optimize")
	}
	batch := func(n, round int) []string {
		out := make([]string, 0, ids)
		for i := range ids / 2 {
			out = append(out, vid((i*7919+round*104729)%n), fmt.Sprintf("%040x", round*ids+i))
		}
		return out
	}
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			ctx := context.Background()
			var ms [2]float64
			for k, n := range []int{small, large} {
				s, _ := openStore(b, be.url)
				fill(s, n)
				for round := 0; round < 2; round++ { // warm up
					_, err := s.LoadStates(ctx, batch(n, round))
					must(b, err, "load")
				}
				t0 := time.Now()
				for i := 0; i < b.N; i++ {
					got, err := s.LoadStates(ctx, batch(n, i+2))
					must(b, err, "load")
					if len(got) != ids/2 {
						b.Fatalf("loaded %d states, want %d", len(got), ids/2)
					}
				}
				ms[k] = float64(time.Since(t0).Microseconds()) / 1000 / float64(b.N)
			}
			b.ReportMetric(ms[0], "ms/load-small")
			b.ReportMetric(ms[1], "ms/load-large")
			b.ReportMetric(ms[1]/ms[0], "x_growth")
		})
	}
}
