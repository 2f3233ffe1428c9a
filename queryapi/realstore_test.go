package queryapi

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/manhattan-go/manhattan/event"
	"github.com/manhattan-go/manhattan/internal/storetest"
	"github.com/manhattan-go/manhattan/internal/testenv"
	"github.com/manhattan-go/manhattan/logimport"
	"github.com/manhattan-go/manhattan/queryapi/client"
	"github.com/manhattan-go/manhattan/reconcile"
	"github.com/manhattan-go/manhattan/store"
)

// These tests run the API over the real stores (chDB in-process and the
// ClickHouse server from testenv), with data the engine computed and
// store.Flush wrote, as the consumer does.

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveCHDBDir()
	os.Exit(code)
}

// openReal opens a migrated store on a fresh database of the named backend;
// a ClickHouse database is dropped when the test ends.
func openReal(tb testing.TB, backend string) (store.Store, string) {
	tb.Helper()
	db := testenv.UniqueDB(tb, "qa_")
	var u string
	switch backend {
	case "clickhouse":
		u = testenv.ClickHouseDBURL(tb, db)
		tb.Cleanup(func() { // after the store's own cleanup closed it
			if err := storetest.DropDatabase(u); err != nil {
				tb.Errorf("%v", err)
			}
		})
	case "chdb":
		u = testenv.CHDBDBURL(tb, db)
	default:
		tb.Fatalf("unknown backend %q", backend)
	}
	return storetest.Open(tb, u), u
}

type smallCase struct {
	Config struct {
		Rollups      []reconcile.Rollup      `json:"rollups"`
		ComplexGoals []reconcile.ComplexGoal `json:"complex_goals"`
	} `json:"config"`
	Events  []smallEvent `json:"events"`
	Queries []struct {
		Query  string `json:"query"`
		Params struct {
			Goal, Test, Population, Rollup string
			Site                           *int64
			Bucket                         string
		} `json:"params"`
		Expected json.RawMessage `json:"expected"`
	} `json:"queries"`
	Tests []struct {
		Name        string
		First, Last int64
	} `json:"tests"`
}

type smallEvent struct {
	Type, VID, TS, URL, UA, IP, Method, Referer string
	Site                                        int64
	Name, Value                                 string
	ValueType                                   string `json:"value_type"`
	ValueFormat                                 string `json:"value_format"`
	Test, Selected                              string
}

func loadSmall(t *testing.T) smallCase {
	t.Helper()
	raw, err := os.ReadFile("../reconcile/testdata/reconcile_small.json") // a copy of shared/testdata's
	if err != nil {
		t.Fatalf("read vectors: %v", err)
	}
	var c smallCase
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("parse vectors: %v", err)
	}
	return c
}

func micros(t testing.TB, s string) int64 {
	t.Helper()
	us, err := logimport.ParseTimestamp(s)
	if err != nil {
		t.Fatalf("bad ts: %v", err)
	}
	return us
}

// flushEvents runs evs through the engine as one partition's batch and
// writes it with store.Flush, as the consumer would.
func flushEvents(t testing.TB, st store.Store, cfg reconcile.Config, partition int32, evs []event.Event) {
	t.Helper()
	eng, err := reconcile.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]*reconcile.State{}
	out := reconcile.NewOutput()
	b := &store.Batch{Partition: partition, From: 0, To: int64(len(evs))}
	for i := range evs {
		ev := &evs[i]
		if err := ev.Validate(); err != nil {
			t.Fatalf("event %d invalid: %v", i, err)
		}
		s := states[ev.VID]
		if s == nil {
			s = reconcile.NewState()
			states[ev.VID] = s
		}
		eng.Apply(s, ev, true, out)
		b.Records = append(b.Records, store.Record{Partition: partition, Offset: int64(i), Event: ev})
	}
	for vid, s := range states {
		data, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		b.States = append(b.States, store.State{VID: vid, Version: b.To, Data: data})
	}
	b.Counters, b.Goals, b.Tests = out.Counters, out.Goals, out.Tests
	if err := st.Flush(context.Background(), b); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func smallEvents(t *testing.T, c smallCase) []event.Event {
	var evs []event.Event
	for _, e := range c.Events {
		typ, err := event.ParseType(e.Type)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, event.Event{Type: typ, TS: micros(t, e.TS), VID: e.VID, SiteID: e.Site,
			IP: e.IP, Method: e.Method, URL: e.URL, UserAgent: e.UA, Referer: e.Referer,
			Name: e.Name, Value: e.Value, ValueType: e.ValueType, ValueFormat: e.ValueFormat,
			Test: e.Test, Selected: e.Selected})
	}
	return evs
}

