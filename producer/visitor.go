package producer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/manhattan-go/manhattan/event"
)

// Visitor is the handle a handler gets from the request context: it records
// events for the visitor of the request. Events are buffered and handed to
// the Sink when the request ends; methods are safe for concurrent use and
// still record (sent at once) if called after the request ended.
type Visitor struct {
	m     *Middleware
	id    string
	known bool
	site  int64

	mu   sync.Mutex
	done bool
	evs  []event.Event
	buf  [3]event.Event // room for page + a split + a goal without allocating
}

type ctxKey struct{}

// visitorCtx is the request's context with the visitor attached; it lives in
// the same allocation as the visitor (context.WithValue would be another).
type visitorCtx struct {
	context.Context
	v *Visitor
}

func (c *visitorCtx) Value(key any) any {
	if _, ok := key.(ctxKey); ok {
		return c.v
	}
	return c.Context.Value(key)
}

// FromContext returns the visitor the middleware attached to a request's
// context, or nil if the middleware is not installed. Methods of a nil
// *Visitor do nothing (Split still answers, as if for an empty vid).
func FromContext(ctx context.Context) *Visitor {
	v, _ := ctx.Value(ctxKey{}).(*Visitor)
	return v
}

// FromRequest is FromContext(r.Context()).
func FromRequest(r *http.Request) *Visitor { return FromContext(r.Context()) }

// WithVisitor returns a context carrying v, for handlers or jobs that act on
// behalf of a visitor outside the request that created it.
func WithVisitor(ctx context.Context, v *Visitor) context.Context {
	return &visitorCtx{Context: ctx, v: v}
}

// ID returns the visitor id (40 hex digits for visitors this package made).
func (v *Visitor) ID() string {
	if v == nil {
		return ""
	}
	return v.id
}

// IsNew reports whether the visitor got a new id in this request (no valid
// cookie came with it).
func (v *Visitor) IsNew() bool { return v != nil && !v.known }

// SiteID returns the site id the host map gave the request.
func (v *Visitor) SiteID() int64 {
	if v == nil {
		return 0
	}
	return v.site
}

func (v *Visitor) record(e event.Event) {
	e.TS = v.m.now().UnixMicro()
	e.VID = v.id
	e.SiteID = v.site
	v.mu.Lock()
	if v.done {
		v.mu.Unlock()
		v.m.sink.Send([]event.Event{e})
		return
	}
	v.evs = append(v.evs, e)
	v.mu.Unlock()
}

// flush hands the buffered events to the sink; called when the request ends.
func (v *Visitor) flush() {
	v.mu.Lock()
	evs := v.evs
	v.evs = nil
	v.done = true
	v.mu.Unlock()
	if len(evs) > 0 {
		v.m.sink.Send(evs)
	}
}

// Page records a page view of r. The middleware already records one for
// every counted request; call this only for additional page views.
func (v *Visitor) Page(r *http.Request) {
	if v == nil {
		return
	}
	v.record(pageEvent(r))
}

// Pixel records that the visitor loaded the tracking pixel (the middleware
// does this on the pixel path).
func (v *Visitor) Pixel() {
	if v == nil {
		return
	}
	v.record(event.Event{Type: event.TypePixel})
}

// GoalOption sets the value, value type or value format of a goal.
type GoalOption struct {
	value, valueType, valueFormat string
}

// Value gives the goal conversion a value: a decimal string such as "12.50"
// (kept exact end to end).
func Value(decimal string) GoalOption { return GoalOption{value: decimal} }

// Value types and formats of a goal (see DESIGN "Events").
var (
	Sum        = GoalOption{valueType: "S"} // values add up
	Average    = GoalOption{valueType: "A"} // sum ÷ conversions
	PerVisitor = GoalOption{valueType: "I"} // sum ÷ visitors who viewed a page
	Rate       = GoalOption{valueType: "R"} // same division as PerVisitor
	Numeric    = GoalOption{valueFormat: "N"}
	Currency   = GoalOption{valueFormat: "C"}
	Percentage = GoalOption{valueFormat: "P"}
)

