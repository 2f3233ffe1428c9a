package integration

// The whole pipeline as users run it: the example app over HTTP behind the
// producer middleware → Apache Kafka → the consumer group → a ClickHouse
// server → the REST query API, asserting exact counts.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manhattan-go/manhattan/consumer"
	"github.com/manhattan-go/manhattan/consumer/consumertest"
	"github.com/manhattan-go/manhattan/exampleapp"
	"github.com/manhattan-go/manhattan/internal/testenv"
	"github.com/manhattan-go/manhattan/producer"
	"github.com/manhattan-go/manhattan/queryapi"
	"github.com/manhattan-go/manhattan/queryapi/client"
	"github.com/manhattan-go/manhattan/reconcile"
	"github.com/manhattan-go/manhattan/store"
)

func TestEndToEnd(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	chURL := testenv.ClickHouseURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	topic := consumertest.Name("e2e")
	consumertest.CreateTopic(t, brokers, topic, 3)
	u, err := url.Parse(chURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + consumertest.Name("e2e")
	st, err := store.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	// Consumer group.
	conCtx, stopConsumer := context.WithCancel(ctx)
	conErr := make(chan error, 1)
	go func() {
		conErr <- consumer.Run(conCtx, consumer.Options{
			Brokers:          brokers,
			Topic:            topic,
			Group:            topic,
			Store:            st,
			Engine:           reconcile.Config{},
			FlushInterval:    200 * time.Millisecond,
			ProgressInterval: -1,
			SessionTimeout:   6 * time.Second,
			Logger:           slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		})
	}()
	defer func() {
		stopConsumer()
		if err := <-conErr; err != nil {
			t.Errorf("consumer: %v", err)
		}
	}()

	// The example app behind the middleware, writing to Kafka.
	w, err := producer.NewWriter(producer.WriterOptions{Brokers: brokers, Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	mw, err := producer.New(producer.Options{Secret: "e2e-secret", Sink: w})
	if err != nil {
		t.Fatal(err)
	}
	app := httptest.NewServer(mw.Handler(exampleapp.Handler()))
	defer app.Close()

	// People load the pixel; every third converts, some twice; bots never
	// load the pixel, half of them "convert" too.
	const people, bots = 90, 30
	visitors := map[string]int64{}
	conversions := map[string]int64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, people+bots)
	for i := range people + bots {
		wg.Go(func() {
			jar, _ := cookiejar.New(nil)
			c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
			body, err := e2eGet(ctx, c, app.URL+"/")
			if err != nil {
				errs <- err
				return
			}
			pop := "False"
			if strings.Contains(body, `<h1 id="dessert">cake</h1>`) {
				pop = "True"
			} else if !strings.Contains(body, `<h1 id="dessert">pie</h1>`) {
				errs <- fmt.Errorf("GET /: no dessert in %q", body)
				return
			}
			bot := i >= people
			if !bot {
				if _, err := e2eGet(ctx, c, app.URL+"/vpixel.gif"); err != nil {
					errs <- err
					return
				}
			}
			converts := (!bot && i%3 == 0) || (bot && i%2 == 0)
			if converts {
				for range 1 + i%2 {
					if _, err := e2eGet(ctx, c, app.URL+"/pie"); err != nil {
						errs <- err
						return
					}
				}
			}
			if !bot {
				mu.Lock()
				visitors[pop]++
				if converts {
					conversions[pop]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	closeCtx, cancelClose := context.WithTimeout(ctx, 30*time.Second)
	err = w.Close(closeCtx)
	cancelClose()
	if err != nil {
		t.Fatalf("writer close: %v", err)
	}
	if s := w.Stats(); s.Dropped != 0 {
		t.Fatalf("writer dropped %d events", s.Dropped)
	}
	var wantConv int64
	for _, n := range conversions {
		wantConv += n
	}
	if visitors["True"] == 0 || visitors["False"] == 0 {
		t.Fatalf("the split did not split: %v", visitors)
	}

	api, err := queryapi.New(queryapi.Options{Store: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	defer srv.Close()
	c := client.New(srv.URL)

	check := func() error {
		res, err := c.Results(ctx, exampleapp.Test, []string{exampleapp.Goal}, client.ResultsOptions{})
		if err != nil {
			return err
		}
		if len(res.Populations) != 2 {
			return fmt.Errorf("populations %+v, want True and False", res.Populations)
		}
		for _, p := range res.Populations {
			if p.Impressions != visitors[p.Population] {
				return fmt.Errorf("population %s: %d impressions, want %d", p.Population, p.Impressions, visitors[p.Population])
			}
			if len(p.Values) != 1 || p.Values[0].IntPart() != conversions[p.Population] || !p.Values[0].IsInteger() {
				return fmt.Errorf("population %s: values %v, want [%d]", p.Population, p.Values, conversions[p.Population])
			}
			if len(p.Stats.Goals) != 1 || p.Stats.Goals[0].Conversions != conversions[p.Population] || p.Stats.Visitors != visitors[p.Population] {
				return fmt.Errorf("population %s: stats %+v", p.Population, p.Stats)
			}
		}
		g, err := c.Goal(ctx, exampleapp.Goal, client.Filter{})
		if err != nil {
			return err
		}
		if g.Count != wantConv {
			return fmt.Errorf("goal %q: count %d, want %d", exampleapp.Goal, g.Count, wantConv)
		}
		pv, err := c.Goal(ctx, reconcile.ViewedPage, client.Filter{})
		if err != nil {
			return err
		}
		if pv.Count != people {
			return fmt.Errorf("%q: count %d, want %d (people only, never bots)", reconcile.ViewedPage, pv.Count, people)
		}
		detail, err := c.Test(ctx, exampleapp.Test, client.Filter{})
		if err != nil {
			return err
		}
		for _, p := range detail.Populations {
			if p.Impressions != visitors[p.Population] {
				return fmt.Errorf("GET /v1/tests/…: population %s has %d impressions, want %d", p.Population, p.Impressions, visitors[p.Population])
			}
		}
		tests, err := c.Tests(ctx)
		if err != nil {
			return err
		}
		if len(tests.Tests) != 1 || tests.Tests[0].Name != exampleapp.Test {
			return fmt.Errorf("tests %+v", tests.Tests)
		}
		return nil
	}

	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := check()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counts never matched: %v", err)
		}
		var apiErr *client.APIError
		if errors.As(err, &apiErr) && !client.IsNotFound(err) {
			t.Fatalf("query API: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	// Caught up; later flushes must not add anything.
	time.Sleep(time.Second)
	if err := check(); err != nil {
		t.Fatalf("counts changed after catching up: %v", err)
	}
	t.Logf("people %v, conversions %v, bots %d: exact", visitors, conversions, bots)
}

func e2eGet(ctx context.Context, c *http.Client, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return string(b), nil
}