// weirdEvents: confirmed visitors converting goals and joining tests whose
// names need escaping everywhere (path, query, SQL parameters).
func weirdEvents(n int) []event.Event {
	var evs []event.Event
	ts := int64(1764547200_000000)
	for i, name := range weirdNames {
		for v := 0; v <= i%3; v++ {
			vid := fmt.Sprintf("weird%02d-%d", i, v)
			ts += 1000
			evs = append(evs,
				event.Event{Type: event.TypePixel, TS: ts, VID: vid, SiteID: 7},
				event.Event{Type: event.TypeSplit, TS: ts + 1, VID: vid, SiteID: 7, Test: name, Selected: name},
				event.Event{Type: event.TypeGoal, TS: ts + 2, VID: vid, SiteID: 7, Name: name, Value: "1.25", ValueType: "S", ValueFormat: "C"})
		}
	}
	return evs
}

func TestRealStores(t *testing.T) {
	for _, backend := range []string{"chdb", "clickhouse"} {
		t.Run(backend, func(t *testing.T) {
			st, u := openReal(t, backend)
			c := loadSmall(t)
			cfg := reconcile.Config{Rollups: c.Config.Rollups, ComplexGoals: c.Config.ComplexGoals}
			flushEvents(t, st, cfg, 0, smallEvents(t, c))
			flushEvents(t, st, reconcile.Config{}, 1, weirdEvents(len(weirdNames)))
			srv, cl := newTestServer(t, nil, Options{Store: st, Rollups: c.Config.Rollups})
			ctx := context.Background()

			t.Run("reconcile_small", func(t *testing.T) { checkSmall(t, cl, c) })
			t.Run("names", func(t *testing.T) {
				site := int64(7)
				for i, n := range weirdNames {
					want := int64(i%3 + 1)
					g, err := cl.Goal(ctx, n, client.Filter{Site: &site})
					if err != nil {
						t.Fatalf("goal %q: %v", n, err)
					}
					if g.Goal != n || g.Count != want || !g.Value.Equal(decimal.RequireFromString("1.25").Mul(decimal.NewFromInt(want))) {
						t.Errorf("goal %q = %+v, want count %d", n, g, want)
					}
					td, err := cl.Test(ctx, n, client.Filter{})
					if err != nil || len(td.Populations) != 1 || td.Populations[0].Population != n || td.Populations[0].Impressions != want {
						t.Errorf("test %q = %+v, %v", n, td, err)
					}
					r, err := cl.Results(ctx, n, []string{n}, client.ResultsOptions{})
					if err != nil || r.Populations[0].Stats.Goals[0].Conversions != want {
						t.Errorf("results %q = %+v, %v", n, r, err)
					}
				}
			})
			t.Run("results", func(t *testing.T) {
				r, err := cl.Results(ctx, "cta", []string{"signup", "purchase", "abandoned cart", "per visit"},
					client.ResultsOptions{Weights: map[string]float64{"blue": 1, "green": 1}})
				if err != nil {
					t.Fatal(err)
				}
				if r.Control != "blue" || len(r.Populations) != 2 || r.SRM == nil || r.SRM.PValue == nil {
					t.Fatalf("results = %+v", r)
				}
				// Every value equals the one-goal endpoint under the same filter.
				for _, p := range r.Populations {
					for i, g := range r.Goals {
						one, err := cl.Goal(ctx, g, client.Filter{Test: "cta", Population: p.Population})
						if err != nil {
							t.Fatal(err)
						}
						if !one.Value.Equal(p.Values[i]) || one.Count != p.Stats.Goals[i].Conversions {
							t.Errorf("%s/%s: results %s (%d), goal endpoint %s (%d)", p.Population, g, p.Values[i], p.Stats.Goals[i].Conversions, one.Value, one.Count)
						}
					}
				}
				blue := r.Populations[0]
				if blue.Impressions != 1 || !blue.Values[1].Equal(decimal.RequireFromString("100")) {
					t.Errorf("blue = %+v", blue)
				}
			})
			t.Run("series", func(t *testing.T) {
				s, err := cl.Series(ctx, reconcile.ViewedPage, client.SeriesOptions{Filter: client.Filter{Rollup: "utc_hour"}})
				if err != nil {
					t.Fatal(err)
				}
				var total int64
				at := map[string]int64{}
				for _, p := range s.Points {
					total += p.Count
					at[p.Bucket] = p.Count
				}
				if at["2025-12-01T00"] != 5 || at["2025-12-01T09"] != 1 || len(s.Points) < 2 {
					t.Errorf("series = %+v", s)
				}
				s, err = cl.Series(ctx, reconcile.ViewedPage, client.SeriesOptions{Filter: client.Filter{Rollup: "utc_hour"}, From: "2025-12-01T01"})
				if err != nil || len(s.Points) == 0 || s.Points[0].Bucket < "2025-12-01T01" {
					t.Errorf("from = %+v, %v", s, err)
				}
			})
			t.Run("errors", func(t *testing.T) {
				for _, tc := range []struct {
					path string
					code int
				}{
					{"/v1/goals/nope", 404}, {"/v1/tests/nope", 404}, {"/v1/goals/signup?site_id=x", 400},
					{"/v1/tests/cta/results?goals=signup&control=nope", 400}, {"/readyz", 200},
				} {
					if code, _, _ := get(t, srv.URL+tc.path); code != tc.code {
						t.Errorf("%s = %d, want %d", tc.path, code, tc.code)
					}
				}
			})
			t.Run("store down", func(t *testing.T) {
				// A second connection to the same database, closed: every
				// data endpoint and readyz say 503, never 500.
				st2, err := store.Open(ctx, u)
				if err != nil {
					t.Fatal(err)
				}
				if err := st2.Close(); err != nil {
					t.Fatal(err)
				}
				srv2, _ := newTestServer(t, nil, Options{Store: st2, Rollups: c.Config.Rollups})
				for _, p := range []string{"/readyz", "/v1/goals", "/v1/goals/signup", "/v1/tests", "/v1/tests/cta", "/v1/tests/cta/results?goals=signup", "/v1/goals/signup/series?rollup=la_day"} {
					if code, m, _ := get(t, srv2.URL+p); code != 503 || m["error"] == nil {
						t.Errorf("closed store %s = %d %v", p, code, m)
					}
				}
			})
		})
	}
}

