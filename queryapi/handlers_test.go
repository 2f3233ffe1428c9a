package queryapi

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/manhattan-go/manhattan/queryapi/client"
	"github.com/manhattan-go/manhattan/reconcile"
)

// weirdNames must round-trip through paths and query parameters.
var weirdNames = []string{"a b", "a/b", "100%", "50%25 off", `say "hi" 'x'`, "café ☃ 日本", "a+b", "a?b#c&d=e", "a,b:c", "../x", ".", "%2F"}

func conv(goal string, site int64, n int64, v string) (reconcile.CounterKey, int64, string) {
	return reconcile.CounterKey{Kind: reconcile.KindConversion, Goal: goal, Site: site}, n, v
}

// world: test "cta" with control blue 120/1000 signups and green 150/1000
// (the z-test fixture case of package splitstats), goals of every value type.
func world() *fakeStore {
	f := newFakeStore()
	for _, g := range []reconcile.GoalMeta{{Name: "signup"}, {Name: "purchase", ValueType: "S", ValueFormat: "C"},
		{Name: "margin", ValueType: "A", ValueFormat: "N"}, {Name: "per visit", ValueType: "I", ValueFormat: "C"}, {Name: reconcile.ViewedPage}} {
		f.goals[g.Name] = g
	}
	f.tests["cta"] = reconcile.TestMeta{Name: "cta", First: 1764547202015838, Last: 1764547252000000, Populations: []string{"blue", "green"}}
	f.tests["older"] = reconcile.TestMeta{Name: "older", First: 1000000, Last: 2000000, Populations: []string{"True", "False"}}
	f.add(conv("signup", 1, 200, "0"))
	f.add(conv("signup", 2, 70, "0"))
	f.add(conv("purchase", 1, 3, "125.01"))
	f.add(conv("margin", 1, 2, "20"))
	f.add(conv("per visit", 1, 1, "7.5"))
	f.add(conv(reconcile.ViewedPage, 1, 4, "0"))
	f.add(conv(reconcile.ViewedPage, 2, 1, "0"))
	for _, p := range []struct {
		pop           string
		imp, sign     int64
		purchase, vpv string
	}{{"blue", 1000, 120, "10.5", "3"}, {"green", 1000, 150, "12", "4"}} {
		f.add(reconcile.CounterKey{Kind: reconcile.KindImpression, Test: "cta", Population: p.pop, Site: 1}, p.imp, "0")
		vc := reconcile.CounterKey{Kind: reconcile.KindVariantConversion, Test: "cta", Population: p.pop, Site: 1}
		vc.Goal = "signup"
		f.add(vc, p.sign, "0")
		vc.Goal = "purchase"
		f.add(vc, 7, p.purchase)
		vc.Goal = "per visit"
		f.add(vc, 2, p.vpv)
		vc.Goal = reconcile.ViewedPage
		f.add(vc, 4, "0")
	}
	for _, day := range []string{"2025-11-30", "2025-12-01", "2025-12-02"} {
		f.add(reconcile.CounterKey{Kind: reconcile.KindConversion, Goal: "per visit", Rollup: "day", Bucket: day, Site: 1}, 1, "3")
		f.add(reconcile.CounterKey{Kind: reconcile.KindConversion, Goal: reconcile.ViewedPage, Rollup: "day", Bucket: day, Site: 1}, 2, "0")
	}
	for i, n := range weirdNames {
		f.goals[n] = reconcile.GoalMeta{Name: n}
		f.add(conv(n, 0, int64(i+1), "0"))
		f.tests[n] = reconcile.TestMeta{Name: n, Populations: []string{n, "other"}}
		f.add(reconcile.CounterKey{Kind: reconcile.KindImpression, Test: n, Population: n}, 10, "0")
		f.add(reconcile.CounterKey{Kind: reconcile.KindImpression, Test: n, Population: "other"}, 11, "0")
		f.add(reconcile.CounterKey{Kind: reconcile.KindVariantConversion, Goal: n, Test: n, Population: n}, 3, "0")
	}
	return f
}

