package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/manhattan-go/manhattan/event"
)

func TestProbeInline(t *testing.T) {
	s, _ := openStore(t, chdbURL)
	ctx := context.Background()
	mk := func(lo, hi int) []Record {
		var recs []Record
		for i := lo; i < hi; i++ {
			recs = append(recs, Record{Partition: 1, Offset: int64(i), Event: event.Event{
				Type: event.TypePage, TS: 1_764_000_000_000_000 + int64(i)*1000, VID: fmt.Sprintf("%040x", i), SiteID: 1,
				IP: "203.0.113.7", Method: "GET", URL: fmt.Sprintf("https://example.com/page/%d?q=1", i),
				UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", Referer: "https://example.com/",
			}})
		}
		return recs
	}
	for _, r := range [][2]int{{0, 2571}, {0, 2572}, {2571, 2572}, {2570, 2571}, {0, 1}} {
		err := s.InsertEvents(ctx, &Batch{Records: mk(r[0], r[1])})
		t.Logf("%v: %v", r, err)
	}
	rec := mk(2571, 2572)
	b, _ := appendRowBinary(nil, &rowSet{n: 1, cols: []any{[]int32{1}, []int64{2571}, []string{"page"}, []int64{rec[0].Event.TS}}})
	t.Logf("% x", b)
}
