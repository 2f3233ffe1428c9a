// Package event defines the versioned record that the producer writes to Kafka
// and the consumer reads back: one JSON object per record, keyed by visitor id.
package event

// Version is the value of the "v" field this package writes and accepts.
const Version = 1

// Type is the kind of an event.
type Type uint8

// Event types, as written in the "type" field.
const (
	TypePage  Type = iota + 1 // "page"
	TypePixel                 // "pixel"
	TypeGoal                  // "goal"
	TypeSplit                 // "split"
)

// Event is one record of the events topic. TS is Unix time in microseconds
// (the JSON field "ts" carries it as seconds with six decimals).
type Event struct {
	Type   Type
	TS     int64
	VID    string
	SiteID int64

	// page
	IP        string
	Method    string
	URL       string
	UserAgent string
	Referer   string

	// goal
	Name        string
	Value       string // decimal string; "" when the goal has no value
	ValueType   string // "", "S" sum, "A" average, "I" per visitor, "R" rate
	ValueFormat string // "", "N" numeric, "C" currency, "P" percentage

	// split
	Test     string
	Selected string
}

// The functions below are the package's contract; their implementation lives
// in codec.go.
//
//	func (t Type) String() string
//	func ParseType(s string) (Type, error)
//	func (e *Event) AppendJSON(dst []byte) []byte   // fast encoder, "v":1
//	func Decode(data []byte) (Event, error)         // parse + Validate
//	func (e *Event) Validate() error                // clear error naming the field
