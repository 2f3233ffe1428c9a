package event

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Field size bounds enforced by Validate (bytes of UTF-8). They keep one bad
// client from blowing up a Kafka record or a ClickHouse row.
const (
	MaxVIDLen      = 256
	MaxNameLen     = 2 << 10 // goal name, test, selected
	MaxURLLen      = 8 << 10 // url, user_agent, referer
	MaxIPLen       = 64
	MaxMethodLen   = 32
	MaxValueLen    = 64
	MaxRecordBytes = 64 << 10 // Decode refuses larger records outright
)

var typeNames = [...]string{"", "page", "pixel", "goal", "split"}

// String returns the name written in the "type" field ("page", "pixel",
// "goal", "split"), or "Type(n)" for an unknown value.
func (t Type) String() string {
	if t >= TypePage && t <= TypeSplit {
		return typeNames[t]
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// ParseType is the inverse of Type.String.
func ParseType(s string) (Type, error) {
	switch s {
	case "page":
		return TypePage, nil
	case "pixel":
		return TypePixel, nil
	case "goal":
		return TypeGoal, nil
	case "split":
		return TypeSplit, nil
	}
	return 0, fmt.Errorf("event: unknown type %q", truncForErr(s))
}

// FieldError is returned by Validate and Decode; Field names the JSON field.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return "event: field " + e.Field + ": " + e.Reason }

func fieldErr(field, reason string) error { return &FieldError{Field: field, Reason: reason} }

// Validate checks the event against the schema: known type, version-
// independent required fields, bounded sizes, valid UTF-8, decimal value and
// known value type / format. The error names the offending field.
func (e *Event) Validate() error {
	if e.Type < TypePage || e.Type > TypeSplit {
		return fieldErr("type", "unknown type "+strconv.Itoa(int(e.Type)))
	}
	if e.TS < 0 {
		return fieldErr("ts", "negative timestamp")
	}
	if e.VID == "" {
		return fieldErr("vid", "missing")
	}
	if err := checkStr("vid", e.VID, MaxVIDLen); err != nil {
		return err
	}
	if e.SiteID < 0 {
		return fieldErr("site_id", "negative")
	}
	switch e.Type {
	case TypePage:
		for _, f := range [...]struct {
			name, v string
			max     int
		}{
			{"ip", e.IP, MaxIPLen}, {"method", e.Method, MaxMethodLen}, {"url", e.URL, MaxURLLen},
			{"user_agent", e.UserAgent, MaxURLLen}, {"referer", e.Referer, MaxURLLen},
		} {
			if err := checkStr(f.name, f.v, f.max); err != nil {
				return err
			}
		}
	case TypeGoal:
		if e.Name == "" {
			return fieldErr("name", "missing")
		}
		if err := checkStr("name", e.Name, MaxNameLen); err != nil {
			return err
		}
		if e.Value != "" {
			if len(e.Value) > MaxValueLen {
				return fieldErr("value", "longer than "+strconv.Itoa(MaxValueLen)+" bytes")
			}
			if !IsDecimal(e.Value) {
				return fieldErr("value", "not a decimal number: "+strconv.Quote(truncForErr(e.Value)))
			}
		}
		switch e.ValueType {
		case "", "S", "A", "I", "R":
		default:
			return fieldErr("value_type", "must be one of \"\", S, A, I, R; got "+strconv.Quote(truncForErr(e.ValueType)))
		}
		switch e.ValueFormat {
		case "", "N", "C", "P":
		default:
			return fieldErr("value_format", "must be one of \"\", N, C, P; got "+strconv.Quote(truncForErr(e.ValueFormat)))
		}
	case TypeSplit:
		if e.Test == "" {
			return fieldErr("test", "missing")
		}
		if err := checkStr("test", e.Test, MaxNameLen); err != nil {
			return err
		}
		if e.Selected == "" {
			return fieldErr("selected", "missing")
		}
		if err := checkStr("selected", e.Selected, MaxNameLen); err != nil {
			return err
		}
	}
	return nil
}

func checkStr(field, v string, max int) error {
	if len(v) > max {
		return fieldErr(field, "longer than "+strconv.Itoa(max)+" bytes")
	}
	if !utf8.ValidString(v) {
		return fieldErr(field, "invalid UTF-8")
	}
	return nil
}

// IsDecimal reports whether s is a plain decimal number: an optional minus
// sign, digits, and optionally a dot followed by digits (no exponent, no
// spaces). Values are kept as such strings so sums stay exact.
func IsDecimal(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == start {
		return false
	}
	if i == len(s) {
		return true
	}
	if s[i] != '.' {
		return false
	}
	i++
	start = i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i > start && i == len(s)
}

func truncForErr(s string) string {
	if len(s) > 64 {
		s = s[:64]
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		return s + "…"
	}
	return s
}

// AppendJSON appends the event as one JSON object to dst and returns the
// extended slice. Only the fields of the event's type are written (goal's
// value, value_type and value_format only when set). Invalid UTF-8 in a
// string is written as U+FFFD, so the output is always valid JSON.
func (e *Event) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"v":1,"type":"`...)
	dst = append(dst, e.Type.String()...)
	dst = append(dst, `","ts":`...)
	dst = appendTS(dst, e.TS)
	dst = append(dst, `,"vid":`...)
	dst = appendString(dst, e.VID)
	dst = append(dst, `,"site_id":`...)
	dst = strconv.AppendInt(dst, e.SiteID, 10)
	switch e.Type {
	case TypePage:
		dst = append(dst, `,"ip":`...)
		dst = appendString(dst, e.IP)
		dst = append(dst, `,"method":`...)
		dst = appendString(dst, e.Method)
		dst = append(dst, `,"url":`...)
		dst = appendString(dst, e.URL)
		dst = append(dst, `,"user_agent":`...)
		dst = appendString(dst, e.UserAgent)
		dst = append(dst, `,"referer":`...)
		dst = appendString(dst, e.Referer)
	case TypeGoal:
		dst = append(dst, `,"name":`...)
		dst = appendString(dst, e.Name)
		if e.Value != "" {
			dst = append(dst, `,"value":`...)
			dst = appendString(dst, e.Value)
		}
		if e.ValueType != "" {
			dst = append(dst, `,"value_type":`...)
			dst = appendString(dst, e.ValueType)
		}
		if e.ValueFormat != "" {
			dst = append(dst, `,"value_format":`...)
			dst = appendString(dst, e.ValueFormat)
		}
	case TypeSplit:
		dst = append(dst, `,"test":`...)
		dst = appendString(dst, e.Test)
		dst = append(dst, `,"selected":`...)
		dst = appendString(dst, e.Selected)
	}
	return append(dst, '}')
}

// appendTS writes microseconds as seconds with exactly six decimals.
func appendTS(dst []byte, us int64) []byte {
	if us < 0 {
		dst = append(dst, '-')
		us = -us // TS of math.MinInt64 is not a time anyone records
	}
	dst = strconv.AppendInt(dst, us/1e6, 10)
	frac := us % 1e6
	dst = append(dst, '.',
		byte('0'+frac/100000), byte('0'+frac/10000%10), byte('0'+frac/1000%10),
		byte('0'+frac/100%10), byte('0'+frac/10%10), byte('0'+frac%10))
	return dst
}

const hexDigits = "0123456789abcdef"

// safe[b] is true for ASCII bytes that need no escaping in a JSON string.
var safe = func() (t [utf8.RuneSelf]bool) {
	for i := 0x20; i < utf8.RuneSelf; i++ {
		t[i] = i != '"' && i != '\\'
	}
	return
}()

func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if safe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		// U+2028/2029 are valid JSON but break JavaScript embedding.
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// Decode parses one JSON record and validates it. Unknown fields are ignored
// (so later minor additions stay readable); an unknown type, a version other
// than 1, a missing vid, a malformed or oversize field, or invalid UTF-8 is an
// error naming the field. Unescaped strings share one copy of data.
func Decode(data []byte) (Event, error) {
	if len(data) > MaxRecordBytes {
		return Event{}, fmt.Errorf("event: record of %d bytes exceeds %d", len(data), MaxRecordBytes)
	}
	return DecodeString(string(data))
}

// DecodeString is Decode for a record held in a string. The event's fields
// are substrings of data where they need no unescaping, so a caller that
// owns an immutable buffer can decode it without a copy.
func DecodeString(data string) (Event, error) {
	var e Event
	if len(data) > MaxRecordBytes {
		return e, fmt.Errorf("event: record of %d bytes exceeds %d", len(data), MaxRecordBytes)
	}
	d := decoder{s: data}
	var (
		haveV, haveType, haveTS bool
	)
	d.ws()
	if !d.consume('{') {
		return e, d.syntax("expected '{'")
	}
	d.ws()
	if d.consume('}') {
		return e, fieldErr("v", "missing")
	}
	for {
		d.ws()
		key, err := d.str()
		if err != nil {
			return e, err
		}
		d.ws()
		if !d.consume(':') {
			return e, d.syntax("expected ':'")
		}
		d.ws()
		var dst *string
		switch key {
		case "v":
			lit, err := d.number()
			if err != nil {
				return e, fieldErr("v", err.Error())
			}
			if lit != "1" {
				return e, fieldErr("v", "unsupported version "+strconv.Quote(truncForErr(lit))+" (want 1)")
			}
			haveV = true
		case "type":
			s, err := d.strField(key)
			if err != nil {
				return e, err
			}
			t, err := ParseType(s)
			if err != nil {
				return e, fieldErr("type", "unknown type "+strconv.Quote(truncForErr(s)))
			}
			e.Type = t
			haveType = true
		case "ts":
			lit, err := d.number()
			if err != nil {
				return e, fieldErr("ts", err.Error())
			}
			us, err := parseTS(lit)
			if err != nil {
				return e, fieldErr("ts", err.Error())
			}
			e.TS = us
			haveTS = true
		case "site_id":
			lit, err := d.number()
			if err != nil {
				return e, fieldErr("site_id", err.Error())
			}
			n, err := strconv.ParseInt(lit, 10, 64)
			if err != nil {
				return e, fieldErr("site_id", "not an integer: "+strconv.Quote(truncForErr(lit)))
			}
			e.SiteID = n
		case "vid":
			dst = &e.VID
		case "ip":
			dst = &e.IP
		case "method":
			dst = &e.Method
		case "url":
			dst = &e.URL
		case "user_agent":
			dst = &e.UserAgent
		case "referer":
			dst = &e.Referer
		case "name":
			dst = &e.Name
		case "value":
			dst = &e.Value
		case "value_type":
			dst = &e.ValueType
		case "value_format":
			dst = &e.ValueFormat
		case "test":
			dst = &e.Test
		case "selected":
			dst = &e.Selected
		default:
			if err := d.skip(0); err != nil {
				return e, err
			}
		}
		if dst != nil {
			// null reads as "" so optional fields may be written as null.
			if d.lit("null") {
				*dst = ""
			} else {
				s, err := d.strField(key)
				if err != nil {
					return e, err
				}
				*dst = s
			}
		}
		d.ws()
		if d.consume(',') {
			continue
		}
		if d.consume('}') {
			break
		}
		return e, d.syntax("expected ',' or '}'")
	}
	d.ws()
	if d.i != len(d.s) {
		return e, d.syntax("trailing data after object")
	}
	switch {
	case !haveV:
		return e, fieldErr("v", "missing")
	case !haveType:
		return e, fieldErr("type", "missing")
	case !haveTS:
		return e, fieldErr("ts", "missing")
	}
	return e, e.Validate()
}

// parseTS turns "1764547200.000123" (or an integer, or an exponent form)
// into microseconds without going through float for the common forms.
func parseTS(lit string) (int64, error) {
	neg := false
	s := lit
	if s != "" && s[0] == '-' {
		neg = true
		s = s[1:]
	}
	var sec, frac int64
	i := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		if sec > (1<<62)/10_000_000 {
			return 0, errors.New("out of range")
		}
		sec = sec*10 + int64(s[i]-'0')
	}
	if i < len(s) && s[i] == '.' {
		i++
		n := 0
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			if n < 6 {
				frac = frac*10 + int64(s[i]-'0')
				n++
			}
		}
		for ; n < 6; n++ {
			frac *= 10
		}
	} else {
		frac = 0
	}
	if i != len(s) {
		// Exponent forms are legal JSON; accept them via float.
		f, err := strconv.ParseFloat(lit, 64)
		if err != nil || f > 9e12 || f < -9e12 {
			return 0, errors.New("not a Unix timestamp: " + strconv.Quote(truncForErr(lit)))
		}
		if f < 0 {
			return int64(f*1e6 - 0.5), nil
		}
		return int64(f*1e6 + 0.5), nil
	}
	us := sec*1e6 + frac
	if neg {
		us = -us
	}
	return us, nil
}

