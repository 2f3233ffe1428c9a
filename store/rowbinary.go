package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"strconv"

	"github.com/shopspring/decimal"
)

// valueScale is the scale of the counters' Decimal(38, 10) value column.
const valueScale = 10

var (
	two128     = new(big.Int).Lsh(big.NewInt(1), 128)
	decimalMax = new(big.Int).Exp(big.NewInt(10), big.NewInt(38), nil) // exclusive bound of Decimal(38, s) coefficients
)

// rowSet is columnar insert data: each column a []string, []int64, []int32
// or []decimal.Decimal (already at valueScale), all of length n.
type rowSet struct {
	cols []any
	n    int
}

// chunks are n rows made a chunk (at most size rows) at a time: fill returns
// the columns of rows [from, to), as in rowSet, and may reuse the memory of
// the columns it returned before.
type chunks struct {
	n, size int
	fill    func(from, to int) []any
}

// scaledValue rounds d to the value column's scale and checks it fits, so
// both connections store the same number (clickhouse-go would truncate).
func scaledValue(d decimal.Decimal) (decimal.Decimal, error) {
	r := d.Round(valueScale)
	bi := r.Shift(valueScale).BigInt()
	if new(big.Int).Abs(bi).Cmp(decimalMax) >= 0 {
		return decimal.Decimal{}, fmt.Errorf("value %s does not fit Decimal(38, %d)", d, valueScale)
	}
	return r, nil
}

var errShort = errors.New("rowbinary: truncated result")

// rowReader decodes RowBinary output (chDB query results) into scan destinations.
type rowReader struct {
	buf []byte
}

func (r *rowReader) more() bool { return len(r.buf) > 0 }

func (r *rowReader) bytes(n int) ([]byte, error) {
	if n < 0 || len(r.buf) < n {
		return nil, errShort
	}
	b := r.buf[:n]
	r.buf = r.buf[n:]
	return b, nil
}

func (r *rowReader) str() (string, error) {
	l, k := binary.Uvarint(r.buf)
	if k <= 0 {
		return "", errShort
	}
	r.buf = r.buf[k:]
	if l > uint64(len(r.buf)) {
		return "", errShort
	}
	b, err := r.bytes(int(l))
	return string(b), err
}

// scan fills dest (*string, *int64, *decimal.Decimal or *[]string: the
// shapes of String, Int64, Decimal(38, 10) and Array(String)).
func (r *rowReader) scan(dest []any) error {
	for _, d := range dest {
		switch p := d.(type) {
		case *string:
			s, err := r.str()
			if err != nil {
				return err
			}
			*p = s
		case *int64:
			b, err := r.bytes(8)
			if err != nil {
				return err
			}
			*p = int64(binary.LittleEndian.Uint64(b))
		case *decimal.Decimal:
			b, err := r.bytes(16)
			if err != nil {
				return err
			}
			var be [16]byte
			for i := range be {
				be[i] = b[15-i]
			}
			bi := new(big.Int).SetBytes(be[:])
			if be[0]&0x80 != 0 {
				bi.Sub(bi, two128)
			}
			*p = decimal.NewFromBigInt(bi, -valueScale)
		case *[]string:
			n, k := binary.Uvarint(r.buf)
			if k <= 0 || n > uint64(len(r.buf)) {
				return errShort
			}
			r.buf = r.buf[k:]
			out := make([]string, 0, n)
			for j := uint64(0); j < n; j++ {
				s, err := r.str()
				if err != nil {
					return err
				}
				out = append(out, s)
			}
			*p = out
		default:
			return fmt.Errorf("rowbinary: unsupported destination %T", d)
		}
	}
	return nil
}

// appendTSV encodes rows in ClickHouse's TabSeparated format: strings
// escaped so that no raw tab, newline, carriage return, NUL or lone
// backslash remains inside a value.
func appendTSV(dst []byte, rows *rowSet) ([]byte, error) {
	for i := 0; i < rows.n; i++ {
		for j, col := range rows.cols {
			if j > 0 {
				dst = append(dst, '\t')
			}
			switch c := col.(type) {
			case []string:
				dst = appendEscaped(dst, c[i])
			case []int64:
				dst = strconv.AppendInt(dst, c[i], 10)
			case []int32:
				dst = strconv.AppendInt(dst, int64(c[i]), 10)
			case []uint32:
				dst = strconv.AppendUint(dst, uint64(c[i]), 10)
			case []decimal.Decimal:
				dst = append(dst, c[i].String()...)
			default:
				return nil, fmt.Errorf("tsv: unsupported column type %T", col)
			}
		}
		dst = append(dst, '\n')
	}
	return dst, nil
}

func appendEscaped(dst []byte, s string) []byte {
	for k := 0; k < len(s); k++ {
		switch b := s[k]; b {
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case 0:
			dst = append(dst, '\\', '0')
		default:
			dst = append(dst, b)
		}
	}
	return dst
}
