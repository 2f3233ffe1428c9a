package queryapi

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/manhattan-go/manhattan/reconcile"
)

// rollups knows the configured rollups, so that a typo in a rollup name or
// a bucket answers 400 instead of a silent zero. A nil map means the
// configuration is unknown (Options.Rollups empty): any name passes.
type rollups map[string]string // name → kind

func newRollups(rs []reconcile.Rollup) (rollups, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	m := make(rollups, len(rs))
	for i, r := range rs {
		if _, ok := bucketLayout[r.Kind]; !ok && r.Kind != reconcile.RollupBrowser {
			return nil, fmt.Errorf("queryapi: Options.Rollups[%d] %q: unknown kind %q", i, r.Name, r.Kind)
		}
		if _, dup := m[r.Name]; dup || r.Name == "" {
			return nil, fmt.Errorf("queryapi: Options.Rollups[%d]: empty or duplicate name %q", i, r.Name)
		}
		m[r.Name] = r.Kind
	}
	return m, nil
}

// bucketLayout is the bucket format of each time kind ("" for all: its only
// bucket is the empty one). Browser buckets are free-form.
var bucketLayout = map[string]string{
	reconcile.RollupAll:   "",
	reconcile.RollupHour:  "2006-01-02T15",
	reconcile.RollupDay:   "2006-01-02",
	reconcile.RollupWeek:  "2006-01-02",
	reconcile.RollupMonth: "2006-01",
}

func (rs rollups) names() string {
	ns := make([]string, 0, len(rs))
	for n := range rs {
		ns = append(ns, fmt.Sprintf("%q", n))
	}
	sort.Strings(ns)
	return strings.Join(ns, ", ")
}

// kind returns the kind of the named rollup ("" is the store's default,
// "all"), or "" when the configuration is unknown.
func (rs rollups) kind(name string) (string, error) {
	if rs == nil {
		return "", nil
	}
	if name == "" {
		if k, found := rs[reconcile.RollupAll]; found {
			return k, nil
		}
		return "", bad("rollup", "omitted, which means \"all\", but no rollup \"all\" is configured (configured: %s)", rs.names())
	}
	k, found := rs[name]
	if !found {
		return "", bad("rollup", "%q is not a configured rollup (configured: %s)", name, rs.names())
	}
	return k, nil
}

// checkBucket refuses a bucket (or from/to) not in the format of the
// rollup kind: all has only the empty bucket, weeks start on Sunday. An
// unknown kind ("": configuration unknown) passes.
func checkBucket(param, rollup, kind, v string) error {
	if v == "" || kind == "" || kind == reconcile.RollupBrowser {
		return nil
	}
	if rollup == "" {
		rollup = reconcile.RollupAll
	}
	layout := bucketLayout[kind]
	if layout == "" {
		return bad(param, "%q given, but rollup %q (kind all) has no buckets", v, rollup)
	}
	t, err := time.Parse(layout, v)
	if err != nil || t.Format(layout) != v {
		return bad(param, "%q is not a %s bucket of rollup %q (want the form %s)", v, kind, rollup, layout)
	}
	if kind == reconcile.RollupWeek && t.Weekday() != time.Sunday {
		return bad(param, "%q is a %s, but weeks of rollup %q start on Sunday", v, t.Weekday(), rollup)
	}
	return nil
}
