// Package kafkatest reads back what tests produced to a Kafka topic.
package kafkatest

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/manhattan-go/manhattan/event"
)

// Record is one event read back from a topic.
type Record struct {
	Partition int32
	Key       string
	Event     event.Event
}

// ReadTopic reads topic from its start until want records came, then for
// linger more (to catch duplicates), or until timeout. A record that does not
// decode is a test error.
func ReadTopic(t testing.TB, brokers []string, topic string, want int, linger, timeout time.Duration) []Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []Record
	deadline := time.Now().Add(timeout)
	var settle time.Time
	for time.Now().Before(deadline) {
		if len(out) >= want {
			if settle.IsZero() {
				settle = time.Now().Add(linger)
			} else if time.Now().After(settle) {
				break
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			ev, err := event.Decode(r.Value)
			if err != nil {
				t.Errorf("record does not decode: %v: %s", err, r.Value)
			}
			out = append(out, Record{r.Partition, string(r.Key), ev})
		})
	}
	return out
}
