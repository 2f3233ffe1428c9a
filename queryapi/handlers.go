package queryapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	"github.com/manhattan-go/manhattan/queryapi/client"
	"github.com/manhattan-go/manhattan/reconcile"
	"github.com/manhattan-go/manhattan/splitstats"
	"github.com/manhattan-go/manhattan/store"
)

type notFound struct{ what, name string }

func (e *notFound) Error() string { return fmt.Sprintf("unknown %s %q", e.what, e.name) }

// fail answers an error: 400 for bad parameters, 404 for unknown names, 503
// for anything the store did (it is down, slow or refused): never a 500 for
// what the client sent.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var bp *badParam
	var nf *notFound
	switch {
	case errors.As(err, &bp):
		writeError(w, http.StatusBadRequest, bp.Error())
	case errors.As(err, &nf):
		writeError(w, http.StatusNotFound, nf.Error())
	default:
		s.log.WarnContext(r.Context(), "queryapi: store error", "path", r.URL.EscapedPath(), "err", err)
		msg := "store unavailable"
		if errors.Is(err, context.DeadlineExceeded) {
			msg = "store did not answer in time"
		}
		writeError(w, http.StatusServiceUnavailable, msg)
	}
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.st.Ping(ctx); err != nil {
		s.log.WarnContext(ctx, "queryapi: readyz: store ping failed", "err", err)
		writeError(w, http.StatusServiceUnavailable, "store unavailable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// parallel runs fns with at most s.par at once and returns the first error.
func (s *server) parallel(ctx context.Context, fns []func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, s.par)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for _, fn := range fns {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(ctx); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	return first
}

// countFilter reads site_id, rollup, bucket and (when withVariant) test and
// population, which go together. It also returns the rollup's kind ("" when
// the configuration is unknown).
func (s *server) countFilter(p params, withVariant bool) (q store.CounterQuery, kind string, err error) {
	if q.Site, err = p.site(); err != nil {
		return q, "", err
	}
	if q.Rollup, err = p.str("rollup"); err != nil {
		return q, "", err
	}
	if kind, err = s.rollups.kind(q.Rollup); err != nil {
		return q, "", err
	}
	if q.Bucket, err = p.str("bucket"); err != nil {
		return q, "", err
	}
	// bucket= asks for the browser rollup's "" bucket (unknown user agent);
	// for other kinds an empty bucket stays "no filter".
	q.BucketSet = p.has("bucket") && (kind == reconcile.RollupBrowser || kind == "")
	if err := checkBucket("bucket", q.Rollup, kind, q.Bucket); err != nil {
		return q, "", err
	}
	if !withVariant {
		return q, kind, nil
	}
	if q.Test, err = p.str("test"); err != nil {
		return q, "", err
	}
	if q.Population, err = p.str("population"); err != nil {
		return q, "", err
	}
	switch {
	case q.Test != "" && q.Population == "":
		return q, "", bad("population", "required with test")
	case q.Test == "" && q.Population != "":
		return q, "", bad("test", "required with population")
	}
	return q, kind, nil
}

func (s *server) goalMeta(ctx context.Context, name string) (reconcile.GoalMeta, error) {
	return s.goalsC.lookup(ctx, "goal", name, true, s.st.Goal)
}

// testMeta reads a test's metadata; cached says a recent copy will do.
func (s *server) testMeta(ctx context.Context, name string, cached bool) (reconcile.TestMeta, error) {
	return s.testsC.lookup(ctx, "test", name, cached, s.st.Test)
}

func needsPageViews(valueType string) bool { return valueType == "I" || valueType == "R" }

// jsonHandler serves f's answer as JSON, or its error through s.fail.
func jsonHandler[T any](s *server, f func(*http.Request) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		out, err := f(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

func (s *server) goals(r *http.Request) (client.Goals, error) {
	if _, err := parseParams(r); err != nil {
		return client.Goals{}, err
	}
	gs, err := s.st.Goals(r.Context())
	if err != nil {
		return client.Goals{}, fmt.Errorf("goals: %w", err)
	}
	out := client.Goals{Goals: make([]client.Goal, len(gs))}
	for i, g := range gs {
		out.Goals[i] = client.Goal{Name: g.Name, ValueType: g.ValueType, ValueFormat: g.ValueFormat}
	}
	return out, nil
}

func (s *server) goalCount(r *http.Request) (client.GoalCount, error) {
	var out client.GoalCount
	name, err := pathParam(r, "goal")
	if err != nil {
		return out, err
	}
	p, err := parseParams(r, "site_id", "rollup", "bucket", "test", "population")
	if err != nil {
		return out, err
	}
	q, _, err := s.countFilter(p, true)
	if err != nil {
		return out, err
	}
	ctx := r.Context()
	meta, err := s.goalMeta(ctx, name)
	if err != nil {
		return out, err
	}
	q.Kind, q.Goal = reconcile.KindConversion, name
	if q.Test != "" {
		if _, err := s.testMeta(ctx, q.Test, true); err != nil {
			return out, err
		}
		q.Kind = reconcile.KindVariantConversion
	}
	var tot, views store.Totals
	fns := []func(context.Context) error{func(ctx context.Context) (err error) {
		tot, err = s.st.Counter(ctx, q)
		return err
	}}
	if needsPageViews(meta.ValueType) {
		vq := q
		vq.Goal = reconcile.ViewedPage
		fns = append(fns, func(ctx context.Context) (err error) {
			views, err = s.st.Counter(ctx, vq)
			return err
		})
	}
	if err := s.parallel(ctx, fns); err != nil {
		return out, fmt.Errorf("count goal %q: %w", name, err)
	}
	return client.GoalCount{
		Goal: name, Count: tot.Count,
		Value:     reconcile.GoalValue(meta.ValueType, tot.Value, tot.Count, views.Count),
		ValueType: meta.ValueType, ValueFormat: meta.ValueFormat,
	}, nil
}

func (s *server) seriesOf(r *http.Request) (client.Series, error) {
	var out client.Series
	name, err := pathParam(r, "goal")
	if err != nil {
		return out, err
	}
	p, err := parseParams(r, "site_id", "rollup", "bucket", "test", "population", "from", "to")
	if err != nil {
		return out, err
	}
	q, kind, err := s.countFilter(p, true)
	if err != nil {
		return out, err
	}
	if q.Rollup == "" {
		return out, bad("rollup", "required for a series (a configured rollup such as a day or hour rollup)")
	}
	if q.Bucket != "" {
		return out, bad("bucket", "not allowed for a series; use from and to")
	}
	from, err := p.str("from")
	if err != nil {
		return out, err
	}
	to, err := p.str("to")
	if err != nil {
		return out, err
	}
	if err := checkBucket("from", q.Rollup, kind, from); err != nil {
		return out, err
	}
	if err := checkBucket("to", q.Rollup, kind, to); err != nil {
		return out, err
	}
	if from != "" && to != "" && from > to {
		return out, bad("from", "%q is after to %q", from, to)
	}
	ctx := r.Context()
	meta, err := s.goalMeta(ctx, name)
	if err != nil {
		return out, err
	}
	q.Kind, q.Goal = reconcile.KindConversion, name
	if q.Test != "" {
		if _, err := s.testMeta(ctx, q.Test, true); err != nil {
			return out, err
		}
		q.Kind = reconcile.KindVariantConversion
	}
	var pts, views []store.BucketTotals
	fns := []func(context.Context) error{func(ctx context.Context) (err error) {
		pts, err = s.st.Series(ctx, q, from, to)
		return err
	}}
	if needsPageViews(meta.ValueType) {
		vq := q
		vq.Goal = reconcile.ViewedPage
		fns = append(fns, func(ctx context.Context) (err error) {
			views, err = s.st.Series(ctx, vq, from, to)
			return err
		})
	}
	if err := s.parallel(ctx, fns); err != nil {
		return out, fmt.Errorf("series of goal %q: %w", name, err)
	}
	viewsAt := make(map[string]int64, len(views))
	for _, v := range views {
		viewsAt[v.Bucket] = v.Count
	}
	out = client.Series{Goal: name, Rollup: q.Rollup, From: from, To: to, Points: make([]client.Point, len(pts))}
	for i, pt := range pts {
		out.Points[i] = client.Point{Bucket: pt.Bucket, Count: pt.Count,
			Value: reconcile.GoalValue(meta.ValueType, pt.Value, pt.Count, viewsAt[pt.Bucket])}
	}
	return out, nil
}

// seconds turns the store's Unix microseconds into Unix seconds (floor).
func seconds(us int64) int64 {
	s := us / 1e6
	if us%1e6 < 0 {
		s--
	}
	return s
}

func (s *server) tests(r *http.Request) (client.Tests, error) {
	if _, err := parseParams(r); err != nil {
		return client.Tests{}, err
	}
	ts, err := s.st.Tests(r.Context())
	if err != nil {
		return client.Tests{}, fmt.Errorf("tests: %w", err)
	}
	out := client.Tests{Tests: make([]client.Test, len(ts))}
	for i, t := range ts {
		pops := t.Populations
		if pops == nil {
			pops = []string{}
		}
		out.Tests[i] = client.Test{Name: t.Name, FirstTimestamp: seconds(t.First), LastTimestamp: seconds(t.Last), Populations: pops}
	}
	return out, nil
}

// populations returns the test's populations (its metadata's, plus any with
// impressions under the filter), sorted, with their impressions.
func (s *server) populations(ctx context.Context, meta reconcile.TestMeta, q store.CounterQuery) ([]client.PopulationImpressions, error) {
	q.Kind, q.Test, q.Goal, q.Population = reconcile.KindImpression, meta.Name, "", ""
	pts, err := s.st.Populations(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("populations of test %q: %w", meta.Name, err)
	}
	imps := map[string]int64{}
	for _, p := range meta.Populations {
		imps[p] = 0
	}
	for _, p := range pts {
		imps[p.Population] = p.Count
	}
	out := make([]client.PopulationImpressions, 0, len(imps))
	for p, n := range imps {
		out = append(out, client.PopulationImpressions{Population: p, Impressions: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Population < out[j].Population })
	return out, nil
}

func (s *server) testDetail(r *http.Request) (client.TestDetail, error) {
	var out client.TestDetail
	name, err := pathParam(r, "test")
	if err != nil {
		return out, err
	}
	p, err := parseParams(r, "site_id", "rollup", "bucket")
	if err != nil {
		return out, err
	}
	q, _, err := s.countFilter(p, false)
	if err != nil {
		return out, err
	}
	meta, err := s.testMeta(r.Context(), name, false)
	if err != nil {
		return out, err
	}
	pops, err := s.populations(r.Context(), meta, q)
	if err != nil {
		return out, err
	}
	return client.TestDetail{Test: name, FirstTimestamp: seconds(meta.First), LastTimestamp: seconds(meta.Last), Populations: pops}, nil
}

func (s *server) resultsOf(r *http.Request) (client.Results, error) {
	var out client.Results
	name, err := pathParam(r, "test")
	if err != nil {
		return out, err
	}
	p, err := parseParams(r, "site_id", "rollup", "bucket", "goals", "control", "weights")
	if err != nil {
		return out, err
	}
	q, _, err := s.countFilter(p, false)
	if err != nil {
		return out, err
	}
	goals, err := p.list("goals")
	if err != nil {
		return out, err
	}
	if len(goals) == 0 {
		return out, bad("goals", "required: a comma-separated list of goal names (escape commas in names as %%2C)")
	}
	if len(goals) > 100 {
		return out, bad("goals", "at most 100 goals, got %d", len(goals))
	}
	control, err := p.str("control")
	if err != nil {
		return out, err
	}
	wnames, weights, err := p.weights("weights")
	if err != nil {
		return out, err
	}
	ctx := r.Context()
	meta, err := s.testMeta(ctx, name, true)
	if err != nil {
		return out, err
	}
	metas := make([]reconcile.GoalMeta, len(goals))
	fns := make([]func(context.Context) error, len(goals))
	for i, g := range goals {
		fns[i] = func(ctx context.Context) (err error) {
			metas[i], err = s.goalMeta(ctx, g)
			return err
		}
	}
	var pops []client.PopulationImpressions
	fns = append(fns, func(ctx context.Context) (err error) {
		pops, err = s.populations(ctx, meta, q)
		return err
	})
	if err := s.parallel(ctx, fns); err != nil {
		return out, err
	}
	if len(pops) == 0 {
		return out, &notFound{"populations of test", name}
	}
	ci := -1
	if control == "" {
		ci, control = 0, pops[0].Population
	}
	for i, pi := range pops {
		if pi.Population == control {
			ci = i
		}
	}
	if ci < 0 {
		return out, bad("control", "%q is not a population of test %q", control, name)
	}

	// Counts: one query per goal, grouped by population (plus viewed page
	// when a goal's value is per page view), instead of one per pair.
	anyViews := false
	for _, m := range metas {
		anyViews = anyViews || needsPageViews(m.ValueType)
	}
	byGoal := make([]map[string]store.Totals, len(goals))
	var views map[string]store.Totals
	fns = fns[:0]
	perPop := func(goal string, dst *map[string]store.Totals) func(context.Context) error {
		gq := q
		gq.Kind, gq.Test, gq.Goal, gq.Population = reconcile.KindVariantConversion, name, goal, ""
		return func(ctx context.Context) error {
			rows, err := s.st.Populations(ctx, gq)
			m := make(map[string]store.Totals, len(rows))
			for _, r := range rows {
				m[r.Population] = r.Totals
			}
			*dst = m
			return err
		}
	}
	for gi, g := range goals {
		fns = append(fns, perPop(g, &byGoal[gi]))
	}
	if anyViews {
		fns = append(fns, perPop(reconcile.ViewedPage, &views))
	}
	if err := s.parallel(ctx, fns); err != nil {
		return out, fmt.Errorf("results of test %q: %w", name, err)
	}
	tot := make([][]store.Totals, len(pops))
	for pi, pop := range pops {
		tot[pi] = make([]store.Totals, len(goals))
		for gi := range goals {
			tot[pi][gi] = byGoal[gi][pop.Population]
		}
	}

	out = client.Results{Test: name, Goals: goals, Control: control, Populations: make([]client.PopulationResult, len(pops))}
	ctl := pops[ci]
	for pi, pop := range pops {
		pr := client.PopulationResult{
			Population: pop.Population, Impressions: pop.Impressions,
			Values: make([]decimal.Decimal, len(goals)),
			Stats:  client.Stats{Visitors: pop.Impressions, Control: pi == ci, Goals: make([]client.GoalStats, len(goals))},
		}
		for gi, g := range goals {
			t := tot[pi][gi]
			pr.Values[gi] = reconcile.GoalValue(metas[gi].ValueType, t.Value, t.Count, views[pop.Population].Count)
			pr.Stats.Goals[gi] = goalStats(g, t.Count, pop.Impressions, tot[ci][gi].Count, ctl.Impressions, pi == ci)
		}
		out.Populations[pi] = pr
	}
	if len(wnames) > 0 {
		if out.SRM, err = srm(pops, wnames, weights, name); err != nil {
			return out, err
		}
	}
	return out, nil
}

func ptr(f float64) *float64 { return &f }

// goalStats computes one population's statistics for one goal against the
// control; undefined ones stay nil (JSON null).
func goalStats(goal string, conv, visitors, ctlConv, ctlVisitors int64, isControl bool) client.GoalStats {
	gs := client.GoalStats{Goal: goal, Conversions: conv}
	lo, hi, err := splitstats.Wilson(conv, visitors, splitstats.Z95)
	if err != nil {
		return gs // no visitors, or more conversions than impressions under the filter
	}
	rate := float64(conv) / float64(visitors)
	gs.ConversionRate, gs.CILow, gs.CIHigh = ptr(rate), ptr(lo), ptr(hi)
	if isControl || ctlVisitors <= 0 || ctlConv > ctlVisitors {
		return gs
	}
	if ctlRate := float64(ctlConv) / float64(ctlVisitors); ctlRate > 0 {
		gs.Uplift = ptr((rate - ctlRate) / ctlRate)
	}
	if p, err := splitstats.ZTest(ctlConv, ctlVisitors, conv, visitors); err == nil {
		gs.PValue = ptr(p)
	}
	if p, err := splitstats.ChanceToBeat(ctlConv, ctlVisitors, conv, visitors); err == nil {
		gs.ChanceToBeatControl = ptr(p)
	}
	return gs
}

// srm checks the impressions against the expected weights. Every weighted
// name must be a population, and every population with impressions must be
// weighted.
func srm(pops []client.PopulationImpressions, names []string, weights []float64, test string) (*client.SRM, error) {
	imps := map[string]int64{}
	for _, p := range pops {
		imps[p.Population] = p.Impressions
	}
	obs := make([]int64, len(names))
	out := &client.SRM{Weights: make([]client.PopulationWeight, len(names)), DF: len(names) - 1}
	for i, n := range names {
		v, ok := imps[n]
		if !ok {
			return nil, bad("weights", "%q is not a population of test %q", n, test)
		}
		obs[i] = v
		out.Weights[i] = client.PopulationWeight{Population: n, Weight: weights[i]}
	}
	for _, p := range pops {
		if p.Impressions > 0 && !contains(names, p.Population) {
			return nil, bad("weights", "population %q has impressions but no weight", p.Population)
		}
	}
	if len(names) < 2 {
		return nil, bad("weights", "need at least 2 populations")
	}
	if res, err := splitstats.SampleRatioMismatch(obs, weights); err == nil {
		out.ChiSquare, out.PValue = ptr(res.ChiSquare), ptr(res.PValue)
	}
	return out, nil
}
