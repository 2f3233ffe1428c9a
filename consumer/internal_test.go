package consumer

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/manhattan-go/manhattan/consumer/consumertest"
	"github.com/manhattan-go/manhattan/event"
	"github.com/manhattan-go/manhattan/reconcile"
	"github.com/manhattan-go/manhattan/store"
)

func TestBackoffIsCappedExponential(t *testing.T) {
	want := []time.Duration{100, 100, 200, 400, 800, 1000, 1000}
	for attempt, w := range want {
		if got := backoff(attempt, 100, 1000); got != w {
			t.Errorf("backoff(%d) = %v, want %v", attempt, got, w)
		}
	}
}

func TestDeadLetterKeepsRecordAndNamesSource(t *testing.T) {
	m := kafka.Message{Topic: "events", Partition: 3, Offset: 42, Key: []byte("k"), Value: []byte("{bad"),
		Headers: []kafka.Header{{Key: "trace", Value: []byte("x")}}}
	d := deadLetter(m, "invalid JSON")
	if string(d.Key) != "k" || string(d.Value) != "{bad" {
		t.Fatalf("dead letter changed the record: %q %q", d.Key, d.Value)
	}
	h := map[string]string{}
	for _, x := range d.Headers {
		h[x.Key] = string(x.Value)
	}
	want := map[string]string{"trace": "x", HeaderReason: "invalid JSON", HeaderSourceTopic: "events",
		HeaderSourcePartition: "3", HeaderSourceOffset: "42"}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("header %s = %q, want %q", k, h[k], v)
		}
	}
}

func TestBehindIsZeroWhenCaughtUp(t *testing.T) {
	now := time.Unix(1000, 0)
	if got := behind(now, 0, time.Unix(900, 0).UnixMicro()); got != 0 {
		t.Errorf("caught up: %v, want 0", got)
	}
	if got := behind(now, 5, time.Unix(900, 0).UnixMicro()); got != 100 {
		t.Errorf("lagging: %v, want 100", got)
	}
}

// noStates is a store holding no visitor states; process needs nothing else.
type noStates struct{ store.Store }

func (noStates) LoadStates(context.Context, []string) (map[string][]byte, error) {
	return map[string][]byte{}, nil
}

// TestProcessSkipsBelowPosWithDeadLetters: records below the resume offset
// are skipped, dead letters among them included, and every dead letter
// after that still goes out as itself.
func TestProcessSkipsBelowPosWithDeadLetters(t *testing.T) {
	eng, err := reconcile.New(consumertest.EngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	cache, _ := reconcile.NewCache(100)
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	w := &worker{
		o:      &Options{Store: noStates{}, FlushEvents: 1000},
		engine: eng, cache: cache, out: reconcile.NewOutput(), m: m,
		prog: &progress{parts: map[int32]partProgress{}},
		log:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		pos:  2,
	}
	var fb fetched
	good := func(off int64, vid string) {
		ev := event.Event{Type: event.TypePage, TS: 1, VID: vid, Method: "GET", URL: "/"}
		fb.add(kafka.Message{Topic: "events", Offset: off, Key: []byte(vid), Value: ev.AppendJSON(nil)})
	}
	fb.add(kafka.Message{Topic: "events", Offset: 1, Value: []byte("{bad")})
	good(2, "v1")
	fb.add(kafka.Message{Topic: "events", Offset: 3, Value: []byte("{also bad")})
	good(4, "v2")
	if err := w.process(context.Background(), fb); err != nil {
		t.Fatal(err)
	}
	if len(w.dead) != 1 || string(w.dead[0].Value) != "{also bad" {
		t.Fatalf("dead letters %+v, want only the record at offset 3", w.dead)
	}
	var offs []int64
	for _, r := range w.records {
		offs = append(offs, r.Offset)
		if r.Event.VID == "" {
			t.Errorf("record at offset %d stored as an empty event", r.Offset)
		}
	}
	if len(offs) != 2 || offs[0] != 2 || offs[1] != 4 || w.pos != 5 {
		t.Errorf("stored offsets %v, next %d; want [2 4], 5", offs, w.pos)
	}
}
