package queryapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/manhattan-go/manhattan/queryapi/internal/benchdata"
	"github.com/manhattan-go/manhattan/reconcile"
	"github.com/manhattan-go/manhattan/store"
)

// BenchmarkQueryAPI measures the goal and results endpoints over HTTP on the
// ClickHouse server: latency p50/p99 (serial requests) and requests/s (4
// concurrent clients per CPU), with a direct store.Counter call of the
// "goal" count as the baseline, alternated with each request so both see the
// same machine load ("x-store" = p50 / store p50).
//
// The data set: MANHATTAN_BENCH_STORE names a store already filled by
//
//	go run ./queryapi/internal/benchdata/gen -url clickhouse://127.0.0.1:9000/manhattan_bench -events 10000000
//
// Without it, 100k events are generated into a fresh database on the test
// ClickHouse server (MANHATTAN_TEST_CLICKHOUSE). Run:
//
//	MANHATTAN_BENCH_STORE=clickhouse://127.0.0.1:9000/manhattan_bench \
//	  go test ./queryapi -run '^$' -bench QueryAPI -benchtime 2000x
func BenchmarkQueryAPI(b *testing.B) {
	ctx := context.Background()
	var st store.Store
	if u := os.Getenv("MANHATTAN_BENCH_STORE"); u != "" {
		s, err := store.Open(ctx, u)
		if err != nil {
			b.Fatalf("MANHATTAN_BENCH_STORE: %v", err)
		}
		b.Cleanup(func() { s.Close() })
		st = s
	} else {
		s, _ := openReal(b, "clickhouse")
		if _, err := benchdata.Generate(ctx, s, 100_000, 1, nil); err != nil {
			b.Fatal(err)
		}
		st = s
	}
	h, err := New(Options{Store: st, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	b.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}

	fetch := func(path string) error {
		resp, err := hc.Get(srv.URL + path)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("GET %s: %d", path, resp.StatusCode)
		}
		return nil
	}
	baseline := func() error {
		_, err := st.Counter(ctx, store.CounterQuery{Kind: reconcile.KindConversion, Goal: benchdata.GoalSignup})
		return err
	}
	// measure alternates op with the baseline so both see the same machine
	// load; x-store is op's p50 over the baseline's p50 in the same loop.
	measure := func(b *testing.B, op func() error) {
		lat := make([]time.Duration, 0, b.N)
		base := make([]time.Duration, 0, b.N)
		var spent time.Duration
		for range b.N {
			t0 := time.Now()
			if err := op(); err != nil {
				b.Fatal(err)
			}
			d := time.Since(t0)
			spent += d
			lat = append(lat, d)
			t0 = time.Now()
			if err := baseline(); err != nil {
				b.Fatal(err)
			}
			base = append(base, time.Since(t0))
		}
		slices.Sort(lat)
		slices.Sort(base)
		ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
		b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
		b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
		b.ReportMetric(float64(b.N)/spent.Seconds(), "req/s")
		b.ReportMetric(ms(base[len(base)/2]), "store-p50-ms")
		b.ReportMetric(float64(lat[len(lat)/2])/float64(base[len(base)/2]), "x-store")
	}
	paths := []struct{ name, path string }{
		{"goal", "/v1/goals/signup"},
		{"goal_filtered", "/v1/goals/purchase?site_id=1&rollup=utc_day&bucket=2025-12-05"},
		{"goal_variant", "/v1/goals/signup?test=cta+colour&population=True"},
		{"goal_per_visit", "/v1/goals/per%20visit"},
		{"results", "/v1/tests/cta%20colour/results?goals=signup,purchase&weights=True:1,False:1"},
		{"results_5goals", "/v1/tests/pricing%20page/results?goals=signup,purchase,rating,per+visit,newsletter"},
	}
	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) { measure(b, func() error { return fetch(p.path) }) })
	}
	for _, p := range []struct{ name, path string }{paths[0], paths[4]} {
		b.Run(p.name+"_parallel", func(b *testing.B) {
			b.SetParallelism(4)
			var failed atomic.Value
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := fetch(p.path); err != nil {
						failed.Store(err)
						return
					}
				}
			})
			if err, _ := failed.Load().(error); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
		})
	}
}
