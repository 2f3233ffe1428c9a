package reconcile

import (
	"encoding/json"
	"github.com/manhattan-go/manhattan/logimport"
	"os"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/manhattan-go/manhattan/event"
)

type smallCase struct {
	Config struct {
		Rollups      []Rollup      `json:"rollups"`
		ComplexGoals []ComplexGoal `json:"complex_goals"`
	} `json:"config"`
	Events []struct {
		Type, VID, TS, URL, UA, IP, Method, Referer string
		Site                                        int64
		Name, Value                                 string
		ValueType                                   string `json:"value_type"`
		ValueFormat                                 string `json:"value_format"`
		Test, Selected                              string
	} `json:"events"`
	Queries []struct {
		Query  string `json:"query"`
		Params struct {
			Goal, Test, Population, Rollup string
			Site                           *int64
			Bucket                         *string
		} `json:"params"`
		Expected json.RawMessage `json:"expected"`
	} `json:"queries"`
	Tests []struct {
		Name        string
		First, Last int64
	} `json:"tests"`
}

// parseSeconds turns "1764547200.000000" into Unix microseconds.
func parseSeconds(t *testing.T, s string) int64 {
	t.Helper()
	us, err := logimport.ParseTimestamp(s)
	if err != nil {
		t.Fatalf("bad ts: %v", err)
	}
	return us
}

func TestReconcileSmall(t *testing.T) {
	// A copy of shared/testdata/reconcile_small.json, the project's vector.
	raw, err := os.ReadFile("testdata/reconcile_small.json")
	if err != nil {
		t.Fatalf("read vectors: %v", err)
	}
	var c smallCase
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("parse vectors: %v", err)
	}
	eng, err := New(Config{Rollups: c.Config.Rollups, ComplexGoals: c.Config.ComplexGoals})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	states := map[string]*State{}
	out := NewOutput()
	for _, e := range c.Events {
		typ, err := event.ParseType(e.Type)
		if err != nil {
			t.Fatal(err)
		}
		ev := event.Event{Type: typ, TS: parseSeconds(t, e.TS), VID: e.VID, SiteID: e.Site,
			IP: e.IP, Method: e.Method, URL: e.URL, UserAgent: e.UA, Referer: e.Referer,
			Name: e.Name, Value: e.Value, ValueType: e.ValueType, ValueFormat: e.ValueFormat,
			Test: e.Test, Selected: e.Selected}
		if err := ev.Validate(); err != nil {
			t.Fatalf("vector event invalid: %v", err)
		}
		st := states[e.VID]
		if st == nil {
			st = NewState()
			states[e.VID] = st
		}
		eng.Apply(st, &ev, true, out)
	}
	tot := newTotals()
	tot.merge(out)
	for i, q := range c.Queries {
		p := q.Params
		f := filter{site: p.Site, rollup: p.Rollup, bucket: p.Bucket, test: p.Test, pop: p.Population}
		switch q.Query {
		case "count":
			var want int64
			if err := json.Unmarshal(q.Expected, &want); err != nil {
				t.Fatal(err)
			}
			if got := tot.count(p.Goal, f); got != want {
				t.Errorf("query %d count %+v: got %d, want %d", i, p, got, want)
			}
		case "value":
			var want string
			if err := json.Unmarshal(q.Expected, &want); err != nil {
				t.Fatal(err)
			}
			wantD := decimal.RequireFromString(want)
			got := tot.value(p.Goal, f).StringFixed(4)
			if got != wantD.StringFixed(4) {
				t.Errorf("query %d value %+v: got %s, want %s", i, p, got, want)
			}
		default:
			t.Fatalf("unknown query %q", q.Query)
		}
	}
	if len(tot.tests) != len(c.Tests) {
		t.Errorf("tests: got %d, want %d", len(tot.tests), len(c.Tests))
	}
	for _, want := range c.Tests {
		got, ok := tot.tests[want.Name]
		if !ok {
			t.Errorf("test %q missing", want.Name)
			continue
		}
		if got.First/1_000_000 != want.First || got.Last/1_000_000 != want.Last {
			t.Errorf("test %q: first/last %d/%d s, want %d/%d", want.Name, got.First/1_000_000, got.Last/1_000_000, want.First, want.Last)
		}
	}
}
