package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

const vid = "3f9a1c0de5b7a2c4e6f80123456789abcdef0123"

func samples() []Event {
	return []Event{
		{Type: TypePage, TS: 1764547200000000, VID: vid, SiteID: 3, IP: "203.0.113.7", Method: "GET",
			URL: "http://example.com/a?b=\"c\"&d=\\", UserAgent: "Mozilla/5.0 (X11) \u2028 ✓", Referer: "http://r/\t\n"},
		{Type: TypePixel, TS: 1764547200000001, VID: vid},
		{Type: TypeGoal, TS: 1, VID: vid, Name: "pie accomplished"},
		{Type: TypeGoal, TS: 1764547200123456, VID: vid, SiteID: 1, Name: "ünïcode 🎉", Value: "-12.50", ValueType: "S", ValueFormat: "C"},
		{Type: TypeSplit, TS: 1764547200999999, VID: vid, Test: "superior dessert preference", Selected: "True"},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, e := range samples() {
		b := e.AppendJSON(nil)
		if !json.Valid(b) {
			t.Fatalf("invalid JSON: %s", b)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		if got != e {
			t.Fatalf("round trip mismatch:\n got %+v\nwant %+v", got, e)
		}
		if got, err := DecodeString(string(b)); err != nil || got != e {
			t.Fatalf("DecodeString %s: %+v, %v", b, got, err)
		}
	}
	big := `{"v":1,"type":"pixel","ts":1,"vid":"x","url":"` + strings.Repeat("a", MaxRecordBytes) + `"}`
	if _, err := DecodeString(big); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("DecodeString of %d bytes: %v, want a size error", len(big), err)
	}
}

func TestTimestampFormat(t *testing.T) {
	e := Event{Type: TypePixel, TS: 1764547200000000, VID: "x"}
	if got := string(e.AppendJSON(nil)); !strings.Contains(got, `"ts":1764547200.000000,`) {
		t.Fatalf("ts format: %s", got)
	}
	e.TS = 1764547200000042
	if got := string(e.AppendJSON(nil)); !strings.Contains(got, `"ts":1764547200.000042,`) {
		t.Fatalf("ts format: %s", got)
	}
	for lit, want := range map[string]int64{
		"1764547200": 1764547200000000, "1764547200.5": 1764547200500000,
		"1764547200.1234567": 1764547200123456, "1.7645472e9": 1764547200000000,
	} {
		got, err := Decode([]byte(`{"v":1,"type":"pixel","ts":` + lit + `,"vid":"x"}`))
		if err != nil || got.TS != want {
			t.Errorf("ts %s: got %d, %v; want %d", lit, got.TS, err, want)
		}
	}
}

func TestInvalidUTF8Encoded(t *testing.T) {
	e := Event{Type: TypePage, VID: "x", UserAgent: "bad\xff\xfeua"}
	b := e.AppendJSON(nil)
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.UserAgent != "bad\ufffd\ufffdua" {
		t.Fatalf("got %q", got.UserAgent)
	}
}

func TestDecodeRejects(t *testing.T) {
	long := strings.Repeat("a", MaxURLLen+1)
	cases := []struct {
		name, in, field string
	}{
		{"unknown type", `{"v":1,"type":"click","ts":1,"vid":"x"}`, "type"},
		{"type not string", `{"v":1,"type":3,"ts":1,"vid":"x"}`, "type"},
		{"missing vid", `{"v":1,"type":"pixel","ts":1}`, "vid"},
		{"empty vid", `{"v":1,"type":"pixel","ts":1,"vid":""}`, "vid"},
		{"missing v", `{"type":"pixel","ts":1,"vid":"x"}`, "v"},
		{"bad version", `{"v":2,"type":"pixel","ts":1,"vid":"x"}`, "v"},
		{"missing ts", `{"v":1,"type":"pixel","vid":"x"}`, "ts"},
		{"bad ts", `{"v":1,"type":"pixel","ts":"now","vid":"x"}`, "ts"},
		{"bad site", `{"v":1,"type":"pixel","ts":1,"vid":"x","site_id":1.5}`, "site_id"},
		{"non-decimal value", `{"v":1,"type":"goal","ts":1,"vid":"x","name":"g","value":"1e3"}`, "value"},
		{"value NaN", `{"v":1,"type":"goal","ts":1,"vid":"x","name":"g","value":"NaN"}`, "value"},
		{"value number", `{"v":1,"type":"goal","ts":1,"vid":"x","name":"g","value":12}`, "value"},
		{"value_type", `{"v":1,"type":"goal","ts":1,"vid":"x","name":"g","value_type":"X"}`, "value_type"},
		{"value_format", `{"v":1,"type":"goal","ts":1,"vid":"x","name":"g","value_format":"%"}`, "value_format"},
		{"goal no name", `{"v":1,"type":"goal","ts":1,"vid":"x"}`, "name"},
		{"split no selected", `{"v":1,"type":"split","ts":1,"vid":"x","test":"t"}`, "selected"},
		{"oversize url", `{"v":1,"type":"page","ts":1,"vid":"x","url":"` + long + `"}`, "url"},
		{"oversize name", `{"v":1,"type":"goal","ts":1,"vid":"x","name":"` + long[:MaxNameLen+1] + `"}`, "name"},
		{"invalid utf8", "{\"v\":1,\"type\":\"page\",\"ts\":1,\"vid\":\"x\",\"user_agent\":\"a\xffb\"}", "user_agent"},
		{"lone surrogate", `{"v":1,"type":"page","ts":1,"vid":"x","referer":"\ud800"}`, "referer"},
	}
	for _, c := range cases {
		_, err := Decode([]byte(c.in))
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%s: want FieldError for %q, got %v", c.name, c.field, err)
			continue
		}
		if fe.Field != c.field || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: error %q does not name field %q", c.name, err, c.field)
		}
	}
	for _, in := range []string{``, `[]`, `{`, `{"v":1,}`, `{"v":1} x`, `{"v":1,"type":"pixel","ts":1,"vid":"x"`} {
		if _, err := Decode([]byte(in)); err == nil {
			t.Errorf("%q: want syntax error", in)
		}
	}
}