// checkSmall asks every reconcile_small.json query through HTTP.
func checkSmall(t *testing.T, cl *client.Client, c smallCase) {
	ctx := context.Background()
	for i, q := range c.Queries {
		p := q.Params
		f := client.Filter{Site: p.Site, Rollup: p.Rollup, Bucket: p.Bucket, Test: p.Test, Population: p.Population}
		switch {
		case q.Query == "count" && p.Goal == "":
			var want int64
			if err := json.Unmarshal(q.Expected, &want); err != nil {
				t.Fatal(err)
			}
			td, err := cl.Test(ctx, p.Test, client.Filter{Site: p.Site, Rollup: p.Rollup, Bucket: p.Bucket})
			if err != nil {
				t.Fatalf("query %d: %v", i, err)
			}
			got := int64(-1)
			for _, pi := range td.Populations {
				if pi.Population == p.Population {
					got = pi.Impressions
				}
			}
			if got != want {
				t.Errorf("query %d impressions %+v = %d, want %d", i, p, got, want)
			}
		case q.Query == "count":
			var want int64
			if err := json.Unmarshal(q.Expected, &want); err != nil {
				t.Fatal(err)
			}
			g, err := cl.Goal(ctx, p.Goal, f)
			if err != nil {
				t.Fatalf("query %d: %v", i, err)
			}
			if g.Count != want {
				t.Errorf("query %d count %+v = %d, want %d", i, p, g.Count, want)
			}
		case q.Query == "value":
			var want string
			if err := json.Unmarshal(q.Expected, &want); err != nil {
				t.Fatal(err)
			}
			g, err := cl.Goal(ctx, p.Goal, f)
			if err != nil {
				t.Fatalf("query %d: %v", i, err)
			}
			if g.Value.StringFixed(4) != decimal.RequireFromString(want).StringFixed(4) {
				t.Errorf("query %d value %+v = %s, want %s", i, p, g.Value, want)
			}
		default:
			t.Fatalf("unknown query %q", q.Query)
		}
	}
	ts, err := cl.Tests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range c.Tests {
		found := false
		for _, got := range ts.Tests {
			if got.Name == want.Name {
				found = true
				if got.FirstTimestamp != want.First || got.LastTimestamp != want.Last {
					t.Errorf("test %s = %+v, want first %d last %d", want.Name, got, want.First, want.Last)
				}
			}
		}
		if !found {
			t.Errorf("test %s missing from %+v", want.Name, ts)
		}
	}
}
