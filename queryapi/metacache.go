package queryapi

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// metaCache keeps found goal and test metadata for a short time, so a count
// costs one store round trip instead of two. Only hits are kept: a goal or
// test that appears is visible at once; a changed value type or a new
// population shows within the TTL.
type metaCache[V any] struct {
	mu  sync.Mutex
	ttl time.Duration
	m   map[string]metaEntry[V]
}

type metaEntry[V any] struct {
	v       V
	expires time.Time
}

// maxMetaEntries bounds memory; past it the cache starts over.
const maxMetaEntries = 10000

func newMetaCache[V any](ttl time.Duration) *metaCache[V] {
	return &metaCache[V]{ttl: ttl, m: map[string]metaEntry[V]{}}
}

func (c *metaCache[V]) get(name string, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[name]
	if !ok || now.After(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *metaCache[V]) put(name string, v V, now time.Time) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxMetaEntries {
		clear(c.m)
	}
	c.m[name] = metaEntry[V]{v: v, expires: now.Add(c.ttl)}
}

// lookup returns the metadata of the kind ("goal", "test") called name: a
// cached copy when cached allows one, else what read finds, which is then
// cached. Not found is a *notFound error.
func (c *metaCache[V]) lookup(ctx context.Context, kind, name string, cached bool,
	read func(context.Context, string) (V, bool, error)) (V, error) {
	if v, ok := c.get(name, time.Now()); ok && cached {
		return v, nil
	}
	v, ok, err := read(ctx, name)
	if err != nil {
		return v, fmt.Errorf("%s %q: %w", kind, name, err)
	}
	if !ok {
		return v, &notFound{kind, name}
	}
	c.put(name, v, time.Now())
	return v, nil
}