// worldRollups is world's rollup configuration (only "day" has counts).
var worldRollups = []reconcile.Rollup{
	{Name: "all", Kind: "all"}, {Name: "day", Kind: "day", Timezone: "UTC"}, {Name: "hour", Kind: "hour", Timezone: "UTC"},
	{Name: "week", Kind: "week", Timezone: "UTC"}, {Name: "month", Kind: "month", Timezone: "UTC"}, {Name: "browsers", Kind: "browser"},
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestServer(t *testing.T, f *fakeStore, o Options) (*httptest.Server, *client.Client) {
	t.Helper()
	if f != nil {
		o.Store = f
		if o.Rollups == nil {
			o.Rollups = worldRollups
		}
	}
	if o.Logger == nil {
		o.Logger = quietLogger()
	}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, client.New(srv.URL, client.WithToken(o.Token))
}

func get(t *testing.T, url string, hdr ...string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(body) > 0 && strings.Contains(resp.Header.Get("Content-Type"), "json") {
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("GET %s: body %q: %v", url, body, err)
		}
	}
	return resp.StatusCode, m, resp.Header
}

func TestGoalsAndCounts(t *testing.T) {
	ctx := context.Background()
	_, c := newTestServer(t, world(), Options{})
	gs, err := c.Goals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(gs.Goals) != 5+len(weirdNames) || gs.Goals[0].Name > gs.Goals[1].Name {
		t.Fatalf("goals = %+v", gs.Goals)
	}
	site1 := int64(1)
	cases := []struct {
		goal  string
		f     client.Filter
		count int64
		value string
	}{
		{"signup", client.Filter{}, 270, "270"},
		{"signup", client.Filter{Site: &site1}, 200, "200"},
		{"purchase", client.Filter{}, 3, "125.01"},
		{"margin", client.Filter{}, 2, "10"},                   // A: 20 / 2
		{"per visit", client.Filter{}, 1, "1.5"},               // I: 7.5 / 5 page views
		{"per visit", client.Filter{Site: &site1}, 1, "1.875"}, // 7.5 / 4
		{"signup", client.Filter{Test: "cta", Population: "green"}, 150, "150"},
		{"purchase", client.Filter{Test: "cta", Population: "blue"}, 7, "10.5"},
		{"per visit", client.Filter{Test: "cta", Population: "green"}, 2, "1"}, // 4 / 4
		{"per visit", client.Filter{Rollup: "day", Bucket: "2025-12-01"}, 1, "1.5"},
		{"signup", client.Filter{Rollup: "day", Bucket: "2025-12-01"}, 0, "0"},
	}
	for _, tc := range cases {
		g, err := c.Goal(ctx, tc.goal, tc.f)
		if err != nil {
			t.Fatalf("%s %+v: %v", tc.goal, tc.f, err)
		}
		if g.Goal != tc.goal || g.Count != tc.count || !g.Value.Equal(decimal.RequireFromString(tc.value)) {
			t.Errorf("%s %+v = %+v, want count %d value %s", tc.goal, tc.f, g, tc.count, tc.value)
		}
	}
}

func TestWireFormat(t *testing.T) {
	srv, _ := newTestServer(t, world(), Options{})
	code, m, _ := get(t, srv.URL+"/v1/goals/purchase")
	if code != 200 {
		t.Fatal(code)
	}
	// count a JSON integer, value an exact decimal string.
	if _, ok := m["count"].(float64); !ok {
		t.Errorf("count = %#v", m["count"])
	}
	if m["value"] != "125.01" {
		t.Errorf("value = %#v", m["value"])
	}
	code, m, _ = get(t, srv.URL+"/v1/tests")
	tests := m["tests"].([]any)
	first := tests[0].(map[string]any)
	if code != 200 || first["name"] != "cta" || first["first_timestamp"] != float64(1764547202) || first["last_timestamp"] != float64(1764547252) {
		t.Errorf("tests = %v", m)
	}
}

