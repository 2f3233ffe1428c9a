package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsServer serves a registry on /metrics when addr is set; stop ends it.
// With addr empty the registry is still returned (metrics are kept but not
// served) and stop does nothing.
func metricsServer(ctx context.Context, addr string, log *slog.Logger) (reg *prometheus.Registry, stop func(), err error) {
	reg = prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if addr == "" {
		return reg, func() {}, nil
	}
	ln, err := listen(ctx, addr)
	if err != nil {
		return nil, nil, fmt.Errorf("--metrics-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := serveHTTP(sctx, ln, mux); err != nil {
			log.Warn("metrics server stopped", "err", err)
		}
	})
	log.Info("metrics on /metrics", "addr", ln.Addr().String())
	return reg, func() { cancel(); wg.Wait() }, nil
}