func TestDecodeLenient(t *testing.T) {
	in := ` { "future" : {"a":[1,2,{"b":null}],"c":true} , "v":1, "type":"goal", "ts":1764547200.000000,
	  "vid":"x", "name":"caf\u00e9 \"q\" \/ \ud83c\udf89", "value":null, "site_id": 7 } `
	e, err := Decode([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if e.Name != "café \"q\" / 🎉" || e.SiteID != 7 || e.Value != "" {
		t.Fatalf("got %+v", e)
	}
}

func TestIsDecimal(t *testing.T) {
	for s, want := range map[string]bool{"0": true, "-1": true, "12.50": true, "007": true,
		"": false, "-": false, ".5": false, "5.": false, "1e3": false, " 1": false, "+1": false, "1.2.3": false} {
		if IsDecimal(s) != want {
			t.Errorf("IsDecimal(%q) != %v", s, want)
		}
	}
}

func TestParseType(t *testing.T) {
	for ty := TypePage; ty <= TypeSplit; ty++ {
		got, err := ParseType(ty.String())
		if err != nil || got != ty {
			t.Fatalf("%v: %v %v", ty, got, err)
		}
	}
	if _, err := ParseType("Page"); err == nil {
		t.Fatal("want error")
	}
	if Type(9).String() != "Type(9)" {
		t.Fatal(Type(9).String())
	}
}

func loadSchema(t *testing.T) (*jsonschema.Schema, map[string]any) {
	t.Helper()
	raw, err := os.ReadFile("../schema/event.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("event.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("event.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return sch, doc.(map[string]any)
}

func validateJSON(sch *jsonschema.Schema, b []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return err
	}
	return sch.Validate(v)
}

// The schema and the codec must agree: what the encoder writes validates,
// the schema's examples decode, and both know the same fields.
func TestSchemaAgreement(t *testing.T) {
	sch, doc := loadSchema(t)
	fields := map[string]bool{}
	for _, e := range samples() {
		b := e.AppendJSON(nil)
		if err := validateJSON(sch, b); err != nil {
			t.Errorf("encoder output fails schema: %s: %v", b, err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for k := range m {
			fields[k] = true
		}
	}
	props := doc["properties"].(map[string]any)
	var onlySchema, onlyCodec []string
	for k := range props {
		if !fields[k] {
			onlySchema = append(onlySchema, k)
		}
	}
	for k := range fields {
		if props[k] == nil {
			onlyCodec = append(onlyCodec, k)
		}
	}
	sort.Strings(onlySchema)
	sort.Strings(onlyCodec)
	if len(onlySchema)+len(onlyCodec) > 0 {
		t.Errorf("field sets differ: only in schema %v, only in encoder %v", onlySchema, onlyCodec)
	}
	examples := doc["examples"].([]any)
	if len(examples) < 4 {
		t.Fatal("schema lost its examples")
	}
	for _, ex := range examples {
		b, _ := json.Marshal(ex)
		if err := validateJSON(sch, b); err != nil {
			t.Errorf("example fails schema: %s: %v", b, err)
		}
		if _, err := Decode(b); err != nil {
			t.Errorf("example fails Decode: %s: %v", b, err)
		}
	}
	// Records Decode rejects for their content, the schema rejects too.
	for _, bad := range []string{
		`{"v":2,"type":"pixel","ts":1,"vid":"x"}`,
		`{"v":1,"type":"click","ts":1,"vid":"x"}`,
		`{"v":1,"type":"pixel","ts":1}`,
		`{"v":1,"type":"goal","ts":1,"vid":"x","name":"g","value":"1e3"}`,
		`{"v":1,"type":"goal","ts":1,"vid":"x","name":"g","value_type":"X"}`,
		`{"v":1,"type":"goal","ts":1,"vid":"x","name":"g","value_format":"%"}`,
		`{"v":1,"type":"goal","ts":1,"vid":"x"}`,
		`{"v":1,"type":"split","ts":1,"vid":"x","test":"t"}`,
	} {
		if err := validateJSON(sch, []byte(bad)); err == nil {
			t.Errorf("schema accepts %s", bad)
		}
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("Decode accepts %s", bad)
		}
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	e := samples()[0]
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = e.AppendJSON(buf[:0])
	}
}

func BenchmarkDecode(b *testing.B) {
	e := samples()[0]
	data := e.AppendJSON(nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}
