package reconcile

import (
	"fmt"
	"slices"

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
	c.dirty[vid] = st
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
		out = append(out, v)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Dirty returns the states changed since the last MarkFlushed, sorted by id.
func (c *Cache) Dirty() []DirtyState {
	out := make([]DirtyState, 0, len(c.dirty))
	for vid, st := range c.dirty {
		out = append(out, DirtyState{VID: vid, State: st})
	}
	slices.SortFunc(out, func(a, b DirtyState) int {
		switch {
		case a.VID < b.VID:
			return -1
		case a.VID > b.VID:
			return 1
		}
		return 0
	})
	return out
}

// MarkFlushed makes every dirty state clean (they were just written) and
// evicts the least recently used clean states down to size.
func (c *Cache) MarkFlushed() {
	for _, d := range c.Dirty() {
		c.clean.Add(d.VID, d.State)
	}
	clear(c.dirty)
}

// Len is the number of cached states, clean and dirty.
func (c *Cache) Len() int { return c.clean.Len() + len(c.dirty) }