type decoder struct {
	s string
	i int
}

func (d *decoder) syntax(msg string) error {
	return fmt.Errorf("event: invalid JSON at byte %d: %s", d.i, msg)
}

func (d *decoder) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) consume(c byte) bool {
	if d.i < len(d.s) && d.s[d.i] == c {
		d.i++
		return true
	}
	return false
}

func (d *decoder) lit(l string) bool {
	if len(d.s)-d.i >= len(l) && d.s[d.i:d.i+len(l)] == l {
		d.i += len(l)
		return true
	}
	return false
}

func (d *decoder) strField(field string) (string, error) {
	if d.i >= len(d.s) || d.s[d.i] != '"' {
		return "", fieldErr(field, "not a string")
	}
	s, err := d.str()
	if err != nil {
		return "", fieldErr(field, err.Error())
	}
	return s, nil
}

// number returns the literal of a JSON number.
func (d *decoder) number() (string, error) {
	start := d.i
	if d.i < len(d.s) && d.s[d.i] == '-' {
		d.i++
	}
	digits := d.i
	for d.i < len(d.s) {
		c := d.s[d.i]
		if (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-' {
			d.i++
			continue
		}
		break
	}
	if d.i == digits {
		return "", errors.New("not a number")
	}
	return d.s[start:d.i], nil
}

