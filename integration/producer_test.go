package integration

// The producer against Apache Kafka: requests through the middleware over
// real HTTP, the Kafka Writer, and the records read back from the broker.

import (
	"context"
	"fmt"
	"github.com/manhattan-go/manhattan/internal/kafkatest"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/manhattan-go/manhattan/event"
	"github.com/manhattan-go/manhattan/internal/testenv"
	"github.com/manhattan-go/manhattan/producer"
)

func producerTopic(t *testing.T, brokers []string, partitions int) string {
	t.Helper()
	topic := fmt.Sprintf("producer-test-%s-%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := &kafka.Client{Addr: kafka.TCP(brokers...)}
	resp, err := cl.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}}})
	if err != nil {
		t.Fatalf("create topic: %v", err)
	}
	if err := resp.Errors[topic]; err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	return topic
}

// checkGoals: goal "n" of each visitor arrived exactly once, in order, all
// of a visitor in one partition, keyed by its vid.
func checkGoals(t *testing.T, got []kafkatest.Record, sent map[string]int) {
	t.Helper()
	next := map[string]int{}
	part := map[string]int32{}
	goals := 0
	for _, r := range got {
		if r.Key != r.Event.VID {
			t.Fatalf("key %q is not vid %q", r.Key, r.Event.VID)
		}
		if p, ok := part[r.Key]; ok && p != r.Partition {
			t.Fatalf("visitor %s in partitions %d and %d", r.Key, p, r.Partition)
		}
		part[r.Key] = r.Partition
		if r.Event.Type != event.TypeGoal {
			continue
		}
		var n int
		fmt.Sscanf(r.Event.Name, "step %d", &n)
		if n != next[r.Key] {
			t.Fatalf("visitor %s: goal %d arrived when %d was due (lost, duplicated or reordered)", r.Key, n, next[r.Key])
		}
		next[r.Key]++
		goals++
	}
	total := 0
	for vid, n := range sent {
		total += n
		if next[vid] != n {
			t.Errorf("visitor %s: %d of %d goals arrived", vid, next[vid], n)
		}
	}
	if goals != total {
		t.Errorf("%d goals arrived, %d sent", goals, total)
	}
}

// app is the web app under test: each request records goal "step <n>".
func app() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := producer.FromRequest(r)
		if err := v.Goal("step " + r.URL.Query().Get("n")); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, "<html><body>%s</body></html>", v.ID())
	})
}

// browse sends per requests for each of visitors browsers concurrently
// (each browser in order), over real HTTP with a cookie jar per browser.
func browse(t *testing.T, url string, visitors, per int, offset map[string]int, sent map[string]int, jars map[int]*cookieClient) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range visitors {
		c := jars[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				mu.Lock()
				n := offset[c.vid]
				mu.Unlock()
				vid, err := c.get(url, n)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				c.vid = vid
				offset[vid] = n + 1
				sent[vid]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

type cookieClient struct {
	cookie string
	vid    string
}

func (c *cookieClient) get(url string, n int) (string, error) {
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/page?n=%d", url, n), nil)
	if c.cookie != "" {
		req.Header.Set("Cookie", c.cookie)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	for _, sc := range resp.Cookies() {
		if sc.Name == "manhattan" {
			c.cookie = "manhattan=" + sc.Value
		}
	}
	buf := make([]byte, 4096)
	k, _ := resp.Body.Read(buf)
	body := string(buf[:k])
	i := strings.Index(body, "<body>")
	if resp.StatusCode != 200 || i < 0 || len(body) < i+6+40 {
		return "", fmt.Errorf("response %d: %q", resp.StatusCode, body)
	}
	if !strings.Contains(body, `src="/vpixel.gif"`) {
		return "", fmt.Errorf("pixel not injected: %q", body)
	}
	return body[i+6 : i+6+40], nil
}

func TestProducerApacheKafkaExactlyOnceInOrder(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	topic := producerTopic(t, brokers, 4)
	w, err := producer.NewWriter(producer.WriterOptions{Brokers: brokers, Topic: topic, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	m, err := producer.New(producer.Options{Secret: "s3krit", Sink: w})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler(app()))
	defer srv.Close()

	const visitors, per = 20, 25
	jars := map[int]*cookieClient{}
	for i := range visitors {
		jars[i] = &cookieClient{}
	}
	sent, offset := map[string]int{}, map[string]int{"": 0}
	browse(t, srv.URL, visitors, per, offset, sent, jars)
	if len(sent) != visitors {
		t.Fatalf("%d distinct visitors, want %d (cookie not kept?)", len(sent), visitors)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Dropped != 0 || st.Sent != 2*visitors*per {
		t.Fatalf("writer stats %+v", st)
	}
	got := kafkatest.ReadTopic(t, brokers, topic, 2*visitors*per, time.Second, 60*time.Second) // page + goal per request
	if len(got) != 2*visitors*per {
		t.Fatalf("%d records, want %d", len(got), 2*visitors*per)
	}
	checkGoals(t, got, sent)
}

// Kafka unavailable, then available: the Writer first points at a dead
// port, so everything goes to the disk spool, and Close leaves it there; a
// Writer on the same spool directory pointed at the real broker delivers the
// spooled events first, then the new ones, each exactly once, in order.
func TestProducerApacheKafkaOutageSpool(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	topic := producerTopic(t, brokers, 3)
	spoolDir := t.TempDir()

	dead := []string{"127.0.0.1:1"} // nothing listens on port 1
	w1, err := producer.NewWriter(producer.WriterOptions{Brokers: dead, Topic: topic, SpoolDir: spoolDir, WriteTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m1, _ := producer.New(producer.Options{Secret: "s3krit", Sink: w1})
	srv1 := httptest.NewServer(m1.Handler(app()))
	const visitors = 8
	jars := map[int]*cookieClient{}
	for i := range visitors {
		jars[i] = &cookieClient{}
	}
	sent, offset := map[string]int{}, map[string]int{"": 0}
	browse(t, srv1.URL, visitors, 15, offset, sent, jars)
	srv1.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err = w1.Close(ctx)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "spool") {
		t.Fatalf("Close while Kafka is unreachable: %v", err)
	}
	if st := w1.Stats(); st.Dropped != 0 || st.Spooled != 2*visitors*15 {
		t.Fatalf("first writer: %+v", st)
	}

	w2, err := producer.NewWriter(producer.WriterOptions{Brokers: brokers, Topic: topic, SpoolDir: spoolDir})
	if err != nil {
		t.Fatal(err)
	}
	m2, _ := producer.New(producer.Options{Secret: "s3krit", Sink: w2})
	srv2 := httptest.NewServer(m2.Handler(app()))
	defer srv2.Close()
	browse(t, srv2.URL, visitors, 10, offset, sent, jars)
	ctx, cancel = context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := w2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := w2.Stats(); st.Dropped != 0 || st.Sent != 2*visitors*25 || st.SpoolBytes != 0 {
		t.Fatalf("second writer: %+v", st)
	}
	checkGoals(t, kafkatest.ReadTopic(t, brokers, topic, 2*visitors*25, time.Second, 60*time.Second), sent)
}
