package exampleapp

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/manhattan-go/manhattan/event"
	"github.com/manhattan-go/manhattan/producer"
)

type recorder struct {
	mu  sync.Mutex
	evs []event.Event
}

func (r *recorder) Send(evs []event.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, evs...)
}

func (r *recorder) take() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.evs
	r.evs = nil
	return out
}

func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(b)
}

func types(evs []event.Event) string {
	var s []string
	for _, e := range evs {
		s = append(s, e.Type.String())
	}
	return strings.Join(s, ",")
}

func TestQuickStartFlow(t *testing.T) {
	rec := &recorder{}
	mw, err := producer.New(producer.Options{Secret: "s3krit", Sink: rec})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mw.Handler(Handler()))
	defer srv.Close()

	cakes := 0
	for i := 0; i < 40; i++ {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar}

		body := get(t, c, srv.URL+"/")
		evs := rec.take()
		if types(evs) != "page,split" {
			t.Fatalf("GET / recorded %s, want page,split", types(evs))
		}
		split := evs[1]
		if split.Test != Test || (split.Selected != "True" && split.Selected != "False") {
			t.Fatalf("split = %+v", split)
		}
		// The population is the original system's deterministic choice.
		if want := producer.Assign(split.VID, Test); split.Selected != want {
			t.Fatalf("selected %q, Assign says %q", split.Selected, want)
		}
		want := Dessert(split.Selected)
		if !strings.Contains(body, `<h1 id="dessert">`+want+`</h1>`) {
			t.Fatalf("body for population %s does not answer %s:\n%s", split.Selected, want, body)
		}
		if want == "cake" {
			cakes++
		}
		if !strings.Contains(body, `src="/vpixel.gif"`) || strings.Index(body, "vpixel.gif") > strings.Index(body, "</body>") {
			t.Fatalf("pixel not injected before </body>:\n%s", body)
		}

		// Same visitor again: same population (idempotent split).
		body2 := get(t, c, srv.URL+"/")
		if !strings.Contains(body2, `id="dessert">`+want+`<`) {
			t.Fatalf("second visit answered differently:\n%s", body2)
		}
		if evs := rec.take(); types(evs) != "page,split" || evs[1].Selected != split.Selected || evs[0].VID != split.VID {
			t.Fatalf("second visit recorded %+v", evs)
		}

		get(t, c, srv.URL+"/vpixel.gif")
		if evs := rec.take(); types(evs) != "pixel" || evs[0].VID != split.VID {
			t.Fatalf("pixel recorded %+v", evs)
		}

		get(t, c, srv.URL+"/pie")
		evs = rec.take()
		if types(evs) != "page,goal" || evs[1].Name != Goal || evs[1].VID != split.VID {
			t.Fatalf("GET /pie recorded %+v", evs)
		}
	}
	if cakes == 0 || cakes == 40 {
		t.Fatalf("%d of 40 visitors got cake: the split is not splitting", cakes)
	}
}

// TestUnknownPath: paths other than / and /pie are 404, not the dessert
// page, and still pass through the middleware (a page view, no split).
func TestUnknownPath(t *testing.T) {
	rec := &recorder{}
	mw, err := producer.New(producer.Options{Secret: "s3krit", Sink: rec})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mw.Handler(Handler()))
	defer srv.Close()
	for _, p := range []string{"/nope", "/pie/extra", "/favicon.ico"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || strings.Contains(string(b), "dessert") {
			t.Errorf("GET %s: %s %q, want 404 without the dessert page", p, resp.Status, b)
		}
		if evs := rec.take(); types(evs) != "page" || evs[0].URL == "" {
			t.Errorf("GET %s recorded %+v, want one page view", p, evs)
		}
	}
}

func TestDessert(t *testing.T) {
	if Dessert("True") != "cake" || Dessert("False") != "pie" {
		t.Fatal("True must be cake and False pie, as in the quick start")
	}
}