// str reads a JSON string at d.i. Unescaped strings are substrings of d.s.
func (d *decoder) str() (string, error) {
	if !d.consume('"') {
		return "", d.syntax("expected string")
	}
	start := d.i
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			s := d.s[start:d.i]
			d.i++
			return s, nil
		case c == '\\':
			return d.strEscaped(start)
		case c < 0x20:
			return "", d.syntax("control character in string")
		}
		d.i++
	}
	return "", d.syntax("unterminated string")
}

func (d *decoder) strEscaped(start int) (string, error) {
	buf := make([]byte, 0, d.i-start+16)
	buf = append(buf, d.s[start:d.i]...)
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			d.i++
			return string(buf), nil
		case c < 0x20:
			return "", d.syntax("control character in string")
		case c != '\\':
			buf = append(buf, c)
			d.i++
			continue
		}
		d.i++
		if d.i >= len(d.s) {
			break
		}
		esc := d.s[d.i]
		d.i++
		switch esc {
		case '"', '\\', '/':
			buf = append(buf, esc)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return "", d.syntax("bad \\u escape")
			}
			if r >= 0xD800 && r < 0xDC00 {
				// High surrogate: must be followed by a low one.
				if d.lit(`\u`) {
					r2, ok := d.hex4()
					if ok && r2 >= 0xDC00 && r2 < 0xE000 {
						r = (r-0xD800)<<10 + (r2 - 0xDC00) + 0x10000
					} else {
						return "", errors.New("invalid UTF-16 surrogate pair")
					}
				} else {
					return "", errors.New("lone UTF-16 surrogate (invalid UTF-8)")
				}
			} else if r >= 0xDC00 && r < 0xE000 {
				return "", errors.New("lone UTF-16 surrogate (invalid UTF-8)")
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", d.syntax("bad escape")
		}
	}
	return "", d.syntax("unterminated string")
}

