package store

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"unsafe"

	"github.com/shopspring/decimal"

	"github.com/manhattan-go/manhattan/reconcile"
	"github.com/manhattan-go/manhattan/schema"
)

// backend is what differs between the two connections: how a SQL text with
// {name:Type} parameters is run and how rows are inserted.
type backend interface {
	exec(ctx context.Context, sql string, params []param) error
	// query fills dest for each result row, then calls each.
	query(ctx context.Context, sql string, params []param, dest []any, each func() error) error
	// insert writes all rows in one INSERT (one block).
	insert(ctx context.Context, table string, cols []string, rows *rowSet) error
	// insertChunks writes rows in one INSERT, a chunk at a time; only for
	// rows that need not land together.
	insertChunks(ctx context.Context, table string, cols []string, rows chunks) error
	ping(ctx context.Context) error
	close() error
}

// tables implements Store over either backend with the same SQL.
type tables struct {
	b  backend
	db string // quoted
}

// SentinelVID is the visitor_state id of partition p's sentinel row. Visitor
// ids are hex, so no visitor can have it.
func SentinelVID(p int32) string { return "\x00partition:" + strconv.FormatInt(int64(p), 10) }

func (t *tables) sql(text string) string { return withDB(text, t.db) }
func (t *tables) table(name string) string {
	return t.db + "." + name
}