func TestNamesRoundTrip(t *testing.T) {
	ctx := context.Background()
	srv, c := newTestServer(t, world(), Options{})
	for i, n := range weirdNames {
		g, err := c.Goal(ctx, n, client.Filter{})
		if err != nil {
			t.Fatalf("goal %q: %v", n, err)
		}
		if g.Goal != n || g.Count != int64(i+1) {
			t.Errorf("goal %q = %+v", n, g)
		}
		td, err := c.Test(ctx, n, client.Filter{})
		if err != nil {
			t.Fatalf("test %q: %v", n, err)
		}
		if td.Test != n || len(td.Populations) != 2 {
			t.Errorf("test %q = %+v", n, td)
		}
		g, err = c.Goal(ctx, n, client.Filter{Test: n, Population: n})
		if err != nil || g.Count != 3 {
			t.Errorf("goal %q in its population = %+v, %v", n, g, err)
		}
		r, err := c.Results(ctx, n, []string{n, "signup"}, client.ResultsOptions{Control: n, Weights: map[string]float64{n: 1, "other": 1}})
		if err != nil {
			t.Fatalf("results %q: %v", n, err)
		}
		if r.Test != n || r.Goals[0] != n || r.Control != n || r.SRM == nil || r.SRM.Weights[0].Population == "" {
			t.Errorf("results %q = %+v", n, r)
		}
	}
	// The same goal under different but valid escapings.
	for _, p := range []string{"/v1/goals/a%2Fb", "/v1/goals/a%2fb", "/v1/goals/%61%2F%62"} {
		code, m, _ := get(t, srv.URL+p)
		if code != 200 || m["goal"] != "a/b" {
			t.Errorf("%s = %d %v", p, code, m)
		}
	}
	for _, p := range []string{"/v1/goals/caf%C3%A9%20%E2%98%83%20%E6%97%A5%E6%9C%AC", "/v1/goals/100%25"} {
		code, m, _ := get(t, srv.URL+p)
		if code != 200 {
			t.Errorf("%s = %d %v", p, code, m)
		}
	}
	// A literal slash is a different route, not the goal "a/b".
	if code, _, _ := get(t, srv.URL+"/v1/goals/a/b"); code != 404 {
		t.Errorf("/v1/goals/a/b = %d", code)
	}
}

