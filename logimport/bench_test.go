package logimport

import (
	"strings"
	"testing"
)

// A typical page record of the original log, with escapes in the URL.
const benchLine = "1\tpage\t1357002000.1234\t4f2a9c1e7d3b5a6f8e0c2d4b6a8f0e1c3d5b7a9f\t0\t203.0.113.7\tGET\t" +
	`http://example.com/caf\xe9?q=a\tb` + "\tMozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0\thttp://ref.example/"

// BenchmarkParseLine is the cost of one imported record: split, unescape,
// parse and validate. Compare with BenchmarkSplitBaseline (the split alone)
// run in the same invocation: go test -bench . ./logimport
func BenchmarkParseLine(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchLine)))
	for b.Loop() {
		if _, err := ParseLine(benchLine); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSplitBaseline(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchLine)))
	for b.Loop() {
		if len(strings.Split(benchLine, "\t")) != 10 {
			b.Fatal("bad split")
		}
	}
}