func (t *tables) Ping(ctx context.Context) error {
	if err := t.b.ping(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

func (t *tables) Close() error { return t.b.close() }

// Migrate creates the database and applies every migration newer than the
// recorded schema version, in order. Statements are idempotent, so a
// migration interrupted half way is simply applied again.
func (t *tables) Migrate(ctx context.Context) error {
	if err := t.b.exec(ctx, t.sql(sqlCreateDB), nil); err != nil {
		return fmt.Errorf("store: migrate: create database %s: %w", t.db, err)
	}
	if err := t.b.exec(ctx, t.sql(sqlCreateVersion), nil); err != nil {
		return fmt.Errorf("store: migrate: create schema_version: %w", err)
	}
	current, err := t.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	ms, err := schema.Migrations()
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	for _, m := range ms {
		if m.Version <= current {
			continue
		}
		for i, stmt := range m.Statements {
			if err := t.b.exec(ctx, t.sql(stmt), nil); err != nil {
				return fmt.Errorf("store: migrate: %03d_%s statement %d: %w", m.Version, m.Name, i+1, err)
			}
		}
		rows := &rowSet{cols: []any{[]uint32{uint32(m.Version)}}, n: 1}
		if err := t.b.insert(ctx, t.table("schema_version"), colsVersion, rows); err != nil {
			return fmt.Errorf("store: migrate: record version %d: %w", m.Version, err)
		}
	}
	return nil
}

// SchemaVersion returns the newest applied migration (0 before any).
func (t *tables) SchemaVersion(ctx context.Context) (int, error) {
	var v, n int64
	if err := t.b.query(ctx, t.sql(sqlSchemaVersion), nil, []any{&v, &n}, func() error { return nil }); err != nil {
		return 0, fmt.Errorf("store: read schema version: %w", err)
	}
	return int(v), nil
}

func (t *tables) Flush(ctx context.Context, b *Batch) error {
	if err := t.InsertEvents(ctx, b); err != nil {
		return err
	}
	if err := t.InsertCounters(ctx, b); err != nil {
		return err
	}
	if err := t.UpsertMeta(ctx, b); err != nil {
		return err
	}
	return t.InsertStates(ctx, b)
}

// eventsChunk is how many events go into one block of the events insert:
// the client then holds one chunk's column data, not the whole batch's.
const eventsChunk = 4096

// eventColumnsPool keeps chunk columns between inserts (workers insert
// concurrently), so a flush does not grow them from nothing again.
var eventColumnsPool = sync.Pool{New: func() any { return new(eventColumns) }}

func (t *tables) InsertEvents(ctx context.Context, b *Batch) error {
	n := len(b.Records)
	if n == 0 {
		return nil
	}
	c := eventColumnsPool.Get().(*eventColumns)
	defer func() {
		c.release()
		eventColumnsPool.Put(c)
	}()
	rows := chunks{n: n, size: eventsChunk, fill: func(from, to int) []any { return c.fill(b.Records[from:to]) }}
	if err := t.b.insertChunks(ctx, t.table("events"), colsEvents, rows); err != nil {
		return fmt.Errorf("store: insert %d events of partition %d: %w", n, b.Partition, err)
	}
	return nil
}

// eventColumns are the events table's columns for one chunk, reused from
// chunk to chunk.
type eventColumns struct {
	part                                        []int32
	off, ts, site                               []int64
	typ, vid, ip, method, url, ua, ref          []string
	name, value, vtype, vformat, test, selected []string
}

// release drops the columns' references to the events' strings.
func (c *eventColumns) release() {
	for _, col := range [][]string{c.typ, c.vid, c.ip, c.method, c.url, c.ua, c.ref,
		c.name, c.value, c.vtype, c.vformat, c.test, c.selected} {
		clear(col[:cap(col)])
	}
}

func (c *eventColumns) fill(recs []Record) []any {
	c.part, c.off, c.ts, c.site = c.part[:0], c.off[:0], c.ts[:0], c.site[:0]
	c.typ, c.vid, c.ip, c.method, c.url, c.ua, c.ref = c.typ[:0], c.vid[:0], c.ip[:0], c.method[:0], c.url[:0], c.ua[:0], c.ref[:0]
	c.name, c.value, c.vtype, c.vformat, c.test, c.selected = c.name[:0], c.value[:0], c.vtype[:0], c.vformat[:0], c.test[:0], c.selected[:0]
	for i := range recs {
		r := &recs[i]
		e := r.Event
		c.part, c.off = append(c.part, r.Partition), append(c.off, r.Offset)
		c.typ, c.ts, c.vid, c.site = append(c.typ, e.Type.String()), append(c.ts, e.TS), append(c.vid, e.VID), append(c.site, e.SiteID)
		c.ip, c.method, c.url = append(c.ip, e.IP), append(c.method, e.Method), append(c.url, e.URL)
		c.ua, c.ref = append(c.ua, e.UserAgent), append(c.ref, e.Referer)
		c.name, c.value, c.vtype, c.vformat = append(c.name, e.Name), append(c.value, e.Value), append(c.vtype, e.ValueType), append(c.vformat, e.ValueFormat)
		c.test, c.selected = append(c.test, e.Test), append(c.selected, e.Selected)
	}
	return []any{c.part, c.off, c.typ, c.ts, c.vid, c.site, c.ip, c.method, c.url, c.ua, c.ref,
		c.name, c.value, c.vtype, c.vformat, c.test, c.selected}
}

func mk(n int) []string { return make([]string, n) }

// InsertCounters writes the batch's counter deltas and the partition's
// offset row (count To−From, so the offset rows of p always sum to its
// latest mark) in ONE insert: one block, one part, so both land or neither
// does. The mark never moves back: with To ≤ From no offset row is written.
func (t *tables) InsertCounters(ctx context.Context, b *Batch) error {
	n := len(b.Counters)
	if b.To > b.From {
		n++
	}
	if n == 0 {
		return nil
	}
	kind, goal, test, pop, rollup, bucket := mk(0), mk(0), mk(0), mk(0), mk(0), mk(0)
	site, count := make([]int64, 0, n), make([]int64, 0, n)
	part := make([]int32, 0, n)
	value := make([]decimal.Decimal, 0, n)
	add := func(k reconcile.CounterKey, c int64, v decimal.Decimal) {
		kind, goal, test, pop = append(kind, k.Kind.String()), append(goal, k.Goal), append(test, k.Test), append(pop, k.Population)
		rollup, bucket = append(rollup, k.Rollup), append(bucket, k.Bucket)
		site, part, count, value = append(site, k.Site), append(part, b.Partition), append(count, c), append(value, v)
	}
	for k, d := range b.Counters {
		if d == nil {
			continue
		}
		if k.Kind < reconcile.KindConversion || k.Kind >= reconcile.KindOffset { // offset rows are the store's own
			return fmt.Errorf("store: counter of partition %d has invalid kind %d", b.Partition, k.Kind)
		}
		v, err := scaledValue(d.Value)
		if err != nil {
			return fmt.Errorf("store: counter %+v: %w", k, err)
		}
		add(k, d.Count, v)
	}
	if b.To > b.From {
		add(reconcile.CounterKey{Kind: reconcile.KindOffset}, b.To-b.From, decimal.Zero)
	}
	if len(kind) == 0 {
		return nil
	}
	rows := &rowSet{n: len(kind), cols: []any{kind, site, goal, test, pop, rollup, bucket, part, count, value}}
	if err := t.b.insert(ctx, t.table("counters"), colsCounters, rows); err != nil {
		return fmt.Errorf("store: insert %d counters of partition %d: %w", rows.n, b.Partition, err)
	}
	return nil
}

// UpsertMeta appends goal and test metadata; reads merge it with
// argMin/min/max, so writing it again (a replay) changes nothing.
func (t *tables) UpsertMeta(ctx context.Context, b *Batch) error {
	if len(b.Goals) > 0 {
		name, vt, vf := mk(0), mk(0), mk(0)
		ts := make([]int64, 0, len(b.Goals))
		for key, g := range b.Goals {
			if g.Name == "" {
				g.Name = key
			}
			name, vt, vf, ts = append(name, g.Name), append(vt, g.ValueType), append(vf, g.ValueFormat), append(ts, g.TS)
		}
		rows := &rowSet{n: len(name), cols: []any{name, vt, vf, ts}}
		if err := t.b.insert(ctx, t.table("goals"), colsGoals, rows); err != nil {
			return fmt.Errorf("store: insert %d goals of partition %d: %w", rows.n, b.Partition, err)
		}
	}
	if len(b.Tests) > 0 {
		name, pop := mk(0), mk(0)
		var first, last []int64
		for key, tm := range b.Tests {
			if tm == nil {
				continue
			}
			tn := tm.Name
			if tn == "" {
				tn = key
			}
			pops := tm.Populations
			if len(pops) == 0 {
				pops = []string{""} // keeps first/last; "" is dropped on read
			}
			for _, p := range pops {
				name, pop, first, last = append(name, tn), append(pop, p), append(first, tm.First), append(last, tm.Last)
			}
		}
		if len(name) > 0 {
			rows := &rowSet{n: len(name), cols: []any{name, pop, first, last}}
			if err := t.b.insert(ctx, t.table("tests"), colsTests, rows); err != nil {
				return fmt.Errorf("store: insert %d test rows of partition %d: %w", rows.n, b.Partition, err)
			}
		}
	}
	return nil
}

// InsertStates writes the dirty states and the partition's sentinel at
// version To in ONE insert.
func (t *tables) InsertStates(ctx context.Context, b *Batch) error {
	n := len(b.States) + 1
	vid, data := make([]string, 0, n), make([]string, 0, n)
	ver := make([]int64, 0, n)
	for _, s := range b.States {
		if s.VID == "" || s.VID[0] == 0 {
			return fmt.Errorf("store: partition %d: invalid visitor id %q", b.Partition, s.VID)
		}
		// No copy of the state: it is only read, and only during this call.
		vid, ver, data = append(vid, s.VID), append(ver, s.Version), append(data, unsafe.String(unsafe.SliceData(s.Data), len(s.Data)))
	}
	vid, ver, data = append(vid, SentinelVID(b.Partition)), append(ver, b.To), append(data, "")
	rows := &rowSet{n: len(vid), cols: []any{vid, ver, data}}
	if err := t.b.insert(ctx, t.table("visitor_state"), colsStates, rows); err != nil {
		return fmt.Errorf("store: insert %d states of partition %d: %w", rows.n, b.Partition, err)
	}
	return nil
}

func (t *tables) Marks(ctx context.Context, partition int32) (Marks, error) {
	var m Marks
	var nc, ns int64
	if err := t.b.query(ctx, t.sql(sqlHWC), []param{{"partition", partition}}, []any{&m.HWC, &nc}, nop); err != nil {
		return Marks{}, fmt.Errorf("store: read hw_c of partition %d: %w", partition, err)
	}
	if err := t.b.query(ctx, t.sql(sqlHWS), []param{{"vid", SentinelVID(partition)}}, []any{&m.HWS, &ns}, nop); err != nil {
		return Marks{}, fmt.Errorf("store: read hw_s of partition %d: %w", partition, err)
	}
	m.Found = nc > 0 || ns > 0
	return m, nil
}

func nop() error { return nil }

func (t *tables) LoadStates(ctx context.Context, vids []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(vids))
	if len(vids) == 0 {
		return out, nil
	}
	var vid, data string
	err := t.b.query(ctx, t.sql(sqlLoadStates), []param{{"vids", vids}}, []any{&vid, &data}, func() error {
		out[vid] = []byte(data)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: load %d states: %w", len(vids), err)
	}
	return out, nil
}

func (t *tables) Counter(ctx context.Context, q CounterQuery) (Totals, error) {
	var tot Totals
	sql, params := counterSQL(sqlCounter, q, "", "", "")
	err := t.b.query(ctx, t.sql(sql), params, []any{&tot.Count, &tot.Value}, nop)
	if err != nil {
		return Totals{}, fmt.Errorf("store: read counter: %w", err)
	}
	return tot, nil
}

func (t *tables) Series(ctx context.Context, q CounterQuery, fromBucket, toBucket string) ([]BucketTotals, error) {
	var out []BucketTotals
	var row BucketTotals
	sql, params := counterSQL(sqlSeries, q, fromBucket, toBucket, sqlSeriesGroup)
	err := t.b.query(ctx, t.sql(sql), params, []any{&row.Bucket, &row.Count, &row.Value}, func() error {
		out = append(out, row)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: read series: %w", err)
	}
	return out, nil
}

// Populations sums q per population; with no Kind it counts impressions.
func (t *tables) Populations(ctx context.Context, q CounterQuery) ([]PopulationTotals, error) {
	if q.Kind == 0 {
		q.Kind = reconcile.KindImpression
	}
	var out []PopulationTotals
	var row PopulationTotals
	sql, params := counterSQL(sqlPopulations, q, "", "", sqlPopulationsGroup)
	err := t.b.query(ctx, t.sql(sql), params, []any{&row.Population, &row.Count, &row.Value}, func() error {
		out = append(out, row)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: read populations: %w", err)
	}
	return out, nil
}

func (t *tables) Goals(ctx context.Context) ([]reconcile.GoalMeta, error) {
	var out []reconcile.GoalMeta
	var g reconcile.GoalMeta
	err := t.b.query(ctx, t.sql(sqlGoals), nil, []any{&g.Name, &g.ValueType, &g.ValueFormat, &g.TS}, func() error {
		out = append(out, g)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: read goals: %w", err)
	}
	return out, nil
}

func (t *tables) Goal(ctx context.Context, name string) (reconcile.GoalMeta, bool, error) {
	var g reconcile.GoalMeta
	found := false
	err := t.b.query(ctx, t.sql(sqlGoal), []param{{"name", name}}, []any{&g.Name, &g.ValueType, &g.ValueFormat, &g.TS}, func() error {
		found = true
		return nil
	})
	if err != nil {
		return reconcile.GoalMeta{}, false, fmt.Errorf("store: read goal: %w", err)
	}
	return g, found, nil
}

func (t *tables) readTests(ctx context.Context, sql string, params []param) ([]reconcile.TestMeta, error) {
	var out []reconcile.TestMeta
	var tm reconcile.TestMeta
	var pops []string
	err := t.b.query(ctx, t.sql(sql), params, []any{&tm.Name, &tm.First, &tm.Last, &pops}, func() error {
		clean := make([]string, 0, len(pops))
		for _, p := range pops {
			if p != "" {
				clean = append(clean, p)
			}
		}
		sort.Strings(clean)
		tm.Populations = clean
		out = append(out, tm)
		return nil
	})
	return out, err
}

func (t *tables) Tests(ctx context.Context) ([]reconcile.TestMeta, error) {
	out, err := t.readTests(ctx, sqlTests, nil)
	if err != nil {
		return nil, fmt.Errorf("store: read tests: %w", err)
	}
	return out, nil
}

func (t *tables) Test(ctx context.Context, name string) (reconcile.TestMeta, bool, error) {
	out, err := t.readTests(ctx, sqlTest, []param{{"name", name}})
	if err != nil {
		return reconcile.TestMeta{}, false, fmt.Errorf("store: read test: %w", err)
	}
	if len(out) == 0 {
		return reconcile.TestMeta{}, false, nil
	}
	return out[0], true, nil
}

var _ Store = (*tables)(nil)