// ErrNoVisitor is returned by methods of a nil *Visitor that report errors.
var ErrNoVisitor = errors.New("producer: no visitor in context (is the middleware installed?)")

// Goal records a conversion of the named goal; it is not idempotent (two
// calls are two conversions). Example:
//
//	v.Goal("purchase", producer.Value("12.50"), producer.Sum, producer.Currency)
//
// An invalid name or value is an error and records nothing.
func (v *Visitor) Goal(name string, opts ...GoalOption) error {
	if v == nil {
		return ErrNoVisitor
	}
	e := event.Event{Type: event.TypeGoal, Name: name, VID: v.id}
	for _, o := range opts {
		if o.value != "" {
			e.Value = o.value
		}
		if o.valueType != "" {
			e.ValueType = o.valueType
		}
		if o.valueFormat != "" {
			e.ValueFormat = o.valueFormat
		}
	}
	if err := e.Validate(); err != nil {
		return fmt.Errorf("goal %q: %w", truncate(name, 64), err)
	}
	v.record(e)
	return nil
}

// Split assigns the visitor to a population of test, records the
// assignment and returns it. Without populations it is a 50/50 test
// returning "True" or "False"; otherwise each population is equally likely.
// The answer is a pure function of (visitor id, test), identical to the
// original system's, so calling it again is harmless.
func (v *Visitor) Split(test string, populations ...string) string {
	if v == nil {
		return Assign("", test, populations...)
	}
	p := v.m.seeding.Assign(v.id, test, populations...)
	v.recordSplit(test, p)
	return p
}

// SplitWeighted is Split with weighted populations: {"a": 70, "b": 30} sends
// about 70% of visitors to a. Weights ≤ 0 drop a population; an empty map or
// no positive weight is an error (ErrNoPopulations) and records nothing.
func (v *Visitor) SplitWeighted(test string, weights map[string]float64) (string, error) {
	if v == nil {
		return AssignWeighted("", test, weights)
	}
	p, err := v.m.seeding.AssignWeighted(v.id, test, weights)
	if err != nil {
		return p, err
	}
	v.recordSplit(test, p)
	return p, nil
}

func (v *Visitor) recordSplit(test, population string) {
	e := event.Event{Type: event.TypeSplit, VID: v.id, Test: test, Selected: population}
	if err := e.Validate(); err != nil {
		// The assignment stands; only its record is refused.
		v.m.log.Warn("manhattan: split not recorded", "test", truncate(test, 64), "err", err)
		return
	}
	v.record(e)
}

func pageEvent(r *http.Request) event.Event {
	return event.Event{
		Type:      event.TypePage,
		IP:        remoteIP(r.RemoteAddr),
		Method:    clean(r.Method, event.MaxMethodLen),
		URL:       clean(requestURL(r), event.MaxURLLen),
		UserAgent: clean(first1(r.Header, "User-Agent"), event.MaxURLLen),
		Referer:   clean(first1(r.Header, "Referer"), event.MaxURLLen),
	}
}

func requestURL(r *http.Request) string {
	uri := r.RequestURI
	if uri == "" || uri[0] != '/' {
		if uri != "" && strings.Contains(uri, "://") { // absolute-form already
			return uri
		}
		uri = r.URL.RequestURI()
	}
	if r.TLS != nil {
		return "https://" + r.Host + uri
	}
	return "http://" + r.Host + uri
}

func remoteIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// clean makes header-derived strings fit the event schema: valid UTF-8 and
// within the size bound, so the consumer never dead-letters our own events.
func clean(s string, max int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return truncate(s, max)
}

func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for len(s) > 0 && !utf8.ValidString(s[len(s)-min(len(s), utf8.UTFMax):]) {
		s = s[:len(s)-1]
	}
	return s
}

// hostOnly strips the port from a Host header and lowercases it if needed.
func hostOnly(h string) string {
	if strings.HasPrefix(h, "[") {
		if j := strings.IndexByte(h, ']'); j > 0 {
			h = h[1:j]
		}
	} else if i := strings.IndexByte(h, ':'); i >= 0 && strings.LastIndexByte(h, ':') == i {
		h = h[:i]
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}
