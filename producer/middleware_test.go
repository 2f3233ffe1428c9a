package producer

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manhattan-go/manhattan/event"
)

type recorder struct {
	mu  sync.Mutex
	evs []event.Event
}

func (r *recorder) Send(evs []event.Event) {
	r.mu.Lock()
	r.evs = append(r.evs, evs...)
	r.mu.Unlock()
}

func (r *recorder) take() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.evs
	r.evs = nil
	return out
}

var fixed = time.Date(2025, 12, 1, 0, 0, 0, 123456000, time.UTC)

func newTestMW(t testing.TB, opts Options) (*Middleware, *recorder) {
	t.Helper()
	rec := &recorder{}
	if opts.Secret == "" {
		opts.Secret = "s3krit"
	}
	opts.Sink = rec
	if opts.Now == nil {
		opts.Now = func() time.Time { return fixed }
	}
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return m, rec
}

func TestCookieVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/cookie_vectors.json") // a copy of shared/testdata/cookie_vectors.json
	if err != nil {
		t.Fatal(err)
	}
	var vs []struct{ VID, Secret, Cookie string }
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range vs {
		s := newSigner(v.Secret)
		if got := s.sign(v.VID); got != v.Cookie {
			t.Errorf("sign(%q, secret %q) = %q, want %q", v.VID, v.Secret, got, v.Cookie)
		}
		if vid, ok := s.verify(v.Cookie); !ok || vid != v.VID {
			t.Errorf("verify(%q) = %q, %v", v.Cookie, vid, ok)
		}
		if _, ok := newSigner(v.Secret + "x").verify(v.Cookie); ok {
			t.Errorf("cookie %q verifies under another secret", v.Cookie)
		}
		bad := []byte(v.Cookie)
		bad[len(bad)-1] ^= 1
		if _, ok := s.verify(string(bad)); ok {
			t.Errorf("tampered cookie %q verifies", bad)
		}
	}
	// The middleware reads the cookie the way browsers send it.
	m, rec := newTestMW(t, Options{Secret: vs[0].Secret})
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, FromRequest(r).ID())
	}))
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Cookie", `other=1; manhattan="garbage"; manhattan=`+vs[0].Cookie+`; x=y`)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Body.String() != vs[0].VID || w.Header().Get("Set-Cookie") != "" {
		t.Fatalf("known visitor: body %q, Set-Cookie %q", w.Body, w.Header().Get("Set-Cookie"))
	}
	if evs := rec.take(); len(evs) != 1 || evs[0].VID != vs[0].VID {
		t.Fatalf("events %+v", evs)
	}
}

func TestNewVisitorCookie(t *testing.T) {
	m, rec := newTestMW(t, Options{CookieName: "mh", CookieSecure: true, CookieSameSite: http.SameSiteStrictMode})
	var vid string
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := FromRequest(r)
		vid = v.ID()
		if !v.IsNew() {
			t.Error("visitor without cookie is not new")
		}
	}))
	for _, cookie := range []string{"", "mh=nonsense", "mh=" + strings.Repeat("a", 40) + "." + strings.Repeat("0", 40)} {
		req := httptest.NewRequest("GET", "/", nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if len(vid) != 40 {
			t.Fatalf("vid %q", vid)
		}
		sc := w.Header().Get("Set-Cookie")
		for _, part := range []string{"mh=" + vid + ".", "HttpOnly", "Secure", "SameSite=Strict", "Path=/", "Max-Age="} {
			if !strings.Contains(sc, part) {
				t.Errorf("Set-Cookie %q lacks %q", sc, part)
			}
		}
		// The cookie set verifies on the next request.
		c, err := http.ParseSetCookie(sc)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := m.signer.verify(c.Value); !ok || got != vid {
			t.Fatalf("set cookie does not verify: %q", c.Value)
		}
	}
	rec.take()
}

func TestPageEvent(t *testing.T) {
	m, rec := newTestMW(t, Options{HostMap: map[string]int64{"Shop.Example.com": 7, "[::1]": 9}})
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	req := httptest.NewRequest("POST", "http://shop.example.COM:8080/buy?x=1", nil)
	req.RemoteAddr = "203.0.113.9:5555"
	req.Header.Set("User-Agent", "UA\xff")
	req.Header.Set("Referer", "http://ref/")
	h.ServeHTTP(httptest.NewRecorder(), req)
	evs := rec.take()
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	e := evs[0]
	want := event.Event{Type: event.TypePage, TS: fixed.UnixMicro(), VID: e.VID, SiteID: 7, IP: "203.0.113.9",
		Method: "POST", URL: "http://shop.example.COM:8080/buy?x=1", UserAgent: "UA\uFFFD", Referer: "http://ref/"}
	if e != want {
		t.Fatalf("got  %+v\nwant %+v", e, want)
	}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	req = httptest.NewRequest("GET", "http://[::1]:80/", nil)
	h.ServeHTTP(httptest.NewRecorder(), req)
	if evs := rec.take(); evs[0].SiteID != 9 {
		t.Fatalf("site %d", evs[0].SiteID)
	}
	req = httptest.NewRequest("GET", "http://unknown/", nil)
	h.ServeHTTP(httptest.NewRecorder(), req)
	if evs := rec.take(); evs[0].SiteID != 0 {
		t.Fatalf("site %d", evs[0].SiteID)
	}
}

