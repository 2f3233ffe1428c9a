package store

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

// appendRowBinary encodes rows in ClickHouse's RowBinary format: the
// reader's test input.
func appendRowBinary(dst []byte, rows *rowSet) ([]byte, error) {
	for i := 0; i < rows.n; i++ {
		for _, col := range rows.cols {
			switch c := col.(type) {
			case []string:
				dst = binary.AppendUvarint(dst, uint64(len(c[i])))
				dst = append(dst, c[i]...)
			case []int64:
				dst = binary.LittleEndian.AppendUint64(dst, uint64(c[i]))
			case []int32:
				dst = binary.LittleEndian.AppendUint32(dst, uint32(c[i]))
			case []uint32:
				dst = binary.LittleEndian.AppendUint32(dst, c[i])
			case []decimal.Decimal:
				bi := c[i].Shift(valueScale).BigInt()
				if bi.Sign() < 0 {
					bi.Add(bi, two128)
				}
				var buf [16]byte
				bi.FillBytes(buf[:]) // big-endian; RowBinary wants little-endian
				for l, r := 0, 15; l < r; l, r = l+1, r-1 {
					buf[l], buf[r] = buf[r], buf[l]
				}
				dst = append(dst, buf[:]...)
			default:
				return nil, fmt.Errorf("rowbinary: unsupported column type %T", col)
			}
		}
	}
	return dst, nil
}

func TestTSVEscaping(t *testing.T) {
	rows := &rowSet{n: 2, cols: []any{
		[]string{"a\tb\nc\\d\re\x00f\xffé", ""},
		[]int64{-5, 1 << 62},
		[]int32{7, -7},
		[]decimal.Decimal{dec("0.1"), dec("-12.0000000001")},
	}}
	got, err := appendTSV(nil, rows)
	must(t, err, "encode")
	want := "a\\tb\\nc\\\\d\\re\\0f\xffé\t-5\t7\t0.1\n\t4611686018427387904\t-7\t-12.0000000001\n"
	if string(got) != want {
		t.Errorf("tsv = %q\nwant  %q", got, want)
	}
	if strings.Count(string(got), "\n") != 2 {
		t.Errorf("raw newlines inside values: %q", got)
	}
	if _, err := appendTSV(nil, &rowSet{n: 1, cols: []any{[]float64{1}}}); err == nil {
		t.Error("unsupported column type accepted")
	}
}
