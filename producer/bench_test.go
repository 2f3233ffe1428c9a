package producer

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/manhattan-go/manhattan/event"
)

// typicalPage is a ~10 KiB HTML page.
var typicalPage = func() []byte {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Shop</title>\n")
	b.WriteString("<link rel=\"stylesheet\" href=\"/static/site.css\"><script src=\"/static/app.js\" defer></script></head>\n<body>\n")
	b.WriteString("<nav><a href=\"/\">Home</a> <a href=\"/products\">Products</a> <a href=\"/cart\">Cart</a></nav>\n<main>\n")
	for i := 0; b.Len() < 10<<10-200; i++ {
		fmt.Fprintf(&b, "<div class=\"product\"><h2><a href=\"/p/%d\">Product %d</a></h2><p>A fine product, number %d, &amp; more.</p><span class=\"price\">$%d.99</span></div>\n", i, i, i, i)
	}
	b.WriteString("</main>\n<footer>&copy; 2026</footer>\n</body>\n</html>\n")
	return []byte(b.String())
}()

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

// BenchmarkOverhead alternates bare handler and middleware request by
// request (so load from elsewhere hits both alike) and reports what the
// middleware adds per request (target: ≤ 2 µs, ≤ 4 allocations) and the
// throughput ratio middleware/bare.
func BenchmarkOverhead(b *testing.B) {
	m := newBenchMW(b)
	req := benchRequest(m)
	bare, mw := pageHandler(), m.Handler(pageHandler())
	one := func(h http.Handler) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
	}
	allocs := func(h http.Handler) float64 { return testing.AllocsPerRun(200, func() { one(h) }) }
	bareAllocs, mwAllocs := allocs(bare), allocs(mw)
	var tBare, tMW time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		one(bare)
		t1 := time.Now()
		one(mw)
		t2 := time.Now()
		tBare += t1.Sub(t0)
		tMW += t2.Sub(t1)
		n++
	}
	nsBare, nsMW := float64(tBare.Nanoseconds())/float64(n), float64(tMW.Nanoseconds())/float64(n)
	b.ReportMetric(nsBare, "bare-ns/req")
	b.ReportMetric(nsMW, "mw-ns/req")
	b.ReportMetric(nsMW-nsBare, "added-ns/req")
	b.ReportMetric(mwAllocs-bareAllocs, "added-allocs/req")
	b.ReportMetric(nsBare/nsMW, "throughput-ratio")
}
