package producer

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/manhattan-go/manhattan/event"
	"github.com/manhattan-go/manhattan/producer/internal/benchpage"
)

// typicalPage is a ~10 KiB HTML page.
var typicalPage = benchpage.HTML

func pageHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(typicalPage)
	})
}

// discard is a Sink that only counts, to measure the middleware itself.
type discard struct{ n int }

func (d *discard) Send(evs []event.Event) { d.n += len(evs) }

func benchRequest(m *Middleware) *http.Request {
	req := httptest.NewRequest("GET", "http://shop.example/products?page=2", nil)
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36")
	req.Header.Set("Referer", "http://shop.example/")
	req.Header.Set("Cookie", "session=abc; manhattan="+m.signer.sign(strings.Repeat("5e", 20)))
	return req
}

func benchServe(b *testing.B, h http.Handler, req *http.Request) {
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Body.Len() < len(typicalPage) {
			b.Fatal("short body")
		}
	}
}

func newBenchMW(b *testing.B) *Middleware {
	m, err := New(Options{Secret: "s3krit", Sink: &discard{}})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

func BenchmarkBareHandler(b *testing.B) {
	benchServe(b, pageHandler(), benchRequest(newBenchMW(b)))
}

func BenchmarkMiddleware(b *testing.B) {
	m := newBenchMW(b)
	benchServe(b, m.Handler(pageHandler()), benchRequest(m))
}

// BenchmarkMiddlewareNewVisitor: first request of a visitor (cookie minted).
func BenchmarkMiddlewareNewVisitor(b *testing.B) {
	m := newBenchMW(b)
	req := benchRequest(m)
	req.Header.Del("Cookie")
	benchServe(b, m.Handler(pageHandler()), req)
}

// BenchmarkOverhead alternates bare handler and middleware in blocks of
// requests and takes the median block of each, so load from elsewhere on
// the machine hits both alike; it reports what the middleware adds per
// request (target: ≤ 2 µs, ≤ 4 allocations) and the throughput ratio
// middleware/bare. The response goes to an httptest.ResponseRecorder.
func BenchmarkOverhead(b *testing.B) {
	overhead(b, func() http.ResponseWriter { return httptest.NewRecorder() })
}

// BenchmarkOverheadDiscard is BenchmarkOverhead with a reused, discarding
// ResponseWriter, so the recorder's own cost does not dilute the figures.
func BenchmarkOverheadDiscard(b *testing.B) {
	w := &discardWriter{h: http.Header{}}
	overhead(b, func() http.ResponseWriter { clear(w.h); return w })
}

type discardWriter struct {
	h http.Header
	n int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(int)             {}
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

func overhead(b *testing.B, newW func() http.ResponseWriter) {
	m := newBenchMW(b)
	req := benchRequest(m)
	bare, mw := pageHandler(), m.Handler(pageHandler())
	allocs := func(h http.Handler) float64 {
		return testing.AllocsPerRun(500, func() { h.ServeHTTP(newW(), req) })
	}
	bareAllocs, mwAllocs := allocs(bare), allocs(mw)
	const block = 100
	var bareNs, mwNs []float64
	timeBlock := func(h http.Handler) float64 {
		t0 := time.Now()
		for range block {
			h.ServeHTTP(newW(), req)
		}
		return float64(time.Since(t0).Nanoseconds()) / block
	}
	for b.Loop() {
		bareNs = append(bareNs, timeBlock(bare))
		mwNs = append(mwNs, timeBlock(mw))
	}
	nsBare, nsMW := median(bareNs), median(mwNs)
	b.ReportMetric(nsBare, "bare-ns/req")
	b.ReportMetric(nsMW, "mw-ns/req")
	b.ReportMetric(nsMW-nsBare, "added-ns/req")
	b.ReportMetric(mwAllocs-bareAllocs, "added-allocs/req")
	b.ReportMetric(nsBare/nsMW, "throughput-ratio")
}

func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}
