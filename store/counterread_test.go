package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/manhattan-go/manhattan/reconcile"
)

// TestCounterSQL checks the counter WHERE clause: a condition for each
// filter that is set and none for the others (a catch-all condition keeps
// 18.16 from using the primary key), every value a parameter, never text.
func TestCounterSQL(t *testing.T) {
	hostile := "x' OR 1=1 -- {goal:String} `\x00"
	site := int64(-3)
	cases := []struct {
		q        CounterQuery
		from, to string
		want     []string // parameter names, in clause order
	}{
		{CounterQuery{}, "", "", []string{"rollup"}},
		{CounterQuery{Kind: reconcile.KindConversion, Goal: hostile}, "", "", []string{"kind", "rollup", "goal"}},
		{CounterQuery{Kind: reconcile.KindImpression, Test: hostile, Population: hostile, Rollup: hostile}, "", "", []string{"kind", "rollup", "test", "population"}},
		{CounterQuery{Kind: reconcile.KindVariantConversion, Goal: "g", Test: "t", Population: "p", Rollup: "day", Bucket: hostile, Site: &site}, "", "",
			[]string{"kind", "rollup", "goal", "test", "population", "bucket", "site"}},
		{CounterQuery{Kind: reconcile.KindConversion, Goal: "g", Rollup: "hour"}, hostile, "", []string{"kind", "rollup", "goal", "from"}},
		{CounterQuery{Kind: reconcile.KindConversion, Goal: "g", Rollup: "hour"}, "", hostile, []string{"kind", "rollup", "goal", "to"}},
	}
	for _, c := range cases {
		sql, params := counterSQL(sqlSeries, c.q, c.from, c.to, sqlSeriesGroup)
		var names []string
		for _, p := range params {
			names = append(names, p.name)
			if s, ok := p.value.(string); ok && s == hostile && strings.Contains(sql, "x'") {
				t.Errorf("input spliced into SQL: %q", sql)
			}
		}
		if !slices.Equal(names, c.want) {
			t.Errorf("%+v %q %q: parameters %v, want %v", c.q, c.from, c.to, names, c.want)
		}
		// The native rewrite finds exactly these placeholders.
		if _, _, err := nativeArgs(sql, params); err != nil {
			t.Errorf("%+v: %v\n%s", c.q, err, sql)
		}
		if strings.Contains(sql, "= ''") || strings.Contains(sql, " OR ") {
			t.Errorf("catch-all condition in %q", sql)
		}
		if c.q.Kind == 0 && !strings.Contains(sql, "kind IN ('conversion', 'impression', 'variant_conversion')") {
			t.Errorf("no kind restriction without a kind: %q", sql)
		}
		if !strings.HasSuffix(sql, sqlSeriesGroup) {
			t.Errorf("tail lost: %q", sql)
		}
	}
}

