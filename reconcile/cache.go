package reconcile

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// DirtyState is a cached state with changes not yet written to the store.
type DirtyState struct {
	VID   string
	State *State
}

// Cache is a write-back LRU of visitor states, one per partition worker (not
// safe for concurrent use). Clean states live in an LRU bounded by size;
// dirty ones are held apart until MarkFlushed, so a state with unflushed
// changes is never evicted. Len may exceed size only by the number of dirty
// states.
type Cache struct {
	size  int
	clean *simplelru.LRU[string, *State]
	dirty map[string]*State
	seen  map[string]struct{} // scratch for Missing
}

// NewCache returns a cache holding at most size clean states.
func NewCache(size int) (*Cache, error) {
	if size <= 0 {
		return nil, fmt.Errorf("reconcile: cache size %d: must be positive", size)
	}
	lru, err := simplelru.NewLRU[string, *State](size, nil)
	if err != nil {
		return nil, fmt.Errorf("reconcile: cache: %w", err)
	}
	return &Cache{size: size, clean: lru, dirty: map[string]*State{}}, nil
}

// Get returns the cached state of vid.
func (c *Cache) Get(vid string) (*State, bool) {
	if st, ok := c.dirty[vid]; ok {
		return st, true
	}
	return c.clean.Get(vid)
}

// Add caches a clean state (new, or loaded from the store). Adding over a
// dirty entry replaces its state but keeps it dirty, so nothing unflushed is
// lost.
func (c *Cache) Add(vid string, st *State) {
	if _, ok := c.dirty[vid]; ok {
		c.dirty[vid] = st
		return
	}
	c.clean.Add(vid, st)
}

// MarkDirty records that vid's cached state changed: it stays cached until
// MarkFlushed. Marking an id that is not cached does nothing.
func (c *Cache) MarkDirty(vid string) {
	if _, ok := c.dirty[vid]; ok {
		return
	}
	st, ok := c.clean.Peek(vid)
	if !ok {
		return
	}
	c.clean.Remove(vid)
	// A copy: callers' ids may be substrings of whole records, which the
	// cache would otherwise keep alive with the state.
	c.dirty[strings.Clone(vid)] = st
}

// Missing returns the distinct ids of vids not cached, sorted: the ids a
// caller loads from the store in one query before applying a batch. Cached
// ids are marked recently used, so adding the loaded states evicts states the
// batch does not need first.
func (c *Cache) Missing(vids []string) []string {
	var out []string
	for _, v := range vids {
		if _, ok := c.dirty[v]; ok {
			continue
		}
		if _, ok := c.clean.Get(v); ok {
			continue
		}
		if c.seen == nil {
			c.seen = map[string]struct{}{}
		}
		// A visitor has several records in a batch: drop repeats before
		// sorting.
		if _, ok := c.seen[v]; ok {
			continue
		}
		c.seen[v] = struct{}{}
		out = append(out, v)
	}
	clear(c.seen)
	slices.Sort(out)
	return out
}

// Dirty returns the states changed since the last MarkFlushed, in no
// particular order.
func (c *Cache) Dirty() []DirtyState {
	out := make([]DirtyState, 0, len(c.dirty))
	for vid, st := range c.dirty {
		out = append(out, DirtyState{VID: vid, State: st})
	}
	return out
}

// MarkFlushed makes every dirty state clean (they were just written) and
// evicts the least recently used clean states down to size.
func (c *Cache) MarkFlushed() {
	for vid, st := range c.dirty {
		c.clean.Add(vid, st)
	}
	clear(c.dirty)
}

// Len is the number of cached states, clean and dirty.
func (c *Cache) Len() int { return c.clean.Len() + len(c.dirty) }