func (d *decoder) hex4() (rune, bool) {
	if len(d.s)-d.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range []byte(d.s[d.i : d.i+4]) {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	d.i += 4
	return r, true
}

// skip steps over any JSON value (for unknown fields).
func (d *decoder) skip(depth int) error {
	if depth > 32 {
		return d.syntax("nesting too deep")
	}
	d.ws()
	if d.i >= len(d.s) {
		return d.syntax("unexpected end")
	}
	switch c := d.s[d.i]; {
	case c == '"':
		_, err := d.str()
		return err
	case c == '{' || c == '[':
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		d.i++
		d.ws()
		if d.consume(closer) {
			return nil
		}
		for {
			d.ws()
			if c == '{' {
				if _, err := d.str(); err != nil {
					return err
				}
				d.ws()
				if !d.consume(':') {
					return d.syntax("expected ':'")
				}
			}
			if err := d.skip(depth + 1); err != nil {
				return err
			}
			d.ws()
			if d.consume(',') {
				continue
			}
			if d.consume(closer) {
				return nil
			}
			return d.syntax("expected ',' or closing bracket")
		}
	case d.lit("true"), d.lit("false"), d.lit("null"):
		return nil
	default:
		if _, err := d.number(); err != nil {
			return d.syntax("unexpected character")
		}
		return nil
	}
}