// TestCounterReadsUsePrimaryKey runs the query API's counter reads with
// max_rows_to_read set to four granules of the counters table, over a part
// where a full scan (or a key with site before goal: one range per site)
// reads far more. A control query that scans must hit the limit.
func TestCounterReadsUsePrimaryKey(t *testing.T) {
	const (
		sites, goals, tests, hours = 10, 40, 4, 60
		limit                      = 4 * 1024 // index_granularity of counters
	)
	eachStore(t, func(t *testing.T, s Store, _ string) {
		ctx := context.Background()
		tb := s.(*tables)
		counters := map[reconcile.CounterKey]*reconcile.Delta{}
		add := func(k reconcile.CounterKey, n int64) {
			counters[k] = &reconcile.Delta{Count: n, Value: decimal.New(n, -1)}
		}
		for site := int64(0); site < sites; site++ {
			for g := 0; g < goals; g++ {
				goal := fmt.Sprintf("goal %02d", g)
				add(reconcile.CounterKey{Kind: reconcile.KindConversion, Site: site, Goal: goal, Rollup: "all"}, site+1)
				for h := 0; h < hours; h++ {
					add(reconcile.CounterKey{Kind: reconcile.KindConversion, Site: site, Goal: goal, Rollup: "hour", Bucket: fmt.Sprintf("2026-12-01T%02d", h)}, 1)
				}
			}
			for ti := 0; ti < tests; ti++ {
				for _, pop := range []string{"False", "True"} {
					k := reconcile.CounterKey{Kind: reconcile.KindImpression, Site: site, Test: fmt.Sprintf("test %d", ti), Population: pop, Rollup: "all"}
					add(k, 2)
					for h := 0; h < hours; h++ {
						k.Rollup, k.Bucket = "hour", fmt.Sprintf("2026-12-01T%02d", h)
						add(k, 1)
					}
				}
			}
		}
		if len(counters) < 6*limit {
			t.Fatalf("only %d rows: the limit would not tell a scan from a key read", len(counters))
		}
		must(t, s.InsertCounters(ctx, &Batch{Partition: 0, From: 0, To: 1, Counters: counters}), "insert")

		limited := func(head string, q CounterQuery, from, to, tail string) (string, []param) {
			sql, params := counterSQL(head, q, from, to, tail)
			return tb.sql(sql) + fmt.Sprintf("\nSETTINGS max_rows_to_read = %d", limit), params
		}
		count := func(what string, sql string, params []param) int64 {
			t.Helper()
			var n int64
			var v decimal.Decimal
			var key string
			dest := []any{&n, &v}
			if strings.HasPrefix(sql, "SELECT bucket") || strings.HasPrefix(sql, "SELECT population") {
				dest = []any{&key, &n, &v}
			}
			var total int64
			if err := tb.b.query(ctx, sql, params, dest, func() error { total += n; return nil }); err != nil {
				t.Errorf("%s: %v", what, err)
			}
			return total
		}
		site3 := int64(3)
		checks := []struct {
			what string
			head string
			q    CounterQuery
			from string
			to   string
			tail string
			want int64
		}{
			{"goal count", sqlCounter, CounterQuery{Kind: reconcile.KindConversion, Goal: "goal 17"}, "", "", "", sites * (sites + 1) / 2},
			{"goal count, site and bucket", sqlCounter, CounterQuery{Kind: reconcile.KindConversion, Goal: "goal 17", Rollup: "hour", Bucket: "2026-12-01T05", Site: &site3}, "", "", "", 1},
			{"series", sqlSeries, CounterQuery{Kind: reconcile.KindConversion, Goal: "goal 30", Rollup: "hour"}, "2026-12-01T10", "2026-12-01T19", sqlSeriesGroup, 10 * sites},
			{"impressions", sqlPopulations, CounterQuery{Kind: reconcile.KindImpression, Test: "test 2"}, "", "", sqlPopulationsGroup, 2 * 2 * sites},
			{"impressions of a site", sqlPopulations, CounterQuery{Kind: reconcile.KindImpression, Test: "test 1", Site: &site3}, "", "", sqlPopulationsGroup, 2 * 2},
		}
		for _, c := range checks {
			sql, params := limited(c.head, c.q, c.from, c.to, c.tail)
			if got := count(c.what, sql, params); got != c.want {
				t.Errorf("%s = %d, want %d", c.what, got, c.want)
			}
		}

		// Control: a filter on site alone has no key prefix, so the read
		// scans the part; the limit must refuse it, or it proves nothing.
		scan := tb.sql(`SELECT toInt64(sum(count)), sum(value) FROM {db}.counters WHERE site = {site:Int64}`) +
			fmt.Sprintf("\nSETTINGS max_rows_to_read = %d", limit)
		err := tb.b.query(ctx, scan, []param{{"site", site3}}, []any{new(int64), new(decimal.Decimal)}, nop)
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "limit for rows") {
			t.Errorf("a scan stayed within %d rows (err %v): the limit proves nothing", limit, err)
		}
	})
}

// TestStateLoadsReadFewRows loads a few states out of many with
// max_rows_to_read set far below the table's size: a load must cost about
// the ids asked for, not every visitor ever stored. A scan must hit the
// limit (the control).
func TestStateLoadsReadFewRows(t *testing.T) {
	const (
		stored = 60000
		ids    = 20
		limit  = ids * 4 * 256 // four granules of visitor_state per id
	)
	eachStore(t, func(t *testing.T, s Store, _ string) {
		ctx := context.Background()
		tb := s.(*tables)
		b := &Batch{Partition: 0, From: 0, To: 1}
		vid := func(i int) string { return fmt.Sprintf("%040x", uint64(i)*0x9e3779b97f4a7c15) }
		for i := range stored {
			b.States = append(b.States, State{VID: vid(i), Version: 1, Data: []byte(fmt.Sprintf("state %d", i))})
		}
		must(t, s.InsertStates(ctx, b), "insert states")
		var want []string
		for i := range ids / 2 {
			want = append(want, vid(i*2999), fmt.Sprintf("%040x", i)) // stored, and new
		}
		sql := tb.sql(sqlLoadStates) + fmt.Sprintf("\nSETTINGS max_rows_to_read = %d", limit)
		got := map[string]string{}
		var v, data string
		err := tb.b.query(ctx, sql, []param{{"vids", want}}, []any{&v, &data}, func() error { got[v] = data; return nil })
		must(t, err, "load %d states with max_rows_to_read %d of %d rows", len(want), limit, stored+1)
		if len(got) != ids/2 || got[vid(2999)] != "state 2999" {
			t.Errorf("loaded %d states (state of id 1: %q), want %d", len(got), got[vid(2999)], ids/2)
		}
		scan := tb.sql(`SELECT toInt64(count()) FROM {db}.visitor_state WHERE length(data) > 0`) + fmt.Sprintf("\nSETTINGS max_rows_to_read = %d", limit)
		if err := tb.b.query(ctx, scan, nil, []any{new(int64)}, nop); err == nil {
			t.Errorf("a scan of %d rows passed max_rows_to_read = %d: the limit tests nothing", stored, limit)
		}
	})
}