func TestNotCounted(t *testing.T) {
	m, rec := newTestMW(t, Options{})
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	cases := []struct{ method, header, value string }{
		{"GET", "X-Purpose", "preview"},
		{"GET", "Purpose", "prefetch"},
		{"GET", "Sec-Purpose", "prefetch"},
		{"GET", "Sec-Purpose", "prefetch;prerender"},
		{"PUT", "", ""},
		{"DELETE", "", ""},
		{"HEAD", "", ""},
	}
	for _, c := range cases {
		req := httptest.NewRequest(c.method, "/", nil)
		if c.header != "" {
			req.Header.Set(c.header, c.value)
		}
		h.ServeHTTP(httptest.NewRecorder(), req)
		if evs := rec.take(); len(evs) != 0 {
			t.Errorf("%s %s: %s recorded %+v", c.method, c.header, c.value, evs)
		}
	}
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Purpose", "something-else")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if evs := rec.take(); len(evs) != 1 {
		t.Errorf("plain GET: %d events", len(evs))
	}
}

func TestGoalsAndSplits(t *testing.T) {
	m, rec := newTestMW(t, Options{})
	var results []string
	var goalErr error
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := FromRequest(r)
		results = append(results, v.Split("superior dessert preference"))
		results = append(results, v.Split("color", "red", "green", "blue"))
		p, err := v.SplitWeighted("price", map[string]float64{"low": 1, "high": 0})
		if err != nil {
			t.Error(err)
		}
		results = append(results, p)
		if _, err := v.SplitWeighted("bad", map[string]float64{}); err == nil {
			t.Error("empty weights accepted")
		}
		if err := v.Goal("pie accomplished"); err != nil {
			t.Error(err)
		}
		if err := v.Goal("purchase", Value("12.50"), Sum, Currency); err != nil {
			t.Error(err)
		}
		goalErr = v.Goal("purchase", Value("twelve"))
	}))
	vid := "0123456789abcdef0123456789abcdef01234567"
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Cookie", "manhattan="+m.signer.sign(vid))
	h.ServeHTTP(httptest.NewRecorder(), req)
	if goalErr == nil || !strings.Contains(goalErr.Error(), "value") {
		t.Fatalf("bad goal value: err %v", goalErr)
	}
	evs := rec.take()
	types := []event.Type{}
	for _, e := range evs {
		types = append(types, e.Type)
		if e.VID != vid || e.TS != fixed.UnixMicro() {
			t.Errorf("event %+v", e)
		}
		if err := e.Validate(); err != nil {
			t.Error(err)
		}
	}
	want := []event.Type{event.TypePage, event.TypeSplit, event.TypeSplit, event.TypeSplit, event.TypeGoal, event.TypeGoal}
	if len(types) != len(want) {
		t.Fatalf("types %v, want %v", types, want)
	}
	if results[0] != Assign(vid, "superior dessert preference") || results[2] != "low" {
		t.Fatalf("results %v", results)
	}
	if evs[1].Test != "superior dessert preference" || evs[1].Selected != results[0] || evs[2].Selected != results[1] {
		t.Fatalf("split events %+v", evs[1:3])
	}
	g := evs[5]
	if g.Name != "purchase" || g.Value != "12.50" || g.ValueType != "S" || g.ValueFormat != "C" {
		t.Fatalf("goal %+v", g)
	}
	// A nil visitor (middleware missing) is harmless.
	var nv *Visitor
	if nv.Split("t") == "" || nv.Goal("g") == nil || nv.ID() != "" {
		t.Fatal("nil visitor")
	}
}

// Events recorded after the response (e.g. from a goroutine the handler
// started) are not lost.
func TestLateEvents(t *testing.T) {
	m, rec := newTestMW(t, Options{})
	var v *Visitor
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { v = FromRequest(r) }))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if n := len(rec.take()); n != 1 {
		t.Fatalf("%d events", n)
	}
	v.Goal("late")
	if evs := rec.take(); len(evs) != 1 || evs[0].Name != "late" {
		t.Fatalf("late goal: %+v", evs)
	}
}

func TestPixel(t *testing.T) {
	m, rec := newTestMW(t, Options{PixelPath: "/px.gif", HostMap: map[string]int64{"a.example": 3}})
	called := false
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called = true }))
	vid := strings.Repeat("ab", 20)
	for _, withCookie := range []bool{false, true} {
		req := httptest.NewRequest("GET", "http://a.example/px.gif", nil)
		if withCookie {
			req.Header.Set("Cookie", "manhattan="+m.signer.sign(vid))
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 || w.Header().Get("Content-Type") != "image/gif" || !strings.HasPrefix(w.Body.String(), "GIF89a") {
			t.Fatalf("pixel response %d %v", w.Code, w.Header())
		}
		if !strings.Contains(w.Header().Get("Cache-Control"), "no-cache") || w.Header().Get("Pragma") != "no-cache" {
			t.Fatalf("pixel cacheable: %v", w.Header())
		}
		evs := rec.take()
		if !withCookie && len(evs) != 0 {
			t.Fatalf("pixel without cookie recorded %+v", evs)
		}
		if withCookie && (len(evs) != 1 || evs[0].Type != event.TypePixel || evs[0].VID != vid || evs[0].SiteID != 3) {
			t.Fatalf("pixel with cookie: %+v", evs)
		}
	}
	if called {
		t.Fatal("pixel path reached the app")
	}
}

func TestOptionErrors(t *testing.T) {
	sink := &recorder{}
	for _, o := range []Options{
		{Sink: sink},
		{Secret: "x"},
		{Secret: "x", Sink: sink, CookieName: "bad name"},
		{Secret: "x", Sink: sink, PixelPath: "px.gif"},
		{Secret: "x", Sink: sink, HostMap: map[string]int64{"a": -1}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
