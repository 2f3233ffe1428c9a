package reconcile

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

func TestCacheWriteBack(t *testing.T) {
	if _, err := NewCache(0); err == nil {
		t.Error("NewCache(0) accepted")
	}
	c, err := NewCache(3)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]*State{}
	for i := 0; i < 5; i++ {
		vid := fmt.Sprintf("v%d", i)
		states[vid] = NewState()
		c.Add(vid, states[vid])
		if i < 2 {
			c.MarkDirty(vid)
		}
	}
	// v0, v1 dirty; clean LRU of 3 holds v2..v4.
	if c.Len() != 5 {
		t.Fatalf("Len = %d, want 5 (3 clean + 2 dirty)", c.Len())
	}
	for i := 5; i < 20; i++ { // churn: dirty states must survive
		c.Add(fmt.Sprintf("v%d", i), NewState())
	}
	for _, vid := range []string{"v0", "v1"} {
		if st, ok := c.Get(vid); !ok || st != states[vid] {
			t.Fatalf("dirty %s lost", vid)
		}
	}
	got := c.Dirty()
	slices.SortFunc(got, func(a, b DirtyState) int { return strings.Compare(a.VID, b.VID) })
	if len(got) != 2 || got[0].VID != "v0" || got[1].VID != "v1" {
		t.Fatalf("Dirty = %+v", got)
	}
	if got := c.Missing([]string{"v19", "v0", "zz", "v2", "zz", "aa"}); !slices.Equal(got, []string{"aa", "v2", "zz"}) {
		t.Errorf("Missing = %v", got)
	}
	c.MarkDirty("not-cached") // no effect
	c.MarkFlushed()
	if len(c.Dirty()) != 0 {
		t.Error("dirty states after MarkFlushed")
	}
	if c.Len() != 3 {
		t.Errorf("Len after flush = %d, want 3", c.Len())
	}
	// The flushed states were the most recent additions.
	if _, ok := c.Get("v1"); !ok {
		t.Error("just-flushed v1 evicted before older clean states")
	}
	// Add over a dirty entry keeps it dirty.
	c.MarkDirty("v1")
	fresh := NewState()
	c.Add("v1", fresh)
	if d := c.Dirty(); len(d) != 1 || d[0].State != fresh {
		t.Errorf("Add over dirty: Dirty = %+v", d)
	}
}

// TestCacheCopiesDirtyIDs: an id marked dirty is a copy, so a cached state
// never keeps alive the record its id was cut from.
func TestCacheCopiesDirtyIDs(t *testing.T) {
	c, _ := NewCache(10)
	record := `{"vid":"v1","rest":"of a long record"}`
	vid := record[8:10]
	c.Add(strings.Clone(vid), NewState())
	c.MarkDirty(vid)
	d := c.Dirty()
	if len(d) != 1 || d[0].VID != "v1" {
		t.Fatalf("Dirty = %+v", d)
	}
	if unsafe.StringData(d[0].VID) == unsafe.StringData(vid) {
		t.Error("the dirty entry's id shares the record's bytes")
	}
}
