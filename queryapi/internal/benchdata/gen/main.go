// Command gen writes the query API benchmark data set to a store:
//
//	go run ./queryapi/internal/benchdata/gen -url clickhouse://127.0.0.1:9000/manhattan_bench -events 10000000
//
// then benchmark against it:
//
//	MANHATTAN_BENCH_STORE=clickhouse://127.0.0.1:9000/manhattan_bench go test ./queryapi -run '^$' -bench QueryAPI
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/manhattan-go/manhattan/queryapi/internal/benchdata"
	"github.com/manhattan-go/manhattan/store"
)

func main() {
	url := flag.String("url", "clickhouse://127.0.0.1:9000/manhattan_bench", "store URL (the database is created)")
	n := flag.Int64("events", 10_000_000, "number of events (rounded up to whole visitors)")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if err := run(*url, *n, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(url string, n int64, seed uint64) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	st, err := store.Open(ctx, url)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	start := time.Now()
	sum, err := benchdata.Generate(ctx, st, n, seed, func(s benchdata.Summary) {
		if s.Flushes%20 == 0 {
			slog.Info("gen", "events", s.Events, "visitors", s.Visitors, "flushes", s.Flushes, "elapsed", time.Since(start).Round(time.Second))
		}
	})
	if err != nil {
		return err
	}
	d := time.Since(start)
	slog.Info("gen done", "events", sum.Events, "visitors", sum.Visitors, "flushes", sum.Flushes, "elapsed", d.Round(time.Second),
		"events/s", int64(float64(sum.Events)/d.Seconds()))
	return nil
}
