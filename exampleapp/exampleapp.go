// Package exampleapp is the original quick start's hello app in Go: `/`
// answers cake or pie by the split test "superior dessert preference", and
// `/pie` records the goal "pie accomplished"; any other path is a 404. Its pages are HTML, so the
// middleware injects the tracking pixel that tells people from bots.
package exampleapp

import (
	"fmt"
	"html"
	"log/slog"
	"net/http"

	"github.com/manhattan-go/manhattan/producer"
)

// Names used by the app (and by the demo that drives it).
const (
	Test = "superior dessert preference"
	Goal = "pie accomplished"
)

// Handler returns the app. Install it behind the producer middleware:
//
//	http.ListenAndServe(":8000", mw.Handler(exampleapp.Handler()))
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pie", pie)
	// Only "/" itself is the dessert page; anything else is a 404 (still
	// seen by the middleware, like any request to the app).
	mux.HandleFunc("GET /{$}", dessert)
	return mux
}

// Dessert answers the population's dessert, like the quick start:
//
//	if visitor.split('superior dessert preference'): s = 'cake' else: s = 'pie'
func Dessert(population string) string {
	if population == "True" {
		return "cake"
	}
	return "pie"
}

func dessert(w http.ResponseWriter, r *http.Request) {
	v := producer.FromRequest(r)
	d := Dessert(v.Split(Test))
	page(w, d, `<h1 id="dessert">`+d+`</h1>
<p>You are in a split test: some visitors are offered cake, others pie.</p>
<p><a href="/pie">Have some pie</a></p>`)
}

func pie(w http.ResponseWriter, r *http.Request) {
	v := producer.FromRequest(r)
	if err := v.Goal(Goal); err != nil {
		// A recording problem must not break the page.
		slog.Warn("example app: goal not recorded", "err", err)
	}
	page(w, "pie accomplished", `<h1 id="goal">pie accomplished</h1>
<p>Goal recorded. <a href="/">Back</a></p>`)
}

// page writes a small HTML page; the middleware adds the pixel before </body>.
func page(w http.ResponseWriter, title, body string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintf(w, `<!doctype html>
<html><head><meta charset="utf-8"><title>%s</title></head>
<body>
%s
</body></html>
`, html.EscapeString(title), body)
}
