package queryapi

import (
	"context"
	"errors"
	"sort"
	"sync"

	"github.com/shopspring/decimal"

	"github.com/manhattan-go/manhattan/reconcile"
	"github.com/manhattan-go/manhattan/store"
)

// fakeStore is an in-memory store.Store for the HTTP-logic unit tests only;
// the real stores are exercised in realstore_test.go.
type fakeStore struct {
	mu       sync.Mutex
	down     bool
	block    bool // queries wait for their context to end
	counters map[reconcile.CounterKey]store.Totals
	goals    map[string]reconcile.GoalMeta
	tests    map[string]reconcile.TestMeta
}

var errDown = errors.New("fake store: connection refused")

func newFakeStore() *fakeStore {
	return &fakeStore{counters: map[reconcile.CounterKey]store.Totals{}, goals: map[string]reconcile.GoalMeta{}, tests: map[string]reconcile.TestMeta{}}
}

func (f *fakeStore) add(k reconcile.CounterKey, n int64, v string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if k.Rollup == "" {
		k.Rollup = "all"
	}
	t := f.counters[k]
	t.Count += n
	t.Value = t.Value.Add(decimal.RequireFromString(v))
	f.counters[k] = t
}

func (f *fakeStore) setDown(d bool) { f.mu.Lock(); f.down = d; f.mu.Unlock() }

func (f *fakeStore) check() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errDown
	}
	return nil
}

func match(k reconcile.CounterKey, q store.CounterQuery) bool {
	rollup := q.Rollup
	if rollup == "" {
		rollup = "all"
	}
	return k.Kind == q.Kind && k.Rollup == rollup &&
		(q.Goal == "" || k.Goal == q.Goal) && (q.Test == "" || k.Test == q.Test) &&
		(q.Population == "" || k.Population == q.Population) && (q.Bucket == "" && !q.BucketSet || k.Bucket == q.Bucket) &&
		(q.Site == nil || k.Site == *q.Site)
}

func (f *fakeStore) Counter(ctx context.Context, q store.CounterQuery) (store.Totals, error) {
	if err := f.check(); err != nil {
		return store.Totals{}, err
	}
	f.mu.Lock()
	block := f.block
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return store.Totals{}, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var t store.Totals
	for k, v := range f.counters {
		if match(k, q) {
			t.Count += v.Count
			t.Value = t.Value.Add(v.Value)
		}
	}
	return t, nil
}

// sumBy totals the counters that keep selects, grouped by key.
func (f *fakeStore) sumBy(keep func(reconcile.CounterKey) bool, key func(reconcile.CounterKey) string) (map[string]store.Totals, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	by := map[string]store.Totals{}
	for k, v := range f.counters {
		if keep(k) {
			t := by[key(k)]
			t.Count += v.Count
			t.Value = t.Value.Add(v.Value)
			by[key(k)] = t
		}
	}
	return by, nil
}

func (f *fakeStore) Series(ctx context.Context, q store.CounterQuery, from, to string) ([]store.BucketTotals, error) {
	by, err := f.sumBy(func(k reconcile.CounterKey) bool {
		return match(k, q) && (from == "" || k.Bucket >= from) && (to == "" || k.Bucket <= to)
	}, func(k reconcile.CounterKey) string { return k.Bucket })
	if err != nil {
		return nil, err
	}
	var out []store.BucketTotals
	for b, t := range by {
		out = append(out, store.BucketTotals{Bucket: b, Totals: t})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Bucket < out[j].Bucket })
	return out, nil
}

func (f *fakeStore) Populations(ctx context.Context, q store.CounterQuery) ([]store.PopulationTotals, error) {
	by, err := f.sumBy(func(k reconcile.CounterKey) bool { return match(k, q) },
		func(k reconcile.CounterKey) string { return k.Population })
	if err != nil {
		return nil, err
	}
	var out []store.PopulationTotals
	for p, t := range by {
		out = append(out, store.PopulationTotals{Population: p, Totals: t})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Population < out[j].Population })
	return out, nil
}

func (f *fakeStore) Goals(ctx context.Context) ([]reconcile.GoalMeta, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []reconcile.GoalMeta
	for _, g := range f.goals {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (f *fakeStore) Goal(ctx context.Context, name string) (reconcile.GoalMeta, bool, error) {
	if err := f.check(); err != nil {
		return reconcile.GoalMeta{}, false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.goals[name]
	return g, ok, nil
}

func (f *fakeStore) Tests(ctx context.Context) ([]reconcile.TestMeta, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []reconcile.TestMeta
	for _, t := range f.tests {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Last > out[j].Last })
	return out, nil
}

func (f *fakeStore) Test(ctx context.Context, name string) (reconcile.TestMeta, bool, error) {
	if err := f.check(); err != nil {
		return reconcile.TestMeta{}, false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tests[name]
	return t, ok, nil
}

func (f *fakeStore) Ping(ctx context.Context) error { return f.check() }
func (f *fakeStore) Close() error                   { return nil }

var errReadOnly = errors.New("fake store: read-only")

func (f *fakeStore) Migrate(context.Context) error                      { return errReadOnly }
func (f *fakeStore) Flush(context.Context, *store.Batch) error          { return errReadOnly }
func (f *fakeStore) InsertEvents(context.Context, *store.Batch) error   { return errReadOnly }
func (f *fakeStore) InsertCounters(context.Context, *store.Batch) error { return errReadOnly }
func (f *fakeStore) UpsertMeta(context.Context, *store.Batch) error     { return errReadOnly }
func (f *fakeStore) InsertStates(context.Context, *store.Batch) error   { return errReadOnly }
func (f *fakeStore) Marks(context.Context, int32) (store.Marks, error) {
	return store.Marks{}, errReadOnly
}
func (f *fakeStore) LoadStates(context.Context, []string) (map[string][]byte, error) {
	return nil, errReadOnly
}

var _ store.Store = (*fakeStore)(nil)
