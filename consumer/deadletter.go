package consumer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// Headers of a dead-letter record, beside the original record's own.
const (
	HeaderReason          = "reason"
	HeaderSourceTopic     = "source_topic"
	HeaderSourcePartition = "source_partition"
	HeaderSourceOffset    = "source_offset"
)

// deadLetter builds the dead-letter record of m: original key, value and
// headers, plus why and where it came from.
func deadLetter(m kafka.Message, reason string) kafka.Message {
	h := make([]kafka.Header, 0, len(m.Headers)+4)
	h = append(h, m.Headers...)
	h = append(h,
		kafka.Header{Key: HeaderReason, Value: []byte(reason)},
		kafka.Header{Key: HeaderSourceTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(m.Partition))},
		kafka.Header{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
	)
	return kafka.Message{Key: m.Key, Value: m.Value, Headers: h}
}

func newDeadLetterWriter(brokers []string, topic string) *kafka.Writer {
	return &kafka.Writer{
		Addr:     kafka.TCP(brokers...),
		Topic:    topic,
		Balancer: &kafka.Murmur2Balancer{},
		// Dead letters are written synchronously before the flush that
		// moves past them: wait for all replicas, and do not linger.
		RequiredAcks:           kafka.RequireAll,
		BatchTimeout:           5 * time.Millisecond,
		AllowAutoTopicCreation: true,
	}
}

// ensureTopic creates topic when it does not exist, with the partition
// count of topic like (or the broker's default when like is "" or missing).
// Failure is not fatal: the broker may auto-create topics.
func ensureTopic(ctx context.Context, brokers []string, topic, like string) error {
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	topics := []string{topic}
	if like != "" {
		topics = append(topics, like)
	}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return fmt.Errorf("metadata of %s: %w", topic, err)
	}
	partitions := -1
	for _, t := range md.Topics {
		if t.Name == topic && t.Error == nil {
			return nil
		}
		if t.Name == like && t.Error == nil {
			partitions = len(t.Partitions)
		}
	}
	res, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: partitions, ReplicationFactor: -1,
	}}})
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	if err := res.Errors[topic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}
