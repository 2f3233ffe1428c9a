package chdb

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// BenchmarkSmallQuery is the round trip of a one-row query with a parameter.
func BenchmarkSmallQuery(b *testing.B) {
	s := openTest(b, b.TempDir())
	ctx := context.Background()
	params := map[string]string{"n": "41"}
	for b.Loop() {
		if _, err := s.Query(ctx, "SELECT {n:UInt64} + 1", params, "TSV"); err != nil {
			b.Fatal(err)
		}
	}
}

const benchRows = 100_000

const benchTable = `CREATE TABLE IF NOT EXISTS ev (
	partition Int32, offset Int64, vid String, ts DateTime64(3, 'UTC'), name String, props String
) ENGINE = MergeTree ORDER BY (partition, offset)`

const benchStructure = "partition Int32, offset Int64, vid String, ts DateTime64(3, ''UTC''), name String, props String"

type benchRow struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	VID       string `json:"vid"`
	TS        int64  `json:"ts"` // milliseconds; JSONEachRow reads an integer as ticks of DateTime64(3)
	Name      string `json:"name"`
	Props     string `json:"props"`
}

func benchData() []benchRow {
	rows := make([]benchRow, benchRows)
	t0 := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC).UnixMilli()
	for i := range rows {
		rows[i] = benchRow{int32(i % 4), int64(i), fmt.Sprintf("visitor-%07d", i%5000), t0 + int64(i),
			"pageview", `{"path":"/p/` + fmt.Sprint(i%97) + `","ref":"it's \"q\"\t"}`}
	}
	return rows
}

func encodeJSONEachRow(rows []benchRow) string {
	var buf bytes.Buffer
	buf.WriteString("INSERT INTO ev (partition, offset, vid, ts, name, props) FORMAT JSONEachRow\n")
	enc := json.NewEncoder(&buf)
	for i := range rows {
		_ = enc.Encode(&rows[i])
	}
	return buf.String()
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func encodeRowBinary(rows []benchRow) string {
	var b []byte
	for _, r := range rows {
		b = binary.LittleEndian.AppendUint32(b, uint32(r.Partition))
		b = binary.LittleEndian.AppendUint64(b, uint64(r.Offset))
		b = appendString(b, r.VID)
		b = binary.LittleEndian.AppendUint64(b, uint64(r.TS))
		b = appendString(b, r.Name)
		b = appendString(b, r.Props)
	}
	return string(b)
}

// BenchmarkInsert100k inserts 100k event-like rows per op in each way the
// store can, plus the engine generating the same rows itself (the ceiling
// baseline); rows/s and the ratio to that baseline are reported.
func BenchmarkInsert100k(b *testing.B) {
	s := openTest(b, b.TempDir())
	ctx := context.Background()
	mustExec(b, s, benchTable)
	rows := benchData()
	jsonBody := encodeJSONEachRow(rows)
	var jsonData bytes.Buffer
	for i := range rows {
		_ = json.NewEncoder(&jsonData).Encode(&rows[i])
	}

	baseline := 0.0
	run := func(b *testing.B, encode func() (string, map[string]string)) {
		for b.Loop() {
			q, p := encode()
			if err := s.Exec(ctx, q, p); err != nil {
				b.Fatal(err)
			}
		}
		rps := float64(benchRows) * float64(b.N) / b.Elapsed().Seconds()
		b.ReportMetric(rps, "rows/s")
		if baseline == 0 {
			baseline = rps
		} else {
			b.ReportMetric(rps/baseline, "x_engine")
		}
	}
	b.Run("engine_generated_baseline", func(b *testing.B) {
		run(b, func() (string, map[string]string) {
			return `INSERT INTO ev SELECT toInt32(number % 4), number, concat('visitor-', leftPad(toString(number % 5000), 7, '0')),
				toDateTime64('2026-12-03 00:00:00', 3, 'UTC') + toIntervalMillisecond(number), 'pageview',
				concat('{"path":"/p/', toString(number % 97), '","ref":"it''s \\"q\\"\\t"}') FROM numbers(100000)`, nil
		})
	})
	b.Run("JSONEachRow_encode+insert", func(b *testing.B) {
		run(b, func() (string, map[string]string) { return encodeJSONEachRow(rows), nil })
	})
	b.Run("JSONEachRow_insert", func(b *testing.B) {
		run(b, func() (string, map[string]string) { return jsonBody, nil })
	})
	b.Run("RowBinary_param_encode+insert", func(b *testing.B) {
		run(b, func() (string, map[string]string) {
			return "INSERT INTO ev SELECT * FROM format(RowBinary, '" + benchStructure + "', {data:String})",
				map[string]string{"data": encodeRowBinary(rows)}
		})
	})
	b.Run("format_param_JSONEachRow", func(b *testing.B) {
		run(b, func() (string, map[string]string) {
			return "INSERT INTO ev SELECT * FROM format(JSONEachRow, '" + benchStructure + "', {data:String})",
				map[string]string{"data": jsonData.String()}
		})
	})
}
