package store

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/manhattan-go/manhattan/event"
	"github.com/manhattan-go/manhattan/reconcile"
)

// hostile are names that break naive SQL building or text formats.
var hostile = []string{
	`it's`, `say "hi"`, "back\\slash", `\'; DROP TABLE counters; --`, "tab\there", "new\nline",
	"cr\rlf", "nul\x00byte", "é☃🙂 ünïcödé", `{goal:String}`, `@name`, `?`, `$1`, "' OR 1=1 --",
	"`backtick`", `\N`, `\`, "trailing\\", "/* c */", "%s%d", "x\n\nDROP DATABASE manhattan", "\n\n", "\n \t\r\n",
	"",
}

func TestHostileNamesRoundTrip(t *testing.T) {
	eachStore(t, func(t *testing.T, s Store, _ string) {
		ctx := context.Background()
		b := &Batch{Partition: 1, From: 0, To: int64(len(hostile)),
			Counters: map[reconcile.CounterKey]*reconcile.Delta{},
			Goals:    map[string]reconcile.GoalMeta{},
			Tests:    map[string]*reconcile.TestMeta{},
		}
		var vids []string
		for i, h := range hostile {
			if h == "" {
				continue
			}
			b.Records = append(b.Records, Record{Partition: 1, Offset: int64(i), Event: &event.Event{
				Type: event.TypeGoal, TS: int64(i) * 1_000_000, VID: h, SiteID: int64(i), IP: h, Method: h, URL: h,
				UserAgent: h, Referer: h, Name: h, Value: h, ValueType: h, ValueFormat: h, Test: h, Selected: h,
			}})
			val := decimal.New(int64(i)+1, -3)
			b.Counters[ckey(reconcile.KindConversion, 7, h, "", "", "all", "")] = &reconcile.Delta{Count: int64(i) + 1, Value: val}
			b.Counters[ckey(reconcile.KindVariantConversion, 7, h, h, h, h, h)] = &reconcile.Delta{Count: int64(i) + 1, Value: val}
			b.Counters[ckey(reconcile.KindImpression, 7, "", h, h, h, h)] = &reconcile.Delta{Count: int64(i) + 1}
			b.Goals[h] = reconcile.GoalMeta{Name: h, ValueType: h, ValueFormat: h, TS: int64(i)}
			b.Tests[h] = &reconcile.TestMeta{Name: h, First: int64(i), Last: int64(i) + 1000, Populations: []string{h}}
			vid := "v" + h
			vids = append(vids, vid)
			b.States = append(b.States, State{VID: vid, Version: 5, Data: []byte(h + "\x00\xff\x01")})
		}
		must(t, s.Flush(ctx, b), "flush")

		states, err := s.LoadStates(ctx, append(vids, "absent", "' OR ''='"))
		must(t, err, "load states")
		if len(states) != len(vids) {
			t.Errorf("loaded %d states, want %d", len(states), len(vids))
		}
		for i, h := range hostile {
			if h == "" {
				continue
			}
			site := int64(7)
			want := decimal.New(int64(i)+1, -3)
			if got := states["v"+h]; string(got) != h+"\x00\xff\x01" {
				t.Errorf("state of %q = %q", "v"+h, got)
			}
			tot, err := s.Counter(ctx, CounterQuery{Kind: reconcile.KindConversion, Goal: h, Site: &site})
			must(t, err, "counter %q", h)
			if tot.Count != int64(i)+1 || !tot.Value.Equal(want) {
				t.Errorf("conversion %q = %+v, want %d %s", h, tot, i+1, want)
			}
			q := CounterQuery{Kind: reconcile.KindVariantConversion, Goal: h, Test: h, Population: h, Rollup: h, Bucket: h}
			tot, err = s.Counter(ctx, q)
			must(t, err, "variant counter %q", h)
			if tot.Count != int64(i)+1 || !tot.Value.Equal(want) {
				t.Errorf("variant conversion %q = %+v", h, tot)
			}
			series, err := s.Series(ctx, q, h, h)
			must(t, err, "series %q", h)
			if len(series) != 1 || series[0].Bucket != h || series[0].Count != int64(i)+1 {
				t.Errorf("series %q = %+v", h, series)
			}
			pops, err := s.Populations(ctx, CounterQuery{Test: h, Rollup: h})
			must(t, err, "populations %q", h)
			if len(pops) != 1 || pops[0].Population != h || pops[0].Count != int64(i)+1 {
				t.Errorf("populations %q = %+v", h, pops)
			}
			g, ok, err := s.Goal(ctx, h)
			must(t, err, "goal %q", h)
			if !ok || g != (reconcile.GoalMeta{Name: h, ValueType: h, ValueFormat: h, TS: int64(i)}) {
				t.Errorf("goal %q = %+v %v", h, g, ok)
			}
			tm, ok, err := s.Test(ctx, h)
			must(t, err, "test %q", h)
			if !ok || tm.Name != h || len(tm.Populations) != 1 || tm.Populations[0] != h || tm.First != int64(i) {
				t.Errorf("test %q = %+v %v", h, tm, ok)
			}
		}
		goals, err := s.Goals(ctx)
		must(t, err, "goals")
		if len(goals) != len(vids) {
			t.Errorf("%d goals, want %d", len(goals), len(vids))
		}
		tests, err := s.Tests(ctx)
		must(t, err, "tests")
		if len(tests) != len(vids) {
			t.Errorf("%d tests, want %d", len(tests), len(vids))
		}

		// Every event field comes back byte for byte.
		tb := s.(*tables)
		var n int64
		var fields [13]string
		dest := []any{&n}
		for i := range fields {
			dest = append(dest, &fields[i])
		}
		seen := 0
		err = tb.b.query(ctx, tb.sql(`SELECT offset, type, vid, ip, method, url, user_agent, referer, name, value, value_type, value_format, test, selected
FROM {db}.events WHERE partition = {p:Int32} ORDER BY offset`), []param{{"p", int32(1)}}, dest, func() error {
			h := hostile[n]
			want := [13]string{"goal", h, h, h, h, h, h, h, h, h, h, h, h}
			if fields != want {
				t.Errorf("event %d = %q, want %q", n, fields, want)
			}
			seen++
			return nil
		})
		must(t, err, "read events")
		if seen != len(vids) {
			t.Errorf("read %d events, want %d", seen, len(vids))
		}
	})
}

func TestNativeSQLRewrite(t *testing.T) {
	in := "SELECT a FROM {db}.t WHERE x = {x:String} AND ({x:String} = '' OR y IN (SELECT arrayJoin({ids:Array(String)}))) AND z = {z:Int64}"
	got, types := nativeSQL(in)
	want := "SELECT a FROM {db}.t WHERE x = @x AND (@x = '' OR y IN (SELECT arrayJoin(@ids))) AND z = @z"
	if got != want {
		t.Errorf("nativeSQL = %q\nwant %q", got, want)
	}
	if fmt.Sprint(types) != "map[ids:Array(String) x:String z:Int64]" {
		t.Errorf("types = %v", types)
	}
	// Every query text of the store has only well-formed parameters: after
	// the rewrite no '{' remains except the database placeholder.
	for _, q := range []string{sqlCounter, sqlSeries, sqlPopulations, sqlHWC, sqlHWS, sqlLoadStates, sqlGoals, sqlGoal, sqlTests, sqlTest} {
		text, _ := nativeSQL(q)
		if strings.Contains(strings.ReplaceAll(text, "{db}", ""), "{") {
			t.Errorf("unrewritten parameter in %q", text)
		}
	}
	if _, _, err := nativeArgs("SELECT {a:String}", nil); err == nil {
		t.Error("missing parameter not reported")
	}
	if _, _, err := nativeArgs("SELECT 1", []param{{"a", "x"}}); err == nil {
		t.Error("extra parameter not reported")
	}
}

func TestRowBinaryRoundTrip(t *testing.T) {
	vals := []string{"0", "-0.0000000001", "12345678901234567890123456.7890123456", "-99999999999999999999999999.9999999999", "0.5"}
	ds := make([]decimal.Decimal, len(vals))
	for i, v := range vals {
		d, err := scaledValue(dec(v))
		must(t, err, "scale %s", v)
		ds[i] = d
	}
	strs := []string{"", "a", strings.Repeat("x", 300), "\x00\xff", "é"}
	ints := []int64{0, -1, 1 << 62, -1 << 63, 42}
	buf, err := appendRowBinary(nil, &rowSet{n: len(vals), cols: []any{strs, ints, ds}})
	must(t, err, "encode")
	r := rowReader{buf: buf}
	for i := 0; r.more(); i++ {
		var s string
		var n int64
		var d decimal.Decimal
		must(t, r.scan([]any{&s, &n, &d}), "decode row %d", i)
		if s != strs[i] || n != ints[i] || !d.Equal(ds[i]) {
			t.Errorf("row %d = %q %d %s", i, s, n, d)
		}
	}
	if _, err := scaledValue(dec("1e28")); err == nil {
		t.Error("overflowing value accepted")
	}
	if d, _ := scaledValue(dec("0.00000000005")); !d.Equal(dec("0.0000000001")) {
		t.Errorf("rounding to 10 places gave %s", d)
	}
	r = rowReader{buf: buf[:5]}
	var s string
	var n int64
	if err := r.scan([]any{&s, &n}); err == nil {
		t.Error("truncated input not reported")
	}
}
