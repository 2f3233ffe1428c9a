package producer

import "github.com/manhattan-go/manhattan/event"

// Sink receives the events of a request when it ends. Send must not block
// and must not keep evs (the middleware reuses it): copy what you need.
// Writer is the Kafka implementation; tests may use their own.
type Sink interface {
	Send(evs []event.Event)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(evs []event.Event)

// Send calls f(evs).
func (f SinkFunc) Send(evs []event.Event) { f(evs) }
