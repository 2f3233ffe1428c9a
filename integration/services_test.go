package integration

// Smoke tests proving that `make test` runs against the real services
// (Apache Kafka 4.x in KRaft mode and a ClickHouse 18.x server), not
// stand-ins: when these fail, every other integration failure is suspect.

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/segmentio/kafka-go"

	"github.com/manhattan-go/manhattan/internal/testenv"
)

// Kafka API keys (from the Kafka protocol guide).
const (
	servicesAPIFetch                  = 1
	servicesAPIConsumerGroupHeartbeat = 68
)

func TestServicesKafkaIsApacheKafka4KRaft(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	conn, err := kafka.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		t.Fatalf("dial kafka %s: %v", brokers[0], err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))

	versions, err := conn.ApiVersions()
	if err != nil {
		t.Fatalf("ApiVersions: %v", err)
	}
	byKey := map[int16]kafka.ApiVersion{}
	for _, v := range versions {
		byKey[v.ApiKey] = v
	}
	// Kafka 4.0 removed Fetch v0-v3 (KIP-896) and made the new consumer
	// group protocol (KIP-848, ConsumerGroupHeartbeat) generally available.
	fetch, ok := byKey[servicesAPIFetch]
	if !ok || fetch.MinVersion < 4 {
		t.Errorf("Fetch API min version = %d (present %v), want >= 4 as in Apache Kafka 4.x", fetch.MinVersion, ok)
	}
	if _, ok := byKey[servicesAPIConsumerGroupHeartbeat]; !ok {
		t.Errorf("broker lacks ConsumerGroupHeartbeat (API key 68), which Apache Kafka 4.x has")
	}

	// The broker must report its KRaft roles through DescribeConfigs.
	brokerList, err := conn.Brokers()
	if err != nil || len(brokerList) == 0 {
		t.Fatalf("metadata brokers: %v (got %d)", err, len(brokerList))
	}
	b := brokerList[0]
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 20 * time.Second}
	resp, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{
		Addr: kafka.TCP(net.JoinHostPort(b.Host, strconv.Itoa(b.Port))),
		Resources: []kafka.DescribeConfigRequestResource{{
			ResourceType: kafka.ResourceTypeBroker,
			ResourceName: strconv.Itoa(b.ID),
			ConfigNames:  []string{"process.roles"},
		}},
	})
	if err != nil {
		t.Fatalf("DescribeConfigs broker %d: %v", b.ID, err)
	}
	var roles string
	for _, r := range resp.Resources {
		if r.Error != nil {
			t.Fatalf("DescribeConfigs broker %d: %v", b.ID, r.Error)
		}
		for _, e := range r.ConfigEntries {
			if e.ConfigName == "process.roles" {
				roles = e.ConfigValue
			}
		}
	}
	if !strings.Contains(roles, "broker") {
		t.Errorf("process.roles = %q, want a KRaft broker", roles)
	}
}

func TestServicesKafkaProduceConsume(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	topic := fmt.Sprintf("manhattan-services-test-%d", time.Now().UnixNano())
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 20 * time.Second}
	created, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}},
	})
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	if err := created.Errors[topic]; err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, _ = client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	})

	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 10 * time.Millisecond,
	}
	defer w.Close()
	want := kafka.Message{Key: []byte("visitor-1"), Value: []byte("hello kafka 4")}
	// Right after creation the partition leader may not be known yet.
	for attempt := 0; ; attempt++ {
		err = w.WriteMessages(ctx, want)
		if err == nil {
			break
		}
		if attempt >= 20 || ctx.Err() != nil {
			t.Fatalf("produce to %s: %v", topic, err)
		}
		time.Sleep(250 * time.Millisecond)
	}

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0, MaxWait: 500 * time.Millisecond})
	defer r.Close()
	got, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatalf("consume from %s: %v", topic, err)
	}
	if string(got.Key) != string(want.Key) || string(got.Value) != string(want.Value) || got.Offset != 0 {
		t.Errorf("consumed key=%q value=%q offset=%d, want key=%q value=%q offset=0",
			got.Key, got.Value, got.Offset, want.Key, want.Value)
	}
}

func TestServicesClickHouseIs18(t *testing.T) {
	url := testenv.ClickHouseURL(t)
	opts, err := clickhouse.ParseDSN(url)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var version string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		t.Fatalf("SELECT version(): %v", err)
	}
	if !strings.HasPrefix(version, "18.") {
		t.Errorf("ClickHouse version = %q, want Debian's 18.x server", version)
	}

	// A round trip through a table: create, insert (explicit columns, as
	// 18.16 needs), read back, drop.
	db := fmt.Sprintf("manhattan_services_test_%d", time.Now().UnixNano())
	if err := conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db)
	})
	if err := conn.Exec(ctx, "CREATE TABLE "+db+".t (n UInt64, s String) ENGINE = MergeTree ORDER BY n"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".t (n, s)")
	if err != nil {
		t.Fatalf("prepare batch: %v", err)
	}
	for i := uint64(1); i <= 3; i++ {
		if err := batch.Append(i, fmt.Sprint("row", i)); err != nil {
			t.Fatalf("append: %v", err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatalf("send batch: %v", err)
	}
	var sum uint64
	if err := conn.QueryRow(ctx, "SELECT sum(n) FROM "+db+".t").Scan(&sum); err != nil {
		t.Fatalf("select sum: %v", err)
	}
	if sum != 6 {
		t.Errorf("sum(n) = %d, want 6", sum)
	}
}
