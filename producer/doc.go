// Package producer is the part of Manhattan a Go web app links in: an
// http.Handler middleware that gives every visitor a signed cookie id,
// records page views, the tracking pixel, goals and split-test assignments,
// and hands the events to an asynchronous Kafka writer.
//
// With net/http:
//
//	w, _ := producer.NewWriter(producer.WriterOptions{Brokers: []string{"localhost:9092"}, SpoolDir: "/var/lib/manhattan/spool"})
//	defer w.Close(context.Background()) // better: a context with a deadline
//	mw, _ := producer.New(producer.Options{Secret: "s3krit", Sink: w})
//	http.ListenAndServe(":8000", mw.Handler(app))
//
// With chi, the same middleware: r.Use(mw.Handler).
//
// In a handler:
//
//	v := producer.FromRequest(r)
//	if v.Split("superior dessert preference") == "True" { … }
//	v.Goal("pie accomplished")
//	v.Goal("purchase", producer.Value("12.50"), producer.Sum, producer.Currency)
//	plan, err := v.SplitWeighted("pricing", map[string]float64{"annual": 70, "monthly": 30})
//
// A request never waits on Kafka: its events go to a bounded in-memory
// queue, then (while Kafka is unreachable) to a bounded on-disk spool that
// is drained in order when Kafka is back; whatever does not fit is dropped,
// counted in manhattan_producer_events_dropped_total and logged.
//
// Bulk producers (`manhattan import`) use Writer.Produce, which waits for
// room instead of dropping and keeps the events' timestamps, then Close.
package producer
