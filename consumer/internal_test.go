package consumer

import (
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
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
