package queryapi

import (
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

var fuzzRoutes = []string{"/v1/goals", "/v1/goals/%s", "/v1/goals/%s/series", "/v1/tests", "/v1/tests/%s", "/v1/tests/%s/results"}

// fuzzKeys are the parameters the handlers read, so random values reach the
// parsing behind them and not only the unknown-parameter check.
var fuzzKeys = []string{"site_id", "rollup", "bucket", "test", "population", "from", "to", "goals", "control", "weights", "x%zz", ""}

// checkNo5xx sends one request (name path-escaped into the route, query
// raw) straight to the handler: whatever the client sends is a 2xx or 4xx
// with a JSON body, never a 500.
func checkNo5xx(t testing.TB, h http.Handler, route int, name, rawQuery string) {
	target := fuzzRoutes[route%len(fuzzRoutes)]
	target = strings.ReplaceAll(target, "%s", url.PathEscape(name))
	u, err := url.ParseRequestURI(target + "?" + rawQuery)
	if err != nil {
		return // net/http refuses it before any handler
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.URL, req.RequestURI = u, u.RequestURI()
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { defer close(done); h.ServeHTTP(rec, req) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("GET %s hangs", u.RequestURI())
	}
	if rec.Code >= 500 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("GET %s = %d %q: %s", u.RequestURI(), rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
}

func fuzzHandler(t testing.TB) http.Handler {
	h, err := New(Options{Store: world(), Logger: quietLogger(), Rollups: worldRollups})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func randString(r *rand.Rand, alphabet string) string {
	b := make([]byte, r.IntN(12))
	for i := range b {
		if r.IntN(4) == 0 {
			b[i] = byte(r.IntN(256)) // any byte, invalid UTF-8 included
		} else {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
	}
	return string(b)
}

// TestRandomInputNo5xx: random bytes in names and query values, through the
// fake store, with configured rollups.
func TestRandomInputNo5xx(t *testing.T) {
	h := fuzzHandler(t)
	r := rand.New(rand.NewPCG(1, 2))
	const alpha = "abc-:,%+&=?#/ 0123456789T\x00é☃"
	known := append([]string{"signup", "cta", "day", "hour", "week", "browsers", "blue", "2025-12-01", "2025-11-30T05"}, weirdNames...)
	for range 3000 {
		name := randString(r, alpha)
		if r.IntN(3) == 0 {
			name = known[r.IntN(len(known))]
		}
		var q []string
		for range r.IntN(4) {
			v := randString(r, alpha)
			if r.IntN(2) == 0 {
				v = url.QueryEscape(known[r.IntN(len(known))])
			}
			q = append(q, fuzzKeys[r.IntN(len(fuzzKeys))]+"="+v)
		}
		checkNo5xx(t, h, r.IntN(len(fuzzRoutes)), name, strings.Join(q, "&"))
	}
}

// FuzzRequests is the same check for `go test -fuzz FuzzRequests ./queryapi`.
func FuzzRequests(f *testing.F) {
	f.Add(uint8(1), "viewed page", "rollup=nope")
	f.Add(uint8(2), "per visit", "rollup=day&from=2025-12-01&to=2025-11-30")
	f.Add(uint8(5), "cta", "goals=signup,%2C&weights=blue:1e309,green:1&control=%zz")
	f.Add(uint8(4), "a/b", "rollup=week&bucket=2025-11-30")
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, route uint8, name, rawQuery string) {
		checkNo5xx(t, h, int(route), name, rawQuery)
	})
}