func TestResultsStatistics(t *testing.T) {
	ctx := context.Background()
	_, c := newTestServer(t, world(), Options{})
	r, err := c.Results(ctx, "cta", []string{"signup", "purchase", "per visit"}, client.ResultsOptions{Weights: map[string]float64{"blue": 1, "green": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Control != "blue" || len(r.Populations) != 2 || r.Populations[0].Population != "blue" {
		t.Fatalf("results = %+v", r)
	}
	blue, green := r.Populations[0], r.Populations[1]
	wantValues := map[string][]string{"blue": {"120", "10.5", "0.75"}, "green": {"150", "12", "1"}}
	for _, p := range r.Populations {
		for i, v := range p.Values {
			if !v.Equal(decimal.RequireFromString(wantValues[p.Population][i])) {
				t.Errorf("%s value %d = %s, want %s", p.Population, i, v, wantValues[p.Population][i])
			}
		}
	}
	if !blue.Stats.Control || green.Stats.Control || blue.Stats.Visitors != 1000 {
		t.Errorf("stats flags = %+v %+v", blue.Stats, green.Stats)
	}
	bs, gs := blue.Stats.Goals[0], green.Stats.Goals[0]
	if bs.Uplift != nil || bs.PValue != nil || bs.ChanceToBeatControl != nil {
		t.Errorf("control has comparisons: %+v", bs)
	}
	approx := func(what string, got *float64, want, tol float64) {
		t.Helper()
		if got == nil || math.Abs(*got-want) > tol {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	approx("rate", gs.ConversionRate, 0.15, 1e-12)
	approx("uplift", gs.Uplift, 0.25, 1e-12)
	// From splitstats/testdata/fixtures.json (Python): 120/1000 vs 150/1000.
	approx("p", gs.PValue, 0.04964038686536881, 1e-12)
	// Wilson 95% of 150/1000, computed by hand from the textbook formula.
	approx("ci_low", gs.CILow, 0.12927, 1e-4)
	approx("ci_high", gs.CIHigh, 0.17342, 1e-4)
	if gs.ChanceToBeatControl == nil || *gs.ChanceToBeatControl < 0.97 || *gs.ChanceToBeatControl > 0.985 {
		t.Errorf("chance = %v", gs.ChanceToBeatControl)
	}
	approx("srm p", r.SRM.PValue, 1, 1e-12) // 1000 vs 1000 at 1:1
	// Skewed weights: 1000/1000 against 1:3 expected is a glaring mismatch.
	r, err = c.Results(ctx, "cta", []string{"signup"}, client.ResultsOptions{Control: "green", Weights: map[string]float64{"blue": 1, "green": 3}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Control != "green" || r.Populations[0].Stats.Control || r.SRM.PValue == nil || *r.SRM.PValue > 1e-10 || r.SRM.DF != 1 {
		t.Errorf("skewed = %+v srm %+v", r, r.SRM)
	}
	approx("uplift vs green", r.Populations[0].Stats.Goals[0].Uplift, -0.2, 1e-12)
}

func TestSeries(t *testing.T) {
	ctx := context.Background()
	_, c := newTestServer(t, world(), Options{})
	s, err := c.Series(ctx, "per visit", client.SeriesOptions{Filter: client.Filter{Rollup: "day"}, From: "2025-12-01"})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Points) != 2 || s.Points[0].Bucket != "2025-12-01" || s.Points[1].Bucket != "2025-12-02" ||
		s.Points[0].Count != 1 || !s.Points[0].Value.Equal(decimal.RequireFromString("1.5")) {
		t.Errorf("series = %+v", s)
	}
	s, err = c.Series(ctx, "per visit", client.SeriesOptions{Filter: client.Filter{Rollup: "day"}, From: "2025-11-30", To: "2025-11-30"})
	if err != nil || len(s.Points) != 1 {
		t.Errorf("one day = %+v, %v", s, err)
	}
}

func TestErrors(t *testing.T) {
	f := world()
	srv, _ := newTestServer(t, f, Options{})
	cases := []struct {
		path  string
		code  int
		param string // must be named in the message
	}{
		{"/v1/goals/nope", 404, "nope"},
		{"/v1/tests/nope", 404, "nope"},
		{"/v1/tests/nope/results?goals=signup", 404, "nope"},
		{"/v1/tests/cta/results?goals=signup,nope", 404, "nope"},
		{"/v1/goals/signup?test=nope&population=x", 404, "nope"},
		{"/v1/goals/nope/series?rollup=day", 404, "nope"},
		{"/v1/nothing", 404, "route"},
		{"/v1/goals/signup?site_id=abc", 400, "site_id"},
		{"/v1/goals/signup?site_id=1&site_id=2", 400, "site_id"},
		{"/v1/goals/signup?sitee=1", 400, "sitee"},
		{"/v1/goals/signup?population=green", 400, "test"},
		{"/v1/goals/signup?test=cta", 400, "population"},
		{"/v1/goals/signup?bucket=%zz", 400, "bucket"},
		{"/v1/goals?x=1", 400, "x"},
		{"/v1/tests/cta/results", 400, "goals"},
		{"/v1/tests/cta/results?goals=", 400, "goals"},
		{"/v1/tests/cta/results?goals=a,,b", 400, "goals"},
		{"/v1/tests/cta/results?goals=signup&control=red", 400, "control"},
		{"/v1/tests/cta/results?goals=signup&weights=blue", 400, "weights"},
		{"/v1/tests/cta/results?goals=signup&weights=blue:-1,green:1", 400, "weights"},
		{"/v1/tests/cta/results?goals=signup&weights=blue:1,green:NaN", 400, "weights"},
		{"/v1/tests/cta/results?goals=signup&weights=blue:1", 400, "weights"},
		{"/v1/tests/cta/results?goals=signup&weights=blue:1,red:1,green:1", 400, "weights"},
		{"/v1/goals/signup/series", 400, "rollup"},
		{"/v1/goals/signup/series?rollup=day&bucket=x", 400, "bucket"},
		{"/v1/goals/signup/series?rollup=day&from=b&to=a", 400, "from"},
		{"/v1/tests/cta?test=x", 400, "test"},
		// Typos in filters: 400 naming the parameter, not a silent zero.
		{"/v1/goals/viewed%20page?rollup=nope", 400, "rollup"},
		{"/v1/goals/signup/series?rollup=nope", 400, `"nope" is not a configured rollup`},
		{"/v1/tests/cta?rollup=nope", 400, "rollup"},
		{"/v1/tests/cta/results?goals=signup&rollup=dya", 400, "rollup"},
		{"/v1/goals/signup?rollup=day&bucket=2025-12-1", 400, "bucket"},
		{"/v1/goals/signup?rollup=day&bucket=2025-13-01", 400, "bucket"},
		{"/v1/goals/signup?rollup=hour&bucket=2025-12-01", 400, "bucket"},
		{"/v1/goals/signup?rollup=hour&bucket=2025-12-01T1", 400, "bucket"},
		{"/v1/goals/signup?rollup=week&bucket=2025-12-01", 400, "Sunday"},
		{"/v1/goals/signup?rollup=month&bucket=2025-12-01", 400, "bucket"},
		{"/v1/goals/signup?bucket=2025-12-01", 400, "bucket"},
		{"/v1/goals/signup?rollup=all&bucket=x", 400, "bucket"},
		{"/v1/goals/signup/series?rollup=day&from=abc", 400, "from"},
		{"/v1/goals/signup/series?rollup=day&to=abc", 400, "to"},
		{"/v1/goals/signup/series?rollup=day&from=10&to=5", 400, "from"},
		{"/v1/goals/signup/series?rollup=day&from=2025-12-02&to=2025-12-01", 400, "after"},
		{"/v1/goals/signup/series?rollup=month&from=2025-12-01", 400, "from"},
		{"/v1/goals/signup/series?rollup=all&from=2025-12", 400, "from"},
		// The list endpoints take no parameters, and say so.
		{"/v1/goals?site_id=1", 400, "site_id: unknown parameter: this endpoint takes no parameters"},
		{"/v1/tests?site_id=1", 400, "this endpoint takes no parameters"},
		{"/v1/goals/signup?nope=1", 400, "allowed: bucket, population, rollup, site_id, test"},
	}
	for _, tc := range cases {
		code, m, _ := get(t, srv.URL+tc.path)
		msg, _ := m["error"].(string)
		if code != tc.code || !strings.Contains(msg, tc.param) {
			t.Errorf("%s = %d %q, want %d naming %q", tc.path, code, msg, tc.code, tc.param)
		}
	}
	// A malformed escape in the path is refused by net/http itself (url.ParseRequestURI
	// in its request reader), before any handler or middleware: a plain-text 400 we
	// cannot turn into JSON short of replacing net/http's request parsing.
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(conn, "GET /v1/goals/%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	raw, _ := io.ReadAll(conn)
	conn.Close()
	if !strings.HasPrefix(string(raw), "HTTP/1.1 400") {
		t.Errorf("bad path escape = %q", raw)
	}
	if resp, err := http.Post(srv.URL+"/v1/goals", "application/json", nil); err != nil || resp.StatusCode != 405 {
		t.Errorf("POST = %v %v", resp, err)
	}

	// Store down: 503 JSON on every data endpoint and readyz, healthz still fine.
	f.setDown(true)
	for _, p := range []string{"/v1/goals", "/v1/goals/signup", "/v1/goals/signup/series?rollup=day", "/v1/tests", "/v1/tests/cta", "/v1/tests/cta/results?goals=signup", "/readyz"} {
		code, m, _ := get(t, srv.URL+p)
		if code != 503 || m["error"] == nil {
			t.Errorf("down %s = %d %v", p, code, m)
		}
	}
	if code, _, _ := get(t, srv.URL+"/healthz"); code != 200 {
		t.Errorf("healthz = %d", code)
	}
	f.setDown(false)
	if code, _, _ := get(t, srv.URL+"/readyz"); code != 200 {
		t.Errorf("readyz = %d", code)
	}
}

// TestRollupFilters: well-formed filters answer 200, also when the
// population has no data (a legitimate zero), and without configured rollups
// any rollup name passes to the store.
func TestRollupFilters(t *testing.T) {
	ctx := context.Background()
	_, c := newTestServer(t, world(), Options{})
	for _, f := range []client.Filter{
		{}, {Rollup: "all"}, {Rollup: "day", Bucket: "2025-12-01"}, {Rollup: "hour", Bucket: "2025-12-01T05"},
		{Rollup: "week", Bucket: "2025-11-30"}, {Rollup: "month", Bucket: "2025-12"}, {Rollup: "browsers", Bucket: "Firefox 140 / ☃"},
		{Rollup: "day", Bucket: "2025-12-01", Test: "cta", Population: "nobody"},
	} {
		g, err := c.Goal(ctx, "signup", f)
		if err != nil {
			t.Errorf("goal with %+v: %v", f, err)
		} else if f.Rollup != "" && f.Rollup != "all" && g.Count != 0 {
			t.Errorf("goal with %+v = %d, want 0", f, g.Count)
		}
	}
	for _, o := range []client.SeriesOptions{
		{Filter: client.Filter{Rollup: "day"}, From: "2025-12-01", To: "2025-12-01"},
		{Filter: client.Filter{Rollup: "hour"}, From: "2025-12-01T00", To: "2025-12-01T23"},
		{Filter: client.Filter{Rollup: "week"}, From: "2025-11-30"},
		{Filter: client.Filter{Rollup: "month"}, To: "2025-12"},
		{Filter: client.Filter{Rollup: "browsers"}, From: "A", To: "Z"},
		{Filter: client.Filter{Rollup: "all"}},
	} {
		if _, err := c.Series(ctx, "per visit", o); err != nil {
			t.Errorf("series %+v: %v", o, err)
		}
	}
	s, err := c.Series(ctx, "per visit", client.SeriesOptions{Filter: client.Filter{Rollup: "day"}, From: "2025-12-01", To: "2025-12-01"})
	if err != nil || len(s.Points) != 1 {
		t.Errorf("day series = %+v, %v; want one point", s, err)
	}

	// Without "all" configured, an omitted rollup is refused too.
	srv, _ := newTestServer(t, world(), Options{Rollups: []reconcile.Rollup{{Name: "day", Kind: "day", Timezone: "UTC"}}})
	if code, m, _ := get(t, srv.URL+"/v1/goals/signup"); code != 400 || !strings.Contains(fmt.Sprint(m["error"]), `"all"`) {
		t.Errorf("no all rollup: %d %v", code, m)
	}

	// Configuration unknown: names and buckets go to the store unchecked.
	h, err := New(Options{Store: world(), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	usrv := httptest.NewServer(h)
	defer usrv.Close()
	for p, want := range map[string]int{
		"/v1/goals/signup?rollup=anything&bucket=x":                        200,
		"/v1/goals/signup/series?rollup=anything&from=abc":                 200,
		"/v1/goals/signup/series?rollup=day&from=2025-12-02&to=2025-12-01": 400,
	} {
		if code, m, _ := get(t, usrv.URL+p); code != want {
			t.Errorf("unconfigured %s = %d %v, want %d", p, code, m, want)
		}
	}

	if _, err := New(Options{Store: world(), Rollups: []reconcile.Rollup{{Name: "y", Kind: "year"}}}); err == nil || !strings.Contains(err.Error(), "year") {
		t.Errorf("unknown kind: %v", err)
	}
	if _, err := New(Options{Store: world(), Rollups: []reconcile.Rollup{{Name: "d", Kind: "day"}, {Name: "d", Kind: "day"}}}); err == nil {
		t.Error("duplicate rollup accepted")
	}
}

func TestBearerToken(t *testing.T) {
	srv, c := newTestServer(t, world(), Options{Token: "s3cret"})
	for _, h := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "s3cret"}, {"Authorization", "Bearer s3cret2"},
		{"Authorization", "Basic s3cret"}, {"Authorization", "Bearers3cret"}, {"Authorization", "Bearer"}} {
		if code, m, _ := get(t, srv.URL+"/v1/goals", h...); code != 401 || m["error"] == nil {
			t.Errorf("auth %v = %d", h, code)
		}
	}
	// The scheme is case-insensitive (RFC 7235), and may be followed by more than one space.
	for _, v := range []string{"Bearer s3cret", "bearer s3cret", "BEARER s3cret", "Bearer  s3cret"} {
		if code, _, _ := get(t, srv.URL+"/v1/goals", "Authorization", v); code != 200 {
			t.Errorf("auth %q = %d, want 200", v, code)
		}
	}
	if _, err := c.Goals(context.Background()); err != nil {
		t.Errorf("with token: %v", err)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/openapi.json"} {
		if code, _, _ := get(t, srv.URL+p); code != 200 {
			t.Errorf("%s without token = %d", p, code)
		}
	}
}

func TestCORS(t *testing.T) {
	srv, _ := newTestServer(t, world(), Options{Token: "t", CORSOrigins: []string{"https://dash.example"}})
	req, _ := http.NewRequest(http.MethodOptions, srv.URL+"/v1/goals", nil)
	req.Header.Set("Origin", "https://dash.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	req.Header.Set("Access-Control-Request-Headers", "authorization")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://dash.example" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight = %d %v", resp.StatusCode, resp.Header)
	}
	_, _, h := get(t, srv.URL+"/v1/goals", "Origin", "https://dash.example", "Authorization", "Bearer t")
	if h.Get("Access-Control-Allow-Origin") != "https://dash.example" {
		t.Errorf("simple request headers = %v", h)
	}
	_, _, h = get(t, srv.URL+"/v1/goals", "Origin", "https://evil.example", "Authorization", "Bearer t")
	if h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("other origin allowed: %v", h)
	}
}

func TestGzipAndMetrics(t *testing.T) {
	srv, _ := newTestServer(t, world(), Options{})
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/goals", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultTransport.RoundTrip(req) // the transport would unzip transparently otherwise
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding = %q", resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var gs client.Goals
	if err := json.NewDecoder(zr).Decode(&gs); err != nil || len(gs.Goals) == 0 {
		t.Fatalf("gzip body: %v %+v", err, gs)
	}
	get(t, srv.URL+"/v1/goals/signup")
	get(t, srv.URL+"/v1/goals/nope")
	resp2, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	for _, want := range []string{
		`manhattan_queryapi_requests_total{code="200",method="GET",route="/v1/goals/{goal}"} 1`,
		`manhattan_queryapi_requests_total{code="404",method="GET",route="/v1/goals/{goal}"} 1`,
		`manhattan_queryapi_request_duration_seconds_bucket{route="/v1/goals",le="+Inf"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestServeShutsDownGracefully(t *testing.T) {
	h, err := New(Options{Store: world(), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, ln, h) }()
	c := client.New("http://" + ln.Addr().String())
	if _, err := c.Goals(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		t.Error("still serving after shutdown")
	}
	if err := Serve(context.Background(), "256.0.0.1:bad", h); err == nil {
		t.Error("Serve on a bad address succeeded")
	}
}

func TestTimeoutAndLogging(t *testing.T) {
	f := world()
	f.block = true
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	srv, _ := newTestServer(t, f, Options{Timeout: 50 * time.Millisecond, Logger: log})
	start := time.Now()
	code, m, _ := get(t, srv.URL+"/v1/goals/a%2Fb?site_id=3")
	if code != 503 || !strings.Contains(m["error"].(string), "in time") || time.Since(start) > 5*time.Second {
		t.Errorf("slow store = %d %v after %v", code, m, time.Since(start))
	}
	get(t, srv.URL+"/v1/goals/nope")
	out := buf.String()
	for _, want := range []string{`route=/v1/goals/{goal}`, `status=503`, `status=404`, `path=/v1/goals/a%2Fb`, `query="site_id=3"`, "duration="} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestNewRequiresStore(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without a store succeeded")
	}
}

func TestMetaCache(t *testing.T) {
	f := world()
	srv, _ := newTestServer(t, f, Options{MetaTTL: time.Hour})
	if code, _, _ := get(t, srv.URL+"/v1/goals/fresh"); code != 404 {
		t.Fatalf("fresh before = %d", code)
	}
	// A goal that appears is visible at once: misses are not cached.
	f.mu.Lock()
	f.goals["fresh"] = reconcile.GoalMeta{Name: "fresh"}
	f.mu.Unlock()
	if code, _, _ := get(t, srv.URL+"/v1/goals/fresh"); code != 200 {
		t.Fatalf("fresh after = %d", code)
	}
	// A hit is served from the cache within the TTL (a changed value type
	// shows later), while counts are always read.
	f.mu.Lock()
	f.goals["fresh"] = reconcile.GoalMeta{Name: "fresh", ValueType: "S"}
	f.mu.Unlock()
	f.add(conv("fresh", 0, 2, "3"))
	_, m, _ := get(t, srv.URL+"/v1/goals/fresh")
	if m["value_type"] != "" || m["count"] != float64(2) {
		t.Errorf("cached = %v", m)
	}
	srv2, _ := newTestServer(t, f, Options{MetaTTL: -1})
	if _, m, _ := get(t, srv2.URL+"/v1/goals/fresh"); m["value_type"] != "S" || m["value"] != "3" {
		t.Errorf("uncached = %v", m)
	}
}

// bucket= (given, empty) on a browser rollup asks for the "" bucket of
// visitors without a known user agent; omitting it sums every bucket.
func TestEmptyBrowserBucket(t *testing.T) {
	f := world()
	f.add(reconcile.CounterKey{Kind: reconcile.KindConversion, Goal: "signup", Rollup: "browsers", Bucket: ""}, 1, "0")
	f.add(reconcile.CounterKey{Kind: reconcile.KindConversion, Goal: "signup", Rollup: "browsers", Bucket: "Chrome"}, 5, "0")
	srv, _ := newTestServer(t, f, Options{})
	for q, want := range map[string]float64{
		"?rollup=browsers":               6,
		"?rollup=browsers&bucket=":       1,
		"?rollup=browsers&bucket=Chrome": 5,
	} {
		code, m, _ := get(t, srv.URL+"/v1/goals/signup"+q)
		if code != 200 || m["count"] != want {
			t.Errorf("signup%s: %d %v, want count %v", q, code, m, want)
		}
	}
}
